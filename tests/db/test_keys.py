"""Users and API keys: keys work, are revocable, and never sit in the database in clear."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, select

from storyreel.db import Records, hash_api_key
from storyreel.errors import BadInputError, NotFoundError
from tests.db.fixtures import PEPPER, revoke


def _every_value(records: Records) -> list[str]:
    """Every value of every column of every row of every table, as text."""
    metadata = MetaData()
    metadata.reflect(records.engine)
    values: list[str] = []
    with records.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                values.extend(str(value) for value in row)
    return values


def test_users_are_created_once_by_name(records: Records) -> None:
    alice = records.create_user("alice")
    assert records.create_user("alice").id == alice.id
    assert records.create_user("  alice ").id == alice.id
    bob = records.create_user("bob")
    assert bob.id != alice.id
    with pytest.raises(BadInputError):
        records.create_user("  ")


def test_keys_are_never_stored_in_clear(records: Records) -> None:
    alice = records.create_user("alice")
    keys = [records.create_api_key(alice) for _ in range(3)]
    revoke(records, keys[0])
    values = _every_value(records)
    assert any(hash_api_key(keys[1], PEPPER) in value for value in values)
    for key in keys:
        secret = key.removeprefix("sr_")
        assert not any(secret in value for value in values), "a clear key is in the database"
        # Nor any long run of it (the shown prefix is 8 characters of 43).
        assert not any(secret[:16] in value for value in values)


def test_a_key_finds_its_user_and_nothing_else_does(records: Records) -> None:
    alice = records.create_user("alice")
    bob = records.create_user("bob")
    key = records.create_api_key(alice)
    other = records.create_api_key(bob.id or 0)
    assert key.startswith("sr_") and len(key) == 3 + 43
    assert records.user_for_key(key) == alice
    assert records.user_for_key(other) == bob
    for wrong in ["", "sr_", key[:-1], key + "x", key.upper(), "Bearer " + key, "x" * 500]:
        assert records.user_for_key(wrong) is None


def test_the_pepper_is_part_of_the_hash(records: Records) -> None:
    key = records.create_api_key(records.create_user("alice"))
    elsewhere = Records(records.engine, pepper="another-server")
    assert elsewhere.user_for_key(key) is None


def test_revoked_keys_stop_working(records: Records) -> None:
    alice = records.create_user("alice")
    kept, revoked = records.create_api_key(alice), records.create_api_key(alice)
    assert revoke(records, revoked)
    assert records.user_for_key(revoked) is None
    assert records.user_for_key(kept) == alice


def test_a_key_for_a_missing_user_is_refused(records: Records) -> None:
    with pytest.raises(NotFoundError):
        records.create_api_key(4242)
