"""Keyword index backends: SQuAD dev recall of every retriever with the keyword index on SQLite FTS5 (the
embedded default) and on PostgreSQL full-text search (server mode), the same corpus, questions and embedder.

Each backend gets a throw-away store: a temporary data dir (Chroma embedded) and, for PostgreSQL, a fresh
database on the machine's server (bench/support/postgres.py), migrated first and dropped afterwards.

Usage: .venv/bin/python bench/keyword_backends.py [--limit 0] [--seed 0] [--retrievers dense,bm25,hybrid]
       [--backends sqlite,postgresql] [--json OUT]
       .venv/bin/python bench/keyword_backends.py --smoke    # two pages, six questions: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place (see retrieval_grid.py).
sys.path[0] = str(REPO_ROOT)

from bench.support.postgres import temporary_database  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.storage.db import make_engine, upgrade  # noqa: E402
from evaluation.dataset import load_questions, sample  # noqa: E402
from evaluation.options import parse_retrievers  # noqa: E402
from evaluation.runner import RETRIEVERS, score_retrievers, temporary_index  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "eval" / "squad-dev"
BACKENDS = ("sqlite", "postgresql")
SMOKE_DOCS = ("Amazon_rainforest", "Construction")
SMOKE_QUESTIONS = 6


@dataclass
class BackendCell:
    """One keyword backend and one retriever: quality and search latency."""

    backend: str
    retriever: str
    hit_at_1: float
    hit_at_5: float
    hit_at_10: float
    mrr_at_10: float
    chunks: int
    p50_ms: float
    p95_ms: float


@contextmanager
def database_url(backend: str) -> Iterator[str | None]:
    """None (the SQLite file under the temporary data dir), or a fresh migrated PostgreSQL database."""
    if backend == "sqlite":
        yield None
        return
    with temporary_database(prefix="docent_bench") as url:
        engine = make_engine(Settings(database_url=url))
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url


def parse_backends(text: str) -> list[str]:
    """`sqlite,postgresql` → the backends, checked."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or set(names) - set(BACKENDS):
        raise argparse.ArgumentTypeError(f"backends are {', '.join(BACKENDS)}, got {text!r}")
    return names


def main() -> None:
    """Ingest the corpus once per backend, score every retriever on the same questions."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--qa", type=Path, default=SQUAD / "qa-dev.jsonl")
    parser.add_argument("--corpus", type=Path, default=SQUAD / "corpus_html")
    parser.add_argument("--backends", type=parse_backends, default=list(BACKENDS))
    parser.add_argument("--retrievers", type=parse_retrievers, default=RETRIEVERS)
    parser.add_argument("--limit", type=int, default=0, help="sampled questions (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, dest="json_out", help="write every cell to this JSON file")
    parser.add_argument("--smoke", action="store_true", help=f"pages {', '.join(SMOKE_DOCS)} only")
    args = parser.parse_args()
    questions = load_questions(args.qa)
    corpus: list[Path] = [args.corpus]
    if args.smoke:
        corpus = [args.corpus / f"{doc}.html" for doc in SMOKE_DOCS]
        questions = [q for q in questions if set(q.gold_docs) & set(SMOKE_DOCS)]
        args.limit = SMOKE_QUESTIONS
    questions = sample(questions, args.limit or None, args.seed)
    err = Console(stderr=True)
    cells: list[BackendCell] = []
    for backend in args.backends:
        with database_url(backend) as url, temporary_index(corpus, Settings(), database_url=url) as index:
            assert index.ingest is not None and index.chunks
            err.print(f"{backend}: {index.chunks} chunks in {index.ingest.seconds:.0f}s")
            for score in score_retrievers(index, questions, args.retrievers, ks=(1, 5, 10)):
                assert score.hit_at is not None and score.mrr_at_10 is not None
                cells.append(
                    BackendCell(
                        backend,
                        score.retriever,
                        score.hit_at[1],
                        score.hit_at[5],
                        score.hit_at[10],
                        score.mrr_at_10,
                        index.chunks,
                        score.latency_p50_ms,
                        score.latency_p95_ms,
                    )
                )
    table = Table(
        title=f"{len(questions)} questions (seed {args.seed}), {os.cpu_count()} CPUs", title_justify="left"
    )
    for header in (
        "keyword index",
        "retriever",
        "hit@1",
        "hit@5",
        "hit@10",
        "MRR@10",
        "chunks",
        "p50 ms",
        "p95 ms",
    ):
        table.add_column(header, justify="left" if header in ("keyword index", "retriever") else "right")
    for cell in cells:
        table.add_row(
            cell.backend,
            cell.retriever,
            f"{cell.hit_at_1:.3f}",
            f"{cell.hit_at_5:.3f}",
            f"{cell.hit_at_10:.3f}",
            f"{cell.mrr_at_10:.3f}",
            str(cell.chunks),
            f"{cell.p50_ms:.1f}",
            f"{cell.p95_ms:.1f}",
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    if args.json_out is not None:
        figures = {"questions": len(questions), "seed": args.seed, "cells": [asdict(c) for c in cells]}
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
