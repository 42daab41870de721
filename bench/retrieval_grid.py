"""Retrieval grid: every chunk size, overlap and retriever on the SQuAD dev set, one store per chunking.

Prints paragraph recall@5 (hit@5), MRR@10, chunks, ingest seconds and p95 search latency for every cell.

Usage: .venv/bin/python bench/retrieval_grid.py [--chunk-sizes 400,800,1200] [--overlaps 0,0.15]
       [--retrievers dense,bm25,hybrid] [--limit 1000] [--seed 0] [--json OUT]
       .venv/bin/python bench/retrieval_grid.py --smoke    # two pages, six questions, one chunking: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place, so that bench.support
# imports and bench/ingest.py does not shadow the `ingest` package.
sys.path[0] = str(REPO_ROOT)

from core.settings import Settings  # noqa: E402
from evaluation.dataset import load_questions, sample  # noqa: E402
from evaluation.options import parse_ints, parse_retrievers  # noqa: E402
from evaluation.runner import RETRIEVERS, score_retrievers, temporary_index  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "eval" / "squad-dev"
# --smoke: the two smallest pages of the corpus and questions about them, one chunking.
SMOKE_DOCS = ("Amazon_rainforest", "Construction")
SMOKE_QUESTIONS = 6


@dataclass
class GridCell:
    """One chunking and one retriever: quality, cost and speed."""

    chunk_size: int
    chunk_overlap: int
    retriever: str
    recall_at_5: float
    mrr_at_10: float
    chunks: int
    ingest_s: float
    p95_ms: float


def parse_fractions(text: str) -> list[float]:
    """`0,0.15` → [0.0, 0.15]: overlaps as fractions of the chunk size."""
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(not 0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"overlaps are fractions in [0, 1), got {text!r}")
    return values


def main() -> None:
    """Ingest the corpus once per chunking, score every retriever on the same sampled questions."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--qa", type=Path, default=SQUAD / "qa-dev.jsonl")
    parser.add_argument("--corpus", type=Path, default=SQUAD / "corpus_html")
    parser.add_argument("--chunk-sizes", type=parse_ints, default=(400, 800, 1200))
    parser.add_argument("--overlaps", type=parse_fractions, default=[0.0, 0.15], help="fractions of the size")
    parser.add_argument("--retrievers", type=parse_retrievers, default=RETRIEVERS)
    parser.add_argument("--limit", type=int, default=1000, help="sampled questions (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, dest="json_out", help="write every cell to this JSON file")
    parser.add_argument("--smoke", action="store_true", help=f"pages {', '.join(SMOKE_DOCS)}, one chunking")
    args = parser.parse_args()
    questions = load_questions(args.qa)
    corpus: list[Path] = [args.corpus]
    if args.smoke:
        corpus = [args.corpus / f"{doc}.html" for doc in SMOKE_DOCS]
        questions = [q for q in questions if set(q.gold_docs) & set(SMOKE_DOCS)]
        args.chunk_sizes, args.overlaps, args.limit = (800,), [0.0], SMOKE_QUESTIONS
    questions = sample(questions, args.limit or None, args.seed)
    err = Console(stderr=True)
    cells: list[GridCell] = []
    for size in args.chunk_sizes:
        for fraction in args.overlaps:
            overlap = round(size * fraction)
            with temporary_index(corpus, Settings(), chunk_size=size, chunk_overlap=overlap) as index:
                assert index.ingest is not None and index.chunks
                err.print(
                    f"size {size} overlap {overlap}: {index.chunks} chunks in {index.ingest.seconds:.0f}s"
                )
                for score in score_retrievers(index, questions, args.retrievers, ks=(5,)):
                    assert score.hit_at is not None and score.mrr_at_10 is not None
                    cells.append(
                        GridCell(
                            size,
                            overlap,
                            score.retriever,
                            score.hit_at[5],
                            score.mrr_at_10,
                            index.chunks,
                            index.ingest.seconds,
                            score.latency_p95_ms,
                        )
                    )
    table = Table(
        title=f"{len(questions)} questions (seed {args.seed}), {os.cpu_count()} CPUs", title_justify="left"
    )
    for header in (
        "chunk size",
        "overlap",
        "retriever",
        "recall@5",
        "MRR@10",
        "chunks",
        "ingest s",
        "p95 ms",
    ):
        table.add_column(header, justify="left" if header == "retriever" else "right", no_wrap=True)
    for cell in cells:
        table.add_row(
            str(cell.chunk_size),
            str(cell.chunk_overlap),
            cell.retriever,
            f"{cell.recall_at_5:.3f}",
            f"{cell.mrr_at_10:.3f}",
            str(cell.chunks),
            f"{cell.ingest_s:.0f}",
            f"{cell.p95_ms:.1f}",
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    if args.json_out is not None:
        figures = {"questions": len(questions), "seed": args.seed, "cells": [asdict(c) for c in cells]}
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
