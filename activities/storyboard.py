"""Storyboard stage: one image per beat, used as its clip's first frame and reference."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path

from temporalio import activity

from activities.cache import content_digest
from activities.providers.base import ImageJob, ImageProvider
from storyreel.contracts import PLATFORMS, StoryboardInput, StoryboardResult
from storyreel.errors import BadInputError
from storyreel.keys import image_cache_key, storyboard_key
from storyreel.storage import Storage


class StoryboardActivities:
    def __init__(
        self, storage: Storage, providers: Mapping[str, ImageProvider], work_root: Path
    ) -> None:
        self.storage = storage
        self.providers = providers
        self.work_root = work_root

    @activity.defn(name="render_storyboard")
    async def render_storyboard(self, request: StoryboardInput) -> StoryboardResult:
        """Render one beat's image and store it."""
        provider = self.providers.get(request.provider)
        if provider is None:
            raise BadInputError(f"unknown image provider {request.provider!r}")
        key = storyboard_key(request.generation_id, request.scene.index)
        spec = PLATFORMS[request.platform]
        scene = request.scene
        prompt = f"{scene.description}\n{scene.cast}" if scene.cast else scene.description
        # A scene's characters' images are drawn in: they change the picture (the keys of
        # scenes without them are as before).
        refs = {"references": scene.references} if scene.references else {}
        cache_key = image_cache_key(
            content_digest(
                kind="storyboard",
                provider=request.provider,
                model=request.model,
                prompt=prompt,
                index=request.scene.index,
                seed=request.seed,
                size=[spec.width, spec.height],
                **refs,
            )
        )
        self.work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="storyboard-") as work:
            if request.use_cache and await asyncio.to_thread(self.storage.exists, cache_key):
                cached = Path(work) / "cached.png"
                await asyncio.to_thread(self.storage.get_file, cache_key, cached)
                await asyncio.to_thread(self.storage.put_file, key, cached)
                return StoryboardResult(index=request.scene.index, key=key, cached=True)
            references = []
            for number, reference in enumerate(scene.references):
                local = Path(work) / f"reference-{number}"
                await asyncio.to_thread(self.storage.get_file, reference, local)
                references.append(local)
            image = await provider.render(
                ImageJob(
                    generation_id=request.generation_id,
                    index=request.scene.index,
                    prompt=prompt,
                    references=tuple(references),
                    platform=spec,
                    model=request.model,
                    seed=request.seed,
                    workdir=Path(work),
                )
            )
            await asyncio.to_thread(self.storage.put_file, key, image)
            if request.use_cache:
                await asyncio.to_thread(self.storage.put_file, cache_key, image)
        lacks = []
        if scene.references and not provider.takes_references:
            lacks.append(
                f"storyboard {scene.index}: the image provider {request.provider!r} takes no "
                f"reference images, so {', '.join(scene.characters)} is drawn from the "
                "description alone"
            )
        return StoryboardResult(index=request.scene.index, key=key, warnings=lacks)
