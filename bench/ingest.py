"""Ingestion throughput against the embedder's own limit, and the cost of re-ingesting an unchanged corpus.

Ingests the energy-saving PDFs and the SQuAD HTML pages into a fresh store, prints pages/s, chunks/s, the
seconds of each stage, and ratio = end-to-end time / raw embedder time for the same chunks (embedded in one
call, as the pipeline's best case). Then re-ingests the unchanged corpus and prints its time / the first's.

Usage: .venv/bin/python bench/ingest.py [--corpus DIR ...] [--keep DIR]
       .venv/bin/python bench/ingest.py --smoke    # data/sample only: seconds
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place, so that bench.support
# imports and bench/ingest.py does not shadow the `ingest` package.
sys.path[0] = str(REPO_ROOT)

from core.services import Services  # noqa: E402
from core.settings import Settings  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"
CORPORA = [SHARED / "corpus" / "energy-saving", SHARED / "eval" / "squad-dev" / "corpus_html"]
SMOKE_CORPORA = [REPO_ROOT / "data" / "sample"]


def main() -> int:
    """Ingest, embed the same chunks raw, re-ingest; print the figures. 1 when the first ingest failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, action="append", help="corpus directory (repeatable)")
    parser.add_argument("--keep", type=Path, help="data dir to use and keep (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true", help="ingest data/sample only")
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    corpora = [str(c) for c in args.corpus or (SMOKE_CORPORA if args.smoke else CORPORA)]
    with tempfile.TemporaryDirectory(prefix="docent-bench-") as scratch:
        settings = Settings(data_dir=args.keep or Path(scratch))
        services = Services(settings)
        try:
            embedder, store = services.embedder, services.store
            embedder.embed(["warm-up"] * 16)
            ingestor = Ingestor(settings, embedder, store)

            first = ingestor.run(corpora)
            collection = store.vectors.collection(settings.collection)
            texts = collection.get(include=["documents"])["documents"] or []
            started = time.perf_counter()
            embedder.embed(list(texts))
            raw = time.perf_counter() - started
            second = ingestor.run(corpora)
        finally:
            services.close()
    if first.failures or not first.chunks_added:
        print(f"first ingest failed: {first.chunks_added} chunks, failures {first.failures}", file=sys.stderr)
        return 1

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
