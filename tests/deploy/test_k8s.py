"""deploy/k8s, checked by parsing it: roles and settings are real, workers poll the queues the
workflow uses, KEDA scales each worker on its own queue, shutdowns outlast the worker's
graceful shutdown, and the Replicate numbers stay inside Replicate's limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from storyreel.settings import Settings
from tests.deploy.manifests import (
    DOCKERFILE,
    K8S,
    check_role_arguments,
    entrypoint_roles,
    k8s_documents,
    polled_queues,
    setting_names,
    settings_from,
    worker_queues,
    workflow_queues,
)
from worker import GRACEFUL_SHUTDOWN

IMAGE = "storyreel"
# Replicate: prediction creates per minute, and requests per minute to every other endpoint.
REPLICATE_CREATES_PER_MINUTE = 600
REPLICATE_OTHER_PER_MINUTE = 3000
# Margin the kubelet leaves after the worker's own graceful shutdown.
SHUTDOWN_MARGIN_SECONDS = 15


class Tree:
    """The documents of one kustomization (base or overlay), by kind."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        self.kustomization = kustomization
        self.documents: list[dict[str, Any]] = []
        self.images: list[dict[str, str]] = []
        for resource in kustomization["resources"]:
            path = (directory / resource).resolve()
            if path.is_dir():
                parent = Tree(path)
                self.documents += parent.documents
                self.images += parent.images
            else:
                self.documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
        self.images += kustomization.get("images", [])
        for patch in kustomization.get("patches", []):
            self._apply(patch)

    def _apply(self, patch: dict[str, Any]) -> None:
        target = patch["target"]
        assert target["kind"] == "ConfigMap", "only ConfigMap patches are modelled here"
        config = self.one("ConfigMap", target["name"])
        for operation in yaml.safe_load(patch["patch"]):
            assert operation["op"] in ("add", "replace"), operation
            key = operation["path"].removeprefix("/data/")
            if operation["op"] == "replace":
                assert key in config["data"], f"replace of missing {key}"
            config["data"][key] = operation["value"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
        return found[0]

    def workloads(self) -> list[dict[str, Any]]:
        return self.of_kind("Deployment") + self.of_kind("Job")


BASE = Tree(K8S)
LOADTEST = Tree(K8S / "loadtest")
TREES = pytest.mark.parametrize("tree", [BASE, LOADTEST], ids=["base", "loadtest"])
SECRET = next(d for _, d in k8s_documents() if d["kind"] == "Secret")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def environment_of(tree: Tree, workload: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees: envFrom sources, then its own env."""
    env: dict[str, str] = {}
    for source in container(workload).get("envFrom", []):
        if "configMapRef" in source:
            env.update(tree.one("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            assert source["secretRef"]["name"] == SECRET["metadata"]["name"]
            env.update(SECRET["stringData"])
    for item in container(workload).get("env", []):
        env[item["name"]] = item["value"]
    return env


def settings_of(tree: Tree, workload: dict[str, Any]) -> Settings:
    return settings_from(environment_of(tree, workload))


def workers(tree: Tree) -> list[dict[str, Any]]:
    return [d for d in tree.of_kind("Deployment") if container(d)["args"][0] == "worker"]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_file_parses_and_the_kustomizations_name_existing_files() -> None:
    kinds = {document["kind"] for _, document in k8s_documents()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Job", "ScaledObject"} <= kinds
    assert {"PodDisruptionBudget", "Kustomization"} <= kinds
    for tree in (BASE, LOADTEST):
        for resource in tree.kustomization["resources"]:
            assert (tree.directory / resource).exists(), resource
    assert "secret.example.yaml" not in BASE.kustomization["resources"], "never apply examples"


@TREES
def test_workloads_run_our_image_with_real_roles(tree: Tree) -> None:
    roles = entrypoint_roles()
    assert [image["name"] for image in tree.images] == [IMAGE]
    uid = int(DOCKERFILE.read_text().split("\nUSER ")[1].split(":")[0])
    for workload in tree.workloads():
        name = workload["metadata"]["name"]
        spec = container(workload)
        assert spec["image"] == IMAGE, name
        role, *args = spec["args"]
        assert role in roles, f"{name}: {role!r} is not a role of deploy/entrypoint.sh"
        check_role_arguments(role, args)
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid, f"{name}: the image's USER is {uid}"
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {mount["mountPath"] for mount in spec.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


@TREES
def test_every_setting_is_real_and_parses(tree: Tree) -> None:
    known = setting_names()
    for workload in tree.workloads():
        env = environment_of(tree, workload)
        unknown = {key for key in env if key.startswith("STORYREEL_")} - known
        assert not unknown, f"{workload['metadata']['name']} sets unknown settings {unknown}"
        settings_of(tree, workload)


@TREES
def test_resources_are_requested_and_bounded(tree: Tree) -> None:
    def quantity(text: str | int) -> float:
        text = str(text)
        units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
        for suffix, factor in units.items():
            if text.endswith(suffix):
                return float(text.removesuffix(suffix)) * factor
        return float(text)

    for workload in tree.workloads():
        resources = container(workload)["resources"]
        for kind in ("cpu", "memory"):
            request = quantity(resources["requests"][kind])
            limit = quantity(resources["limits"][kind])
            assert 0 < request <= limit, (workload["metadata"]["name"], kind)


@TREES
def test_workers_outlast_their_graceful_shutdown(tree: Tree) -> None:
    needed = GRACEFUL_SHUTDOWN.total_seconds() + SHUTDOWN_MARGIN_SECONDS
    for deployment in workers(tree):
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= needed, f"{deployment['metadata']['name']}: {grace} s < {needed} s"
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, "a queue must never be left without a poller"


@TREES
async def test_workers_poll_exactly_the_queues_the_workflow_uses(
    tree: Tree, client: Client, tmp_path: Path
) -> None:
    api = settings_of(tree, tree.one("Deployment", "api"))
    used = workflow_queues(api)
    polled: set[str] = set()
    for deployment in workers(tree):
        name = deployment["metadata"]["name"]
        queues = worker_queues(container(deployment)["args"][1:])
        settings = settings_of(tree, deployment)
        polled |= await polled_queues(client, settings, queues, tmp_path / name)
    assert polled == used, f"polled but unused: {polled - used}; used, unpolled: {used - polled}"


@TREES
async def test_keda_scales_clip_and_media_workers_on_their_own_queue(
    tree: Tree, client: Client, tmp_path: Path
) -> None:
    config = tree.one("ConfigMap", "storyreel-config")["data"]
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in tree.of_kind("ScaledObject")}
    for deployment in workers(tree):
        name = deployment["metadata"]["name"]
        queues = worker_queues(container(deployment)["args"][1:])
        if queues == ["workflows"]:
            assert name not in scaled
            continue
        assert name in scaled, f"{name} polls {queues} but no ScaledObject scales it"
        assert "replicas" not in deployment["spec"], f"{name}: KEDA owns the replica count"
        spec = scaled[name]["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "temporal"
        metadata = trigger["metadata"]
        assert metadata["endpoint"] == config["STORYREEL_TEMPORAL_ADDRESS"]
        assert metadata["namespace"] == config["STORYREEL_TEMPORAL_NAMESPACE"]
        assert metadata["queueTypes"] == "activity"
        assert int(metadata["targetQueueSize"]) >= 1
        settings = settings_of(tree, deployment)
        polled = await polled_queues(client, settings, queues, tmp_path / name)
        assert {metadata["taskQueue"]} == polled


@TREES
def test_services_and_budgets_select_pods_that_exist(tree: Tree) -> None:
    pods = [
        (d["spec"]["template"]["metadata"]["labels"], container(d))
        for d in tree.of_kind("Deployment")
    ]
    for service in tree.of_kind("Service"):
        selector = service["spec"]["selector"]
        matched = [spec for labels, spec in pods if labels_match(selector, labels)]
        assert len(matched) == 1, service["metadata"]["name"]
        ports = {port["name"] for port in matched[0]["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)
    for budget in tree.of_kind("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(labels_match(selector, labels) for labels, _ in pods), budget["metadata"]
    for deployment in tree.of_kind("Deployment"):
        spec = container(deployment)
        ports = {port["name"] for port in spec.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in spec:
                assert spec[probe]["httpGet"]["port"] in ports, (deployment["metadata"], probe)


def test_replicate_stays_inside_its_account_limits() -> None:
    """The arithmetic of deploy/README.md ("Replicate's limits"), on the manifests' numbers."""
    deployment = BASE.one("Deployment", "worker-clips-replicate")
    settings = settings_of(BASE, deployment)
    limit = settings.provider_limit("replicate")
    pods = BASE.one("ScaledObject", "worker-clips-replicate")["spec"]["maxReplicaCount"]
    assert limit.activities_per_second is not None
    # Creates: the server holds the whole queue to activities_per_second, whatever the pods.
    assert limit.activities_per_second * 60 <= 0.9 * REPLICATE_CREATES_PER_MINUTE
    # Polls: every clip in flight asks for its prediction once per poll interval.
    in_flight = pods * limit.max_concurrent
    polls_per_minute = in_flight * 60 / settings.replicate_poll_interval
    assert polls_per_minute <= 0.9 * REPLICATE_OTHER_PER_MINUTE, (in_flight, polls_per_minute)
