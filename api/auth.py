"""Who is calling: API keys from ``Authorization: Bearer``, and per-user request limits."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from storyreel.db import Records
from storyreel.db.models import User
from storyreel.errors import RateLimitedError, UnauthorizedError

WINDOW_SECONDS = 60.0


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


async def current_user(connection: HTTPConnection) -> User:
    """The caller, from their API key; counts the request against their limit."""
    user = await authenticate(connection.app.state.records, bearer_key(connection))
    limiter: RequestLimiter = connection.app.state.limiter
    assert user.id is not None
    limiter.hit(user.id)
    return user


UserDep = Annotated[User, Depends(current_user)]
