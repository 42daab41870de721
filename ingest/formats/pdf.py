"""PDF: each page's text layer laid out into headings, paragraphs and table rows, keeping its 1-based page.

pypdf opens the file first (encryption, passwords, the page count and its parser limits, the title); pdfium
(pypdfium2) then reads every character with its box and font, which ingest/formats/pdf_layout.py turns into
units: a page with headings becomes several `Page`s with the same page number, each with its section. Pages
with no text but an image are recognised by OCR (ingest/formats/ocr.py). pdfium is not thread-safe and ingest
parses in worker threads, so every pdfium call holds `PDFIUM_LOCK`; recognition runs outside it.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.text import squash
from ingest.document import LoadedDocument, LoadError, OcrOptions, Page, PdfLimits, describe
from ingest.formats.pdf_layout import Row, Word, blocks_of, rows_of, running_texts, units_of

if TYPE_CHECKING:
    import pypdf
    import pypdfium2
    from pypdf.errors import LimitReachedError

PDFIUM_LOCK = threading.Lock()
"""pdfium is one process-wide library that is not thread-safe: every call into it holds this lock."""
MAX_PAGE_CHARS = 200_000
"""Characters read per page at most (a hostile page can claim millions)."""
_HYPHEN_BREAK = re.compile(r"(\w)-\s*\n\s*(?=[a-z])")
_BOLD_NAMES = ("bold", "black", "heavy", "semibold", "demi")
_FORCE_BOLD = 1 << 18
_SPACES = frozenset(" \t\xa0\u2002\u2003\u2009\u200a\u202f\u3000")
_PASSWORD_HINT = (
    "give it with `docent ingest --pdf-password PASSWORD` (every PDF of the run) "
    "or `--pdf-password NAME.pdf=PASSWORD` (this file)"
)


@dataclass
class _PageText:
    """What the text layer of one page gave: its rows, or nothing (and whether it shows an image)."""

    rows: list[Row] = field(default_factory=list)
    drawn: bool = True
    """Anything at all is drawn on the page (a page with no objects is blank)."""
    has_image: bool = False
    error: str | None = None


def load_pdf(
    data: bytes,
    *,
    source: str,
    fallback_title: str,
    limits: PdfLimits | None = None,
    passwords: Sequence[str] = (),
    ocr: OcrOptions | None = None,
) -> LoadedDocument:
    """Lay out each page's text layer; OCR the pages that have none. Pages keep their 1-based number.

    `passwords` are tried after the empty one on an encrypted PDF; none is ever written to a message or log.
    """
    import pypdf

    limits = limits or PdfLimits()
    with pypdf.apply_configuration(
        array_maximum_element_count=limits.max_elements,
        dictionary_maximum_element_count=limits.max_elements,
    ):
        reader, password = _open(data, passwords)
        page_count = _page_count(reader, limits.max_pages)
        title = _pdf_title(reader) or fallback_title
        warnings: list[str] = []
        texts = _read_text_layer(data, password, page_count, warnings)
        if texts is None:  # pdfium refused a file that pypdf repaired: its plain text layer, without layout
            texts = [_pypdf_page(reader, index) for index in range(page_count)]
        for index, text in enumerate(texts):  # a page pdfium drew no text on: pypdf may read it, or fail
            if text.rows or text.has_image:
                continue
            if (second := _pypdf_page(reader, index)).rows or second.error is not None:
                texts[index] = second
    pages, empty = _units(texts, warnings)
    ocr = ocr or OcrOptions()
    reasons = {n: _empty_reason(texts[n - 1], ocr) for n in empty if texts[n - 1].error is None}
    scanned = [n for n in empty if texts[n - 1].has_image]
    if scanned and ocr.mode != "off":
        from ingest.formats.ocr import recognise_pages

        result = recognise_pages(data, password, scanned, ocr, PDFIUM_LOCK)
        for number, recognised in result.texts.items():
            pages.append(Page(text=recognised, page=number, ocr=True))
            empty.remove(number)
            del reasons[number]
        reasons.update(result.skipped)
        pages.sort(key=lambda page: page.page or 0)
    warnings.extend(
        f"page {number} has no text layer ({reason})" for number, reason in sorted(reasons.items())
    )
    if not pages:
        errors = [t.error for t in texts if t.error is not None]
        if errors:
            raise LoadError(f"corrupt PDF, no page's text can be extracted ({errors[0]})")
        reason = next(iter(reasons.values()), "no text")
        raise LoadError(f"PDF has no text layer on any of its {page_count} page(s) ({reason})")
    return LoadedDocument(
        source=source,
        title=title,
        kind="pdf",
        pages=pages,
        page_count=page_count,
        warnings=warnings,
        empty_pages=empty,
    )


def _empty_reason(text: _PageText, ocr: OcrOptions) -> str:
    if not text.drawn:
        return "a blank page"
    if not text.has_image:
        return "and no image to recognise"
    if ocr.mode == "off":
        return "a scanned image? OCR is off: DOCENT_OCR=off"
    return "a scanned image; OCR found no text"


def _open(data: bytes, passwords: Sequence[str]) -> tuple[pypdf.PdfReader, str | None]:
    """Parse with pypdf; open an encrypted file with the empty password or a given one (and say which)."""
    import pypdf
    from pypdf.errors import LimitReachedError

    if not data:
        raise LoadError("empty file (0 bytes), not a PDF")
    if data[:1024].find(b"%PDF-") < 0:
        raise LoadError("not a PDF: no %PDF- header (another kind of file, named or served as a PDF?)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except LimitReachedError as exc:
        raise _limit_error(exc) from exc
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise LoadError(f"corrupt PDF, cannot be parsed ({describe(exc)})") from exc
    if not encrypted:
        return reader, None
    for password in dict.fromkeys(["", *passwords]):
        try:
            if reader.decrypt(password):
                return reader, password
        except Exception as exc:  # an unknown algorithm, a damaged /Encrypt dictionary
            raise LoadError(f"encrypted PDF that cannot be opened ({describe(exc)})") from exc
    if passwords:
        raise LoadError(f"encrypted PDF: it needs a password, and none given opens it; {_PASSWORD_HINT}")
    raise LoadError(f"encrypted PDF: it needs a password; {_PASSWORD_HINT}")


def _page_count(reader: pypdf.PdfReader, max_pages: int) -> int:
    from pypdf.errors import LimitReachedError

    try:
        page_count = len(reader.pages)
    except LimitReachedError as exc:
        raise _limit_error(exc) from exc
    except Exception as exc:
        raise LoadError(f"corrupt PDF, its page tree cannot be read ({describe(exc)})") from exc
    if not page_count:
        raise LoadError("PDF has no pages")
    if page_count > max_pages:
        raise LoadError(
            f"PDF has {page_count} pages, over the limit of {max_pages}; "
            "raise DOCENT_MAX_PDF_PAGES to ingest it"
        )
    return page_count


def _read_text_layer(
    data: bytes, password: str | None, page_count: int, warnings: list[str]
) -> list[_PageText] | None:
    """Every page's rows from pdfium; None when pdfium cannot open the file at all."""
    import pypdfium2

    with PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(data, password=password or None)
        except pypdfium2.PdfiumError as exc:
            warnings.append(f"layout unavailable, plain text layer read instead ({describe(exc)})")
            return None
        try:
            texts = []
            for index in range(min(page_count, len(document))):
                texts.append(_page_text(document, index))
            texts.extend(_PageText(error="page missing") for _ in range(page_count - len(texts)))
            return texts
        finally:
            document.close()


def _page_text(document: pypdfium2.PdfDocument, index: int) -> _PageText:
    import pypdfium2.raw as pdfium_c

    try:
        page = document[index]
    except Exception as exc:  # a damaged page object
        return _PageText(error=describe(exc))
    try:
        textpage = page.get_textpage()
        try:
            lines = _lines(textpage)
        finally:
            textpage.close()
        rows = rows_of(lines, page.get_width())
        if rows:
            return _PageText(rows)
        kinds = {obj.type for obj in itertools.islice(page.get_objects(max_depth=3), 10_000)}
        return _PageText(drawn=bool(kinds), has_image=pdfium_c.FPDF_PAGEOBJ_IMAGE in kinds)
    except Exception as exc:
        return _PageText(error=describe(exc))
    finally:
        page.close()


def _lines(textpage: pypdfium2.PdfTextPage) -> list[list[Word]]:
    """The page's words, line by line in content order, from pdfium's characters and their loose boxes."""
    import pypdfium2.raw as pdfium_c

    raw = textpage.raw
    count = min(pdfium_c.FPDFText_CountChars(raw), MAX_PAGE_CHARS)
    if count <= 0:
        return []
    text = _chars(raw, count)
    box = pdfium_c.FS_RECTF()
    font = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    lines: list[list[Word]] = []
    line: list[Word] = []
    start = -1  # first character of the word being read
    x0 = x1 = bottom = top = 0.0

    def end_word(end: int) -> None:
        nonlocal start
        if start < 0:
            return
        weight = pdfium_c.FPDFText_GetFontWeight(raw, start)
        pdfium_c.FPDFText_GetFontInfo(raw, start, font, len(font), ctypes.byref(flags))
        name = font.value.decode("latin-1").partition("+")[2 if b"+" in font.value else 0]
        bold = weight >= 600 or (  # the standard 14 fonts report no weight: their name tells
            weight <= 0 and (bool(flags.value & _FORCE_BOLD) or any(p in name.lower() for p in _BOLD_NAMES))
        )
        word = text[start:end].replace("\ufffe", "-").replace("\x02", "-")
        line.append(Word(word, x0, x1, bottom, top, top - bottom, bold, name))  # the box: fonts may be scaled
        start = -1

    for index, char in enumerate(text):
        if char in "\r\n":
            end_word(index)
            if line:
                lines.append(line)
                line = []
            continue
        if char in _SPACES or (not char.isprintable() and char not in "\ufffe\x02"):
            end_word(index)
            continue
        pdfium_c.FPDFText_GetLooseCharBox(raw, index, ctypes.byref(box))
        if start >= 0 and box.left - x1 > 0.5 * max(top - bottom, 1.0):
            end_word(index)  # a wide gap that pdfium did not mark with a space
        if start < 0:
            start, x0, x1, bottom, top = index, box.left, box.right, box.bottom, box.top
        else:
            x0, x1 = min(x0, box.left), max(x1, box.right)
            bottom, top = min(bottom, box.bottom), max(top, box.top)
    end_word(len(text))
    if line:
        lines.append(line)
    return lines


def _chars(raw: object, count: int) -> str:
    """The page's characters, one per index (pdfium writes UTF-16, so a character beyond the BMP is two)."""
    import pypdfium2.raw as pdfium_c

    buffer = ctypes.create_string_buffer((count + 1) * 2)
    written = pdfium_c.FPDFText_GetText(raw, 0, count, ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ushort)))
    text = buffer.raw[: max(written - 1, 0) * 2].decode("utf-16-le", errors="replace")
    if len(text) == count:
        return text
    return "".join(chr(pdfium_c.FPDFText_GetUnicode(raw, i) or 0xFFFD) for i in range(count))


def _pypdf_page(reader: pypdf.PdfReader, index: int) -> _PageText:
    """A page's plain text layer by pypdf, one row per line (no headings or tables)."""
    from pypdf.errors import LimitReachedError

    try:
        raw = reader.pages[index].extract_text() or ""
    except LimitReachedError as exc:
        raise _limit_error(exc) from exc
    except Exception as exc:  # pypdf raises many exception types on damaged pages
        return _PageText(error=describe(exc))
    lines = [line.strip() for line in _HYPHEN_BREAK.sub(r"\1", raw).splitlines() if line.strip()]
    top = float(len(lines))
    return _PageText([Row([Word(line, 0.0, 1.0, top - i - 1, top - i, 0.0)]) for i, line in enumerate(lines)])


def _units(texts: list[_PageText], warnings: list[str]) -> tuple[list[Page], list[int]]:
    """Pages with text become units under their headings; the rest are listed as empty (1-based)."""
    running = running_texts([t.rows for t in texts if t.rows])
    pages: list[Page] = []
    empty: list[int] = []
    section: str | None = None
    for number, text in enumerate(texts, start=1):
        if text.error is not None:
            warnings.append(f"page {number}: text extraction failed ({text.error}); page skipped")
            empty.append(number)
            continue
        if not text.rows:
            empty.append(number)
            continue
        units, section = units_of(blocks_of(text.rows, running), section)
        pages.extend(
            Page(text=unit.text, page=number, section=unit.section, tables=unit.tables)
            for unit in units
            if unit.text.strip()
        )
    return pages, empty


def _limit_error(exc: LimitReachedError) -> LoadError:
    return LoadError(
        f"PDF exceeds a parser safety limit ({describe(exc)}); "
        "if the file is trusted, raise DOCENT_PDF_MAX_ELEMENTS"
    )


def _pdf_title(reader: pypdf.PdfReader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary only costs the title
        return ""
    return squash(str(title or ""))
