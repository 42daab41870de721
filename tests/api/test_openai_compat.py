"""The official `openai` client against /v1 on real uvicorn: whole and streamed answers, threads, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from core.services import Services
from core.types import PriorMessage
from graph.build import build_graph
from graph.turn import run_turn
from tests.helpers import create_key, docent_server, ingest_sample
from tests.model_servers import model_backed_docent

QUESTION = "What temperature should a hot compost pile reach?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A server with the sample corpus and two query keys; yields (base URL, key A, key B)."""
    root = tmp_path_factory.mktemp("openai")
    data_dir = root / "data"
    ingest_sample(data_dir)
    key_a, key_b = create_key(data_dir, "a"), create_key(data_dir, "b")
    with docent_server(data_dir, root / "server.log", DOCENT_AUTH="on") as base:
        yield base, key_a, key_b


def client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)


def test_models_lists_docent_and_its_answerers(server: tuple[str, str, str]) -> None:
    base, key, _ = server
    ids = [m.id for m in client(base, key).models.list()]
    assert ids[0] == "docent" and "extractive" in ids


def test_a_whole_answer_with_citations_in_text_and_field(server: tuple[str, str, str]) -> None:
    base, key, _ = server
    reply = client(base, key).chat.completions.create(
        model="docent", messages=[{"role": "user", "content": QUESTION}]
    )
    text = reply.choices[0].message.content or ""
    assert "55" in text and "\n\nSources:\n[1] " in text
    assert reply.choices[0].finish_reason == "stop"
    extra = reply.model_extra or {}
    assert extra["citations"][0]["source"].endswith(".html")
    assert extra["docent"]["model"] == "extractive" and extra["thread_id"]
    # The extractive answerer runs no model: zero tokens, not estimated.
    assert reply.usage is not None and reply.usage.total_tokens == 0


def test_a_streamed_answer_in_chunks(server: tuple[str, str, str]) -> None:
    base, key, _ = server
    stream = client(base, key).chat.completions.create(
        model="docent",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "55" in text and "Sources:" in text
    finishing = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    assert (finishing.model_extra or {})["citations"]
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_thread_id_pins_a_thread_and_other_keys_get_404(server: tuple[str, str, str]) -> None:
    base, key_a, key_b = server
    first = client(base, key_a).chat.completions.create(
        model="docent", messages=[{"role": "user", "content": QUESTION}]
    )
    thread = (first.model_extra or {})["thread_id"]
    second = client(base, key_a).chat.completions.create(
        model="docent",
        messages=[{"role": "user", "content": "How often should it be turned?"}],
        extra_body={"thread_id": thread},
    )
    assert (second.model_extra or {})["thread_id"] == thread
    history = httpx.get(f"{base}/threads/{thread}", headers={"Authorization": f"Bearer {key_a}"}).json()
    assert history["turns"] == 2
    with pytest.raises(openai.NotFoundError):
        client(base, key_b).chat.completions.create(
            model="docent", messages=[{"role": "user", "content": "And?"}], extra_body={"thread_id": thread}
        )


def test_errors_come_in_openai_shape(server: tuple[str, str, str]) -> None:
    base, key, _ = server
    with pytest.raises(openai.AuthenticationError):
        client(base, "dk_wrong").models.list()
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        client(base, key).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": QUESTION}]
        )
    huge = httpx.post(
        f"{base}/v1/chat/completions",
        content=b"x" * 1_100_000,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="last message"):
        client(base, key).chat.completions.create(
            model="docent", messages=[{"role": "assistant", "content": "hello"}]
        )


async def test_client_history_seeds_a_new_thread(sample_services: Services) -> None:
    graph = build_graph(sample_services, InMemorySaver())
    history: list[PriorMessage] = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "About 55 °C."},
    ]
    result = await run_turn(graph, "How often should it be turned?", history=history)
    state = await graph.aget_state({"configurable": {"thread_id": result.thread_id}})
    texts = [m.text for m in state.values["messages"]]
    assert texts[:3] == [QUESTION, "About 55 °C.", "How often should it be turned?"]
    assert state.values["history"] == []  # consumed: a later turn does not add it again
    again = await run_turn(graph, "What bedding do worms need?", thread_id=result.thread_id)
    state = await graph.aget_state({"configurable": {"thread_id": again.thread_id}})
    assert len(state.values["messages"]) == 6  # history 2 + two turns of 2; not seeded twice


def test_a_model_failing_mid_stream_ends_with_a_note_and_the_fallback_answer(tmp_path: Path) -> None:
    with model_backed_docent(tmp_path) as docent:
        whole = client(docent.base, "auth-off").chat.completions.create(
            model="docent", messages=[{"role": "user", "content": QUESTION}]
        )
        assert (whole.model_extra or {})["docent"]["model"] == "openai/gpt-4o-mini"
        assert whole.usage is not None and whole.usage.prompt_tokens == 321  # as the model reported
        docent.openai.faults = ["drop"]  # two tokens, then the connection is cut
        chunks = list(
            client(docent.base, "auth-off").chat.completions.create(
                model="docent", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "[the model failed mid-answer" in text and "Sources:" in text
        finishing = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
        extras = (finishing.model_extra or {})["docent"]
        assert extras["degraded"] is True and extras["model"] == "extractive"
        assert text.index("failed mid-answer") < text.index("Sources:")
