"""CSV files and Excel workbooks as tables: one unit per sheet, long ones in units that repeat the header."""

from __future__ import annotations

import time
from pathlib import Path

import openpyxl
import pytest

from core.settings import Settings
from ingest.document import LoadError, OfficeLimits, ParseOptions, RawSource
from ingest.fetch import FetchPolicy
from ingest.formats.tables import load_csv
from ingest.load import fetch_url, load_path, parse
from ingest.pipeline import http_client
from tests.fixtures_http import Reply, serving
from tests.ingest.office_files import prices_xlsx, rewritten

LIMITS = OfficeLimits()


def _csv(data: bytes, limits: OfficeLimits = LIMITS, charset: str | None = None) -> list[str]:
    document = load_csv(data, source="t.csv", fallback_title="t.csv", charset=charset, limits=limits)
    return [page.text for page in document.pages]


# CSV


def test_csv_rows_are_labelled_by_the_header_and_the_delimiter_is_sniffed() -> None:
    assert _csv(b"city;heating;cost\nOslo;heat pump;1200\nLund;district;900\n") == [
        "city | heating | cost\nOslo | heating: heat pump | cost: 1200\nLund | heating: district | cost: 900"
    ]
    assert _csv(b"a\tb\n1\t2\n") == ["a | b\n1 | b: 2"]


def test_csv_quoted_fields_keep_their_commas_and_line_breaks() -> None:
    assert _csv(b'name,note\n"Smith, J.","two\nlines"\n') == ["name | note\nSmith, J. | note: two lines"]


def test_csv_in_windows_1252_or_with_a_bom_decodes() -> None:
    assert _csv("Straße,Preis\nHauptstraße,20 €\n".encode("cp1252")) == [
        "Straße | Preis\nHauptstraße | Preis: 20 €"
    ]
    assert _csv("\ufeffid,name\n1,Åsa\n".encode()) == ["id | name\n1 | name: Åsa"]


def test_long_csv_is_split_into_units_that_each_start_with_the_header() -> None:
    data = "month,kwh\n" + "".join(f"m{n},{n * 10}\n" for n in range(1, 8))
    units = _csv(data.encode(), OfficeLimits(rows_per_unit=3))
    assert units == [
        "month | kwh\nm1 | kwh: 10\nm2 | kwh: 20\nm3 | kwh: 30",
        "month | kwh\nm4 | kwh: 40\nm5 | kwh: 50\nm6 | kwh: 60",
        "month | kwh\nm7 | kwh: 70",
    ]


def test_csv_rows_past_the_limit_are_not_read_and_that_is_said() -> None:
    data = "n\n" + "".join(f"{n}\n" for n in range(10))
    document = load_csv(
        data.encode(), source="t.csv", fallback_title="t.csv", charset=None, limits=OfficeLimits(max_rows=4)
    )
    assert document.pages[0].text == "n\n0\n1\n2"
    assert document.warnings == ["the file: only the first 4 rows were read (the limit)"]


def test_binary_or_empty_csv_fails_with_a_reason() -> None:
    with pytest.raises(LoadError, match=r"^not a \.csv: it holds binary data \(NUL bytes\), not text$"):
        _csv(b"a,b\n\x00\x01\x02,3\n")
    with pytest.raises(LoadError, match=r"^not a \.csv: it is a zip archive"):
        _csv(b"PK\x03\x04\x14\x00")
    with pytest.raises(LoadError, match=r"^file is empty$"):
        _csv(b"\n \n")
    with pytest.raises(LoadError, match=r"^corrupt \.csv: field larger than field limit"):
        _csv(b'a\n"' + b"x" * 200_000 + b'"\n')


# Excel


def test_xlsx_is_one_unit_per_sheet_named_by_the_sheet(tmp_path: Path) -> None:
    document = load_path(prices_xlsx(tmp_path / "prices.xlsx"))
    assert (document.kind, document.page_count) == ("xlsx", 3)
    assert [(p.section, p.page, p.tables) for p in document.pages] == [
        ("Prices", None, 1),
        ("Stock", None, 1),
    ]
    assert document.pages[0].text == (
        "Price list 2024\n\nProduct | Price | Launched\n"
        "Model 0 | Price: 9.5 | Launched: 2024-01-01\nModel 1 | Price: 10.5 | Launched: 2024-01-02\n"
        "Model 2 | Price: 11.5 | Launched: 2024-01-03\nModel 3 | Price: 12.5 | Launched: 2024-01-04\n"
        "Model 4 | Price: 13.5 | Launched: 2024-01-05"
    )
    assert document.pages[1].text == "Warehouse | Units\nLeeds | Units: 1200"
    assert document.warnings == ["empty sheet(s): 'Notes'"]


def test_long_sheet_units_repeat_the_header_and_stay_in_their_sheet(tmp_path: Path) -> None:
    data = prices_xlsx(tmp_path / "prices.xlsx").read_bytes()
    document = parse(
        RawSource("p.xlsx", data, "xlsx", "p.xlsx"), ParseOptions(office=OfficeLimits(rows_per_unit=2))
    )
    prices = [p.text for p in document.pages if p.section == "Prices"]
    assert len(prices) == 3
    assert prices[0].startswith("Price list 2024\n\nProduct | Price | Launched\nModel 0 | ")
    assert prices[1].startswith("Product | Price | Launched\nModel 2 | ")
    assert prices[2] == "Product | Price | Launched\nModel 4 | Price: 13.5 | Launched: 2024-01-05"


def test_workbook_cells_past_the_limit_are_not_read_across_sheets(tmp_path: Path) -> None:
    data = prices_xlsx(tmp_path / "prices.xlsx").read_bytes()
    document = parse(
        RawSource("p.xlsx", data, "xlsx", "p.xlsx"), ParseOptions(office=OfficeLimits(max_cells=20))
    )
    assert [p.section for p in document.pages] == ["Prices"]
    assert document.warnings == [
        "sheet 'Stock': reading stopped at row 1, at the limit of 20 cells",
        "1 sheet(s) after it were not read (the cell limit)",
    ]


def test_sheet_declaring_a_huge_range_and_a_far_row_is_read_in_bounded_time(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Name", "Value"])
    sheet.append(["a", 1])
    workbook.save(tmp_path / "far.xlsx")

    def hostile(xml: bytes) -> bytes:
        far = b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>'
        xml = xml.replace(b'<dimension ref="A1:B2"/>', b'<dimension ref="A1:XFD1048576"/>')
        return xml.replace(b"</sheetData>", far + b"</sheetData>")

    data = rewritten((tmp_path / "far.xlsx").read_bytes(), "xl/worksheets/sheet1.xml", hostile)
    started = time.perf_counter()
    document = parse(RawSource("far.xlsx", data, "xlsx", "far.xlsx"))
    assert time.perf_counter() - started < 5
    assert [p.text for p in document.pages] == ["Name | Value\na | Value: 1"]
    assert document.warnings == ["sheet 'Sheet': only the first 100,000 rows were read (the limit)"]


def test_workbook_without_values_fails(tmp_path: Path) -> None:
    openpyxl.Workbook().save(tmp_path / "blank.xlsx")
    with pytest.raises(LoadError, match=r"^no cells with values in any of the 1 sheet\(s\) of the \.xlsx$"):
        load_path(tmp_path / "blank.xlsx")


def test_corrupt_sheet_xml_fails_with_a_reason(tmp_path: Path) -> None:
    data = prices_xlsx(tmp_path / "prices.xlsx").read_bytes()
    broken = rewritten(data, "xl/worksheets/sheet1.xml", lambda xml: xml[: len(xml) // 2])
    with pytest.raises(LoadError, match=r"^corrupt \.xlsx: "):
        parse(RawSource("p.xlsx", broken, "xlsx", "p.xlsx"))


def test_old_xls_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "budget.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    with pytest.raises(LoadError, match=r"^\.xls is the old binary Office format.*save it as \.xlsx"):
        load_path(tmp_path / "budget.xls")


# Served by URL


def test_csv_and_markdown_served_by_type_or_as_plain_text_with_their_suffix_are_tables_and_markdown() -> None:
    routes = {
        "/prices": Reply(b"a,b\n1,2\n", content_type="text/csv; charset=utf-8"),
        "/raw/prices.csv": Reply(b"a,b\n1,2\n", content_type="text/plain; charset=utf-8"),
        "/raw/README.md": Reply(b"# Hi\n\nThere.", content_type="text/plain"),
        "/notes": Reply(b"# Hi\n\nThere.", content_type="text/markdown"),
        "/notes.txt": Reply(b"# Hi", content_type="text/plain"),
    }
    policy = FetchPolicy(allow_private=True)
    with serving(routes) as site, http_client(Settings(), policy) as client:
        kinds = {path: fetch_url(site.url(path), client, policy).kind for path in routes}
    assert kinds == {
        "/prices": "csv",
        "/raw/prices.csv": "csv",
        "/raw/README.md": "markdown",
        "/notes": "markdown",
        "/notes.txt": "text",
    }
