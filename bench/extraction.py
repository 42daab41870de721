"""Main-content extraction scored against human-checked article text, with the benchmark's own metric.

Reads ../shared/eval/article-extraction/ in place (saved news and blog pages with their article body) and
scores three readings of each page, as they would be indexed (all sections joined):
- `get_text`: BeautifulSoup's plain text of the whole page (the benchmark's published baseline);
- `block path`: Docent's tag rules alone (`main_content=False`: drop nav, footer, header, aside, forms...);
- `main content`: the default (trafilatura's main content; the block path where it finds none).
Then the same on the docs.python.org pages of tests/fixtures/pages/, against their Sphinx body element.

Metric (the benchmark's): tokens are `\\w+` matches, shingles their consecutive 4-tuples, counted; per page
TP, FP and FN are divided by TP + FP + FN, then summed over pages; P = TP/(TP+FP), R = TP/(TP+FN).

Usage: .venv/bin/python bench/extraction.py [--set DIR] [--repeat N]
       .venv/bin/python bench/extraction.py --smoke    # 3 pages and the fixture pages: seconds
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO_ROOT)  # run as a script: the repo root, not bench/, comes first

from ingest.formats.html import load_html  # noqa: E402

ARTICLES = REPO_ROOT.parent / "shared" / "eval" / "article-extraction"
FIXTURE_PAGES = REPO_ROOT / "tests" / "fixtures" / "pages"
_WORD = re.compile(r"\w+")
Extractor = Callable[[bytes], str]


@dataclass(frozen=True)
class Case:
    """A saved page and the text a perfect extractor would give."""

    name: str
    html: bytes
    truth: str


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    pages_per_s: float


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """Counted 4-token shingles of a text (tokens: `\\w+`, case kept)."""
    tokens = _WORD.findall(text)
    return Counter(tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3))


def page_counts(predicted: str, true: str) -> tuple[float, float, float]:
    """One page's TP, FP and FN, each divided by their sum (so long pages weigh no more than short ones)."""
    guess, gold = shingles(predicted), shingles(true)
    tp = sum(min(count, gold[s]) for s, count in guess.items() if s in gold)
    fp = sum(max(0, count - gold.get(s, 0)) for s, count in guess.items())
    fn = sum(max(0, count - guess.get(s, 0)) for s, count in gold.items())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def score(cases: list[Case], extract: Extractor, repeat: int) -> Score:
    """Precision, recall and F1 over the cases, and the best pages/s of `repeat` timed passes."""
    best = float("inf")
    texts: list[str] = []
    for _ in range(repeat):
        started = time.perf_counter()
        texts = [extract(case.html) for case in cases]
        best = min(best, time.perf_counter() - started)
    tp = fp = fn = 0.0
    for case, text in zip(cases, texts, strict=True):
        a, b, c = page_counts(text, case.truth)
        tp, fp, fn = tp + a, fp + b, fn + c
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, len(cases) / best)


def indexed_text(main_content: bool) -> Extractor:
    """The text Docent would index from a page (its sections joined), by one of the two HTML paths."""

    def extract(html: bytes) -> str:
        from ingest.document import LoadError

        try:
            document = load_html(html, source="page", fallback_title="page", main_content=main_content)
        except LoadError:
            return ""
        return "\n\n".join(page.text for page in document.pages)

    return extract


def plain_text(html: bytes) -> str:
    """BeautifulSoup's `get_text` of the whole page."""
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser").get_text(" ")


def article_cases(folder: Path, limit: int | None) -> list[Case]:
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    keys = sorted(truth)[:limit]
    return [
        Case(
            key, gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes()), truth[key]["articleBody"]
        )
        for key in keys
    ]


def fixture_cases() -> list[Case]:
    """The saved docs pages; their truth is the text of Sphinx's body element (the rest is site chrome)."""
    import lxml.html

    cases = []
    for path in sorted(FIXTURE_PAGES.glob("*.html")):
        html = path.read_bytes()
        body = lxml.html.document_fromstring(html).find_class("body")[0]
        cases.append(Case(path.name, html, body.text_content()))
    return cases


def report(title: str, cases: list[Case], repeat: int) -> None:
    print(f"{title}: {len(cases)} pages")
    readings: list[tuple[str, Extractor]] = [
        ("get_text (bs4, whole page)", plain_text),
        ("block path (main_content=False)", indexed_text(False)),
        ("main content (default)", indexed_text(True)),
    ]
    for name, extract in readings:
        result = score(cases, extract, repeat)
        print(
            f"  {name:34} P {result.precision:.3f}  R {result.recall:.3f}  F1 {result.f1:.3f}"
            f"  {result.pages_per_s:6.1f} pages/s"
        )


def main() -> int:
    """Score each reading of the pages; 2 when the evaluation set is missing."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", type=Path, default=ARTICLES, help="article-extraction folder")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes (the best is shown)")
    parser.add_argument("--smoke", action="store_true", help="3 pages of the set and the fixture pages")
    args = parser.parse_args()
    if not (args.set / "ground-truth.json").is_file():
        print(f"no evaluation set at {args.set} (ground-truth.json)", file=sys.stderr)
        return 2
    import logging

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    load_html(b"<p>warm-up</p>", source="w", fallback_title="w")  # imports out of the timings
    report(
        f"article extraction ({args.set.name})",
        article_cases(args.set, 3 if args.smoke else None),
        args.repeat,
    )
    report("docs pages (tests/fixtures/pages, truth: Sphinx's body)", fixture_cases(), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
