"""Retrieval evaluation: metrics on hand-made rankings, the input formats, a regression floor on SQuAD."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from core.types import Passage, RetrieverMode
from evaluation.dataset import (
    DatasetError,
    GoldQuestion,
    load_followups,
    load_questions,
    parse_question,
    sample,
)
from evaluation.followups import score_followups
from evaluation.metrics import (
    covers_paragraph,
    first_hit_rank,
    from_documents,
    hit_rate,
    mean_reciprocal_rank,
    on_pages,
)
from evaluation.runner import EvalIndex, score_retriever, temporary_index
from tests.helpers import REPO_ROOT, SAMPLE_CORPUS, SHARED, docent_env, run_docent

SQUAD = SHARED / "eval" / "squad-dev"
FOLLOWUPS = REPO_ROOT / "evaluation" / "followups.jsonl"
# Six short articles, each with a follow-up pair in evaluation/followups.jsonl.
SAMPLE_ARTICLES = (
    "Amazon_rainforest",
    "Sky_(United_Kingdom)",
    "Victoria_(Australia)",
    "Jacksonville,_Florida",
    "Intergovernmental_Panel_on_Climate_Change",
    "Black_Death",
)
SAMPLE_QUESTIONS = 150
# Paragraph hit@5 on that sample (default chunking): 0.927 dense, 0.967 bm25, 0.973 hybrid; floors 0.05 under.
HIT_AT_5_FLOOR = {"dense": 0.87, "bm25": 0.91, "hybrid": 0.92}
# Built follow-up queries, hybrid: 5 of the 6 pairs have their gold paragraph in the top 5 (measured 0.833).
FOLLOW_UP_BUILT_HIT_AT_5_FLOOR = 0.78


def passage(source: str, *paragraph_ids: str) -> Passage:
    """A retrieved chunk as the retriever returns it, with only what scoring reads filled in."""
    return Passage(
        chunk_id=f"{source}:{'-'.join(paragraph_ids)}",
        text="",
        source=source,
        title="",
        page=None,
        section=None,
        score=0.0,
        paragraph_ids=list(paragraph_ids),
    )


def write_jsonl(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


# Metrics on hand-made rankings


def test_a_chunk_hits_when_it_covers_the_gold_paragraph_of_the_same_document() -> None:
    chunk = passage("/corpus/Black_Death.html", "p1", "p2")
    assert covers_paragraph(chunk, "Black_Death#p2")
    assert not covers_paragraph(chunk, "Black_Death#p12")  # p1 and p2 are not prefixes of p12
    assert not covers_paragraph(chunk, "Black_Death#p3")
    assert not covers_paragraph(chunk, "Chloroplast#p2")


def test_gold_documents_match_by_file_name_or_by_stem() -> None:
    chunk = passage("/docs/energy_savers.pdf")
    assert from_documents(chunk, ["energy_savers.pdf"])
    assert from_documents(chunk, ["other.pdf", "energy_savers"])
    assert not from_documents(chunk, ["energy_savers.html", "savers.pdf"])


def test_gold_pages_match_the_document_and_its_one_based_page() -> None:
    chunk = passage("/docs/ADOBE_2022_10K.pdf")
    chunk["page"] = 54
    assert on_pages(chunk, [("ADOBE_2022_10K.pdf", 54)])
    assert on_pages(chunk, [("other.pdf", 54), ("ADOBE_2022_10K", 54)])
    assert not on_pages(chunk, [("ADOBE_2022_10K.pdf", 53), ("other.pdf", 54)])
    chunk["page"] = None
    assert not on_pages(chunk, [("ADOBE_2022_10K.pdf", 54)])


def test_a_gold_pages_line_keeps_its_pages_and_a_bad_page_is_refused() -> None:
    item = {"question": "Q?", "gold_docs": ["a.pdf"], "gold_pages": [{"doc": "a.pdf", "page": 3}]}
    assert parse_question(item, "qa:1").gold_pages == (("a.pdf", 3),)
    with pytest.raises(DatasetError, match="qa:2: each of `gold_pages`"):
        parse_question({**item, "gold_pages": [{"doc": "a.pdf", "page": 0}]}, "qa:2")


def test_first_hit_rank_is_one_based_and_none_when_no_chunk_hits() -> None:
    ranking = [passage("/c/A.html", "p0"), passage("/c/B.html", "p4"), passage("/c/B.html", "p5")]
    assert first_hit_rank(ranking, lambda p: covers_paragraph(p, "A#p0")) == 1
    assert first_hit_rank(ranking, lambda p: covers_paragraph(p, "B#p5")) == 3
    assert first_hit_rank(ranking, lambda p: covers_paragraph(p, "B#p6")) is None


def test_hit_at_k_is_the_share_of_questions_with_a_hit_in_the_top_k() -> None:
    ranks = [1, 3, None, 6]
    assert [hit_rate(ranks, k) for k in (1, 3, 5, 10)] == [0.25, 0.5, 0.5, 0.75]
    assert hit_rate([], 5) == 0.0


def test_mrr_at_10_averages_reciprocal_first_ranks_and_counts_misses_and_deep_hits_as_zero() -> None:
    assert mean_reciprocal_rank([1, 2, None, 11], cutoff=10) == pytest.approx((1 + 0.5) / 4)
    assert mean_reciprocal_rank([4], cutoff=10) == pytest.approx(0.25)
    assert mean_reciprocal_rank([], cutoff=10) == 0.0


# Input formats


def test_a_paragraph_line_gives_its_paragraph_and_document_as_gold() -> None:
    item = {"question": "Q?", "answers": ["a"], "doc_id": "Black_Death", "para_id": "Black_Death#p3"}
    assert parse_question(item, "qa:1") == GoldQuestion(
        "Q?", gold_docs=("Black_Death",), para_id="Black_Death#p3", answers=("a",)
    )


def test_a_gold_docs_line_is_scored_by_document_only() -> None:
    question = parse_question({"question": "Q?", "gold_docs": ["a.pdf", "b.pdf"]}, "qa:1")
    assert question.para_id is None and question.gold_docs == ("a.pdf", "b.pdf")


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ('{"question": "Q?"}', "give `para_id`"),
        ('{"question": "Q?", "gold_docs": []}', "give `para_id`"),
        ('{"question": "", "gold_docs": ["a.pdf"]}', "`question`"),
        ('{"question": "Q?", "doc_id": "A", "para_id": "B#p1"}', "disagrees"),
        ('{"question": "Q?", "para_id": "p1"}', "<doc_id>#pN"),
        ("[1, 2]", "JSON object"),
        ("{oops", "not JSON"),
    ],
)
def test_a_bad_line_is_rejected_naming_the_file_and_line(tmp_path: Path, line: str, complaint: str) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "Fine?", "gold_docs": ["a.pdf"]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=rf"qa\.jsonl:2: .*{re.escape(complaint)}"):
        load_questions(qa)


def test_sampling_is_reproducible_for_a_seed_and_keeps_everything_without_a_limit() -> None:
    items = list(range(100))
    assert sample(items, 10, seed=0) == sample(items, 10, seed=0)
    assert sample(items, 10, seed=0) != sample(items, 10, seed=1)
    assert sample(items, None, seed=0) == items and sample(items, 500, seed=0) == items


def test_follow_ups_never_name_their_article_and_their_gold_paragraph_exists() -> None:
    pairs = load_followups(FOLLOWUPS)
    assert len(pairs) >= 30
    for pair in pairs:
        title_words = [w.lower() for w in re.split(r"[_(),]+", pair.doc_id) if len(w) > 3]
        assert not any(w in pair.follow_up.lower() for w in title_words), pair.follow_up
        article = (SQUAD / "corpus_html" / f"{pair.doc_id}.html").read_text(encoding="utf-8")
        assert f'<p id="{pair.para_id.rpartition("#")[2]}">' in article


# Real runs: a SQuAD sample in a temporary store, and the command on the repo's sample corpus


@pytest.fixture(scope="module")
def squad_index() -> Iterator[EvalIndex]:
    """Six SQuAD articles ingested with the default chunking into a temporary store."""
    files = [SQUAD / "corpus_html" / f"{doc_id}.html" for doc_id in SAMPLE_ARTICLES]
    with temporary_index(files, Settings()) as index:
        assert index.ingest is not None and not index.ingest.failures
        yield index


@pytest.fixture(scope="module")
def squad_questions() -> list[GoldQuestion]:
    questions = [q for q in load_questions(SQUAD / "qa-dev.jsonl") if q.gold_docs[0] in SAMPLE_ARTICLES]
    return sample(questions, SAMPLE_QUESTIONS, seed=0)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_paragraph_hit_at_5_on_a_squad_sample_stays_above_its_floor(
    squad_index: EvalIndex, squad_questions: list[GoldQuestion], mode: RetrieverMode
) -> None:
    score = score_retriever(
        squad_index.searcher, squad_questions, mode=mode, collection=squad_index.collection
    )
    assert score.questions == score.paragraph_questions == SAMPLE_QUESTIONS
    assert score.hit_at is not None and score.hit_at[5] >= HIT_AT_5_FLOOR[mode], score
    assert score.doc_hit_at[5] >= score.hit_at[5]  # a paragraph hit is a document hit


def test_follow_ups_searched_with_the_earlier_turn_still_find_their_gold_paragraph(
    squad_index: EvalIndex,
) -> None:
    pairs = [p for p in load_followups(FOLLOWUPS) if p.doc_id in SAMPLE_ARTICLES]
    score = score_followups(squad_index, pairs, mode="hybrid", history_turns=2)
    assert score.pairs == len(SAMPLE_ARTICLES) == score.flagged
    assert score.built.hit_at is not None and score.built.hit_at[5] >= FOLLOW_UP_BUILT_HIT_AT_5_FLOOR


def test_follow_ups_without_history_are_searched_exactly_as_the_bare_follow_up(
    squad_index: EvalIndex,
) -> None:
    pairs = [p for p in load_followups(FOLLOWUPS) if p.doc_id in SAMPLE_ARTICLES]
    score = score_followups(squad_index, pairs, mode="bm25", history_turns=0)
    assert score.built.hit_at == score.bare.hit_at and score.built.mrr_at_10 == score.bare.mrr_at_10


def test_eval_command_scores_gold_docs_questions_on_a_pdf_and_html_corpus(tmp_path: Path) -> None:
    qa = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {
                "question": "What temperature should a hot compost pile reach?",
                "gold_docs": ["hot-vs-cold-composting"],
            },
            {
                "question": "How much food can red wigglers process?",
                "gold_docs": ["compost-field-guide.pdf"],
                "gold_pages": [{"doc": "compost-field-guide.pdf", "page": 2}],
            },
        ],
    )
    out = tmp_path / "figures.json"
    done = run_docent(
        [
            "eval",
            "--qa",
            str(qa),
            "--corpus",
            str(SAMPLE_CORPUS),
            "--retrievers",
            "bm25,hybrid",
            "--json",
            str(out),
        ],
        docent_env(tmp_path / "unused-data"),
    )
    assert done.returncode == 0, done.stderr
    assert "doc hit@5" in done.stdout and "doc MRR@10" in done.stdout and "page hit@5" in done.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["questions"] == 2 and figures["chunks"] > 0
    assert [r["retriever"] for r in figures["retrievers"]] == ["bm25", "hybrid"]
    for result in figures["retrievers"]:
        assert result["hit_at"] is None and result["mrr_at_10"] is None
        assert set(result["doc_hit_at"]) == {"1", "3", "5", "10"}
        assert result["page_questions"] == 1 and result["page_hit_at"]["5"] == 1.0  # page 2 holds the answer
    assert not (tmp_path / "unused-data").exists()  # the corpus went into a temporary store


def test_eval_command_refuses_both_a_corpus_and_a_collection(tmp_path: Path) -> None:
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Q?", "gold_docs": ["a.pdf"]}])
    done = run_docent(
        ["eval", "--qa", str(qa), "--corpus", str(SAMPLE_CORPUS), "--collection", "docent"],
        docent_env(tmp_path / "data"),
    )
    assert done.returncode == 2
    assert "exactly one of --corpus" in done.stderr
