"""The ``storyreel`` command: the embedded stack, and generations from the terminal.

Its commands live by what they act on (``runs``: one generation and your uploads; ``batches``;
``local``: the embedded stack, keys and the simulator) on the one Typer app of ``core``.
"""

from __future__ import annotations

from storyreel.cli import batches, local, runs
from storyreel.cli.batches import read_batch
from storyreel.cli.core import app

__all__ = ["app", "batches", "local", "main", "read_batch", "runs"]


def main() -> None:
    app()
