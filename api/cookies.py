"""Browser sessions: an HMAC-signed, short-lived token in an HttpOnly cookie.

A ``<video>``, an ``<img>`` or an ``<a download>`` cannot send ``Authorization: Bearer``, and a key
in a URL ends up in logs and browser history. So the page trades its API key once, at
``POST /v1/session``, for a cookie that holds ``<key id>.<expiry>.<signature>``: never the key,
nothing a log or a stolen cookie jar can turn back into one. The API checks the signature and
the expiry, then that the key it names is still unrevoked (revoking a key ends its sessions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from storyreel.settings import Settings

SESSION_COOKIE = "storyreel_session"
SECRET_FILE = "session-secret"
_CONTEXT = b"storyreel-session-v1"


class SessionSigner:
    """Issues and checks session tokens; holds the server-side secret."""

    def __init__(self, secret: bytes, lifetime_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret = secret
        self.lifetime_seconds = lifetime_seconds

    def _signature(self, key_id: int, expires: int) -> str:
        message = b"%s:%d:%d" % (_CONTEXT, key_id, expires)
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, key_id: int, now: float) -> tuple[str, int]:
        """A token for the key with ``key_id``, and when it expires (Unix seconds)."""
        expires = int(now) + self.lifetime_seconds
        return f"{key_id}.{expires}.{self._signature(key_id, expires)}", expires

    def verify(self, token: str, now: float) -> int | None:
        """The key id a valid, unexpired token names; None for anything else."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 200:
            return None
        key_text, expires_text, signature = parts
        if not (key_text.isdigit() and expires_text.isdigit()):
            return None
        key_id, expires = int(key_text), int(expires_text)
        if not hmac.compare_digest(signature, self._signature(key_id, expires)):
            return None
        return key_id if now < expires else None


def session_secret(settings: Settings) -> bytes:
    """``STORYREEL_SESSION_SECRET``; else one derived from the API key pepper, which every API
    process of a deployment already shares (rotating it voids keys and sessions alike); else,
    on a laptop without a pepper, a random secret kept (0600) in the data dir, so the processes
    of one machine agree and sessions outlive an API restart."""
    configured = settings.session_secret.get_secret_value()
    if configured:
        return configured.encode()
    pepper = settings.api_key_pepper.get_secret_value()
    if pepper:
        return hmac.new(pepper.encode(), _CONTEXT, hashlib.sha256).hexdigest().encode()
    path = settings.data_dir / SECRET_FILE
    if not path.is_file():
        _create_once(path, secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode()


def _create_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless another process got there first (link is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
