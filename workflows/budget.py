"""The run's budget: a clip starts only when its estimated cost still fits, counting what is
already spent and what the clips under way have reserved. Pure bookkeeping, no workflow calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from storyreel.quotes import ClipPricing

# Estimates are rounded to micro-units; a clip that fits exactly is not refused for a rounding.
_SLACK = 1e-9


@dataclass
class Budget:
    """Reservations of the clips under way against ``limit`` (None: no budget)."""

    limit: float | None
    cost_per_second: float
    pricing: ClipPricing | None = None
    """How the provider bills (its clip lengths and price); without it, ``cost_per_second``
    per scene second (runs started before the pricing travelled with the run)."""
    _reservations: dict[int, float] = field(default_factory=dict)

    @property
    def reserved(self) -> float:
        """What the clips under way may still cost."""
        return sum(self._reservations.values())

    def reserve(self, clip_id: int, seconds: float, spent: float) -> str | None:
        """Reserve the estimate of a clip for a scene of ``seconds``, or say why it may not
        start."""
        if self.limit is None:
            return None
        if self.pricing is not None:
            estimate = self.pricing.cost(seconds)
        else:
            estimate = round(self.cost_per_second * seconds, 6)
        committed = spent + self.reserved
        if committed + estimate <= self.limit + _SLACK:
            self._reservations[clip_id] = estimate
            return None
        return (
            f"budget: this clip would cost about {estimate:.2f}, and {committed:.2f} of the "
            f"{self.limit:.2f} budget is already spent or committed"
        )

    def release(self, clip_id: int) -> None:
        """The clip ended: its real cost (if any) is now in the spent total instead."""
        self._reservations.pop(clip_id, None)
