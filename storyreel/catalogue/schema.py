"""A model the catalogue does not list, described from the input schema its provider publishes.

Replicate publishes each model's OpenAPI schema (``GET /v1/models/{owner}/{name}`` →
``latest_version.openapi_schema``; the input is ``components.schemas.Input``, enums written as
``allOf: [{"$ref": ...}]``); fal publishes one OpenAPI document per endpoint (the input is the
schema of the POST body). Fields are matched by name and format: the prompt; an image
``format: uri`` field for the first frame (``start``/``first`` names first, never an
``end``/``last`` one); the length (enum or range, and its type); aspect ratio; seed; negative
prompt; a sound switch.
"""

from __future__ import annotations

from typing import Any

from storyreel.catalogue import DurationKind, Durations, ModelSpec
from storyreel.errors import BadInputError

_DURATION_NAMES = ("duration", "duration_seconds", "seconds", "video_length", "length")
_FIRST_HINTS = ("start", "first")
_LAST_HINTS = ("end", "last", "tail")
_REFERENCE_HINTS = ("reference", "subject", "ref_")
_AUDIO_NAMES = ("generate_audio", "audio", "with_audio", "enable_audio")
# What a model without any length input makes, when its schema does not say (5 s is what
# the fixed-length models of the catalogue make: Wan, Seedance lite's default).
_DEFAULT_LENGTH = 5.0


def _resolve(node: Any, components: dict[str, Any]) -> dict[str, Any]:
    """A property with its ``$ref`` / ``allOf`` references folded in."""
    if not isinstance(node, dict):
        return {}
    merged: dict[str, Any] = {}
    if isinstance(ref := node.get("$ref"), str):
        merged.update(_resolve(components.get(ref.rsplit("/", 1)[-1], {}), components))
    for part in node.get("allOf", []) + node.get("anyOf", []):
        resolved = _resolve(part, components)
        if resolved.get("type") == "null":
            continue
        merged.update({k: v for k, v in resolved.items() if k not in merged})
    merged.update({k: v for k, v in node.items() if k not in ("$ref", "allOf", "anyOf")})
    return merged


def _input_schema(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The input object schema and the components it refers to, from a Replicate model (or
    version) answer or a fal endpoint's OpenAPI document."""
    openapi = document
    if "latest_version" in document:
        openapi = (document.get("latest_version") or {}).get("openapi_schema") or {}
    elif "openapi_schema" in document:
        openapi = document.get("openapi_schema") or {}
    components = (openapi.get("components") or {}).get("schemas") or {}
    if "Input" in components:
        return _resolve(components["Input"], components), components
    for item in (openapi.get("paths") or {}).values():
        body = ((item.get("post") or {}).get("requestBody") or {}).get("content") or {}
        schema = (body.get("application/json") or {}).get("schema")
        if schema:
            return _resolve(schema, components), components
    raise BadInputError("the published schema has no input object")


def _is_frame(name: str, prop: dict[str, Any]) -> bool:
    """A single image input: a string named for an image or frame (a URI, or a data URI)."""
    named = "image" in name or "frame" in name
    return prop.get("type") == "string" and named and prop.get("format") in (None, "uri")


def _uri_field(props: dict[str, dict[str, Any]], hints: tuple[str, ...]) -> str | None:
    """The image field matching ``hints`` (last frame), or the first frame's: a start/first
    one, else any image that is neither a last frame nor a reference."""
    images = [
        name
        for name, prop in props.items()
        if _is_frame(name, prop) and not any(hint in name for hint in _REFERENCE_HINTS)
    ]
    if hints is _LAST_HINTS:
        return next((n for n in images if any(h in n for h in _LAST_HINTS)), None)
    firsts = [n for n in images if not any(h in n for h in _LAST_HINTS)]
    return next((n for n in firsts if any(h in n for h in hints)), firsts[0] if firsts else None)


def _durations(props: dict[str, dict[str, Any]]) -> Durations:
    name = next((n for n in _DURATION_NAMES if n in props), None)
    if name is None:
        return Durations(field=None, default=_DEFAULT_LENGTH)
    prop = props[name]
    enum = prop.get("enum")
    kind: DurationKind = "float" if prop.get("type") == "number" else "int"
    if enum:
        if all(isinstance(value, str) for value in enum):
            kind = "seconds_suffix" if all(v.endswith("s") for v in enum) else "string"
            values = [float(str(v).rstrip("s")) for v in enum]
        else:
            values = [float(v) for v in enum]
        return Durations(field=name, kind=kind, values=values)
    minimum, maximum = prop.get("minimum"), prop.get("maximum")
    if minimum is not None and maximum is not None:
        step = 1.0 if kind == "int" else 0.5
        return Durations(
            field=name, kind=kind, minimum=float(minimum), maximum=float(maximum), step=step
        )
    default = prop.get("default")
    if isinstance(default, int | float):
        return Durations(field=name, kind=kind, values=[float(default)])
    return Durations(field=name, kind=kind, minimum=1.0, maximum=10.0)


def describe(provider: str, model: str, document: dict[str, Any], source: str) -> ModelSpec:
    """``model``'s :class:`ModelSpec` from its published schema ``document``."""
    schema, components = _input_schema(document)
    props = {
        name: _resolve(prop, components) for name, prop in (schema.get("properties") or {}).items()
    }
    if not props:
        raise BadInputError(f"{provider}/{model}: the published schema lists no inputs")
    prompt = "prompt" if "prompt" in props else None
    prompt = prompt or next((n for n in props if "prompt" in n and "negative" not in n), None)
    if prompt is None:
        raise BadInputError(f"{provider}/{model}: its published schema has no prompt input")
    first = _uri_field(props, _FIRST_HINTS)
    ratio = next((n for n in ("aspect_ratio", "aspectRatio") if n in props), None)
    audio = next((n for n in _AUDIO_NAMES if props.get(n, {}).get("type") == "boolean"), None)
    required = [str(name) for name in schema.get("required", [])]
    return ModelSpec(
        provider=provider,
        model=model,
        prompt_field=prompt,
        first_frame_field=first,
        first_frame_required=first is not None and first in required,
        last_frame_field=_uri_field(props, _LAST_HINTS),
        durations=_durations(props),
        aspect_ratio_field=ratio,
        aspect_ratios=[str(v) for v in props.get(ratio, {}).get("enum", [])] if ratio else [],
        seed_field="seed" if "seed" in props else None,
        negative_prompt_field="negative_prompt" if "negative_prompt" in props else None,
        audio=audio is not None,
        audio_field=audio,
        required=required,
        source=source,
        discovered=True,
    )
