"""Office files the tests make with python-docx, python-pptx and openpyxl, and zips made to be hostile."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import openpyxl
import pptx
from pptx.util import Inches

COSTS_ROWS = [["Item", "2022", "2023"], ["Heat pump", "7,000", "7,500"], ["Installation", "2,000", "2,100"]]


def heat_pump_docx(path: Path, *, title: str = "") -> Path:
    """A Title, an intro, "Costs" (a paragraph, a table, a paragraph, a list) and "Savings" (Heading 2)."""
    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Heat pump guide", 0)
    document.add_paragraph("Heat pumps move heat instead of making it.")
    document.add_heading("Costs", 1)
    document.add_paragraph("Prices rose between 2022 and 2023.")
    table = document.add_table(rows=len(COSTS_ROWS), cols=3)
    for r, row in enumerate(COSTS_ROWS):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("Grants cover part of the installation.")
    document.add_paragraph("Ask for three quotes", style="List Bullet")
    document.add_heading("Savings", 2)
    document.add_paragraph("A heat pump saves about 30% on heating bills.")
    document.save(str(path))
    return path


def results_pptx(path: Path) -> Path:
    """Slide 1: title, bullets and notes; slide 2: a table; slide 3: nothing but a blank layout."""
    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    assert first.shapes.title is not None
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text_frame.text = "Revenue up 12%\nCosts down 3%"
    notes = first.notes_slide.notes_text_frame
    assert notes is not None
    notes.text = "The new plant in Lyon opened in March."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    assert second.shapes.title is not None
    second.shapes.title.text = "Sales by region"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(4), Inches(1.5)).table
    for r, row in enumerate([["Region", "Sales"], ["North", "40"], ["South", "55"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    deck.slides.add_slide(deck.slide_layouts[6])
    deck.save(str(path))
    return path


def prices_xlsx(path: Path) -> Path:
    """Sheet "Prices": a title line, a blank row, a header and five rows; sheet "Stock"; an empty sheet."""
    workbook = openpyxl.Workbook()
    prices = workbook.active
    assert prices is not None
    prices.title = "Prices"
    prices.append(["Price list 2024"])
    prices.append([])
    prices.append(["Product", "Price", "Launched"])
    for n in range(5):
        prices.append([f"Model {n}", 9.5 + n, dt.datetime(2024, 1, n + 1)])
    stock = workbook.create_sheet("Stock")
    stock.append(["Warehouse", "Units"])
    stock.append(["Leeds", 1200])
    workbook.create_sheet("Notes")
    workbook.save(path)
    return path


def rewritten(data: bytes, member: str, change: Callable[[bytes], bytes]) -> bytes:
    """The zip `data` with one member's bytes changed."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info)
            target.writestr(info.filename, change(body) if info.filename == member else body)
    return out.getvalue()


def with_member(data: bytes, name: str, zeros: int) -> bytes:
    """The zip `data` plus a member of `zeros` zero bytes, written in 1 MiB pieces (a big one: a zip bomb)."""
    out = io.BytesIO(data)
    with (
        zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as target,
        target.open(name, "w", force_zip64=True) as member,
    ):
        piece = bytes(min(zeros, 2**20))
        for start in range(0, zeros, len(piece)):
            member.write(piece[: zeros - start])
    return out.getvalue()
