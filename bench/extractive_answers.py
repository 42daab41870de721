"""Extractive answers on SQuAD dev: the answerer of a baseline revision against the current one (with the
configured embedder, and by term overlap alone), over the same retrieved passages.

Ingests `--articles` SQuAD dev pages into a temporary store, retrieves (the configured retriever and k) for
`--questions` sampled questions of those pages and `--outside` questions of pages not ingested, then answers
each with every answerer and reports: token F1 of the whole answer and of its best span (as `docent eval
--answers` scores them), answer-contains-gold, median answer words, the questions refused (in the corpus and
outside it) and the answerer's time per answer.

Usage: .venv/bin/python bench/extractive_answers.py [--baseline faa6b24] [--questions 300] [--outside 100]
       .venv/bin/python bench/extractive_answers.py --full --questions 1000 --seed 0   # the whole corpus
       .venv/bin/python bench/extractive_answers.py --smoke    # two pages, 20 questions: seconds
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO_ROOT)

from core.answering.extractive import NO_ANSWER, ExtractiveAnswerer  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import Answer, Passage  # noqa: E402
from evaluation.answer_metrics import match_answer, word_count  # noqa: E402
from evaluation.runner import temporary_index  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "eval" / "squad-dev"
ARTICLES = (
    "1973_oil_crisis",
    "Amazon_rainforest",
    "Black_Death",
    "Construction",
    "Geology",
    "Jacksonville,_Florida",
    "Packet_switching",
    "Sky_(United_Kingdom)",
)
OUTSIDE = ("Oxygen", "Prime_number", "Rhine", "Harvard_University")


class Answering(Protocol):
    """What is measured: the synchronous core of an extractive answerer."""

    def answer_now(self, query: str, passages: Sequence[Passage]) -> Answer: ...


@dataclass
class Asked:
    """One question, its gold answers, the passages retrieved for it, and whether its page was ingested."""

    question: str
    answers: list[str]
    passages: list[Passage]
    inside: bool


def baseline_module(revision: str) -> ModuleType | None:
    """core/answering/extractive.py as it was at `revision` (git show), loaded as a module; None when the
    checkout lacks that revision (a shallow clone)."""
    shown = subprocess.run(
        ["git", "show", f"{revision}:core/answering/extractive.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        print(f"baseline {revision} not in this checkout ({shown.stderr.strip()}): skipped", file=sys.stderr)
        return None
    source = shown.stdout
    path = Path(tempfile.mkdtemp(prefix="docent-baseline-")) / "baseline_extractive.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_extractive", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_extractive"] = module
    spec.loader.exec_module(module)
    return module


def retrieve(
    articles: Sequence[str], outside: Sequence[str], questions: int, beyond: int, seed: int
) -> list[Asked]:
    """Ingest the articles, sample questions inside and outside them, retrieve for each."""
    rows = [json.loads(line) for line in (SQUAD / "qa-dev.jsonl").read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    inside = rng.sample([r for r in rows if r["doc_id"] in articles], questions)
    elsewhere = rng.sample([r for r in rows if r["doc_id"] in outside], beyond) if beyond else []
    files = [SQUAD / "corpus_html" / f"{name}.html" for name in articles]
    settings = Settings()
    asked: list[Asked] = []
    with temporary_index(files, settings) as index:
        for rows_of, is_inside in ((inside, True), (elsewhere, False)):
            for row in rows_of:
                found = index.searcher.search(row["question"], k=settings.k, collection=index.collection)
                asked.append(Asked(row["question"], row["answers"], found, is_inside))
    return asked


def score(name: str, answerer: Answering, asked: Sequence[Asked]) -> dict[str, Any]:
    """The figures of one answerer over every question."""
    whole, span, contains, words, refused_in, refused_out, ms = [], [], [], [], 0, 0, []
    for item in asked:
        started = time.perf_counter()
        answer = answerer.answer_now(item.question, item.passages)
        ms.append((time.perf_counter() - started) * 1000)
        refused = answer.text == NO_ANSWER
        if not item.inside:
            refused_out += refused
            continue
        if refused:
            refused_in += 1
            whole.append(0.0)
            span.append(0.0)
            contains.append(0.0)
            continue
        match = match_answer(answer.text, item.answers)  # as `docent eval --answers` scores it
        whole.append(match.answer_f1)
        span.append(match.span_f1)
        contains.append(float(match.contains_gold))
        words.append(word_count(answer.text))
    inside = sum(item.inside for item in asked)
    return {
        "answerer": name,
        "f1": round(statistics.mean(whole), 3),
        "span_f1": round(statistics.mean(span), 3),
        "contains": round(statistics.mean(contains), 3),
        "median_words": statistics.median(words) if words else 0,
        "refused_inside": f"{refused_in}/{inside}",
        "refused_outside": f"{refused_out}/{len(asked) - inside}",
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(statistics.quantiles(ms, n=20)[18], 2) if len(ms) > 1 else ms[0],
    }


def main() -> int:
    """Retrieve once, answer with each answerer, print one line of figures each."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="faa6b24", help="git revision of the answerer to compare with")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--outside", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--full",
        action="store_true",
        help="all 48 pages, --questions sampled from all (no outside questions)",
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    articles: tuple[str, ...] = ARTICLES[:2] if args.smoke else ARTICLES
    outside: tuple[str, ...] = OUTSIDE[:1] if args.smoke else OUTSIDE
    questions, beyond = (15, 5) if args.smoke else (args.questions, args.outside)
    if args.full:
        articles, outside, beyond = tuple(p.stem for p in (SQUAD / "corpus_html").glob("*.html")), (), 0
    asked = retrieve(articles, outside, questions, beyond, args.seed)
    settings = Settings()
    from core.retrieval.embedders import make_embedder

    embedder = make_embedder(settings)
    embedder.embed(["warm-up"])
    answerers: list[tuple[str, Answering]] = [
        ("current, term overlap only", ExtractiveAnswerer(min_score=settings.min_score)),
        ("current, with the embedder", ExtractiveAnswerer(min_score=settings.min_score, embedder=embedder)),
    ]
    if (baseline := baseline_module(args.baseline)) is not None:
        old = baseline.ExtractiveAnswerer(
            max_sentences=settings.answer_sentences, min_score=settings.min_score
        )
        answerers.insert(0, (f"baseline {args.baseline}", old))
    for name, answerer in answerers:
        print(json.dumps(score(name, answerer, asked)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
