"""Idempotency-Key on POST /invoke, /v1/chat/completions and /ingest, over real uvicorn on SQLite and on
PostgreSQL: a retry gets the first response back and runs nothing again."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, insert, select

from api.idempotency import REPLAYED_HEADER, request_hash
from api.schemas import InvokeRequest
from bench.support.postgres import temporary_database
from core.settings import Settings
from core.storage.db import make_engine, open_database, upgrade
from core.storage.idempotency import CLAIM_STALE_S, IdempotencyStore
from core.storage.models import idempotency
from tests.helpers import REDIS_URL, docent_env, docent_server, run_docent

OWNER = "anonymous@default"  # auth off: every request is the anonymous principal's, in the default workspace


@dataclass(frozen=True)
class Server:
    base: str
    engine: Engine


def _clear_redis(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        if keys := list(client.scan_iter(match=f"{prefix}:*")):
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Docent server per backend for the module; tests use keys of their own."""
    data_dir = tmp_path_factory.mktemp(f"idempotency-{request.param}") / "data"
    env = {"DOCENT_TURN_WAIT_S": "2"}
    with ExitStack() as stack:
        if request.param == "postgresql":
            prefix = f"docent-test-{uuid.uuid4().hex}"
            stack.callback(_clear_redis, prefix)
            url = stack.enter_context(temporary_database())
            env |= {"DOCENT_DATABASE_URL": url, "DOCENT_REDIS_URL": REDIS_URL, "DOCENT_REDIS_PREFIX": prefix}
            upgraded = run_docent(["db", "upgrade"], docent_env(data_dir, **env))
            assert upgraded.returncode == 0, upgraded.stderr
        base = stack.enter_context(docent_server(data_dir, data_dir.parent / "server.log", **env))
        engine = make_engine(Settings(data_dir=data_dir, database_url=env.get("DOCENT_DATABASE_URL")))
        stack.callback(engine.dispose)
        yield Server(base, engine)


def _invoke_body(message: str, **configurable: object) -> dict[str, Any]:
    return {"input": {"message": message}, "config": {"configurable": configurable}}


def _post(base: str, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=60)


def _human_turns(base: str, thread_id: str) -> int:
    history = httpx.get(f"{base}/threads/{thread_id}", timeout=10)
    assert history.status_code == 200, history.text
    return sum(m["role"] == "user" for m in history.json()["messages"])


def test_a_retry_with_the_same_key_gets_the_first_answer_and_runs_no_second_turn(server: Server) -> None:
    key, body = uuid.uuid4().hex, _invoke_body("How often should I turn a compost pile?")
    first = _post(server.base, "/invoke", body, key)
    retry = _post(server.base, "/invoke", body, key)
    assert first.status_code == retry.status_code == 200, first.text
    assert REPLAYED_HEADER.lower() not in first.headers
    assert retry.headers[REPLAYED_HEADER] == "true"
    assert retry.json() == first.json()  # the same new thread and run: not a second turn on a new thread
    assert _human_turns(server.base, first.json()["output"]["thread_id"]) == 1
    again = _post(server.base, "/invoke", body, None)  # without a key, the same body is a new turn
    assert again.json()["output"]["thread_id"] != first.json()["output"]["thread_id"]


def test_the_same_key_with_another_body_is_refused_with_a_409(server: Server) -> None:
    key = uuid.uuid4().hex
    assert _post(server.base, "/invoke", _invoke_body("What is bokashi?"), key).status_code == 200
    reused = _post(server.base, "/invoke", _invoke_body("What is vermicompost?"), key)
    assert reused.status_code == 409
    assert "different request body" in reused.json()["detail"]


def test_concurrent_requests_with_one_key_run_one_turn(server: Server) -> None:
    key, body = uuid.uuid4().hex, _invoke_body("What temperature should a hot compost pile reach?")

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
            headers = {"Idempotency-Key": key}
            return await asyncio.gather(
                *(client.post("/invoke", json=body, headers=headers) for _ in range(6))
            )

    replies = asyncio.run(race())
    assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
    assert len({r.json()["output"]["thread_id"] for r in replies}) == 1
    assert sum(REPLAYED_HEADER.lower() not in r.headers for r in replies) == 1
    assert _human_turns(server.base, replies[0].json()["output"]["thread_id"]) == 1


def test_a_failed_request_is_not_kept_so_its_key_runs_again(server: Server) -> None:
    key = uuid.uuid4().hex
    bad = _invoke_body("What is bokashi?", model="no-such-model")
    for _ in range(2):
        failed = _post(server.base, "/invoke", bad, key)
        assert failed.status_code == 400 and REPLAYED_HEADER.lower() not in failed.headers
    fixed = _post(server.base, "/invoke", _invoke_body("What is bokashi?"), key)
    assert fixed.status_code == 200 and REPLAYED_HEADER.lower() not in fixed.headers


def _claim(server: Server, key: str, body: dict[str, Any], age_s: float, run_id: str | None = None) -> None:
    """A claim on `key` as a replica running (or dead for) `age_s` would have left it."""
    at = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(timespec="milliseconds")
    digest = request_hash(InvokeRequest.model_validate(body))
    with server.engine.begin() as db:
        db.execute(
            insert(idempotency).values(
                owner=OWNER, route="/invoke", key=key, request_hash=digest, created_at=at, run_id=run_id
            )
        )


def test_a_retry_while_the_first_request_runs_waits_then_gets_a_409(server: Server) -> None:
    key, body = uuid.uuid4().hex, _invoke_body("What is bokashi?")
    _claim(server, key, body, age_s=0)
    busy = _post(server.base, "/invoke", body, key)  # waits DOCENT_TURN_WAIT_S=2 for an answer first
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert "still running" in busy.json()["detail"]


def test_a_key_whose_first_request_died_with_its_replica_is_taken_over(server: Server) -> None:
    key, body = uuid.uuid4().hex, _invoke_body("What is bokashi?")
    _claim(server, key, body, age_s=CLAIM_STALE_S + 5)
    taken = _post(server.base, "/invoke", body, key)
    assert taken.status_code == 200 and REPLAYED_HEADER.lower() not in taken.headers
    assert _post(server.base, "/invoke", body, key).json() == taken.json()


def test_a_failed_retry_of_a_dead_replicas_run_leaves_that_run_to_the_next_retry(server: Server) -> None:
    """A retry that took a dead replica's claim over and failed (here: a 400; in the load drill, a 409 on the
    thread the dead replica still held) gives the claim back with its run id, stale at once."""
    key, run_id = uuid.uuid4().hex, str(uuid.uuid4())
    bad = _invoke_body("What is bokashi?", model="no-such-model")
    _claim(server, key, bad, age_s=CLAIM_STALE_S + 5, run_id=run_id)
    for _ in range(2):  # each retry takes the claim over at once (no 409 "still running"), and fails
        failed = _post(server.base, "/invoke", bad, key)
        assert failed.status_code == 400, failed.text
        with server.engine.connect() as db:
            row = db.execute(
                select(idempotency.c.run_id, idempotency.c.status_code).where(idempotency.c.key == key)
            ).one()
        assert (row.run_id, row.status_code) == (run_id, None)


def test_a_turn_its_dead_replica_finished_but_never_answered_is_returned_not_run_again(
    server: Server,
) -> None:
    """The replica stored the turn (records, checkpoint) and died before it kept the answer under the key."""
    thread = f"t-{uuid.uuid4().hex[:8]}"
    first = _post(server.base, "/invoke", _invoke_body("What is bokashi?", thread_id=thread), None)
    assert first.status_code == 200
    run_id = first.json()["metadata"]["run_id"]
    key, body = uuid.uuid4().hex, _invoke_body("What is bokashi?", thread_id=thread)
    _claim(server, key, body, age_s=CLAIM_STALE_S + 5, run_id=run_id)
    retried = _post(server.base, "/invoke", body, key)
    assert retried.status_code == 200, retried.text
    assert retried.json()["metadata"]["run_id"] == run_id
    assert retried.json()["output"] == first.json()["output"]
    assert _human_turns(server.base, thread) == 1  # the retry ran no second turn
    assert _post(server.base, "/invoke", body, key).json() == retried.json()


def test_chat_completions_replay_and_a_streamed_request_with_a_key_is_refused(server: Server) -> None:
    key = uuid.uuid4().hex
    body = {"model": "docent", "messages": [{"role": "user", "content": "What is bokashi?"}]}
    first = _post(server.base, "/v1/chat/completions", body, key)
    retry = _post(server.base, "/v1/chat/completions", body, key)
    assert first.status_code == retry.status_code == 200, first.text
    assert retry.json() == first.json() and retry.headers[REPLAYED_HEADER] == "true"
    assert _human_turns(server.base, first.json()["thread_id"]) == 1
    streamed = _post(server.base, "/v1/chat/completions", {**body, "stream": True}, uuid.uuid4().hex)
    assert streamed.status_code == 400
    assert "stream" in streamed.json()["error"]["message"]


def test_ingest_with_a_key_starts_one_job(server: Server) -> None:
    key = uuid.uuid4().hex
    note = base64.b64encode(b"Bokashi ferments kitchen scraps with bran.").decode()
    body = {"files": [{"name": f"{key}.txt", "content_base64": note}], "collection": f"c{key[:8]}"}
    first = _post(server.base, "/ingest", body, key)
    retry = _post(server.base, "/ingest", body, key)
    assert first.status_code == retry.status_code == 202, first.text
    assert retry.json()["id"] == first.json()["id"] and retry.headers[REPLAYED_HEADER] == "true"


def test_two_replicas_racing_on_one_key_run_one_turn(pg_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = {"DOCENT_DATABASE_URL": pg_url, "DOCENT_REDIS_URL": REDIS_URL, "DOCENT_REDIS_PREFIX": redis_prefix}
    upgraded = run_docent(["db", "upgrade"], docent_env(tmp_path / "a", **env))
    assert upgraded.returncode == 0, upgraded.stderr
    key, body = uuid.uuid4().hex, _invoke_body("What is bokashi?")

    async def race(bases: list[str]) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, headers={"Idempotency-Key": key}) as client:
            return await asyncio.gather(*(client.post(f"{bases[n % 2]}/invoke", json=body) for n in range(8)))

    with (
        docent_server(tmp_path / "a", tmp_path / "a.log", **env) as a,
        docent_server(tmp_path / "b", tmp_path / "b.log", **env) as b,
    ):
        replies = asyncio.run(race([a, b]))
        assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies]
        assert len({r.json()["output"]["thread_id"] for r in replies}) == 1
        assert sum(REPLAYED_HEADER.lower() not in r.headers for r in replies) == 1
        thread = replies[0].json()["output"]["thread_id"]
        assert _human_turns(a, thread) == _human_turns(b, thread) == 1


# --------------------------------------------------------------------------------- the store itself


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ExitStack() as stack:
        url = stack.enter_context(temporary_database()) if request.param == "postgresql" else None
        settings = Settings(data_dir=tmp_path, database_url=url)
        if url:
            engine = make_engine(settings)
            upgrade(engine)
        else:
            engine = open_database(settings)
        stack.callback(engine.dispose)
        yield engine


def test_keys_belong_to_their_owner_and_route(store_engine: Engine) -> None:
    store = IdempotencyStore(store_engine, ttl_s=60)
    assert store.claim("a@default", "/invoke", "k", "h1").state == "claimed"
    assert store.claim("a@default", "/invoke", "k", "h1").state == "in_progress"
    assert store.claim("b@default", "/invoke", "k", "h2").state == "claimed"
    assert store.claim("a@other", "/invoke", "k", "h2").state == "claimed"
    assert store.claim("a@default", "/ingest", "k", "h2").state == "claimed"
    store.finish("a@default", "/invoke", "k", 200, '{"ok": 1}')
    done = store.claim("a@default", "/invoke", "k", "h1")
    assert (done.state, done.status_code, done.response) == ("done", 200, '{"ok": 1}')
    assert store.claim("a@default", "/invoke", "k", "h9").state == "mismatch"


def test_an_abandoned_claim_is_taken_over_at_once_with_its_run_id(store_engine: Engine) -> None:
    store = IdempotencyStore(store_engine, ttl_s=60)
    first = store.claim("a", "/invoke", "k", "h")
    assert first.state == "claimed" and not first.taken_over
    assert store.claim("a", "/invoke", "k", "h").state == "in_progress"
    store.abandon("a", "/invoke", "k")
    again = store.claim("a", "/invoke", "k", "h")
    assert (again.state, again.run_id, again.taken_over) == ("claimed", first.run_id, True)
    store.release("a", "/invoke", "k")  # a fresh claim's failure forgets it: a new run id next time
    fresh = store.claim("a", "/invoke", "k", "h")
    assert fresh.state == "claimed" and fresh.run_id != first.run_id and not fresh.taken_over


def test_an_answer_is_replayed_until_the_ttl_then_the_key_runs_again(store_engine: Engine) -> None:
    store = IdempotencyStore(store_engine, ttl_s=0.3)
    assert store.claim("a", "/invoke", "k", "h").state == "claimed"
    store.finish("a", "/invoke", "k", 200, "{}")
    assert store.claim("a", "/invoke", "k", "h").state == "done"
    time.sleep(0.4)
    assert store.claim("a", "/invoke", "k", "h").state == "claimed"
    assert store.sweep() == 0  # the expired answer was already replaced by the new claim
