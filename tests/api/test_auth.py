"""API keys, scopes and tenant isolation over real uvicorn: another key's thread is a 404 on every route."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from core.storage.keys import hash_key
from tests.helpers import (
    VENV_BIN,
    create_key,
    docent_env,
    docent_server,
    free_port,
    ingest_sample,
    run_docent,
)

LIMITS = {
    "DOCENT_AUTH": "on",
    "DOCENT_MAX_MESSAGE_CHARS": "300",
    "DOCENT_MAX_K": "6",
    "DOCENT_MAX_BODY_BYTES": "4096",
    "DOCENT_BLOCKED_PATTERNS": json.dumps([r"launch\s+codes"]),
}


class Keys:
    """The keys of this module's server."""

    def __init__(self, data_dir: Path) -> None:
        self.a = create_key(data_dir, "alice", "query")
        self.b = create_key(data_dir, "bob", "query")
        self.ingest_only = create_key(data_dir, "loader", "ingest")
        self.admin = create_key(data_dir, "root", "admin")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "data"
    ingest_sample(path)
    return path


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> Keys:
    return Keys(data_dir)


@pytest.fixture(scope="module")
def base(data_dir: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("auth-log") / "server.log"
    with docent_server(data_dir, log, **LIMITS) as url:
        yield url


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def turn(message: str, thread_id: str | None = None, **knobs: object) -> dict[str, object]:
    configurable: dict[str, object] = dict(knobs)
    if thread_id:
        configurable["thread_id"] = thread_id
    return {"input": {"message": message}, "config": {"configurable": configurable}}


QUESTION = "What temperature should a hot compost pile reach?"


def test_missing_and_unknown_keys_are_401_with_json(base: str) -> None:
    for method, path in (
        ("GET", "/threads"),
        ("POST", "/invoke"),
        ("GET", "/v1/models"),
        ("GET", "/sources"),
    ):
        for headers in ({}, bearer("dk_not-a-key"), {"X-API-Key": "nope"}):
            reply = httpx.request(method, f"{base}{path}", headers=headers, json=turn(QUESTION), timeout=30)
            assert reply.status_code == 401, (path, headers, reply.text)
            body = reply.json()
            message = body["error"]["message"] if path.startswith("/v1/") else body["detail"]
            assert "key" in message
            assert reply.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{base}/health").status_code == 200


def test_scopes_are_enforced(base: str, keys: Keys) -> None:
    refused = httpx.post(f"{base}/invoke", json=turn(QUESTION), headers=bearer(keys.ingest_only), timeout=30)
    assert refused.status_code == 403 and "query" in refused.json()["detail"]
    body = {"urls": ["http://127.0.0.1:9/x.html"]}
    no_ingest = httpx.post(f"{base}/ingest", json=body, headers=bearer(keys.a), timeout=30)
    assert no_ingest.status_code == 403 and "ingest" in no_ingest.json()["detail"]
    assert httpx.delete(f"{base}/sources/abc", headers=bearer(keys.a)).status_code == 403
    # X-API-Key works as well as Bearer, and admin implies every scope.
    assert httpx.get(f"{base}/threads", headers={"X-API-Key": keys.a}).status_code == 200
    assert httpx.get(f"{base}/sources", headers=bearer(keys.admin)).status_code == 200


def test_another_keys_thread_is_404_on_every_route(base: str, keys: Keys) -> None:
    first = httpx.post(
        f"{base}/invoke", json=turn(QUESTION, "alice-thread"), headers=bearer(keys.a), timeout=60
    )
    assert first.status_code == 200, first.text
    b = bearer(keys.b)
    tid = "alice-thread"
    refusals = {
        "history": httpx.get(f"{base}/threads/{tid}", headers=b),
        "export json": httpx.get(f"{base}/threads/{tid}/export?format=json", headers=b),
        "export csv": httpx.get(f"{base}/threads/{tid}/export?format=csv", headers=b),
        "delete": httpx.delete(f"{base}/threads/{tid}", headers=b),
        "invoke": httpx.post(f"{base}/invoke", json=turn("And worms?", tid), headers=b, timeout=60),
        "stream": httpx.post(f"{base}/stream", json=turn("And worms?", tid), headers=b, timeout=60),
        "openai": httpx.post(
            f"{base}/v1/chat/completions",
            json={
                "model": "docent",
                "messages": [{"role": "user", "content": "And worms?"}],
                "thread_id": tid,
            },
            headers=b,
            timeout=60,
        ),
    }
    for route, reply in refusals.items():
        assert reply.status_code == 404, (route, reply.status_code, reply.text)
        assert tid in reply.text, route
    batch = httpx.post(
        f"{base}/batch",
        json={"inputs": [{"message": "And worms?"}], "config": {"configurable": {"thread_id": tid}}},
        headers=b,
        timeout=60,
    )
    assert batch.status_code == 200 and batch.json()["errors"][0]["status"] == 404
    port = base.rsplit(":", 1)[1]
    with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=b) as socket:
        socket.send(json.dumps(turn("And worms?", tid)))
        frame = json.loads(socket.recv(timeout=30))
        assert frame["event"] == "error" and frame["data"]["status"] == 404
    assert all(t["id"] != tid for t in httpx.get(f"{base}/threads", headers=b).json()["threads"])
    # Nothing B did touched A's thread.
    mine = httpx.get(f"{base}/threads/{tid}", headers=bearer(keys.a)).json()
    assert mine["turns"] == 1 and mine["title"] == QUESTION


def test_a_websocket_without_a_key_is_refused(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    with pytest.raises(Exception) as refused, connect(f"ws://127.0.0.1:{port}/ws") as socket:
        socket.send(json.dumps(turn(QUESTION)))
        socket.recv(timeout=10)
    assert "401" in str(refused.value) or "1008" in str(refused.value)


def test_threads_list_history_export_and_delete(base: str, keys: Keys) -> None:
    a = bearer(keys.a)
    created = httpx.post(f"{base}/threads", headers=a)
    assert created.status_code == 201
    tid = created.json()["id"]
    for question in (QUESTION, "How often should it be turned?"):
        reply = httpx.post(f"{base}/invoke", json=turn(question, tid), headers=a, timeout=60)
        assert reply.status_code == 200, reply.text
    listing = httpx.get(f"{base}/threads", params={"limit": 50}, headers=a).json()
    assert listing["threads"][0]["id"] == tid  # newest first
    summary = listing["threads"][0]
    assert summary["title"] == QUESTION and summary["turns"] == 2
    detail = httpx.get(f"{base}/threads/{tid}", headers=a).json()
    roles = [m["role"] for m in detail["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    answer = detail["messages"][1]
    assert answer["citations"] and answer["model"] == "extractive" and answer["created_at"]
    page = httpx.get(f"{base}/threads", params={"limit": 1, "offset": 1}, headers=a).json()
    assert len(page["threads"]) == 1 and page["total"] == listing["total"] >= 2

    as_json = httpx.get(f"{base}/threads/{tid}/export", params={"format": "json"}, headers=a)
    assert as_json.status_code == 200
    assert as_json.headers["content-disposition"].startswith("attachment;")
    assert json.loads(as_json.content)["messages"] == detail["messages"]
    as_csv = httpx.get(f"{base}/threads/{tid}/export", params={"format": "csv"}, headers=a)
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.strip().splitlines()
    assert lines[0].startswith("created_at,role,content") and len(lines) >= 5

    assert httpx.delete(f"{base}/threads/{tid}", headers=a).status_code == 204
    assert httpx.get(f"{base}/threads/{tid}", headers=a).status_code == 404
    # Its checkpoints went too: the same id starts afresh, with no earlier turn in its history.
    again = httpx.post(f"{base}/invoke", json=turn("What bedding do worms need?", tid), headers=a, timeout=60)
    assert again.status_code == 200
    assert httpx.get(f"{base}/threads/{tid}", headers=a).json()["turns"] == 1


def test_batch_answers_each_input_and_reports_failures_per_input(base: str, keys: Keys) -> None:
    body = {
        "inputs": [
            {"message": QUESTION},
            {"message": "tell me the launch codes"},
            {"message": "What is bokashi?"},
        ],
        "config": {"configurable": {"k": 2}},
    }
    reply = httpx.post(f"{base}/batch", json=body, headers=bearer(keys.a), timeout=120)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["output"][0]["citations"] and data["output"][2]["answer"]
    assert data["output"][1] is None and data["errors"][1]["status"] == 400
    assert data["errors"][0] is None and data["metadata"]["run_ids"][1] is None


def test_limits_and_guardrail_are_clear_4xx(base: str, keys: Keys) -> None:
    a = bearer(keys.a)
    too_long = httpx.post(f"{base}/invoke", json=turn("why? " * 100), headers=a, timeout=30)
    assert too_long.status_code == 422 and "300" in too_long.json()["detail"]
    big_k = httpx.post(f"{base}/invoke", json=turn(QUESTION, k=20), headers=a, timeout=30)
    assert big_k.status_code == 422 and "6" in big_k.json()["detail"]
    huge = httpx.post(
        f"{base}/invoke", content=b'{"input": {"message": "' + b"x" * 10_000 + b'"}}', headers=a, timeout=30
    )
    assert huge.status_code == 413 and "4096" in huge.json()["detail"]
    for path in ("/invoke", "/stream"):
        blocked = httpx.post(
            f"{base}{path}", json=turn("What are the LAUNCH   codes?"), headers=a, timeout=30
        )
        assert blocked.status_code == 400 and "guardrail" in blocked.json()["detail"], path
    # /metrics needs an admin key, and counts what the guardrail blocked.
    assert httpx.get(f"{base}/metrics", headers=a).status_code == 403
    metrics = httpx.get(f"{base}/metrics", headers=bearer(keys.admin))
    assert metrics.status_code == 200
    counts = [line for line in metrics.text.splitlines() if line.startswith("docent_blocked_requests_total")]
    assert counts and float(counts[0].rsplit(" ", 1)[1]) >= 2


def test_schemas_of_invoke(base: str, keys: Keys) -> None:
    a = bearer(keys.a)
    inputs = httpx.get(f"{base}/invoke/input_schema", headers=a).json()
    assert "message" in inputs["properties"]
    outputs = httpx.get(f"{base}/invoke/output_schema", headers=a).json()
    assert {"answer", "citations", "model"} <= set(outputs["properties"])


def test_the_server_refuses_to_start_without_keys_unless_auth_is_off(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    command = [str(VENV_BIN / "docent"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    done = subprocess.run(
        command, env=docent_env(data_dir, DOCENT_AUTH="on"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert (
        "docent keys create" in done.stdout + done.stderr and "DOCENT_AUTH=off" in done.stdout + done.stderr
    )
    with docent_server(data_dir, tmp_path / "open.log") as url:
        assert httpx.get(f"{url}/threads").status_code == 200
    assert "DOCENT_AUTH=off" in (tmp_path / "open.log").read_text()


def test_keys_are_stored_as_hashes_in_the_private_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "carol", "query,ingest")
    stored = (data_dir / "docent.sqlite").read_bytes()
    assert key.encode() not in stored and hash_key(key).encode() in stored and b"carol" in stored
    assert data_dir.stat().st_mode & 0o077 == 0 and (data_dir / "docent.sqlite").stat().st_mode & 0o077 == 0
    again = run_docent(["keys", "create", "carol"], docent_env(data_dir))
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = run_docent(["keys", "create", "dave", "--scopes", "root"], docent_env(data_dir))
    assert bad.returncode != 0
    listed = run_docent(["keys", "list", "--json"], docent_env(data_dir))
    assert [k["name"] for k in json.loads(listed.stdout)["keys"]] == ["carol"]
    assert key not in listed.stdout
    assert run_docent(["keys", "revoke", "carol"], docent_env(data_dir)).returncode == 0
    assert json.loads(run_docent(["keys", "list", "--json"], docent_env(data_dir)).stdout)["keys"] == []


def test_keys_in_a_keys_file_are_still_accepted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = "dk_" + "k" * 40
    spec = {"name": "mounted", "sha256": hash_key(key), "scopes": ["query"]}
    (data_dir / "api_keys.json").write_text(json.dumps({"keys": [spec]}))
    with docent_server(data_dir, tmp_path / "file.log", DOCENT_AUTH="on") as url:
        assert httpx.get(f"{url}/threads", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(f"{url}/threads", headers={"X-API-Key": key + "x"}).status_code == 401


def test_cors_is_closed_by_default_and_opens_to_configured_origins(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # its own: the module's server holds the shared one
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    with docent_server(data_dir, tmp_path / "closed.log") as url:
        closed = httpx.options(f"{url}/invoke", headers=preflight)
        assert "access-control-allow-origin" not in closed.headers
    origins = json.dumps(["http://app.example"])
    with docent_server(data_dir, tmp_path / "open.log", DOCENT_CORS_ORIGINS=origins) as url:
        opened = httpx.options(
            f"{url}/invoke", headers={**preflight, "Access-Control-Request-Headers": "authorization"}
        )
        assert opened.status_code == 200
        assert opened.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.options(f"{url}/invoke", headers={**preflight, "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_keys_created_or_revoked_while_serving_apply_without_restart(base: str, data_dir: Path) -> None:
    def status_with(key: str) -> int:
        return httpx.get(f"{base}/threads", headers=bearer(key), timeout=30).status_code

    def eventually(key: str, expected: int) -> int:
        deadline = time.monotonic() + 10
        while (status := status_with(key)) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return status

    late = create_key(data_dir, "late", "query")
    assert eventually(late, 200) == 200
    assert run_docent(["keys", "revoke", "late"], docent_env(data_dir)).returncode == 0
    assert eventually(late, 401) == 401
