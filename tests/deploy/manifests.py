"""Reading the deployment files as the tools would: compose interpolation, k8s documents,
the entrypoint's roles, and Settings built from a container's environment."""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from temporalio.client import Client

from activities.providers import ClipProvider, LocalClipProvider
from activities.simulator.__main__ import parser as simulator_parser
from storyreel.contracts import GenerationRequest, SceneIn
from storyreel.db import open_records
from storyreel.generations import prepare
from storyreel.settings import Settings
from storyreel.temporal_setup import parser as temporal_setup_parser
from worker import build_workers

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
K8S = ROOT / "deploy" / "k8s"
SETTING_PREFIX = "STORYREEL_"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ is a literal $.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


class MissingVariable(Exception):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution, enough of it for our file."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        have = env.get(name)
        empty = have is None or (have == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else str(have)
        if op in (":?", "?"):
            if empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(have)
        return have or ""

    return _VARIABLE.sub(substitute, value)


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def compose_services(profiles: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The services ``docker compose [--profile P] up`` would start."""
    services: dict[str, dict[str, Any]] = load_compose()["services"]
    return {
        name: service
        for name, service in services.items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def compose_env(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """A service's ``environment``, interpolated like compose does with ``env``."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def compose_command(service: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    return [interpolate(str(part), env) for part in command]


def k8s_documents(directory: Path = K8S) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(directory.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def entrypoint_roles() -> set[str]:
    """The roles deploy/entrypoint.sh's ``case`` accepts."""
    text = ENTRYPOINT.read_text()
    body = text[text.index('case "$role" in') : text.index("esac")]
    return set(re.findall(r"^ {4}([a-z][a-z-]*)\)$", body, flags=re.MULTILINE))


def entrypoint_modules() -> set[str]:
    """Every ``python -m MODULE`` the entrypoint runs."""
    return set(re.findall(r"python -m ([A-Za-z_][\w.]*)", ENTRYPOINT.read_text()))


def worker_queues(args: Sequence[str]) -> list[str]:
    """The ``--queues`` of a worker command, parsed as worker.main does."""
    cli = argparse.ArgumentParser(exit_on_error=False)
    cli.add_argument("--queues", default="")
    parsed = cli.parse_args(list(args))
    queues = [queue.strip() for queue in parsed.queues.split(",") if queue.strip()]
    assert queues, f"worker {list(args)} names no queue (it would poll every queue it can)"
    return queues


def check_role_arguments(role: str, args: Sequence[str]) -> None:
    """The role's own parser accepts ``args`` (an unknown flag would crash the container)."""
    if role == "worker":
        worker_queues(args)
    elif role == "simulator":
        simulator_parser().parse_args(list(args))
    elif role == "temporal-setup":
        temporal_setup_parser().parse_args(list(args))
    elif role in ("migrate", "api"):
        assert not args, f"{role} takes no arguments here, got {list(args)}"
    else:
        raise AssertionError(f"role {role!r} is not one a deployment runs")


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Only ``values`` as STORYREEL_* variables while the block runs."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIX)}
    with mock.patch.dict(os.environ, {**kept, **values}, clear=True):
        yield


def settings_from(values: Mapping[str, str]) -> Settings:
    """The Settings a process started with ``values`` in its environment would read."""
    with environment({k: v for k, v in values.items() if k.startswith(SETTING_PREFIX)}):
        return Settings(_env_file=None)


def setting_names() -> set[str]:
    return {SETTING_PREFIX + name.upper() for name in Settings.model_fields}


async def polled_queues(
    client: Client, settings: Settings, queues: Sequence[str], scratch: Path
) -> set[str]:
    """The task queues worker.py's ``build_workers`` would poll for ``queues``.

    Only the queue settings matter here: records and media go to ``scratch``, not to the
    deployment's PostgreSQL and S3. Async because building a workflow worker validates the
    workflow in its sandbox, on the running event loop.
    """
    settings = settings.model_copy(
        update={"data_dir": scratch, "database_url": None, "storage_url": None}
    )
    providers: dict[str, ClipProvider] = {
        queue.partition(":")[2]: LocalClipProvider() for queue in queues if ":" in queue
    }
    # A connection of its own: a worker, even one never run, stays registered on its client,
    # and a second one for the same queue on that client is refused.
    client = await Client.connect(
        client.service_client.config.target_host, namespace=client.namespace
    )
    records = open_records(settings)
    try:
        with ThreadPoolExecutor(max_workers=settings.executor_size()) as executor:
            workers = build_workers(
                client, settings, queues, executor, clip_providers=providers, records=records
            )
            return {worker.task_queue for worker in workers}
    finally:
        records.dispose()


def workflow_queues(settings: Settings) -> set[str]:
    """Every task queue a generation started with ``settings`` (the API's) sends work to."""
    queues = {settings.workflow_task_queue}
    for provider in settings.clip_providers:
        request = GenerationRequest(
            title="queues", scenes=[SceneIn(description="x", duration=2)], provider=provider
        )
        started = prepare(request, settings)
        queues |= {started.queues.media, started.queues.clips(provider)}
    return queues
