"""A PDF page's words laid out: visual rows, then headings, tables and paragraphs.

Pure geometry on the words pdfium reports (ingest/formats/pdf.py reads them), so that it can be tested on
words a test writes. Coordinates are PDF points, y growing upwards. The rules are cheap heuristics, measured
on SEC filings and guides (docs/documents.md): a heading is a short line set larger than the page's body
text, or bold on a page mostly not; a table is a run of rows split into cells by wide gaps, its columns found
by overlapping the cells' spans, its header the leading rows above the value columns."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from ingest.document import table_text

ROW_LOOKBACK = 12
MAX_ROW_WORDS = 400
"""Words a row gathers from other lines at most."""
"""Earlier rows a short line may join (table cells drawn column by column, superscripts)."""
CELL_GAP_EM = 0.9
"""A gap wider than this many line heights separates two cells of a row."""
MAX_CELL_CHARS = 48
"""Cells after a row's first are short in tables; longer ones are prose in columns."""
MAX_LABEL_CHARS = 80
"""A row's first cell (its label) at most; a longer one is a line of prose beside something."""
MAX_HEADER_ROWS = 5
HEADING_SIZE_RATIO = 1.18
"""A line this much larger than the page's body text is a heading."""
MAX_HEADING_WORDS = 16
MAX_HEADING_CHARS = 140
MIN_UNIT_CHARS = 400
"""Units shorter than this are merged into a neighbour (a page header above the first heading)."""

_VALUE = re.compile(
    "^[$€£¥(\\[]*\\s*[-\u2212\u2013+]?\\s*(?:\\d[\\d,.]*|[.,]\\d+)\\s*[)\\]%x]*\\s*%?\\)?$|^[\u2014\u2013-]+$|^n/?m$",
    re.I,
)
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_AFFIX_BEFORE = frozenset({"$", "€", "£", "¥", "(", "$(", "US$", "C$", "A$"})
_AFFIX_AFTER = frozenset({"%", ")", ")%", "%)", "pts", "bps", "x"})
_LETTER = re.compile(r"[^\W\d_]")
_NUMBERED = re.compile(r"\d+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(?=[a-z])")
_PAGE_NUMBER = re.compile(
    "^(?:page\\s*)?[-\u2013]?\\s*\\d{1,4}\\s*[-\u2013]?(?:\\s*(?:of|/)\\s*\\d{1,4})?$", re.I
)


@dataclass(frozen=True)
class Word:
    """A run of characters without a space, with its box and font."""

    text: str
    x0: float
    x1: float
    bottom: float
    top: float
    size: float
    """The height of its box (font sizes alone lie when a text matrix scales the font)."""
    bold: bool = False
    font: str = ""


@dataclass
class Cell:
    """Words of a row between two wide gaps."""

    words: list[Word]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def x0(self) -> float:
        return self.words[0].x0

    @property
    def x1(self) -> float:
        return max(w.x1 for w in self.words)


@dataclass
class Row:
    """One visual line: words sharing a vertical band, left to right."""

    words: list[Word]
    cells: list[Cell] = field(default_factory=list)

    @property
    def top(self) -> float:
        return max(w.top for w in self.words)

    @property
    def bottom(self) -> float:
        return min(w.bottom for w in self.words)

    @property
    def x0(self) -> float:
        return min(w.x0 for w in self.words)

    @property
    def x1(self) -> float:
        return max(w.x1 for w in self.words)

    @property
    def size(self) -> float:
        return median(w.size for w in self.words)

    @property
    def bold(self) -> bool:
        return all(w.bold for w in self.words if _LETTER.search(w.text))

    @property
    def font(self) -> str:
        return self.words[0].font

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.cells) if self.cells else " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class Block:
    """A heading, a paragraph (lines of text) or a table (its text written by `table_text`)."""

    kind: str  # "heading" | "text" | "table"
    text: str
    top: float = 0.0
    bottom: float = 0.0


@dataclass(frozen=True)
class Unit:
    """A part of a page under one heading: what becomes one `Page`."""

    text: str
    section: str | None
    tables: int


def rows_of(lines: Iterable[Sequence[Word]], page_width: float) -> list[Row]:
    """Visual rows from the text lines in content order.

    A line joins an earlier row when it shares that row's vertical band and none of its horizontal span: a
    superscript, or a table cell drawn column by column. Only short lines look back beyond the previous row,
    so that two columns of prose are never zipped together.
    """
    rows: list[Row] = []
    for line in lines:
        words = [w for w in line if w.text]
        if not words:
            continue
        width = max(w.x1 for w in words) - min(w.x0 for w in words)
        lookback = ROW_LOOKBACK if width < page_width * 0.3 else 1
        target = next((row for row in reversed(rows[-lookback:]) if _joins(row, words)), None)
        if target is None:
            rows.append(Row(sorted(words, key=lambda w: w.x0)))
        else:
            target.words = sorted([*target.words, *words], key=lambda w: w.x0)
    for row in rows:
        row.cells = _cells(row.words)
    return rows


def _joins(row: Row, words: Sequence[Word]) -> bool:
    if len(row.words) >= MAX_ROW_WORDS:  # keeps rows_of linear on a page of thousands of one-word lines
        return False
    top, bottom = max(w.top for w in words), min(w.bottom for w in words)
    overlap = min(top, row.top) - max(bottom, row.bottom)
    if overlap < 0.5 * min(top - bottom, row.top - row.bottom):
        return False
    left, right = min(w.x0 for w in words), max(w.x1 for w in words)
    return all(v.x1 <= left + 0.5 or v.x0 >= right - 0.5 for v in row.words)


def _cells(words: list[Word]) -> list[Cell]:
    cells: list[Cell] = []
    right = 0.0  # the right edge of the last cell so far
    for word in words:
        # "$" after a figure starts the next cell even when the gap is narrow: "16,388  $ 14,573"
        starts_cell = word.text in _AFFIX_BEFORE and bool(cells) and _is_value(cells[-1].words[-1].text)
        if cells and word.x0 - right <= CELL_GAP_EM * max(word.size, 1.0) and not starts_cell:
            cells[-1].words.append(word)
            right = max(right, word.x1)
        else:
            cells.append(Cell([word]))
            right = word.x1
    merged: list[Cell] = []
    pending: list[Word] = []
    for cell in cells:
        text = cell.text
        if text in _AFFIX_BEFORE:
            pending.extend(cell.words)
        elif text in _AFFIX_AFTER and merged and not pending:
            merged[-1].words.extend(cell.words)
        else:
            merged.append(Cell([*pending, *cell.words]))
            pending = []
    if pending:
        merged.append(Cell(pending))
    return merged


def running_texts(pages: Sequence[Sequence[Row]]) -> frozenset[str]:
    """Short lines repeated on many pages (running headers and footers, page numbers): never headings."""
    if len(pages) < 3:
        return frozenset()
    counts: Counter[str] = Counter()
    for rows in pages:
        counts.update({_shape(row.text) for row in rows if len(row.text) <= MAX_HEADING_CHARS})
    threshold = max(3, len(pages) * 0.3)
    return frozenset(text for text, count in counts.items() if count >= threshold)


def _shape(text: str) -> str:
    return _NUMBERED.sub("#", text.lower().strip())


def blocks_of(rows: Sequence[Row], running: frozenset[str] = frozenset()) -> list[Block]:
    """The page as headings, paragraphs and tables, in reading order."""
    tables = _find_tables(rows)
    body = _Body(rows)
    blocks: list[Block] = []
    lines: list[Row] = []

    def flush() -> None:
        if lines:
            blocks.append(Block("text", _paragraphs(lines), lines[0].top, lines[-1].bottom))
            lines.clear()

    index = 0
    while index < len(rows):
        if index in tables:
            end = tables[index]
            if text := _table_block(rows[index:end]):
                flush()
                blocks.append(Block("table", text, rows[index].top, rows[end - 1].bottom))
            else:
                lines.extend(rows[index:end])
            index = end
            continue
        row = rows[index]
        if _PAGE_NUMBER.match(row.text) and _shape(row.text) in running:
            index += 1  # a page number: noise in every chunk it would join
            continue
        if _is_heading(row, body, running):
            flush()
            blocks.append(Block("heading", row.text, row.top, row.bottom))
        else:
            lines.append(row)
        index += 1
    flush()
    return _join_headings(blocks)


class _Body:
    """What the page's body text looks like: its commonest height and font, and how much of it is bold."""

    def __init__(self, rows: Sequence[Row]) -> None:
        sizes: Counter[float] = Counter()
        fonts: Counter[str] = Counter()
        bold = total = 0
        for row in rows:
            for word in row.words:
                sizes[round(word.size * 2) / 2] += len(word.text)
                fonts[word.font] += len(word.text)
                total += len(word.text)
                bold += len(word.text) if word.bold else 0
        self.size = sizes.most_common(1)[0][0] if sizes else 0.0
        self.font = fonts.most_common(1)[0][0] if fonts else ""
        self.bold_share = bold / total if total else 0.0


def _is_heading(row: Row, body: _Body, running: frozenset[str]) -> bool:
    """A short line of letters, set larger than the body, or bold on a page mostly not, or in another font
    and a little larger (a sans-serif title over serif text)."""
    text = row.text
    words = len(text.split())
    if len(text) > MAX_HEADING_CHARS or words > MAX_HEADING_WORDS or len(row.cells) > 2:
        return False
    letters = len(_LETTER.findall(text))
    if letters < 3 or letters < 0.5 * len(text.replace(" ", "")) or text[-1] in ",;:":
        return False
    if _shape(text) in running or not body.size:
        return False
    if row.size >= body.size * HEADING_SIZE_RATIO:
        return True
    if row.size < body.size * 0.9 or (text.endswith(".") and words > 8):
        return False
    if row.bold and body.bold_share <= 0.4:
        return True
    return row.font != body.font and row.size >= body.size * 1.05 and words <= 10 and not text.endswith(".")


def _join_headings(blocks: list[Block]) -> list[Block]:
    """Consecutive heading lines are one heading (a wrapped title, or a title and its subtitle)."""
    joined: list[Block] = []
    for block in blocks:
        previous = joined[-1] if joined else None
        if (
            block.kind == "heading"
            and previous is not None
            and previous.kind == "heading"
            and len(previous.text) + len(block.text) < MAX_HEADING_CHARS * 2
        ):
            joined[-1] = Block("heading", f"{previous.text} {block.text}", previous.top, block.bottom)
            continue
        joined.append(block)
    return joined


def _paragraphs(rows: Sequence[Row]) -> str:
    """Rows as lines; a wide vertical gap (more than ~1.6 lines) is a paragraph break."""
    parts: list[str] = []
    previous: Row | None = None
    for row in rows:
        if previous is not None:
            height = max(previous.top - previous.bottom, 1.0)
            parts.append("\n\n" if previous.bottom - row.top > 0.8 * height else "\n")
        parts.append(row.text)
        previous = row
    return _HYPHEN_BREAK.sub(r"\1", "".join(parts))


def _is_value(text: str) -> bool:
    return bool(_VALUE.match(text)) and not _YEAR.match(text.strip("()"))


def _is_table_row(row: Row) -> bool:
    cells = row.cells
    return (
        len(cells) >= 2
        and len(cells[0].text) <= MAX_LABEL_CHARS
        and all(len(c.text) <= MAX_CELL_CHARS for c in cells[1:])
    )


def _find_tables(rows: Sequence[Row]) -> dict[int, int]:
    """Runs of table rows, as {first row: row after the last}.

    A run is table rows with at most two short single-cell rows between them ("Revenue:"); it needs two rows
    with a figure after their label, or three rows of three cells in at least two columns. A short line just
    above it that sits over its value columns ("Years Ended") is its title.
    """
    found: dict[int, int] = {}
    index = 0
    while index < len(rows):
        if not _is_table_row(rows[index]):
            index += 1
            continue
        start, end, fillers = index, index + 1, 0
        probe = index + 1
        while probe < len(rows):
            row = rows[probe]
            if _is_table_row(row):
                end, fillers = probe + 1, 0
            elif len(row.text) <= MAX_HEADING_CHARS and fillers < 2:
                fillers += 1
            else:
                break
            probe += 1
        table_rows = [r for r in rows[start:end] if _is_table_row(r)]
        with_values = sum(any(_is_value(c.text) for c in r.cells[1:]) for r in table_rows)
        wide = [r for r in table_rows if len(r.cells) >= 3]
        if with_values >= 2 or (len(wide) >= 3 and len(_columns(wide)) >= 2):
            first_value = min(c.x0 for r in table_rows for c in r.cells[1:])
            while start > 0 and start not in found.values() and _titles(rows, start - 1, first_value):
                start -= 1
            found[start] = end
        index = end
    return found


def _titles(rows: Sequence[Row], index: int, first_value: float) -> bool:
    """Whether a row just above a table titles its value columns ("Years Ended"): short, over the values,
    close to the table, and not the last line of a paragraph that runs on above it."""
    row, below = rows[index], rows[index + 1]
    if len(row.text) > 30 or row.x0 < first_value - row.size or below.bottom > row.bottom:
        return False
    if row.bottom - below.top > 2 * row.size:
        return False
    if index == 0:
        return True
    above = rows[index - 1]
    runs_on = abs(above.x0 - row.x0) < row.size and above.bottom - row.top < 0.8 * row.size
    return not runs_on


def _table_block(rows: Sequence[Row]) -> str:
    """A table's rows as `table_text` writes them, with its header's labels over its value columns.

    The header is the leading rows without a figure that sit right of the labels ("Years Ended", "2022"), or
    a first row of labels only. A header cell labels the columns under it (`_header_cells`).
    """
    labelled = [r for r in rows if not _is_value(r.cells[0].text) and any(_is_value(c.text) for c in r.cells)]
    labels_end = max(
        (r.cells[0].x1 for r in labelled), default=min((c.x0 for r in rows for c in r.cells[1:]), default=0.0)
    )
    header_count = 0
    for position, row in enumerate(rows[:MAX_HEADER_ROWS]):
        if any(_is_value(c.text) for c in row.cells):
            break
        if row.x0 < labels_end and (position > 0 or len(row.cells) < 2):
            break
        header_count += 1
    header, body = rows[:header_count], rows[header_count:]
    if not body:
        return ""
    spans = _columns(body)
    if not spans:
        return ""
    first_value = spans[0][0]
    grid: list[list[str]] = []
    for row in body:
        cells = [""] * (len(spans) + 1)
        for cell in row.cells:
            column = _column_of(cell, spans, first_value)
            cells[column] = f"{cells[column]} {cell.text}".strip()
        grid.append(cells)
    labels = [""] * (len(spans) + 1)
    for row in header:
        for column, text in _header_cells(row, spans, labels_end):
            labels[column] = f"{labels[column]} {text}".strip()
    if any(labels[1:]):
        return table_text([_shared_prefix_apart(labels), *grid])
    return "\n".join(table_text([cells]) for cells in grid if any(cells))


def _shared_prefix_apart(labels: list[str]) -> list[str]:
    """Words that start every column's label ("Years Ended") move to the label column's header, so that each
    figure is labelled by what tells its column apart ("December 2, 2022: 17,606")."""
    words = [label.split() for label in labels[1:]]
    if len(words) < 2 or not all(words):
        return labels
    shared = 0
    while all(len(w) > shared + 1 and w[shared] == words[0][shared] for w in words):
        shared += 1
    if not shared:
        return labels
    prefix = " ".join(words[0][:shared])
    return [f"{labels[0]} {prefix}".strip(), *(" ".join(w[shared:]) for w in words)]


def _header_cells(row: Row, spans: Sequence[tuple[float, float]], labels_end: float) -> list[tuple[int, str]]:
    """(column, text) for a header row. A cell left of the values labels the label column. A row of few cells
    over many columns ("Fiscal 2024", "Fiscal 2023" over eight) spans them: each column takes its nearest
    cell. Otherwise a cell labels the columns it overlaps (within an em), or else its nearest column."""
    placed: list[tuple[int, str]] = []
    over = [cell for cell in row.cells if cell.x0 >= labels_end]
    placed.extend((0, cell.text) for cell in row.cells if cell.x0 < labels_end)
    if not over:
        return placed
    centres = [(x0 + x1) / 2 for x0, x1 in spans]
    if len(over) * 2 < len(spans) or len(over) == 1:
        for column, centre in enumerate(centres, start=1):
            nearest = min(over, key=lambda c: max(c.x0 - centre, centre - c.x1, 0.0))
            placed.append((column, nearest.text))
        return placed
    for cell in over:
        pad = max(cell.words[0].size, 1.0)
        under = [i for i, (x0, x1) in enumerate(spans, start=1) if cell.x0 - pad < x1 and x0 < cell.x1 + pad]
        if not under:
            centre = (cell.x0 + cell.x1) / 2
            under = [1 + min(range(len(spans)), key=lambda i: abs(centres[i] - centre))]
        placed.extend((column, cell.text) for column in under)
    return placed


def _columns(body: Sequence[Row]) -> list[tuple[float, float]]:
    """The value columns' spans: the union of overlapping spans of every cell after a row's label."""
    spans = sorted(
        (c.x0, c.x1)
        for row in body
        for position, c in enumerate(row.cells)
        if position > 0 or _is_value(c.text)
    )
    merged: list[tuple[float, float]] = []
    for x0, x1 in spans:
        if merged and x0 <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], x1))
        else:
            merged.append((x0, x1))
    return merged


def _column_of(cell: Cell, spans: Sequence[tuple[float, float]], first_value: float) -> int:
    if cell.x1 <= first_value and not _is_value(cell.text):
        return 0
    overlaps = [min(cell.x1, x1) - max(cell.x0, x0) for x0, x1 in spans]
    best = max(range(len(spans)), key=lambda i: overlaps[i])
    if overlaps[best] > 0:
        return best + 1
    centre = (cell.x0 + cell.x1) / 2
    return 1 + min(range(len(spans)), key=lambda i: abs(centre - (spans[i][0] + spans[i][1]) / 2))


def _unit_text(blocks: Sequence[Block]) -> str:
    """Blocks apart by blank lines, but a heading with its first block: the splitter keeps them together."""
    text = ""
    previous = ""
    for block in blocks:
        text += "\n\n" if text and "table" in (block.kind, previous) else "\n" if text else ""
        previous = block.kind
        text += block.text
    return text


def units_of(blocks: Sequence[Block], carried: str | None) -> tuple[list[Unit], str | None]:
    """Split a page's blocks at its headings; text before the first heading continues the carried section.

    Returns the units and the section that carries on to the next page. A short unit joins the one before it
    (each unit ends in a part-filled chunk: more units, more chunks to embed); short text above the page's
    first heading (a running header) joins that heading's unit instead.
    """
    units: list[tuple[str | None, list[Block]]] = [(carried, [])]
    section = carried
    for block in blocks:
        if block.kind == "heading":
            section = block.text
            units.append((section, [block]))
        else:
            units[-1][1].append(block)
    merged: list[Unit] = []
    headless_start = False
    for position, (name, parts) in enumerate(unit for unit in units if unit[1]):
        unit = Unit(_unit_text(parts), name, sum(b.kind == "table" for b in parts))
        if merged and len(unit.text) < MIN_UNIT_CHARS:
            last = merged[-1]
            merged[-1] = Unit(f"{last.text}\n\n{unit.text}", last.section, last.tables + unit.tables)
        elif position == 1 and headless_start and len(merged[0].text) < MIN_UNIT_CHARS:
            first = merged.pop()
            merged.append(Unit(f"{first.text}\n\n{unit.text}", unit.section, first.tables + unit.tables))
        else:
            merged.append(unit)
        if position == 0:
            headless_start = parts[0].kind != "heading"
    return merged, section
