"""One turn at a time per thread across replicas: two RedisTurnGates (as two replicas have) on the real Redis,
and a real second process killed while it holds a thread."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from core.errors import DependencyUnavailable
from graph.multitask import MultitaskStrategy, RedisTurnGate, ThreadBusyError
from tests.helpers import REDIS_URL, REPO_ROOT, docent_env, docent_server, free_port, run_docent


def replica(prefix: str, strategy: MultitaskStrategy = "reject", wait_s: float = 5.0) -> RedisTurnGate:
    return RedisTurnGate.from_url(REDIS_URL, prefix, strategy, wait_s)


@pytest.fixture
async def two_replicas(redis_prefix: str) -> AsyncIterator[tuple[RedisTurnGate, RedisTurnGate]]:
    first, second = replica(redis_prefix), replica(redis_prefix)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_a_thread_busy_on_one_replica_is_refused_at_once_on_another(
    two_replicas: tuple[RedisTurnGate, RedisTurnGate],
) -> None:
    first, second = two_replicas
    async with first.turn("t1"):
        started = time.monotonic()
        with pytest.raises(ThreadBusyError):
            async with second.turn("t1"):
                pytest.fail("two turns ran at once on one thread")
        assert time.monotonic() - started < 0.5
        async with second.turn("t2"):  # other threads are free
            pass
    async with second.turn("t1"):  # released when the first turn ended
        pass


async def test_enqueued_turns_from_two_replicas_run_one_after_the_other(redis_prefix: str) -> None:
    gates = [replica(redis_prefix, "enqueue") for _ in range(2)]
    spans: list[tuple[float, float]] = []

    async def turn(gate: RedisTurnGate) -> None:
        async with gate.turn("t1"):
            start = time.monotonic()
            await asyncio.sleep(0.3)
            spans.append((start, time.monotonic()))

    try:
        await asyncio.gather(*(turn(gates[n % 2]) for n in range(4)))
    finally:
        for gate in gates:
            await gate.aclose()
    spans.sort()
    assert len(spans) == 4
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


async def test_an_enqueued_turn_waits_at_most_turn_wait_s(redis_prefix: str) -> None:
    holder, waiter = replica(redis_prefix), replica(redis_prefix, "enqueue", wait_s=0.5)
    try:
        async with holder.turn("t1"):
            started = time.monotonic()
            with pytest.raises(ThreadBusyError, match="waited"):
                async with waiter.turn("t1"):
                    pytest.fail("two turns ran at once on one thread")
            assert 0.45 < time.monotonic() - started < 2
    finally:
        await holder.aclose()
        await waiter.aclose()


async def test_a_turn_longer_than_the_lock_ttl_keeps_its_thread(redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    holder = RedisTurnGate(client, redis_prefix, ttl_s=0.6)
    other = replica(redis_prefix)
    try:
        async with holder.turn("t1"):
            await asyncio.sleep(1.5)  # over twice the TTL: renewed meanwhile
            with pytest.raises(ThreadBusyError):
                async with other.turn("t1"):
                    pytest.fail("the lock expired under a running turn")
        assert not await client.exists(holder.key("t1"))
    finally:
        await holder.aclose()
        await other.aclose()


async def test_a_cancelled_turn_frees_its_thread(two_replicas: tuple[RedisTurnGate, RedisTurnGate]) -> None:
    first, second = two_replicas
    entered = asyncio.Event()

    async def long_turn() -> None:
        async with first.turn("t1"):
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(long_turn())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with second.turn("t1"):
        pass


HOLD_AND_WAIT = """
import asyncio, sys
import redis.asyncio as aioredis
from graph.multitask import RedisTurnGate

async def main() -> None:
    gate = RedisTurnGate(aioredis.Redis.from_url(sys.argv[1]), sys.argv[2], ttl_s=float(sys.argv[3]))
    async with gate.turn("t1"):
        print("held", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_a_killed_replicas_thread_is_free_again_within_the_lock_ttl(redis_prefix: str) -> None:
    ttl = 2.0
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_AND_WAIT,
        REDIS_URL,
        redis_prefix,
        str(ttl),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    gate, waiter = replica(redis_prefix), replica(redis_prefix, "enqueue", wait_s=10)
    try:
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"held"
        await asyncio.sleep(ttl)  # renewed by the live process: still held past one TTL
        with pytest.raises(ThreadBusyError):
            async with gate.turn("t1"):
                pytest.fail("two turns ran at once on one thread")
        process.kill()  # SIGKILL: no release, no more renewals
        killed = time.monotonic()
        await process.wait()
        async with waiter.turn("t1"):
            freed = time.monotonic() - killed
        assert freed <= ttl + 0.5
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await gate.aclose()
        await waiter.aclose()


async def test_an_unreachable_redis_refuses_the_turn_as_a_missing_dependency(redis_prefix: str) -> None:
    gate = RedisTurnGate.from_url(f"redis://127.0.0.1:{free_port()}/0", redis_prefix)
    try:
        with pytest.raises(DependencyUnavailable) as refused:
            async with gate.turn("t1"):
                pytest.fail("a turn ran without its lock")
        assert refused.value.dependency == "redis"
        with pytest.raises(DependencyUnavailable):  # and the thread is not left held in this process
            async with gate.turn("t1"):
                pass
    finally:
        await gate.aclose()


def test_a_turn_while_redis_is_down_is_a_503_naming_redis(pg_url: str, tmp_path: Path) -> None:
    env = {"DOCENT_DATABASE_URL": pg_url, "DOCENT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    upgraded = run_docent(["db", "upgrade"], docent_env(tmp_path, **env))
    assert upgraded.returncode == 0, upgraded.stderr
    with docent_server(tmp_path, tmp_path / "server.log", **env) as base:
        body = {"input": {"message": "What is bokashi?"}, "config": {"configurable": {}}}
        refused = httpx.post(f"{base}/invoke", json=body, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["dependency"] == "redis"
        chat = {
            "model": "docent",
            "stream": True,
            "messages": [{"role": "user", "content": "What is bokashi?"}],
        }
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=chat, timeout=30) as reply:
            events = [
                line.removeprefix("data:").strip() for line in reply.iter_lines() if line.startswith("data:")
            ]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == 503
