"""The Redis rate limit across replicas: two real `docent serve` processes on one data dir and one Redis
together admit exactly a key's burst, and refuse the rest with 429 and Retry-After.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import REDIS_URL, create_key, docent_env, docent_server, run_docent

BURST = 5


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """A Redis key prefix of this test alone (conftest deletes its keys afterwards)."""
    return redis_prefix


def test_two_replicas_share_one_bucket_per_key(tmp_path: Path, prefix: str, pg_url: str) -> None:
    """Two replicas in server mode, each with a data dir of its own, sharing PostgreSQL (keys) and Redis."""
    shared = {"DOCENT_DATABASE_URL": pg_url, "DOCENT_REDIS_URL": REDIS_URL, "DOCENT_REDIS_PREFIX": prefix}
    assert run_docent(["db", "upgrade"], docent_env(tmp_path / "data", **shared)).returncode == 0
    alice = create_key(tmp_path / "data", "alice", "query", **shared)
    bob = create_key(tmp_path / "data", "bob", "query", **shared)
    env = {
        **shared,
        "DOCENT_AUTH": "on",
        "DOCENT_RATE_LIMIT_BACKEND": "redis",
        "DOCENT_REDIS_URL": REDIS_URL,
        "DOCENT_REDIS_PREFIX": prefix,
        "DOCENT_RATE_LIMIT_PER_MINUTE": "0.001",  # a token every 16 hours: none comes back during the test
        "DOCENT_RATE_LIMIT_BURST": str(BURST),
        "DOCENT_METRICS_PUBLIC": "true",
    }
    with ExitStack() as stack:
        bases = [
            stack.enter_context(docent_server(tmp_path / f"data{i}", tmp_path / f"server{i}.log", **env))
            for i in (1, 2)
        ]
        responses = [
            httpx.get(f"{bases[i % 2]}/threads", headers={"Authorization": f"Bearer {alice}"}, timeout=30)
            for i in range(40)
        ]
        statuses = [response.status_code for response in responses]
        assert statuses.count(200) == BURST, statuses
        assert statuses.count(429) == 40 - BURST, statuses
        for response in responses:
            if response.status_code == 429:
                retry_after = int(response.headers["Retry-After"])
                assert 3600 < retry_after <= 60_000 + 1  # one token at 0.001 a minute: 60,000 s at most
                assert "rate limit" in response.json()["detail"]
        served_by = {bases[i % 2] for i, status in enumerate(statuses) if status == 200}
        assert served_by == set(bases), "each replica admitted some of the burst"
        # The bucket is per key: another key is still admitted, on either replica.
        for base in bases:
            assert httpx.get(f"{base}/threads", headers={"X-API-Key": bob}, timeout=30).status_code == 200
        # Each replica counts the refusals it made, by key name.
        refused = 0.0
        for base in bases:
            for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
                if line.startswith('docent_rate_limited_requests_total{key="alice"}'):
                    refused += float(line.rsplit(" ", 1)[1])
        assert refused == 40 - BURST
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert float(client.hget(f"{prefix}:rl:alice", "tokens") or "nan") < 1
    finally:
        client.close()
