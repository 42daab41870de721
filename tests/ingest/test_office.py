"""Word and PowerPoint files the tests make: what becomes a unit, and how hostile or broken ones fail."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import docx
import pytest

from core.retrieval.chunk_store import ChunkStore
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.retriever import Retriever
from core.services import Services
from core.settings import Settings
from ingest.document import LoadError, OfficeLimits, ParseOptions, RawSource
from ingest.fetch import FetchPolicy
from ingest.load import fetch_url, load_path, parse
from ingest.pipeline import Ingestor, http_client
from tests.fixtures_http import Reply, serving
from tests.ingest.office_files import heat_pump_docx, prices_xlsx, results_pptx, rewritten, with_member

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SMALL = ParseOptions(office=OfficeLimits(max_unzipped_bytes=4 * 2**20, max_part_bytes=2**20, max_members=100))


def _docx_bytes(tmp_path: Path) -> bytes:
    return heat_pump_docx(tmp_path / "guide.docx").read_bytes()


def _parse(data: bytes, kind: str, options: ParseOptions | None = None) -> str:
    """The LoadError message parsing `data` as `kind` gives (the test fails if it parses)."""
    with pytest.raises(LoadError) as caught:
        parse(RawSource(f"file.{kind}", data, kind, f"file.{kind}"), options)
    return str(caught.value)


# Word


def test_docx_headings_start_sections_with_the_table_where_it_stands(tmp_path: Path) -> None:
    document = load_path(heat_pump_docx(tmp_path / "guide.docx"))
    assert document.kind == "docx"
    assert [(p.section, p.tables) for p in document.pages] == [
        ("Heat pump guide", 0),
        ("Costs", 1),
        ("Savings", 0),
    ]
    assert document.pages[1].text == (
        "Costs\n\nPrices rose between 2022 and 2023.\n\n"
        "Item | 2022 | 2023\nHeat pump | 2022: 7,000 | 2023: 7,500\n"
        "Installation | 2022: 2,000 | 2023: 2,100\n\n"
        "Grants cover part of the installation.\n\n- Ask for three quotes"
    )


def test_docx_title_is_the_documents_own_else_its_first_heading(tmp_path: Path) -> None:
    assert load_path(heat_pump_docx(tmp_path / "a.docx")).title == "Heat pump guide"
    assert load_path(heat_pump_docx(tmp_path / "b.docx", title="Guide 2024")).title == "Guide 2024"


def test_docx_style_based_on_a_heading_is_a_heading_and_heading_5_is_not(tmp_path: Path) -> None:
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document()
    custom = document.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
    custom.base_style = document.styles["Heading 1"]
    document.add_paragraph("Insulation", style="Chapter")
    document.add_paragraph("Lofts first.")
    document.add_heading("Small print", 5)
    document.add_paragraph("Terms apply.")
    document.save(str(tmp_path / "styles.docx"))
    pages = load_path(tmp_path / "styles.docx").pages
    assert [(p.section, p.text) for p in pages] == [
        ("Insulation", "Insulation\n\nLofts first.\n\nSmall print\n\nTerms apply.")
    ]


def test_docx_merged_cell_is_read_once_and_labels_stay_in_their_columns(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    for c, value in enumerate(["Site", "Spring", "Autumn"]):
        table.cell(0, c).text = value
    table.cell(1, 0).merge(table.cell(1, 1)).text = "Closed"
    table.cell(1, 2).text = "Open"
    document.save(str(tmp_path / "merged.docx"))
    assert (
        load_path(tmp_path / "merged.docx").pages[0].text == "Site | Spring | Autumn\nClosed | Autumn: Open"
    )


def test_docx_tracked_insertions_are_read_and_deletions_are_not(tmp_path: Path) -> None:
    from docx.oxml import parse_xml

    document = docx.Document()
    paragraph = document.add_paragraph("Service the boiler ")
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" w:id="1" w:author="A"'
    paragraph._p.append(parse_xml(f"<w:ins {w}><w:r><w:t>every year</w:t></w:r></w:ins>"))
    paragraph._p.append(parse_xml(f"<w:del {w}><w:r><w:delText>every month</w:delText></w:r></w:del>"))
    document.save(str(tmp_path / "tracked.docx"))
    assert load_path(tmp_path / "tracked.docx").pages[0].text == "Service the boiler every year"


def test_docx_without_text_fails(tmp_path: Path) -> None:
    docx.Document().save(str(tmp_path / "blank.docx"))
    with pytest.raises(LoadError, match=r"^no text found in \.docx$"):
        load_path(tmp_path / "blank.docx")


# PowerPoint


def test_pptx_is_one_unit_per_slide_with_title_text_table_and_notes(tmp_path: Path) -> None:
    document = load_path(results_pptx(tmp_path / "results.pptx"))
    assert (document.kind, document.title, document.page_count) == ("pptx", "Quarterly results", 3)
    assert [(p.page, p.section, p.tables) for p in document.pages] == [
        (1, "Quarterly results", 0),
        (2, "Sales by region", 1),
    ]
    assert document.pages[0].text == (
        "Quarterly results\n\nRevenue up 12%\nCosts down 3%\n\nNotes: The new plant in Lyon opened in March."
    )
    assert document.pages[1].text == "Sales by region\n\nRegion | Sales\nNorth | Sales: 40\nSouth | Sales: 55"


def test_pptx_slide_without_text_is_an_empty_page_with_a_warning(tmp_path: Path) -> None:
    document = load_path(results_pptx(tmp_path / "results.pptx"))
    assert document.empty_pages == [3]
    assert document.warnings == ["slide(s) 3 have no text (pictures only?)"]


def test_pptx_slides_past_the_limit_are_not_read_and_that_is_said(tmp_path: Path) -> None:
    data = results_pptx(tmp_path / "results.pptx").read_bytes()
    options = ParseOptions(office=OfficeLimits(max_slides=1))
    document = parse(RawSource("r.pptx", data, "pptx", "r.pptx"), options)
    assert [p.page for p in document.pages] == [1]
    assert document.warnings == ["3 slides: only the first 1 were read (the limit)"]


# Hostile and broken files


def test_docx_zip_bomb_is_refused_from_its_directory_before_anything_is_unpacked(tmp_path: Path) -> None:
    bomb = with_member(_docx_bytes(tmp_path), "word/media/image1.png", 530 * 2**20)
    assert len(bomb) < 3 * 2**20  # 530 MiB of zeros in under 3 MiB
    started = time.perf_counter()
    message = _parse(bomb, "docx")
    total = sum(member.file_size for member in zipfile.ZipFile(io.BytesIO(bomb)).infolist())
    assert message == f".docx would unpack to {total:,} bytes, over the limit of 536,870,912 (a zip bomb?)"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("kind", ["docx", "pptx", "xlsx"])
def test_every_office_kind_refuses_an_archive_past_the_configured_size(tmp_path: Path, kind: str) -> None:
    made = {"docx": heat_pump_docx, "pptx": results_pptx, "xlsx": prices_xlsx}[kind](tmp_path / f"f.{kind}")
    bomb = with_member(made.read_bytes(), "media/zeros.bin", 5 * 2**20)
    assert "over the limit of 4,194,304 (a zip bomb?)" in _parse(bomb, kind, SMALL)


def test_office_file_with_too_many_parts_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO(_docx_bytes(tmp_path))
    with zipfile.ZipFile(out, "a") as archive:
        for n in range(120):
            archive.writestr(f"extra/part{n}.xml", "<a/>")
    assert _parse(out.getvalue(), "docx", SMALL).endswith("parts, over the limit of 100 (a zip bomb?)")


def test_office_xml_part_too_big_to_parse_is_refused(tmp_path: Path) -> None:
    huge = rewritten(_docx_bytes(tmp_path), "word/document.xml", lambda xml: xml + b" " * 2**20)
    assert _parse(huge, "docx", SMALL).startswith(".docx part word/document.xml would unpack to 1,")


def test_billion_laughs_in_a_docx_fails_at_once(tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY e{n} "{f"&e{n - 1};" * 10}">' for n in range(1, 12))
    prolog = f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e0 "lol">{entities}]>'

    def laugh(xml: bytes) -> bytes:
        body = xml.split(b"?>", 1)[1].replace(b"Heat pumps move", b"&e11;")
        return prolog.encode() + body

    started = time.perf_counter()
    assert _parse(rewritten(_docx_bytes(tmp_path), "word/document.xml", laugh), "docx").startswith(
        "corrupt .docx: "
    )
    assert time.perf_counter() - started < 1.0


def test_truncated_docx_is_corrupt(tmp_path: Path) -> None:
    data = _docx_bytes(tmp_path)
    assert _parse(data[: len(data) // 2], "docx") == (
        "corrupt .docx: the zip archive cannot be read (File is not a zip file)"
    )


def test_damaged_member_of_a_docx_is_corrupt(tmp_path: Path) -> None:
    data = bytearray(_docx_bytes(tmp_path))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start : start + 40] = bytes(40)
    assert _parse(bytes(data), "docx").startswith("corrupt .docx: ")


def test_other_files_under_office_names_are_named_for_what_they_are(tmp_path: Path) -> None:
    workbook = prices_xlsx(tmp_path / "p.xlsx").read_bytes()
    document = _docx_bytes(tmp_path)
    assert _parse(workbook, "docx") == "not a .docx: it is a workbook (.xlsx), named or served as .docx"
    assert _parse(document, "pptx") == "not a .pptx: it is a Word document (.docx), named or served as .pptx"
    assert _parse(document, "xlsx").startswith("not a .xlsx: the archive holds no workbook")
    assert _parse(b"%PDF-1.7 not a zip", "docx") == (
        "not a .docx: not a zip archive (another kind of file, named or served as .docx?)"
    )
    assert _parse(b"", "pptx") == "not a .pptx: the file is empty (0 bytes)"


def test_old_binary_office_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    (tmp_path / "minutes.doc").write_bytes(ole)
    with pytest.raises(LoadError) as caught:
        load_path(tmp_path / "minutes.doc")
    assert str(caught.value) == (
        ".doc is the old binary Office format, which Docent cannot read: open it in Office or LibreOffice, "
        "save it as .docx, and ingest that"
    )
    assert _parse(ole, "docx").startswith(
        "not a .docx: this is an old binary Office file (.doc, .xls or .ppt)"
    )
    encrypted = ole + "EncryptedPackage".encode("utf-16-le")
    assert _parse(encrypted, "xlsx") == (
        "encrypted .xlsx: it needs a password; save a copy without one and ingest that instead"
    )


# Fetched by URL: the content type, or a generic one and the URL's suffix, picks the parser


def test_office_files_served_by_content_type_or_by_suffix_are_parsed(tmp_path: Path) -> None:
    data = _docx_bytes(tmp_path)
    routes = {
        "/guide": Reply(data, content_type=DOCX_TYPE),
        "/files/guide.docx": Reply(data, content_type="application/octet-stream"),
        "/results.pptx": Reply(results_pptx(tmp_path / "r.pptx").read_bytes(), content_type=None),
        "/minutes": Reply(b"\xd0\xcf\x11\xe0", content_type="application/msword"),
    }
    policy = FetchPolicy(allow_private=True)
    with serving(routes) as site, http_client(Settings(), policy) as client:
        kinds = {path: fetch_url(site.url(path), client, policy).kind for path in list(routes)[:3]}
        with pytest.raises(LoadError, match=r"^\.doc is the old binary Office format"):
            fetch_url(site.url("/minutes"), client, policy)
    assert kinds == {"/guide": "docx", "/files/guide.docx": "docx", "/results.pptx": "pptx"}


# End to end: each new kind through the real pipeline, and a question finds the right unit


@pytest.fixture
def store(settings: Settings, embedder: OnnxMiniLMEmbedder) -> ChunkStore:
    return Services(settings, embedder=embedder).store


def test_each_new_kind_is_ingested_and_a_question_finds_its_section_slide_or_row(
    tmp_path: Path, settings: Settings, embedder: OnnxMiniLMEmbedder, store: ChunkStore
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    heat_pump_docx(folder / "guide.docx")
    results_pptx(folder / "results.pptx")
    prices_xlsx(folder / "prices.xlsx")
    (folder / "boilers.csv").write_text("Boiler,Efficiency\nCondensing,92%\nNon-condensing,70%\n")
    (folder / "lofts.md").write_text(
        "# Lofts\n\nInsulate first.\n\n## Depth\n\nLay 270 mm of mineral wool.\n"
    )
    summary = Ingestor(settings, embedder, store).run([str(folder)])
    assert summary.failures == [] and summary.sources == 5
    retriever = Retriever(embedder, store, settings)
    try:

        def best(question: str) -> tuple[str, int | None, str | None]:
            top = retriever.search(question, k=1, collection=settings.collection)[0]
            return Path(top["source"]).name, top["page"], top["section"]

        assert best("How much does a heat pump save on heating bills?") == ("guide.docx", None, "Savings")
        assert best("Where did the new plant open?") == ("results.pptx", 1, "Quarterly results")
        assert best("How many units are in the Leeds warehouse?") == ("prices.xlsx", None, "Stock")
        assert best("How efficient is a condensing boiler?") == ("boilers.csv", None, None)
        assert best("How deep should loft mineral wool be?") == ("lofts.md", None, "Depth")
    finally:
        retriever.close()
