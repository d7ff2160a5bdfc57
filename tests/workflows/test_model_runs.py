"""Runs on real models' published input schemas, with the worker's providers opened from its
settings alone (a key and a base URL per provider, as deployed), against the simulator's
copies of Replicate's and fal's protocols, which refuse what the real services refuse.

What each model takes is written here from its public model page (the stored schemas under
``activities/simulator/schemas`` say which), not read from storyreel's catalogue: the first
frame's field, and the clip lengths it makes. Scenes last 2 and 7.3 s and are no multiple of
those lengths, so every clip is asked longer than its scene and cut to it (or, past the
model's longest clip, slowed within the limit).
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.media import ffmpeg
from activities.media.audio import close_tts
from activities.media.layout import caption_box, wrap_caption
from activities.media.stitch import expected_duration, scene_starts
from storyreel.contracts import (
    PLATFORMS,
    ClipStatus,
    GenerationState,
    GenerationStatus,
    Platform,
    SceneIn,
)
from storyreel.providers import PROVIDERS
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from tests.activities.media.helpers import mean_difference, rgb_frame, samples, white_pixels
from tests.workflows.conftest import (
    keep_history,
    request_for,
    running_worker,
    start,
    wait_for_state,
)
from tests.workflows.test_simulator_runs import Sim, simulator
from worker import build_tts, running_workers

SCENES = [2.0, 7.3]
FPS = PLATFORMS[Platform.youtube].fps
FADE = 0.5


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    first_frame: str | None  # where the model takes its first frame (None: it takes none)
    lengths: tuple[int | str, ...]  # the clip lengths it makes, as its schema spells them
    transition: str | None

    def covering(self, seconds: float) -> int | str:
        """The shortest length that covers ``seconds``, else the longest."""
        for length in self.lengths:
            if float(str(length).removesuffix("s")) >= seconds - 1e-6:
                return length
        return self.lengths[-1]


MODELS = [
    Model("replicate", "kwaivgi/kling-v2.1", "start_image", (5, 10), "fade"),
    # 6 or 10 s, but 10 s only at 768p: at its default 1080p (which storyreel keeps) only 6 s.
    Model("replicate", "minimax/hailuo-02", "first_frame_image", (6,), None),
    Model("replicate", "google/veo-3-fast", "image", (4, 6, 8), "fade"),
    # Not in storyreel's catalogue: mapped from the schema the simulator serves for it.
    Model("replicate", "luma/ray-flash-2-540p", "start_image_url", (5, 9), None),
    Model("fal", "fal-ai/kling-video/v2.1/master/text-to-video", None, ("5", "10"), "fade"),
    Model("fal", "fal-ai/kling-video/v2.1/master/image-to-video", "image_url", ("5", "10"), None),
]


def deployed(settings: Settings, sim: Sim, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This test's settings as a deployed worker reads them: from the environment, with the
    Replicate and fal variables pointing at the simulator (nothing built by hand)."""
    for name in ("replicate", "fal"):
        for variable, value in PROVIDERS[name].simulated(sim.url).items():
            monkeypatch.setenv(variable, value)
    monkeypatch.setenv("FAL_KEY", "fal-test-key")
    monkeypatch.setenv("STORYREEL_REPLICATE_POLL_INTERVAL", "0.25")
    kept = settings.model_dump(
        include={
            "data_dir", "temporal_address", "workflow_task_queue", "media_task_queue",
            "clip_task_queue_prefix", "executor_workers",
        }
    )  # fmt: skip
    return Settings(_env_file=None, **kept, clip_providers=list(PROVIDERS))


def creates_of(log: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [p for p in log["predictions"] if p["model"].removeprefix("models/") == model]


def requested_length(create: dict[str, Any], model: Model) -> int | str:
    value = create["inputs"]["duration"]
    assert isinstance(value, type(model.lengths[0])), (value, model.lengths)
    return value


async def run(
    client: Client,
    settings: Settings,
    model: Model,
    descriptions: list[str],
    **changes: object,
) -> GenerationState:
    scenes = [
        SceneIn(description=text, duration=seconds)
        for text, seconds in zip(descriptions, SCENES, strict=True)
    ]
    request = request_for(
        len(scenes),
        model.provider,
        model=model.name,
        scenes=scenes,
        transition=model.transition or "none",
        use_cache=False,
        **changes,
    )
    handle = await start(client, settings, request)
    # A failed clip leaves the run awaiting a retry (it never ends by itself): stop there too.
    state = await wait_for_state(handle, lambda s: s.status in SETTLED, timeout=600)
    if state.status is GenerationStatus.completed:
        await keep_history(handle)
    return state


SETTLED = {
    GenerationStatus.completed,
    GenerationStatus.failed,
    GenerationStatus.awaiting_retry,
}
QUEUES = ["workflows", "media", "clips:replicate", "clips:fal"]


def planned(model: Model) -> float:
    return expected_duration(SCENES, FADE if model.transition else 0.0)


DESCRIPTIONS = [
    "A lighthouse keeper climbs the stairs at dawn",
    "Night falls and the beam sweeps the sea",
]


async def test_runs_on_real_models_schemas_complete_as_long_as_planned(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One deployed worker, one run per model at once."""
    async with simulator(latency=0.3, render=False, seed=5) as sim:
        settings = deployed(settings, sim, monkeypatch)
        async with running_worker(client, settings, queues=QUEUES):
            states = await asyncio.gather(
                # Uncaptioned (captions re-encode every clip): the rendered run below has them.
                *(run(client, settings, model, described(model)) for model in MODELS)
            )
        log = await sim.log()

    for model, state in zip(MODELS, states, strict=True):
        check_run(model, state, log, LocalStorage(settings.media_dir))


def described(model: Model) -> list[str]:
    """The scenes' descriptions, naming the model (so its predictions are found by prompt)."""
    return [f"{text} ({model.name})" for text in DESCRIPTIONS]


def check_run(
    model: Model, state: GenerationState, log: dict[str, Any], storage: LocalStorage
) -> None:
    assert state.status is GenerationStatus.completed, (model, state.error)
    assert [clip.status for clip in state.clips] == [ClipStatus.complete] * len(SCENES), model
    creates = creates_of(log, model.name)
    assert len(creates) == len(SCENES), (model, log["predictions"])
    texts = described(model)
    for create in creates:
        scene = next(n for n, text in enumerate(texts) if create["prompt"].endswith(text))
        # Nothing the model does not take; the schema was enforced (a refusal fails the run).
        assert create["schema"] and create["unknown_inputs"] == [], create
        assert requested_length(create, model) == model.covering(SCENES[scene]), create
        if model.first_frame is not None:
            # The storyboard travelled in the model's own first-frame field.
            sent = str(create["inputs"].get(model.first_frame, ""))
            assert sent.startswith(("data:image/", "http")), (model, create["inputs"])
    # Billed as made: the quote counts the lengths asked.
    billed = sum(float(str(model.covering(s)).removesuffix("s")) for s in SCENES)
    assert state.quote is not None, model
    assert state.quote.billed_seconds == pytest.approx(billed), model
    # Past the longest clip the model makes, the clip is slowed (or held), and the run says so.
    longest = float(str(model.lengths[-1]).removesuffix("s"))
    for seconds in SCENES:
        if seconds > longest:
            assert any(f"{seconds:g} s scene" in w for w in state.warnings), (model, state.warnings)
    if model.first_frame is None:
        assert any("takes no first frame" in w for w in state.warnings), (model, state.warnings)
    # Cut to the plan: the finished video lasts the scenes, within a frame per scene.
    assert state.video_key is not None, model
    duration = ffmpeg.probe(storage.path(state.video_key)).duration
    assert duration == pytest.approx(planned(model), abs=len(SCENES) / FPS), model


def speech_level(signal: list[int], start: float, end: float, rate: int = 8000) -> float:
    window = signal[int(start * rate) : int(end * rate)]
    return math.sqrt(sum(x * x for x in window) / max(1, len(window)))


async def test_rendered_scenes_captions_and_narration_sit_where_planned(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Clips rendered from their storyboards (10 s for a 7.3 s scene): each scene's picture,
    caption and voice are in the finished video where the plan puts them."""
    model = MODELS[0]
    async with simulator(latency=0.3, render=True, seed=5) as sim:
        settings = deployed(settings, sim, monkeypatch)
        # The voice as the deployed worker builds it from its settings (espeak-ng).
        tts = build_tts(settings)
        try:
            with ThreadPoolExecutor(max_workers=settings.executor_size()) as executor:
                async with running_workers(client, settings, QUEUES, executor, tts=tts):
                    state = await run(
                        client, settings, model, DESCRIPTIONS, captions=True, narration=True
                    )
        finally:
            close_tts(tts)

    assert state.status is GenerationStatus.completed, state.error
    assert state.warnings == [], state.warnings
    storage = LocalStorage(settings.media_dir)
    assert state.video_key is not None
    video = storage.path(state.video_key)
    assert ffmpeg.probe(video).duration == pytest.approx(planned(model), abs=len(SCENES) / FPS)
    spec = PLATFORMS[Platform.youtube]
    starts = scene_starts(SCENES, FADE)
    ends = [start + seconds for start, seconds in zip(starts, SCENES, strict=True)]
    picture = (0, 0, spec.width, spec.height // 2)  # above the caption band
    signal = samples(video)
    for index, (begin, end) in enumerate(zip(starts, ends, strict=True)):
        middle = (begin + end) / 2
        # The picture in the middle of scene k is scene k's own clip, at its middle.
        clip = storage.path(state.clips[index].key or "")
        shown = rgb_frame(video, middle, picture)
        own = mean_difference(shown, rgb_frame(clip, SCENES[index] / 2, picture))
        others = [
            mean_difference(shown, rgb_frame(storage.path(c.key or ""), SCENES[n] / 2, picture))
            for n, c in enumerate(state.clips)
            if n != index
        ]
        assert own < min(others), (index, own, others)
        # Its caption is drawn there.
        lines, size = wrap_caption(DESCRIPTIONS[index], spec)
        assert white_pixels(rgb_frame(video, middle, caption_box(spec, len(lines), size))) > 50
        # And its narration speaks within it (each scene's voice starts with the scene).
        assert speech_level(signal, begin + FADE, min(end, begin + 1.5)) > 300.0, index


async def test_a_corrupt_output_is_retried_and_never_stitched(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that answers 64 bytes that are no video: that attempt failed, the next one
    made a clip; a model that always does so fails its clip, and nothing is stitched."""
    model = MODELS[0]
    async with simulator(latency=0.3, render=False, seed=5) as sim:
        settings = deployed(settings, sim, monkeypatch)
        async with running_worker(client, settings, queues=QUEUES):
            once = await run(client, settings, model, ["Dawn", "[corrupt-once] Fog"])
            request = request_for(
                1, "replicate", model=model.name, use_cache=False,
                scenes=[SceneIn(description="[corrupt] Always broken", duration=4)],
            )  # fmt: skip
            handle = await start(client, settings, request)
            broken = await wait_for_state(
                handle, lambda s: s.status is GenerationStatus.awaiting_retry, timeout=240
            )
            await handle.cancel()
        log = await sim.log()

    assert once.status is GenerationStatus.completed, once.error
    fog = [p for p in creates_of(log, model.name) if p["prompt"].endswith("[corrupt-once] Fog")]
    assert [p["corrupt"] for p in fog] == [True, False], fog
    assert once.clips[1].status is ClipStatus.complete and once.clips[1].attempts == 2
    storage = LocalStorage(settings.media_dir)
    # What was kept for the scene is the good clip, cut to it, and the video is whole.
    kept = ffmpeg.probe(storage.path(once.clips[1].key or ""))
    assert kept.video_codec == "h264" and kept.duration == pytest.approx(SCENES[1], abs=1 / FPS)
    assert once.video_key is not None
    duration = ffmpeg.probe(storage.path(once.video_key)).duration
    assert duration == pytest.approx(planned(model), abs=len(SCENES) / FPS)

    (clip,) = broken.clips
    assert clip.status is ClipStatus.failed and clip.attempts == 3, clip
    assert clip.error is not None and "not a usable clip" in clip.error, clip.error
    assert broken.video_key is None
    assert all(p["corrupt"] for p in log["predictions"] if "Always broken" in p["prompt"])
