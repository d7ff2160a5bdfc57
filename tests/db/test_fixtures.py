"""The PostgreSQL fixture's rule: skipped on a developer's machine, never skipped in CI."""

from __future__ import annotations

import pytest

from tests.db.fixtures import postgres_unavailable


def test_missing_postgres_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        postgres_unavailable("no initdb")


def test_missing_postgres_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="required in CI: no initdb"):
        postgres_unavailable("no initdb")
