"""Second-stage reranking and adaptive fusion: the LLM reranker against a real OpenAI-protocol server on
127.0.0.1, its order parsing, its fallback to the first-stage order, and BM25's per-query weight."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from langchain_openai import ChatOpenAI

from core.retrieval.rerank import LLMReranker, parse_order, rerank_prompt
from core.retrieval.retriever import bm25_peak, bm25_weight
from core.services import Services
from core.settings import Settings
from core.types import Passage
from tests.model_servers import ModelScript, openai_app, serving


def passage(n: int, text: str) -> Passage:
    return Passage(
        chunk_id=f"c{n}",
        text=text,
        source=f"doc{n}.txt",
        title=f"Doc {n}",
        page=None,
        section=None,
        score=0.5,
        paragraph_ids=[],
    )


CANDIDATES = [
    passage(1, "Bananas are yellow."),
    passage(2, "Paris is in France."),
    passage(3, "Rome is old."),
]


def chat(base: str) -> ChatOpenAI:
    return ChatOpenAI(model="ranker", base_url=f"{base}/v1", api_key="test", max_retries=0, timeout=10)


def test_the_reply_order_is_kept_and_what_it_leaves_out_follows_in_first_stage_order() -> None:
    assert parse_order("2, 3", 3) == [1, 2, 0]
    assert parse_order("Ranking: [3] then 3 again, 9 and 0", 3) == [2, 0, 1]
    assert parse_order("no numbers here", 3) == [0, 1, 2]


def test_the_prompt_numbers_every_candidate_and_cuts_long_ones() -> None:
    long = passage(4, "word " * 1000)
    prompt = rerank_prompt("Where is Paris?", [*CANDIDATES, long])
    assert "[1] (Doc 1) Bananas are yellow." in prompt and "[4] (Doc 4)" in prompt
    assert len(prompt) < 2500


def test_the_model_s_order_is_the_answer_s_order() -> None:
    script = ModelScript(reply=lambda _first: "2, 3, 1")
    with serving(openai_app(script)) as base:
        ranked = LLMReranker(chat(base), model_name="openai/ranker").rerank("Where is Paris?", CANDIDATES)
    assert [p["chunk_id"] for p in ranked] == ["c2", "c3", "c1"]
    prompt = script.chat_requests[0]["messages"][-1]["content"]
    assert "Question: Where is Paris?" in prompt and "[2] (Doc 2) Paris is in France." in prompt


def test_a_failing_model_keeps_the_first_stage_order() -> None:
    script = ModelScript(faults=["500"])
    with serving(openai_app(script)) as base:
        ranked = LLMReranker(chat(base), model_name="openai/ranker").rerank("Where is Paris?", CANDIDATES)
    assert ranked == CANDIDATES
    assert len(script.chat_requests) == 1


def test_the_configured_reranker_orders_what_the_retriever_returns(tmp_path: Path) -> None:
    """DOCENT_RERANKER=llm: the retriever hands its candidates to the answering model and keeps k."""
    script = ModelScript(reply=lambda _first: "3, 2")
    with serving(openai_app(script)) as base:
        settings = Settings(
            data_dir=tmp_path,
            llm_provider="openai",
            openai_base_url=f"{base}/v1",
            openai_api_key="test",
            reranker="llm",
            rerank_candidates=3,
        )
        services = Services(settings)
        try:
            (tmp_path / "notes.md").write_text(
                "# Fruit\n\nBananas are yellow and grow in bunches.\n\n# Cities\n\nParis is the capital of"
                " France.\n\n# Rome\n\nRome is an ancient city in Italy.\n",
                encoding="utf-8",
            )
            from ingest.pipeline import Ingestor

            Ingestor(settings, services.embedder, services.store).run(
                [str(tmp_path / "notes.md")], collection=settings.collection
            )
            found = services.retriever.search(
                "Which city is the capital of France?", k=2, collection=settings.collection
            )
        finally:
            services.close()
    assert len(found) == 2
    assert len(script.chat_requests) == 1, "one rerank call per search"
    prompt = script.chat_requests[0]["messages"][-1]["content"]
    shown = {line[1]: line.split(") ", 1)[1] for line in prompt.splitlines() if line.startswith("[")}
    assert sorted(shown) == ["1", "2", "3"], "the three candidates, numbered"
    assert [" ".join(p["text"].split()) for p in found] == [shown["3"], shown["2"]], (
        "the model's order, cut to k"
    )


def hits(*scores: float) -> Sequence[tuple[str, float]]:
    return [(f"c{i}", s) for i, s in enumerate(scores)]


def test_bm25_weighs_more_when_its_best_hit_stands_out() -> None:
    settings = Settings(bm25_weight=2.0, bm25_flat_weight=0.5, bm25_peak_ratio=1.3)
    peaked = hits(20.0, 12.0, 11.0, 10.0, 10.0, 9.0)
    flat = hits(12.0, 11.8, 11.5, 11.0, 10.0)
    assert bm25_peak(peaked) == 2.0
    assert bm25_weight(peaked, settings) == 2.0
    assert bm25_weight(flat, settings) == 0.5
    assert bm25_weight(hits(5.0, 1.0), settings) == 2.0, "fewer than five hits: the words are rare"
    fixed = Settings(bm25_weight=1.0, bm25_flat_weight=1.0)
    assert bm25_weight(flat, fixed) == bm25_weight(peaked, fixed) == 1.0
