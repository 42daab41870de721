"""PDF layout: headings become their own lines and their units' sections, tables keep their rows, cells and
column labels. On PDFs the tests write (text placed by hand), the repo's sample, and a real filing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.formats.pdf import load_pdf
from ingest.load import load_path
from tests.helpers import SAMPLE_CORPUS
from tests.ingest.pdf_fixtures import Text, paragraph, text_pdf

FINANCEBENCH = Path(__file__).resolve().parents[3] / "shared" / "eval" / "financebench" / "pdfs"
BODY = [
    "Bokashi is a Japanese method that ferments food scraps in an airtight bucket with bran",
    "inoculated with lactic acid bacteria. Add scraps in layers and press out the air, then",
    "drain the liquid from the tap every 2 to 3 days and keep the bucket sealed for two weeks.",
]
WORMS = [
    "Red wigglers eat about half their body weight of scraps a day and live in surface litter.",
    "Keep the bin between 15 and 25 degrees, out of direct sun, with damp shredded cardboard",
    "as bedding, and bury the food under it so that the bin never smells of anything at all.",
    "Castings are ready after three to six months: push the finished material to one side,",
    "put fresh bedding and food on the other, and within two or three weeks the worms move",
    "across, so that the castings can be scooped out with few worms left in them to sort.",
]


def _two_sections() -> list[Text]:
    return [
        (72, 720, "F2", 16, "Bokashi Fermentation"),
        *paragraph(72, 696, BODY),
        (72, 630, "F2", 16, "Worm Bins"),
        *paragraph(72, 606, WORMS),
    ]


def _income_table() -> list[Text]:
    """A statement of income: a title over the year columns, figures right-aligned, "$" apart."""
    rows: list[Text] = [(72, 720, "F1", 11, "Results for the year were as follows (in millions):")]
    rows += [(330, 690, "F2", 10, "Years Ended"), (300, 676, "F2", 10, "2023"), (400, 676, "F2", 10, "2022")]
    figures = [("Revenue", "$", "17,606", "$", "15,785"), ("Cost of revenue", "", "2,165", "", "1,865")]
    figures += [("Operating income", "", "6,098", "", "5,802"), ("Net income", "$", "4,756", "$", "4,822")]
    for index, (label, dollar_a, a, dollar_b, b) in enumerate(figures):
        y = 660 - 14 * index
        rows.append((72, y, "F1", 10, label))
        rows += [(280, y, "F1", 10, dollar_a)] if dollar_a else []
        rows.append((330 - 5.56 * len(a), y, "F1", 10, a))  # right-aligned at x=330
        rows += [(380, y, "F1", 10, dollar_b)] if dollar_b else []
        rows.append((430 - 5.56 * len(b), y, "F1", 10, b))
    rows += paragraph(72, 580, ["Operating income rose because revenue grew faster than costs did."])
    return rows


def test_pdf_headings_are_own_lines_and_each_starts_a_unit_with_its_section() -> None:
    """(A section shorter than MIN_UNIT_CHARS joins the unit before it; this one is longer.)"""
    document = load_pdf(text_pdf([_two_sections()]), source="guide.pdf", fallback_title="guide.pdf")
    assert [(page.page, page.section) for page in document.pages] == [
        (1, "Bokashi Fermentation"),
        (1, "Worm Bins"),
    ]
    assert document.pages[0].text.startswith("Bokashi Fermentation\nBokashi is a Japanese method")
    assert document.pages[1].text.startswith("Worm Bins\nRed wigglers")
    assert "Worm Bins" not in document.pages[0].text


def test_pdf_page_without_a_heading_continues_the_section_of_the_page_before() -> None:
    follow_on = paragraph(72, 720, WORMS + BODY)
    document = load_pdf(text_pdf([_two_sections(), follow_on]), source="g.pdf", fallback_title="g.pdf")
    assert [(page.page, page.section) for page in document.pages][-1] == (2, "Worm Bins")


def test_pdf_table_keeps_one_row_per_line_with_cells_and_column_labels() -> None:
    document = load_pdf(text_pdf([_income_table()]), source="results.pdf", fallback_title="results.pdf")
    [page] = document.pages
    assert page.tables == 1
    lines = page.text.splitlines()
    assert "Years Ended | 2023 | 2022" in lines
    assert "Revenue | 2023: $ 17,606 | 2022: $ 15,785" in lines
    assert "Cost of revenue | 2023: 2,165 | 2022: 1,865" in lines
    assert "Net income | 2023: $ 4,756 | 2022: $ 4,822" in lines
    assert lines[0] == "Results for the year were as follows (in millions):"
    assert lines[-1] == "Operating income rose because revenue grew faster than costs did."


def test_pdf_prose_with_wide_gaps_is_not_taken_for_a_table() -> None:
    justified: list[Text] = [(72, 700 - 14 * i, "F1", 11, w) for i, w in enumerate(["a", "an", "the"])]
    justified += [(100, 700 - 14 * i, "F1", 11, line) for i, line in enumerate(BODY)]
    document = load_pdf(text_pdf([justified]), source="j.pdf", fallback_title="j.pdf")
    assert document.pages[0].tables == 0
    assert " | " not in document.pages[0].text


def test_sample_pdf_heading_is_no_longer_glued_to_its_first_sentence() -> None:
    document = load_path(SAMPLE_CORPUS / "compost-field-guide.pdf")
    bokashi = document.pages[3]
    assert (bokashi.page, bokashi.section) == (4, "Bokashi Fermentation")
    assert bokashi.text.startswith("Bokashi Fermentation\nBokashi is a Japanese method")


@pytest.mark.skipif(not FINANCEBENCH.is_dir(), reason="../shared/eval/financebench is not there")
def test_real_filing_aes_encrypted_opens_and_its_income_statement_keeps_rows_and_labels() -> None:
    document = load_path(FINANCEBENCH / "ADOBE_2022_10K.pdf")
    assert document.page_count == 99 and document.empty_pages == []
    income = "\n".join(page.text for page in document.pages if page.page == 54)
    assert "Total revenue | December 2, 2022: 17,606 | December 3, 2021: 15,785" in income
    assert "Operating income | December 2, 2022: 6,098 | December 3, 2021: 5,802" in income
    assert any(page.page == 54 and page.tables == 1 for page in document.pages)
