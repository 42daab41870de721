"""The answer cache over HTTP (real uvicorn, DOCENT_CACHE=on, the scripted OpenAI-protocol model, whose
requests are counted): /invoke, /batch, /stream and /v1 serve a paraphrase from the cache with the first
answer's citations; POST /ingest into the collection invalidates; another workspace's key gets its own."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.support.servers import docent_env, run_docent
from tests.helpers import create_key, ingest_sample
from tests.model_servers import ModelScript, model_backed_docent, read_sse

QUESTION = "How much do red wigglers eat per day?"
PARAPHRASES = (
    "Can you tell me how much red wigglers eat per day, please?",
    "How much do red wigglers eat per day, if you know?",
    "Quick question: how much do red wigglers eat per day?",
    "How much do red wigglers eat per day? Thanks.",
    "Do you know how much red wigglers eat per day?",
)


class Server:
    def __init__(self, base: str, keys: dict[str, str], model: ModelScript) -> None:
        self.base, self.keys, self.model = base, keys, model

    def post(self, path: str, payload: dict[str, Any], key: str = "a") -> dict[str, Any]:
        reply = httpx.post(f"{self.base}{path}", json=payload, headers=self.auth(key), timeout=60)
        assert reply.status_code in (200, 202), reply.text
        body: dict[str, Any] = reply.json()
        return body

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def invoke(self, message: str, key: str = "a", **configurable: Any) -> dict[str, Any]:
        body = self.post(
            "/invoke", {"input": {"message": message}, "config": {"configurable": configurable}}, key
        )
        output: dict[str, Any] = body["output"]
        return output

    @property
    def model_calls(self) -> int:
        return len(self.model.chat_requests)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The sample corpus, keys in workspaces `default` (a) and `team-b` (b, with the sample corpus too)."""
    root = tmp_path_factory.mktemp("answer-cache")
    data_dir = ingest_sample(root / "data")
    made = run_docent(
        ["keys", "create", "b", "--scopes", "query", "--workspace", "team-b"], docent_env(data_dir)
    )
    assert made.returncode == 0, made.stderr
    keys = {"a": create_key(data_dir, "a", "query,ingest"), "b": made.stdout.strip().splitlines()[-1]}
    with model_backed_docent(
        root, data_dir, DOCENT_AUTH="on", DOCENT_CACHE="on", DOCENT_RATE_LIMIT_PER_MINUTE="0"
    ) as docent:
        yield Server(docent.base, keys, docent.openai)


def test_invoke_batch_stream_and_v1_serve_a_paraphrase_from_the_cache(server: Server) -> None:
    first = server.invoke(QUESTION)
    assert first["cached"] is False and first["model"] == "openai/gpt-4o-mini"
    calls = server.model_calls

    served = server.invoke(PARAPHRASES[0])
    assert served["cached"] is True
    assert served["answer"] == first["answer"] and served["citations"] == first["citations"]

    batch = server.post("/batch", {"inputs": [{"message": PARAPHRASES[1]}], "config": {}})
    assert batch["output"][0]["cached"] is True and batch["output"][0]["answer"] == first["answer"]

    with httpx.stream(
        "POST",
        f"{server.base}/stream",
        json={"input": {"message": PARAPHRASES[2]}, "config": {}},
        headers=server.auth("a"),
        timeout=60,
    ) as reply:
        assert reply.status_code == 200
        events = list(read_sse(reply.iter_lines()))
    end = events[-1]
    assert end.event == "end" and end.data["cached"] is True
    assert end.data["citations"] == first["citations"]

    completion = server.post(
        "/v1/chat/completions", {"model": "docent", "messages": [{"role": "user", "content": PARAPHRASES[3]}]}
    )
    assert completion["docent"]["cached"] is True and completion["citations"] == first["citations"]

    assert server.model_calls == calls  # none of the four ran the model

    thread = httpx.get(f"{server.base}/threads/{served['thread_id']}", headers=server.auth("a"), timeout=30)
    assert thread.status_code == 200
    assert [m["content"] for m in thread.json()["messages"]] == [PARAPHRASES[0], first["answer"]]


def test_an_ingest_into_the_collection_makes_the_next_paraphrase_run_the_graph(server: Server) -> None:
    server.invoke(QUESTION)
    assert server.invoke(PARAPHRASES[4])["cached"] is True
    note = b"# Wiggler note\n\nRed wigglers eat about half their body weight a day in scraps.\n"
    job = server.post(
        "/ingest", {"files": [{"name": "wiggler-note.md", "content_base64": base64.b64encode(note).decode()}]}
    )
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(f"{server.base}/ingest/{job['id']}", headers=server.auth("a"), timeout=30).json()
        if status["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status["status"] == "done", status
    calls = server.model_calls
    again = server.invoke(PARAPHRASES[4])
    assert again["cached"] is False
    assert server.model_calls == calls + 1


def test_another_workspaces_key_does_not_get_the_cached_answer(server: Server) -> None:
    server.invoke(QUESTION)
    assert server.invoke(PARAPHRASES[1])["cached"] is True
    calls = server.model_calls
    theirs = server.invoke(PARAPHRASES[1], key="b")
    assert theirs["cached"] is False and server.model_calls == calls + 1


def test_a_second_turn_on_a_thread_is_not_served_from_the_cache(server: Server) -> None:
    first = server.invoke(QUESTION)
    calls = server.model_calls
    second = server.invoke(PARAPHRASES[0], thread_id=first["thread_id"])
    assert second["cached"] is False and server.model_calls == calls + 1
