"""OCR accuracy and speed per page: Tesseract (Docent's OCR, ingest/formats/ocr.py) against RapidOCR.

Renders text-layer pages of real PDFs (../shared) to greyscale images exactly as ingestion does, recognises
them, and scores the result against the page's own text layer (pdfium's): character accuracy = characters
of the text layer matched in order by the OCR text (difflib's matching blocks, no junk heuristic) / all
characters of the text layer, after lower-casing and collapsing white space; word accuracy the same over
words; word recall = reference words found in the OCR text in any order (reading order apart: two columns
read in another order lose word accuracy, not recall). Prints one line per page and engine, then the
means. RapidOCR (`rapidocr-onnxruntime`, not a Docent dependency) is measured when it is importable.

Usage: .venv/bin/python bench/ocr.py [--dpi 200 ...] [--engine tesseract|rapidocr ...] [--pages N]
       .venv/bin/python bench/ocr.py --smoke    # two pages of data/sample, Tesseract: seconds
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place (bench/ingest.py would
# otherwise shadow the `ingest` package).
sys.path[0] = str(REPO_ROOT)

from ingest.document import OcrOptions  # noqa: E402
from ingest.formats.ocr import INSTALL_HINT, recognise, render_pgm, tesseract  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"
FINANCEBENCH = SHARED / "eval" / "financebench" / "pdfs"
ENERGY = SHARED / "corpus" / "energy-saving"
PAGES: list[tuple[Path, int]] = [
    (ENERGY / "energy_savers.pdf", 5),
    (ENERGY / "energy_savers.pdf", 17),
    (ENERGY / "energy_savers.pdf", 25),
    (ENERGY / "Energy-Saving-Trust-Warm-Home-Hacks-guide-final.pdf", 4),
    (ENERGY / "Energy-Saving-Trust-Warm-Home-Hacks-guide-final.pdf", 8),
    (FINANCEBENCH / "ADOBE_2022_10K.pdf", 54),
    (FINANCEBENCH / "BESTBUY_2024Q2_10Q.pdf", 17),
    (FINANCEBENCH / "PFIZER_2021_10K.pdf", 59),
    (FINANCEBENCH / "JOHNSON_JOHNSON_2022_10K.pdf", 28),
    (FINANCEBENCH / "AMCOR_2023_10K.pdf", 5),
]
"""Prose in one and two columns, a guide with boxes, income statements and segment tables."""
SMOKE_PAGES = [(REPO_ROOT / "data" / "sample" / "compost-field-guide.pdf", n) for n in (1, 4)]
Engine = Callable[[bytes], str]


def accuracy(recognised: str, reference: str) -> tuple[float, float, float]:
    """(character accuracy, word accuracy, bag-of-words recall) of the OCR text against the text layer."""

    def matched(a: list[str] | str, b: list[str] | str) -> int:
        blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
        return sum(block.size for block in blocks)

    ocr, ref = _normal(recognised), _normal(reference)
    words = max(1, len(ref.split()))
    bag = sum((Counter(ocr.split()) & Counter(ref.split())).values())
    return matched(ocr, ref) / max(1, len(ref)), matched(ocr.split(), ref.split()) / words, bag / words


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\ufffe", "-")).strip().lower()


def engines(names: list[str]) -> dict[str, Engine]:
    """The engines asked for that are installed; each takes a PGM image and returns its text."""
    found: dict[str, Engine] = {}
    executable = tesseract()
    if "tesseract" in names and executable is not None:
        found["tesseract"] = lambda image: recognise(executable, image, timeout_s=300)
    if "rapidocr" in names and importlib.util.find_spec("rapidocr_onnxruntime") is not None:
        found["rapidocr"] = _rapidocr()
    return found


def _rapidocr() -> Engine:
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    reader = RapidOCR()

    def read(image: bytes) -> str:
        _magic, size, _depth, pixels = image.split(b"\n", 3)  # the PGM that render_pgm writes
        width, height = (int(value) for value in size.split())
        array = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
        result, _ = reader(array)
        return "\n".join(line[1] for line in result or [])

    return read


def main() -> int:
    """Recognise each page with each engine at each resolution; print per-page figures and the means."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dpi", type=int, nargs="+", default=[200], help="render resolutions [200]")
    parser.add_argument("--engine", nargs="+", default=["tesseract", "rapidocr"], help="engines to measure")
    parser.add_argument("--pages", type=int, default=len(PAGES), help="the first N pages of the list")
    parser.add_argument("--smoke", action="store_true", help="two pages of data/sample, Tesseract only")
    args = parser.parse_args()
    import pypdfium2

    pages = SMOKE_PAGES if args.smoke else [p for p in PAGES[: args.pages] if p[0].exists()]
    chosen = engines(["tesseract"] if args.smoke else args.engine)
    if "tesseract" not in chosen:
        print(f"Tesseract is not installed ({INSTALL_HINT})", file=sys.stderr)
        return 1
    if not pages:
        print(f"none of the pages' PDFs is under {SHARED}", file=sys.stderr)
        return 1
    print(f"cpus={os.cpu_count()} pages={len(pages)} engines={','.join(chosen)} dpi={args.dpi}")
    scores: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    for path, number in pages:
        document = pypdfium2.PdfDocument(path.read_bytes())
        try:
            page = document[number - 1]
            textpage = page.get_textpage()
            reference = textpage.get_text_range()
            textpage.close()
            page.close()
            for dpi in args.dpi:
                started = time.perf_counter()
                image = render_pgm(document, number, OcrOptions(dpi=dpi))
                rendered = time.perf_counter() - started
                for name, engine in chosen.items():
                    started = time.perf_counter()
                    text = engine(image)
                    seconds = time.perf_counter() - started
                    chars, words, recall = accuracy(text, reference)
                    scores.setdefault((name, dpi), []).append((chars, words, recall, seconds))
                    print(
                        f"{path.name} p{number} dpi {dpi} render {rendered:.2f}s  {name:9s} {seconds:5.2f}s  "
                        f"char {chars:.3f}  word {words:.3f}  recall {recall:.3f}",
                        flush=True,
                    )
        finally:
            document.close()
    for (name, dpi), rows in scores.items():
        chars, words, recall, seconds = (statistics.fmean(column) for column in zip(*rows, strict=True))
        print(
            f"mean {name} dpi {dpi}: char accuracy {chars:.3f}  word accuracy {words:.3f}  "
            f"word recall {recall:.3f}  {seconds:.2f} s/page over {len(rows)} pages"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
