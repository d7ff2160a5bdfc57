"""The typed contracts between the API, the workflow and the activities.

One input and one result model per workflow and activity, so fields can be added without
breaking callers. Everything here crosses the Temporal boundary through the pydantic data
converter, so it must stay plain data: keys and URLs, never media bytes.

They live by kind (``basics``: names, statuses, platforms; ``requests``: what a caller asks
and the workflow is started with; ``activities``: each activity's input and result;
``state``: where a run stands, and batches); import them from here.
"""

from __future__ import annotations

from storyreel.contracts.activities import (
    PREDICTION_ENDED as PREDICTION_ENDED,
)
from storyreel.contracts.activities import (
    AssemblyClip as AssemblyClip,
)
from storyreel.contracts.activities import (
    CheckInput as CheckInput,
)
from storyreel.contracts.activities import (
    ClipInput as ClipInput,
)
from storyreel.contracts.activities import (
    ClipMedia as ClipMedia,
)
from storyreel.contracts.activities import (
    ClipProgress as ClipProgress,
)
from storyreel.contracts.activities import (
    ClipResult as ClipResult,
)
from storyreel.contracts.activities import (
    DescribeModelInput as DescribeModelInput,
)
from storyreel.contracts.activities import (
    DescribeModelResult as DescribeModelResult,
)
from storyreel.contracts.activities import (
    OwnClipInput as OwnClipInput,
)
from storyreel.contracts.activities import (
    PlanInput as PlanInput,
)
from storyreel.contracts.activities import (
    PlannedScene as PlannedScene,
)
from storyreel.contracts.activities import (
    PlanResult as PlanResult,
)
from storyreel.contracts.activities import (
    PredictionPhase as PredictionPhase,
)
from storyreel.contracts.activities import (
    PredictionSignal as PredictionSignal,
)
from storyreel.contracts.activities import (
    PredictionUpdate as PredictionUpdate,
)
from storyreel.contracts.activities import (
    SceneChanges as SceneChanges,
)
from storyreel.contracts.activities import (
    SceneEdit as SceneEdit,
)
from storyreel.contracts.activities import (
    StitchInput as StitchInput,
)
from storyreel.contracts.activities import (
    StitchResult as StitchResult,
)
from storyreel.contracts.activities import (
    StoryboardInput as StoryboardInput,
)
from storyreel.contracts.activities import (
    StoryboardResult as StoryboardResult,
)
from storyreel.contracts.activities import (
    SubmitResult as SubmitResult,
)
from storyreel.contracts.basics import (
    BATCH_WORKFLOW_NAME as BATCH_WORKFLOW_NAME,
)
from storyreel.contracts.basics import (
    CLIP_ACTIVITY_PREFIX as CLIP_ACTIVITY_PREFIX,
)
from storyreel.contracts.basics import (
    CLIP_DONE as CLIP_DONE,
)
from storyreel.contracts.basics import (
    CLIP_ENDED as CLIP_ENDED,
)
from storyreel.contracts.basics import (
    DEFAULT_WEBHOOK_EVENTS as DEFAULT_WEBHOOK_EVENTS,
)
from storyreel.contracts.basics import (
    GENERATION_ENDED as GENERATION_ENDED,
)
from storyreel.contracts.basics import (
    LANGUAGE_PATTERN as LANGUAGE_PATTERN,
)
from storyreel.contracts.basics import (
    NO_TRANSITION as NO_TRANSITION,
)
from storyreel.contracts.basics import (
    PLATFORMS as PLATFORMS,
)
from storyreel.contracts.basics import (
    PRIORITY_KEYS as PRIORITY_KEYS,
)
from storyreel.contracts.basics import (
    TRANSITIONS as TRANSITIONS,
)
from storyreel.contracts.basics import (
    VOICE_PATTERN as VOICE_PATTERN,
)
from storyreel.contracts.basics import (
    WORKFLOW_NAME as WORKFLOW_NAME,
)
from storyreel.contracts.basics import (
    BatchStatus as BatchStatus,
)
from storyreel.contracts.basics import (
    ClipAudio as ClipAudio,
)
from storyreel.contracts.basics import (
    ClipStatus as ClipStatus,
)
from storyreel.contracts.basics import (
    GenerationStatus as GenerationStatus,
)
from storyreel.contracts.basics import (
    Platform as Platform,
)
from storyreel.contracts.basics import (
    PlatformSpec as PlatformSpec,
)
from storyreel.contracts.basics import (
    Quality as Quality,
)
from storyreel.contracts.basics import (
    RunPriority as RunPriority,
)
from storyreel.contracts.basics import (
    SceneCharacters as SceneCharacters,
)
from storyreel.contracts.basics import (
    Stage as Stage,
)
from storyreel.contracts.basics import (
    WebhookEvent as WebhookEvent,
)
from storyreel.contracts.requests import (
    ASSET_PATTERN as ASSET_PATTERN,
)
from storyreel.contracts.requests import (
    Character as Character,
)
from storyreel.contracts.requests import (
    GenerationInput as GenerationInput,
)
from storyreel.contracts.requests import (
    GenerationRequest as GenerationRequest,
)
from storyreel.contracts.requests import (
    ProviderChoice as ProviderChoice,
)
from storyreel.contracts.requests import (
    SceneIn as SceneIn,
)
from storyreel.contracts.requests import (
    TaskQueues as TaskQueues,
)
from storyreel.contracts.state import (
    BatchInput as BatchInput,
)
from storyreel.contracts.state import (
    BatchResult as BatchResult,
)
from storyreel.contracts.state import (
    Charge as Charge,
)
from storyreel.contracts.state import (
    ClaimInput as ClaimInput,
)
from storyreel.contracts.state import (
    ClaimResult as ClaimResult,
)
from storyreel.contracts.state import (
    ClipFields as ClipFields,
)
from storyreel.contracts.state import (
    ClipStageMetrics as ClipStageMetrics,
)
from storyreel.contracts.state import (
    ClipState as ClipState,
)
from storyreel.contracts.state import (
    ClipTry as ClipTry,
)
from storyreel.contracts.state import (
    CloseBatchInput as CloseBatchInput,
)
from storyreel.contracts.state import (
    GenerationFields as GenerationFields,
)
from storyreel.contracts.state import (
    GenerationHeadline as GenerationHeadline,
)
from storyreel.contracts.state import (
    GenerationMetrics as GenerationMetrics,
)
from storyreel.contracts.state import (
    GenerationState as GenerationState,
)
from storyreel.contracts.state import (
    PublishInput as PublishInput,
)
from storyreel.contracts.state import (
    PublishResult as PublishResult,
)
from storyreel.contracts.state import (
    RecordInput as RecordInput,
)
from storyreel.contracts.state import (
    RetryClipRequest as RetryClipRequest,
)
from storyreel.contracts.state import (
    StageTiming as StageTiming,
)

__all__ = [
    "ClipAudio",
    "ASSET_PATTERN",
    "AssemblyClip",
    "BATCH_WORKFLOW_NAME",
    "BatchInput",
    "BatchResult",
    "BatchStatus",
    "CLIP_ACTIVITY_PREFIX",
    "CLIP_DONE",
    "CLIP_ENDED",
    "Character",
    "Charge",
    "CheckInput",
    "ClaimInput",
    "ClaimResult",
    "ClipFields",
    "ClipInput",
    "ClipMedia",
    "ClipProgress",
    "ClipResult",
    "ClipStageMetrics",
    "ClipState",
    "ClipStatus",
    "ClipTry",
    "CloseBatchInput",
    "DEFAULT_WEBHOOK_EVENTS",
    "DescribeModelInput",
    "DescribeModelResult",
    "GENERATION_ENDED",
    "GenerationFields",
    "GenerationHeadline",
    "GenerationInput",
    "GenerationMetrics",
    "GenerationRequest",
    "GenerationState",
    "GenerationStatus",
    "LANGUAGE_PATTERN",
    "NO_TRANSITION",
    "OwnClipInput",
    "PLATFORMS",
    "PREDICTION_ENDED",
    "PRIORITY_KEYS",
    "PlanInput",
    "PlanResult",
    "PlannedScene",
    "Platform",
    "PlatformSpec",
    "Quality",
    "SceneCharacters",
    "PredictionPhase",
    "PredictionSignal",
    "PredictionUpdate",
    "ProviderChoice",
    "PublishInput",
    "PublishResult",
    "RecordInput",
    "RetryClipRequest",
    "RunPriority",
    "SceneChanges",
    "SceneEdit",
    "SceneIn",
    "Stage",
    "StageTiming",
    "StitchInput",
    "StitchResult",
    "StoryboardInput",
    "StoryboardResult",
    "SubmitResult",
    "TRANSITIONS",
    "TaskQueues",
    "VOICE_PATTERN",
    "WORKFLOW_NAME",
    "WebhookEvent",
]
