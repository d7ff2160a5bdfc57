"""A clip's progress bar never goes back, whatever order a provider's bars come in."""

from __future__ import annotations

from activities.providers.base import rising
from storyreel.contracts import ClipStatus


def test_progress_keeps_its_highest_percent_and_the_latest_status() -> None:
    seen: list[tuple[ClipStatus, float]] = []
    forward = rising(lambda status, percent: seen.append((status, percent)))
    forward(ClipStatus.queued, 0.0)
    forward(ClipStatus.rendering, 60.0)
    forward(ClipStatus.rendering, 10.0)  # a model's second progress bar starts again
    forward(ClipStatus.rendering, 75.0)
    assert seen == [
        (ClipStatus.queued, 0.0),
        (ClipStatus.rendering, 60.0),
        (ClipStatus.rendering, 60.0),
        (ClipStatus.rendering, 75.0),
    ]
