"""Starting and reaching generations: the one place that knows how a run is started."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from storyreel.catalogue import lookup
from storyreel.contracts import (
    WORKFLOW_NAME,
    GenerationInput,
    GenerationRequest,
    GenerationState,
    RunPriority,
    TaskQueues,
)
from storyreel.priority import task_priority
from storyreel.quotes import pricing_for
from storyreel.settings import Settings
from storyreel.temporal import STATUS_ATTR, TITLE_ATTR, USER_ATTR

ID_PREFIX = "gen-"


def generation_id(idempotency_key: str | None = None, user: str | None = None) -> str:
    """A stable id for a client's idempotency key (per user), else a fresh one."""
    if idempotency_key:
        digest = hashlib.sha256(f"{user or ''}\x00{idempotency_key}".encode()).hexdigest()
        return f"{ID_PREFIX}{digest[:24]}"
    return f"{ID_PREFIX}{uuid.uuid4().hex[:24]}"


def prepare(
    request: GenerationRequest,
    settings: Settings,
    *,
    priority: RunPriority = RunPriority.interactive,
    user_id: int | None = None,
) -> GenerationInput:
    """Fill in what the workflow must not read from settings itself; ``priority`` is the
    starter's default class, which the request's own ``priority`` overrides."""
    fields = request.model_dump(exclude_unset=True)
    fields["priority"] = request.priority or priority
    fields["user_id"] = user_id
    fields.setdefault("retry_window_seconds", settings.retry_window_seconds)
    fields.setdefault("review_window_seconds", settings.review_window_seconds)
    if fields.get("max_parallel_clips") is None:
        fields["max_parallel_clips"] = settings.max_parallel_clips
    fields.setdefault("clip_timeout_seconds", settings.clip_timeout_seconds)
    fields["clip_pricing"] = pricing_for(
        settings, request.provider, request.model, audio=request.clip_audio != "drop"
    )
    if request.quality == "draft":
        # The cheapest clips the model offers: its fast sibling where the catalogue names one,
        # without the model's own sound (and at its lowest resolution, per clip); the quote
        # also says what the finals will cost.
        spec = lookup(request.provider, request.model)
        fields["model"] = spec.draft_model if spec and spec.draft_model else request.model
        fields["clip_audio"] = "drop"
        fields["final_pricing"] = fields["clip_pricing"]
        fields["clip_pricing"] = pricing_for(settings, request.provider, fields["model"], False)
    if settings.webhook_base:
        fields["webhook_url"] = settings.webhook_base
        fields["fallback_poll_seconds"] = settings.webhook_fallback_poll_seconds
    fields["webhook_retry_initial_seconds"] = settings.webhook_retry_initial_seconds
    fields["api_base_url"] = settings.public_url or settings.api_url
    fields["queues"] = TaskQueues(
        media=settings.media_task_queue, clip_prefix=settings.clip_task_queue_prefix
    )
    return GenerationInput.model_validate(fields)


async def start_generation(
    client: Client,
    settings: Settings,
    request: GenerationRequest,
    *,
    workflow_id: str | None = None,
    user_id: int | None = None,
    user: str = "local",
    extra: Mapping[str, Any] | None = None,
) -> WorkflowHandle[object, GenerationState]:
    """Start the workflow; starting an id that already exists returns that run instead.

    With ``user_id`` the run writes its record to the database at every milestone. ``extra``:
    workflow input fields the starter sets itself (a final's draft and its storyboard).
    """
    workflow_id = workflow_id or generation_id()
    started = prepare(request, settings, user_id=user_id)
    if extra:
        started = started.model_copy(update=dict(extra))
    try:
        return await client.start_workflow(
            WORKFLOW_NAME,
            started,
            id=workflow_id,
            task_queue=settings.workflow_task_queue,
            result_type=GenerationState,
            # Same id while running -> that run; same id after it closed -> still that run.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes(request, user),
            memo=memo(request, user),
            static_summary=summary(request),
            task_timeout=RUN_TASK_TIMEOUT,
            priority=task_priority(started.priority, user_id),
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(workflow_id, result_type=GenerationState)


# What the Web UI shows and filters by; the same for a run started alone or by a batch.
RUN_TASK_TIMEOUT = timedelta(seconds=10)


def search_attributes(request: GenerationRequest, user: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(TITLE_ATTR, request.title),
            SearchAttributePair(STATUS_ATTR, "queued"),
            SearchAttributePair(USER_ATTR, user),
        ]
    )


def memo(request: GenerationRequest, user: str) -> dict[str, str]:
    return {"title": request.title, "platform": request.platform.value, "user": user}


def summary(request: GenerationRequest) -> str:
    return f"{request.title} ({request.platform.value}, {request.provider})"
