"""Fusion grid: hybrid-search weights chosen on the mean over several corpora, not on one.

Each corpus is ingested once (or read from `--keep DIR`, filled on the first run). Every question is searched
once per retriever to depth 50; the fused rankings of every (BM25 weight, RRF k, depth) cell are then computed
from those rankings, so a cell costs no search. Cells: fixed BM25 weights, and adaptive ones
(BM25 weighs more when its best hit stands out, as the retriever does), the configured default among them.
Reports, per cell, SQuAD paragraph hit@5 and FinanceBench document and page hit@5 (whichever gold each corpus
has), their mean (a corpus counts once: its paragraph figure, else the mean of document and page), and dense
alone for comparison.

Usage: .venv/bin/python bench/fusion_grid.py [--limit 1000] [--keep /tmp/fusion-idx] [--json OUT]
       .venv/bin/python bench/fusion_grid.py --smoke    # two SQuAD pages, a few questions: seconds
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO_ROOT)

from core.retrieval.retriever import Retriever, bm25_peak, reciprocal_rank_fusion  # noqa: E402
from core.services import open_services  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import Passage  # noqa: E402
from evaluation.dataset import GoldQuestion, load_questions, sample  # noqa: E402
from evaluation.metrics import covers_paragraph, first_hit_rank, from_documents, hit_rate, on_pages  # noqa: E402
from evaluation.runner import EvalIndex, scratch_settings, temporary_index  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "eval"
CORPORA = {
    "squad-dev": (SHARED / "squad-dev" / "qa-dev.jsonl", SHARED / "squad-dev" / "corpus_html"),
    "financebench": (SHARED / "financebench" / "qa.jsonl", SHARED / "financebench" / "pdfs"),
}
SMOKE_DOCS = ("Amazon_rainforest", "Construction")
DEPTH = 50
K = 5
BM25_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
RRF_KS = (5, 10, 20, 60)
DEPTHS = (10, 20, 50)
ADAPTIVE_WEIGHTS = ((2.0, 0.5), (2.0, 0.25), (1.5, 0.5), (3.0, 0.5))
PEAKS = (1.2, 1.25, 1.3, 1.35, 1.4, 1.5)


@dataclass
class Searched:
    """One question's gold and its dense and BM25 rankings (passages, best first)."""

    gold: GoldQuestion
    dense: list[Passage]
    bm25: list[Passage]
    peak: float
    """BM25's best score over its fifth best (core.retrieval.retriever.bm25_peak)."""


@dataclass
class CorpusRuns:
    """A corpus's questions, searched."""

    name: str
    searched: list[Searched] = field(default_factory=list)


def levels(item: GoldQuestion) -> dict[str, Any]:
    """The relevance tests a question's gold allows: paragraph, document, page."""
    tests: dict[str, Any] = {"doc": partial(from_documents, gold_docs=item.gold_docs)}
    if item.para_id is not None:
        tests["para"] = partial(covers_paragraph, para_id=item.para_id)
    if item.gold_pages:
        tests["page"] = partial(on_pages, gold_pages=item.gold_pages)
    return tests


def fuse(
    run: Searched, bm25_weight: float, rrf_k: int, depth: int, flat: float | None = None, peak: float = 1.0
) -> list[Passage]:
    """The hybrid ranking of one question for one cell (dense weight 1); with `flat`, BM25 weighs
    `bm25_weight` when its ranking peaks (run.peak >= peak) and `flat` otherwise, as the retriever does."""
    if flat is not None and run.peak < peak:
        bm25_weight = flat
    by_id = {p["chunk_id"]: p for p in [*run.bm25[:depth], *run.dense[:depth]]}
    ids = reciprocal_rank_fusion(
        [
            ([p["chunk_id"] for p in run.dense[:depth]], 1.0),
            ([p["chunk_id"] for p in run.bm25[:depth]], bm25_weight),
        ],
        rrf_k,
    )
    return [by_id[i] for i in ids]


def score(runs: CorpusRuns, rank: Any) -> dict[str, float]:
    """hit@5 per gold level over the corpus's questions, for rankings made by `rank(run)`."""
    ranks: dict[str, list[int | None]] = {}
    for run in runs.searched:
        ranking = rank(run)
        for level, test in levels(run.gold).items():
            ranks.setdefault(level, []).append(first_hit_rank(ranking, test))
    return {level: round(hit_rate(values, K), 4) for level, values in ranks.items()}


def headline(figures: dict[str, float]) -> float:
    """A corpus's figure for the mean: its paragraph hit, else the mean of its document and page hits."""
    if "para" in figures:
        return figures["para"]
    return statistics.mean(figures[level] for level in ("doc", "page") if level in figures)


@contextmanager
def kept_index(corpus: Path, keep: Path, base: Settings) -> Iterator[EvalIndex]:
    """A store under `keep` (ingested there on the first run, read as it is afterwards)."""
    settings = scratch_settings(base, keep)
    services = open_services(settings)
    try:
        if not services.store.vectors.count(settings.collection):
            Ingestor(settings, services.embedder, services.store).run(
                [str(corpus)], collection=settings.collection
            )
        yield EvalIndex(services.retriever, settings.collection, settings)
    finally:
        services.close()


def search_corpus(name: str, questions: Sequence[GoldQuestion], index: EvalIndex) -> CorpusRuns:
    """Every question searched once per retriever, to DEPTH."""
    runs = CorpusRuns(name)
    search = partial(index.searcher.search, k=DEPTH, collection=index.collection)
    retriever = index.searcher
    assert isinstance(retriever, Retriever)
    for item in questions:
        hits = retriever.keyword_hits(item.question, k=DEPTH, collection=index.collection)
        dense, bm25 = search(item.question, mode="dense"), search(item.question, mode="bm25")
        runs.searched.append(Searched(item, dense, bm25, bm25_peak(hits)))
    return runs


def main() -> None:
    """Search each corpus once, then score every fusion cell from the stored rankings."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=1000, help="sampled questions per corpus (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep each corpus's store under DIR/<corpus> between runs")
    parser.add_argument("--json", type=Path, dest="json_out")
    parser.add_argument("--dump", type=Path, help="also pickle every question's rankings to this file")
    parser.add_argument("--smoke", action="store_true", help=f"SQuAD pages {', '.join(SMOKE_DOCS)} only")
    args = parser.parse_args()
    base = Settings()
    corpora: list[CorpusRuns] = []
    for name, (qa, corpus) in CORPORA.items():
        questions = load_questions(qa)
        paths: list[Path] = [corpus]
        if args.smoke:
            if name != "squad-dev":
                continue
            paths = [corpus / f"{doc}.html" for doc in SMOKE_DOCS]
            questions = [q for q in questions if set(q.gold_docs) & set(SMOKE_DOCS)][:8]
        questions = sample(questions, args.limit or None, args.seed)
        opened = (
            kept_index(corpus, args.keep / name, base)
            if args.keep and not args.smoke
            else temporary_index(paths, base)
        )
        with opened as index:
            corpora.append(search_corpus(name, questions, index))
    if args.dump:
        args.dump.write_bytes(pickle.dumps(corpora))
    cells: list[dict[str, Any]] = []
    dense = {c.name: score(c, lambda run: run.dense) for c in corpora}
    cells.append({"cell": "dense", "corpora": dense, "mean": statistics.mean(map(headline, dense.values()))})
    grid: list[tuple[str, dict[str, Any]]] = [
        (f"bm25 {w} rrf {r} depth {d}", {"bm25_weight": w, "rrf_k": r, "depth": d})
        for w, r, d in itertools.product(BM25_WEIGHTS, RRF_KS, DEPTHS)
    ]
    grid += [
        (
            f"bm25 {hi} if peak >= {p} else {lo}, rrf {r} depth {d}",
            {"bm25_weight": hi, "flat": lo, "peak": p, "rrf_k": r, "depth": d},
        )
        for (hi, lo), p, r, d in itertools.product(ADAPTIVE_WEIGHTS, PEAKS, (5, 10, 20), (20, 50))
    ]
    default = (
        f"bm25 {base.bm25_weight} if peak >= {base.bm25_peak_ratio} else {base.bm25_flat_weight},"
        f" rrf {base.rrf_k} depth {base.retrieval_depth}"
    )
    grid.append(
        (
            f"default: {default}",
            {
                "bm25_weight": base.bm25_weight,
                "flat": base.bm25_flat_weight,
                "peak": base.bm25_peak_ratio,
                "rrf_k": base.rrf_k,
                "depth": base.retrieval_depth,
            },
        )
    )
    for name, knobs in grid:
        figures = {c.name: score(c, partial(fuse, **knobs)) for c in corpora}
        cells.append(
            {"cell": name, "corpora": figures, "mean": statistics.mean(map(headline, figures.values()))}
        )
    cells.sort(key=lambda c: -c["mean"])
    table = Table(title=f"hit@{K} by fusion cell, best mean first (dense weight 1)")
    table.add_column("cell")
    levels_shown = [(c.name, level) for c in corpora for level in dense[c.name]]
    for name, level in levels_shown:
        table.add_column(f"{name} {level}", justify="right")
    table.add_column("mean", justify="right")
    shown = [*cells[:15], *(c for c in cells[15:] if c["cell"] == "dense" or c["cell"].startswith("default"))]
    for cell in shown:
        row = [f"{cell['corpora'][name][level]:.3f}" for name, level in levels_shown]
        table.add_row(cell["cell"], *row, f"{cell['mean']:.3f}")
    Console(width=140).print(table)
    if args.json_out:
        args.json_out.write_text(json.dumps({"k": K, "cells": cells}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
