"""A character with a reference image stays the same across the scenes that name them: on a
model that takes reference images (Replicate ``google/veo-3.1``) every create of those scenes
carries the image itself, on one that takes only a first frame (``kwaivgi/kling-v2.1``) the
storyboard it starts from was drawn with it. Both judged from the simulator's log of what the
(schema-enforcing) Replicate protocol received, and from the stored storyboards."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from temporalio.client import Client

from activities.media import ffmpeg
from storyreel.contracts import Character, GenerationState, GenerationStatus, SceneIn
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from tests.workflows.conftest import request_for, running_worker, start, wait_for_state
from tests.workflows.test_model_runs import QUEUES, SETTLED, creates_of, deployed
from tests.workflows.test_simulator_runs import simulator

REFERENCE = "assets/1/ast-0123456789abcdef01234567"
MAGENTA = (255, 0, 255)
SCENES = [
    SceneIn(description="Mara mends a net on the pier", duration=7.5),
    SceneIn(description="Gulls circle the empty harbour", duration=2.0),
    SceneIn(description="A boat leaves at dusk", duration=7.0, caption="mara waves goodbye"),
]
NAMED = {1, 3}  # "mara" in the third scene's caption counts too


def centre(picture: bytes) -> tuple[int, int, int]:
    image = Image.open(io.BytesIO(picture)).convert("RGB")
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel[0], pixel[1], pixel[2]


def near(colour: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(colour, target, strict=True))


def digest_sent(logged: str) -> str:
    """The SHA-256 the simulator's log gives a data URI it received."""
    assert logged.startswith("data:image/"), logged[:40]
    return logged.rsplit("sha256 ", 1)[1].rstrip(")")


async def run(client: Client, settings: Settings, model: str) -> GenerationState:
    request = request_for(
        len(SCENES),
        "replicate",
        model=model,
        scenes=[scene.model_copy(update={"description": f"{scene.description} ({model})"})
                for scene in SCENES],
        characters=[
            Character(
                name="Mara",
                description="a fisherwoman with a bright magenta scarf",
                assets=[REFERENCE],
            )
        ],
        transition="none",
        use_cache=False,
    )  # fmt: skip
    handle = await start(client, settings, request)
    return await wait_for_state(handle, lambda s: s.status in SETTLED, timeout=600)


async def test_a_character_reaches_every_scene_that_names_them(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reference = tmp_path / "mara.png"
    ffmpeg.run(["-f", "lavfi", "-i", "color=c=magenta:s=256x256", "-frames:v", "1", str(reference)])
    async with simulator(latency=0.3, render=False, seed=3) as sim:
        settings = deployed(settings, sim, monkeypatch)
        storage = LocalStorage(settings.media_dir)
        storage.put_file(REFERENCE, reference)
        async with running_worker(client, settings, queues=QUEUES):
            veo, kling = await asyncio.gather(
                run(client, settings, "google/veo-3.1"), run(client, settings, "kwaivgi/kling-v2.1")
            )
        log: dict[str, Any] = await sim.log()

    for state in (veo, kling):
        assert state.status is GenerationStatus.completed, state.error
        # The state says which scenes have Mara, with which reference.
        for scene in state.scenes:
            named = scene.index in NAMED
            assert scene.characters == (["Mara"] if named else []), scene
            assert scene.references == ([REFERENCE] if named else []), scene
            # Her storyboard is drawn with her (the local image provider draws the reference in).
            drawn = storage.path(state.storyboard_keys[scene.index - 1]).read_bytes()
            assert near(centre(drawn), MAGENTA) == named, (scene.index, centre(drawn))
        for clip in state.clips:
            assert ("CHARACTERS: Mara: a fisherwoman" in clip.prompt) == (clip.clip_id in NAMED)

    picture = hashlib.sha256(reference.read_bytes()).hexdigest()
    for model, state in (("google/veo-3.1", veo), ("kwaivgi/kling-v2.1", kling)):
        creates = creates_of(log, model)
        assert len(creates) == len(SCENES), creates
        for create in creates:
            index = next(
                n for n, scene in enumerate(SCENES, 1) if scene.description in create["prompt"]
            )
            named = index in NAMED
            assert create["schema"] and create["unknown_inputs"] == [], create
            assert ("CHARACTERS: Mara" in create["prompt"]) == named
            inputs = create["inputs"]
            if model == "google/veo-3.1":
                # The model takes reference images: the very bytes uploaded.
                sent = [digest_sent(uri) for uri in inputs.get("reference_images", [])]
                assert sent == ([picture] if named else []), (index, sent)
            else:
                assert "reference_images" not in inputs
            # Each starts from its own storyboard, the one drawn with her where she is named.
            drawn = storage.path(state.storyboard_keys[index - 1]).read_bytes()
            assert digest_sent(inputs["image" if "veo" in model else "start_image"]) == (
                hashlib.sha256(drawn).hexdigest()
            )
    assert not any("reference images" in w for w in veo.warnings), veo.warnings
    assert any(
        "takes no reference images" in w and "storyboard drawn with them" in w
        for w in kling.warnings
    ), kling.warnings
