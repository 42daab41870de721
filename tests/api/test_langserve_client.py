"""LangServe's own client (`langserve.RemoteRunnable`) against `docent serve` over real uvicorn, with API keys
on and a scripted OpenAI-compatible model server streaming the answer token by token: invoke, batch, stream
and a two-turn thread, unchanged client code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langserve import RemoteRunnable

from bench.support.servers import create_key, ingest_sample
from tests.model_servers import ModelScript, model_backed_docent


@dataclass
class Served:
    base: str
    key: str
    script: ModelScript

    def client(self, **headers: str) -> RemoteRunnable[Any, Any]:
        return RemoteRunnable(
            f"{self.base}/", headers={"Authorization": f"Bearer {self.key}", **headers}, timeout=60
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("langserve")
    data_dir = ingest_sample(workdir / "data")
    key = create_key(data_dir, "langserve-client", "query")
    with model_backed_docent(workdir, data_dir, DOCENT_AUTH="on") as docent:
        yield Served(docent.base, key, docent.openai)


def ask(message: str) -> dict[str, str]:
    return {"message": message}


def test_invoke_answers_with_citations_and_a_thread(served: Served) -> None:
    output = served.client().invoke(ask("What temperature should a hot compost pile reach?"))
    assert isinstance(output, dict)
    assert output["answer"].strip() and output["citations"], output
    assert output["model"] == "openai/gpt-4o-mini" and output["thread_id"]


def test_batch_of_three_answers_each_input(served: Served) -> None:
    questions = ["What bedding do worms need?", "What is bokashi?", "How often should I turn a hot pile?"]
    outputs = served.client().batch([ask(q) for q in questions])
    assert len(outputs) == 3
    assert all(o["answer"].strip() and o["citations"] for o in outputs), outputs
    assert len({o["thread_id"] for o in outputs}) == 3  # each input on its own new thread


def test_stream_yields_the_answer_in_pieces_that_add_up_to_invoke_output(served: Served) -> None:
    question = ask("What temperature should a hot compost pile reach?")
    chunks = list(served.client().stream(question))
    pieces = [c["answer"] for c in chunks if "answer" in c]
    assert len(pieces) >= 5, chunks  # the scripted model streams 13 tokens
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk  # AddableDict: LangServe's additive chunks
    assert whole["answer"] == "".join(pieces)
    invoked = served.client().invoke(question)
    assert whole["answer"].strip() == invoked["answer"].strip()
    assert [c["source"] for c in whole["citations"]] == [c["source"] for c in invoked["citations"]]
    assert set(whole) == set(invoked)


async def test_astream_and_ainvoke_work_too(served: Served) -> None:
    client = served.client()
    chunks = [chunk async for chunk in client.astream(ask("What is bokashi?"))]
    assert sum(1 for c in chunks if "answer" in c) >= 2 and any("citations" in c for c in chunks)
    output = await client.ainvoke(ask("What is bokashi?"))
    assert output["answer"].strip()


def test_a_two_turn_thread_keeps_its_history(served: Served) -> None:
    client = served.client()
    first = client.invoke(ask("What bedding do worms need?"))
    thread: RunnableConfig = {"configurable": {"thread_id": first["thread_id"]}}
    second = client.invoke(ask("And how much do they eat?"), config=thread)
    assert second["thread_id"] == first["thread_id"]
    streamed = list(client.stream(ask("And what temperature do they like?"), config=thread))
    assert any(c.get("thread_id") == first["thread_id"] for c in streamed)
    # The model saw the earlier turns of the thread in its messages.
    last = served.script.chat_requests[-1]["messages"]
    assert any("bedding" in str(m.get("content", "")) for m in last), last


def test_a_stream_failure_is_langserve_error_event_the_client_raises(served: Served) -> None:
    bad: RunnableConfig = {"configurable": {"collection": "no-such-collection"}}
    with pytest.raises(httpx.HTTPStatusError) as raised:
        list(served.client().stream(ask("What is bokashi?"), config=bad))
    assert raised.value.response.status_code in (404, 409)


def test_without_a_key_the_client_gets_401(served: Served) -> None:
    client: RemoteRunnable[Any, Any] = RemoteRunnable(f"{served.base}/", timeout=30)
    with pytest.raises(httpx.HTTPStatusError) as raised:
        client.invoke(ask("What is bokashi?"))
    assert raised.value.response.status_code == 401


def test_non_empty_kwargs_are_refused_and_docent_events_stay_the_default_without_kwargs(
    served: Served,
) -> None:
    auth = {"Authorization": f"Bearer {served.key}"}
    body: dict[str, Any] = {"input": ask("What is bokashi?"), "kwargs": {"temperature": 1}}
    refused = httpx.post(f"{served.base}/invoke", json=body, headers=auth, timeout=60)
    assert refused.status_code == 422 and "kwargs are not supported" in refused.text
    del body["kwargs"]
    with httpx.stream("POST", f"{served.base}/stream", json=body, headers=auth, timeout=60) as reply:
        names = [line.partition(":")[2].strip() for line in reply.iter_lines() if line.startswith("event:")]
    assert names[:2] == ["metadata", "sources"] and names[-1] == "end" and "data" not in names
    with httpx.stream(
        "POST", f"{served.base}/stream?format=langserve", json=body, headers=auth, timeout=60
    ) as reply:
        names = [line.partition(":")[2].strip() for line in reply.iter_lines() if line.startswith("event:")]
    assert names[0] == "metadata" and names[-1] == "end" and set(names[1:-1]) == {"data"}, names


async def test_astream_events_sends_the_turn_as_langchain_stream_events(served: Served) -> None:
    client = served.client()
    events = [e async for e in client.astream_events(ask("What is bokashi?"), version="v2")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "on_chain_start" and kinds[-1] == "on_chain_end", kinds
    assert "on_retriever_end" in kinds and kinds.count("on_chat_model_stream") >= 2
    chunks = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    documents = next(e["data"]["output"] for e in events if e["event"] == "on_retriever_end")
    assert documents and all(isinstance(d, Document) and d.metadata["source"] for d in documents)
    output = events[-1]["data"]["output"]
    assert output["answer"] == "".join(str(c.content) for c in chunks)
    only_tokens = [
        e async for e in client.astream_events(ask("What is bokashi?"), include_types=["chat_model"])
    ]
    assert only_tokens and {e["event"] for e in only_tokens} == {"on_chat_model_stream"}


def test_a_model_failing_mid_stream_still_ends_with_the_fallbacks_answer(served: Served) -> None:
    served.script.faults[:] = ["drop", "drop", "drop"]  # two tokens, then the connection is cut, each retry
    try:
        chunks = list(served.client().stream(ask("What is bokashi?")))
    finally:
        served.script.faults.clear()
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert whole["model"] != "openai/gpt-4o-mini" and whole["degraded"], whole
    record = served.client().invoke(ask("What is bokashi?"))  # the model is healthy again
    assert record["model"] == "openai/gpt-4o-mini"
    assert whole["answer"].strip() and whole["citations"]


def test_an_in_band_stream_error_reaches_the_client_as_its_status(served: Served) -> None:
    """A turn refused after the stream began (the thread is busy with another turn) is LangServe's `error`
    event, which the client raises as an HTTPStatusError with the status /invoke would answer."""
    client = served.client()
    thread: RunnableConfig = {
        "configurable": {"thread_id": client.invoke(ask("What is bokashi?"))["thread_id"]}
    }
    served.script.token_delay_s = 0.3  # the first turn holds the thread for a few seconds
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(
                lambda: list(client.stream(ask("What bedding do worms need?"), config=thread))
            )
            time.sleep(1.0)
            with pytest.raises(httpx.HTTPStatusError) as raised:
                list(client.stream(ask("And how much do they eat?"), config=thread))
            assert raised.value.response.status_code == 409
            assert any("answer" in c for c in first.result(timeout=60))
    finally:
        served.script.token_delay_s = 0.0
