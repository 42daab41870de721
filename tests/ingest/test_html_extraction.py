"""HTML extraction: the main content without chrome, sections by heading, tables as rows, ids, bounds."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from ingest.document import LoadError, ParseOptions, RawSource
from ingest.formats import html
from ingest.formats.html import load_html
from ingest.load import parse

STORY = [
    "The council approved the new cycle lanes on Tuesday after a debate that lasted well into the evening.",
    "Residents of the eastern districts had asked for safer routes to the schools for more than six years.",
    "The first lane will run from the station to the hospital and should open before the end of next spring.",
    "Shop owners on the high street worried about deliveries; the plan now keeps loading bays at each end.",
    "A second phase, still to be funded, would link the lane to the river path and the two business parks.",
]
CHROME = (
    '<div class="top-menu"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>'
    '<li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></div>'
)
COOKIES = (
    '<div class="cookie-banner">We use cookies to improve your experience. <a href="/ok">Accept all</a></div>'
)
RELATED = (
    '<div class="related"><h3>More stories</h3><ul>'
    + "".join(
        f'<li><a href="/story/{n}">Celebrity chef opens restaurant number {n}</a></li>' for n in range(8)
    )
    + "</ul></div>"
)
SITE_FOOTER = '<div class="site-footer">© 2024 The Daily Example. <a href="/privacy">Privacy</a></div>'


def news_page(article: str) -> bytes:
    body = f"{COOKIES}{CHROME}<div class='content'>{article}</div>{RELATED}{SITE_FOOTER}"
    return f"<html><head><title>Cycle lanes approved</title></head><body>{body}</body></html>".encode()


def story(ids: bool = False) -> str:
    paragraphs = "".join(f'<p id="p{n}">{s}</p>' if ids else f"<p>{s}</p>" for n, s in enumerate(STORY))
    return f"<h1>Cycle lanes approved</h1>{paragraphs}"


def text_of(data: bytes, main_content: bool = True) -> str:
    document = load_html(data, source="s", fallback_title="f", main_content=main_content)
    return "\n\n".join(page.text for page in document.pages)


def test_main_content_drops_menus_cookie_banners_related_links_and_footers_that_no_tag_gives_away() -> None:
    page = news_page(story())
    text = text_of(page)
    assert all(sentence in text for sentence in STORY)
    for chrome in ("Weather", "cookies", "Celebrity chef", "Privacy"):
        assert chrome not in text
    block_path = text_of(page, main_content=False)
    assert all(chrome in block_path for chrome in ("Weather", "cookies", "Celebrity chef", "Privacy"))


def test_the_parse_options_can_turn_main_content_extraction_off() -> None:
    raw = RawSource("s", news_page(story()), "html", "page.html")
    kept = "\n".join(page.text for page in parse(raw, ParseOptions(html_main_content=False)).pages)
    assert "Celebrity chef" in kept
    assert "Celebrity chef" not in "\n".join(page.text for page in parse(raw).pages)


def test_main_content_is_split_into_sections_at_its_headings() -> None:
    article = (
        f"<h1>Cycle lanes approved</h1><p>{STORY[0]} {STORY[1]}</p><h2>The route</h2><p>{STORY[2]}</p>"
        f"<h2>Shops</h2><p>{STORY[3]} {STORY[4]}</p>"
    )
    document = load_html(news_page(article), source="s", fallback_title="f")
    assert [page.section for page in document.pages] == ["Cycle lanes approved", "The route", "Shops"]
    assert document.pages[1].text == f"The route\n\n{STORY[2]}"
    assert document.title == "Cycle lanes approved"


def test_element_ids_survive_main_content_extraction() -> None:
    document = load_html(news_page(story(ids=True)), source="s", fallback_title="f")
    page = document.pages[0]
    spans = {anchor.id: page.text[anchor.start : anchor.end] for anchor in page.anchors}
    assert spans == {f"p{n}": sentence for n, sentence in enumerate(STORY)}


def test_a_page_that_is_all_content_keeps_the_block_paths_exact_paragraphs() -> None:
    data = b"<html><body><h2>Lofts</h2><p id='a'>Insulate.</p><div>Loose <b>text</b>.</div></body></html>"
    document = load_html(data, source="s", fallback_title="f")
    assert document.pages[0].text == "Lofts\n\nInsulate.\n\nLoose text."
    assert [(a.id, a.start, a.end) for a in document.pages[0].anchors] == [("a", 7, 16)]


def test_a_data_table_is_one_row_per_line_with_labelled_cells_and_is_counted() -> None:
    table = (
        "<table><caption>Energy use</caption><tr><th>Appliance</th><th>2022</th><th>2023</th></tr>"
        "<tr><td>Fridge</td><td>310 kWh</td><td>290 kWh</td></tr>"
        "<tr><td colspan='2'>Washer</td><td>180 kWh</td></tr></table>"
    )
    document = load_html(
        f"<body><h2>Use</h2>{table}<p>After.</p></body>".encode(), source="s", fallback_title="f"
    )
    page = document.pages[0]
    assert page.text == (
        "Use\n\nEnergy use\n\nAppliance | 2022 | 2023\nFridge | 2022: 310 kWh | 2023: 290 kWh\n"
        "Washer | 2023: 180 kWh\n\nAfter."
    )
    assert page.tables == 1


def test_a_table_in_the_main_content_stays_a_table() -> None:
    rows = "".join(f"<tr><td>Lane {n}</td><td>{n * 400} m</td></tr>" for n in range(1, 4))
    article = f"{story()}<table><tr><th>Lane</th><th>Length</th></tr>{rows}</table><p>{STORY[0]}</p>"
    document = load_html(news_page(article), source="s", fallback_title="f")
    text = "\n\n".join(page.text for page in document.pages)
    assert "Lane | Length\nLane 1 | Length: 400 m\nLane 2 | Length: 800 m" in text
    assert sum(page.tables for page in document.pages) == 1


def test_a_layout_table_is_read_as_paragraphs_not_rows() -> None:
    layout = (
        "<table><tr><td><h2>Menu</h2><p>Soup of the day.</p></td><td><p>Fresh bread.</p></td></tr></table>"
    )
    document = load_html(f"<body>{layout}</body>".encode(), source="s", fallback_title="f")
    assert document.pages[0].text == "Menu\n\nSoup of the day.\n\nFresh bread."
    assert document.pages[0].tables == 0


def test_a_huge_table_is_cut_at_the_row_limit() -> None:
    rows = "".join(f"<tr><td>r{n}</td><td>{n}</td></tr>" for n in range(html.MAX_TABLE_ROWS + 50))
    data = f"<body><table><tr><th>k</th><th>v</th></tr>{rows}</table></body>".encode()
    text = load_html(data, source="s", fallback_title="f", main_content=False).pages[0].text
    assert len(text.splitlines()) == html.MAX_TABLE_ROWS


def test_preformatted_code_keeps_its_lines() -> None:
    data = b"<body><p>Run:</p><pre>make\n  make install\n</pre></body>"
    assert load_html(data, source="s", fallback_title="f").pages[0].text == "Run:\n\nmake\n  make install"


def test_a_headings_permalink_glyph_is_not_part_of_the_section_name() -> None:
    data = b'<body><h2>Setup<a class="headerlink" href="#setup">\xc2\xb6</a></h2><p>Install it.</p></body>'
    assert load_html(data, source="s", fallback_title="f").pages[0].section == "Setup"


def test_html_nested_deeper_than_the_parser_reads_is_a_warning_not_a_crash() -> None:
    data = ("<body><p>Before the pit.</p>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "</body>").encode()
    document = load_html(data, source="s", fallback_title="f")
    assert document.pages[0].text.startswith("Before the pit.")
    assert document.warnings == ["HTML nested deeper than 256 elements: the deeper part was not read"]


def test_a_page_without_text_is_a_load_error() -> None:
    for data in (b"", b"<html><head><style>p {}</style></head><body><script>x()</script></body></html>"):
        try:
            load_html(data, source="s", fallback_title="f")
        except LoadError as exc:
            assert str(exc) == "no text found in HTML"
        else:
            raise AssertionError(f"{data!r} loaded")


SQUAD_PAGES = Path(__file__).resolve().parents[2].parent / "shared" / "eval" / "squad-dev" / "corpus_html"


@pytest.mark.skipif(not SQUAD_PAGES.is_dir(), reason="../shared/eval/squad-dev is absent")
def test_every_squad_paragraph_keeps_its_id_and_its_exact_text() -> None:
    """The retrieval evaluation scores chunks by the `<p id>` they cover: every id must come through."""
    for path in sorted(SQUAD_PAGES.glob("*.html")):
        tree = lxml.html.document_fromstring(path.read_bytes())
        expected = {p.get("id"): " ".join(p.text_content().split()) for p in tree.iter("p") if p.get("id")}
        document = load_html(path.read_bytes(), source=str(path), fallback_title=path.name)
        spans = {a.id: page.text[a.start : a.end] for page in document.pages for a in page.anchors}
        assert spans == expected, path.name


def test_headings_that_main_content_extraction_leaves_out_are_put_back_as_sections() -> None:
    page = [
        html.Block("h1", "Cycle lanes approved"),
        html.Block("p", STORY[0]),
        html.Block("p", "Weather News Sport"),
        html.Block("h2", "Route"),
        html.Block("p", STORY[2]),
        html.Block("h2", "Shops"),
        html.Block("p", STORY[3]),
    ]
    main = [
        html.Block("p", STORY[0]),
        html.Block("p", STORY[2]),
        html.Block("h2", "Shops"),
        html.Block("p", STORY[3]),
    ]
    merged = html._with_headings(main, page)
    # "Route" returns before the paragraph it headed; the title above the first block and chrome do not
    assert [b.text for b in merged] == [STORY[0], "Route", STORY[2], "Shops", STORY[3]]


def test_a_small_page_whose_headings_trafilatura_drops_keeps_its_sections() -> None:
    page = (
        b"<html><head><title>Heat pumps</title></head><body><h1>Heat pumps</h1><p>An air source heat pump"
        b" moves heat from outside air into the home.</p><h2>Noise</h2><p>A modern heat pump is about as loud"
        b" as a fridge at one metre.</p></body></html>"
    )
    document = load_html(page, source="s", fallback_title="f")
    assert [p.section for p in document.pages] == ["Heat pumps", "Noise"]
