"""Word documents (.docx): headings start sections; paragraphs, lists and tables are read in their order."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from core.text import squash
from ingest.document import LoadedDocument, LoadError, OfficeLimits, describe, table_text
from ingest.formats.ooxml import check_package, wrong_kind
from ingest.formats.sections import Sections

if TYPE_CHECKING:
    from docx.document import Document
    from docx.styles.style import BaseStyle
    from docx.table import Table
    from docx.text.paragraph import Paragraph

HEADING_STYLES = frozenset({"Title", "Heading 1", "Heading 2", "Heading 3", "Heading 4"})
"""Paragraph styles that start a section (Heading 5 and below stay paragraphs, as h5/h6 do in HTML)."""
_STYLE_DEPTH = 8  # how far a custom style's `basedOn` chain is followed to a built-in heading
_RUNS = "w:r | w:hyperlink | w:ins/w:r | w:ins/w:hyperlink | w:smartTag/w:r | w:fldSimple/w:r"
"""A paragraph's text: python-docx's runs and links, plus tracked insertions (Word shows them; deletions are
left out) and the runs inside smart tags and simple fields."""


def load_docx(data: bytes, *, source: str, fallback_title: str, limits: OfficeLimits) -> LoadedDocument:
    """Read the body's paragraphs and tables in order; the title is the document's, else its first heading."""
    import docx
    from docx.oxml.ns import nsmap
    from docx.table import Table
    from lxml import etree

    check_package(data, ".docx", limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except ValueError as exc:
        if "not a Word file" in str(exc):
            raise wrong_kind(exc, ".docx") from exc
        raise LoadError(f"corrupt .docx: {describe(exc)}") from exc
    except Exception as exc:  # python-docx raises KeyError, lxml errors and others on damaged files
        raise LoadError(f"corrupt .docx: {describe(exc)}") from exc
    sections = Sections()
    first_heading = ""
    try:
        headings, lists = _style_kinds(document)
        runs = etree.XPath(_RUNS, namespaces=nsmap)  # compiled once, not per paragraph
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                sections.block(table_text(_rows(block)), tables=1)
                continue
            text = squash("".join(run.text for run in runs(block._p)))
            style = (
                block._p.style
            )  # the style's id; looked up once for all paragraphs (python-docx's is slow)
            if style in headings:
                first_heading = first_heading or text
                sections.heading(text)
            else:
                sections.block(f"- {text}" if text and (style in lists or _numbered(block)) else text)
        title = squash(document.core_properties.title or "")
    except Exception as exc:
        raise LoadError(f"corrupt .docx: {describe(exc)}") from exc
    pages = sections.finish()
    if not pages:
        raise LoadError("no text found in .docx")
    return LoadedDocument(
        source=source, title=title or first_heading or fallback_title, kind="docx", pages=pages
    )


def _style_kinds(document: Document) -> tuple[set[str], set[str]]:
    """The ids of the heading styles (by name, or based on one) and of the list styles ("List Bullet" …)."""
    headings: set[str] = set()
    lists: set[str] = set()
    for style in document.styles:
        if style.style_id is None:
            continue
        if _based_on_heading(style):
            headings.add(style.style_id)
        if (style.name or "").startswith("List"):
            lists.add(style.style_id)
    return headings, lists


def _based_on_heading(style: BaseStyle | None) -> bool:
    for _ in range(_STYLE_DEPTH):
        if style is None:
            return False
        if style.name in HEADING_STYLES:
            return True
        style = getattr(style, "base_style", None)
    return False


def _numbered(paragraph: Paragraph) -> bool:
    """Numbered or bulleted by its own numbering properties."""
    p_pr = paragraph._p.pPr
    return p_pr is not None and p_pr.numPr is not None


def _rows(table: Table) -> list[list[str]]:
    """Cell texts by row and grid column; a cell merged across columns is read once, at its first column."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            cells.append(cell.text if cell._tc is not previous else "")
            previous = cell._tc
        rows.append(cells)
    return rows
