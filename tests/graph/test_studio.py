"""`langgraph dev` (Studio's server) on the repo's langgraph.json, offline: graph, checkpointer, our app."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from core.services import Services
from graph.studio import StudioRuntime
from tests.helpers import REPO_ROOT, SAMPLE_CORPUS, VENV_BIN, docent_env, free_port, run_docent, running

QUESTION = "What temperature should a hot compost pile reach?"

# Nothing leaves the machine: no CLI analytics, no PyPI version check, no LangSmith tracing, no OTLP export.
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "OTEL_ENABLED": "false",
}


def studio_env(data_dir: Path) -> dict[str, str]:
    """The environment for `langgraph dev` over data_dir, with every LangSmith key and endpoint removed."""
    env = {k: v for k, v in docent_env(data_dir).items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    return {**env, **OFFLINE_ENV}


def live_group_members(pgid: int) -> list[int]:
    """Processes (zombies aside) still in process group pgid."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def not_git_ignored(names: set[str]) -> list[str]:
    """Those of the repo's top-level names that git would offer to commit."""
    return sorted(
        name
        for name in names
        if subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO_ROOT).returncode != 0
    )


async def test_studio_runtime_opens_services_once_and_closes_them_at_shutdown(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    closed: list[bool] = []
    real_close = services.close

    def fake_open(self: Services) -> Services:
        opened.append(self.settings)
        return services

    def counting_close() -> None:
        closed.append(True)
        real_close()

    monkeypatch.setattr(Services, "open_all", fake_open)
    monkeypatch.setattr(services, "close", counting_close)
    studio = StudioRuntime(services.settings)
    graph = await studio.graph()  # the factory may come first: it opens the services
    async with studio.serving() as saver:
        async with studio.borrow(services.settings) as docent:
            assert docent.services is services
            assert docent.checkpointer is saver
        assert await studio.graph() is graph
        assert not closed
    assert opened == [services.settings]
    assert closed == [True]
    assert studio.checkpointer is None


def test_langgraph_dev_serves_the_docent_graph_and_our_app(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = studio_env(data_dir)
    ingested = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], env)
    assert ingested.returncode == 0, ingested.stderr

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "langgraph-dev.log"
    command = [
        str(VENV_BIN / "langgraph"),
        "dev",
        "--config",
        str(REPO_ROOT / "langgraph.json"),
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    top_level_before = set(os.listdir(REPO_ROOT))
    with (
        running(command, env, f"{base}/ok", log, timeout=120) as server,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        # A run on a new thread, the way Studio starts one.
        thread_id = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        reply = client.post(
            f"/threads/{thread_id}/runs/wait", json={"assistant_id": "docent", "input": {"message": QUESTION}}
        )
        assert reply.status_code == 200, reply.text
        output = reply.json()
        assert "55" in output["answer"], output
        assert output["model"] == "extractive"
        assert any(c["source"].endswith("hot-vs-cold-composting.html") for c in output["citations"]), output

        # A follow-up on the same thread sees the first turn: state lives in our SQLite checkpointer.
        follow_up = client.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "docent", "input": {"message": "How often should it be turned?"}},
        )
        assert follow_up.status_code == 200, follow_up.text
        state = client.get(f"/threads/{thread_id}/state").raise_for_status().json()
        assert len(state["values"]["messages"]) == 4
        checkpoints = f"file:{data_dir / 'checkpoints.sqlite'}?mode=ro"
        with closing(sqlite3.connect(checkpoints, uri=True)) as db:
            saved = db.execute("SELECT count(*) FROM checkpoints WHERE thread_id=?", (thread_id,)).fetchone()
        assert saved[0] > 0

        # Studio's forms come from the assistant's schemas.
        assistants = client.post("/assistants/search", json={"graph_id": "docent"}).raise_for_status().json()
        assert assistants, "no assistant registered for graph docent"
        schemas = client.get(f"/assistants/{assistants[0]['assistant_id']}/schemas").raise_for_status().json()
        assert schemas["input_schema"] is not None and "message" in schemas["input_schema"]["properties"]
        assert schemas["output_schema"] is not None and "answer" in schemas["output_schema"]["properties"]

        # Our FastAPI app is mounted on the same server, over the same services.
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok" and "extractive" in health.json()["models"]
        invoked = client.post("/invoke", json={"input": {"message": QUESTION}})
        assert invoked.status_code == 200, invoked.text
        assert "55" in invoked.json()["output"]["answer"]

    deadline = time.monotonic() + 10
    while (left := live_group_members(server.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"langgraph dev left processes running: {left}"
    text = log.read_text(errors="replace")
    assert "BlockingError" not in text, text[-4000:]
    assert text.count("Using custom checkpointer: ThreadedSqliteSaver") == 1, text[-4000:]
    assert text.count("Docent services opened") == 1, text[-4000:]  # once per process, not per run or app
    assert not not_git_ignored(set(os.listdir(REPO_ROOT)) - top_level_before)
    assert not not_git_ignored({".langgraph_api"})
