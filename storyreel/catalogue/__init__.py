"""The model catalogue: what each popular video model takes and makes, as data.

A provider speaks a protocol (Replicate predictions, fal's queue, Runware tasks, Gemini
operations); a *model* behind it names its inputs its own way and makes only some clip lengths.
Each entry of ``data/<provider>.json`` says, for one model: the input field of the prompt, the
first frame, the last frame and reference images; the clip lengths it makes and how the
length is spelled (``5``, ``"5"``, ``"5s"``); aspect ratios and resolutions; seed and negative
prompt; whether it makes sound; its price; and the public page it was read from, and when.

A model outside the catalogue is described from the schema its provider publishes
(:mod:`storyreel.catalogue.schema`), into the same :class:`ModelSpec`.
"""

from __future__ import annotations

import json
import math
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storyreel.providers import PROVIDERS, Price

DurationKind = Literal["int", "float", "string", "seconds_suffix"]
"""How a clip length is written in the model's input: ``5``, ``5.0``, ``"5"`` or ``"5s"``."""

# A scene within this of a clip length is covered by it (floating point, frame rounding).
_EPSILON = 1e-3


class Durations(BaseModel):
    """The clip lengths a model makes: a set (``values``) or a range (``minimum``..``maximum``
    in ``step``), or a fixed length (``field`` None: the model takes no length input and makes
    ``default`` seconds)."""

    model_config = ConfigDict(extra="forbid")

    field: str | None = "duration"
    kind: DurationKind = "int"
    values: list[float] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float = 1.0
    default: float | None = Field(
        default=None, description="Seconds made when no length is sent (or none can be)."
    )

    @model_validator(mode="after")
    def _some_length(self) -> Durations:
        if self.values is None and (self.minimum is None or self.maximum is None):
            if self.default is None:
                raise ValueError("give values, a minimum and maximum, or a default length")
        return self

    def lengths(self) -> list[float]:
        """Every length the model makes, shortest first."""
        if self.field is None or (self.values is None and self.minimum is None):
            assert self.default is not None
            return [self.default]
        if self.values is not None:
            return sorted(self.values)
        assert self.minimum is not None and self.maximum is not None
        count = int(round((self.maximum - self.minimum) / self.step)) + 1
        return [round(self.minimum + i * self.step, 3) for i in range(count)]

    def covering(self, seconds: float) -> float:
        """The shortest length that covers ``seconds``, else the longest there is."""
        lengths = self.lengths()
        return next((length for length in lengths if length + _EPSILON >= seconds), lengths[-1])

    def spell(self, seconds: float) -> object:
        """``seconds`` as the model's input wants it written."""
        if self.kind == "float":
            return float(seconds)
        whole = int(seconds) if float(seconds).is_integer() else seconds
        if self.kind == "string":
            return str(whole)
        if self.kind == "seconds_suffix":
            return f"{whole}s"
        return int(math.ceil(seconds - _EPSILON))

    def describe(self) -> str:
        """Readable, for messages: ``5 or 10 s``, ``2-12 s``, ``5 s (fixed)``."""
        if self.field is None or (self.values is None and self.minimum is None):
            return f"{_num(self.default or 0)} s (fixed)"
        if self.values is not None:
            lengths = [_num(v) for v in sorted(self.values)]
            if len(lengths) == 1:
                return f"{lengths[0]} s"
            return f"{', '.join(lengths[:-1])} or {lengths[-1]} s"
        return f"{_num(self.minimum or 0)}-{_num(self.maximum or 0)} s"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class ModelPrice(Price):
    """What one clip of the model costs, and where the figure comes from."""

    source: str | None = None


class ModelSpec(BaseModel):
    """One model as a provider serves it: its input fields and what it makes."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    title: str | None = None
    prompt_field: str = "prompt"
    first_frame_field: str | None = Field(
        default=None, description="Input taking the first frame (the storyboard image)."
    )
    first_frame_required: bool = False
    last_frame_field: str | None = None
    reference_images_field: str | None = Field(
        default=None, description="Input taking a list of reference (subject) images."
    )
    durations: Durations
    aspect_ratio_field: str | None = "aspect_ratio"
    aspect_ratios: list[str] = Field(default_factory=list)
    resolution_field: str | None = None
    resolutions: list[str] = Field(default_factory=list)
    sizes: list[str] = Field(
        default_factory=list, description="Frame sizes 'WxH' (providers that take width/height)."
    )
    seed_field: str | None = None
    negative_prompt_field: str | None = None
    audio: bool = Field(default=False, description="Whether the clips have the model's own sound.")
    audio_field: str | None = Field(
        default=None, description="Boolean input switching the model's sound on or off."
    )
    fixed_inputs: dict[str, Any] = Field(
        default_factory=dict, description="Inputs always sent as given (e.g. a mode)."
    )
    required: list[str] = Field(
        default_factory=list,
        description="Required inputs (from a published schema); ones storyreel cannot fill "
        "refuse the model before anything is paid for.",
    )
    draft_model: str | None = Field(
        default=None,
        description="The cheaper sibling drafts are made with (a fast/turbo variant taking the "
        "same inputs); None: drafts use the model itself at its lowest resolution.",
    )
    price: ModelPrice | None = None
    source: str | None = Field(
        default=None, description="The public page this entry was read from."
    )
    read_on: date | None = None
    discovered: bool = Field(
        default=False, description="Described from the provider's published schema, not here."
    )

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    def aspect_ratio(self, width: int, height: int) -> str | None:
        """The model's aspect ratio closest to ``width``:``height`` (None: it takes none)."""
        if not self.aspect_ratios:
            return None
        wanted = width / height
        return min(self.aspect_ratios, key=lambda ratio: abs(_ratio(ratio) - wanted))

    def size(self, width: int, height: int) -> tuple[int, int] | None:
        """The model's frame size closest in shape (then in area) to ``width`` x ``height``."""
        if not self.sizes:
            return None
        wanted = width / height

        def distance(size: str) -> tuple[float, float]:
            w, h = (int(part) for part in size.lower().split("x"))
            return (abs(w / h - wanted), abs(w * h - width * height))

        w, h = (int(part) for part in min(self.sizes, key=distance).lower().split("x"))
        return w, h


def _ratio(text: str) -> float:
    left, _, right = text.partition(":")
    try:
        return float(left) / float(right)
    except (ValueError, ZeroDivisionError):
        return 1.0


class CatalogueFile(BaseModel):
    """One provider family's file: where its entries were read, and the entries."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    notes: str = ""
    models: list[ModelSpec]


@cache
def catalogue() -> dict[str, ModelSpec]:
    """Every catalogued model by ``provider/model``."""
    entries: dict[str, ModelSpec] = {}
    folder = resources.files("storyreel.catalogue") / "data"
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not item.name.endswith(".json"):
            continue
        raw: dict[str, Any] = json.loads(item.read_text(encoding="utf-8"))
        parsed = CatalogueFile.model_validate(raw)
        for spec in parsed.models:
            if spec.provider != parsed.provider:
                raise ValueError(f"{item.name}: {spec.model} names provider {spec.provider}")
            entries[spec.key] = spec
    return entries


def lookup(provider: str, model: str) -> ModelSpec | None:
    """The catalogue's entry for ``model`` on ``provider``; a provider speaking another's
    protocol (the simulator: Replicate's, as the registry says) serves that one's models."""
    found = catalogue().get(f"{provider}/{model}")
    registered = PROVIDERS.get(provider)
    if found is None and registered is not None and registered.protocol not in ("", provider):
        served = catalogue().get(f"{registered.protocol}/{model}")
        if served is not None:
            return served.model_copy(update={"provider": provider})
    return found
