"""Who an MCP request is from: the endpoint checks the key, tools and resources ask here."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

CALLER = "storyreel.caller"  # where the endpoint leaves the authenticated caller in the scope


@dataclass(frozen=True)
class Caller:
    """Who sent the MCP request: set by :class:`McpEndpoint` once the key checked out."""

    id: int
    name: str


def caller(ctx: Context) -> Caller:
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    found = scope.get(CALLER)
    if not isinstance(found, Caller):  # only a request past McpEndpoint reaches a tool
        raise ToolError("not authenticated: send 'Authorization: Bearer <key>'")
    return found


def base_url(ctx: Context) -> str:
    """This API's own URL as the MCP request reached it (for links a client can fetch)."""
    request = ctx.request_context.request
    return str(getattr(request, "base_url", "")).rstrip("/")
