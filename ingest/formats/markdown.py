"""Markdown: headings (ATX `#` and setext) start sections; code kept as written; pipe tables as rows.

markdown-it-py (CommonMark, with GFM tables) finds the blocks, so that a `#` inside a code fence or a `---`
under a paragraph is read as CommonMark reads it. Prose keeps its source lines, with link targets and emphasis
marks dropped; front matter gives the title and is not indexed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from core.text import squash
from ingest.document import LoadedDocument, LoadError, table_text
from ingest.formats.sections import Sections

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

SECTION_LEVELS = frozenset({"h1", "h2", "h3", "h4"})
_FRONT_MATTER = re.compile(
    r"\A(?:---[ \t]*\n(.*?)\n(?:---|\.\.\.)|\+\+\+[ \t]*\n(.*?)\n\+\+\+)[ \t]*(?:\n|\Z)", re.S
)
_FRONT_MATTER_TITLE = re.compile(r"^title[ \t]*[:=][ \t]*(.+?)[ \t]*$", re.M)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)")
_REFERENCE_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_TAG = re.compile(r"<!--.*?-->|<[^>\n]+>", re.S)


def load_markdown(text: str, *, source: str, fallback_title: str) -> LoadedDocument:
    """One unit per heading (levels 1-4); the title from front matter, else the first level-1 heading."""
    from markdown_it import MarkdownIt

    if not text.strip():
        raise LoadError("file is empty")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    title = ""
    if front := _FRONT_MATTER.match(text):
        if found := _FRONT_MATTER_TITLE.search(front.group(1) or front.group(2) or ""):
            title = squash(found.group(1).strip("\"'"))
        text = text[front.end() :]
    lines = text.split("\n")
    # Blocks first, without inline parsing (half the time); headings' and cells' markup parsed on its own.
    tokens = MarkdownIt("commonmark").enable("table").disable("inline").parse(text)
    parser = MarkdownIt("commonmark")
    sections = Sections()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        end = _closing(tokens, index)
        if token.type == "heading_open":
            heading = _plain(parser, tokens[index + 1])
            if token.tag in SECTION_LEVELS:
                title = title or (heading if token.tag == "h1" else "")
                sections.heading(heading)
            else:
                sections.block(heading)
        elif token.type == "table_open":
            sections.block(table_text(_table_rows(parser, tokens[index:end])), tables=1)
        elif token.type in ("fence", "code_block"):
            sections.block(_source(lines, token).strip("\n"))
        elif token.type == "html_block":
            sections.block(squash(_TAG.sub(" ", token.content)))
        elif token.map is not None and token.type != "hr":
            sections.block(_prose(_source(lines, token)))
        index = end + 1
    pages = sections.finish()
    if not pages:
        raise LoadError("no text found in Markdown (only front matter, markup or comments)")
    return LoadedDocument(source=source, title=title or fallback_title, kind="markdown", pages=pages)


def _closing(tokens: list[Token], index: int) -> int:
    """The index of the token that closes the block opened at `index` (itself for a self-closing one)."""
    if tokens[index].nesting != 1:
        return index
    depth = 0
    for position in range(index, len(tokens)):
        depth += tokens[position].nesting
        if depth == 0:
            return position
    return len(tokens) - 1


def _source(lines: list[str], token: Token) -> str:
    start, end = token.map or (0, 0)
    return "\n".join(lines[start:end])


def _prose(source: str) -> str:
    """Source lines without link targets, emphasis marks or tags (what a reader sees); list markers kept."""
    text = _IMAGE.sub(r"\1", source)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _TAG.sub("", text)
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n") if line.strip())


def _plain(parser: MarkdownIt, inline: Token) -> str:
    """An inline token's text as rendered: link text, image alt text, code spans, without markup."""
    parts: list[str] = []
    parsed = parser.parseInline(inline.content)
    for child in (parsed[0].children or []) if parsed else []:
        if child.type in ("text", "code_inline", "image"):  # an image's content is its alt text
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return squash("".join(parts))


def _table_rows(parser: MarkdownIt, tokens: list[Token]) -> list[list[str]]:
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(_plain(parser, token))
    return rows
