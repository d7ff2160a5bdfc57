"""The CLI starts quickly: a command that only talks to the API does not load the database's
modules (SQLAlchemy and Alembic are most of a second of every start)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("storyreel.db", "sqlalchemy", "alembic", "sqlmodel")


def test_the_cli_loads_no_database_module_until_a_command_needs_records() -> None:
    probe = (
        "import json, sys\n"
        "import storyreel.cli\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(run.stdout) == []
