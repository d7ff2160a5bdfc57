"""One way to reach Temporal: the pydantic data converter on every client and worker."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from storyreel.settings import Settings
from storyreel.tracing import tracing_interceptors

TITLE_ATTR = SearchAttributeKey.for_text("StoryreelTitle")
STATUS_ATTR = SearchAttributeKey.for_keyword("StoryreelStatus")
USER_ATTR = SearchAttributeKey.for_keyword("StoryreelUser")
SEARCH_ATTRIBUTES = (TITLE_ATTR, STATUS_ATTR, USER_ATTR)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client with the pydantic converter; ``runtime`` carries telemetry (worker metrics)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        # Optional OpenTelemetry spans (OTEL_* variables); workers built on this client trace too.
        interceptors=tracing_interceptors("storyreel", settings),
    )


def dev_server_search_attribute_args() -> list[str]:
    """``temporal server start-dev`` flags that register our search attributes."""
    kinds = {"TEXT": "Text", "KEYWORD": "Keyword"}
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return args


# The dev server splits each task queue into 4 partitions, and priority orders tasks within one
# partition only: with few tasks the partitions are uneven and a key-5 task on a light
# partition goes before a key-1 task on a busy one. One partition per queue orders them
# strictly, and is plenty for one machine (production servers keep their own setting).
DEV_SERVER_DYNAMIC_CONFIG = {
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
}


def dev_server_priority_args() -> list[str]:
    """``temporal server start-dev`` flags under which task priority orders a whole queue."""
    args: list[str] = []
    for name, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{name}={value}"]
    return args


def exit_after(main: Callable[[], int | None]) -> NoReturn:
    """Run a process's ``main`` and end the process without interpreter teardown.

    A process that used a Temporal client can abort while Python finalizes ("PyGILState_Release:
    thread state must be current", exit -6): the SDK's Rust threads outlive the interpreter
    (temporalio/sdk-python#300). Seen here on the setup role and the benchmark; a healthcheck
    or a worker stop that aborts would read as a failure. So flush and leave with ``os._exit``.
    """
    try:
        code = main() or 0
    except SystemExit as stop:
        if isinstance(stop.code, str):
            sys.stderr.write(stop.code + "\n")
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
