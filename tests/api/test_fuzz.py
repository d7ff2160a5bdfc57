"""Bad input over the whole HTTP API: schema-driven fuzzing plus hand-picked nasties.

Zero 5xx answers, and every 4xx carries a message. The budget is fixed (``CASES_PER_ROUTE``)
and Hypothesis runs derandomized, so the run is bounded and repeatable.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from temporalio.client import Client

from activities.providers import ClipProvider
from storyreel.settings import Settings
from tests.api.conftest import LiveApi, live_stack
from tests.fakes import SleepyProvider

CASES_PER_ROUTE = 40


@pytest.fixture
async def fuzz_api(
    client: Client, settings: Settings, prepared_clip: Path
) -> AsyncIterator[LiveApi]:
    # Only a cheap provider is accepted, so valid bodies that slip through start nothing heavy.
    settings.clip_providers = ["sleepy"]
    settings.max_running_generations = 5
    settings.requests_per_minute = 100_000
    providers: dict[str, ClipProvider] = {"sleepy": SleepyProvider(prepared_clip, 0.2)}
    async with live_stack(client, settings, providers, "mallory") as api:
        yield api


def has_message(response: object) -> bool:
    try:
        detail = response.json().get("detail")  # type: ignore[attr-defined]
    except ValueError:
        return False
    return bool(detail)


def fuzz(schema_document: dict, base_url: str, key: str) -> Counter[str]:
    """Every operation in the schema, ``CASES_PER_ROUTE`` generated cases each."""
    schema = schemathesis.openapi.from_dict(schema_document)
    seen: Counter[str] = Counter()
    problems: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here

        @given(case=operation.as_strategy())
        @settings(
            max_examples=CASES_PER_ROUTE,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            seen[f"{response.status_code // 100}xx"] += 1
            seen["cases"] += 1
            label = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{label}: {response.text[:200]}")
            elif response.status_code >= 400 and not has_message(response):
                problems.append(f"{label}: no message")

        check()
    assert not problems, "\n".join(problems[:20])
    return seen


async def test_fuzzing_the_api_finds_no_server_error(fuzz_api: LiveApi) -> None:
    document = (await fuzz_api.http.get("/openapi.json")).json()
    seen = await asyncio.to_thread(fuzz, document, fuzz_api.url, fuzz_api.key)
    sys.stderr.write(f"\n[fuzz] {seen['cases']} cases: {dict(sorted(seen.items()))}\n")
    assert seen["cases"] >= CASES_PER_ROUTE * 5
    assert seen["5xx"] == 0


NASTY_BODIES = [
    {"title": "x", "script": "word " * 4000, "platform": "tiktok", "provider": "sleepy"},
    {"title": "x", "scenes": [], "provider": "sleepy"},
    {"title": "x", "scenes": [{"description": "s", "duration": 2}] * 300, "provider": "sleepy"},
    {
        "title": "x\u0000\u0007\u202e",
        "script": "Ünïcødé 😀 \u0000 tab\tnew\nline.",
        "provider": "sleepy",
    },
    {"title": "x", "script": "\u0000\u0001\u0002", "provider": "sleepy"},
    {"title": "x", "script": "fine.", "provider": "../../etc/passwd"},
    {"title": "x", "script": "fine.", "music": "../secrets.mp3", "provider": "sleepy"},
    {"title": "x", "script": "fine.", "seed": -1, "provider": "sleepy"},
    {"title": "x", "script": "fine.", "duration": 1e308, "provider": "sleepy"},
    {"title": "x" * 10_000, "script": "fine.", "provider": "sleepy"},
    [1, 2, 3],
    "not an object",
]
NASTY_PATHS = [
    "/v1/generations/..%2F..%2Fetc%2Fpasswd",
    "/v1/generations/%00",
    "/v1/generations/" + "a" * 5000,
    "/v1/generations/gen-x/clips/-1/retry",
    "/v1/generations/gen-x/clips/99999999999999999999/video",
    "/v1/generations/\u202egen/video",
]


async def test_hand_picked_bad_input_is_a_4xx_with_a_message(fuzz_api: LiveApi) -> None:
    for body in NASTY_BODIES:
        answer = await fuzz_api.http.post("/v1/generations", json=body)
        assert 400 <= answer.status_code < 500, (
            body if len(str(body)) < 200 else "big",
            answer.text[:300],
        )
        assert has_message(answer)
    for path in NASTY_PATHS:
        for method in ("GET", "POST"):
            answer = await fuzz_api.http.request(method, path)
            assert 400 <= answer.status_code < 500, (path, answer.text[:300])
            assert has_message(answer), (path, answer.text[:300])
    broken = await fuzz_api.http.post(
        "/v1/generations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and has_message(broken)
