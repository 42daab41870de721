"""Sources are first-class: a record per source, unchanged ones skipped before parsing, changed ones replaced,
vanished ones pruned, and `docent sources list|show|remove` over the real console command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ingest.pipeline
from core.retrieval.chunk_store import ChunkStore
from core.services import Services
from core.storage.sources import content_hash, source_id
from ingest.pipeline import Ingestor, IngestSummary
from tests.helpers import docent_env, run_docent

PAGE = """<html><head><title>{title}</title></head><body><h1>{title}</h1>
<p>{body}</p><h2>More</h2><p>Radiator reflector panels bounce heat back into the room.</p></body></html>"""


def _page(title: str, body: str) -> str:
    return PAGE.format(title=title, body=body)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lofts.html").write_text(_page("Lofts", "Lay 270 mm of mineral wool between the joists."))
    (docs / "walls.html").write_text(
        _page("Walls", "Cavity wall insulation is blown in through small holes.")
    )
    return docs


def _run(services: Services, *items: Path | str, prune: bool = False) -> IngestSummary:
    ingestor = Ingestor(services.settings, services.embedder, services.store)
    return ingestor.run([str(i) for i in items], prune=prune)


def _chunk_ids(store: ChunkStore, source: Path) -> tuple[set[str], set[str]]:
    uri = str(source.resolve())
    return store.vectors.source_ids("docent", uri), store.keywords.source_ids("docent", uri)


def _status(summary: IngestSummary) -> dict[str, str]:
    return {Path(r.source).name: r.status for r in summary.results}


def test_ingested_source_has_a_record_with_hash_title_kind_pages_chunks_and_model(
    services: Services, folder: Path
) -> None:
    _run(services, folder)
    lofts = folder / "lofts.html"
    record = services.store.sources.by_uri("docent", str(lofts.resolve()))
    assert record is not None
    assert record.id == source_id(str(lofts.resolve()))
    assert record.content_hash == content_hash(lofts.read_bytes())
    assert (record.title, record.kind, record.pages) == ("Lofts", "html", 1)
    assert record.chunks == len(_chunk_ids(services.store, lofts)[0]) > 0
    assert record.embedding_model == services.embedder.model_id
    assert record.ingested_at is not None and record.last_error is None


def test_unchanged_source_is_skipped_without_parsing_or_embedding(
    services: Services, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _run(services, folder)
    calls: dict[str, int] = {"parse": 0, "embed": 0}

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(ingest.pipeline, "_parse", counting("parse", ingest.pipeline._parse))
    monkeypatch.setattr(services.embedder, "embed", counting("embed", services.embedder.embed))
    second = _run(services, folder)
    assert calls == {"parse": 0, "embed": 0}
    assert _status(second) == {"lofts.html": "unchanged", "walls.html": "unchanged"}
    assert second.sources_unchanged == 2 and second.chunks_added == 0
    assert second.chunks_skipped == first.chunks_added


def test_changed_source_replaces_its_chunks_in_both_indexes_and_its_record(
    services: Services, folder: Path
) -> None:
    _run(services, folder)
    walls = folder / "walls.html"
    old_vectors, old_keywords = _chunk_ids(services.store, walls)
    walls.write_text(_page("Walls", "External wall insulation adds boards and render outside."))
    summary = _run(services, folder)
    new_vectors, new_keywords = _chunk_ids(services.store, walls)
    assert _status(summary) == {"lofts.html": "unchanged", "walls.html": "updated"}
    gone = old_vectors - new_vectors  # the changed paragraph's chunk; the unchanged section keeps its id
    assert old_vectors == old_keywords and new_vectors == new_keywords
    assert gone and summary.chunks_removed == len(gone)
    record = services.store.sources.by_uri("docent", str(walls.resolve()))
    assert record is not None and record.content_hash == content_hash(walls.read_bytes())
    assert services.store.keywords.search("docent", "cavity blown", 5) == []


def test_prune_removes_sources_that_vanished_from_the_directory(services: Services, folder: Path) -> None:
    _run(services, folder)
    lofts = folder / "lofts.html"
    uri = str(lofts.resolve())
    lofts.unlink()
    kept = _run(services, folder)
    assert services.store.sources.by_uri("docent", uri) is not None and kept.sources_removed == 0
    pruned = _run(services, folder, prune=True)
    assert pruned.sources_removed == 1 and _status(pruned)["lofts.html"] == "removed"
    assert services.store.sources.by_uri("docent", uri) is None
    assert _chunk_ids(services.store, lofts) == (set(), set())
    assert [r.uri for r in services.store.sources.list("docent")] == [str((folder / "walls.html").resolve())]


def test_failed_source_records_its_last_error_and_keeps_its_stored_version(
    services: Services, folder: Path
) -> None:
    _run(services, folder)
    walls = folder / "walls.html"
    chunks_before = _chunk_ids(services.store, walls)
    walls.write_text("<html><body><script>only script</script></body></html>")
    failed = _run(services, walls)
    record = services.store.sources.by_uri("docent", str(walls.resolve()))
    assert failed.failures and record is not None
    assert record.last_error == "no text found in HTML"
    assert record.content_hash is not None and record.chunks > 0  # the last good version is still served
    assert _chunk_ids(services.store, walls) == chunks_before


def test_removing_a_source_drops_its_chunks_and_its_record(services: Services, folder: Path) -> None:
    _run(services, folder)
    lofts = folder / "lofts.html"
    removed = services.store.remove_source("docent", str(lofts.resolve()))
    assert removed > 0
    assert _chunk_ids(services.store, lofts) == (set(), set())
    assert services.store.sources.by_uri("docent", str(lofts.resolve())) is None


# The console commands, as users run them.


def test_sources_commands_list_show_and_remove_a_source(tmp_path: Path, folder: Path) -> None:
    env = docent_env(tmp_path / "data")
    assert run_docent(["ingest", str(folder), "--json"], env).returncode == 0
    listed = run_docent(["sources", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [Path(r["uri"]).name for r in records] == ["lofts.html", "walls.html"]
    lofts = records[0]
    removed = run_docent(["sources", "remove", str(folder / "lofts.html")], env)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {lofts['uri']} ({lofts['chunks']} chunks)" in removed.stdout
    missing = run_docent(["sources", "show", lofts["id"]], env)
    assert missing.returncode == 1 and "no source" in missing.stderr
    shown = run_docent(["sources", "show", records[1]["id"], "--json"], env)
    assert json.loads(shown.stdout) == records[1]
