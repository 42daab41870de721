"""Metadata filters over real uvicorn: `config.configurable.filter` on /invoke, /batch, /stream and /ws, and
`filter` on /v1; a filter the schema refuses is a 422, one breaking a rule the schema cannot state a 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.helpers import docent_server, ingest_sample
from tests.model_servers import read_sse

QUESTION = "What temperature should a hot compost pile reach?"
GUIDE = "compost-field-guide.pdf"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over the sample corpus (three web pages and the field guide PDF)."""
    folder = tmp_path_factory.mktemp("filters")
    with docent_server(ingest_sample(folder / "data"), folder / "server.log") as url:
        yield url


def body(message: str, **configurable: Any) -> dict[str, Any]:
    return {"input": {"message": message}, "config": {"configurable": configurable}}


def names(citations: list[dict[str, Any]]) -> set[str]:
    return {Path(c["source"]).name for c in citations}


def test_invoke_cites_only_what_the_filter_lets_through(base: str) -> None:
    unfiltered = httpx.post(f"{base}/invoke", json=body(QUESTION), timeout=60).json()["output"]
    assert names(unfiltered["citations"]) - {GUIDE}  # the web pages answer it too
    where = {"source": GUIDE, "page_from": 2, "page_to": 3}
    reply = httpx.post(f"{base}/invoke", json=body(QUESTION, filter=where), timeout=60)
    assert reply.status_code == 200, reply.text
    citations = reply.json()["output"]["citations"]
    assert citations and names(citations) == {GUIDE}
    assert {c["page"] for c in citations} <= {2, 3}
    kinds = httpx.post(f"{base}/invoke", json=body(QUESTION, filter={"kind": ["html"]}), timeout=60)
    assert GUIDE not in names(kinds.json()["output"]["citations"])


def test_a_filter_nothing_matches_answers_from_no_passage(base: str) -> None:
    where = {"ingested_before": "2000-01-01"}
    reply = httpx.post(f"{base}/invoke", json=body(QUESTION, filter=where), timeout=60)
    assert reply.status_code == 200 and reply.json()["output"]["citations"] == []


@pytest.mark.parametrize(
    ("where", "status", "said"),
    [
        ({"colour": "red"}, 422, "colour"),  # unknown key
        ({"source": 7}, 422, "source"),
        ({"source": []}, 422, "source"),
        ({"page_from": 0}, 422, "page_from"),
        ({"kind": ["pdf"] * 51}, 422, "kind"),
        ({"page_from": 9, "page_to": 2}, 400, "page_from (9) is after page_to (2)"),
        ({"ingested_after": "last week"}, 400, "ISO 8601"),
        ({"title": "a\u0000b"}, 400, "NUL"),
    ],
)
def test_a_bad_filter_is_refused_naming_what_is_wrong(
    base: str, where: dict[str, Any], status: int, said: str
) -> None:
    reply = httpx.post(f"{base}/invoke", json=body(QUESTION, filter=where), timeout=60)
    assert reply.status_code == status, reply.text
    assert said in reply.text and "filter" in reply.text


def test_batch_stream_websocket_and_v1_take_the_same_filter(base: str) -> None:
    where = {"source": GUIDE}
    batch = httpx.post(
        f"{base}/batch",
        json={
            "inputs": [{"message": QUESTION}] * 2,
            "config": [
                {"configurable": {"filter": where}},
                {"configurable": {"filter": {"page_from": 3, "page_to": 1}}},
            ],
        },
        timeout=60,
    ).json()
    assert names(batch["output"][0]["citations"]) == {GUIDE}
    assert batch["output"][1] is None and batch["errors"][1]["status"] == 400

    with httpx.stream("POST", f"{base}/stream", json=body(QUESTION, filter=where), timeout=60) as reply:
        assert reply.status_code == 200
        events = list(read_sse(reply.iter_lines()))
    sources = next(e for e in events if e.event == "sources").data["sources"]
    assert sources and names(sources) == {GUIDE}

    with connect(base.replace("http://", "ws://") + "/ws", open_timeout=10) as socket:
        socket.send(json.dumps(body(QUESTION, filter=where)))
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["event"] not in {"end", "error"}:
            frames.append(json.loads(socket.recv(timeout=30)))
        socket.send(json.dumps(body(QUESTION, filter={"colour": "red"})))
        refused = json.loads(socket.recv(timeout=30))
    assert names(frames[-1]["data"]["citations"]) == {GUIDE}
    assert refused["event"] == "error" and refused["data"]["status"] == 422

    chat = {"model": "docent", "messages": [{"role": "user", "content": QUESTION}]}
    completion = httpx.post(f"{base}/v1/chat/completions", json={**chat, "filter": where}, timeout=60)
    assert completion.status_code == 200, completion.text
    assert names(completion.json()["citations"]) == {GUIDE}
    backwards = {**chat, "filter": {"page_from": 3, "page_to": 1}}
    assert httpx.post(f"{base}/v1/chat/completions", json=backwards, timeout=60).status_code == 400
