"""The API's dealings with Temporal and storage, kept out of the route functions."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.keys import record_key
from storyreel.contracts import (
    CLIP_ACTIVITY_PREFIX,
    CLIP_ENDED,
    ClipProgress,
    ClipStatus,
    GenerationState,
    RetryClipRequest,
)
from storyreel.errors import ConflictError, NotFoundError, StorageKeyError
from storyreel.storage import Storage

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_CLIP_ACTIVITY = re.compile(rf"^{re.escape(CLIP_ACTIVITY_PREFIX)}(\d+)-\d+$")


class Generations:
    """Reads and steers generations; every answer about an unknown id is ``NotFoundError``."""

    def __init__(self, client: Client, storage: Storage) -> None:
        self.client = client
        self.storage = storage

    def handle(self, generation_id: str) -> WorkflowHandle[object, GenerationState]:
        if not ID_PATTERN.match(generation_id):
            raise NotFoundError(f"no generation {generation_id!r}")
        return self.client.get_workflow_handle(generation_id, result_type=GenerationState)

    async def describe(self, generation_id: str) -> WorkflowExecutionDescription:
        try:
            return await self.handle(generation_id).describe()
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise NotFoundError(f"no generation {generation_id!r}") from None
            raise

    async def state(self, generation_id: str) -> GenerationState:
        """The workflow's state with the live percent of running clips merged in."""
        try:
            description = await self.describe(generation_id)
        except NotFoundError:
            record = self._record(generation_id)
            if record is None:
                raise
            return record
        running = description.status == WorkflowExecutionStatus.RUNNING
        if not running and (record := self._record(generation_id)) is not None:
            return record
        state: GenerationState = await self.handle(generation_id).query(
            "get_state", result_type=GenerationState
        )
        if running:
            await self._merge_heartbeats(state, description)
        return state

    async def _merge_heartbeats(
        self, state: GenerationState, description: WorkflowExecutionDescription
    ) -> None:
        for pending in description.raw_description.pending_activities:
            match = _CLIP_ACTIVITY.match(pending.activity_id)
            clip = state.clip(int(match[1])) if match else None
            if clip is None or clip.status in CLIP_ENDED:
                continue
            payloads = pending.heartbeat_details.payloads
            if not payloads:
                continue
            details = await self.client.data_converter.decode(payloads)
            try:
                progress = ClipProgress.model_validate(details[-1])
            except ValidationError:
                continue
            if progress.status in (ClipStatus.processing, ClipStatus.rendering):
                clip.status = progress.status
            clip.progress = max(0.0, min(99.9, progress.progress))
            clip.prediction_id = progress.prediction_id or clip.prediction_id

    def _record(self, generation_id: str) -> GenerationState | None:
        key = record_key(generation_id)
        with tempfile.TemporaryDirectory(prefix="storyreel-record-") as work:
            target = Path(work) / "generation.json"
            try:
                self.storage.get_file(key, target)
            except StorageKeyError:
                return None
            return GenerationState.model_validate_json(target.read_bytes())

    async def retry_clip(self, generation_id: str, clip_id: int, prompt: str | None) -> None:
        state = await self.state(generation_id)
        clip = state.clip(clip_id)
        if clip is None:
            raise NotFoundError(f"generation {generation_id} has no clip {clip_id}")
        if clip.status is not ClipStatus.failed:
            raise ConflictError(f"clip {clip_id} is {clip.status.value}, not failed")
        await self.handle(generation_id).signal(
            "retry_clip", RetryClipRequest(clip_id=clip_id, prompt=prompt)
        )

    async def cancel(self, generation_id: str) -> None:
        description = await self.describe(generation_id)
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise ConflictError(f"generation {generation_id} has already ended")
        await self.handle(generation_id).cancel()
