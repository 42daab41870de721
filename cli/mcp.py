"""`docent mcp`: the MCP server on stdin/stdout, for desktop clients, over the local stores (docs/mcp.md)."""

from __future__ import annotations

import importlib


def mcp() -> None:
    """Serve the MCP tools (search, ask, list_sources, ingest, job_status) on stdin/stdout over the local
    stores, for a desktop client that starts this command. Logs go to stderr."""
    import asyncio

    from core.settings import get_settings

    # The CLI never imports `api` (like `docent serve`, whose app uvicorn imports by name): the server is
    # found by name here.
    server = importlib.import_module("api.mcp")
    asyncio.run(server.serve_stdio(get_settings()))
