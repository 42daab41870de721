"""The MCP server (Model Context Protocol): tools `search`, `ask`, `list_sources` and, for keys with the
ingest scope, `ingest` and `job_status`. Each tool calls the same functions as its HTTP route (the workspace's
collections, thread ownership, question limits, ingest jobs), so it sees and may do what the key may.

Two transports: streamable HTTP at `/mcp` in the server (`McpEndpoint`: stateless, JSON replies, behind the
API keys), and stdio for desktop clients (`serve_stdio`, run by `docent mcp`: one local user, no key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, cast

from fastapi import HTTPException
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from api.deps import AppResources
from api.routes import ingest as ingest_routes
from api.routes import sources as sources_routes
from api.routes.invoke import answer
from api.schemas import Configurable, IngestRequest, InvokeRequest, search_filter
from api.security.auth import identify
from api.security.limits import check_question
from api.security.workspaces import readable_collection
from core.answering.providers import UnknownModelError
from core.retrieval.vector_store import CollectionError
from core.settings import Settings
from core.storage.keys import ANONYMOUS, Principal
from graph.multitask import ThreadBusyError

MCP_PATH = "/mcp"
PRINCIPAL_KEY = "docent.mcp_principal"
"""Where McpEndpoint leaves the caller it identified, in the request's ASGI scope, for the tools."""

INSTRUCTIONS = (
    "Docent answers questions about ingested web pages and PDFs, with citations. `search` returns passages,"
    " `ask` a cited answer (pass its thread_id back to follow up), `list_sources` what is ingested."
)
_CLIENT_ERRORS = (UnknownModelError, CollectionError, ThreadBusyError)


@dataclass(frozen=True)
class McpCaller:
    """Who calls a tool, and the connection the route functions read the server's resources from."""

    principal: Principal
    connection: Request


CallerOf = Callable[[Context], McpCaller]


@contextlib.contextmanager
def _as_tool_errors() -> Any:
    """A route's refusal (404, 422, 429, …) or a client error as the tool's error, with its message."""
    try:
        yield
    except HTTPException as exc:
        raise ToolError(f"{exc.status_code}: {exc.detail}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ToolError(f"422: {problems}") from None
    except _CLIENT_ERRORS as exc:
        raise ToolError(str(exc)) from None


def _resources(caller: McpCaller) -> AppResources:
    return cast(AppResources, caller.connection.app.state.docent)


def build_server(caller_of: CallerOf, *, query_tools: bool = True, ingest_tools: bool = True) -> MCPServer:
    """An MCP server with the query tools and/or the ingest tools; `caller_of` tells who calls."""
    server: MCPServer = MCPServer("docent", instructions=INSTRUCTIONS, version=version("docent-rag"))

    async def search(
        query: str,
        ctx: Context,
        k: int | None = None,
        collection: str | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Search the ingested documents: the k best passages (text, source, title, page, section, score).
        `filter` restricts the search (keys: source, kind, title, section, page, ingested_after,
        ingested_before; see docs/retrieval.md)."""
        caller = caller_of(ctx)
        services = _resources(caller).docent.services
        with _as_tool_errors():
            knobs = Configurable.model_validate({"k": k, "collection": collection, "filter": filter})
            check_question(caller.connection, query, knobs)
            name = await readable_collection(services, caller.principal, collection)
            where = search_filter(knobs.filter, "filter")
            passages = await asyncio.to_thread(
                services.retriever.search, query, k=k or services.settings.k, collection=name, where=where
            )
        return [dict(p) for p in passages]

    async def ask(
        question: str,
        ctx: Context,
        thread_id: str | None = None,
        k: int | None = None,
        collection: str | None = None,
    ) -> dict[str, Any]:
        """Answer a question from the ingested documents, with numbered citations. Pass the reply's
        thread_id to ask a follow-up on the same thread."""
        caller = caller_of(ctx)
        configurable = {"thread_id": thread_id, "k": k, "collection": collection}
        with _as_tool_errors():
            body = InvokeRequest.model_validate(
                {"input": {"message": question}, "config": {"configurable": configurable}}
            )
            reply = await answer(caller.connection, _resources(caller).docent, caller.principal, body)
        output = reply.output
        return {
            "answer": output["answer"],
            "citations": output["citations"],
            "thread_id": output["thread_id"],
            "model": output["model"],
            "degraded": output["degraded"],
        }

    async def list_sources(ctx: Context, collection: str | None = None) -> list[dict[str, Any]]:
        """The ingested sources of a collection (default: the server's): id, uri, title, kind, chunks."""
        caller = caller_of(ctx)
        with _as_tool_errors():
            found = await sources_routes.list_sources(
                _resources(caller).docent.services, caller.principal, collection
            )
        return [s.model_dump(mode="json") for s in found]

    async def ingest(urls: list[str], ctx: Context, collection: str | None = None) -> dict[str, Any]:
        """Start ingesting http(s) URLs into a collection, in the background; returns the job (poll it with
        job_status)."""
        caller = caller_of(ctx)
        with _as_tool_errors():
            body = IngestRequest.model_validate({"urls": urls, "collection": collection})
            job = await ingest_routes.start_ingest(
                body, caller.connection, _resources(caller), caller.principal
            )
        if isinstance(job, Response):  # a 409 (a job runs on the collection) or a 503 (queue full)
            detail = json.loads(bytes(job.body)).get("detail", "")
            raise ToolError(f"{job.status_code}: {detail}")
        return job.model_dump(mode="json")

    async def job_status(job_id: str, ctx: Context) -> dict[str, Any]:
        """An ingest job's status, its per-source results so far and its summary once done."""
        caller = caller_of(ctx)
        resources = _resources(caller)
        with _as_tool_errors():
            job = await ingest_routes.ingest_status(
                job_id, resources.ingest_jobs, resources.settings, caller.principal
            )
        return job.model_dump(mode="json")

    if query_tools:
        server.add_tool(search, structured_output=True)
        server.add_tool(ask, structured_output=True)
        server.add_tool(list_sources, structured_output=True)
    if ingest_tools:
        server.add_tool(ingest, structured_output=True)
        server.add_tool(job_status, structured_output=True)
    return server


def _http_caller(ctx: Context) -> McpCaller:
    """The caller McpEndpoint identified, and its HTTP request (whose app holds the resources)."""
    request = ctx.request_context.request
    if not isinstance(request, Request) or PRINCIPAL_KEY not in request.scope:
        raise ToolError("no identified caller on this request")
    return McpCaller(cast(Principal, request.scope[PRINCIPAL_KEY]), request)


class McpEndpoint:
    """`/mcp`, streamable HTTP: each request is identified by its API key (401 without a valid one, charged
    against the key's rate limit like any request) and served by the MCP server whose tools the key's scopes
    allow. Stateless (no MCP session to share across replicas), JSON replies."""

    def __init__(self) -> None:
        """The servers for each combination of scopes; `run` them in the app's lifespan."""
        # The API key authenticates every request, so DNS rebinding gains a page nothing; behind a proxy the
        # Host header is the proxy's, which such protection would refuse.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self._managers = {
            (query, ingest): StreamableHTTPSessionManager(
                app=build_server(_http_caller, query_tools=query, ingest_tools=ingest)._lowlevel_server,
                json_response=True,
                stateless=True,
                security_settings=security,
            )
            for query, ingest in ((True, True), (True, False), (False, True))
        }

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run the session managers (in the app's lifespan)."""
        async with contextlib.AsyncExitStack() as stack:
            for manager in self._managers.values():
                await stack.enter_async_context(manager.run())
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Identify the caller, then hand the request to the server for its scopes."""
        request = Request(scope, receive)
        try:
            principal = await identify(request)
        except HTTPException as exc:
            refusal = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            await refusal(scope, receive, send)
            return
        tools = (principal.allows("query"), principal.allows("ingest"))
        if tools not in self._managers:
            refusal = JSONResponse({"detail": "this key lacks the `query` scope"}, status_code=403)
            await refusal(scope, receive, send)
            return
        await self._managers[tools].handle_request({**scope, PRINCIPAL_KEY: principal}, receive, send)


class _ResourcesApp:
    """What a route function reads the resources from (`connection.app.state.docent`), for stdio."""

    def __init__(self, resources: AppResources) -> None:
        self.state = State({"docent": resources})


async def serve_stdio(settings: Settings) -> None:
    """`docent mcp`: the MCP server on stdin/stdout over the local stores, as their one user (every scope,
    the default workspace, like DOCENT_AUTH=off); ingest jobs run in this process while it runs."""
    from api.app import open_resources  # api.app builds on this module

    async with open_resources(settings, keys=False) as resources:
        local = Request({"type": "http", "app": _ResourcesApp(resources), "headers": [], "path": MCP_PATH})
        caller = McpCaller(ANONYMOUS, local)
        await build_server(lambda _ctx: caller).run_stdio_async()
