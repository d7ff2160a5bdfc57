"""The FastAPI application: ``create_app()`` with a lifespan holding one Temporal client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from api import asset_routes, batch_routes, metrics, notify_routes, routes, session, webhooks
from api.assets import Uploads
from api.auth import RequestLimiter
from api.batches import Batches
from api.cookies import SessionSigner, session_secret
from api.deliveries import deliveries_from_settings
from api.mcp import MCP_PATH, McpEndpoint, mcp_sessions
from api.notify import Notifications
from api.service import Generations
from storyreel import __version__
from storyreel.db import open_records
from storyreel.errors import (
    ConflictError,
    NotFoundError,
    RateLimitedError,
    StoryreelError,
    UnauthorizedError,
)
from storyreel.settings import Settings, get_settings
from storyreel.storage import storage_from_settings
from storyreel.temporal import connect

DESCRIPTION = """
Turn a script into a finished short video: every scene's clip is generated **in parallel**,
durably, on Temporal. Start a generation, follow it (state or WebSocket events), retry a
failed clip, download the video. Each run is also visible in the Temporal Web UI. Many
videos at once: `POST /v1/batches`, each item its own generation at `batch` priority, so runs
started one by one are dispatched first when the queues are busy.

Waiting reads: `GET /v1/generations/{id}?wait=N` (N up to 60) answers as soon as the status or a
clip's status differs from the ETag given as `If-None-Match` (or `?since=`), else after N s.
Agents: an MCP server (streamable HTTP) at `/mcp`, the same bearer key, the same rules.

Every `/v1` route needs `Authorization: Bearer <api key>` (`storyreel keys create USER`). A
browser page trades its key once at `POST /v1/session` for an HttpOnly session cookie, which
every `/v1` route (media included, for `<video>` and `<img>`) accepts as well.
"""


def http_status(error: StoryreelError) -> int:
    """One mapping from domain errors to HTTP answers."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UnauthorizedError):
        return 401
    if isinstance(error, RateLimitedError):
        return 429
    return 422 if not error.retryable else 503


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the app; ``client`` lets tests share one Temporal connection."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temporal = client or await connect(settings)
        storage = storage_from_settings(settings)
        records = await asyncio.to_thread(open_records, settings)
        app.state.settings = settings
        app.state.client = temporal
        app.state.storage = storage
        app.state.records = records
        app.state.limiter = RequestLimiter(settings.requests_per_minute)
        app.state.generations = Generations(temporal, settings, storage, records)
        app.state.batches = Batches(temporal, settings, storage, records)
        app.state.uploads = Uploads(temporal, settings, storage, records)
        app.state.deliveries = deliveries_from_settings(settings, temporal, records)
        app.state.notifications = Notifications(temporal, settings, storage, records)
        secret = await asyncio.to_thread(session_secret, settings)
        app.state.sessions = SessionSigner(secret, settings.session_seconds)
        try:
            async with mcp_sessions(app.state.generations, app.state.batches) as mcp:
                app.state.mcp = mcp
                yield
        finally:
            await app.state.deliveries.aclose()
            records.dispose()

    app = FastAPI(
        title="storyreel",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(routes.router)
    app.include_router(batch_routes.router)
    # Before the providers' POST /v1/webhooks/{provider}: /secret is not a provider.
    app.include_router(notify_routes.secrets)
    app.include_router(notify_routes.deliveries)
    app.include_router(asset_routes.router)
    app.include_router(webhooks.router)
    app.include_router(metrics.router)
    app.include_router(session.router)
    # Agents: the same services as MCP tools (streamable HTTP; GET opens a stream, DELETE ends).
    app.router.routes.append(
        Route(MCP_PATH, McpEndpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False)
    )

    @app.exception_handler(StoryreelError)
    async def domain_error(_: Request, error: StoryreelError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(error, UnauthorizedError):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(error, RateLimitedError):
            headers["Retry-After"] = str(error.retry_after)
        return JSONResponse({"detail": str(error)}, status_code=http_status(error), headers=headers)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("api").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(html)

    return app
