"""The LLM planner: a script becomes scenes written for the camera by a chat model.

Any OpenAI-compatible chat-completions endpoint works (OpenAI, OpenRouter, vLLM, Ollama): the
request asks for structured output (``response_format`` of type ``json_schema``) and the answer
is validated again here, because not every server enforces the schema. One activity attempt is
one call: a malformed or schema-invalid answer raises a retryable error, so the activity's retry
policy (workflows/policies.py) asks again and, when its attempts run out, the run fails with
that error. The prompt is a versioned file in ``activities/prompts/``; its version is recorded in
the plan result. The API key lives in this adapter only (never in an input, a result or a log).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import timedelta
from importlib import resources
from string import Template
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from storyreel.contracts import PLATFORMS, PlanInput, PlanResult
from storyreel.errors import (
    BadInputError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderThrottledError,
)
from storyreel.planning import (
    MAX_SCENE_SECONDS,
    MIN_SCENE_SECONDS,
    PAUSE_SECONDS,
    Beat,
    lay_out,
    max_beats,
)

PROMPT_VERSION = "plan_v2"
# Without a target duration the model may plan at most this many scenes.
DEFAULT_MAX_SCENES = 12
TIMEOUT = httpx.Timeout(90.0, connect=10.0)


class PlannerAnswerError(ProviderError):
    """The model answered, but not with a valid plan (retried: the next answer may be)."""


class PlannerThrottledError(ProviderThrottledError):
    """The endpoint said 429; ``retry_after`` (seconds) is its own hint, when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_application_error(self, **details: object) -> ApplicationError:
        # Retried as any throttling; the next attempt waits as long as the endpoint asked.
        wait = self.retry_after
        return ApplicationError(
            str(self),
            details or None,
            type=ProviderThrottledError.__name__,
            next_retry_delay=timedelta(seconds=wait) if wait is not None else None,
        )


class LLMScene(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, Field(min_length=1, max_length=2000)]
    narration: Annotated[str, Field(max_length=2000)]
    caption: Annotated[str, Field(max_length=300)]
    duration: float


class LLMPlan(BaseModel):
    """The plan's shape, as the model must answer it."""

    model_config = ConfigDict(extra="forbid")

    consistency_context: Annotated[str, Field(max_length=4000)]
    scenes: Annotated[list[LLMScene], Field(min_length=1, max_length=200)]


def plan_schema() -> dict[str, Any]:
    """The JSON schema sent as ``response_format``: strict mode's subset (every property
    required, no additional ones, no bounds keywords that some servers refuse)."""
    scene = {
        "type": "object",
        "properties": {
            "description": {"type": "string", "description": "What the camera sees."},
            "narration": {"type": "string", "description": "What the voice-over says."},
            "caption": {"type": "string", "description": "Short on-screen caption."},
            "duration": {"type": "number", "description": "Seconds on screen, 2 to 10."},
        },
        "required": ["description", "narration", "caption", "duration"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "consistency_context": {"type": "string"},
            "scenes": {"type": "array", "items": scene},
        },
        "required": ["consistency_context", "scenes"],
        "additionalProperties": False,
    }


def load_prompt(version: str = PROMPT_VERSION) -> Template:
    text = resources.files("activities").joinpath("prompts", f"{version}.md").read_text("utf-8")
    return Template(text)


def system_prompt(request: PlanInput, version: str = PROMPT_VERSION) -> str:
    limit = PLATFORMS[request.platform].max_duration
    target = request.duration if request.duration is not None else limit
    scenes = max_beats(request.duration) if request.duration is not None else DEFAULT_MAX_SCENES
    if target is None:
        target = scenes * MAX_SCENE_SECONDS
    language = (
        f"Write narration and captions in the language with code '{request.language}'; "
        "descriptions stay in English."
        if request.language
        else "Write narration and captions in the script's language; descriptions in English."
    )
    context = (
        f"The studio fixed this visual context; keep every description consistent with it: "
        f"{request.consistency_context}"
        if request.consistency_context.strip()
        else "Choose the visual context yourself."
    )
    return load_prompt(version).substitute(
        platform=request.platform.value,
        max_scenes=scenes,
        max_seconds=f"{target:g}",
        language=language,
        context=context,
        clip_lengths=lengths_rule(request.clip_lengths),
    )


def lengths_rule(lengths: Sequence[float] | None) -> str:
    """The prompt's rule on clip lengths: the model's, to prefer (the planner's own bounds
    apply too), or any length when the catalogue does not know the model."""
    usable = sorted({length for length in lengths or [] if length <= MAX_SCENE_SECONDS})
    if not usable:
        return "The video model makes clips of any length: choose each duration by its narration."
    spelled = [f"{length:g}" for length in usable]
    said = spelled[0] if len(spelled) == 1 else f"{', '.join(spelled[:-1])} or {spelled[-1]}"
    return (
        f"The video model makes clips of {said} seconds only; a shorter scene is paid as the "
        "next of those lengths and cut. Prefer scene durations of exactly those lengths: put "
        "consecutive sentences in one scene until its narration nearly fills one, or end a "
        f"scene with a short pause (at most {PAUSE_SECONDS:g} s). Never shorten or drop "
        "narration to reach a length."
    )


def parse_plan(content: str | None) -> LLMPlan:
    """The model's answer as a plan, or :class:`PlannerAnswerError` saying what is wrong."""
    if not content or not content.strip():
        raise PlannerAnswerError("the planner model answered with no content")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise PlannerAnswerError(
            f"the planner model's answer is not JSON ({error.msg} at character {error.pos})"
        ) from None
    try:
        return LLMPlan.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'answer'}: {item['msg']}"
            for item in error.errors()[:5]
        )
        raise PlannerAnswerError(
            f"the planner model's answer does not fit the plan schema ({problems})"
        ) from None


def to_result(plan: LLMPlan, request: PlanInput) -> PlanResult:
    """The model's plan under the same rules as any other: 2-10 s scenes, the beat cap and
    the platform's limit, each change a warning; with the clip model's lengths, the rules
    planner's short pauses (:func:`storyreel.planning.with_pauses`)."""
    warnings: list[str] = []
    beats: list[Beat] = []
    for index, scene in enumerate(plan.scenes, start=1):
        duration = scene.duration
        if not math.isfinite(duration):
            duration = MIN_SCENE_SECONDS
        clamped = round(min(MAX_SCENE_SECONDS, max(MIN_SCENE_SECONDS, duration)), 1)
        if abs(clamped - duration) > 0.05:
            warnings.append(
                f"scene {index}: planned {scene.duration:g} s, kept to {clamped:g} s "
                f"(scenes last {MIN_SCENE_SECONDS:g}-{MAX_SCENE_SECONDS:g} s)"
            )
        beats.append(
            Beat(
                description=" ".join(scene.description.split()),
                duration=clamped,
                caption=" ".join(scene.caption.split()) or None,
                narration=" ".join(scene.narration.split()) or None,
            )
        )
    # The model chose the scenes; a short pause still brings each up to a clip length.
    result = lay_out(beats, request, warnings, fit_platform=True, lengths=request.clip_lengths)
    return result.model_copy(
        update={
            "consistency_context": plan.consistency_context.strip(),
            "planner": "llm",
            "prompt_version": PROMPT_VERSION,
        }
    )


class LLMPlanner:
    """The ``plan_with_llm`` activity, holding the endpoint, the model and the key.

    ``base_url`` ends in ``/v1`` as in every OpenAI client's settings; ``transport`` is for
    tests. Without a base URL or model every call fails, non-retryably, saying what to set.
    """

    def __init__(
        self,
        base_url: str | None,
        model: str | None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        temperature: float = 0.4,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self._base_url = (base_url or "").rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport

    def __repr__(self) -> str:  # never the key
        return f"LLMPlanner(model={self.model!r})"

    @activity.defn(name="plan_with_llm")
    async def plan_with_llm(self, request: PlanInput) -> PlanResult:
        """Ask the chat model for the plan; validate it; hold it to the planner's rules."""
        result = await self.plan(request)
        for warning in result.warnings:
            activity.logger.warning(
                "plan of %s: %s",
                request.generation_id,
                warning,
                extra={"generation_id": request.generation_id},
            )
        return result

    async def plan(self, request: PlanInput) -> PlanResult:
        if not (self._base_url and self.model):
            raise BadInputError(
                "planner 'llm' is not configured on the worker: set STORYREEL_LLM_BASE_URL "
                "(ending in /v1) and STORYREEL_LLM_MODEL"
            )
        if not request.script or not request.script.strip():
            raise BadInputError("planner 'llm' needs a script")
        body = {
            "model": self.model,
            "temperature": self.temperature,
            "messages": [
                {"role": "system", "content": system_prompt(request)},
                {"role": "user", "content": request.script},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "storyboard_plan", "strict": True, "schema": plan_schema()},
            },
        }
        content = await self._complete(body)
        return to_result(parse_plan(content), request)

    async def _complete(self, body: dict[str, Any]) -> str | None:
        try:
            # One call per plan: a client per call holds nothing between runs.
            async with httpx.AsyncClient(
                base_url=self._base_url,
                headers=self._headers,
                transport=self._transport,
                timeout=TIMEOUT,
            ) as client:
                response = await client.post("/chat/completions", json=body)
        except httpx.HTTPError as error:
            raise ProviderError(f"planner endpoint unreachable: {type(error).__name__}") from None
        status = response.status_code
        if status == 429:
            raise PlannerThrottledError(
                "planner endpoint rate limited (HTTP 429)", _retry_after(response)
            )
        if status >= 500 or status == 408:
            raise ProviderError(f"planner endpoint answered HTTP {status}")
        if status >= 400:
            detail = response.text[:300]
            raise ProviderRejectedError(
                f"planner endpoint refused the request (HTTP {status}): {detail}",
                status_code=status,
                detail=detail,
            )
        try:
            choice = response.json()["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PlannerAnswerError(
                "the planner endpoint's answer is not a chat completion"
            ) from None
        if message.get("refusal"):
            refusal = str(message["refusal"])[:300]
            raise ProviderRefusedError(f"the planner model refused: {refusal}")
        if choice.get("finish_reason") == "length":
            raise PlannerAnswerError(
                "the planner model's answer was cut off (finish_reason length)"
            )
        content = message.get("content")
        return content if isinstance(content, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
