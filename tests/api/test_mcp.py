"""The MCP server through the SDK's own client: `docent mcp` over stdio on a data dir with the sample
ingested, and streamable HTTP at /mcp of a real `docent serve` with API keys, scopes and workspaces."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tests.fixtures_http import Reply, Site, serving
from tests.helpers import VENV_BIN, create_key, docent_env, docent_server, ingest_sample, run_docent

QUESTION = "What temperature should a hot compost pile reach?"
QUERY_TOOLS = {"search", "ask", "list_sources"}
INGEST_TOOLS = {"ingest", "job_status"}
PAGE = (
    b"<html><head><title>Radiator care</title></head><body><article><h1>Radiator care</h1>"
    b"<p>Bleed each radiator every October with a square key until water, not air, comes out of the valve."
    b" A radiator that is cold at the top holds trapped air; one cold at the bottom holds sludge.</p>"
    b"</article></body></html>"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus, ingested once for the module."""
    return ingest_sample(tmp_path_factory.mktemp("mcp") / "data")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    """A query key and an ingest key in the default workspace; a query key and an ingest key in workspace
    `other`."""
    made: dict[str, str] = {}
    for name, scopes in (("other", "query"), ("other-writer", "query,ingest")):
        done = run_docent(
            ["keys", "create", name, "--scopes", scopes, "--workspace", "other"], docent_env(data_dir), 60
        )
        assert done.returncode == 0, done.stderr
        made[name] = done.stdout.strip().splitlines()[-1]
    return {
        "query": create_key(data_dir, "reader", "query"),
        "ingest": create_key(data_dir, "writer", "query,ingest"),
        **made,
    }


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """A page on 127.0.0.1 for the ingest tool to fetch."""
    with serving({"/radiators": Reply(PAGE)}) as running:
        yield running


@pytest.fixture(scope="module")
def base(
    data_dir: Path, keys: dict[str, str], site: Site, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real `docent serve` (uvicorn) with auth on, over the module's data dir; it may fetch `site` only
    (loopback is refused unless allow-listed)."""
    log = tmp_path_factory.mktemp("mcp-log") / "server.log"
    allow = f'["{site.base.removeprefix("http://")}"]'
    with docent_server(data_dir, log, DOCENT_AUTH="on", DOCENT_FETCH_ALLOW=allow) as url:
        yield url


def structured(result: CallToolResult) -> Any:
    """A tool's structured result (a list comes wrapped as `result`)."""
    assert not result.is_error, result.content
    content = result.structured_content
    assert content is not None
    return content.get("result", content) if set(content) == {"result"} else content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def http_client(base: str, key: str) -> Client:
    """An SDK client for /mcp that sends `key` as a bearer token."""
    session = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(f"{base}/mcp", http_client=session))


async def test_stdio_lists_tools_and_answers(data_dir: Path) -> None:
    """`docent mcp` spawned by the SDK's stdio client: every tool, and search/ask/list_sources over the
    local store."""
    params = StdioServerParameters(command=str(VENV_BIN / "docent"), args=["mcp"], env=docent_env(data_dir))
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == QUERY_TOOLS | INGEST_TOOLS
        passages = structured(await client.call_tool("search", {"query": QUESTION, "k": 3}))
        assert 0 < len(passages) <= 3
        assert {"source", "page", "score", "text"} <= set(passages[0])
        reply = structured(await client.call_tool("ask", {"question": QUESTION}))
        assert reply["answer"] and reply["thread_id"] and reply["model"]
        assert reply["citations"]
        sources = structured(await client.call_tool("list_sources", {}))
        assert sources and all("uri" in s for s in sources)
        missing = await client.call_tool("list_sources", {"collection": "no-such-collection"})
        assert "404" in error_text(missing)


def test_http_needs_a_key(base: str) -> None:
    """Without a valid key, /mcp is a 401 like every other route."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert httpx.post(f"{base}/mcp", json=body, timeout=30).status_code == 401
    bad = httpx.post(f"{base}/mcp", json=body, headers={"Authorization": "Bearer dk_nope"}, timeout=30)
    assert bad.status_code == 401


async def test_http_tools_follow_the_keys_scopes(base: str, keys: dict[str, str]) -> None:
    """A query key gets the query tools only; a key with the ingest scope gets the ingest tools too, and
    sees its own jobs."""
    async with http_client(base, keys["query"]) as client:
        assert {t.name for t in (await client.list_tools()).tools} == QUERY_TOOLS
        passages = structured(await client.call_tool("search", {"query": QUESTION, "k": 2}))
        assert 0 < len(passages) <= 2
        reply = structured(await client.call_tool("ask", {"question": QUESTION}))
        assert reply["answer"] and reply["citations"]
        follow_up = structured(
            await client.call_tool("ask", {"question": "And how long?", "thread_id": reply["thread_id"]})
        )
        assert follow_up["thread_id"] == reply["thread_id"]
        assert structured(await client.call_tool("list_sources", {}))
        refused = await client.call_tool("ingest", {"urls": ["https://example.com/"]})
        assert refused.is_error
    async with http_client(base, keys["ingest"]) as client:
        assert {t.name for t in (await client.list_tools()).tools} == QUERY_TOOLS | INGEST_TOOLS
        bad = await client.call_tool("ingest", {"urls": ["ftp://example.com/x"]})
        assert "422" in error_text(bad)
        unknown = await client.call_tool("job_status", {"job_id": "no-such-job"})
        assert "404" in error_text(unknown)


async def test_http_another_workspace_sees_nothing(base: str, keys: dict[str, str]) -> None:
    """A key of another workspace sees none of the default workspace's sources, passages or threads."""
    async with http_client(base, keys["query"]) as client:
        mine = structured(await client.call_tool("list_sources", {}))
        thread = structured(await client.call_tool("ask", {"question": QUESTION}))["thread_id"]
    assert mine
    async with http_client(base, keys["other"]) as client:
        assert structured(await client.call_tool("list_sources", {})) == []
        assert structured(await client.call_tool("search", {"query": QUESTION})) == []
        taken = await client.call_tool("ask", {"question": QUESTION, "thread_id": thread})
        assert "404" in error_text(taken)
    shown = json.dumps(mine)
    assert "compost" in shown.lower()


async def test_http_ingest_tool_runs_a_job_whose_page_search_then_finds(
    base: str, keys: dict[str, str], site: Site
) -> None:
    """`ingest` starts a job, `job_status` follows it to the end, and `search` finds the new page."""
    async with http_client(base, keys["ingest"]) as client:
        job = structured(await client.call_tool("ingest", {"urls": [site.url("/radiators")]}))
        deadline = time.monotonic() + 60
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.2)
            job = structured(await client.call_tool("job_status", {"job_id": job["id"]}))
        assert job["status"] == "done", job
        assert [r["status"] for r in job["results"]] == ["added"], job
        passages = structured(
            await client.call_tool("search", {"query": "How do I bleed a radiator with trapped air?", "k": 3})
        )
        assert any("radiators" in p["source"] for p in passages), passages
    async with http_client(base, keys["other-writer"]) as client:  # another workspace's job: not found
        assert "404" in error_text(await client.call_tool("job_status", {"job_id": job["id"]}))
