"""The one place an activity's ``StoryreelError`` becomes Temporal's ``ApplicationError``.

A worker interceptor rather than a try/except in each activity, so that no activity can forget
it: every worker ``worker.py`` builds (and so every test worker started through it) runs every
activity inside ``ErrorMapper``. The error keeps its class name as ``type`` and its class's
``retryable`` as the opposite of ``non_retryable`` (see ``storyreel.errors``); the attempt that
failed rides along in the details, which is how a workflow counts a clip's attempts. Anything
that is not a ``StoryreelError`` (an ``ApplicationError`` an activity raised on purpose, a bug)
passes through untouched, as Temporal would report it anyway.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from storyreel.errors import StoryreelError


class ErrorMapper(Interceptor):
    """Worker interceptor: ``StoryreelError`` -> ``ApplicationError`` for every activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MapErrors(next)


class _MapErrors(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except StoryreelError as error:
            raise error.to_application_error(attempt=activity.info().attempt) from error
