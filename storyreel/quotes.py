"""What a run will be billed: each scene's clip at the length the model makes, at its price.

A model that makes 5 or 10 s clips bills a 4 s scene as 5 s (the clip is trimmed to the scene
afterwards, but paid in full). The API checks a request against its platform's limit and its
budget in billed seconds before anything starts, and the workflow books its budget with the
same figures, so both agree to the cent. A model outside the catalogue is quoted at its scenes'
lengths until the workflow has read the lengths it makes from its provider's published schema
(before the first clip); the run is then quoted again and held to the same rule
(:func:`refusal`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from storyreel.catalogue import Durations, ModelSpec, lookup
from storyreel.providers import PROVIDERS, Price

if TYPE_CHECKING:
    from storyreel.settings import Settings


class ClipPricing(BaseModel):
    """How one provider/model bills a clip: its lengths (None: as long as the scene) and price."""

    provider: str
    model: str
    price: Price = Field(default_factory=Price)
    durations: Durations | None = None
    audio: bool = False
    discoverable: bool = Field(
        default=False,
        description="Not in the catalogue, and its provider publishes the model's input schema: "
        "the workflow reads the lengths it makes from there before the first clip.",
    )

    def described_by(self, spec: ModelSpec, audio: bool = True) -> ClipPricing:
        """This pricing with the lengths and sound of ``spec`` (the catalogue's entry, or the
        one read from the provider's schema); the price stays (``Settings.price``'s)."""
        return self.model_copy(
            update={
                "durations": spec.durations,
                "audio": spec.audio and audio,
                "discoverable": False,
            }
        )

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
    not list is billed as long as each scene until the workflow reads its lengths, where its
    provider publishes them), price as ``Settings.price`` finds it."""
    spec = lookup(provider, model)
    registered = PROVIDERS.get(provider)
    pricing = ClipPricing(
        provider=provider,
        model=model,
        price=settings.price(provider, model),
        discoverable=spec is None and registered is not None and registered.describes_models,
    )
    return pricing if spec is None else pricing.described_by(spec, audio)


class SceneQuote(BaseModel):
    index: int
    seconds: float = Field(description="The scene's planned length.")
    billed_seconds: float = Field(description="The clip length asked of the model and billed.")
    cost: float
    own: bool = Field(default=False, description="The caller's own material: nothing billed.")


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


def quote(pricing: ClipPricing, seconds: Sequence[float], own: Collection[int] = ()) -> Quote:
    """The clips of scenes lasting ``seconds`` as ``pricing`` bills them; the scenes whose
    1-based index is in ``own`` show the caller's own material and are billed nothing."""
    scenes = [
        SceneQuote(index=index, seconds=round(length, 3), billed_seconds=0.0, cost=0.0, own=True)
        if index in own
        else SceneQuote(
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


def refusal(quoted: Quote, platform: str, limit: float | None, budget: float | None) -> str | None:
    """Why a run quoted ``quoted`` may not go ahead (None: it fits): its clips as billed are
    longer than ``platform`` allows (``limit`` seconds) or cost more than ``budget``.

    Billed seconds, not planned ones: a model that makes 5 or 10 s clips bills a 4 s scene as
    5 s. The API answers it as a 422 before the run starts; the workflow fails the run with it,
    before the first clip, when it read the model's lengths from the provider's schema. The
    message names the scenes and the lengths the model makes.
    """
    if limit is not None and quoted.billed_seconds > limit + 1e-3:
        return (
            f"too long for {platform}: it allows {limit:g} s, and "
            f"{_billing(quoted)} come to {quoted.billed_seconds:g} s; use fewer or shorter "
            "scenes, or a model whose lengths fit them"
        )
    if budget is not None and quoted.cost > budget + 1e-9:
        return (
            f"budget: the clips would cost about {quoted.cost:.2f}, over the budget of "
            f"{budget:.2f}; {_billing(quoted)} come to {quoted.billed_seconds:g} s"
        )
    return None


def _billing(quoted: Quote) -> str:
    """``the 6 scenes on kwaivgi/kling-v2.1 (it makes 5 or 10 s clips: scene 1, 4 s, is
    billed as 5 s; ...)``."""
    count = len(quoted.scenes)
    where = f"the {count} scene{'s' if count != 1 else ''} on {quoted.provider}/{quoted.model}"
    stretched = quoted.stretched()
    if not stretched:
        return where
    shown = "; ".join(
        f"scene {scene.index}, {scene.seconds:g} s, is billed as {scene.billed_seconds:g} s"
        for scene in stretched[:3]
    )
    more = f"; and {len(stretched) - 3} more" if len(stretched) > 3 else ""
    return f"{where} (it makes {quoted.lengths} clips: {shown}{more})"
