"""Main-content extraction on real pages of a real site: docs.python.org's pages, as Debian ships them
(tests/fixtures/pages/README.md). Their body is Sphinx's `<div class="body">`; all else is site chrome."""

from __future__ import annotations

import re
from pathlib import Path

import lxml.html
import pytest

from ingest.document import LoadedDocument
from ingest.formats.html import load_html

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
# Strings of the navigation bars, sidebar and footer that every page has and no body says.
CHROME = (
    "Report a Bug",
    "Show Source",
    "Previous topic",
    "Created using",
    "Last updated on",
    "Please donate",
)
_WORD = re.compile(r"\w+")


def words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text)) + " "


def body_of(path: Path) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(path.read_bytes()).find_class("body")[0]


def text_of(document: LoadedDocument) -> str:
    return "\n\n".join(page.text for page in document.pages)


def load(path: Path, main_content: bool = True) -> LoadedDocument:
    return load_html(path.read_bytes(), source=str(path), fallback_title=path.name, main_content=main_content)


@pytest.fixture(params=sorted(PAGES.glob("*.html")), ids=lambda path: path.stem)
def page(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_the_fixture_pages_are_there() -> None:
    assert len(list(PAGES.glob("*.html"))) == 4


def test_extraction_drops_the_sites_navigation_sidebar_and_footer(page: Path) -> None:
    text = text_of(load(page))
    assert [chrome for chrome in CHROME if chrome in text] == []


def test_the_tag_rules_alone_keep_the_sidebar_and_footer(page: Path) -> None:
    """What the main-content path adds: Sphinx's sidebar and footer are divs, not nav or footer elements."""
    text = text_of(load(page, main_content=False))
    assert "Report a Bug" in text
    assert "Created using" in text


def test_extraction_keeps_the_body_paragraphs(page: Path) -> None:
    extracted = words(text_of(load(page)))
    paragraphs = [words(p.text_content()) for p in body_of(page).iter("p") if p.text_content().strip()]
    kept = [p for p in paragraphs if p in extracted]
    assert len(kept) >= 0.95 * len(paragraphs)


def test_sections_are_the_bodys_headings(page: Path) -> None:
    headings = [
        squashed(h.text_content()).removesuffix("¶").strip()
        for h in body_of(page).iter("h1", "h2", "h3", "h4")
    ]
    assert [unit.section for unit in load(page).pages] == headings


def squashed(text: str) -> str:
    return " ".join(text.split())


def test_tables_of_a_docs_page_are_rows_with_labelled_cells() -> None:
    document = load(PAGES / "python-library-string.html")
    assert sum(unit.tables for unit in document.pages) == 5
    text = text_of(document)
    assert "Option | Meaning\n'<' | Meaning: Forces the field to be left-aligned" in text
