"""Structured logs: one JSON object per line, carrying the generation and clip it is about.

Log collectors (Loki, CloudWatch, Elasticsearch) index fields, not sentences: in a container,
``configure_logging(json=True)`` makes every line a JSON object, and :class:`ContextFilter`
puts ``generation_id`` and ``clip_id`` on each record emitted inside a Temporal activity or
workflow, so "everything about gen-1234, clip 3" is one query across every worker process.
Text stays the default on a terminal.

The API's uvicorn reads the same setup from ``deploy/logging.json`` (``--log-config``).
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from temporalio import activity, workflow

from storyreel.contracts import CLIP_ACTIVITY_PREFIX

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Clip activity ids are "clip-<clip_id>-<round>" (workflows/generation.py).
_CLIP_ACTIVITY = re.compile(rf"^{re.escape(CLIP_ACTIVITY_PREFIX)}(\d+)-\d+$")
# Generation routes of the HTTP API, as uvicorn's access log shows them.
_GENERATION_PATH = re.compile(r"^/v1/generations/([A-Za-z0-9_.-]+)(?:/clips/(\d+))?")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Temporal's loggers already put these on the record (``temporal_activity``, ...): the JSON
# line carries them as flat fields instead.
_TEMPORAL_EXTRAS = frozenset({"temporal_activity", "temporal_workflow", "activity_info"})


def _temporal_details(record: logging.LogRecord) -> Mapping[str, Any] | None:
    """The activity or workflow details Temporal's logger adapters attached, if any."""
    for name in ("temporal_activity", "temporal_workflow"):
        details = record.__dict__.get(name)
        if isinstance(details, Mapping):
            return details
    if activity.in_activity():
        # A module logger (not activity.logger) used inside an activity: ask the SDK.
        info = activity.info()
        return {
            "workflow_id": info.workflow_id,
            "activity_id": info.activity_id,
            "activity_type": info.activity_type,
            "attempt": info.attempt,
            "task_queue": info.task_queue,
        }
    return None


def clip_id_of(activity_id: str | None) -> int | None:
    """The clip a clip activity works on, from its id; ``None`` for other activities."""
    match = _CLIP_ACTIVITY.match(activity_id or "")
    return int(match.group(1)) if match else None


class ContextFilter(logging.Filter):
    """Adds ``generation_id``, ``clip_id`` (and the activity's type and attempt) to records.

    Values given explicitly with ``extra={"generation_id": ...}`` win. Outside Temporal the
    fields are ``None``, so formatters can always name them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        details = _temporal_details(record)
        if details is not None:
            if getattr(record, "generation_id", None) is None:
                record.generation_id = details.get("workflow_id")
            if getattr(record, "clip_id", None) is None:
                record.clip_id = clip_id_of(details.get("activity_id"))
            record.activity_type = details.get("activity_type") or details.get("workflow_type")
            record.attempt = details.get("attempt")
        _from_access_log(record)
        for name in ("generation_id", "clip_id"):
            if not hasattr(record, name):
                setattr(record, name, None)
        return True


def _from_access_log(record: logging.LogRecord) -> None:
    """uvicorn's access lines name the request path: pick the generation and clip from it."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return
    _client, method, path, _version, status = args
    record.http_method, record.http_path, record.http_status = method, path, status
    match = _GENERATION_PATH.match(str(path))
    if match and getattr(record, "generation_id", None) is None:
        record.generation_id = match.group(1)
        if match.group(2) and getattr(record, "clip_id", None) is None:
            record.clip_id = int(match.group(2))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name in _STANDARD or name in _TEMPORAL_EXTRAS or name.startswith("_"):
                continue
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd extra (a Path, an enum) must never cost the log line.
        return jsonlib.dumps(line, default=str, ensure_ascii=False)


def configure_logging(
    json: bool, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one that writes text or JSON lines.

    With JSON, Temporal's loggers stop appending their info dict to each message: the same
    facts are fields of the line already.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    activity.logger.activity_info_on_message = not json
    workflow.logger.workflow_info_on_message = not json
    return handler
