"""The clip prompt: consistency context above the scene, and nothing above it without one."""

from __future__ import annotations

from workflows.summary import clip_prompt


def test_context_goes_above_the_scene() -> None:
    prompt = clip_prompt("Soft watercolour", "A gull lands")
    assert prompt == "Soft watercolour\n\nSCENE: A gull lands"


def test_no_context_means_no_leading_blank_lines() -> None:
    assert clip_prompt("", "A gull lands") == "SCENE: A gull lands"
