"""PowerPoint decks (.pptx): one unit per slide, with its title, text, tables and speaker notes."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from core.text import squash
from ingest.document import LoadedDocument, LoadError, OfficeLimits, Page, describe, table_text
from ingest.formats.ooxml import check_package, wrong_kind

if TYPE_CHECKING:
    from pptx.shapes.base import BaseShape
    from pptx.slide import Slide
    from pptx.table import Table
    from pptx.text.text import TextFrame

_GROUP_DEPTH = 16  # groups nested deeper than this are not read (a hostile file may nest thousands)


def load_pptx(data: bytes, *, source: str, fallback_title: str, limits: OfficeLimits) -> LoadedDocument:
    """Each slide becomes a unit: `page` is its 1-based number, `section` its title.

    Speaker notes are included, after the slide's own text: they are often the prose that the slide's
    bullets abbreviate, and so what a question is answered from.
    """
    import pptx
    from pptx.exc import PackageNotFoundError

    check_package(data, ".pptx", limits)
    try:
        deck = pptx.Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except ValueError as exc:
        if "not a PowerPoint file" in str(exc):
            raise wrong_kind(exc, ".pptx") from exc
        raise LoadError(f"corrupt .pptx: {describe(exc)}") from exc
    except PackageNotFoundError as exc:
        raise LoadError(f"not a .pptx: {describe(exc)}") from exc
    except Exception as exc:  # lxml and KeyError on damaged parts, among others
        raise LoadError(f"corrupt .pptx: {describe(exc)}") from exc
    pages: list[Page] = []
    empty: list[int] = []
    warnings: list[str] = []
    if len(slides) > limits.max_slides:
        warnings.append(f"{len(slides)} slides: only the first {limits.max_slides} were read (the limit)")
    try:
        for number, slide in enumerate(slides[: limits.max_slides], start=1):
            page = _slide_page(slide, number)
            if page is None:
                empty.append(number)
            else:
                pages.append(page)
        title = squash(deck.core_properties.title or "")
    except Exception as exc:
        raise LoadError(f"corrupt .pptx: {describe(exc)}") from exc
    if empty:
        listed = ", ".join(map(str, empty))
        warnings.append(f"slide(s) {listed} have no text (pictures only?)")
    if not pages:
        raise LoadError(f"no text found on any of the {len(slides)} slide(s) of the .pptx")
    return LoadedDocument(
        source=source,
        title=title or next((p.section for p in pages if p.section), None) or fallback_title,
        kind="pptx",
        pages=pages,
        page_count=len(slides),
        warnings=warnings,
        empty_pages=empty,
    )


def _slide_page(slide: Slide, number: int) -> Page | None:
    from pptx.shapes.autoshape import Shape
    from pptx.shapes.graphfrm import GraphicFrame

    title_shape = slide.shapes.title
    title = squash(title_shape.text_frame.text) if title_shape is not None else ""
    blocks = [title] if title else []
    tables = 0
    for shape in _reading_order(slide.shapes, depth=0):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if isinstance(shape, GraphicFrame) and shape.has_table:
            if text := table_text(_rows(shape.table)):
                blocks.append(text)
                tables += 1
        elif isinstance(shape, Shape) and shape.has_text_frame and (text := _frame_text(shape.text_frame)):
            blocks.append(text)
    frame = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    if frame is not None and (notes := _frame_text(frame)):
        blocks.append(f"Notes: {notes}")
    if not blocks:
        return None
    return Page(text="\n\n".join(blocks), page=number, section=title or None, tables=tables)


def _reading_order(shapes: Iterable[BaseShape], depth: int) -> Iterator[BaseShape]:
    """Shapes top to bottom, then left to right; a group's shapes where the group sits."""
    from pptx.shapes.group import GroupShape

    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if isinstance(shape, GroupShape):
            if depth < _GROUP_DEPTH:
                yield from _reading_order(shape.shapes, depth + 1)
        else:
            yield shape


def _frame_text(frame: TextFrame) -> str:
    lines = (squash(paragraph.text) for paragraph in frame.paragraphs)
    return "\n".join(line for line in lines if line)


def _rows(table: Table) -> list[list[str]]:
    """Cell texts by row and column; a merged cell's text is read once, from its origin."""
    return [[("" if cell.is_spanned else cell.text) for cell in row.cells] for row in table.rows]
