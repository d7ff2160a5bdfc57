"""``python -m storyreel.healthcheck [ROLE]``: is this container's process doing its job?

The image's ``HEALTHCHECK`` runs this without a role: the entrypoint wrote the role it started
to ``ROLE_FILE`` (default ``/tmp/storyreel-role``). Exit status 0 is healthy, 1 is not; one line
on stderr says why. Checks stay cheap (one local request) because they run every few seconds:

- ``api``: ``GET /healthz`` on ``PORT`` (8000).
- ``simulator``: ``GET /_sim/config`` on ``SIMULATOR_PORT`` (8090).

(``ROLE_FILE``, ``PORT`` and ``SIMULATOR_PORT`` are read through ``Settings`` like the rest.)
- ``worker``: ``GET /metrics`` on ``STORYREEL_METRICS_PORT`` when set, else a TCP connection to
  the Temporal frontend (a worker that cannot reach Temporal does no work).
- one-shot roles (``migrate``, ``temporal-setup``): healthy while they run.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from storyreel.settings import Settings
from storyreel.temporal import exit_after

TIMEOUT_SECONDS = 3.0
ONE_SHOT_ROLES = frozenset({"migrate", "temporal-setup"})


class Unhealthy(Exception):
    """The check failed; the message says what was tried."""


def http_ok(url: str, timeout: float = TIMEOUT_SECONDS) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status = int(answer.status)
    except (urllib.error.URLError, OSError) as error:
        raise Unhealthy(f"{url}: {error}") from None
    if status != 200:
        raise Unhealthy(f"{url}: HTTP {status}")


def tcp_ok(address: str, timeout: float = TIMEOUT_SECONDS) -> None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as error:
        raise Unhealthy(f"{address}: {error}") from None


def role_from_file(settings: Settings) -> str:
    path = settings.role_file  # written by deploy/entrypoint.sh
    try:
        return path.read_text().strip()
    except OSError:
        raise Unhealthy(f"no role given and {path} is unreadable") from None


def check(role: str, settings: Settings) -> str:
    """Run the role's check; return what was healthy, raise :class:`Unhealthy` otherwise."""
    if role == "api":
        url = f"http://127.0.0.1:{settings.api_port}/healthz"
        http_ok(url)
        return url
    if role == "simulator":
        url = f"http://127.0.0.1:{settings.simulator_port}/_sim/config"
        http_ok(url)
        return url
    if role == "worker":
        if settings.metrics_port is not None:
            url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
            http_ok(url)
            return url
        tcp_ok(settings.temporal_address)
        return settings.temporal_address
    if role in ONE_SHOT_ROLES:
        return role
    raise Unhealthy(f"unknown role {role!r}")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings or Settings()
        role = args[0] if args else role_from_file(settings)
        what = check(role, settings)
    except Unhealthy as error:
        sys.stderr.write(f"unhealthy: {error}\n")
        return 1
    sys.stderr.write(f"healthy: {role} ({what})\n")
    return 0


if __name__ == "__main__":
    exit_after(main)
