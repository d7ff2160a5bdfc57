"""``storyreel mcp``: an MCP server on stdio that is the API's ``/mcp``, for local agents.

Nothing is decided here: tools, resources and their schemas are listed from the API, every
call is forwarded to it with the CLI's key, and its answer (a tool error included) comes back
as it was given; the progress the API reports on a call is relayed to the agent's own token.
So the rules stay in the API's services, and an agent on stdio sees what one on HTTP sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)

# As the SDK's own client: a tool may hold its answer (get_video waits up to 60 s).
TIMEOUT = httpx2.Timeout(30.0, read=300.0)

_Page = TypeVar("_Page", covariant=True)


class _Listing(Protocol[_Page]):
    """A paginated list request of the upstream session (tools, resources, templates)."""

    def __call__(self, *, params: PaginatedRequestParams | None = None) -> Awaitable[_Page]: ...


def _forward_listing(
    listing: _Listing[_Page],
) -> Callable[[ServerRequestContext[Any], PaginatedRequestParams | None], Awaitable[_Page]]:
    """A handler of a list request that asks upstream for the same page (cursor included)."""

    async def handler(
        _ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> _Page:
        return await listing(params=params)

    return handler


def bridge(upstream: ClientSession, name: str, version: str, instructions: str | None) -> Server:
    """A stdio-facing server whose every handler asks ``upstream`` (the API's session)."""

    async def call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        # The agent's progress token stays here: the API's session asks with its own.
        result = await upstream.call_tool(params.name, params.arguments, progress_callback=relay)
        assert isinstance(result, CallToolResult)  # neither input requests nor claims asked
        return result

    async def read_resource(
        _ctx: ServerRequestContext[Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        return await upstream.read_resource(params.uri)

    return Server(
        name,
        version=version,
        instructions=instructions,
        on_list_tools=_forward_listing(upstream.list_tools),
        on_call_tool=call_tool,
        on_list_resources=_forward_listing(upstream.list_resources),
        on_list_resource_templates=_forward_listing(upstream.list_resource_templates),
        on_read_resource=read_resource,
    )


async def serve_stdio(url: str, key: str) -> None:
    """Serve stdio until the agent closes it, every request answered by the MCP endpoint at
    ``url`` with ``key`` as the bearer."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as upstream,
    ):
        started = await upstream.initialize()
        info = started.server_info
        server = bridge(upstream, info.name, info.version, started.instructions)
        async with stdio_server() as (stdin, stdout):
            await server.run(stdin, stdout, server.create_initialization_options())
