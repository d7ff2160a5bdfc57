"""Runware's REST task API on the simulator, backed by the engine's predictions.

    POST /runware/v1        a JSON array of tasks: ``videoInference`` (async) and ``getResponse``
    GET  /runware/_sim/log  what each ``videoInference`` task carried (fields, first frame, size)

The same record travels in the prediction's inputs as ``request``, so the engine's
``GET /_sim/log`` shows it too (``inputs.request``, with ``protocol`` ``runware``).

Point ``RunwareClient`` at ``http://host:port/runware/v1``. The key travels as
``Authorization: Bearer`` (or in an ``authentication`` task first in the array); a missing key,
or one that begins with ``invalid``, is refused with HTTP 401 and ``invalidApiKey``, in the
documented ``errors`` shape. A ``videoInference`` task is checked against the documented
request (``taskUUID``, ``model`` and ``positivePrompt`` required; ``deliveryMethod`` async;
``width``/``height`` together and never with ``inputs.frameImages``; each frame image an
object with ``image``; a duration the model makes, from the catalogue's entry or the known
families) and answered with an acknowledgment; ``getResponse`` then reads it: ``processing``
with ``progress`` (0-100), ``success`` with ``videoUUID``/``videoURL``/``seed`` (and ``cost``
when asked for and the catalogue prices the model), or an ``errors`` entry. The video is the
engine's real render, served by the simulator's ``/files`` route (no key, like Runware's CDN).
The engine's knobs apply: latency, outcome rates and prompt triggers, 5xx, malformed
``getResponse`` answers and the create rate limit. Error codes other than ``invalidApiKey``
are the simulator's own: Runware's docs list no catalogue of codes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from activities.simulator.engine import Simulator, protocol_state, simulator_of
from activities.simulator.lengths import lengths_instead, made_lengths
from activities.simulator.prediction import Fate, Prediction, version_of
from activities.simulator.render import nearest_aspect, png_size
from storyreel.catalogue import ModelSpec, lookup

DOCS = "https://runware.ai/docs/en/video-inference/api-reference"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.S)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
# Clip lengths of the model families Runware's model pages document, for AIRs the catalogue
# does not list (keyed by the AIR's source, then by its first version for Google's Veo).
FAMILY_DURATIONS: Mapping[str, Sequence[float]] = {
    "klingai": (5, 10),
    "minimax": (6, 10),
    "pixverse": (5, 8),
    "google:2": (5, 6, 7, 8),
    "google:3": (4, 6, 8),
}
OUTPUT_FORMATS = ("MP4", "WEBM", "MOV")
FRAMES = ("first", "last")


class TaskError(Exception):
    """One entry of an ``errors`` array for a task that cannot run."""

    def __init__(self, code: str, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.parameter = code, message, parameter


@dataclass
class RunwareState:
    """The tasks this protocol was sent: ``taskUUID`` -> prediction id, and what each carried."""

    tasks: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


router = APIRouter(prefix="/runware", tags=["runware"])


def _state(request: Request) -> RunwareState:
    return protocol_state(request, "runware", RunwareState)


def _errors(
    status: int, *entries: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse({"errors": list(entries)}, status, headers=headers)


def _entry(error: TaskError, task: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.parameter is not None:
        entry["parameter"] = error.parameter
        entry["documentation"] = f"{DOCS}#request-{error.parameter.split('.')[-1].lower()}"
    if isinstance(task.get("taskType"), str):
        entry["taskType"] = task["taskType"]
    if isinstance(task.get("taskUUID"), str):
        entry["taskUUID"] = task["taskUUID"]
    return entry


def _key(request: Request, tasks: list[Any]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    first = tasks[0] if tasks else None
    if isinstance(first, dict) and first.get("taskType") == "authentication":
        key = first.get("apiKey")
        return key if isinstance(key, str) and key.strip() else None
    return None


def spec_of(model: str) -> ModelSpec | None:
    return lookup("runware", model)


def allowed_durations(model: str) -> list[float] | None:
    """The lengths ``model`` makes: its catalogue entry's, else its family's, else unknown."""
    source, _, version = model.partition(":")
    family = FAMILY_DURATIONS.get(f"{source}:{version.split('@', 1)[0]}")
    return made_lengths(spec_of(model), family or FAMILY_DURATIONS.get(source))


def first_frame(value: str) -> tuple[str | None, bytes | None]:
    """The MIME type and bytes of an image given as a data URI or bare base64 (else Nones:
    a UUID or URL the simulator does not fetch)."""
    match = _DATA_URI.fullmatch(value.strip())
    text, mime = (match["data"], match["mime"]) if match else (value.strip(), None)
    if _UUID.fullmatch(text) or text.startswith(("http://", "https://")):
        return None, None
    try:
        return mime, base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TaskError(
            "invalidFrameImage",
            "The frame image is not a UUID, a URL, base64 or a data URI.",
            "inputs.frameImages",
        ) from None


def _integer(task: Mapping[str, Any], name: str) -> int | None:
    value = task.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TaskError("invalidParameter", f"{name} must be a positive integer.", name)
    return value


def check_video_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``videoInference`` task carried (for the log and the render), or ``TaskError``."""
    task_uuid = task.get("taskUUID")
    if not isinstance(task_uuid, str) or not _UUID.fullmatch(task_uuid):
        raise TaskError("invalidTaskUUID", "taskUUID must be a UUID v4 string.", "taskUUID")
    model = task.get("model")
    if not isinstance(model, str) or not model.strip():
        raise TaskError(
            "missingParameter", "model is required (an AIR such as klingai:5@3).", "model"
        )
    prompt = task.get("positivePrompt")
    if prompt is None:
        raise TaskError("missingParameter", "positivePrompt is required.", "positivePrompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise TaskError(
            "invalidParameter", "positivePrompt must be a non-empty string.", "positivePrompt"
        )
    if task.get("deliveryMethod", "async") != "async":
        raise TaskError(
            "invalidParameter", "Video tasks take deliveryMethod 'async' only.", "deliveryMethod"
        )
    if task.get("outputType", "URL") != "URL":
        raise TaskError("invalidParameter", "Video tasks take outputType 'URL' only.", "outputType")
    if task.get("outputFormat", "MP4") not in OUTPUT_FORMATS:
        raise TaskError(
            "invalidParameter",
            f"outputFormat must be one of {', '.join(OUTPUT_FORMATS)}.",
            "outputFormat",
        )
    _integer(task, "numberResults")
    spec = spec_of(model)
    duration = task.get("duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
            raise TaskError("invalidParameter", "duration must be a positive number.", "duration")
        if (made := lengths_instead(duration, allowed_durations(model))) is not None:
            raise TaskError(
                "invalidDuration",
                f"{model} does not make {duration:g} s clips: use {made}.",
                "duration",
            )
    width, height = _integer(task, "width"), _integer(task, "height")
    if (width is None) != (height is None):
        raise TaskError("invalidParameter", "width and height must be used together.", "width")
    if width is not None and height is not None and spec is not None and spec.sizes:
        if f"{width}x{height}" not in [size.lower() for size in spec.sizes]:
            raise TaskError(
                "invalidDimensions",
                f"{width}x{height} is not a size {model} makes: {', '.join(spec.sizes)}.",
                "width",
            )
    inputs = task.get("inputs", {})
    if not isinstance(inputs, dict):
        raise TaskError("invalidParameter", "inputs must be an object.", "inputs")
    frames = inputs.get("frameImages", [])
    if not isinstance(frames, list):
        raise TaskError(
            "invalidParameter", "inputs.frameImages must be an array.", "inputs.frameImages"
        )
    mime, image = None, None
    for index, entry in enumerate(frames):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise TaskError(
                "invalidFrameImage",
                f"inputs.frameImages[{index}] must be an object with an image.",
                "inputs.frameImages",
            )
        frame = entry.get("frame")
        if (
            frame is not None
            and frame not in FRAMES
            and (isinstance(frame, bool) or not isinstance(frame, int))
        ):
            raise TaskError(
                "invalidFrameImage",
                "frame must be 'first', 'last' or a frame number.",
                "inputs.frameImages",
            )
        if index == 0:
            mime, image = first_frame(entry["image"])
    if frames and width is not None:
        raise TaskError(
            "invalidParameter",
            "Provide exactly one of inputs.frameImages or width/height.",
            "inputs.frameImages",
        )
    if model.startswith("google:") and not frames and width is None and "resolution" not in task:
        raise TaskError(
            "missingParameter",
            "Either provide inputs.frameImages, or specify width/height or resolution.",
            "width",
        )
    settings = task.get("providerSettings", {})
    if not isinstance(settings, dict):
        raise TaskError(
            "invalidParameter", "providerSettings must be an object.", "providerSettings"
        )
    seed = task.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TaskError("invalidParameter", "seed must be an integer.", "seed")
    size = (width, height) if width and height else png_size(image)
    return {
        "taskUUID": task_uuid,
        "model": model,
        "prompt": prompt,
        "fields": sorted(task),
        "duration": duration,
        "width": width,
        "height": height,
        "seed": seed,
        "first_frame": "inputs.frameImages[0].image" if frames else None,
        "first_frame_mime": mime,
        "first_frame_bytes": None if image is None else len(image),
        "frame": frames[0].get("frame") if frames else None,
        "providerSettings": settings,
        "aspect_ratio": nearest_aspect(*size) if size else "16:9",
        "includeCost": task.get("includeCost") is True,
    }


def _video_item(prediction: Prediction, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``data`` item of a task that is running or made its video; None if it failed."""
    item: dict[str, Any] = {"taskType": "videoInference", "taskUUID": record["taskUUID"]}
    if not prediction.terminal:
        item["status"] = "processing"
        if prediction.status == "processing" and prediction.step >= 0:
            item["progress"] = prediction.step
        return item
    if prediction.status != "succeeded" or prediction.output is None:
        return None
    item |= {
        "status": "success",
        "videoUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, prediction.id)),
        "videoURL": prediction.output,
        "seed": prediction.input.get("seed"),
    }
    spec = spec_of(prediction.model)
    if record.get("includeCost") and spec is not None and spec.price is not None:
        seconds = float(prediction.input.get("duration") or 0.0)
        item["cost"] = spec.price.cost(seconds)
    return item


def _failure(prediction: Prediction) -> TaskError:
    if prediction.fate is Fate.refuse:
        return TaskError(
            "contentModerated",
            "The provider's content moderation flagged the request (simulated).",
        )
    if prediction.status in ("canceled", "aborted"):
        return TaskError("taskCanceled", "The task was stopped before it finished (simulated).")
    return TaskError("providerError", prediction.error or "The provider failed (simulated).")


def _get_response(
    sim: Simulator, state: RunwareState, task: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``data`` items and ``errors`` entries a ``getResponse`` task answers."""
    task_uuid = task.get("taskUUID")
    if not isinstance(task_uuid, str) or not _UUID.fullmatch(task_uuid):
        error = TaskError("invalidTaskUUID", "taskUUID must be a UUID v4 string.", "taskUUID")
        return [], [_entry(error, task)]
    prediction_id = state.tasks.get(task_uuid)
    prediction = sim.get(prediction_id) if prediction_id else None
    record = state.records.get(prediction_id or "")
    if prediction is None or record is None:
        return [], []  # Runware reports nothing for a UUID it does not have
    prediction.gets += 1
    sim.counts.gets += 1
    item = _video_item(prediction, record)
    if item is not None:
        return [item], []
    failed = {"taskType": "videoInference", "taskUUID": task_uuid}
    return [], [_entry(_failure(prediction), failed)]


def _start(
    request: Request, sim: Simulator, state: RunwareState, record: dict[str, Any]
) -> Prediction:
    inputs: dict[str, Any] = {
        "prompt": record["prompt"],
        "aspect_ratio": record["aspect_ratio"],
        "request": record,
    }
    duration = record["duration"]
    spec = spec_of(record["model"])
    if duration is None and spec is not None:
        duration = spec.durations.default
    if duration is not None:
        inputs["duration"] = float(duration)
    if record["seed"] is not None:
        inputs["seed"] = record["seed"]
    model = record["model"]
    prediction = sim.create(
        model, version_of(model), inputs, str(request.base_url), protocol="runware"
    )
    state.tasks[record["taskUUID"]] = prediction.id
    state.records[prediction.id] = {"id": prediction.id, "protocol": "runware", **record}
    return prediction


@router.post("/v1")
async def tasks(request: Request) -> Response:
    """Run an array of tasks: each answered in ``data`` or, failing, in ``errors``."""
    sim, state = simulator_of(request), _state(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, list) or not all(isinstance(task, dict) for task in body):
        error = TaskError(
            "invalidRequest", "The request body must be a JSON array of task objects."
        )
        return _errors(400, _entry(error, {}))
    key = _key(request, body)
    if key is None or key.lower().startswith("invalid"):
        return _errors(
            401,
            {
                "code": "invalidApiKey",
                "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                "parameter": "apiKey",
                "taskType": "authentication",
            },
        )
    if (status := sim.roll_error()) is not None:
        sim.counts.server_errors += 1
        error = TaskError("internalServerError", f"{_REASONS[status]} (simulated upstream fault).")
        return _errors(status, _entry(error, {}))
    data: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    submits = 0
    for task in body:
        kind = task.get("taskType")
        if kind == "authentication":
            data.append({"taskType": "authentication", "connectionSessionUUID": str(uuid.uuid4())})
        elif kind == "getResponse":
            items, failures = _get_response(sim, state, task)
            data += items
            errors += failures
        elif kind == "videoInference":
            submits += 1
            try:
                record = check_video_task(task)
                if record["taskUUID"] in state.tasks:
                    raise TaskError(
                        "duplicateTaskUUID", "A task with this taskUUID already exists.", "taskUUID"
                    )
            except TaskError as refused:
                errors.append(_entry(refused, task))
                continue
            admission = sim.admit_create()
            if not admission.allowed:
                error = TaskError("rateLimitExceeded", "Too many requests: slow down (simulated).")
                return _errors(429, _entry(error, task), headers=admission.headers)
            _start(request, sim, state, record)
            data.append({"taskType": "videoInference", "taskUUID": record["taskUUID"]})
        else:
            error = TaskError("invalidTaskType", f"Unknown taskType {kind!r}.", "taskType")
            errors.append(_entry(error, task))
    payload: dict[str, Any] = {"data": data}
    if errors:
        payload["errors"] = errors
    status = 400 if errors and submits else 200
    raw = json.dumps(payload).encode()
    if not submits and sim.roll_malformed():
        raw = raw[: max(1, len(raw) // 2)]  # cut mid-object, like a dropped proxy connection
    return Response(raw, status, media_type="application/json")


@router.get("/_sim/log")
async def log(request: Request) -> dict[str, Any]:
    """What each ``videoInference`` task carried, oldest first, with where its prediction
    stands (the engine's ``/_sim/log`` has the rest)."""
    return {"tasks": simulator_of(request).records_log(_state(request).records)}
