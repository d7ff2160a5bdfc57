"""``python -m storyreel.temporal_setup``: make a Temporal namespace ready for storyreel.

A fresh Temporal cluster (compose's ``temporalio/auto-setup``, the official Helm chart) has a
namespace but not our search attributes, and starting a run that sets unknown attributes fails.
This one-shot waits for the frontend, registers the namespace when it is missing, adds the
search attributes the workflow and the API use (``storyreel.temporal.SEARCH_ATTRIBUTES``) and
waits until they are visible. Running it again changes nothing: deploy it as a compose one-shot
or a Kubernetes Job before the API and the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from storyreel.settings import Settings, get_settings
from storyreel.temporal import SEARCH_ATTRIBUTES, connect, exit_after

log = logging.getLogger("storyreel.temporal_setup")

RETRY_PAUSE_SECONDS = 2.0


class SetupError(Exception):
    """The namespace cannot be made ready (e.g. an attribute exists with another type)."""


def wanted_attributes(
    keys: Sequence[SearchAttributeKey[Any]] = SEARCH_ATTRIBUTES,
) -> dict[str, IndexedValueType.ValueType]:
    """Our search attributes as the operator API spells them."""
    return {key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in keys}


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> bool:
    """Register ``namespace`` when it does not exist; ``True`` when it was created now."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    period = Duration()
    period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                description="storyreel generations",
                workflow_execution_retention_period=period,
            )
        )
    except RPCError as race:
        # Two setup jobs racing: the other one registered it first.
        if race.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    log.info("registered namespace %s (retention %s)", namespace, retention)
    return True


async def missing_attributes(client: Client, namespace: str) -> dict[str, int]:
    """Our attributes the namespace lacks; :class:`SetupError` if one has another type."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    existing = dict(listed.custom_attributes)
    missing: dict[str, int] = {}
    for name, kind in wanted_attributes().items():
        if name not in existing:
            missing[name] = kind
        elif existing[name] != kind:
            have = IndexedValueType.Name(existing[name])
            raise SetupError(
                f"search attribute {name} exists in {namespace} as {have}, "
                f"storyreel needs {IndexedValueType.Name(kind)}: remove or rename it"
            )
    return missing


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Add whichever of our search attributes are missing; return the names added."""
    missing = await missing_attributes(client, namespace)
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    name: IndexedValueType.ValueType(kind) for name, kind in missing.items()
                },
            )
        )
    except RPCError as error:
        if error.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    log.info("added search attributes %s to %s", ", ".join(sorted(missing)), namespace)
    return sorted(missing)


async def connect_when_ready(settings: Settings, timeout: float) -> Client:
    """Connect, retrying while the frontend starts (compose starts everything at once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await connect(settings)
        except RuntimeError as error:
            if time.monotonic() > deadline:
                raise SetupError(
                    f"Temporal at {settings.temporal_address} unreachable for {timeout:g} s: "
                    f"{error}"
                ) from error
            log.info("waiting for Temporal at %s: %s", settings.temporal_address, error)
            await asyncio.sleep(RETRY_PAUSE_SECONDS)


async def setup(settings: Settings, retention: timedelta, timeout: float) -> None:
    """Namespace, then attributes, retrying the transient errors of a cluster that just
    started (a new namespace takes a few seconds to reach every frontend's cache)."""
    client = await connect_when_ready(settings, timeout)
    namespace = settings.temporal_namespace
    deadline = time.monotonic() + timeout
    while True:
        try:
            await ensure_namespace(client, namespace, retention)
            await ensure_search_attributes(client, namespace)
            if not await missing_attributes(client, namespace):
                log.info("namespace %s is ready for storyreel", namespace)
                return
        except RPCError as error:
            if time.monotonic() > deadline:
                raise SetupError(f"namespace {namespace} not ready: {error}") from error
            log.info("namespace %s not ready yet: %s", namespace, error)
        if time.monotonic() > deadline:
            raise SetupError(f"search attributes not visible in {namespace} after {timeout:g} s")
        await asyncio.sleep(RETRY_PAUSE_SECONDS)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m storyreel.temporal_setup",
        description="Register the namespace and storyreel's search attributes in Temporal.",
    )
    cli.add_argument(
        "--retention-days",
        type=float,
        default=7.0,
        help="history retention of a namespace registered here (default 7)",
    )
    cli.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for Temporal (default 180)"
    )
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(setup(get_settings(), timedelta(days=args.retention_days), args.timeout))


if __name__ == "__main__":
    exit_after(main)
