"""docker-compose.yml, checked by parsing it (Docker cannot run here): everything it runs
exists, every setting it sets is real, dependencies wait for health, and the workers poll
exactly the task queues the workflow sends work to."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from storyreel.healthcheck import ONE_SHOT_ROLES
from tests.deploy.manifests import (
    COMPOSE,
    ROOT,
    MissingVariable,
    check_role_arguments,
    compose_command,
    compose_env,
    compose_services,
    entrypoint_modules,
    entrypoint_roles,
    interpolate,
    polled_queues,
    setting_names,
    settings_from,
    worker_queues,
    workflow_queues,
)
from worker import GRACEFUL_SHUTDOWN

# What a user must put in .env; everything else has a default.
DOT_ENV = {"STORYREEL_API_KEY_PEPPER": "test-pepper"}
# Images we do not build, and where they come from.
OFFICIAL_IMAGES = {
    "postgres": "postgresql",
    "temporalio/auto-setup": "temporal",
    "temporalio/ui": "temporal-ui",
    "minio/minio": "minio",
    "minio/mc": "minio-setup",
}


def ours(service: dict[str, Any]) -> bool:
    return "build" in service


def test_the_file_has_the_production_shape() -> None:
    services = compose_services(profiles=["replicate"])
    expected = {
        "postgresql", "temporal", "temporal-setup", "temporal-ui", "minio", "minio-setup",
        "migrate", "simulator", "api", "worker-workflows", "worker-media",
        "worker-clips-local", "worker-clips-simulator", "worker-clips-replicate",
    }  # fmt: skip
    assert set(services) == expected


def test_images_and_builds_exist() -> None:
    for name, service in compose_services(profiles=["replicate"]).items():
        if ours(service):
            build = service["build"]
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
            continue
        image = interpolate(service["image"], {})
        repository, _, tag = image.partition(":")
        assert OFFICIAL_IMAGES.get(repository) == name, f"{name}: unexpected image {image}"
        assert tag and tag != "latest", f"{name}: pin {image} to a version"


def test_commands_are_roles_of_the_entrypoint_with_arguments_they_accept() -> None:
    roles = entrypoint_roles()
    assert {"api", "worker", "simulator", "migrate", "temporal-setup", "healthcheck"} <= roles
    for module in entrypoint_modules():
        assert importlib.util.find_spec(module) is not None, f"entrypoint runs missing {module}"
    for name, service in compose_services(profiles=["replicate"]).items():
        if not ours(service):
            continue
        command = compose_command(service, DOT_ENV)
        assert command, f"{name} must say which role it runs"
        role, *args = command
        assert role in roles, f"{name}: {role!r} is not a role of deploy/entrypoint.sh"
        check_role_arguments(role, args)


def test_every_storyreel_variable_is_a_setting() -> None:
    known = setting_names()
    for name, service in compose_services(profiles=["replicate"]).items():
        env = compose_env(service, DOT_ENV)
        unknown = {key for key in env if key.startswith("STORYREEL_")} - known
        assert not unknown, f"{name} sets {unknown}: not fields of storyreel.settings.Settings"
        if ours(service):
            settings_from(env)  # values parse, too (JSON lists, ports, URLs)


def test_storyreel_names_read_from_dot_env_are_settings_too() -> None:
    read = set(re.findall(r"\$\{(STORYREEL_[A-Z0-9_]+)", COMPOSE.read_text()))
    assert read and read <= setting_names(), read - setting_names()


def test_required_secrets_are_demanded_not_defaulted() -> None:
    api = compose_services()["api"]
    with pytest.raises(MissingVariable, match="STORYREEL_API_KEY_PEPPER"):
        compose_env(api, {})


def test_dependencies_wait_for_health_or_completion() -> None:
    services = compose_services(profiles=["replicate"])
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, rule in depends.items():
            condition = rule["condition"]
            other = services[target]
            if condition == "service_healthy":
                assert "healthcheck" in other, f"{name} waits for {target}'s health: it has none"
            elif condition == "service_completed_successfully":
                assert other.get("restart") == "no", f"{target} is waited for as a one-shot"
            else:
                raise AssertionError(f"{name} -> {target}: condition {condition!r}")


def test_services_with_dependents_and_long_running_ours_have_healthchecks() -> None:
    services = compose_services(profiles=["replicate"])
    needed = {
        target
        for service in services.values()
        for target, rule in (service.get("depends_on") or {}).items()
        if rule["condition"] == "service_healthy"
    }
    needed |= {name for name, s in services.items() if ours(s) and s.get("restart") != "no"}
    roles = entrypoint_roles()
    for name in needed:
        check = services[name].get("healthcheck")
        assert check and check["test"], f"{name} needs a healthcheck"
        test = check["test"]
        if "storyreel-entrypoint" in test:
            role = test[test.index("healthcheck") + 1]
            assert role in roles and role not in ONE_SHOT_ROLES, f"{name}: checks {role!r}"


def test_workers_scale_with_dash_dash_scale() -> None:
    for name, service in compose_services(profiles=["replicate"]).items():
        if name.startswith("worker-"):
            assert "container_name" not in service and "ports" not in service, name
            grace = int(str(service["stop_grace_period"]).removesuffix("s"))
            assert grace > GRACEFUL_SHUTDOWN.total_seconds(), name


def test_storage_is_s3_and_records_are_postgresql() -> None:
    env = compose_env(compose_services()["api"], DOT_ENV)
    settings = settings_from(env)
    assert settings.storage_url is not None and settings.storage_url.startswith("s3://")
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://")
    assert "@postgresql:5432/" in settings.database_url
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    minio_setup = " ".join(compose_command(compose_services()["minio-setup"], {}))
    bucket = settings.storage_url.removeprefix("s3://").split("/")[0]
    assert "mc mb" in minio_setup
    assert interpolate("${S3_BUCKET:-storyreel}", {}) == bucket


@pytest.mark.parametrize("profiles", [(), ("replicate",)], ids=["default", "replicate"])
async def test_workers_poll_exactly_the_queues_the_workflow_uses(
    client: Client, tmp_path: Path, profiles: tuple[str, ...]
) -> None:
    services = compose_services(profiles)
    dot_env = dict(DOT_ENV)
    if profiles:
        # With the replicate profile the user also lets the API accept the provider.
        dot_env["STORYREEL_CLIP_PROVIDERS"] = '["local", "simulator", "replicate"]'
    api = settings_from(compose_env(services["api"], dot_env))
    used = workflow_queues(api)
    polled: set[str] = set()
    for name, service in services.items():
        command = compose_command(service, dot_env)
        if command[:1] != ["worker"]:
            continue
        settings = settings_from(compose_env(service, dot_env))
        queues = worker_queues(command[1:])
        polled |= await polled_queues(client, settings, queues, tmp_path / name)
    assert polled == used, f"polled but unused: {polled - used}; used, unpolled: {used - polled}"
    assert used == {
        "storyreel-workflows",
        "storyreel-media",
        *(f"storyreel-clips-{p}" for p in api.clip_providers),
    }
