"""BM25 search latency alone, keyword index on SQLite FTS5 (embedded) and on PostgreSQL (server mode).

The SQuAD dev corpus is parsed and chunked with the default settings and written into the keyword index only
(no embeddings), once per backend: a temporary SQLite file, and a fresh PostgreSQL database on the machine's
server (bench/support/postgres.py), migrated, then dropped. Then `--questions` SQuAD questions are searched
(top `--depth`, the hybrid retriever's candidate depth) after `--warmup` unmeasured ones; p50/p95 of each.

Usage: .venv/bin/python bench/keyword_latency.py [--questions 300] [--depth 20] [--backends sqlite,postgresql]
       .venv/bin/python bench/keyword_latency.py --smoke    # two pages, a few questions
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place (see retrieval_grid.py).
sys.path[0] = str(REPO_ROOT)

from bench.keyword_backends import BACKENDS, SMOKE_DOCS, SQUAD, database_url, parse_backends  # noqa: E402
from bench.support.machine import load_average  # noqa: E402
from core.retrieval.keyword_index import KeywordIndex  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.storage.db import open_database  # noqa: E402
from ingest.load import load_path  # noqa: E402
from ingest.split import Chunk, make_splitter, split_document  # noqa: E402

COLLECTION = "bench"


def corpus_chunks(pages: Sequence[Path], settings: Settings) -> list[Chunk]:
    """The pages' chunks, as an ingest with these settings makes them."""
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
    return [chunk for page in pages for chunk in split_document(load_path(page), splitter)]


def measure(
    backend: str, chunks: Sequence[Chunk], questions: Sequence[str], depth: int, warmup: int
) -> dict[str, float]:
    """p50/p95 search milliseconds of one backend holding `chunks`."""
    with database_url(backend) as url, tempfile.TemporaryDirectory() as data:
        engine = open_database(Settings(data_dir=Path(data), database_url=url))
        try:
            index = KeywordIndex(engine)
            with index.transaction() as tx:
                tx.upsert(
                    COLLECTION,
                    [c.id for c in chunks],
                    [c.text for c in chunks],
                    [str(c.metadata["source"]) for c in chunks],
                )
            for question in questions[:warmup]:
                index.search(COLLECTION, question, depth)
            times = []
            for question in questions:
                started = time.perf_counter()
                index.search(COLLECTION, question, depth)
                times.append((time.perf_counter() - started) * 1000)
        finally:
            engine.dispose()
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
    }


def main() -> None:
    """Fill each backend's keyword index with the same chunks and time the same searches."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=300, help="questions searched (default 300)")
    parser.add_argument("--depth", type=int, default=Settings().retrieval_depth, help="results per search")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured searches first (default 20)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the figures as JSON")
    parser.add_argument("--smoke", action="store_true", help="two pages, a few questions")
    args = parser.parse_args()
    backends = parse_backends(args.backends)
    pages = sorted((SQUAD / "corpus_html").glob("*.html"))
    if args.smoke:
        pages = [SQUAD / "corpus_html" / f"{doc}.html" for doc in SMOKE_DOCS]
        args.questions, args.warmup = 5, 1
    if not all(page.exists() for page in pages) or not pages:
        sys.exit(f"the SQuAD dev corpus is missing under {SQUAD} (../shared)")
    questions = [
        json.loads(line)["question"]
        for line in (SQUAD / "qa-dev.jsonl").read_text(encoding="utf-8").splitlines()[: args.questions]
        if line.strip()
    ]
    chunks = corpus_chunks(pages, Settings())
    figures = {
        "chunks": len(chunks),
        "questions": len(questions),
        "depth": args.depth,
        "load_average_before": load_average(),
        "backends": {b: measure(b, chunks, questions, args.depth, args.warmup) for b in backends},
        "load_average_after": load_average(),
    }
    print(
        f"{len(chunks)} chunks, {len(questions)} questions, top {args.depth},"
        f" load {figures['load_average_before']}"
    )
    for backend, cell in figures["backends"].items():
        print(f"{backend:>10}: p50 {cell['p50_ms']:.2f} ms  p95 {cell['p95_ms']:.2f} ms")
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
