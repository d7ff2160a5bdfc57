"""What a person reads about a run in the Temporal Web UI: the run's current details (markdown)
and the one-line summaries of its clips. Pure functions of the state: no workflow calls."""

from __future__ import annotations

from storyreel.contracts import GenerationState

SUMMARY_WORDS = 8


def first_words(text: str, count: int = SUMMARY_WORDS) -> str:
    words = text.split()
    return " ".join(words[:count]) + (" …" if len(words) > count else "")


def clip_prompt(context: str, description: str, cast: str | None = None) -> str:
    """The clip's prompt: the consistency context, when there is one, above the scene, and
    the characters it names with how they look."""
    scene = f"SCENE: {description}" + (f"\nCHARACTERS: {cast}" if cast else "")
    return f"{context}\n\n{scene}" if context else scene


def clip_summary(index: int, count: int, description: str) -> str:
    """A clip's line in the timeline (its activities' summaries start with it)."""
    return f"clip {index}/{count}: {first_words(description)}"


def run_details(state: GenerationState) -> str:
    """The run's current details: title, status and stage, then one line per clip."""
    lines = [f"**{state.title}**: {state.status.value}"]
    if state.stage is not None:
        lines[0] += f" ({state.stage.value})"
    for clip in state.clips:
        line = f"- clip {clip.clip_id}: {clip.status.value}"
        if clip.error:
            line += f": {clip.error}"
        lines.append(line)
    return "\n".join(lines)
