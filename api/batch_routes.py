"""The ``/v1/batches`` routes: many generations at once, below runs started one by one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.auth import UserDep, owner_id
from api.deps import BatchesDep
from api.responses import answers
from api.views import ActionAccepted, BatchBody, BatchList, BatchView

router = APIRouter(prefix="/v1/batches", tags=["batches"])

BatchId = Annotated[str, Path(description="The batch id from POST.", max_length=200)]


@router.post(
    "",
    status_code=202,
    response_model=BatchView,
    responses=answers({422: "An item is invalid; the message names it (items[3]...)."}),
)
async def create_batch(body: BatchBody, user: UserDep, batches: BatchesDep) -> BatchView:
    """Start many generations: every item is validated first (nothing starts if one is bad),
    then each becomes its own generation, a few at a time (``STORYREEL_BATCH_CONCURRENCY``,
    within your running limit), at ``batch`` priority: runs started one by one go first."""
    return await batches.create(body, owner_id(user), user.name)


@router.get("", response_model=BatchList)
async def list_batches(
    user: UserDep,
    batches: BatchesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="From next_cursor.")] = None,
) -> BatchList:
    """Your batches, newest first, ``limit`` at a time (follow ``next_cursor``)."""
    return await batches.list(owner_id(user), limit, cursor)


@router.get("/{batch_id}", response_model=BatchView)
async def get_batch(batch_id: BatchId, user: UserDep, batches: BatchesDep) -> BatchView:
    """Status (running, completed, partial, failed, cancelled), generations per status, ids."""
    return await batches.view(batch_id, owner_id(user))


@router.post("/{batch_id}/cancel", status_code=202, response_model=ActionAccepted)
async def cancel_batch(batch_id: BatchId, user: UserDep, batches: BatchesDep) -> ActionAccepted:
    """Cancel the batch and its running generations; 409 once it has ended."""
    await batches.cancel(batch_id, owner_id(user))
    return ActionAccepted(id=batch_id, action="cancel")
