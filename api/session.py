"""``/v1/session``: the page trades its API key once for a session cookie (``api/cookies.py``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.auth import UserDep, bearer_key, session_key_id
from api.cookies import SESSION_COOKIE, SessionSigner
from api.deps import RecordsDep, SettingsDep
from storyreel.contracts import NO_TRANSITION, TRANSITIONS
from storyreel.errors import UnauthorizedError

router = APIRouter(prefix="/v1/session", tags=["session"])


class SessionView(BaseModel):
    """Who the session belongs to, until when, and what the page may offer on its form."""

    user: str
    expires_at: datetime
    providers: list[str] = Field(description="Clip and image providers this API accepts.")
    transitions: list[str] = Field(description="Transition names a request may give.")


@router.post("", response_model=SessionView)
async def open_session(
    request: Request, response: Response, user: UserDep, records: RecordsDep, settings: SettingsDep
) -> SessionView:
    """Set (or renew) the page's session cookie: HttpOnly, SameSite=Strict, Path=/.

    Call it with ``Authorization: Bearer <key>`` once, or with a valid session cookie to renew
    it. The cookie holds a signed, expiring reference to the key, never the key; media routes,
    the other ``/v1`` routes and the WebSocket accept it as well as the bearer header.
    """
    key = bearer_key(request)
    key_id = await asyncio.to_thread(records.key_id_for, key) if key else session_key_id(request)
    if key_id is None:
        raise UnauthorizedError("invalid or revoked API key")
    signer: SessionSigner = request.app.state.sessions
    token, expires = signer.issue(key_id, time.time())
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=signer.lifetime_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return SessionView(
        user=user.name,
        expires_at=datetime.fromtimestamp(expires, UTC),
        providers=list(settings.clip_providers),
        transitions=[NO_TRANSITION, *sorted(TRANSITIONS)],
    )


@router.delete("", status_code=204)
async def close_session(request: Request) -> Response:
    """Sign the page out: the cookie is cleared (the API key itself stays valid)."""
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
