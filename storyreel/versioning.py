"""Worker Versioning: tie a worker to a build so the server routes runs to compatible code.

Off by default: storyreel's baseline for safe deploys is ``workflow.patched`` plus the replay
test over stored histories (see deploy/README.md). Teams that want the server to pin each run
to the build that started it give every worker of a release the same build id (the image tag)
and promote a release with ``temporal worker deployment set-current-version``.

``AUTO_UPGRADE`` (the default here) moves running generations to the new build at their next
workflow task, so incompatible changes still need ``workflow.patched``; ``PINNED`` keeps each
run on its starting build, which then has to keep running until its last generation ends
(up to the retry window, 24 h by default).
"""

from __future__ import annotations

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

DEPLOYMENT_NAME = "storyreel"


def deployment_config(
    build_id: str | None, *, pinned: bool = False, deployment_name: str = DEPLOYMENT_NAME
) -> WorkerDeploymentConfig | None:
    """The ``Worker(deployment_config=...)`` for ``build_id``; ``None`` (unversioned) without."""
    if not build_id:
        return None
    if "." in deployment_name:
        # The server's canonical version string is "<deployment>.<build id>".
        raise ValueError(f"deployment name {deployment_name!r} must not contain '.'")
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=deployment_name, build_id=build_id),
        use_worker_versioning=True,
        default_versioning_behavior=(
            VersioningBehavior.PINNED if pinned else VersioningBehavior.AUTO_UPGRADE
        ),
    )
