"""A route's documented answers besides its success, for ``responses=``."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]


def answers(described: dict[int, str]) -> Responses:
    """``{404: "No such run."}`` as OpenAPI responses: each status with what it means."""
    return {status: {"description": text} for status, text in described.items()}
