"""Token bucket rate limiting: in process, and shared through the real Redis at 127.0.0.1:6379 (by two OS
processes at once), and failing open when Redis is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from api.security.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, open_rate_limiter
from core.settings import Settings
from tests.helpers import REDIS_URL, REPO_ROOT, free_port

SLOW = 0.001  # tokens a minute: nothing refills during a test


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """A Redis key prefix of this test alone (conftest deletes its keys afterwards)."""
    return redis_prefix


@pytest.fixture
async def redis_limiter(prefix: str) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(60 * 10, 3, url=REDIS_URL, prefix=prefix)  # ten tokens a second
    yield limiter
    await limiter.aclose()


async def drain(limiter: RateLimiter, key: str, attempts: int) -> list[float | None]:
    return [await limiter.acquire(key) for _ in range(attempts)]


# ---------------------------------------------------------------- memory


async def test_memory_burst_then_refused_with_exact_wait() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(60, 3, clock=clock)  # one token a second
    assert await drain(limiter, "a", 3) == [None, None, None]
    wait = await limiter.acquire("a")
    assert wait == pytest.approx(1.0)
    clock.now += 0.25
    assert await limiter.acquire("a") == pytest.approx(0.75)
    assert await limiter.acquire("a", cost=2) == pytest.approx(1.75)
    clock.now += 0.75
    assert await limiter.acquire("a") is None
    assert await limiter.acquire("a") == pytest.approx(1.0)


async def test_memory_refills_in_real_time_and_keys_are_independent() -> None:
    limiter = MemoryRateLimiter(60 * 10, 2)  # ten tokens a second
    results = await drain(limiter, "a", 3)
    assert results[:2] == [None, None]
    wait = results[2]
    assert wait is not None and 0 < wait <= 0.1
    assert await limiter.acquire("b") is None  # another key has its own bucket
    await asyncio.sleep(wait + 0.02)
    assert await limiter.acquire("a") is None
    await asyncio.sleep(0.3)  # refills to the burst (2), not beyond (3)
    results = await drain(limiter, "a", 3)
    assert results[:2] == [None, None]
    assert results[2] is not None and 0 < results[2] <= 0.1


async def test_memory_cost_above_burst_is_refused_with_the_fill_time() -> None:
    limiter = MemoryRateLimiter(60, 4)
    assert await limiter.acquire("a", cost=5) == pytest.approx(4.0)
    assert await limiter.acquire("a", cost=4) is None
    with pytest.raises(ValueError):
        await limiter.acquire("a", cost=0)


async def test_memory_concurrent_tasks_never_exceed_the_burst() -> None:
    limiter = MemoryRateLimiter(SLOW, 7)
    results = await asyncio.gather(*(limiter.acquire("k") for _ in range(100)))
    assert sum(result is None for result in results) == 7


async def test_memory_forgets_buckets_that_are_full_again() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(60, 2, clock=clock, sweep_threshold=10)
    for index in range(9):
        assert await limiter.acquire(f"key{index}") is None
    assert len(limiter) == 9
    clock.now += 2.0  # every bucket is full again
    assert await limiter.acquire("busy") is None  # the tenth bucket triggers a sweep
    assert len(limiter) == 1
    assert await limiter.acquire("busy") is None
    assert await limiter.acquire("busy") is not None  # the live bucket was kept


def test_factory_follows_the_settings() -> None:
    assert open_rate_limiter(Settings(rate_limit_per_minute=0)) is None
    memory = open_rate_limiter(Settings(rate_limit_per_minute=30, rate_limit_burst=4))
    assert isinstance(memory, MemoryRateLimiter)
    assert (memory.per_minute, memory.burst) == (30, 4)
    shared = open_rate_limiter(
        Settings(rate_limit_backend="redis", redis_url=REDIS_URL, redis_prefix="p", rate_limit_burst=9)
    )
    assert isinstance(shared, RedisRateLimiter) and isinstance(shared, RateLimiter)
    assert (shared.burst, shared.redis_key("ci")) == (9, "p:rl:ci")
    asyncio.run(shared.aclose())


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        MemoryRateLimiter(0, 3)
    with pytest.raises(ValueError):
        MemoryRateLimiter(60, 0)


# ---------------------------------------------------------------- redis


async def test_redis_burst_refill_and_independent_keys(redis_limiter: RedisRateLimiter) -> None:
    results = await drain(redis_limiter, "a", 4)
    assert results[:3] == [None, None, None]
    wait = results[3]
    assert wait is not None and 0 < wait <= 0.1 + 1e-9  # one token every 0.1 s
    assert await redis_limiter.acquire("b") is None
    await asyncio.sleep(wait + 0.02)
    assert await redis_limiter.acquire("a") is None
    await asyncio.sleep(0.45)  # full again (3), and no fuller (4.5)
    results = await drain(redis_limiter, "a", 4)
    assert results[:3] == [None, None, None] and results[3] is not None


async def test_redis_wait_grows_with_cost_and_cost_above_burst(prefix: str) -> None:
    limiter = RedisRateLimiter(120, 3, url=REDIS_URL, prefix=prefix)  # one token every 0.5 s
    try:
        assert await limiter.acquire("a", cost=3) is None
        one, two = await limiter.acquire("a"), await limiter.acquire("a", cost=2)
        assert one is not None and two is not None
        assert 0 < one <= 0.5 + 1e-9 and 0.5 < two <= 1.0 + 1e-9
        assert await limiter.acquire("a", cost=4) == pytest.approx(1.5)  # the time to fill the bucket
    finally:
        await limiter.aclose()


async def test_redis_bucket_is_a_hash_with_a_ttl_until_full(prefix: str) -> None:
    limiter = RedisRateLimiter(60, 5, url=REDIS_URL, prefix=prefix, margin_s=2)  # one token a second
    try:
        assert await limiter.acquire("ttl", cost=3) is None
    finally:
        await limiter.aclose()
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        key = f"{prefix}:rl:ttl"
        assert float(client.hget(key, "tokens") or "nan") == pytest.approx(2.0)
        ttl_ms = client.pttl(key)
        assert 4000 < ttl_ms <= 5000  # three seconds to refill, plus the two-second margin
    finally:
        client.close()


async def test_redis_concurrent_tasks_never_exceed_the_burst(prefix: str) -> None:
    limiter = RedisRateLimiter(SLOW, 6, url=REDIS_URL, prefix=prefix)
    try:
        # More at once than the connection pool holds: they queue for a connection, none is let through.
        results = await asyncio.gather(*(limiter.acquire("k") for _ in range(300)))
    finally:
        await limiter.aclose()
    assert sum(result is None for result in results) == 6
    assert all(result is None or result > 1000 for result in results)  # SLOW: hours to wait


HAMMER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from api.security.ratelimit import RedisRateLimiter

    async def main(prefix: str, start_at: float, attempts: int) -> None:
        limiter = RedisRateLimiter({per_minute!r}, {burst}, url={url!r}, prefix=prefix)
        await limiter.acquire("warm-up")  # connect before the start line
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(*(limiter.acquire("shared") for _ in range(attempts)))
        await limiter.aclose()
        print(json.dumps(results))

    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
    """
)


def test_two_processes_together_admit_exactly_the_burst(prefix: str, tmp_path: Path) -> None:
    burst, attempts = 10, 150
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER.format(per_minute=SLOW, burst=burst, url=REDIS_URL))
    start_at = time.time() + 3.0
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), prefix, repr(start_at), str(attempts)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs: list[list[float | None]] = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        outputs.append(json.loads(out))
    admitted = [sum(result is None for result in output) for output in outputs]
    assert sum(admitted) == burst, admitted
    refused = [result for output in outputs for result in output if result is not None]
    assert len(refused) == 2 * attempts - burst
    assert all(wait > 0 for wait in refused)


# ---------------------------------------------------------------- redis down


async def test_redis_down_fails_open_and_logs_an_error(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter(SLOW, 1, url=f"redis://127.0.0.1:{free_port()}/0", prefix="down")
    try:
        with caplog.at_level(logging.ERROR, logger="api.security.ratelimit"):
            results = await drain(limiter, "a", 5)  # far more than the burst of one
    finally:
        await limiter.aclose()
    assert results == [None] * 5
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1  # reported once, not once per request
    assert "fail open" in errors[0].getMessage()
