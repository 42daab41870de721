"""POST /stream (Server-Sent Events) and the /ws WebSocket over real uvicorn, with a scripted
OpenAI-compatible model server streaming the tokens.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from prometheus_client import REGISTRY
from websockets.sync.client import connect

from core.services import Services
from core.settings import Settings
from graph.build import build_graph
from graph.turn import stream_turn
from tests.model_servers import (
    ModelBackedDocent,
    ModelScript,
    SseEvent,
    model_backed_docent,
    read_sse,
)


@pytest.fixture(scope="module")
def docent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelBackedDocent]:
    with model_backed_docent(tmp_path_factory.mktemp("stream")) as running:
        yield running


def body(message: str, **configurable: Any) -> dict[str, Any]:
    return {"input": {"message": message}, "config": {"configurable": configurable}}


def stream(base: str, payload: dict[str, Any]) -> tuple[httpx.Headers, list[SseEvent]]:
    with httpx.stream("POST", f"{base}/stream", json=payload, timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        return reply.headers, list(read_sse(reply.iter_lines()))


def test_sse_sends_metadata_sources_tokens_then_end_and_tokens_arrive_before_the_end(
    docent: ModelBackedDocent,
) -> None:
    docent.reset()
    docent.openai.token_delay_s = 0.05
    sent = time.monotonic()
    headers, events = stream(docent.base, body("What temperature should a hot compost pile reach?"))
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"
    names = [e.event for e in events]
    assert names == ["metadata", "sources"] + ["token"] * 13 + ["end"], names
    metadata, sources, tokens, end = events[0], events[1], events[2:-1], events[-1]
    assert metadata.data["thread_id"] and metadata.data["run_id"]
    assert [s["n"] for s in sources.data["sources"]] == list(range(1, Settings().k + 1))
    # Tokens are delivered as they are generated (13 tokens 50 ms apart), not in one burst at the end.
    assert end.at - tokens[0].at >= 0.4
    text = "".join(t.data["text"] for t in tokens)
    assert text.strip() == end.data["answer"] and end.data["answer"].endswith("[1]")
    assert end.data["model"] == "openai/gpt-4o-mini" and end.data["degraded"] is False
    assert end.data["usage"] == {
        "prompt_tokens": 321,
        "completion_tokens": 13,
        "total_tokens": 334,
        "estimated": False,
    }
    assert end.data["cost"] > 0
    citations = end.data["citations"]
    assert [c["n"] for c in citations if c["cited"]] == [1]
    assert {c["n"] for c in citations} <= {s["n"] for s in sources.data["sources"]}
    assert citations[0]["chunk_id"] == sources.data["sources"][0]["chunk_id"]
    # The answer quotes passage 1's opening words: its one sentence is supported by the passage it cites.
    assert citations[0]["supported"] is True and end.data["unsupported_sentences"] == 0
    assert (
        end.data["thread_id"] == metadata.data["thread_id"] and end.data["run_id"] == metadata.data["run_id"]
    )
    # The model was sent the retrieved passages as delimited data, numbered as the sources event shows them.
    prompt = docent.openai.chat_requests[0]["messages"][-1]["content"]
    assert '<passage n="1"' in prompt and sources.data["sources"][0]["snippet"][:40] in prompt
    assert docent.turns(metadata.data["thread_id"])[0][1] == end.data["answer"]
    # The server's timings of this turn: the model's time to first chunk covers the scripted 50 ms wait before
    # it, and every span lies inside what the client saw.
    timings = end.data["timings"]
    assert 50 <= timings["model_ttft_ms"] < 1000 * (tokens[0].at - sent)
    assert 0 < timings["retrieve_ms"] <= timings["to_model_request_ms"]
    assert timings["first_chunk_to_token_ms"] >= 0
    parts = timings["to_model_request_ms"] + timings["model_ttft_ms"] + timings["first_chunk_to_token_ms"]
    assert parts == pytest.approx(timings["first_token_ms"], abs=0.3)
    assert timings["first_token_ms"] <= 1000 * (tokens[0].at - sent)
    assert 13 * 50 <= timings["total_ms"] <= 1000 * (end.at - sent)


def test_sse_with_the_extractive_answerer_sends_its_answer_as_one_token(docent: ModelBackedDocent) -> None:
    docent.reset()
    _, events = stream(docent.base, body("How much do red wigglers eat per day?", model="extractive"))
    assert [e.event for e in events] == ["metadata", "sources", "token", "end"]
    assert events[2].data["text"] == events[3].data["answer"]
    assert events[3].data["model"] == "extractive" and events[3].data["cost"] == 0.0
    assert not docent.openai.chat_requests
    timings = events[3].data["timings"]
    assert timings["to_model_request_ms"] is None and timings["model_ttft_ms"] is None
    assert timings["first_chunk_to_token_ms"] is None
    assert 0 < timings["retrieve_ms"] < timings["first_token_ms"] <= timings["total_ms"]


FABRICATED = "Compost piles must be turned by a licensed arborist every full moon."


def test_an_unsupported_sentence_is_marked_in_invoke_stream_v1_and_the_records(
    docent: ModelBackedDocent,
) -> None:
    """The model quotes passage 1's first sentence, then makes a claim passage 1 does not hold; both cite
    [1]. Every output says one sentence is unsupported and that passage 1 supports the other."""
    docent.reset()
    docent.openai.reply = lambda first: f"{first.split('. ')[0]}. [1] {FABRICATED} [1]"
    question = "How often should I turn a hot compost pile?"
    try:
        invoked = httpx.post(f"{docent.base}/invoke", json=body(question), timeout=60).json()["output"]
        _, events = stream(docent.base, body(question))
        completion = httpx.post(
            f"{docent.base}/v1/chat/completions",
            json={"model": "docent", "messages": [{"role": "user", "content": question}]},
            timeout=60,
        ).json()
        with httpx.stream(
            "POST",
            f"{docent.base}/v1/chat/completions",
            json={"model": "docent", "messages": [{"role": "user", "content": question}], "stream": True},
            timeout=60,
        ) as reply:
            lines = [line.removeprefix("data: ") for line in reply.iter_lines() if line.startswith("data: ")]
    finally:
        docent.reset()
    chunks = [json.loads(line) for line in lines if line != "[DONE]"]
    end = events[-1].data
    finishing = next(c for c in chunks if c.get("choices") and c["choices"][0].get("finish_reason") == "stop")
    assert FABRICATED in invoked["answer"] and FABRICATED in end["answer"]
    for output, citations in (
        (invoked, invoked["citations"]),
        (end, end["citations"]),
        (completion["docent"], completion["citations"]),
        (finishing["docent"], finishing["citations"]),
    ):
        assert output["unsupported_sentences"] == 1, output
        cited = [c for c in citations if c["cited"]]
        assert [(c["n"], c["supported"]) for c in cited] == [(1, True)]
        assert all(c["supported"] is None for c in citations if not c["cited"])
    # /v1's Sources block names the cited passage only; `citations` lists every relevant one.
    text = completion["choices"][0]["message"]["content"]
    assert text.count("\n[") == 1 and "\n\nSources:\n[1] " in text
    with closing(sqlite3.connect(docent.data_dir / "docent.sqlite")) as db:
        stored = db.execute(
            "SELECT citations FROM turns WHERE answer LIKE ? ORDER BY id", (f"%{FABRICATED}%",)
        )
        rows = [json.loads(row[0]) for row in stored]
    assert rows and all([(c["n"], c["supported"]) for c in r if c["cited"]] == [(1, True)] for r in rows)


def test_stream_rejects_an_unknown_model_with_a_400_before_any_event(docent: ModelBackedDocent) -> None:
    reply = httpx.post(f"{docent.base}/stream", json=body("What is bokashi?", model="nope"), timeout=30)
    assert reply.status_code == 400 and "nope" in reply.json()["detail"]
    assert httpx.post(f"{docent.base}/stream", json={"input": {}}, timeout=30).status_code == 422


def test_a_client_that_disconnects_cancels_generation_and_no_turn_is_recorded(
    docent: ModelBackedDocent,
) -> None:
    docent.reset()
    docent.openai.token_delay_s = 0.3
    with httpx.stream(
        "POST", f"{docent.base}/stream", json=body("What bedding do worms need?"), timeout=60
    ) as r:
        events = read_sse(r.iter_lines())
        thread = next(events).data["thread_id"]
        while next(events).event != "token":
            pass
    deadline = time.monotonic() + 10
    while docent.openai.cancelled_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert docent.openai.cancelled_streams == 1 and docent.openai.finished_streams == 0
    time.sleep(0.5)
    assert docent.turns(thread) == []
    # The thread is still usable, and its next turn is recorded.
    docent.openai.token_delay_s = 0.0
    _, again = stream(docent.base, body("What bedding do worms need?", thread_id=thread))
    assert again[-1].event == "end" and len(docent.turns(thread)) == 1


def test_websocket_carries_the_same_events_for_several_questions(docent: ModelBackedDocent) -> None:
    docent.reset()
    url = docent.base.replace("http://", "ws://") + "/ws"
    with connect(url, open_timeout=10) as socket:
        socket.send(json.dumps(body("What temperature should a hot compost pile reach?")))
        first = receive_turn(socket)
        thread = first[0]["data"]["thread_id"]
        socket.send(json.dumps(body("And how often should it be turned?", thread_id=thread)))
        second = receive_turn(socket)
        socket.send(json.dumps({"input": {"message": ""}}))
        invalid = json.loads(socket.recv(timeout=30))
    for frames in (first, second):
        names = [f["event"] for f in frames]
        assert names[:2] == ["metadata", "sources"] and names[-1] == "end"
        assert set(names[2:-1]) == {"token"} and len(names) > 4
        assert frames[-1]["data"]["model"] == "openai/gpt-4o-mini"
    assert second[0]["data"]["thread_id"] == thread
    assert invalid["event"] == "error" and invalid["data"]["status"] == 422
    assert len(docent.turns(thread)) == 2
    # The follow-up's prompt carried the first turn as history.
    roles = [m["role"] for m in docent.openai.chat_requests[1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def receive_turn(socket: Any) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["event"] != "end":
        frames.append(json.loads(socket.recv(timeout=30)))
    return frames


@pytest.fixture
def settings(tmp_path: Path, scripted_openai: tuple[str, ModelScript]) -> Settings:
    """In-process services of this module answer with the scripted server, then extractive."""
    return Settings(
        data_dir=tmp_path / "data",
        llm_provider="openai",
        openai_base_url=f"{scripted_openai[0]}/v1",
        llm_model="gpt-4o-mini",
        llm_timeout_s=2,
        llm_max_retries=0,
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_streamed_turn_records_model_time_in_the_state_and_the_metrics(
    sample_services: Services, scripted_openai: tuple[str, ModelScript]
) -> None:
    script = scripted_openai[1]
    script.token_delay_s = 0.02
    graph = build_graph(sample_services, InMemorySaver())
    model = "openai/gpt-4o-mini"
    latency = sample("docent_model_duration_seconds_count", model=model)
    latency_sum = sample("docent_model_duration_seconds_sum", model=model)
    prompt = sample("docent_model_tokens_total", model=model, kind="prompt")
    completion = sample("docent_model_tokens_total", model=model, kind="completion")
    degraded = sample("docent_degraded_answers_total")

    events = [event async for event in stream_turn(graph, "What bedding do worms need?")]
    end = events[-1][1]
    assert end["model"] == model and not end["degraded"]
    state = (await graph.aget_state({"configurable": {"thread_id": end["thread_id"]}})).values
    # The answerer call spans the model's whole stream: at least the time to its first chunk, and the 14
    # paced chunks (13 words and the stop), 20 ms apart.
    assert state["model_ms"] >= max(end["timings"]["model_ttft_ms"], 14 * 20)
    assert state["model_ms"] < end["timings"]["total_ms"]
    assert "model_ms" not in end
    assert sample("docent_model_duration_seconds_count", model=model) == latency + 1
    observed = sample("docent_model_duration_seconds_sum", model=model) - latency_sum
    assert observed == pytest.approx(state["model_ms"] / 1000, abs=0.001)
    assert sample("docent_model_tokens_total", model=model, kind="prompt") == prompt + 321
    assert sample("docent_model_tokens_total", model=model, kind="completion") == completion + 13
    assert sample("docent_degraded_answers_total") == degraded

    # The model fails: the extractive answer is degraded, counted, and has no model timings.
    script.faults = ["500"]
    extractive = sample("docent_model_duration_seconds_count", model="extractive")
    events = [event async for event in stream_turn(graph, "What is bokashi?")]
    end = events[-1][1]
    assert end["model"] == "extractive" and end["degraded"]
    assert sample("docent_degraded_answers_total") == degraded + 1
    assert sample("docent_model_duration_seconds_count", model="extractive") == extractive + 1
    assert end["timings"]["model_ttft_ms"] is None and end["timings"]["to_model_request_ms"] is None
