"""Users and their API keys: who may call, recognised by a key that is stored only hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storyreel.db.base import RecordsBase, upsert
from storyreel.db.models import ApiKey, User, utcnow
from storyreel.errors import BadInputError, NotFoundError

API_KEY_PREFIX = "sr_"
# "sr_" and 8 characters of the random part: 48 of its 256 bits, shown, never enough to guess.
DISPLAY_PREFIX_LENGTH = 11


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str, pepper: str) -> str:
    """The stored form of a key: HMAC-SHA256 under a server-side secret.

    Keys are 256 random bits, so a fast hash is enough (nothing to brute-force); the pepper
    makes a leaked table useless without the server's configuration as well.
    """
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


class AccountRecords(RecordsBase):
    """Users and API keys."""

    def create_user(self, name: str) -> User:
        """The user called ``name``, created on first use."""
        name = name.strip()
        if not name or len(name) > 100:
            raise BadInputError("a user name is 1-100 characters")
        with self._writing() as session:
            row = {"name": name, "created_at": utcnow()}
            upsert(session.connection(), User, row, keys=["name"])
            return session.exec(select(User).where(col(User.name) == name)).one()

    def create_api_key(self, user: User | int) -> str:
        """A new key for ``user``. The clear key is returned here once and stored nowhere."""
        user_id = _user_id(user)
        key = new_api_key()
        try:
            with self._writing() as session:
                session.connection().execute(
                    insert(ApiKey).values(
                        user_id=user_id,
                        key_hash=hash_api_key(key, self._pepper),
                        prefix=key[:DISPLAY_PREFIX_LENGTH],
                        created_at=utcnow(),
                    )
                )
        except IntegrityError as exc:
            raise NotFoundError(f"no user with id {user_id}") from exc
        return key

    def user_for_key(self, key: str) -> User | None:
        """The owner of a valid, unrevoked key; None for anything else."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
            return None
        # A lookup by the hash itself: nothing secret is compared byte by byte here.
        query = (
            select(User)
            .join(ApiKey, col(ApiKey.user_id) == col(User.id))
            .where(
                col(ApiKey.key_hash) == hash_api_key(key, self._pepper),
                col(ApiKey.revoked_at).is_(None),
            )
        )
        with self._reading() as session:
            return session.exec(query).first()

    def key_id_for(self, key: str) -> int | None:
        """The id of a valid, unrevoked key (what a browser session refers to); else None."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
            return None
        query = select(ApiKey.id).where(
            col(ApiKey.key_hash) == hash_api_key(key, self._pepper),
            col(ApiKey.revoked_at).is_(None),
        )
        with self._reading() as session:
            return session.exec(query).first()

    def user_for_key_id(self, key_id: int) -> User | None:
        """The owner of the key with this id while it is unrevoked: revoking a key ends the
        browser sessions made from it."""
        query = (
            select(User)
            .join(ApiKey, col(ApiKey.user_id) == col(User.id))
            .where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
        )
        with self._reading() as session:
            return session.exec(query).first()


def _user_id(user: User | int) -> int:
    if isinstance(user, User):
        if user.id is None:
            raise BadInputError("the user has not been saved")
        return user.id
    return user
