"""HTML: the page's main content, one section per heading, tables as rows.

One lxml parse gives two readings of a page. The *block path* walks the whole page less the elements that are
chrome by their tag (nav, footer, aside, ...), keeping each paragraph's element id. The *main-content path* is
trafilatura's, which also drops chrome that no tag gives away (menus in divs, related links, cookie banners,
comment threads). The main content is what is indexed, unless trafilatura found none or kept nearly all of the
block path's words: then the page is all content, and the block path keeps its exact paragraphs and ids. Ids
also survive onto main-content paragraphs whose words are those of an identified block.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.text import squash
from ingest.document import Anchor, LoadedDocument, LoadError, Page, decode_text, table_text

if TYPE_CHECKING:
    from lxml.etree import _Element as Element

BOILERPLATE_TAGS = (
    *("script", "style", "noscript", "nav", "footer", "header", "aside", "form", "svg", "template"),
    *("iframe", "object", "embed", "canvas", "dialog", "button", "select", "textarea"),
)
SECTION_HEADINGS = ("h1", "h2", "h3", "h4")
HEADINGS = (*SECTION_HEADINGS, "h5", "h6")
# Blocks whose whole text is one paragraph; any other tag holding blocks is walked into.
TEXT_BLOCKS = (
    *("p", "li", "pre", "blockquote", "dd", "dt", "h5", "h6"),
    *("figcaption", "caption", "address", "summary"),
)
CONTAINERS = (
    *("div", "section", "article", "main", "body"),
    *("table", "thead", "tbody", "tfoot", "tr", "td", "th"),  # a layout table's cells
)
# Elements that end a run of words: their text never runs on into the next element's (trafilatura's too).
SPACED = frozenset(
    (
        *(*HEADINGS, *TEXT_BLOCKS, *CONTAINERS, "br", "hr", "ul", "ol", "dl", "figure", "details"),
        *("list", "item", "head", "quote", "lb", "row", "cell"),
    )
)
ALL_CONTENT_SHARE = 0.98
"""When trafilatura keeps this share of the block path's words or more, it dropped nothing: the page is all
content (2% allows for words it spells differently, such as those joined by invisible characters)."""
MAX_TABLE_ROWS = 5000
MAX_COLUMN_SPAN = 100
_WORD = re.compile(r"\w+")
# Invisible characters (soft hyphen, zero-width, direction marks): never part of a word.
_FORMAT_CHARS = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_PERMALINKS = frozenset({"¶", "#", "§", "🔗"})


@dataclass(frozen=True)
class Block:
    """A heading, paragraph or table of an HTML page, with the element's id if it has one."""

    name: str
    text: str
    id: str | None = None
    words: str | None = None
    """The words as the page has them, where `text` adds some (a table's column labels)."""


def load_html(
    data: bytes,
    *,
    source: str,
    fallback_title: str,
    encoding: str | None = None,
    main_content: bool = True,
) -> LoadedDocument:
    """Clean HTML into sections (one per heading): the main content only, unless `main_content` is False.

    `encoding` is the charset the server declared; it wins over a <meta> declaration, as in browsers.
    """
    tree, warnings = parse_tree(data, encoding)
    title = _title(tree)
    main = _main_content_blocks(tree) if main_content else None  # trafilatura reads a copy; blocks prune
    blocks = page_blocks(tree)
    if main is not None and (not blocks or _words(_body(main)) < ALL_CONTENT_SHARE * _words(_body(blocks))):
        blocks = _with_headings(_with_ids(main, blocks), blocks)
    if not title:
        title = next((block.text for block in blocks if block.name == "h1"), "") or fallback_title
    pages = _sections(blocks)
    if not pages:
        raise LoadError("no text found in HTML")
    return LoadedDocument(source=source, title=title, kind="html", pages=pages, warnings=warnings)


def parse_tree(data: bytes, encoding: str | None = None) -> tuple[Element, list[str]]:
    """Decode (server charset, then <meta>, then UTF-8, then windows-1252) and parse with lxml.

    libxml2 stops reading below 256 levels of nesting (its guard against hostile pages): the warning says so.
    """
    import lxml.html
    from bs4.dammit import EncodingDetector
    from lxml import etree

    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    text = decode_text(data, encoding, declared)
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        tree = lxml.html.document_fromstring(text.encode("utf-8", errors="replace"), parser=parser)
    except (etree.ParserError, ValueError) as exc:  # "Document is empty"
        raise LoadError("no text found in HTML") from exc
    warnings = []
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        warnings.append("HTML nested deeper than 256 elements: the deeper part was not read")
    for link in [a for a in tree.iter("a") if (a.text or "").strip() in _PERMALINKS and len(a) == 0]:
        if str(link.get("href", "")).startswith("#"):  # a heading's permalink glyph (Sphinx, MkDocs)
            link.drop_tree()  # lxml.html's: the text after it stays
    return tree, warnings


def page_blocks(tree: Element) -> list[Block]:
    """The block path: every heading, paragraph and table outside the chrome tags, in document order.

    It prunes the chrome from `tree` in place.
    """
    for element in list(tree.iter(*BOILERPLATE_TAGS)):
        if element.tag == "header" and any(a.tag in ("article", "main") for a in element.iterancestors()):
            continue  # an article's own header holds its headline, not site chrome
        if element.getparent() is not None:
            element.drop_tree()
    body = tree.find("body")
    return _blocks(body if body is not None else tree)


def _title(tree: Element) -> str:
    for title in tree.iter("title"):
        if not any(ancestor.tag == "svg" for ancestor in title.iterancestors()):
            return squash(_text(title))
    return ""


def _text(element: Element, skip: tuple[str, ...] = ()) -> str:
    """The element's text with a space wherever a block-level element begins or ends (not squashed)."""
    parts: list[str] = []

    def walk(node: Element) -> None:
        spaced = node.tag in SPACED
        if spaced:
            parts.append(" ")
        if node.text:
            parts.append(node.text)
        for child in node:
            if isinstance(child.tag, str) and child.tag not in skip:
                walk(child)
            if child.tail:
                parts.append(child.tail)
        if spaced:
            parts.append(" ")

    walk(element)
    return "".join(parts)


def _preformatted(element: Element) -> str:
    """Code and preformatted text keep their lines (trailing spaces and blank edges dropped)."""
    lines = [line.rstrip() for line in "".join(element.itertext()).splitlines()]
    return "\n".join(lines).strip("\n")


def _element_id(element: Element) -> str | None:
    value = element.get("id")
    return value.strip() or None if isinstance(value, str) else None


def _blocks(node: Element) -> list[Block]:
    """Each heading, paragraph and table in document order; loose text becomes a paragraph."""
    blocks: list[Block] = []
    loose: list[str] = [node.text or ""]

    def flush() -> None:
        if text := squash("".join(loose)):  # the strings carry their own spacing
            blocks.append(Block("p", text))
        loose.clear()

    for child in node:
        tag = child.tag
        if not isinstance(tag, str):
            pass
        elif tag == "table" and not _is_layout_table(child):
            flush()
            blocks.extend(_data_table(child))
        elif tag in HEADINGS or (tag in TEXT_BLOCKS and not _holds_table(child)):
            flush()
            text = _preformatted(child) if tag == "pre" else squash(_text(child))
            if text:
                blocks.append(Block(tag, text, _element_id(child)))
        elif tag in CONTAINERS or _holds_blocks(child):
            flush()
            blocks.extend(_blocks(child))
        else:
            loose.append(_text(child))  # inline markup: part of the surrounding text
        loose.append(child.tail or "")
    flush()
    return blocks


def _holds_table(element: Element) -> bool:
    return element.tag != "pre" and next(element.iterdescendants("table"), None) is not None


def _holds_blocks(element: Element) -> bool:
    return any(isinstance(e.tag, str) and e.tag in _BLOCK_TAGS for e in element.iterdescendants())


_BLOCK_TAGS = frozenset((*HEADINGS, *TEXT_BLOCKS, "table"))


def _is_layout_table(table: Element) -> bool:
    """A table used for page layout, not data: it nests tables or headings, says so, or has one column."""
    if table.get("role") in ("presentation", "none"):
        return True
    if any(e.tag == "table" or e.tag in HEADINGS for e in table.iterdescendants()):
        return True
    return all(len(row.findall("td") + row.findall("th")) <= 1 for row in table.iter("tr"))


def _data_table(table: Element) -> list[Block]:
    """A data table as one block of rows (`table_text`), after its caption."""
    blocks: list[Block] = []
    caption = table.find("caption")
    if caption is not None and (text := squash(_text(caption))):
        blocks.append(Block("caption", text))
    rows: list[list[str]] = []
    for row in table.iter("tr"):
        if len(rows) >= MAX_TABLE_ROWS:
            break
        cells: list[str] = []
        for cell in row:
            if cell.tag in ("td", "th"):
                cells.append(squash(_text(cell)))
                cells.extend([""] * (_span(cell) - 1))  # later columns stay under their own labels
        rows.append(cells)
    if text := table_text(rows):
        blocks.append(Block("table", text, _element_id(table), " ".join(map(" ".join, rows))))
    return blocks


def _span(cell: Element) -> int:
    value = str(cell.get("colspan", "1")).strip()
    return min(int(value), MAX_COLUMN_SPAN) if value.isdigit() and int(value) > 0 else 1


def _main_content_blocks(tree: Element) -> list[Block] | None:
    """Trafilatura's main content of a copy of the page, as blocks; None when it finds none.

    Options, chosen on principle: comments off (a reader's comment is not the page's content); tables on;
    `fast` (no readability/jusText second opinion: the block path is the fallback here, and it halves the
    time); precision and recall balanced (trafilatura's default).
    """
    import copy

    from trafilatura import bare_extraction
    from trafilatura.settings import Document

    page = copy.deepcopy(tree)
    for quote in list(page.iter("blockquote")):
        if _holds_table(quote):
            quote.drop_tag()  # docutils indents tables in a blockquote; trafilatura flattens tables in quotes
    extracted = bare_extraction(
        page, fast=True, include_comments=False, include_tables=True, with_metadata=False
    )
    if not isinstance(extracted, Document) or extracted.body is None:
        return None
    blocks = list(_extracted(extracted.body))
    return blocks or None


def _extracted(node: Element) -> Iterator[Block]:
    """Blocks from trafilatura's body (`head`, `p`, `list`/`item`, `table`/`row`/`cell`, `code`, `quote`);
    text between them is a paragraph of its own."""
    if text := squash(node.text or ""):
        yield Block("p", text)
    for child in node:
        yield from _extracted_element(child)
        if text := squash(child.tail or ""):
            yield Block("p", text)


def _extracted_element(element: Element) -> Iterator[Block]:
    tag = element.tag
    if tag == "head":
        level = str(element.get("rend", "h2"))
        if text := squash(_text(element)):
            yield Block(level if level in HEADINGS else "h2", text)
    elif tag == "list":
        yield from _extracted_list(element)
    elif tag == "table":
        yield from _extracted_table(element)
    elif tag == "code":
        if text := _preformatted(element):
            yield Block("pre", text)
    elif tag == "graphic":
        return
    elif tag != "p" and any(e.tag in _EXTRACTED_BLOCKS for e in element.iterdescendants()):
        yield from _extracted(element)  # a wrapper (div, quote) around blocks
    elif text := squash(_text(element)):
        yield Block("p", text)


_EXTRACTED_BLOCKS = frozenset(("p", "head", "list", "table", "code"))


def _extracted_list(node: Element) -> Iterator[Block]:
    """One block per item (its own words), then the items of the lists nested in it."""
    for item in node:
        if text := squash(_text(item, skip=("list",))):
            yield Block("li", text)
        for inner in item.iterdescendants("list"):
            if next(inner.iterancestors("list")) is node:  # deeper lists are reached through this one
                yield from _extracted_list(inner)


def _extracted_table(table: Element) -> Iterator[Block]:
    rows = [[squash(_text(cell)) for cell in row.iter("cell")] for row in table.iter("row")][:MAX_TABLE_ROWS]
    if text := table_text(rows):
        yield Block("table", text, words=" ".join(map(" ".join, rows)))


def _words(blocks: list[Block]) -> int:
    return sum(len(_WORD.findall(_FORMAT_CHARS.sub("", block.words or block.text))) for block in blocks)


def _key(text: str) -> str:
    """A paragraph's words, the same whatever its whitespace, punctuation spacing or invisible characters."""
    return " ".join(_WORD.findall(_FORMAT_CHARS.sub("", text)))


def _with_ids(main: list[Block], page: list[Block]) -> list[Block]:
    """Main-content blocks, each given the id of the page's identified block with the same words."""
    ids: dict[str, str] = {}
    for block in page:
        if block.id:
            ids.setdefault(_key(block.text), block.id)
    if not ids:
        return main
    return [b if b.id else Block(b.name, b.text, ids.get(_key(b.text)), b.words) for b in main]


def _body(blocks: list[Block]) -> list[Block]:
    """The blocks that are not headings (trafilatura drops a page's title heading and many short ones)."""
    return [block for block in blocks if block.name not in HEADINGS]


def _with_headings(main: list[Block], page: list[Block]) -> list[Block]:
    """Main-content blocks with the page's headings put back where they stood: a heading of the block path
    that trafilatura left out returns before the main block that followed it on the page, so sections (and
    the chunks' `section`) survive main-content extraction. Headings above the first main block are not
    put back: there they are the page's title (already the document's) or its chrome."""
    position = {_key(block.text): n for n, block in reversed(list(enumerate(page)))}
    kept = {_key(block.text) for block in main if block.name in HEADINGS}
    merged: list[Block] = []
    last = -1
    for block in main:
        at = position.get(_key(block.text))
        if at is not None and at > last:
            if last >= 0:  # not before the first: what precedes it is the page's title or chrome
                merged.extend(
                    heading
                    for heading in page[last + 1 : at]
                    if heading.name in SECTION_HEADINGS and _key(heading.text) not in kept
                )
            last = at
        merged.append(block)
    return merged


def _sections(blocks: list[Block]) -> list[Page]:
    """One page per section: a section heading starts one, holding the blocks up to the next."""
    pages: list[Page] = []
    section: str | None = None
    current: list[Block] = []
    for block in blocks:
        if block.name in SECTION_HEADINGS:
            if current:
                pages.append(_section_page(current, section))
            section, current = block.text, [block]
        else:
            current.append(block)
    if current:
        pages.append(_section_page(current, section))
    return pages


def _section_page(blocks: list[Block], section: str | None) -> Page:
    """Join a section's blocks with blank lines, remembering where each identified block sits."""
    anchors: list[Anchor] = []
    offset = 0
    for block in blocks:
        if block.id:
            anchors.append(Anchor(offset, offset + len(block.text), block.id))
        offset += len(block.text) + 2
    return Page(
        text="\n\n".join(b.text for b in blocks),
        section=section,
        anchors=tuple(anchors),
        tables=sum(1 for b in blocks if b.name == "table"),
    )
