"""Ingestion throughput against the embedder's own limit, and the cost of re-ingesting an unchanged corpus.

Ingests the energy-saving PDFs and the SQuAD HTML pages into a fresh store, prints pages/s, chunks/s, the
seconds of each stage, and ratio = end-to-end time / raw embedder time for the same chunks (embedded in one
call, as the pipeline's best case). Then re-ingests the unchanged corpus and prints its time / the first's.

Usage: .venv/bin/python bench/ingest.py [--corpus DIR ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `ingest` package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from core.chunk_store import open_chunk_store  # noqa: E402
from core.providers import make_embedder  # noqa: E402
from core.settings import Settings  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
CORPORA = [SHARED / "corpus" / "energy-saving", SHARED / "eval" / "squad-dev" / "corpus_html"]


def main() -> None:
    """Ingest, embed the same chunks raw, re-ingest; print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, action="append", help="corpus directory (repeatable)")
    parser.add_argument("--keep", type=Path, help="data dir to use and keep (default: a temp dir)")
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    corpora = [str(c) for c in args.corpus or CORPORA]
    with tempfile.TemporaryDirectory(prefix="docent-bench-") as scratch:
        settings = Settings(data_dir=args.keep or Path(scratch))
        embedder = make_embedder(settings)
        store = open_chunk_store(settings, model_id=embedder.model_id, dimension=embedder.dimension)
        embedder.embed(["warm-up"] * 16)
        ingestor = Ingestor(settings, embedder, store)

        first = ingestor.run(corpora)
        texts = store.vectors.collection(settings.collection).get(include=["documents"])["documents"] or []
        started = time.perf_counter()
        embedder.embed(list(texts))
        raw = time.perf_counter() - started
        second = ingestor.run(corpora)
        store.close()

    print(
        f"cpus={os.cpu_count()} workers={settings.ingest_workers} "
        f"batch_chunks={settings.ingest_batch_chunks} embed_batch={settings.embedding_batch_size}"
    )
    print(
        f"first ingest: {first.sources} sources, {first.pages} pages, {first.chunks_added} chunks, "
        f"{len(first.failures)} failures in {first.seconds:.1f}s"
    )
    print(f"  pages/s {first.pages / first.seconds:.1f}  chunks/s {first.chunks_added / first.seconds:.1f}")
    stages = "  ".join(f"{stage} {seconds:.2f}s" for stage, seconds in first.stages.items())
    print(f"  stages: {stages}  (load and split run in worker threads, beside the embedder)")
    print(f"  raw embedder on the same {len(texts)} chunks: {raw:.1f}s ({len(texts) / raw:.1f} chunks/s)")
    print(
        f"  ratio end-to-end / raw embed = {first.seconds / raw:.3f}  "
        f"(raw / end-to-end = {raw / first.seconds:.3f})"
    )
    print(
        f"re-ingest unchanged: {second.sources_unchanged}/{second.sources} sources unchanged, "
        f"{second.chunks_added} chunks added, {second.seconds:.2f}s"
    )
    print(f"  re-ingest / first ingest = {second.seconds / first.seconds:.4f}")


if __name__ == "__main__":
    main()
