"""The extraction report (ingest/report.py) kept with each source record, failures that are failures, the
same bytes under a second URI skipped, and the 0001 -> 0002 migration that made room for the report: on real
documents the tests make, the real pipeline, Chroma and SQLite (and PostgreSQL for the migration)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import inspect, text

from core.services import Services
from core.settings import Settings
from core.storage.db import check_schema, current_revision, head_revision, make_engine, upgrade
from core.storage.sources import SourceCatalog, SourceRecord
from ingest.document import LoadedDocument, Page
from ingest.pipeline import Ingestor, IngestSummary
from ingest.report import LISTED_PAGES, ExtractionReport, extraction_report
from tests.fixtures_http import Reply, serving
from tests.helpers import SAMPLE_CORPUS, docent_env, run_docent

SAMPLE_PDF = SAMPLE_CORPUS / "compost-field-guide.pdf"
NOTES = "Bleed radiators every autumn so that trapped air does not keep them cold at the top.\n"


def _run(services: Services, *items: Path | str, prune: bool = False) -> IngestSummary:
    return Ingestor(services.settings, services.embedder, services.store).run(
        [str(i) for i in items], prune=prune
    )


def _record(services: Services, path: Path | str) -> SourceRecord | None:
    uri = str(path.resolve()) if isinstance(path, Path) else path
    return services.store.sources.by_uri("docent", uri)


def _statuses(summary: IngestSummary) -> dict[str, tuple[str, str | None]]:
    return {Path(r.source).name: (r.status, r.reason) for r in summary.results}


def _blank_pdf(pages: int) -> bytes:
    """A PDF whose pages hold neither text nor images."""
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# The report itself.


def test_report_counts_pages_characters_empty_and_ocr_pages_tables_and_warnings() -> None:
    document = LoadedDocument(
        source="scan.pdf",
        title="Scan",
        kind="pdf",
        pages=[
            Page("Heat pumps move heat.", page=1, section="Intro"),
            Page("Rows of figures", page=1, section="Figures", tables=2),
            Page("Recognised from the image", page=3, ocr=True),
            Page("More recognised text", page=3, ocr=True, tables=1),
        ],
        page_count=4,
        warnings=["page 2: no text, even after OCR", "page 4: no text, even after OCR"],
        empty_pages=[4, 2],
    )
    report = extraction_report(document)
    characters = sum(len(p.text) for p in document.pages)
    assert report == ExtractionReport(
        pages=4,
        units=4,
        characters=characters,
        characters_per_page=round(characters / 4),
        empty_pages=2,
        ocr_pages=1,
        tables=3,
        warnings=2,
        empty_page_numbers=[2, 4],
        ocr_page_numbers=[3],
        warning_messages=document.warnings,
    )
    assert report.headline() == (
        f"4 pages, {report.characters_per_page} characters/page, 2 empty, 1 OCR'd, 3 tables, 2 warnings"
    )
    assert ExtractionReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_report_lists_at_most_the_first_pages_but_counts_them_all() -> None:
    scanned = [Page(f"page {n}", page=n, ocr=True) for n in range(1, 201)]
    document = LoadedDocument(
        "big.pdf", "Big", "pdf", scanned, page_count=300, empty_pages=list(range(201, 301))
    )
    report = extraction_report(document)
    assert (report.ocr_pages, report.empty_pages) == (200, 100)
    assert report.ocr_page_numbers == list(range(1, LISTED_PAGES + 1))
    assert report.empty_page_numbers == list(range(201, 201 + LISTED_PAGES))


def test_a_document_of_empty_pages_says_so_as_its_failure() -> None:
    document = LoadedDocument("scan.pdf", "Scan", "pdf", [], page_count=3, empty_pages=[1, 2, 3])
    report = extraction_report(document)
    assert report.read_nothing
    assert "all 3 pages have no text, even after OCR" in report.nothing_read()
    blank = extraction_report(LoadedDocument("a.html", "A", "html", [Page("   ")]))
    assert blank.read_nothing and "empty once markup and whitespace are removed" in blank.nothing_read()


# Reports stored with the record, and shown.


def test_ingested_pdf_keeps_its_report_with_its_record(services: Services) -> None:
    summary = _run(services, SAMPLE_PDF)
    record = _record(services, SAMPLE_PDF)
    assert record is not None and record.report is not None
    report = ExtractionReport.from_dict(record.report)
    assert (report.pages, report.empty_pages, report.ocr_pages) == (4, 0, 0)
    assert report.units >= 4 and report.characters > 4 * 500
    assert report.characters_per_page == round(report.characters / 4)
    assert summary.results[0].report == record.report  # the run reports what the record keeps
    again = _run(services, SAMPLE_PDF)
    assert [(r.status, r.report) for r in again.results] == [("unchanged", record.report)]


def test_sources_show_prints_the_report_and_json_includes_it(tmp_path: Path) -> None:
    env = docent_env(tmp_path / "data")
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    assert run_docent(["ingest", str(SAMPLE_PDF), str(notes)], env).returncode == 0
    shown = run_docent(["sources", "show", str(SAMPLE_PDF)], env)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split("  ")[0]: line for line in shown.stdout.splitlines()}
    assert "pages               4" in lines["pages"], shown.stdout
    assert lines["pages with no text"].split()[-1] == "0"
    assert lines["pages OCR'd"].split()[-1] == "0"
    assert "per page)" in lines["characters"] and "status              ok" in lines["status"]
    as_json = run_docent(["sources", "show", str(notes), "--json"], env)
    report = json.loads(as_json.stdout)["report"]
    assert (report["pages"], report["characters"], report["tables"]) == (1, len(NOTES.strip()), 0)


# Failures are failures.


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.txt", b" \n\t \n"),
        (
            "markup.html",
            b"<html><head><title>T</title></head><body><div> </div><script>x()</script></body></html>",
        ),
        ("blank.pdf", _blank_pdf(2)),
    ],
)
def test_a_source_with_nothing_to_extract_fails_and_stores_no_chunks(
    services: Services, tmp_path: Path, name: str, data: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    summary = _run(services, path)
    [result] = summary.results
    assert result.status == "failed" and result.chunks == 0 and summary.chunks_added == 0
    assert result.reason and any(w in result.reason for w in ("no text", "empty", "no page")), result.reason
    assert summary.all_failed and [p.source for p in summary.failures] == [str(path)]
    record = _record(services, path)
    assert record is not None and record.content_hash is None and record.last_error == result.reason
    assert services.store.keywords.source_ids("docent", str(path)) == set()


def test_a_run_whose_every_item_failed_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    env = docent_env(tmp_path / "data")
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    failed = run_docent(["ingest", str(empty)], env)
    assert failed.returncode == 1
    headline = failed.stdout.splitlines()[0]
    assert headline.startswith("Nothing ingested into collection 'docent': the only item failed"), headline
    assert "failed " + str(empty) in failed.stdout.replace("\n", " ")
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    partly = run_docent(["ingest", str(empty), str(notes), str(tmp_path / "missing.txt")], env)
    assert partly.returncode == 1
    assert partly.stdout.splitlines()[0].endswith("; 2 of 3 items failed"), partly.stdout
    assert f"read {notes}: 1 page, " in partly.stdout.replace("\n", " ")


# The same bytes under another URI.


def test_the_same_document_by_url_and_by_file_is_stored_once(services: Services, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    with serving({"/notes.txt": Reply(NOTES.encode(), content_type="text/plain")}) as site:
        url = site.url("/notes.txt")
        first = _run(services, url)
        assert [r.status for r in first.results] == ["added"]
        second = _run(services, notes)
    [result] = second.results
    assert (result.status, result.same_as, result.reason) == ("duplicate", url, f"same content as {url}")
    assert second.sources_duplicate == 1 and second.chunks_added == 0 and not second.failures
    assert _record(services, notes) is None
    assert [r.uri for r in services.store.sources.list("docent")] == [url]


def test_copies_in_one_run_are_stored_once_and_the_first_in_order_is_kept(
    services: Services, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(NOTES)
    (folder / "b.txt").write_text(NOTES)
    summary = _run(services, folder)
    assert _statuses(summary) == {
        "a.txt": ("added", None),
        "b.txt": ("duplicate", f"same content as {folder.resolve() / 'a.txt'}"),
    }
    again = _run(services, folder)
    assert _statuses(again)["b.txt"][0] == "duplicate" and again.chunks_added == 0


def test_a_skipped_copy_is_ingested_once_its_twin_is_pruned(services: Services, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(NOTES)
    _run(services, folder)
    shutil.move(folder / "a.txt", folder / "b.txt")  # renamed: the old record goes, the bytes must stay
    summary = _run(services, folder, prune=True)
    assert _statuses(summary) == {"b.txt": ("added", None), "a.txt": ("removed", None)}
    assert [Path(r.uri).name for r in services.store.sources.list("docent")] == ["b.txt"]
    assert services.store.keywords.count("docent") == summary.results[0].chunks > 0


def test_a_stored_source_whose_bytes_become_another_ones_is_updated_not_skipped(
    services: Services, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(NOTES)
    b.write_text("Loft insulation: lay 270 mm of mineral wool between the joists.\n")
    _run(services, a, b)
    b.write_text(NOTES)
    summary = _run(services, b)
    assert _statuses(summary) == {"b.txt": ("updated", None)}  # else its old text would stay indexed
    found = {chunk for chunk, _ in services.store.keywords.search("docent", "mineral wool joists", 5)}
    assert not found & services.store.keywords.source_ids("docent", str(b))


# The migration that added the report.


def test_a_database_at_revision_0001_upgrades_keeping_its_sources(db_settings: Settings) -> None:
    engine = make_engine(db_settings)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO sources (collection, id, uri, content_hash, title, kind, pages, chunks,"
                    " embedding_model, chunking, ingested_at, last_error) VALUES ('docent', 'abc',"
                    " 'notes.md', 'h', 'Notes', 'markdown', 1, 2, 'm', '1000/150',"
                    " '2026-01-01T00:00:00+00:00', NULL)"
                )
            )
        assert "report" not in {c["name"] for c in inspect(engine).get_columns("sources")}
        assert upgrade(engine) == ("0001", head_revision())
        check_schema(engine)
        [old] = SourceCatalog(engine).list("docent")
        assert (old.uri, old.chunks, old.report) == ("notes.md", 2, None)
        report = {"pages": 1, "characters": 40}
        with engine.begin() as connection:
            SourceCatalog.put(connection, SourceRecord(**{**old.to_dict(), "report": report}))
        assert SourceCatalog(engine).get("docent", "abc") == SourceRecord(
            **{**old.to_dict(), "report": report}
        )
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
