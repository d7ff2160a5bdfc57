"""What a run will be billed: each scene's clip at the length the model makes, at its price.

A model that makes 5 or 10 s clips bills a 4 s scene as 5 s (the clip is trimmed to the scene
afterwards, but paid in full). The API checks a request against its platform's limit and its
budget in billed seconds before anything starts, and the workflow books its budget with the
same figures, so both agree to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from storyreel.catalogue import Durations, lookup
from storyreel.providers import Price

if TYPE_CHECKING:
    from storyreel.settings import Settings


class ClipPricing(BaseModel):
    """How one provider/model bills a clip: its lengths (None: as long as the scene) and price."""

    provider: str
    model: str
    price: Price = Field(default_factory=Price)
    durations: Durations | None = None
    audio: bool = False

    def billed_seconds(self, scene_seconds: float) -> float:
        if self.durations is None:
            return round(scene_seconds, 3)
        return self.durations.covering(scene_seconds)

    def cost(self, scene_seconds: float) -> float:
        return self.price.cost(self.billed_seconds(scene_seconds), audio=self.audio)

    def lengths(self) -> str:
        """What the model makes, for messages."""
        return self.durations.describe() if self.durations is not None else "any length"


def pricing_for(settings: Settings, provider: str, model: str, audio: bool = True) -> ClipPricing:
    """The billing of ``model`` on ``provider``: lengths from the catalogue (a model it does
    not list is billed as long as each scene), price as ``Settings.price`` finds it."""
    spec = lookup(provider, model)
    return ClipPricing(
        provider=provider,
        model=model,
        price=settings.price(provider, model),
        durations=spec.durations if spec is not None else None,
        audio=bool(spec is not None and spec.audio and audio),
    )


class SceneQuote(BaseModel):
    index: int
    seconds: float = Field(description="The scene's planned length.")
    billed_seconds: float = Field(description="The clip length asked of the model and billed.")
    cost: float


class Quote(BaseModel):
    """A run's clips as the provider will bill them, before any is made."""

    provider: str
    model: str
    lengths: str = Field(description="The clip lengths the model makes ('5 or 10 s').")
    scenes: list[SceneQuote]
    billed_seconds: float
    cost: float

    def stretched(self) -> list[SceneQuote]:
        """The scenes billed longer than they are (for messages)."""
        return [scene for scene in self.scenes if scene.billed_seconds > scene.seconds + 1e-3]


def quote(pricing: ClipPricing, seconds: Sequence[float]) -> Quote:
    scenes = [
        SceneQuote(
            index=index,
            seconds=round(length, 3),
            billed_seconds=pricing.billed_seconds(length),
            cost=pricing.cost(length),
        )
        for index, length in enumerate(seconds, start=1)
    ]
    return Quote(
        provider=pricing.provider,
        model=pricing.model,
        lengths=pricing.lengths(),
        scenes=scenes,
        billed_seconds=round(sum(scene.billed_seconds for scene in scenes), 3),
        cost=round(sum(scene.cost for scene in scenes), 6),
    )
