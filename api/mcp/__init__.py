"""The MCP server at ``/mcp`` (streamable HTTP): the API's services as tools for agents.

Every tool calls the service the matching route calls (``Generations``, ``Batches``), so the
rules (quotas, ownership, what state allows what) stay in one place; a domain error becomes a
tool error carrying the API's own message, never a broken session. The endpoint takes the
same bearer key as ``/v1`` and sees only its owner's runs: another user's run is "not found".
``storyreel mcp`` (the CLI) bridges stdio to this endpoint for local agents.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from api.auth import RequestLimiter, authenticate, bearer_key
from api.batches import Batches
from api.mcp.identity import CALLER, Caller
from api.mcp.resources import add_resources
from api.mcp.tools import add_tools
from api.service import Generations
from storyreel import __version__
from storyreel.db import Records
from storyreel.errors import RateLimitedError, StoryreelError

MCP_PATH = "/mcp"
INSTRUCTIONS = """\
storyreel turns a script into a finished short video, every scene's clip made in parallel.
create_video starts one and answers its id and quote; get_video with wait_seconds (up to 60)
returns as soon as the run's status or a clip's status changes, so call it again with the
etag it answered until the status is completed, failed or cancelled (awaiting_approval:
approve_storyboard or edit_scene; awaiting_retry: retry_clip or finish_without_failed)."""


def quietly(build: Callable[[], MCPServer]) -> MCPServer:
    """``build()`` with the root logger as it was: the SDK's constructor calls
    ``logging.basicConfig``, and how this process logs is the deployment's to say."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return build()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def build_server(generations: Generations, batches: Batches) -> MCPServer:
    """The tools and resources, bound to the app's services."""
    server = quietly(lambda: MCPServer("storyreel", version=__version__, instructions=INSTRUCTIONS))
    add_tools(server, generations, batches)
    add_resources(server, generations)
    return server


@asynccontextmanager
async def mcp_sessions(
    generations: Generations, batches: Batches
) -> AsyncIterator[StreamableHTTPSessionManager]:
    """The MCP transport, running for as long as the app's lifespan (the SDK's session
    manager needs its task group open while requests come in)."""
    server = build_server(generations, batches)
    server.streamable_http_app(
        # Stateless: every request stands alone, so any API replica can answer it.
        stateless_http=True,
        # DNS rebinding protects servers that trust the network; every request here carries
        # a bearer key (never a cookie), so a page a browser was tricked into gets nothing.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    async with manager.run():
        yield manager


class McpEndpoint:
    """``/mcp``: the caller's bearer key, checked and counted as for ``/v1``, then the SDK's
    streamable HTTP transport (``app.state.mcp``, opened by the lifespan)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        records: Records = state.records
        limiter: RequestLimiter = state.limiter
        try:
            user = await authenticate(records, bearer_key(HTTPConnection(scope)))
            assert user.id is not None
            limiter.hit(user.id)
        except StoryreelError as error:
            await refusal(error)(scope, receive, send)
            return
        scope[CALLER] = Caller(user.id, user.name)
        # What the SDK knows its principals by (it binds sessions and request state to it).
        scope["user"] = AuthenticatedUser(
            AccessToken(token=f"user-{user.id}", client_id=f"user-{user.id}", scopes=[])
        )
        manager: StreamableHTTPSessionManager = state.mcp
        await manager.handle_request(scope, receive, send)


def refusal(error: StoryreelError) -> JSONResponse:
    """401 for a missing or bad key, 429 over the request limit: as ``/v1`` answers them."""
    if isinstance(error, RateLimitedError):
        headers = {"Retry-After": str(error.retry_after)}
        return JSONResponse({"detail": str(error)}, status_code=429, headers=headers)
    return JSONResponse(
        {"detail": str(error)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )
