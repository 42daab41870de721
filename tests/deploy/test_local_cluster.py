"""`deploy/local-cluster`, used as a person would: `up` starts PostgreSQL, Redis, Chroma, two replicas (and
the worker when this install has one) and nginx on loopback ports; `/ready` and `/invoke` answer through nginx
from both replicas, and from the other while one is killed; `start` brings it back; `down` leaves no recorded
process running and no data behind, and running it again is harmless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bench.support.postgres import ADMIN_URL
from tests.helpers import REPO_ROOT

# The whole topology started and stopped: .ci/run runs these after the default suite (-m cluster).
pytestmark = pytest.mark.cluster

LOCAL_CLUSTER = REPO_ROOT / "deploy" / "local-cluster"


@dataclass
class Cluster:
    state_dir: Path
    env: dict[str, str]
    state: dict[str, Any]

    def command(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(LOCAL_CLUSTER), "--dir", str(self.state_dir), *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


def running(pid: int, started: str) -> bool:
    """Whether that very process (same start time) is still there and not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


@contextmanager
def local_cluster(state_dir: Path, *options: str) -> Iterator[Cluster]:
    """`deploy/local-cluster up` with the extractive answerer in state_dir; always brought down."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "OPENAI_", "OLLAMA_"))}
    env.update(
        DOCENT_LLM_PROVIDER="extractive", DOCENT_PYTHON=sys.executable, DOCENT_TEST_PG_ADMIN_URL=ADMIN_URL
    )
    made = Cluster(state_dir, env, {})
    up = made.command("up", *options, timeout=420)
    try:
        assert up.returncode == 0, up.stdout + up.stderr[-6000:]
        made.state = json.loads((made.state_dir / "state.json").read_text())
        yield made
    finally:
        made.command("down", timeout=120)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """The default local cluster (its own PostgreSQL, two replicas, auth off) in this test's state dir."""
    with local_cluster(tmp_path / "cluster") as made:
        yield made


@pytest.mark.timeout(600)
def test_local_cluster_answers_through_nginx_from_both_replicas_and_down_stops_every_process(
    cluster: Cluster,
) -> None:
    state = cluster.state
    processes = {p["name"]: p for p in state["processes"]}
    assert {"postgres", "redis", "chroma", "api-1", "api-2", "nginx"} <= set(processes)
    assert all(running(p["pid"], p["started"]) for p in processes.values())
    base = state["url"]
    assert base == processes["nginx"]["url"] and base.startswith("http://127.0.0.1:")
    assert state["env"]["DOCENT_DATABASE_URL"].startswith("postgresql://")
    assert state["env"]["DOCENT_RATE_LIMIT_BACKEND"] == "redis"

    assert httpx.get(f"{base}/ready", timeout=30).status_code == 200
    answers = [
        httpx.post(f"{base}/invoke", json={"input": {"message": "What is bokashi?"}}, timeout=60)
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200] * 4, answers[-1].text
    assert all(a.json()["output"]["answer"] for a in answers)
    # Round robin: the four turns went to both replicas, as nginx's access log names them.
    access = (cluster.state_dir / "logs" / "nginx-access.log").read_text()
    for replica in ("api-1", "api-2"):
        assert f"upstream=127.0.0.1:{processes[replica]['port']}" in access

    status = cluster.command("status")
    assert status.returncode == 0, status.stdout + status.stderr

    # kill -9 one replica: nginx sends every request to the other; `start` brings it back on its port.
    assert cluster.command("stop", "api-1", "--kill").returncode == 0
    assert not running(processes["api-1"]["pid"], processes["api-1"]["started"])
    assert cluster.command("status").returncode == 3
    survived = [httpx.get(f"{base}/ready", timeout=30).status_code for _ in range(4)]
    assert survived == [200] * 4
    restarted = cluster.command("start", "api-1")
    assert restarted.returncode == 0, restarted.stderr
    again_state = json.loads((cluster.state_dir / "state.json").read_text())
    (api_1,) = [p for p in again_state["processes"] if p["name"] == "api-1"]
    assert api_1["pid"] != processes["api-1"]["pid"] and api_1["port"] == processes["api-1"]["port"]
    assert httpx.get(f"{api_1['url']}/ready", timeout=30).status_code == 200
    assert cluster.command("status").returncode == 0
    processes["api-1"] = api_1

    down = cluster.command("down")
    assert down.returncode == 0, down.stderr
    assert not [name for name, p in processes.items() if running(p["pid"], p["started"])]
    assert not Path(state["runtime_dir"]).exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/ready", timeout=5)
    again = cluster.command("down")
    assert again.returncode == 0 and "no cluster recorded" in again.stderr
    assert cluster.command("status").returncode == 3


@pytest.mark.slow  # a second whole cluster (~40 s): the default run covers `up` with the default options
@pytest.mark.timeout(600)
def test_local_cluster_on_a_shared_server_with_auth_on_accepts_its_key_and_drops_its_database(
    tmp_path: Path,
) -> None:
    with local_cluster(
        tmp_path / "cluster", "--postgres", "shared", "--auth", "on", "--replicas", "1"
    ) as made:
        base, url = made.state["url"], made.state["env"]["DOCENT_DATABASE_URL"]
        assert url.startswith("postgresql://postgres@127.0.0.1:5432/docent_cluster_")
        assert "postgres" not in {p["name"] for p in made.state["processes"]}
        key = (made.state_dir / "api-key").read_text().strip()
        body = {"input": {"message": "What is bokashi?"}}
        assert httpx.post(f"{base}/invoke", json=body, timeout=60).status_code == 401
        keyed = httpx.post(
            f"{base}/invoke", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        assert keyed.status_code == 200, keyed.text
        assert made.command("down").returncode == 0
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
    assert found == (0,)


def test_a_failed_up_says_why_and_stops_what_it_had_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "OPENAI_", "OLLAMA_"))}
    env.update(DOCENT_LLM_PROVIDER="no-such-provider", DOCENT_PYTHON=sys.executable)
    made = Cluster(tmp_path / "cluster", env, {})
    try:
        up = made.command("up", "--replicas", "1", timeout=420)
        assert up.returncode == 1
        assert "error:" in up.stderr and "llm_provider" in up.stderr  # the failing process's own log tail
        last = json.loads((made.state_dir / "last-state.json").read_text())
        assert {"postgres", "redis", "chroma"} <= {p["name"] for p in last["processes"]}
        assert not [p["name"] for p in last["processes"] if running(p["pid"], p["started"])]
        assert not Path(last["runtime_dir"]).exists()
        assert not (made.state_dir / "state.json").exists()
    finally:
        made.command("down")
