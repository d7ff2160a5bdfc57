"""The API's dealings with Temporal, records and storage, kept out of the route functions:
routes translate HTTP, this decides (quotas, idempotency, ownership, what may be signalled)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from api import metrics
from api.validation import check_language, check_request, resolve_assets
from api.views import GenerationList, Links, links_for, summary_view
from storyreel.contracts import (
    CLIP_ACTIVITY_PREFIX,
    CLIP_DONE,
    GENERATION_ENDED,
    ClipProgress,
    ClipStatus,
    GenerationRequest,
    GenerationState,
    GenerationStatus,
    RetryClipRequest,
    SceneEdit,
    SceneIn,
)
from storyreel.db import Records, placeholder_state
from storyreel.errors import BadInputError, ConflictError, NotFoundError, RateLimitedError
from storyreel.generations import generation_id, start_generation
from storyreel.quotes import Quote
from storyreel.settings import Settings
from storyreel.storage import Storage

log = logging.getLogger("storyreel.api")
QUOTA_RETRY_AFTER = 30  # seconds: a run ending frees a slot; most runs take longer than this
# A waiting read re-reads the state (a record read and one describe) this often: a change is
# answered within this much of being recorded, at four cheap reads a second per waiter.
WAIT_POLL_SECONDS = 0.25
MAX_WAIT_SECONDS = 60.0

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_CLIP_ACTIVITY = re.compile(rf"^{re.escape(CLIP_ACTIVITY_PREFIX)}(\d+)-\d+(?:-[a-z0-9_-]+)?$")


def fingerprint(state: GenerationState) -> str:
    """A weak ETag of what a waiter waits on: the run's status and stage and each clip's status.

    Progress percents are left out on purpose, so a rendering clip's % does not wake a waiter
    (the body still carries them: the tag is weak, equal states may differ in detail)."""
    seen = [state.status.value, state.stage.value if state.stage else ""]
    seen += [f"{clip.clip_id}:{clip.status.value}" for clip in state.clips]
    digest = hashlib.sha256("\x00".join(seen).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def same_tag(tag: str | None, state: GenerationState) -> bool:
    """Whether ``tag`` (an ``If-None-Match`` or ``since`` value: quoted or bare, weak or not,
    or a list of them) names ``state``'s fingerprint."""
    if not tag:
        return False
    ours = fingerprint(state).removeprefix("W/").strip('"')
    given = {part.strip().removeprefix("W/").strip('"') for part in tag.split(",")}
    return ours in given


@dataclass(frozen=True)
class Started:
    """A generation just started: its id and its quote (the clips as the provider bills them,
    before the model's own lengths are read for one outside the catalogue)."""

    id: str
    quote: Quote


class Service:
    """What the API's services work with: opened once by the app's lifespan."""

    def __init__(
        self, client: Client, settings: Settings, storage: Storage, records: Records
    ) -> None:
        self.client = client
        self.settings = settings
        self.storage = storage
        self.records = records


class Generations(Service):
    """Reads and steers one user's generations.

    Ownership comes from the record database: a generation that is not the caller's, like an
    id that does not exist, is ``NotFoundError`` (a 404 that leaks nothing).
    """

    async def start(
        self,
        request: GenerationRequest,
        user_id: int,
        user: str,
        idempotency_key: str | None,
        *,
        workflow_id: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> Started:
        """Start a generation for the caller: its id and what its clips will be billed.

        Refused before anything starts: an unknown provider, a too-long video, a music bed that
        does not exist, an uninstalled language (422), or the caller's running limit (429). The
        same idempotency key again is the same generation, started once. ``workflow_id`` and
        ``extra`` (workflow input the service sets itself) are a final's, from ``finalize``;
        its request is the service's own, its storage keys already resolved.
        """
        if workflow_id is None:
            request = await asyncio.to_thread(resolve_assets, request, self.records, user_id)
        quoted = await asyncio.to_thread(check_request, request, self.settings, self.storage)
        await asyncio.to_thread(check_language, request)
        workflow_id = workflow_id or generation_id(idempotency_key, str(user_id))
        existing = await asyncio.to_thread(self.records.get_generation, workflow_id, user_id)
        if existing is None:
            await self._check_quota(user_id)
            await asyncio.to_thread(
                self.records.upsert_generation,
                placeholder_state(workflow_id, request),
                user_id=user_id,
                request=request.model_dump(mode="json"),
            )
        handle = await start_generation(
            self.client,
            self.settings,
            request,
            workflow_id=workflow_id,
            user_id=user_id,
            user=user,
            extra=extra,
        )
        if existing is None:
            metrics.generation_started(request.platform.value)
        log.info("generation %s started for user %d", handle.id, user_id)
        return Started(handle.id, quoted)

    async def finalize(
        self, generation_id: str, user_id: int, user: str, remake: list[int] | None
    ) -> str:
        """Start the final of the caller's completed draft; the final's id.

        The final is the draft's request at final quality on the draft's plan (its scenes as
        planned, explicit now), storyboard and seed. The scenes in ``remake`` (default: every
        one) get final clips; the others keep the draft's clip, paid nothing more. 409 unless
        the run is a completed draft; finalizing again is the same final.
        """
        state = await self.record(generation_id, user_id)
        if state.quality != "draft":
            raise ConflictError(f"generation {generation_id} is not a draft")
        if state.status is not GenerationStatus.completed:
            raise ConflictError(
                f"draft {generation_id} is {state.status.value}: only a completed draft is "
                "finalized"
            )
        indexes = {scene.index for scene in state.scenes}
        chosen = set(remake) if remake is not None else indexes
        if unknown := sorted(chosen - indexes):
            raise NotFoundError(f"draft {generation_id} has no scene {unknown[0]}")
        raw = await asyncio.to_thread(self.records.generation_request, generation_id, user_id)
        if raw is None:
            raise NotFoundError(f"no generation {generation_id!r}")
        scenes = []
        for scene in state.scenes:
            clip = state.clip(scene.index)
            kept = scene.index not in chosen and clip is not None and clip.key
            scenes.append(
                SceneIn(
                    description=scene.description,
                    duration=scene.duration,
                    caption=scene.caption,
                    narration=scene.narration,
                    asset=clip.key if kept and clip is not None else scene.asset,
                )
            )
        final = GenerationRequest.model_validate(
            {
                **raw,
                "quality": "final",
                "script": None,
                "scenes": [scene.model_dump(exclude_none=True) for scene in scenes],
                "planner": "rules",
                "review": None,
            }
        )
        extra: dict[str, object] = {
            "storyboards": state.storyboard_keys,
            "draft_of": generation_id,
        }
        started = await self.start(
            final, user_id, user, None, workflow_id=f"{generation_id}-final", extra=extra
        )
        return started.id

    async def _check_quota(self, user_id: int) -> None:
        limit = self.settings.max_running_generations
        running = await asyncio.to_thread(self.records.count_running, user_id)
        if running >= limit:
            raise RateLimitedError(
                f"{running} generations are running; the limit is {limit}: wait for one to end",
                retry_after=QUOTA_RETRY_AFTER,
            )

    def links(self, generation_id: str) -> Links:
        return links_for(
            generation_id, self.settings.temporal_ui_url, self.settings.temporal_namespace
        )

    async def list(
        self, user_id: int, status: GenerationStatus | None, limit: int, cursor: str | None
    ) -> GenerationList:
        """The caller's generations, newest first, ``limit`` at a time from ``cursor``."""
        page = await asyncio.to_thread(
            self.records.list_generations, user_id, status=status, limit=limit, cursor=cursor
        )
        return GenerationList(
            items=[summary_view(item, self.links(item.id)) for item in page.items],
            next_cursor=page.next_cursor,
        )

    def handle(self, generation_id: str) -> WorkflowHandle[object, GenerationState]:
        if not ID_PATTERN.match(generation_id):
            raise NotFoundError(f"no generation {generation_id!r}")
        return self.client.get_workflow_handle(generation_id, result_type=GenerationState)

    async def record(self, generation_id: str, user_id: int) -> GenerationState:
        """The caller's recorded generation, or ``NotFoundError``."""
        if not ID_PATTERN.match(generation_id):
            raise NotFoundError(f"no generation {generation_id!r}")
        state = await asyncio.to_thread(self.records.get_generation, generation_id, user_id)
        if state is None:
            raise NotFoundError(f"no generation {generation_id!r}")
        return state

    async def locate(
        self,
        generation_id: str,
        user_id: int,
        kind: str,
        key_of: Callable[[GenerationState], str | None],
    ) -> Path | str:
        """The caller's media at the key ``key_of`` finds in the run's record (None: none
        yet): its file (local storage) or a presigned URL (S3); ``NotFoundError`` naming
        ``kind`` while it is not there yet. One record read, which also checks ownership."""
        state = await self.record(generation_id, user_id)
        key = key_of(state)
        if key is None or not await self._stored(key):
            raise NotFoundError(
                f"the {kind} of {generation_id} is not ready (status {state.status})"
            )
        path = self.storage.local_path(key)
        if path is None:
            return await asyncio.to_thread(self.storage.url, key)
        return path

    async def _stored(self, key: str) -> bool:
        path = self.storage.local_path(key)
        if path is not None:
            return path.is_file()
        return await asyncio.to_thread(self.storage.exists, key)

    async def describe(self, generation_id: str) -> WorkflowExecutionDescription | None:
        """Temporal's view of the run; None once Temporal no longer has it."""
        try:
            return await self.handle(generation_id).describe()
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise

    async def state(self, generation_id: str, user_id: int) -> GenerationState:
        """The workflow's state with the live percent of running clips merged in.

        A run whose record holds its end answers from the record (no Temporal call, no worker
        needed), and so does a run Temporal's retention has already removed.
        """
        state = await self._state(generation_id, user_id)
        metrics.observe(state)
        return state

    async def wait_for_change(
        self,
        generation_id: str,
        user_id: int,
        seen: str | None,
        seconds: float,
        on_state: Callable[[GenerationState], Awaitable[None]] | None = None,
    ) -> GenerationState:
        """The state as soon as its :func:`fingerprint` differs from ``seen`` (the tag the
        caller last had; None: the state at the time of the call), else after ``seconds``
        with the state unchanged. A run that has ended answers at once (it will not change).
        ``on_state`` sees every state read meanwhile (MCP turns them into progress)."""
        if not 0 < seconds <= MAX_WAIT_SECONDS:
            raise BadInputError(f"wait: {seconds:g} s is not in (0, {MAX_WAIT_SECONDS:g}]")
        deadline = time.monotonic() + seconds
        state = await self.state(generation_id, user_id)
        if not seen or seen.strip() == "*":  # "*": whatever it is now, so wait from here
            seen = fingerprint(state)
        while True:
            if on_state is not None:
                await on_state(state)
            if not same_tag(seen, state) or state.status in GENERATION_ENDED:
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                return state
            await asyncio.sleep(min(WAIT_POLL_SECONDS, left))
            state = await self.state(generation_id, user_id)

    async def _state(self, generation_id: str, user_id: int) -> GenerationState:
        """The record (written by the run at every stage and clip end) with Temporal's live
        view of the clips still running: no query, so no wait on a busy worker."""
        record = await self.record(generation_id, user_id)
        if record.status in GENERATION_ENDED:
            return record
        description = await self.describe(generation_id)
        if description is None:
            return record
        if description.status != WorkflowExecutionStatus.RUNNING:
            # Closed without writing its end (terminated, timed out): the run itself knows.
            return await self._query(generation_id)
        await self._merge_running_clips(record, description)
        if self.settings.webhook_base is not None:
            # Only runs whose clips are called back have such progress.
            await self._merge_webhook_progress(record)
        return record

    async def _query(self, generation_id: str) -> GenerationState:
        state: GenerationState = await self.handle(generation_id).query(
            "get_state", result_type=GenerationState
        )
        return state

    async def _merge_running_clips(
        self, state: GenerationState, description: WorkflowExecutionDescription
    ) -> None:
        """A clip whose activity is pending is running (a retry too), at its heartbeat's %."""
        for pending in description.raw_description.pending_activities:
            match = _CLIP_ACTIVITY.match(pending.activity_id)
            clip = state.clip(int(match[1])) if match else None
            if clip is None or clip.status in CLIP_DONE:
                continue
            clip.status, clip.progress, clip.error = ClipStatus.processing, 0.0, None
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

    async def _merge_webhook_progress(self, state: GenerationState) -> None:
        """Clips waiting on their provider's call run no activity: their live percent is what
        the provider's last progress delivery said."""
        rows = await asyncio.to_thread(self.records.clip_progress, state.generation_id)
        for row in rows:
            clip = state.clip(row.clip_id)
            if clip is None or clip.status in CLIP_DONE or clip.status is ClipStatus.failed:
                continue
            if clip.prediction_id not in (None, row.prediction_id):
                continue  # an older prediction's progress (the clip was retried)
            if clip.status is ClipStatus.queued or row.progress >= clip.progress:
                clip.status, clip.progress = ClipStatus(row.status), row.progress
                clip.prediction_id = row.prediction_id

    async def retry_clip(
        self, generation_id: str, user_id: int, clip_id: int, prompt: str | None
    ) -> None:
        state = await self.state(generation_id, user_id)
        clip = state.clip(clip_id)
        if clip is None:
            raise NotFoundError(f"generation {generation_id} has no clip {clip_id}")
        if clip.status is not ClipStatus.failed:
            raise ConflictError(f"clip {clip_id} is {clip.status.value}, not failed")
        await self.handle(generation_id).signal(
            "retry_clip", RetryClipRequest(clip_id=clip_id, prompt=prompt)
        )

    async def cancel(self, generation_id: str, user_id: int) -> None:
        await self.record(generation_id, user_id)
        description = await self.describe(generation_id)
        if description is None or description.status != WorkflowExecutionStatus.RUNNING:
            raise ConflictError(f"generation {generation_id} has already ended")
        await self.handle(generation_id).cancel()

    async def approve(self, generation_id: str, user_id: int) -> None:
        """Start the clips of a run awaiting approval of its storyboard (409 otherwise)."""
        await self._awaiting_approval(generation_id, user_id)
        await self.handle(generation_id).signal("approve")

    async def edit_scene(self, generation_id: str, user_id: int, edit: SceneEdit) -> None:
        """Change one scene of a run awaiting approval (409 otherwise; 404 for no such scene)."""
        state = await self._awaiting_approval(generation_id, user_id)
        if edit.index > len(state.scenes):
            raise NotFoundError(f"generation {generation_id} has no scene {edit.index}")
        await self.handle(generation_id).signal("edit_scene", edit)

    async def _awaiting_approval(self, generation_id: str, user_id: int) -> GenerationState:
        state = await self.record(generation_id, user_id)
        if state.status is not GenerationStatus.awaiting_approval:
            raise ConflictError(
                f"generation {generation_id} is {state.status.value}, not awaiting_approval"
            )
        return state

    async def finish(self, generation_id: str, user_id: int) -> None:
        """Signal ``finish_without_failed`` to a run waiting on failed clips.

        Refused (409) unless the run is in ``awaiting_retry``, and when no clip succeeded: the
        run would fail with nothing to assemble, which is never what the caller meant.
        """
        state = await self.state(generation_id, user_id)
        if state.status is not GenerationStatus.awaiting_retry:
            raise ConflictError(
                f"generation {generation_id} is {state.status.value}, not awaiting_retry: "
                "only a run waiting on failed clips can be finished without them"
            )
        if not any(clip.status in CLIP_DONE for clip in state.clips):
            raise ConflictError(
                f"every clip of {generation_id} failed: retry one or cancel the run"
            )
        await self.handle(generation_id).signal("finish_without_failed")
