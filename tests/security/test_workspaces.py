"""Workspaces over a real `docent serve` on 127.0.0.1: two tenants, A and B, share one server and never see,
search, overwrite or delete each other's collections, sources, threads or jobs.

Every test here fails on the code before workspaces: `docent keys create --workspace` did not exist, and,
test by test, the docstrings say which behaviour was wrong before as well.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.helpers import docent_env, docent_server, ingest_sample, run_docent

A_SECRET = b"The aardvark vault opens with the passphrase PLUM-SEVENTEEN, spoken twice at dawn."
A_NOTES = b"Team A notes: the aardvark enclosure is cleaned every Tuesday by the morning shift."
B_NOTES = b"Team B notes: the badger sett is inspected every Friday by the evening shift."
QUESTION = "What passphrase opens the aardvark vault?"


def make_key(data_dir: Path, name: str, scopes: str, workspace: str) -> str:
    """A key from the real `docent keys create … --workspace` (the last line it prints)."""
    done = run_docent(
        ["keys", "create", name, "--scopes", scopes, "--workspace", workspace], docent_env(data_dir), 60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "content_base64": base64.b64encode(data).decode()}


def turn(message: str, thread_id: str | None = None, **knobs: object) -> dict[str, Any]:
    configurable: dict[str, object] = dict(knobs)
    if thread_id:
        configurable["thread_id"] = thread_id
    return {"input": {"message": message}, "config": {"configurable": configurable}}


class Keys:
    """Each workspace's ingest and query keys, and an admin key (in the default workspace)."""

    def __init__(self, data_dir: Path) -> None:
        self.a_ingest = make_key(data_dir, "a-loader", "ingest", "team-a")
        self.a_query = make_key(data_dir, "a-reader", "query", "team-a")
        self.b_ingest = make_key(data_dir, "b-loader", "ingest", "team-b")
        self.b_query = make_key(data_dir, "b-reader", "query", "team-b")
        self.admin = make_key(data_dir, "root", "admin", "default")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workspaces") / "data"


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> Keys:
    return Keys(data_dir)


@pytest.fixture(scope="module")
def base(data_dir: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("workspaces-log") / "server.log"
    with docent_server(data_dir, log, DOCENT_AUTH="on", DOCENT_RATE_LIMIT_PER_MINUTE="0") as url:
        yield url


def ingest(base: str, key: str, files: list[dict[str, str]], **body: object) -> dict[str, Any]:
    """Run one ingest job to its end; returns the finished job."""
    started = httpx.post(f"{base}/ingest", json={"files": files, **body}, headers=bearer(key), timeout=60)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(
            f"{base}/ingest/{started.json()['id']}", headers=bearer(key), timeout=30
        ).json()
        if job["status"] not in ("queued", "running"):
            assert job["status"] == "done", job
            return job
        time.sleep(0.2)
    raise TimeoutError(started.json()["id"])


@pytest.fixture(scope="module")
def filled(base: str, keys: Keys) -> dict[str, Any]:
    """A ingests its secret and its notes.txt; then B ingests its own notes.txt (the same file name)."""
    a_job = ingest(base, keys.a_ingest, [upload("secret.txt", A_SECRET), upload("notes.txt", A_NOTES)])
    b_job = ingest(base, keys.b_ingest, [upload("notes.txt", B_NOTES)])
    return {"a_job": a_job, "b_job": b_job}


def sources(base: str, key: str, **params: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{base}/sources", params=params, headers=bearer(key), timeout=30)
    assert reply.status_code == 200, reply.text
    listed: list[dict[str, Any]] = reply.json()
    return listed


def stored_collections(base: str, admin: str) -> dict[str, list[str]]:
    reply = httpx.get(f"{base}/workspaces", headers=bearer(admin), timeout=30)
    assert reply.status_code == 200, reply.text
    return {w["name"]: w["collections"] for w in reply.json()}


def test_b_lists_only_its_own_sources(base: str, keys: Keys, filled: dict[str, Any]) -> None:
    """Before: one shared collection, so B's GET /sources listed A's secret.txt."""
    a_ids = {s["id"] for s in sources(base, keys.a_query)}
    b_listed = sources(base, keys.b_query)
    assert [Path(s["uri"]).name for s in b_listed] == ["notes.txt"]
    assert not a_ids & {s["id"] for s in b_listed}
    assert all(s["collection"] == "docent" for s in b_listed)  # by the name B uses, not the stored one


def test_b_reuploading_a_file_name_does_not_overwrite_as_document(
    base: str, keys: Keys, filled: dict[str, Any]
) -> None:
    """Before: uploads went to `<data_dir>/uploads/<collection>/`, so B's notes.txt replaced A's."""
    a_notes = {Path(s["uri"]).name: s for s in sources(base, keys.a_query)}["notes.txt"]
    assert a_notes["content_hash"] == hashlib.sha256(A_NOTES).hexdigest()
    b_notes = sources(base, keys.b_query)[0]
    assert b_notes["content_hash"] == hashlib.sha256(B_NOTES).hexdigest()
    assert b_notes["uri"] != a_notes["uri"]


def test_b_never_finds_as_text_on_any_route(base: str, keys: Keys, filled: dict[str, Any]) -> None:
    """Before: every key searched every document, so B's answers quoted A's passphrase."""
    a_answer = httpx.post(f"{base}/invoke", json=turn(QUESTION), headers=bearer(keys.a_query), timeout=60)
    assert "PLUM-SEVENTEEN" in a_answer.text  # A finds its own secret: the question does reach it
    b = bearer(keys.b_query)
    replies = {
        "invoke": httpx.post(f"{base}/invoke", json=turn(QUESTION), headers=b, timeout=60).text,
        "stream": httpx.post(f"{base}/stream", json=turn(QUESTION), headers=b, timeout=60).text,
        "openai": httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "docent", "messages": [{"role": "user", "content": QUESTION}]},
            headers=b,
            timeout=60,
        ).text,
        "batch": httpx.post(
            f"{base}/batch", json={"inputs": [{"message": QUESTION}]}, headers=b, timeout=60
        ).text,
    }
    port = base.rsplit(":", 1)[1]
    with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=b) as socket:
        socket.send(json.dumps(turn(QUESTION)))
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["event"] not in ("end", "error"):
            frames.append(json.loads(socket.recv(timeout=60)))
        replies["ws"] = json.dumps(frames)
    for route, text in replies.items():
        assert "PLUM" not in text and "aardvark vault" not in text, route
        assert "secret.txt" not in text, route  # no citation of A's source either


def test_b_cannot_delete_as_source(base: str, keys: Keys, filled: dict[str, Any]) -> None:
    """Before: DELETE /sources/{id} with any ingest key removed A's source (200)."""
    a_secret = {Path(s["uri"]).name: s for s in sources(base, keys.a_query)}["secret.txt"]
    refused = httpx.delete(f"{base}/sources/{a_secret['id']}", headers=bearer(keys.b_ingest), timeout=30)
    assert refused.status_code == 404, refused.text
    assert a_secret["id"] in {s["id"] for s in sources(base, keys.a_query)}


def test_b_cannot_read_as_threads_or_jobs(base: str, keys: Keys, filled: dict[str, Any]) -> None:
    """A's thread and A's ingest job are a 404 to B's keys. (Keys were already told apart by name before;
    what fails before is the workspace: A and B could not be made, and shared everything else.)"""
    a_turn = httpx.post(
        f"{base}/invoke", json=turn(QUESTION, "a-thread"), headers=bearer(keys.a_query), timeout=60
    )
    assert a_turn.status_code == 200, a_turn.text
    b = bearer(keys.b_query)
    assert httpx.get(f"{base}/threads/a-thread", headers=b).status_code == 404
    assert httpx.get(f"{base}/threads/a-thread/export", headers=b).status_code == 404
    assert (
        httpx.post(f"{base}/invoke", json=turn("And?", "a-thread"), headers=b, timeout=60).status_code == 404
    )
    assert all(t["id"] != "a-thread" for t in httpx.get(f"{base}/threads", headers=b).json()["threads"])
    a_job = filled["a_job"]["id"]
    assert httpx.get(f"{base}/ingest/{a_job}", headers=bearer(keys.b_ingest)).status_code == 404
    assert httpx.get(f"{base}/ingest/{a_job}", headers=bearer(keys.a_ingest)).status_code == 200


def test_naming_an_unknown_collection_is_404_and_creates_none(
    base: str, keys: Keys, filled: dict[str, Any]
) -> None:
    """Before: reading a collection created it (get_or_create), so any query key could add collections, and
    B naming A's collection searched it."""
    before = stored_collections(base, keys.admin)
    b = bearer(keys.b_query)
    for n in range(5):
        name = f"nope-{n}"
        body = turn(QUESTION, collection=name)
        replies = {
            "invoke": httpx.post(f"{base}/invoke", json=body, headers=b, timeout=60),
            "stream": httpx.post(f"{base}/stream", json=body, headers=b, timeout=60),
            "sources": httpx.get(f"{base}/sources", params={"collection": name}, headers=b),
            "openai": httpx.post(
                f"{base}/v1/chat/completions",
                json={
                    "model": "docent",
                    "messages": [{"role": "user", "content": QUESTION}],
                    "collection": name,
                },
                headers=b,
                timeout=60,
            ),
        }
        for route, reply in replies.items():
            assert reply.status_code == 404, (route, reply.text)
            assert name in reply.text, route
    port = base.rsplit(":", 1)[1]
    with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=b) as socket:
        socket.send(json.dumps(turn(QUESTION, collection="nope-ws")))
        frame = json.loads(socket.recv(timeout=30))
        assert frame["event"] == "error" and frame["data"]["status"] == 404
    # The stored name of A's collection, named from B's workspace, is refused too.
    escaped = httpx.get(f"{base}/sources", params={"collection": "team-a--docent"}, headers=b)
    assert escaped.status_code in (404, 422) and "PLUM" not in escaped.text
    assert stored_collections(base, keys.admin) == before
    assert before["team-a"] == ["docent"] and before["team-b"] == ["docent"]


def test_a_key_recreated_under_a_revoked_name_does_not_get_its_threads(
    base: str, data_dir: Path, keys: Keys, filled: dict[str, Any]
) -> None:
    """Before: threads were owned by the key's name, so the new `carol` read the old `carol`'s threads."""
    old = make_key(data_dir, "carol", "query", "team-a")
    deadline = time.monotonic() + 10
    while httpx.get(f"{base}/threads", headers=bearer(old)).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first = httpx.post(f"{base}/invoke", json=turn(QUESTION, "carol-thread"), headers=bearer(old), timeout=60)
    assert first.status_code == 200, first.text
    assert run_docent(["keys", "revoke", "carol"], docent_env(data_dir)).returncode == 0
    new = make_key(data_dir, "carol", "query", "team-a")
    deadline = time.monotonic() + 10
    while httpx.get(f"{base}/threads", headers=bearer(new)).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert httpx.get(f"{base}/threads/carol-thread", headers=bearer(new)).status_code == 404
    assert httpx.get(f"{base}/threads", headers=bearer(new)).json()["total"] == 0
    again = httpx.post(f"{base}/invoke", json=turn("And?", "carol-thread"), headers=bearer(new), timeout=60)
    assert again.status_code == 404


def _legacy_data_dir(data_dir: Path) -> str:
    """A data dir as the code before workspaces left it: the sample ingested into `docent`, a keys file
    whose key has no workspace, and records whose threads are owned by key names. Returns the key."""
    ingest_sample(data_dir)
    key = "dk_legacy-key-made-before-workspaces"
    spec = {
        "name": "legacy",
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
        "scopes": ["query", "ingest"],
    }
    (data_dir / "api_keys.json").write_text(json.dumps({"keys": [spec]}))
    with sqlite3.connect(data_dir / "records.sqlite") as db:
        db.execute(
            "CREATE TABLE threads (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        db.executemany(
            "INSERT INTO threads VALUES (?, ?, ?)",
            [
                ("legacy-thread", "legacy", "2025-01-01T00:00:00"),
                ("departed-thread", "departed", "2025-01-01"),
            ],
        )
    return key


def test_a_data_dir_from_before_workspaces_is_served_as_default(tmp_path: Path) -> None:
    """Before: there was no `default` workspace to migrate into, and a key created later under a departed
    key's name (here `departed`) inherited that key's threads."""
    data_dir = tmp_path / "data"
    key = _legacy_data_dir(data_dir)
    with docent_server(data_dir, tmp_path / "server.log", DOCENT_AUTH="on") as base:
        listed = sources(base, key)
        assert listed and all(s["collection"] == "docent" for s in listed)
        answer = httpx.post(
            f"{base}/invoke",
            json=turn("How often should I turn a hot compost pile?"),
            headers=bearer(key),
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["output"]["citations"], answer.text
        assert httpx.get(f"{base}/threads/legacy-thread", headers=bearer(key)).status_code == 200
        newcomer = make_key(data_dir, "departed", "query", "default")
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/threads", headers=bearer(newcomer)).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"{base}/threads/departed-thread", headers=bearer(newcomer)).status_code == 404
    listed_keys = run_docent(["keys", "list", "--json"], docent_env(data_dir))
    assert {k["name"]: k["workspace"] for k in json.loads(listed_keys.stdout)["keys"]}["legacy"] == "default"
