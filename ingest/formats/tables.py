"""Tables: CSV files and Excel workbooks (.xlsx), one unit per sheet, long sheets in units of N rows.

Every unit starts with the header row, and `table_text` labels each later cell by its column's header, so a
chunk cut from the middle of a long table still says what its figures are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from core.text import squash
from ingest.document import LoadedDocument, LoadError, OfficeLimits, Page, decode_text, describe, table_text
from ingest.formats.ooxml import check_package

_SNIFF_BYTES = 16_384
_DELIMITERS = ",;\t|"
_HEADER_SCAN = 10  # rows looked at to find the header under a sheet's title lines


class _CellBudget:
    """The cells left to read in a file (`OfficeLimits.max_cells`), across its sheets."""

    def __init__(self, cells: int) -> None:
        self.left = cells


def load_csv(
    data: bytes, *, source: str, fallback_title: str, charset: str | None, limits: OfficeLimits
) -> LoadedDocument:
    """A CSV (or TSV) file as one table; the delimiter is sniffed, the encoding found by `decode_text`."""
    if data.startswith(b"PK\x03\x04"):
        raise LoadError(
            "not a .csv: it is a zip archive (a workbook named or served as .csv? save it as .xlsx)"
        )
    text = decode_text(data, charset)
    if not text.strip():
        raise LoadError("file is empty")
    sample = text[:_SNIFF_BYTES]
    if "\x00" in sample:
        raise LoadError("not a .csv: it holds binary data (NUL bytes), not text")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample[: sample.rfind("\n")] if "\n" in sample else sample, delimiters=_DELIMITERS
        )
    except csv.Error:
        dialect = csv.excel_tab if "\t" in sample and "," not in sample else csv.excel
    warned: list[str] = []
    try:
        rows = _bounded(csv.reader(io.StringIO(text, newline=""), dialect), "the file", limits, warned)
        pages = table_units(rows, section=None, limits=limits)
    except csv.Error as exc:
        raise LoadError(f"corrupt .csv: {describe(exc)}") from exc
    if not pages:
        raise LoadError("no cells with values in the .csv")
    return LoadedDocument(source=source, title=fallback_title, kind="csv", pages=pages, warnings=warned)


def load_xlsx(data: bytes, *, source: str, fallback_title: str, limits: OfficeLimits) -> LoadedDocument:
    """Each worksheet of a workbook as a table (`section` = the sheet's name), with cached formula values."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    check_package(data, ".xlsx", limits)
    warnings.filterwarnings("ignore", module="openpyxl")  # styles it does not know: noise, not a problem
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (KeyError, OSError, InvalidFileException) as exc:  # OSError: "contains no valid workbook part"
        raise LoadError(f"not a .xlsx: the archive holds no workbook ({describe(exc)})") from exc
    except Exception as exc:  # lxml, zipfile and value errors on damaged parts
        raise LoadError(f"corrupt .xlsx: {describe(exc)}") from exc
    pages: list[Page] = []
    notes: list[str] = []
    empty: list[str] = []
    budget = _CellBudget(limits.max_cells)
    try:
        title = squash(workbook.properties.title or "")
        sheets = list(workbook.worksheets)
        for number, sheet in enumerate(sheets):
            if budget.left < 0:
                notes.append(f"{len(sheets) - number} sheet(s) after it were not read (the cell limit)")
                break
            sheet.reset_dimensions()  # a sheet may declare a huge range: read only the rows it holds
            where = f"sheet {sheet.title!r}"
            rows = _bounded(sheet.iter_rows(values_only=True), where, limits, notes, budget)
            units = table_units(([_cell_text(v) for v in row] for row in rows), sheet.title, limits)
            if not units and budget.left >= 0:
                empty.append(sheet.title)
            pages.extend(units)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"corrupt .xlsx: {describe(exc)}") from exc
    finally:
        workbook.close()
    if empty and pages:
        notes.append("empty sheet(s): " + ", ".join(repr(name) for name in empty))
    if not pages:
        raise LoadError(f"no cells with values in any of the {len(sheets)} sheet(s) of the .xlsx")
    return LoadedDocument(
        source=source,
        title=title or fallback_title,
        kind="xlsx",
        pages=pages,
        page_count=len(sheets),
        warnings=notes,
    )


def table_units(rows: Iterable[list[str]], section: str | None, limits: OfficeLimits) -> list[Page]:
    """A table's rows as units of `limits.rows_per_unit` rows, each starting with the header row.

    The header is the first row at least half as full as the fullest of the first rows; lines above it (a
    sheet's title, a note) are kept as text before the table in the first unit.
    """
    kept = [row for row in ([squash(cell) for cell in row] for row in rows) if any(row)]
    if not kept:
        return []
    head = kept[:_HEADER_SCAN]
    widest = max(_filled(row) for row in head)
    at = next(i for i, row in enumerate(head) if _filled(row) * 2 >= widest)
    preamble = "\n".join(" ".join(cell for cell in row if cell) for row in kept[:at])
    header, body = kept[at], kept[at + 1 :]
    size = max(1, limits.rows_per_unit)
    pages: list[Page] = []
    for start in range(0, max(len(body), 1), size):
        text = table_text([header, *body[start : start + size]])
        if not pages and preamble:
            text = f"{preamble}\n\n{text}"
        pages.append(Page(text=text, section=section, tables=1))
    return pages


def _filled(row: list[str]) -> int:
    return sum(1 for cell in row if cell)


def _bounded(
    rows: Iterable[Any],
    where: str,
    limits: OfficeLimits,
    notes: list[str],
    budget: _CellBudget | None = None,
) -> Iterator[Any]:
    """The rows, stopping at `limits.max_rows` rows or when the file's cells run out (with a note why)."""
    budget = budget or _CellBudget(limits.max_cells)
    for count, row in enumerate(rows):
        if count >= limits.max_rows:
            notes.append(f"{where}: only the first {limits.max_rows:,} rows were read (the limit)")
            return
        budget.left -= len(row)
        if budget.left < 0:
            notes.append(
                f"{where}: reading stopped at row {count + 1:,}, at the limit of {limits.max_cells:,} cells"
            )
            return
        yield row


def _cell_text(value: object) -> str:
    """A cell's value as a person reads it: whole numbers without ".0", dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ", "minutes")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
