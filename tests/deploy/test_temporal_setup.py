"""Preparing a Temporal namespace (the compose one-shot / Kubernetes Job), worker versioning
and the worker healthcheck, against the real dev server."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from storyreel import healthcheck
from storyreel.contracts import GenerationRequest, SceneIn
from storyreel.db import open_records
from storyreel.generations import start_generation
from storyreel.settings import Settings
from storyreel.temporal_setup import (
    SetupError,
    ensure_search_attributes,
    missing_attributes,
    setup,
    wanted_attributes,
)
from storyreel.versioning import deployment_config
from worker import build_workers
from workflows.generation import VideoGenerationWorkflow


def fresh(settings: Settings) -> Settings:
    return settings.model_copy(update={"temporal_namespace": f"sr-{uuid.uuid4().hex[:8]}"})


async def test_a_new_namespace_is_registered_and_given_our_attributes(
    client: Client, settings: Settings
) -> None:
    settings = fresh(settings)
    await setup(settings, retention=timedelta(days=1), timeout=60)
    namespace = settings.temporal_namespace
    assert await missing_attributes(client, namespace) == {}
    assert await ensure_search_attributes(client, namespace) == []  # again: nothing to do
    await setup(settings, retention=timedelta(days=1), timeout=60)

    # A run that sets the attributes can now start there.
    other = await Client.connect(
        settings.temporal_address, namespace=namespace, data_converter=pydantic_data_converter
    )
    request = GenerationRequest(title="ready", scenes=[SceneIn(description="x", duration=2)])
    handle = await start_generation(other, settings, request, workflow_id="setup-check")
    await handle.terminate("only checking that it starts")


async def test_an_attribute_of_another_type_is_reported_not_overwritten(
    client: Client, settings: Settings
) -> None:
    settings = fresh(settings)
    await setup(settings, retention=timedelta(days=1), timeout=60)
    namespace = settings.temporal_namespace
    wanted = wanted_attributes()
    clash = "StoryreelStatusOld"
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace, search_attributes={clash: IndexedValueType.INDEXED_VALUE_TYPE_INT}
        )
    )
    assert clash not in wanted
    # Pretend storyreel wanted that name as a Keyword: the setup must refuse, not overwrite.
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "storyreel.temporal_setup.wanted_attributes", lambda: {**wanted, clash: keyword}
        )
        with pytest.raises(SetupError, match="exists .* as INDEXED_VALUE_TYPE_INT"):
            await missing_attributes(client, namespace)


async def test_setup_gives_up_on_an_unreachable_server(settings: Settings) -> None:
    settings = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    with pytest.raises(SetupError, match="unreachable"):
        await setup(settings, retention=timedelta(days=1), timeout=1)


async def test_worker_versioning_config_is_off_without_a_build_id(client: Client) -> None:
    assert deployment_config(None) is None and deployment_config("") is None
    config = deployment_config("2026.11.21-abc123")
    assert config is not None and config.use_worker_versioning
    assert config.version.to_canonical_string() == "storyreel.2026.11.21-abc123"
    assert config.default_versioning_behavior is VersioningBehavior.AUTO_UPGRADE
    pinned = deployment_config("b1", pinned=True)
    assert pinned is not None and pinned.default_versioning_behavior is VersioningBehavior.PINNED
    with pytest.raises(ValueError, match="must not contain"):
        deployment_config("b1", deployment_name="story.reel")
    # The hook for worker.py: a versioned workflow worker is accepted as built.
    own = await Client.connect(client.service_client.config.target_host)
    Worker(
        own,
        task_queue=f"versioned-{uuid.uuid4().hex[:6]}",
        workflows=[VideoGenerationWorkflow],
        deployment_config=config,
    )


async def test_workers_carry_the_build_id_from_settings(client: Client, settings: Settings) -> None:
    records = open_records(settings)
    with ThreadPoolExecutor(1) as executor:
        for build_id, expected in ((None, None), ("2026.11.21-abc123", "2026.11.21-abc123")):
            configured = settings.model_copy(update={"worker_build_id": build_id})
            (worker,) = build_workers(client, configured, ["workflows"], executor, records=records)
            versioning = worker.config().get("deployment_config")
            assert (versioning.version.build_id if versioning else None) == expected
    records.dispose()


def test_worker_healthcheck_without_metrics_port_checks_temporal(settings: Settings) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYREEL_TEMPORAL_ADDRESS", settings.temporal_address)
        assert healthcheck.main(["worker"]) == 0
        patch.setenv("STORYREEL_TEMPORAL_ADDRESS", "127.0.0.1:1")
        assert healthcheck.main(["worker"]) == 1
    assert healthcheck.main(["bogus"]) == 1
