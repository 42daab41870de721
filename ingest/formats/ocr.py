"""OCR for PDF pages without a text layer: pdfium renders the page, Tesseract reads the image, offline.

Tesseract (Debian's `tesseract-ocr` and `tesseract-ocr-eng`) was chosen over RapidOCR by measurement on
pages rendered from real PDFs (bench/ocr.py, docs/documents.md): more accurate on English text (RapidOCR's
models drop the spaces between words) and faster per page. It runs as a subprocess fed a greyscale PGM on
stdin, so nothing is imported and nothing is downloaded; each call has a time limit and is killed past it.

Bounded per document: at most `OcrOptions.max_pages` pages and `timeout_s` seconds, each page rendered at
`dpi` but never over `max_pixels`. Rendering holds the pdfium lock; recognition does not, and at most
`_RECOGNISERS` run at once in the process (each with one thread), so OCR cannot take every core.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest.document import OcrOptions, describe

if TYPE_CHECKING:
    import pypdfium2

INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng"
LANGUAGE = "eng"
_RECOGNISERS = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))
_BLANK_RUNS = re.compile(r"\n\s*\n\s*(?:\n\s*)+")
_PAGE_LIMIT_S = 120.0
"""One page's recognition at most, whatever is left of the document's time."""


@dataclass
class OcrResult:
    """Text recognised per page (1-based), and why each page that got none got none."""

    texts: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)


def tesseract() -> str | None:
    """The Tesseract executable on PATH, if installed."""
    return shutil.which("tesseract")


def recognise_pages(
    data: bytes,
    password: str | None,
    numbers: Sequence[int],
    options: OcrOptions,
    lock: AbstractContextManager[object],
) -> OcrResult:
    """Render and recognise the given pages of a PDF, within the document's page and time budget."""
    import pypdfium2

    result = OcrResult()
    executable = tesseract()
    if executable is None:
        reason = f"OCR unavailable: tesseract is not installed ({INSTALL_HINT})"
        result.skipped.update(dict.fromkeys(numbers, reason))
        return result
    deadline = time.monotonic() + options.timeout_s
    with lock:
        document = pypdfium2.PdfDocument(data, password=password or None)
    try:
        for position, number in enumerate(numbers):
            if position >= options.max_pages:
                reason = f"not recognised: OCR stops after {options.max_pages} pages (DOCENT_OCR_MAX_PAGES)"
                result.skipped.update(dict.fromkeys(numbers[position:], reason))
                break
            left = deadline - time.monotonic()
            if left <= 0:
                limit = f"{options.timeout_s:g}s per document (DOCENT_OCR_TIMEOUT_S)"
                reason = f"not recognised: OCR stops after {limit}"
                result.skipped.update(dict.fromkeys(numbers[position:], reason))
                break
            try:
                with lock:
                    image = render_pgm(document, number, options)
                text = recognise(executable, image, timeout_s=min(left, _PAGE_LIMIT_S))
            except subprocess.TimeoutExpired:
                result.skipped[number] = "OCR timed out on this page"
                continue
            except (OSError, subprocess.CalledProcessError, ValueError) as exc:
                result.skipped[number] = f"OCR failed ({describe(exc)})"
                continue
            if text:
                result.texts[number] = text
            else:
                result.skipped[number] = "OCR found no text in its image"
    finally:
        with lock:
            document.close()
    return result


def render_pgm(document: pypdfium2.PdfDocument, number: int, options: OcrOptions) -> bytes:
    """Page `number` (1-based) as a greyscale binary PGM at `options.dpi`, scaled down to `max_pixels`."""
    page = document[number - 1]
    try:
        width, height = page.get_size()
        scale = options.dpi / 72
        pixels = width * height * scale * scale
        if pixels > options.max_pixels:
            scale *= (options.max_pixels / pixels) ** 0.5
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            array = bitmap.to_numpy()
            if array.ndim == 3:  # pdfium may answer in BGR(A) even when asked for grey
                array = array[..., :3].mean(axis=2).astype("uint8")
            rows, columns = array.shape[:2]
            return b"P5\n%d %d\n255\n" % (columns, rows) + bytes(array.tobytes())
        finally:
            bitmap.close()
    finally:
        page.close()


def recognise(executable: str, image: bytes, *, timeout_s: float) -> str:
    """Tesseract's text for one image (PGM/PNG bytes), with one thread; killed after `timeout_s`."""
    with _RECOGNISERS:
        done = subprocess.run(
            [executable, "stdin", "stdout", "-l", LANGUAGE, "--psm", "3"],
            input=image,
            capture_output=True,
            timeout=max(timeout_s, 1.0),
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=True,
        )
    text = done.stdout.decode("utf-8", errors="replace").replace("\x0c", "")
    return _BLANK_RUNS.sub("\n\n", text).strip()
