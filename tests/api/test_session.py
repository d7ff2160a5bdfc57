"""The page's session cookie: media for ``<video>``/``<img>`` without a key in any URL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import websockets
from pydantic import SecretStr

from api.cookies import SECRET_FILE, SESSION_COOKIE, SessionSigner, session_secret
from storyreel.settings import Settings
from tests.api.conftest import LiveApi
from tests.api.test_generations import body, poll_until
from tests.db.fixtures import revoke


async def open_session(api: LiveApi) -> tuple[str, str]:
    """POST /v1/session with the bearer key: the raw Set-Cookie header and the token."""
    answer = await api.http.post("/v1/session")
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == "alice"
    assert "local" in answer.json()["providers"] and "fade" in answer.json()["transitions"]
    set_cookie = answer.headers["set-cookie"]
    token = answer.cookies[SESSION_COOKIE]
    return set_cookie, token


async def test_media_needs_a_key_or_the_session_cookie(live_api: LiveApi) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body("sleepy", 2))).json()["id"]
    view = await poll_until(live_api, gid, {"completed", "failed"}, [])
    assert view["status"] == "completed"
    media = [
        (view["video_url"], "video/mp4"),
        (view["thumbnail_url"], "image/jpeg"),
        (view["clips"][0]["url"], "video/mp4"),
        *((url, "image/png") for url in view["storyboard_urls"]),
    ]
    assert len(view["storyboard_urls"]) == 2

    set_cookie, token = await open_session(live_api)
    attributes = {part.strip().lower() for part in set_cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert live_api.key not in set_cookie and live_api.key not in token

    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as anonymous:
        for url, _ in media:
            refused = await anonymous.get(url)
            assert refused.status_code == 401, url
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30, headers=cookie) as browser:
        for url, media_type in media:
            answer = await browser.get(url)
            assert answer.status_code == 200, (url, answer.text)
            assert answer.headers["content-type"] == media_type
        listing = (await browser.get("/v1/generations")).json()["items"]
        assert listing[0]["id"] == gid
        assert listing[0]["thumbnail_url"] == f"/v1/generations/{gid}/thumbnail"
        # Every URL the API hands out (links, media) is free of the key.
        state = await browser.get(f"/v1/generations/{gid}")
        assert live_api.key not in state.text and live_api.key not in str(listing)

        # A cookie changes nothing unless the request comes from our own page.
        forged = await browser.post(f"/v1/generations/{gid}/cancel")
        assert forged.status_code == 401 and "own pages" in forged.json()["detail"]
        own = await browser.post(f"/v1/generations/{gid}/cancel", headers={"Origin": live_api.url})
        assert own.status_code == 409, own.text  # authenticated; the run has ended

        # Renewing with the cookie alone issues a fresh one.
        renewed = await browser.post("/v1/session", headers={"Origin": live_api.url})
        assert renewed.status_code == 200 and SESSION_COOKIE in renewed.cookies


async def test_a_bad_or_revoked_session_is_401_and_others_runs_stay_404(
    live_api: LiveApi,
) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body("sleepy", 1))).json()["id"]
    _, token = await open_session(live_api)
    key_id, expires, signature = token.split(".")
    tampered = [
        f"{int(key_id) + 1}.{expires}.{signature}",
        f"{key_id}.{int(expires) + 3600}.{signature}",
        live_api.key,
        "garbage",
    ]
    for value in tampered:
        answer = await live_api.http.get(
            f"/v1/generations/{gid}",
            headers={"Authorization": "", "Cookie": f"{SESSION_COOKIE}={value}"},
        )
        assert answer.status_code == 401, value

    async with live_api.new_user("mallory") as mallory:
        theirs = await mallory.post("/v1/session")
        cookie = {"Cookie": f"{SESSION_COOKIE}={theirs.cookies[SESSION_COOKIE]}"}
        async with httpx.AsyncClient(base_url=live_api.url, headers=cookie) as browser:
            assert (await browser.get(f"/v1/generations/{gid}")).status_code == 404
            assert (await browser.get(f"/v1/generations/{gid}/video")).status_code == 404

    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    # The WebSocket takes the cookie from our own pages only (no cross-site hijacking).
    ws_url = live_api.url.replace("http://", "ws://") + "/v1/generations/gen-nope/ws"
    for origin, error, code in [
        ("http://evil.example", "a session cookie is accepted only from", 4401),
        (live_api.url, "no generation 'gen-nope'", 4404),
    ]:
        headers = {**cookie, "Origin": origin}
        async with websockets.connect(ws_url, additional_headers=headers) as socket:
            message = json.loads(await socket.recv())
            assert message["type"] == "error" and error in message["error"]
            await socket.wait_closed()
            assert socket.close_code == code
    async with httpx.AsyncClient(base_url=live_api.url, headers=cookie) as browser:
        assert (await browser.get(f"/v1/generations/{gid}")).status_code == 200
        assert revoke(live_api.records, live_api.key)
        revoked = await browser.get(f"/v1/generations/{gid}")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


def test_tokens_expire_and_name_only_their_key() -> None:
    signer = SessionSigner(b"s" * 32, lifetime_seconds=600)
    token, expires = signer.issue(7, now=1_000_000)
    assert expires == 1_000_600
    assert signer.verify(token, now=1_000_599) == 7
    assert signer.verify(token, now=1_000_600) is None
    assert SessionSigner(b"t" * 32, 600).verify(token, now=1_000_000) is None


def test_the_secret_is_shared_by_every_api_process(tmp_path: Path) -> None:
    """Configured, else from the pepper (deployments), else one file per data dir (a laptop)."""
    laptop = Settings(data_dir=tmp_path, _env_file=None)
    first = session_secret(laptop)
    assert first == session_secret(laptop) and len(first) >= 32
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    peppered = laptop.model_copy(update={"api_key_pepper": SecretStr("pepper")})
    assert session_secret(peppered) == session_secret(peppered.model_copy()) != first
    assert b"pepper" not in session_secret(peppered)
    configured = peppered.model_copy(update={"session_secret": SecretStr("x" * 32)})
    assert session_secret(configured) == b"x" * 32
