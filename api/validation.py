"""Checks a request must pass before a workflow is started for it."""

from __future__ import annotations

import re

from pydantic import ValidationError

from storyreel.assets import ASSETS_PREFIX, AssetKind, is_asset_id
from storyreel.contracts import PLATFORMS, GenerationRequest, PlanInput
from storyreel.db import Records
from storyreel.errors import BadInputError
from storyreel.fonts import INSTALL_HINT, missing_glyphs
from storyreel.notify import TargetRefusedError, checked_target
from storyreel.planning import clip_lengths, plan_scenes
from storyreel.quotes import ClipPricing, Quote, pricing_for, quote, refusal
from storyreel.settings import Settings
from storyreel.storage import Storage
from storyreel.voices import installed_languages


def check_request(
    request: GenerationRequest, settings: Settings, storage: Storage, where: str = ""
) -> Quote:
    """Everything a request must pass before its workflow starts, beyond its schema: known
    providers, a length the platform allows, a music bed that exists; its quote when it does.
    ``where`` prefixes the message (``items[3].``). Blocking (planning, an S3 HEAD): call it
    through a thread."""
    named = [("provider", request.provider), ("image_provider", request.image_provider)]
    named += [
        (f"fallback[{index}].provider", choice.provider)
        for index, choice in enumerate(request.fallback)
    ]
    for field, provider in named:
        if provider not in settings.clip_providers:
            raise BadInputError(
                f"{where}{field}: unknown provider {provider!r}; "
                f"use one of {', '.join(settings.clip_providers)}"
            )
    try:
        check_webhook(request.webhook, settings)
        quoted = check_billing(request, settings)
        check_music(request, storage)
        check_captions(request, settings)
    except BadInputError as error:
        raise BadInputError(f"{where}{error}") from None
    return quoted


def check_webhook(url: str | None, settings: Settings) -> None:
    """:class:`~storyreel.errors.BadInputError` (a 422 saying why) for a ``webhook`` this
    server would not call: not https, or a host that resolves to a loopback, private,
    link-local, multicast or cloud metadata address (unless ``webhook_allow_private``). The
    sender checks again at every attempt. Blocking (a DNS lookup): call it through a thread."""
    if url is None:
        return
    try:
        checked_target(url, settings.webhook_allow_private)
    except TargetRefusedError as error:
        raise BadInputError(f"webhook: {error}") from None


def parse_item(raw: object, where: str) -> GenerationRequest:
    """One item of a batch as a request, or a :class:`BadInputError` naming the item and its
    field (``items[3].scenes: Field required``)."""
    try:
        return GenerationRequest.model_validate(raw)
    except ValidationError as error:
        problems = []
        for problem in error.errors()[:3]:
            path = where
            for part in problem["loc"]:
                path += f"[{part}]" if isinstance(part, int) else f".{part}"
            problems.append(f"{path}: {problem['msg']}")
        raise BadInputError("; ".join(problems)) from None


def planned_lengths(request: GenerationRequest, pricing: ClipPricing | None = None) -> list[float]:
    """Each scene's planned length: the same pure planner the plan activity runs, so the API
    and the workflow agree (explicit scenes count their durations, a script the planner's
    estimate: 2.5 words per second, each scene 2-10 s, beats capped by ``duration``, shaped
    toward the lengths ``pricing`` says the model makes)."""
    plan = plan_scenes(
        PlanInput(
            generation_id="validation",
            script=request.script,
            scenes=request.scenes,
            duration=request.duration,
            platform=request.platform,
            clip_lengths=clip_lengths(pricing),
        )
    )
    return [scene.duration for scene in plan.scenes]


def check_billing(request: GenerationRequest, settings: Settings) -> Quote:
    """The run's quote, or :class:`~storyreel.errors.BadInputError` (a 422) when the clips the
    provider bills would be longer than the platform allows or cost more than the budget
    (:func:`storyreel.quotes.refusal`, the rule the workflow holds a model to once it has read
    the lengths of one outside the catalogue). Checked before any clip is paid for."""
    pricing = pricing_for(
        settings, request.provider, request.model, audio=request.clip_audio != "drop"
    )
    own = {index for index, scene in enumerate(request.scenes or [], start=1) if scene.asset}
    quoted = quote(pricing, planned_lengths(request, pricing), own)
    limit = PLATFORMS[request.platform].max_duration
    problem = refusal(quoted, request.platform.value, limit, request.budget)
    if problem is not None:
        raise BadInputError(problem)
    return quoted


def check_captions(request: GenerationRequest, settings: Settings) -> None:
    """:class:`~storyreel.errors.BadInputError` when captions are on and some script of the
    text they would draw (the script, or the scenes' captions and descriptions) has no font
    here: neither the configured one nor any installed (:mod:`storyreel.fonts`). The API
    and the workers run the same image, so its fonts are theirs. Blocking (``fc-list``)."""
    if not request.captions:
        return
    # Each caption is drawn in one font: a script's sentences (a scene holds whole ones) and
    # each scene's text are checked apart, so a mixed-language script still finds its fonts.
    texts = re.split(r"(?<=[.!?。！？])\s*|\n+", request.script or "")
    texts += [scene.caption or scene.description for scene in request.scenes or []]
    missing = sorted({name for text in texts for name in missing_glyphs(text, settings.font_file)})
    if missing:
        raise BadInputError(
            f"captions: no font here draws {', '.join(missing)}: {INSTALL_HINT}, "
            "or turn captions off"
        )


def check_music(request: GenerationRequest, storage: Storage) -> None:
    """:class:`~storyreel.errors.BadInputError` when the request names a music bed that is not
    in storage (the assembly would fail on it after every clip was paid for).

    Blocking (an S3 HEAD): call it through ``asyncio.to_thread``.
    """
    if request.music is not None and not storage.exists(request.music):
        raise BadInputError(
            f"music: no track at {request.music!r} in storage; upload it first, "
            "or leave 'music' out"
        )


def check_language(request: GenerationRequest) -> None:
    """:class:`~storyreel.errors.BadInputError` (a 422 listing what is installed) when the
    request's ``language`` is not a voice of the installed espeak-ng. Blocking (runs
    ``espeak-ng --voices`` once): call it through ``asyncio.to_thread``."""
    if request.language is None:
        return
    installed = installed_languages()
    if installed is None:
        raise BadInputError(
            "language: espeak-ng is not installed here, so no narration language can be "
            "chosen; leave 'language' out (or install espeak-ng)"
        )
    if request.language.lower() not in installed:
        raise BadInputError(
            f"language: {request.language!r} is not an installed espeak-ng voice; "
            f"installed: {', '.join(sorted(installed))}"
        )


AUDIO = frozenset({AssetKind.audio})
PICTURES = frozenset({AssetKind.video, AssetKind.image})
IMAGES = frozenset({AssetKind.image})


def resolve_assets(
    request: GenerationRequest, records: Records, user_id: int, where: str = ""
) -> GenerationRequest:
    """``request`` with each asset id it names (``music``, a scene's ``asset``) replaced by
    that asset's storage key, so the workflow only sees storage keys; ``BadInputError`` for an
    id that is not the caller's asset, an asset of the wrong kind, or a storage key given
    where an asset id belongs (a key could name someone else's upload). Blocking (reads)."""
    changes: dict[str, object] = {}
    if request.music is not None and request.music.startswith(ASSETS_PREFIX):
        raise BadInputError(f"{where}music: give the asset's id (ast-...), not its storage key")
    if request.music is not None and is_asset_id(request.music):
        changes["music"] = _owned(records, request.music, user_id, f"{where}music", AUDIO)
    if request.voice_asset is not None:
        field = f"{where}voice_asset"
        changes["voice_asset"] = _owned(
            records, _id(request.voice_asset, field), user_id, field, AUDIO
        )
    if any(scene.asset or scene.voice_asset for scene in request.scenes or []):
        scenes = []
        for index, scene in enumerate(request.scenes or []):
            update = {}
            for name, kinds in (("asset", PICTURES), ("voice_asset", AUDIO)):
                value = getattr(scene, name)
                if value is not None:
                    field = f"{where}scenes[{index}].{name}"
                    update[name] = _owned(records, _id(value, field), user_id, field, kinds)
            scenes.append(scene.model_copy(update=update) if update else scene)
        changes["scenes"] = scenes
    if any(character.assets for character in request.characters):
        characters = []
        for index, character in enumerate(request.characters):
            keys = []
            for number, asset in enumerate(character.assets):
                field = f"{where}characters[{index}].assets[{number}]"
                keys.append(_owned(records, _id(asset, field), user_id, field, IMAGES))
            characters.append(character.model_copy(update={"assets": keys}))
        changes["characters"] = characters
    return request.model_copy(update=changes) if changes else request


def _id(value: str, field: str) -> str:
    """``value`` when it is an asset id; a storage key (it could be anyone's) is refused."""
    if not is_asset_id(value):
        raise BadInputError(f"{field}: give the asset's id (ast-...) from /v1/assets")
    return value


def _owned(
    records: Records, asset_id: str, user_id: int, field: str, kinds: frozenset[AssetKind]
) -> str:
    row = records.assets.get(asset_id, user_id)
    if row is None:
        raise BadInputError(f"{field}: no asset {asset_id!r} of yours (upload it to /v1/assets)")
    if row.kind not in kinds:
        wanted = " or ".join(sorted(kinds))
        raise BadInputError(f"{field}: asset {asset_id} is {row.kind}, not {wanted}")
    return row.key
