"""Temporal task priority of a run: its class decides the order, its owner the fair share.

The priority key orders a backlogged queue (interactive work first). Within one key, the
fairness key (the owner) shares dispatch between users, so one user's 500-item batch does not
hold back another user's batch; servers without fairness ignore it.
"""

from __future__ import annotations

from temporalio.common import Priority

from storyreel.contracts import PRIORITY_KEYS, RunPriority


def task_priority(priority: RunPriority | None, user_id: int | None = None) -> Priority:
    """The ``Priority`` for a run's workflow and its activities; ``Priority.default`` (inherit
    the workflow's) for runs started before requests carried a priority."""
    if priority is None:
        return Priority.default
    fairness = f"user-{user_id}" if user_id is not None else None
    return Priority(priority_key=PRIORITY_KEYS[priority], fairness_key=fairness)
