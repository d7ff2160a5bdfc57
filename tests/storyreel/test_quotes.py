"""Quotes of models outside the catalogue: which are read before the first clip, how the read
spec reprices them, and the one rule (API and workflow) a quote must pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyreel.catalogue.schema import describe
from storyreel.quotes import pricing_for, quote, refusal
from storyreel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LUMA = "luma/ray-flash-2-540p"


def luma_schema() -> dict[str, object]:
    path = ROOT / "activities/simulator/schemas/replicate/luma--ray-flash-2-540p.json"
    document: dict[str, object] = json.loads(path.read_text())
    return document


def test_only_an_unlisted_model_of_a_provider_that_publishes_schemas_is_discoverable() -> None:
    settings = Settings(_env_file=None)
    unlisted = pricing_for(settings, "simulator", LUMA)
    assert unlisted.discoverable and unlisted.durations is None
    assert pricing_for(settings, "replicate", LUMA).discoverable
    assert pricing_for(settings, "fal", "fal-ai/some/new-endpoint").discoverable
    listed = pricing_for(settings, "replicate", "kwaivgi/kling-v2.1")
    assert not listed.discoverable and listed.durations is not None
    # No published schemas (Runware, Veo, local) or no registered provider at all (a test's).
    assert not pricing_for(settings, "runware", "someone:1@1").discoverable
    assert not pricing_for(settings, "local", "local/pan-zoom").discoverable
    assert not pricing_for(settings, "flaky", "any").discoverable


def test_the_read_spec_bills_the_lengths_the_model_makes() -> None:
    settings = Settings(_env_file=None)
    pricing = pricing_for(settings, "simulator", LUMA)
    assert quote(pricing, [4.0, 6.0]).billed_seconds == 10.0  # before the read: as planned
    spec = describe("simulator", LUMA, luma_schema(), "stored")
    described = pricing.described_by(spec)
    assert not described.discoverable and described.price == pricing.price
    quoted = quote(described, [4.0, 6.0])
    assert [scene.billed_seconds for scene in quoted.scenes] == [5.0, 9.0]
    assert quoted.lengths == "5 or 9 s"
    assert quoted.cost == pytest.approx(14 * 0.05)


def test_a_quote_over_the_limit_or_the_budget_is_refused_naming_the_scenes() -> None:
    spec = describe("simulator", LUMA, luma_schema(), "stored")
    pricing = pricing_for(Settings(_env_file=None), "simulator", LUMA).described_by(spec)
    quoted = quote(pricing, [4.0, 6.0])
    assert refusal(quoted, "youtube_shorts", 60, 0.70) is None
    too_long = refusal(quoted, "youtube_shorts", 12, None)
    assert too_long == (
        "too long for youtube_shorts: it allows 12 s, and the 2 scenes on "
        "simulator/luma/ray-flash-2-540p (it makes 5 or 9 s clips: scene 1, 4 s, is billed "
        "as 5 s; scene 2, 6 s, is billed as 9 s) come to 14 s; use fewer or shorter scenes, "
        "or a model whose lengths fit them"
    )
    over = refusal(quoted, "youtube", None, 0.60)
    assert over is not None
    assert over.startswith("budget: the clips would cost about 0.70, over the budget of 0.60;")
    assert over.endswith("come to 14 s")
