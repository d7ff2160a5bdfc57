"""A clip job as one model's input, for the providers whose models take one flat JSON object
(Replicate's ``input``, fal's request body).

The model's :class:`~storyreel.catalogue.ModelSpec` names its fields: the storyboard goes into
its own first-frame field (``start_image``, ``first_frame_image``, ``image_url``...), the length
is the shortest the model makes that covers the scene, written as the model wants it (``5``,
``"5"``, ``"5s"``). A required input storyreel cannot fill refuses the clip before anything is
paid for. What the clip cannot carry (a storyboard for a text-only model) is not dropped in
silence: :func:`clip_warnings` says it, and the run shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storyreel.catalogue import ModelSpec
from storyreel.errors import BadInputError


def flat_input(
    spec: ModelSpec,
    job_prompt: str,
    seed: int,
    size: tuple[int, int],
    image: str | None,
    seconds: float,
    audio: bool,
    references: Sequence[str] = (),
    draft: bool = False,
) -> dict[str, Any]:
    """The model's input for one clip: ``image`` is the storyboard as a URI (or None),
    ``references`` the scene's characters' images as URIs; a ``draft`` at the model's lowest
    resolution (the catalogue lists them lowest first)."""
    payload: dict[str, Any] = dict(spec.fixed_inputs)
    payload[spec.prompt_field] = job_prompt
    if image is not None and spec.first_frame_field:
        payload[spec.first_frame_field] = image
    if references and spec.reference_images_field:
        payload[spec.reference_images_field] = list(references)
    if spec.durations.field:
        payload[spec.durations.field] = spec.durations.spell(spec.durations.covering(seconds))
    ratio = spec.aspect_ratio(*size)
    if spec.aspect_ratio_field and ratio is not None:
        payload[spec.aspect_ratio_field] = ratio
    if draft and spec.resolution_field and spec.resolutions:
        payload[spec.resolution_field] = spec.resolutions[0]
    if spec.seed_field:
        payload[spec.seed_field] = seed
    if spec.audio_field:
        payload[spec.audio_field] = audio
    missing = [field for field in spec.required if field not in payload]
    if missing:
        raise BadInputError(
            f"{spec.key} requires {', '.join(missing)}, which storyreel cannot fill; "
            "choose another model (or give the missing input through the catalogue)"
        )
    return payload


def clip_warnings(
    spec: ModelSpec, clip_id: int, has_image: bool, has_references: bool = False
) -> list[str]:
    """What clip ``clip_id`` will lack of what was asked, in the run's words."""
    lacks = []
    if has_image and not spec.first_frame_field:
        lacks.append(
            f"clip {clip_id}: {spec.key} takes no first frame, so its storyboard image was "
            "not sent (the clip is made from the prompt alone)"
        )
    if has_references and not spec.reference_images_field:
        lacks.append(
            f"clip {clip_id}: {spec.key} takes no reference images; its characters reach it "
            + (
                "through the storyboard drawn with them"
                if spec.first_frame_field
                else "only as the prompt describes them"
            )
        )
    return lacks
