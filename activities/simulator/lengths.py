"""The clip lengths a simulated model makes, and the check of a requested length against them.

Runware's and Veo's simulators share it: a model in the catalogue makes what its entry lists,
one outside it what the simulator knows of its family.
"""

from __future__ import annotations

from collections.abc import Sequence

from storyreel.catalogue import ModelSpec


def made_lengths(spec: ModelSpec | None, family: Sequence[float] | None) -> list[float] | None:
    """The lengths a model makes: its catalogue entry's (``spec``; unknown when the entry takes
    no length), else its family's, else unknown (None: any length goes)."""
    if spec is not None:
        return spec.durations.lengths() if spec.durations.field is not None else None
    return [float(length) for length in family] if family else None


def lengths_instead(duration: float, made: list[float] | None) -> str | None:
    """The lengths to ask for instead, spelled for the error that refuses ``duration``; None
    when the model makes it (or what it makes is unknown)."""
    if made is None or any(abs(duration - length) < 1e-3 for length in made):
        return None
    return ", ".join(f"{length:g}" for length in made)
