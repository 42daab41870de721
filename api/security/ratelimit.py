"""Per-key rate limiting: a token bucket per API key, in this process or shared by replicas through Redis.

A bucket holds at most `burst` tokens and refills at `per_minute / 60` tokens a second; a request takes
`cost` tokens or is refused with the seconds until they will be there (for `Retry-After`).

Why not the `limits` library: it offers fixed window, moving window and sliding window counter strategies
with whole numbers of requests per time unit, but no token bucket (a burst size with a separate, possibly
fractional, refill rate), so the bucket is written here: a few lines of Python and one Lua script.

A request costing more than `burst` tokens can never be admitted; it is refused with the time a bucket
takes to fill from empty.

Redis that cannot be reached fails OPEN: the request is admitted and an ERROR is logged, at most every
`ERROR_LOG_EVERY_S` (availability over limiting); Redis is then left alone for `REDIS_RETRY_S` seconds so
that every request does not pay for a failing connection.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.settings import Settings

log = logging.getLogger(__name__)

REDIS_RETRY_S = 1.0
"""After a Redis failure, requests are admitted without asking Redis for this long."""
REDIS_TIMEOUT_S = 1.0
"""Connect and read timeout of one Redis call, and the longest wait for a free pooled connection."""
REDIS_MAX_CONNECTIONS = 32
"""Connections to Redis per process; more concurrent requests queue for one."""
ERROR_LOG_EVERY_S = 30.0
"""A Redis that stays down is reported at most this often (with the number of requests let through)."""
_MAX_TTL_MS = 400 * 86_400_000
"""Longest life of a Redis bucket; a slower refill than that treats an idle key as full again."""


@runtime_checkable
class RateLimiter(Protocol):
    """Admits or refuses a key's requests."""

    async def acquire(self, key: str, cost: int = 1) -> float | None:
        """Take `cost` tokens from the bucket of `key`: None if admitted, else seconds (> 0) to wait."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class _Bucket:
    """Rate and size shared by both backends, and their argument checks."""

    def __init__(self, per_minute: float, burst: int) -> None:
        if not per_minute > 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self.rate = per_minute / 60.0  # tokens a second

    @property
    def fill_s(self) -> float:
        """Seconds an empty bucket takes to fill."""
        return self.burst / self.rate

    def _check_cost(self, cost: int) -> None:
        if cost < 1:
            raise ValueError(f"cost must be >= 1, got {cost}")


class MemoryRateLimiter(_Bucket):
    """Token buckets in a dict: one process only. A bucket that has refilled is forgotten (lazily)."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_threshold: int = 1024,
    ) -> None:
        super().__init__(per_minute, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()
        self._min_sweep = sweep_threshold
        self._sweep_at = sweep_threshold

    def __len__(self) -> int:
        """Buckets held (keys whose bucket is not known to be full)."""
        return len(self._buckets)

    async def acquire(self, key: str, cost: int = 1) -> float | None:
        """Take `cost` tokens from the bucket of `key`: None if admitted, else seconds (> 0) to wait."""
        self._check_cost(cost)
        if cost > self.burst:
            return self.fill_s
        with self._lock:  # no await inside: atomic for the event loop, and safe across threads too
            now = self._clock()
            tokens = self._tokens(key, now)
            if tokens < cost:
                return (cost - tokens) / self.rate
            self._buckets[key] = (tokens - cost, now)
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            return None

    async def aclose(self) -> None:
        """Forget every bucket."""
        with self._lock:
            self._buckets.clear()

    def _tokens(self, key: str, now: float) -> float:
        state = self._buckets.get(key)
        if state is None:
            return float(self.burst)
        tokens, at = state
        return min(float(self.burst), tokens + max(0.0, now - at) * self.rate)

    def _sweep(self, now: float) -> None:
        """Drop full buckets (a missing bucket is a full one); amortised O(1) by doubling the threshold."""
        full = [key for key in self._buckets if self._tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        self._sweep_at = max(self._min_sweep, 2 * len(self._buckets))


# KEYS[1]: the bucket (a hash: tokens, at_us). ARGV: burst, tokens per second, cost, margin ms for the TTL.
# Time comes from the Redis server, so replicas with skewed clocks share one clock. Replies
# {1, "0"} when admitted, {0, "<seconds to wait>"} when refused (strings: Lua numbers reply as integers).
_TOKEN_BUCKET_LUA = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local margin_ms = tonumber(ARGV[4])
local max_ttl_ms = tonumber(ARGV[5])
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_us')
local tokens = tonumber(state[1])
local at_us = tonumber(state[2])
if tokens == nil or at_us == nil then
  tokens = burst
elseif now_us > at_us then
  tokens = math.min(burst, tokens + (now_us - at_us) / 1000000 * rate)
end
if tokens < cost then
  return {0, string.format('%.17g', (cost - tokens) / rate)}
end
tokens = tokens - cost
local ttl_ms = math.min(max_ttl_ms, math.ceil((burst - tokens) / rate * 1000) + margin_ms)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at_us', string.format('%.0f', now_us))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl_ms))
return {1, '0'}
"""


class RedisRateLimiter(_Bucket):
    """Token buckets in Redis, shared by every replica: one atomic Lua script per request.

    Keys are `<prefix>:rl:<key>`, each expiring once its bucket would be full again. Fails open.
    """

    def __init__(
        self, per_minute: float, burst: int, *, url: str, prefix: str, margin_s: float = 5.0
    ) -> None:
        super().__init__(per_minute, burst)
        self.prefix = prefix
        # A blocking pool: a burst of requests waits for a free connection instead of failing (open).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        self._client = aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose closes it
        self._script = self._client.register_script(_TOKEN_BUCKET_LUA)  # EVALSHA, loading it when missing
        self._margin_ms = math.ceil(margin_s * 1000)
        self._down_until = 0.0
        self._last_error_log = -math.inf
        self._let_through = 0
        self._failing = False

    def redis_key(self, key: str) -> str:
        """The Redis key holding `key`'s bucket."""
        return f"{self.prefix}:rl:{key}"

    async def acquire(self, key: str, cost: int = 1) -> float | None:
        """Take `cost` tokens from the bucket of `key`: None if admitted, else seconds (> 0) to wait.

        Redis unreachable or failing: admitted, with an ERROR log (fail open).
        """
        self._check_cost(cost)
        if cost > self.burst:
            return self.fill_s
        now = time.monotonic()
        if now < self._down_until:
            self._let_through += 1
            return None
        try:
            admitted, wait = await self._script(
                keys=[self.redis_key(key)],
                args=[self.burst, repr(self.rate), cost, self._margin_ms, _MAX_TTL_MS],
            )
        except (RedisError, OSError, TimeoutError) as error:
            self._down_until = time.monotonic() + REDIS_RETRY_S
            self._failing = True
            self._let_through += 1
            if now - self._last_error_log >= ERROR_LOG_EVERY_S:
                self._last_error_log = now
                log.error(
                    "rate limiter: Redis failed (%s: %s); admitting requests unlimited (fail open),"
                    " %d let through since the last report",
                    type(error).__name__,
                    error,
                    self._let_through,
                )
                self._let_through = 0
            return None
        if self._failing:
            self._failing = False
            log.warning(
                "rate limiter: Redis answers again; %d requests let through since the last report",
                self._let_through,
            )
            self._let_through = 0
        if int(admitted) == 1:
            return None
        return max(float(wait), 1e-6)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def open_rate_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter the settings ask for; None when `rate_limit_per_minute` is 0 (limiting off)."""
    if settings.rate_limit_per_minute == 0:
        return None
    if settings.rate_limit_backend == "redis":
        return RedisRateLimiter(
            settings.rate_limit_per_minute,
            settings.rate_limit_burst,
            url=settings.redis_url,
            prefix=settings.redis_prefix,
        )
    return MemoryRateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
