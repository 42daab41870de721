"""Drill: take one shared service down (the Chroma server, PostgreSQL, Redis). While it is down every replica
says so: `/ready` is 503 and `/invoke` is a 503 whose JSON names the dependency, promptly (never a 500,
never a hang). Once it is back, every replica serves again without being restarted."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.cluster.conftest import DrillCluster, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

PROMPT_S = 15.0
"""A replica's answer while a dependency is down must come within this (a hang fails the drill)."""
RECOVERY_S = 60.0
"""How long replicas have to serve again once the dependency is back."""

# process name -> (the `dependency` its 503s name, the /ready checks that must fail)
OUTAGES = {
    "chroma": ("chroma", {"chroma"}),
    "postgres": ("database", {"records", "checkpointer"}),
    "redis": ("redis", {"redis"}),
}


def ask(base: str, collection: str, timeout: float) -> httpx.Response:
    body = {
        "input": {"message": "Why does my compost smell?"},
        "config": {"configurable": {"collection": collection}},
    }
    return httpx.post(f"{base}/invoke", json=body, timeout=timeout)


@pytest.mark.parametrize("name", list(OUTAGES))
def test_every_replica_answers_503_with_a_reason_while_a_store_is_down_and_serves_again_when_it_is_back(
    cluster: DrillCluster, sample_collection: str, name: str
) -> None:
    dependency, checks = OUTAGES[name]
    replicas = {replica: cluster.url(replica) for replica in cluster.replicas}
    pids = {replica: cluster.process(replica).pid for replica in replicas}
    for base in replicas.values():
        assert ask(base, sample_collection, 60).status_code == 200

    cluster.stop(name)
    try:
        for replica, base in replicas.items():
            began = time.monotonic()
            ready = httpx.get(f"{base}/ready", timeout=PROMPT_S)
            assert ready.status_code == 503, (replica, ready.text)
            failed = {check for check, result in ready.json()["checks"].items() if result != "ok"}
            assert checks <= failed, (replica, ready.json())
            reply = ask(base, sample_collection, PROMPT_S)
            assert reply.status_code == 503, (replica, reply.status_code, reply.text)
            assert reply.json()["dependency"] == dependency, (replica, reply.json())
            assert reply.json()["detail"], (replica, reply.json())
            assert reply.headers["Retry-After"], replica
            print(f"{name} down: {replica} answered /ready and /invoke in {time.monotonic() - began:.1f} s")
    finally:
        cluster.start(name)

    for replica, base in replicas.items():

        def is_ready(base: str = base) -> bool:
            return httpx.get(f"{base}/ready", timeout=PROMPT_S).status_code == 200

        def answering(base: str = base) -> bool:
            return ask(base, sample_collection, PROMPT_S).status_code == 200

        eventually(is_ready, RECOVERY_S, f"{replica} ready again after {name} came back")
        eventually(answering, RECOVERY_S, f"{replica} answering again after {name} came back")
    assert {replica: cluster.process(replica).pid for replica in replicas} == pids  # no replica restarted
