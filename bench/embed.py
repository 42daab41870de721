"""Embedder throughput: chunks/s of the offline ONNX all-MiniLM-L6-v2 on ~100-token chunks of a real corpus.

Usage: .venv/bin/python bench/embed.py [--corpus DIR] [--chunks 512] [--tokens 100] [--runs 3]
       .venv/bin/python bench/embed.py --smoke    # 16 chunks of data/sample, one run: seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place, so that bench.support
# imports and bench/ingest.py does not shadow the `ingest` package.
sys.path[0] = str(REPO_ROOT)

from core.retrieval.embedders import make_embedder  # noqa: E402
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder  # noqa: E402
from core.settings import Settings  # noqa: E402
from ingest.load import load_path  # noqa: E402

SAMPLE_CORPUS = REPO_ROOT / "data" / "sample"


def corpus_chunks(corpus: Path, tokens: int, count: int) -> list[str]:
    """Consecutive word windows of about `tokens` word pieces (~0.79 words per piece here) from the corpus."""
    words: list[str] = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix.lower() in {".pdf", ".html", ".htm", ".txt", ".md"}:
            words += " ".join(page.text for page in load_path(path).pages).split()
    size = max(1, int(tokens * 0.79))
    windows = [" ".join(words[i : i + size]) for i in range(0, len(words) - size, size)]
    return (windows * (count // max(1, len(windows)) + 1))[:count]


def main() -> int:
    """Embed the chunks `--runs` times; print throughput and the mean word-piece count."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, default=REPO_ROOT.parent / "shared" / "corpus" / "energy-saving"
    )
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="16 chunks of data/sample, one run")
    args = parser.parse_args()
    if args.smoke:
        args.corpus, args.chunks, args.runs = SAMPLE_CORPUS, 16, 1
    settings = Settings(embeddings_provider="onnx")
    embedder = make_embedder(settings)
    if not isinstance(embedder, OnnxMiniLMEmbedder):
        print(f"expected the ONNX embedder, got {type(embedder).__name__}", file=sys.stderr)
        return 1
    texts = corpus_chunks(args.corpus, args.tokens, args.chunks)
    if not texts:
        print(f"no text of {args.tokens} word pieces in {args.corpus}", file=sys.stderr)
        return 1
    pieces = statistics.mean(embedder.token_counts(texts[:100]))
    embedder.embed(texts[:32])  # warm-up
    rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        embedder.embed(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    print(
        f"cpus={os.cpu_count()} threads={settings.onnx_threads} batch={settings.embedding_batch_size} "
        f"chunks={len(texts)} mean_word_pieces={pieces:.0f}"
    )
    print(f"chunks/s: median {statistics.median(rates):.1f} (runs: {', '.join(f'{r:.1f}' for r in rates)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
