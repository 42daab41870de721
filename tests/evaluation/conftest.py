"""The evaluation samples (tests/evaluation/samples.py), each ingested once for the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evaluation.dataset import GoldQuestion, load_questions, sample
from evaluation.runner import EvalIndex, temporary_index
from tests.evaluation.samples import (
    FINANCEBENCH,
    SAMPLE_ARTICLES,
    SAMPLE_FILINGS,
    SAMPLE_QUESTIONS,
    SQUAD,
    eval_settings,
)


@pytest.fixture(scope="package")
def squad_index() -> Iterator[EvalIndex]:
    """Six SQuAD articles ingested with the default chunking into a temporary store."""
    files = [SQUAD / "corpus_html" / f"{doc_id}.html" for doc_id in SAMPLE_ARTICLES]
    with temporary_index(files, eval_settings()) as index:
        assert index.ingest is not None and not index.ingest.failures
        yield index


@pytest.fixture(scope="package")
def squad_questions() -> list[GoldQuestion]:
    """150 questions on the six articles (seed 0)."""
    questions = [q for q in load_questions(SQUAD / "qa-dev.jsonl") if q.gold_docs[0] in SAMPLE_ARTICLES]
    return sample(questions, SAMPLE_QUESTIONS, seed=0)


@pytest.fixture(scope="package")
def financebench_index() -> Iterator[EvalIndex]:
    """The three sample filings ingested with the default chunking into a temporary store."""
    with temporary_index([FINANCEBENCH / "pdfs" / name for name in SAMPLE_FILINGS], eval_settings()) as index:
        assert index.ingest is not None and not index.ingest.failures
        yield index


@pytest.fixture(scope="package")
def financebench_questions() -> list[GoldQuestion]:
    """Every question whose gold documents are among the sample filings."""
    questions = load_questions(FINANCEBENCH / "qa.jsonl")
    return [q for q in questions if set(q.gold_docs) <= set(SAMPLE_FILINGS)]
