"""Batches: many generations validated up front, started by one ``BatchWorkflow``."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from api.service import Service
from api.validation import check_request, check_webhook, parse_item, resolve_assets
from api.views import BatchBody, BatchList, BatchSummary, BatchView, batch_links
from storyreel.contracts import (
    BATCH_WORKFLOW_NAME,
    PRIORITY_KEYS,
    BatchInput,
    BatchStatus,
    GenerationInput,
    GenerationStatus,
    RunPriority,
)
from storyreel.db import BatchPage
from storyreel.db.models import BatchPublic
from storyreel.errors import ConflictError, NotFoundError
from storyreel.generations import generation_id, prepare
from storyreel.temporal import STATUS_ATTR, TITLE_ATTR, USER_ATTR

BATCH_PREFIX = "batch-"


class Batches(Service):
    """Starts, reads and cancels one user's batches; another user's batch is ``NotFoundError``."""

    def _inputs(self, body: BatchBody, user_id: int) -> list[GenerationInput]:
        """Every item validated as POST /v1/generations validates one (blocking: a thread)."""
        check_webhook(body.webhook, self.settings)
        inputs = []
        for index, raw in enumerate(body.items):
            where = f"items[{index}]"
            request = resolve_assets(parse_item(raw, where), self.records, user_id, f"{where}.")
            check_request(request, self.settings, self.storage, f"{where}.")
            inputs.append(
                prepare(request, self.settings, priority=RunPriority.batch, user_id=user_id)
            )
        return inputs

    async def create(self, body: BatchBody, user_id: int, user: str) -> BatchView:
        inputs = await asyncio.to_thread(self._inputs, body, user_id)
        batch_id = f"{BATCH_PREFIX}{uuid.uuid4().hex[:24]}"
        title = body.title or f"{len(inputs)} videos"
        generation_ids = [generation_id() for _ in inputs]
        await asyncio.to_thread(
            self.records.create_batch, batch_id, user_id, title, inputs, generation_ids
        )
        settings = self.settings
        await self.client.start_workflow(
            BATCH_WORKFLOW_NAME,
            BatchInput(
                batch_id=batch_id,
                title=title,
                user_id=user_id,
                user=user,
                count=len(inputs),
                concurrency=settings.batch_concurrency,
                max_running=settings.max_running_generations,
                webhook=body.webhook,
                webhook_events_filter=body.webhook_events_filter,
                webhook_retry_initial_seconds=settings.webhook_retry_initial_seconds,
                api_base_url=settings.public_url or settings.api_url,
            ),
            id=batch_id,
            task_queue=settings.workflow_task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TITLE_ATTR, title),
                    SearchAttributePair(STATUS_ATTR, BatchStatus.running.value),
                    SearchAttributePair(USER_ATTR, user),
                ]
            ),
            memo={"title": title, "user": user, "items": len(inputs)},
            static_summary=f"batch: {title} ({len(inputs)} videos)",
            priority=Priority(priority_key=PRIORITY_KEYS[RunPriority.batch]),
        )
        return await self.view(batch_id, user_id)

    async def _batch(self, batch_id: str, user_id: int) -> BatchPublic:
        batch = await asyncio.to_thread(self.records.get_batch, batch_id, user_id)
        if batch is None:
            raise NotFoundError(f"no batch {batch_id!r}")
        return batch

    async def view(self, batch_id: str, user_id: int) -> BatchView:
        """The batch with its generations' statuses counted from their own records."""
        batch = await self._batch(batch_id, user_id)
        items = await asyncio.to_thread(self.records.batch_generations, batch_id)
        counts = Counter(status or GenerationStatus.queued for _, status in items)
        return BatchView(
            **batch.model_dump(),
            counts=dict(counts),
            generations=[generation for generation, _ in items],
            links=batch_links(batch_id),
        )

    async def list(self, user_id: int, limit: int, cursor: str | None) -> BatchList:
        page: BatchPage = await asyncio.to_thread(
            self.records.list_batches, user_id, limit=limit, cursor=cursor
        )
        return BatchList(
            items=[
                BatchSummary(**item.model_dump(), links=batch_links(item.id)) for item in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def cancel(self, batch_id: str, user_id: int) -> None:
        """Cancel the batch: no further item starts, and its running generations are
        cancelled (each records it); 409 once the batch has ended."""
        batch = await self._batch(batch_id, user_id)
        if batch.status != BatchStatus.running:
            raise ConflictError(f"batch {batch_id} has already ended ({batch.status})")
        try:
            await self.client.get_workflow_handle(batch_id).cancel()
        except RPCError as error:
            raise ConflictError(f"batch {batch_id} cannot be cancelled: {error.message}") from None
