"""What the Web UI shows of a run, without a server."""

from __future__ import annotations

from storyreel.contracts import ClipState, ClipStatus, GenerationState, GenerationStatus, Stage
from workflows.summary import clip_summary, first_words, run_details


def test_first_words_cut_long_text_with_an_ellipsis() -> None:
    assert first_words("a b c", 3) == "a b c"
    assert first_words("a b c d", 3) == "a b c …"


def test_clip_summary_numbers_the_clip() -> None:
    text = "Scene 3: a lighthouse keeper counts waves at night in the rain"
    assert clip_summary(3, 5, text) == "clip 3/5: Scene 3: a lighthouse keeper counts waves at …"


def test_run_details_show_status_stage_and_each_clip_with_its_error() -> None:
    state = GenerationState(
        generation_id="g",
        title="Gulls",
        status=GenerationStatus.generating,
        stage=Stage.clips,
        clips=[
            ClipState(clip_id=1, status=ClipStatus.complete),
            ClipState(clip_id=2, status=ClipStatus.failed, error="refused"),
        ],
    )
    assert run_details(state) == (
        "**Gulls**: generating (clips)\n- clip 1: complete\n- clip 2: failed: refused"
    )
    assert run_details(GenerationState(generation_id="g", title="New")) == "**New**: queued"
