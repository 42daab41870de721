"""Answer-level evaluation: the text metrics, the judging of citations, the means over corpora, and floors on
the graph's extractive answers to SQuAD and FinanceBench samples."""

from __future__ import annotations

import pytest

from core.types import Citation, Passage, TurnOutput, citation_of
from evaluation.answer_metrics import (
    answer_tokens,
    contains,
    match_answer,
    normalize_answer,
    shortest_answering_span,
    strip_citations,
    token_f1,
    word_count,
)
from evaluation.answers import AnswerScore, JudgedAnswer, judge, score_answers, summarise
from evaluation.corpora import CorpusRun, mean_answers, mean_retrievers
from evaluation.dataset import GoldQuestion
from evaluation.runner import EvalIndex, RetrieverScore

# Extractive answers through the graph (default settings) to the 150 SQuAD sample questions, measured with
# `.venv/bin/python -m pytest -q tests/evaluation/test_answers.py -k squad` on 2026-12-01 (the finished
# answerer of issue 14): span F1 0.937, contains-gold 0.913, citations hold the gold paragraph 0.967 and name
# the gold document 0.993, median answer 48 words. Floors about 0.015 under the measured values, the ceiling
# 2 words over (the goal is a median of at most 60 words).
SQUAD_ANSWER_FLOORS = {
    "span_f1": 0.92,
    "contains_gold": 0.9,
    "citations_hold_gold_paragraph": 0.95,
    "citations_name_gold_doc": 0.98,
}
SQUAD_MEDIAN_WORDS_CEILING = 50
# The same on the 9 FinanceBench sample questions (`-k financebench`): citations name the gold document 1.000
# (9 of 9) and the gold page 0.778 (7 of 9); floors 0.01 under.
FINANCEBENCH_ANSWER_FLOORS = {"citations_name_gold_doc": 0.99, "citations_name_gold_page": 0.77}


def chunk(source: str, text: str, *paragraph_ids: str, page: int | None = None) -> Passage:
    return Passage(
        chunk_id=f"{source}#{'-'.join(paragraph_ids)}{page or ''}",
        text=text,
        source=source,
        title="",
        page=page,
        section=None,
        score=0.5,
        paragraph_ids=list(paragraph_ids),
    )


def cite(n: int, passage: Passage, *, cited: bool) -> Citation:
    return citation_of(n, passage, cited=cited)


def output(answer: str, citations: list[Citation]) -> TurnOutput:
    return TurnOutput(answer=answer, citations=citations, model="extractive", degraded=False, thread_id="t")


# Text metrics


def test_normalisation_lowers_case_and_drops_punctuation_articles_and_extra_space() -> None:
    assert normalize_answer("The  Black-Death, in 1347!") == "blackdeath in 1347"
    assert normalize_answer("\u201cAn\u201d apple \u2013 a day") == "apple day"  # Unicode quotes, dashes
    assert answer_tokens("A cat's hat.") == ["cats", "hat"]


def test_citation_markers_are_not_part_of_the_answer() -> None:
    assert (
        strip_citations("It spread in 1347 [1]. Then it waned [2, 3].") == "It spread in 1347. Then it waned."
    )
    assert word_count("It spread in 1347 [1]. Then it waned [2].") == 7


def test_token_f1_is_the_harmonic_mean_of_token_precision_and_recall() -> None:
    assert token_f1(["cat", "sat"], ["cat", "sat", "on", "mat"]) == pytest.approx(2 / 3)
    assert token_f1(["cat", "cat"], ["cat"]) == pytest.approx(2 / 3)  # a repeat counts once per gold token
    assert token_f1([], []) == 1.0 and token_f1(["x"], []) == 0.0


def test_the_shortest_answering_span_is_the_run_of_answer_tokens_with_the_best_f1() -> None:
    tokens = ["plague", "came", "from", "central", "asia", "along", "silk", "road"]
    exact = shortest_answering_span(tokens, ["central", "asia"])
    assert (exact.start, exact.end, exact.f1) == (3, 5, 1.0)
    across = shortest_answering_span(tokens, ["from", "asia"])  # "from central asia" beats "from" or "asia"
    assert (across.start, across.end) == (2, 5) and across.f1 == pytest.approx(2 * 2 / (3 + 2))
    assert shortest_answering_span(tokens, ["europe"]).f1 == 0.0


def test_on_a_tie_the_shortest_and_then_the_earliest_span_wins() -> None:
    span = shortest_answering_span(["x", "a", "y", "a"], ["a", "b"])
    assert (span.start, span.end) == (1, 2) and span.f1 == pytest.approx(2 / 3)


def test_an_answer_is_matched_against_its_best_gold_answer() -> None:
    match = match_answer("The Broncos won the game [1].", ["Denver Broncos", "Broncos"])
    assert match.exact_match == 1.0 and match.span_f1 == 1.0 and match.contains_gold
    assert match.answer_f1 == pytest.approx(2 / 4)  # broncos, won, game against broncos
    partial = match_answer("Denver won [1].", ["Denver Broncos"])
    assert (
        partial.exact_match == 0.0 and partial.span_f1 == pytest.approx(2 / 3) and not partial.contains_gold
    )
    with pytest.raises(ValueError, match="at least one gold"):
        match_answer("anything", [])


def test_containment_is_on_word_boundaries() -> None:
    assert contains(answer_tokens("It began in 1347."), answer_tokens("1347"))
    assert not contains(answer_tokens("It began in 13470."), answer_tokens("1347"))
    assert not contains(answer_tokens("anything"), [])


# Judging answers and their citations


QUESTION = GoldQuestion(
    "When did the plague reach Europe?",
    gold_docs=("Black_Death",),
    para_id="Black_Death#p3",
    answers=("1347",),
)


def test_a_cited_passage_supports_the_gold_by_holding_the_answer_or_being_the_gold_paragraph() -> None:
    gold_paragraph = chunk("/c/Black_Death.html", "It reached Sicily first.", "p3")
    holds_answer = chunk("/c/Black_Death.html", "Traders brought it in 1347.", "p9")
    off_topic = chunk("/c/Chloroplast.html", "Chloroplasts make sugar.", "p1")
    citations = [cite(1, gold_paragraph, cited=True), cite(2, holds_answer, cited=True)]
    citations.append(cite(3, off_topic, cited=True))
    judged = judge(
        QUESTION,
        output("It came in 1347 [2]; Sicily first [1]. Sugar [3].", citations),
        [gold_paragraph, holds_answer, off_topic],
    )
    assert (judged.cited, judged.cited_supporting) == (3, 2)
    assert judged.exact_match == 1.0 and judged.contains_gold
    assert judged.names_gold_doc and judged.holds_gold_paragraph and judged.names_gold_page is None


def test_an_answer_citing_nothing_still_names_the_documents_its_listed_citations_come_from() -> None:
    gold_paragraph = chunk("/c/Black_Death.html", "It reached Sicily first.", "p3")
    judged = judge(QUESTION, output("Not found.", [cite(1, gold_paragraph, cited=False)]), [gold_paragraph])
    assert judged.cited == 0 and judged.cited_supporting == 0
    assert judged.names_gold_doc and judged.holds_gold_paragraph
    assert judged.span_f1 == 0.0 and not judged.contains_gold


def test_citations_name_the_gold_page_by_document_and_one_based_page() -> None:
    question = GoldQuestion("Q?", gold_docs=("a.pdf",), gold_pages=(("a.pdf", 4),))
    page_3, page_4 = chunk("/d/a.pdf", "x", page=3), chunk("/d/a.pdf", "y", page=4)
    assert not judge(question, output("x [1]", [cite(1, page_3, cited=True)]), [page_3]).names_gold_page
    judged = judge(
        question,
        output("y [2]", [cite(1, page_3, cited=False), cite(2, page_4, cited=True)]),
        [page_3, page_4],
    )
    assert judged.names_gold_page and judged.cited_supporting == 1  # a gold page supports without answers
    assert judged.span_f1 is None and judged.contains_gold is None  # no gold answers


def judged_answer(**fields: object) -> JudgedAnswer:
    base: dict[str, object] = {
        "exact_match": 0.0,
        "span_f1": 0.5,
        "answer_f1": 0.2,
        "contains_gold": False,
        "cited": 1,
        "cited_supporting": 1,
        "names_gold_doc": True,
        "names_gold_page": None,
        "holds_gold_paragraph": None,
        "words": 10,
        "model": "extractive",
        "turn_ms": 5.0,
    }
    return JudgedAnswer(**{**base, **fields})  # type: ignore[arg-type]


def test_summary_pools_citation_precision_and_counts_only_questions_with_the_gold_each_figure_needs() -> None:
    score = summarise(
        [
            judged_answer(
                exact_match=1.0, span_f1=1.0, contains_gold=True, cited=2, cited_supporting=1, words=30
            ),
            judged_answer(cited=0, cited_supporting=0, names_gold_doc=False, names_gold_page=True, words=20),
            judged_answer(
                exact_match=None,
                span_f1=None,
                answer_f1=None,
                contains_gold=None,
                cited=1,
                cited_supporting=0,
                names_gold_page=False,
                words=40,
            ),
        ],
        retriever="hybrid",
        k=4,
    )
    assert (score.questions, score.answer_questions, score.page_questions) == (3, 2, 2)
    assert score.exact_match == 0.5 and score.span_f1 == 0.75 and score.contains_gold == 0.5
    assert score.citation_precision == pytest.approx(1 / 3, abs=1e-4) and score.cited_citations == 3
    assert score.cites_nothing == pytest.approx(1 / 3, abs=1e-4)
    assert score.citations_name_gold_doc == pytest.approx(2 / 3, abs=1e-4)
    assert score.citations_name_gold_page == 0.5 and score.citations_hold_gold_paragraph is None
    assert score.median_words == 30 and score.models == {"extractive": 3}


# Means over corpora


def retriever_score(
    mode: str, doc_hit: float, *, paragraph_hit: float | None = None, page_hit: float | None = None
) -> RetrieverScore:
    return RetrieverScore(
        retriever=mode,
        questions=10,
        paragraph_questions=10 if paragraph_hit is not None else 0,
        hit_at={5: paragraph_hit} if paragraph_hit is not None else None,
        mrr_at_10=paragraph_hit,
        doc_hit_at={5: doc_hit},
        doc_mrr_at_10=doc_hit / 2,
        page_questions=10 if page_hit is not None else 0,
        page_hit_at={5: page_hit} if page_hit is not None else None,
        page_mrr_at_10=page_hit,
        latency_p50_ms=1.0,
        latency_p95_ms=2.0,
    )


def test_each_mean_averages_over_the_corpora_that_have_its_gold() -> None:
    squad = CorpusRun({"corpus": "squad"}, [retriever_score("hybrid", 0.9, paragraph_hit=0.8)])
    pdfs = CorpusRun({"corpus": "pdfs"}, [retriever_score("hybrid", 0.7, page_hit=0.4)])
    (mean,) = mean_retrievers([squad, pdfs])
    assert mean.doc_hit_at_5 == 0.8 and mean.doc_mrr_at_10 == 0.4
    assert mean.paragraph_hit_at_5 == 0.8 and mean.page_hit_at_5 == 0.4 and mean.page_mrr_at_10 == 0.4
    assert mean.corpora == {"paragraph": 1, "doc": 2, "page": 1}


def test_answer_means_count_their_corpora_per_figure() -> None:
    with_pages = summarise([judged_answer(names_gold_page=True)], retriever="hybrid", k=4)
    without = summarise([judged_answer(span_f1=0.9)], retriever="hybrid", k=4)
    means = mean_answers([CorpusRun({}, answers=with_pages), CorpusRun({}, answers=without)])
    assert means is not None and means["span_f1"] == 0.7 and means["citations_name_gold_page"] == 1.0
    assert means["corpora"]["span_f1"] == 2 and means["corpora"]["citations_name_gold_page"] == 1
    assert mean_answers([CorpusRun({})]) is None


# The graph's answers on the samples


def assert_floors(score: AnswerScore, floors: dict[str, float]) -> None:
    for name, floor in floors.items():
        value = getattr(score, name)
        assert value is not None and value >= floor, (name, value, score)


def test_extractive_answers_to_a_squad_sample_stay_above_their_floors(
    squad_index: EvalIndex, squad_questions: list[GoldQuestion]
) -> None:
    score = score_answers(squad_index, squad_questions)
    assert score.questions == score.answer_questions == score.paragraph_questions == len(squad_questions)
    assert score.models == {"extractive": len(squad_questions)}
    assert_floors(score, SQUAD_ANSWER_FLOORS)
    assert score.median_words <= SQUAD_MEDIAN_WORDS_CEILING


def test_extractive_answers_on_a_financebench_sample_cite_the_gold_documents_and_pages(
    financebench_index: EvalIndex, financebench_questions: list[GoldQuestion]
) -> None:
    score = score_answers(financebench_index, financebench_questions)
    assert score.questions == score.page_questions == len(financebench_questions)
    assert_floors(score, FINANCEBENCH_ANSWER_FLOORS)
