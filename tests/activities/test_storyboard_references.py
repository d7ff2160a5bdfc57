"""A storyboard for a scene with characters: drawn with their reference where the image
provider takes one, and a warning naming them where it does not (nothing dropped in silence)."""

from __future__ import annotations

from pathlib import Path

from activities.providers.base import ImageJob
from activities.storyboard import StoryboardActivities
from storyreel.contracts import PlannedScene, Platform, StoryboardInput
from storyreel.storage import LocalStorage


class NoReferences:
    """An image provider that only reads the prompt (as a hosted text-to-image model)."""

    takes_references = False

    def __init__(self) -> None:
        self.jobs: list[ImageJob] = []
        self.seen: list[bytes] = []

    async def render(self, job: ImageJob) -> Path:
        self.jobs.append(job)
        self.seen += [path.read_bytes() for path in job.references]
        out = job.workdir / "image.png"
        out.write_bytes(b"\x89PNG not really")
        return out


def scene(references: list[str]) -> PlannedScene:
    return PlannedScene(
        index=1, description="Mara on the pier", duration=3, start=0, characters=["Mara"],
        cast="Mara: a magenta scarf", references=references,
    )  # fmt: skip


async def test_a_provider_without_references_gets_the_description_and_the_run_a_warning(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "media")
    reference = tmp_path / "mara.png"
    reference.write_bytes(b"the reference")
    storage.put_file("assets/1/ast-0123456789abcdef01234567", reference)
    provider = NoReferences()
    activities = StoryboardActivities(storage, {"hosted": provider}, tmp_path / "work")
    request = StoryboardInput(
        generation_id="gen-refs", scene=scene(["assets/1/ast-0123456789abcdef01234567"]),
        scene_count=1, platform=Platform.youtube, provider="hosted", use_cache=False,
    )  # fmt: skip
    result = await activities.render_storyboard(request)
    [job] = provider.jobs
    assert "Mara: a magenta scarf" in job.prompt
    assert provider.seen == [b"the reference"]
    assert result.warnings == [
        "storyboard 1: the image provider 'hosted' takes no reference images, so Mara is "
        "drawn from the description alone"
    ]
    # Without characters' images, nothing to say.
    plain = request.model_copy(update={"scene": scene([])})
    assert (await activities.render_storyboard(plain)).warnings == []
