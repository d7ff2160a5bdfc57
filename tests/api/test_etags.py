"""What wakes a waiting read: the tag changes with a status, never with a progress percent."""

from __future__ import annotations

import pytest

from api.service import fingerprint, same_tag
from storyreel.contracts import ClipState, ClipStatus, GenerationState, GenerationStatus, Stage

pytestmark = pytest.mark.fast


def state(*clips: ClipStatus, progress: float = 0.0) -> GenerationState:
    return GenerationState(
        generation_id="gen-x",
        title="x",
        status=GenerationStatus.generating,
        stage=Stage.clips,
        clips=[
            ClipState(clip_id=n, status=status, progress=progress)
            for n, status in enumerate(clips, 1)
        ],
    )


def test_a_progress_percent_keeps_the_tag_and_a_status_changes_it() -> None:
    rendering = state(ClipStatus.rendering, ClipStatus.queued, progress=10)
    further = state(ClipStatus.rendering, ClipStatus.queued, progress=80)
    assert fingerprint(rendering) == fingerprint(further)
    assert fingerprint(rendering) != fingerprint(state(ClipStatus.complete, ClipStatus.queued))
    moved = rendering.model_copy(update={"status": GenerationStatus.assembling})
    assert fingerprint(moved) != fingerprint(rendering)
    staged = rendering.model_copy(update={"stage": Stage.assemble})
    assert fingerprint(staged) != fingerprint(rendering)
    assert fingerprint(rendering).startswith('W/"') and fingerprint(rendering).endswith('"')


def test_a_tag_is_recognised_however_the_caller_quotes_it() -> None:
    run = state(ClipStatus.processing)
    tag = fingerprint(run)
    bare = tag.removeprefix("W/").strip('"')
    for given in (tag, bare, f'"{bare}"', f'"other", {tag}'):
        assert same_tag(given, run), given
    for other in (None, "", '"other"', fingerprint(state(ClipStatus.failed))):
        assert not same_tag(other, run), other
