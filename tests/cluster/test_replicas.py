"""Drill: replicas share everything. An ingest started on replica A is followed to its end on replica B; a
thread started on A continues on B with a follow-up that needs A's turn; both replicas show the whole
thread, in order."""

from __future__ import annotations

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres import PostgresSaver

from tests.cluster.conftest import DrillCluster, sample_uploads, wait_for_job

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

FIRST = "How often should I turn a hot compost pile?"
FOLLOW_UP = "And what about a cold one?"


def test_ingest_on_one_replica_is_followed_on_the_other_and_a_thread_continues_across_replicas(
    cluster: DrillCluster,
) -> None:
    a, b = cluster.url("api-1"), cluster.url("api-2")
    started = httpx.post(
        f"{a}/ingest", json={"files": sample_uploads(), "collection": "drill-replicas"}, timeout=60
    )
    assert started.status_code == 202, started.text
    job = wait_for_job(b, started.json()["id"], timeout=180)
    assert job["status"] == "done", job
    assert job["summary"]["chunks_added"] > 0 and not job["summary"]["failures"], job
    assert job == httpx.get(f"{a}/ingest/{job['id']}", timeout=10).json()  # one job, whoever is asked

    knobs = {"collection": "drill-replicas"}
    thread = httpx.post(f"{a}/threads", timeout=10)
    assert thread.status_code == 201, thread.text
    thread_id = thread.json()["id"]
    first = httpx.post(
        f"{a}/invoke",
        json={"input": {"message": FIRST}, "config": {"configurable": {"thread_id": thread_id, **knobs}}},
        timeout=60,
    )
    assert first.status_code == 200, first.text
    assert first.json()["output"]["citations"], first.text  # answered from the ingested sources
    second = httpx.post(
        f"{b}/invoke",
        json={
            "input": {"message": FOLLOW_UP},
            "config": {"configurable": {"thread_id": thread_id, **knobs}},
        },
        timeout=60,
    )
    assert second.status_code == 200, second.text
    assert second.json()["output"]["thread_id"] == thread_id

    # B read A's turn from the shared checkpoint: its search query carries the first question.
    with PostgresSaver.from_conn_string(cluster.database_url) as saver:
        saved = saver.get_tuple({"configurable": {"thread_id": thread_id}})
    assert saved is not None
    values = saved.checkpoint["channel_values"]
    asked = [m.text for m in values["messages"] if isinstance(m, HumanMessage)]
    assert asked == [FIRST, FOLLOW_UP]
    assert FIRST in values["search_query"] and FOLLOW_UP in values["search_query"]

    runs = [first.json()["metadata"]["run_id"], second.json()["metadata"]["run_id"]]
    for base in (a, b):
        history = httpx.get(f"{base}/threads/{thread_id}", timeout=10)
        assert history.status_code == 200, history.text
        messages = history.json()["messages"]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", FIRST),
            ("assistant", first.json()["output"]["answer"]),
            ("user", FOLLOW_UP),
            ("assistant", second.json()["output"]["answer"]),
        ]
        assert [m["run_id"] for m in messages if m["role"] == "assistant"] == runs
