"""Fault injection: model servers that fail with 500, 429 + Retry-After, hang past the timeout or drop the
connection mid-stream. Retries, fallbacks and degradation happen as specified; clients never see a 5xx;
every turn is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from core.answering.providers import make_answerers
from core.settings import Settings
from core.types import Answer
from tests.core.test_providers import REQUEST
from tests.helpers import free_port
from tests.model_servers import (
    ModelBackedDocent,
    ModelScript,
    model_backed_docent,
    read_sse,
)


@pytest.fixture
def servers(
    scripted_openai: tuple[str, ModelScript], scripted_ollama: tuple[str, ModelScript]
) -> tuple[str, ModelScript, str, ModelScript]:
    return (*scripted_openai, *scripted_ollama)


def settings_for(openai_base: str, ollama_base: str, fallbacks: str = "ollama") -> Settings:
    return Settings(
        llm_provider="openai",
        openai_base_url=f"{openai_base}/v1",
        llm_model="gpt-4o-mini",
        llm_fallbacks=fallbacks,
        ollama_base_url=ollama_base,
        llm_timeout_s=0.5,
        llm_max_retries=2,
        llm_backoff_s=0.05,
        llm_backoff_max_s=2.0,
    )


async def ask(settings: Settings) -> Answer:
    return await make_answerers(settings).get(None).answer(REQUEST)


async def test_server_errors_are_retried_with_backoff_until_one_succeeds(
    servers: tuple[str, ModelScript, str, ModelScript],
) -> None:
    openai_base, script, ollama_base, _ = servers
    script.faults = ["500", "500"]
    answer = await ask(settings_for(openai_base, ollama_base))
    assert answer.model == "openai/gpt-4o-mini" and not answer.degraded
    assert len(script.chat_requests) == 3
    gaps = [b - a for a, b in zip(script.request_times, script.request_times[1:], strict=False)]
    assert all(gap >= 0.02 for gap in gaps)  # backoff waited (0.025-0.05 s, then 0.05-0.1 s)


async def test_429_is_retried_after_the_servers_retry_after(
    servers: tuple[str, ModelScript, str, ModelScript],
) -> None:
    openai_base, script, ollama_base, _ = servers
    script.faults = ["429:1"]
    answer = await ask(settings_for(openai_base, ollama_base))
    assert answer.model == "openai/gpt-4o-mini" and not answer.degraded
    assert len(script.request_times) == 2
    assert script.request_times[1] - script.request_times[0] >= 0.95


async def test_a_retry_after_beyond_the_cap_goes_straight_to_the_fallback(
    servers: tuple[str, ModelScript, str, ModelScript],
) -> None:
    openai_base, script, ollama_base, ollama_script = servers
    script.faults = ["429:60"]
    answer = await ask(settings_for(openai_base, ollama_base))
    assert answer.model == "ollama/llama3.2" and answer.degraded
    assert answer.degraded_reason is not None and "HTTP 429" in answer.degraded_reason
    assert len(script.chat_requests) == 1 and len(ollama_script.chat_requests) == 1


async def test_a_model_that_hangs_past_the_timeout_falls_back_to_the_next_provider(
    servers: tuple[str, ModelScript, str, ModelScript],
) -> None:
    openai_base, script, ollama_base, _ = servers
    script.faults = ["hang", "hang", "hang"]
    answer = await ask(settings_for(openai_base, ollama_base))
    assert answer.model == "ollama/llama3.2"
    assert answer.degraded and not answer.interrupted
    assert answer.degraded_reason is not None
    assert "openai/gpt-4o-mini" in answer.degraded_reason and "after 3 tries" in answer.degraded_reason
    assert len(script.chat_requests) == 3
    assert answer.text.endswith("[1]")


async def test_when_every_model_fails_the_answer_is_extractive_and_says_why(
    servers: tuple[str, ModelScript, str, ModelScript],
) -> None:
    openai_base, script, _, _ = servers
    script.faults = ["500"] * 10
    nobody = f"http://127.0.0.1:{free_port()}"
    answer = await ask(settings_for(openai_base, nobody))
    assert answer.model == "extractive" and answer.degraded
    assert answer.degraded_reason is not None
    assert "openai/gpt-4o-mini: HTTP 500 after 3 tries" in answer.degraded_reason
    assert "ollama/llama3.2: ConnectError" in answer.degraded_reason
    assert "[1]" in answer.text and answer.citations


async def test_a_connection_dropped_mid_stream_degrades_at_once_without_retrying(
    servers: tuple[str, ModelScript, str, ModelScript],
) -> None:
    openai_base, script, ollama_base, ollama_script = servers
    script.faults = ["drop"]
    answer = await ask(settings_for(openai_base, ollama_base))
    assert answer.model == "extractive" and answer.degraded and answer.interrupted
    assert answer.degraded_reason is not None and "mid-stream" in answer.degraded_reason
    assert len(script.chat_requests) == 1 and not ollama_script.chat_requests


@pytest.fixture(scope="module")
def docent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelBackedDocent]:
    with model_backed_docent(tmp_path_factory.mktemp("faults")) as running:
        yield running


def post_invoke(base: str, message: str, thread_id: str | None = None) -> httpx.Response:
    configurable = {"thread_id": thread_id} if thread_id else {}
    body = {"input": {"message": message}, "config": {"configurable": configurable}}
    return httpx.post(f"{base}/invoke", json=body, timeout=60)


def test_model_failures_never_reach_the_client_and_every_turn_is_recorded(docent: ModelBackedDocent) -> None:
    docent.reset()
    # Turn 1: the first choice fails three times (500, 429, hang), Ollama answers.
    docent.openai.faults = ["500", "429:0", "hang"]
    first = post_invoke(docent.base, "What temperature should a hot compost pile reach?")
    assert first.status_code == 200, first.text
    output = first.json()["output"]
    thread = output["thread_id"]
    assert output["model"] == "ollama/llama3.2" and output["degraded"] is True
    assert "openai/gpt-4o-mini" in output["degraded_reason"]
    # Turn 2, streamed: the connection drops after two tokens; the stream says so and ends extractively.
    docent.openai.faults = ["drop"]
    body = {
        "input": {"message": "How much do red wigglers eat?"},
        "config": {"configurable": {"thread_id": thread}},
    }
    with httpx.stream("POST", f"{docent.base}/stream", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        events = list(read_sse(reply.iter_lines()))
    names = [e.event for e in events]
    assert names == ["metadata", "sources", "token", "token", "error", "end"], names
    end = events[-1].data
    assert end["model"] == "extractive" and end["degraded"] is True and "mid-stream" in end["degraded_reason"]
    # Turn 3: everyone fails; still a 200, answered extractively.
    docent.openai.faults = ["500"] * 3
    docent.ollama.faults = ["500"] * 3
    third = post_invoke(docent.base, "What bedding do worms need?", thread)
    assert third.status_code == 200
    assert third.json()["output"]["model"] == "extractive" and third.json()["output"]["degraded"]
    # Turn 4: healthy again.
    fourth = post_invoke(docent.base, "What temperature should a hot compost pile reach?", thread)
    assert fourth.json()["output"]["model"] == "openai/gpt-4o-mini"
    assert fourth.json()["output"]["degraded"] is False
    rows = docent.turns(thread)
    assert [(r[2], r[3]) for r in rows] == [
        ("ollama/llama3.2", 1),
        ("extractive", 1),
        ("extractive", 1),
        ("openai/gpt-4o-mini", 0),
    ]
    assert rows[1][1] == end["answer"] and rows[3][5] == 321 and rows[3][7] == 0 and rows[3][8] > 0
