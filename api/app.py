"""The FastAPI application: ``create_app()`` with a lifespan holding one Temporal client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from temporalio.client import Client

from api import routes
from api.service import Generations
from storyreel import __version__
from storyreel.errors import ConflictError, NotFoundError, StoryreelError
from storyreel.settings import Settings, get_settings
from storyreel.storage import storage_from_settings
from storyreel.temporal import connect

DESCRIPTION = """
Turn a script into a finished short video: every scene's clip is generated **in parallel**,
durably, on Temporal. Start a generation, follow it (state or WebSocket events), retry a
failed clip, download the video. Each run is also visible in the Temporal Web UI.
"""


def http_status(error: StoryreelError) -> int:
    """One mapping from domain errors to HTTP answers."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    return 422 if not error.retryable else 503


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the app; ``client`` lets tests share one Temporal connection."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temporal = client or await connect(settings)
        storage = storage_from_settings(settings)
        app.state.settings = settings
        app.state.client = temporal
        app.state.storage = storage
        app.state.generations = Generations(temporal, storage)
        yield

    app = FastAPI(
        title="storyreel",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(routes.router)

    @app.exception_handler(StoryreelError)
    async def domain_error(_: Request, error: StoryreelError) -> JSONResponse:
        status = (
            404
            if isinstance(error, NotFoundError)
            else 409
            if isinstance(error, ConflictError)
            else 422
            if not error.retryable
            else 503
        )
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("api").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(html)

    return app
