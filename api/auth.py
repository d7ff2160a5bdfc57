"""Who is calling: an API key from ``Authorization: Bearer`` or the page's session cookie
(``api/cookies.py``), and per-user request limits."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends
from starlette.requests import HTTPConnection

from api.cookies import SESSION_COOKIE, SessionSigner
from storyreel.db import Records
from storyreel.db.models import User
from storyreel.errors import RateLimitedError, UnauthorizedError

WINDOW_SECONDS = 60.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestLimiter:
    """Requests per user per minute, a sliding window kept in this API process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[int, deque[float]] = defaultdict(deque)

    def hit(self, user_id: int) -> None:
        now = time.monotonic()
        seen = self._seen[user_id]
        while seen and seen[0] <= now - WINDOW_SECONDS:
            seen.popleft()
        if len(seen) >= self.per_minute:
            retry_after = max(1, math.ceil(seen[0] + WINDOW_SECONDS - now))
            raise RateLimitedError(
                f"more than {self.per_minute} requests in a minute; retry in {retry_after} s",
                retry_after,
            )
        seen.append(now)


def bearer_key(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


async def authenticate(records: Records, key: str | None) -> User:
    if not key:
        raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>'")
    user = await asyncio.to_thread(records.user_for_key, key)
    if user is None or user.id is None:
        raise UnauthorizedError("invalid or revoked API key")
    return user


def _same_origin(connection: HTTPConnection) -> bool:
    origin = connection.headers.get("origin")
    return bool(origin) and urlsplit(origin).netloc == connection.headers.get("host")


def needs_same_origin(connection: HTTPConnection) -> bool:
    """A cookie rides along on every request to us, including ones another page starts: what
    changes something (and every WebSocket) must come from our own pages. Reads may be
    embedded (``<img>``, ``<video>``), which is what the cookie is for."""
    method = connection.scope.get("method")
    return connection.scope["type"] == "websocket" or method not in SAFE_METHODS


def session_key_id(connection: HTTPConnection) -> int | None:
    """The key id of the request's valid session cookie; None when it carries none."""
    token = connection.cookies.get(SESSION_COOKIE)
    if token is None:
        return None
    signer: SessionSigner = connection.app.state.sessions
    key_id = signer.verify(token, time.time())
    if key_id is None:
        raise UnauthorizedError(
            "your session has expired: open the link 'storyreel up' printed, or sign in with "
            "your API key"
        )
    if needs_same_origin(connection) and not _same_origin(connection):
        raise UnauthorizedError("a session cookie is accepted only from this site's own pages")
    return key_id


def has_session(connection: HTTPConnection) -> bool:
    return SESSION_COOKIE in connection.cookies


async def identify(connection: HTTPConnection) -> User:
    """The bearer key when the request has one (API clients, unchanged), else the cookie."""
    records: Records = connection.app.state.records
    key = bearer_key(connection)
    if key is not None or not has_session(connection):
        return await authenticate(records, key)
    key_id = session_key_id(connection)
    assert key_id is not None
    user = await asyncio.to_thread(records.user_for_key_id, key_id)
    if user is None or user.id is None:
        raise UnauthorizedError("the API key of this session has been revoked")
    return user


async def current_user(connection: HTTPConnection) -> User:
    """The caller, from their API key or session; counts the request against their limit."""
    user = await identify(connection)
    limiter: RequestLimiter = connection.app.state.limiter
    assert user.id is not None
    limiter.hit(user.id)
    return user


UserDep = Annotated[User, Depends(current_user)]


def owner_id(user: User) -> int:
    """The id of an authenticated caller (always saved: it came from the database)."""
    assert user.id is not None
    return user.id
