"""Embedder throughput: chunks/s of the offline ONNX all-MiniLM-L6-v2 on ~100-token chunks of a real corpus.

Usage: .venv/bin/python bench/embed.py [--corpus DIR] [--chunks 512] [--tokens 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from core.providers import make_embedder
from core.settings import Settings
from ingest.load import load_path

REPO_ROOT = Path(__file__).resolve().parent.parent


def corpus_chunks(corpus: Path, tokens: int, count: int) -> list[str]:
    """Consecutive word windows of about `tokens` word pieces (~0.79 words per piece here) from the corpus."""
    words: list[str] = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix.lower() in {".pdf", ".html", ".htm", ".txt", ".md"}:
            words += " ".join(page.text for page in load_path(path).pages).split()
    size = max(1, int(tokens * 0.79))
    windows = [" ".join(words[i : i + size]) for i in range(0, len(words) - size, size)]
    return (windows * (count // max(1, len(windows)) + 1))[:count]


def main() -> None:
    """Embed the chunks three times; print throughput and the mean word-piece count."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--corpus", type=Path, default=REPO_ROOT.parent / "shared" / "corpus" / "energy-saving"
    )
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    settings = Settings()
    embedder = make_embedder(settings)
    texts = corpus_chunks(args.corpus, args.tokens, args.chunks)
    pieces = statistics.mean(embedder.token_counts(texts[:100]))
    embedder.embed(texts[:32])  # warm-up
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        embedder.embed(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    print(
        f"cpus={os.cpu_count()} threads={settings.onnx_threads} batch={settings.embedding_batch_size} "
        f"chunks={len(texts)} mean_word_pieces={pieces:.0f}"
    )
    print(f"chunks/s: median {statistics.median(rates):.1f} (runs: {', '.join(f'{r:.1f}' for r in rates)})")


if __name__ == "__main__":
    main()
