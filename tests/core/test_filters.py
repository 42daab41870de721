"""Metadata filters: the CLI and JSON forms, each field inside each index (Chroma's `where`, the keyword
index's SQL on SQLite FTS5 and on PostgreSQL), applied before the top k and before fusion, and on chunks
ingested before filters existed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from langchain_core.runnables import RunnableConfig
from sqlalchemy import Engine, text

from bench.support.chroma import ChromaServer
from core.retrieval.filters import (
    MAX_VALUES,
    SearchFilter,
    chunk_filter_metadata,
    describe,
    filter_from_mapping,
    parse_filter,
)
from core.retrieval.keyword_index import TOKENIZER, KeywordIndex, fts_table
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.vector_store import VectorStore, open_vector_store
from core.services import Services
from core.settings import Settings
from core.storage.db import make_engine, upgrade
from core.types import RetrieverMode
from ingest.pipeline import Ingestor
from tests.helpers import SAMPLE_CORPUS

# ------------------------------------------------------------------------------------------ the two forms


def test_the_cli_form_reads_every_key_repeats_and_commas_inside_a_value() -> None:
    found = parse_filter(
        "source=ADOBE_2022_10K.pdf, source=b.pdf,kind=pdf,title=Hot, cold and in between,section=Soil,"
        "page=50-60,ingested_after=2026-11-01,ingested_before=2026-12-01T12:30:00+01:00"
    )
    assert found == SearchFilter(
        sources=("ADOBE_2022_10K.pdf", "b.pdf"),
        kinds=("pdf",),
        titles=("Hot, cold and in between",),
        sections=("Soil",),
        page_from=50,
        page_to=60,
        ingested_after=datetime(2026, 11, 1, tzinfo=UTC),
        ingested_before=datetime(2026, 12, 1, 11, 30, tzinfo=UTC),
    )
    assert parse_filter("page=7") == SearchFilter(page_from=7, page_to=7)
    assert parse_filter("page_from=3") == SearchFilter(page_from=3)
    assert parse_filter(describe(found)) == found
    assert filter_from_mapping(found.to_mapping()) == found


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty filter"),
        ("colour=red", "unknown filter key 'colour'"),
        ("source", "is not key=value"),
        ("page=60-50", r"page_from \(60\) is after page_to \(50\)"),
        ("page=three", "page must be a page"),
        ("page=0", "page_from must be a whole number from 1"),
        ("page=4,page_to=6", "given twice"),
        ("ingested_after=yesterday", "ISO 8601"),
        ("ingested_after=2026-12-01,ingested_before=2026-11-01", "must be earlier than"),
        ("source=", "a value is empty"),
    ],
)
def test_a_bad_cli_filter_is_refused_saying_what_is_wrong(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_filter(given)


def test_the_json_form_takes_strings_or_lists_and_refuses_anything_else() -> None:
    assert filter_from_mapping({"source": "a.pdf", "kind": ["pdf", "html"], "page_to": 4}) == SearchFilter(
        sources=("a.pdf",), kinds=("pdf", "html"), page_to=4
    )
    assert filter_from_mapping({}).is_empty() and filter_from_mapping({"source": None}).is_empty()
    for bad, message in (
        ({"sources": "a.pdf"}, "unknown filter key sources"),
        ({"source": []}, "at least one value"),
        ({"source": [1]}, "list of strings"),
        ({"page_from": True}, "whole number"),
        ({"page_from": "3"}, "whole number"),
        ({"source": ["x"] * (MAX_VALUES + 1)}, f"at most {MAX_VALUES} values"),
        ({"title": "a\x00b"}, "NUL"),
        ({"ingested_before": 20261101}, "ISO 8601"),
        ({"ingested_after": "9999-12-31T23:00:00-05:00"}, "out of range"),
    ):
        with pytest.raises(ValueError, match=message):
            filter_from_mapping(bad)


def test_a_chunk_carries_its_sources_file_name_stem_and_time_of_ingest() -> None:
    assert chunk_filter_metadata("/data/ADOBE_2022_10K.pdf", "2026-11-01T00:00:10+00:00") == {
        "source_name": "ADOBE_2022_10K.pdf",
        "source_stem": "ADOBE_2022_10K",
        "ingested_at": 1793491210,
    }
    assert chunk_filter_metadata("https://example.com/docs/faq%20page.html?x=1", None) == {
        "source_name": "faq page.html",
        "source_stem": "faq page",
    }
    assert chunk_filter_metadata("https://example.com/", None) == {}


# ------------------------------------------------------------------------------------------ each index

GUIDE, NOTES, FAQ = "/corpus/guide.pdf", "/corpus/notes.html", "https://example.com/docs/faq.html"
ROWS: dict[str, tuple[str, dict[str, object], str | None]] = {
    "a1": (GUIDE, {"title": "Guide", "kind": "pdf", "page": 1}, "2026-01-10T00:00:00+00:00"),
    "a2": (GUIDE, {"title": "Guide", "kind": "pdf", "page": 5}, "2026-01-10T00:00:00+00:00"),
    "a3": (GUIDE, {"title": "Guide", "kind": "pdf", "page": 9}, "2026-01-10T00:00:00+00:00"),
    "b1": (NOTES, {"title": "Notes", "kind": "html", "section": "Soil"}, "2026-03-01T00:00:00+00:00"),
    "b2": (NOTES, {"title": "Notes", "kind": "html", "section": "Worms"}, "2026-03-01T00:00:00+00:00"),
    "c1": (FAQ, {"title": "FAQ", "kind": "html", "section": "Soil"}, "2026-06-01T00:00:00+00:00"),
    "legacy": ("/corpus/old.txt", {}, None),  # written before filters: only its source
}
"""Chunks, each about compost, with their source, split metadata and time of ingest."""
EVERY = set(ROWS)
CASES: list[tuple[dict[str, object], set[str]]] = [
    ({}, EVERY),
    ({"source": GUIDE}, {"a1", "a2", "a3"}),  # the stored URI
    ({"source": "guide.pdf"}, {"a1", "a2", "a3"}),  # its file name
    ({"source": "guide"}, {"a1", "a2", "a3"}),  # its stem
    ({"source": "faq.html"}, {"c1"}),  # a URL's last segment
    ({"source": FAQ}, {"c1"}),
    ({"source": "/corpus/old.txt"}, {"legacy"}),  # the source URI, which every row always had
    ({"source": ["guide", "notes.html"]}, {"a1", "a2", "a3", "b1", "b2"}),
    ({"source": "Guide.pdf"}, set()),  # exact, case-sensitive
    ({"kind": "html"}, {"b1", "b2", "c1"}),
    ({"kind": ["pdf", "html"]}, EVERY - {"legacy"}),
    ({"title": "Notes"}, {"b1", "b2"}),
    ({"section": "Soil"}, {"b1", "c1"}),
    ({"page_from": 5}, {"a2", "a3"}),
    ({"page_to": 5}, {"a1", "a2"}),
    ({"page_from": 5, "page_to": 5}, {"a2"}),
    ({"ingested_after": "2026-02-01"}, {"b1", "b2", "c1"}),
    ({"ingested_before": "2026-02-01"}, {"a1", "a2", "a3"}),
    ({"ingested_after": "2026-02-01", "ingested_before": "2026-05-01"}, {"b1", "b2"}),
    ({"ingested_after": "2026-03-01T00:00:00Z"}, {"c1"}),  # strictly after
    ({"kind": "html", "section": "Soil", "ingested_after": "2026-04-01"}, {"c1"}),
    ({"kind": "pdf", "section": "Soil"}, set()),
]


def _metadata(chunk_id: str) -> dict[str, str | int | float | bool]:
    source, split, ingested_at = ROWS[chunk_id]
    base: dict[str, str | int | float | bool] = {"source": source, **split}  # type: ignore[dict-item]
    if chunk_id == "legacy":
        return base
    return {**base, **chunk_filter_metadata(source, ingested_at)}


def _ids(found: list[tuple[str, float]]) -> set[str]:
    return {chunk_id for chunk_id, _ in found}


@pytest.fixture
def keywords(engine: Engine) -> KeywordIndex:
    index = KeywordIndex(engine)
    ids = list(ROWS)
    texts = [f"Compost notes {i}: turn the compost pile." for i in ids]
    index.upsert("docent", ids, texts, [ROWS[i][0] for i in ids], [_metadata(i) for i in ids])
    return index


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_each_field_filters_inside_the_keyword_index_on_both_databases(
    keywords: KeywordIndex, given: dict[str, object], expected: set[str]
) -> None:
    where = filter_from_mapping(given)
    assert _ids(keywords.search("docent", "compost pile", 20, where=where)) == expected


@pytest.fixture
def vectors(settings: Settings) -> Iterator[VectorStore]:
    store = open_vector_store(settings, model_id="test-model", dimension=8)
    rows = np.random.default_rng(0).random((len(ROWS), 8)).astype(np.float32)
    store.add("docent", list(ROWS), list(ROWS), [_metadata(i) for i in ROWS], rows)
    yield store
    store.close()


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_each_field_filters_inside_chromas_query(
    vectors: VectorStore, given: dict[str, object], expected: set[str]
) -> None:
    where = filter_from_mapping(given)
    query = np.ones(8, dtype=np.float32) / np.sqrt(8)
    assert {p["chunk_id"] for p in vectors.search("docent", query, 20, where=where)} == expected


def test_the_keyword_index_filters_before_its_top_k(engine: Engine) -> None:
    index = KeywordIndex(engine)
    crowd = [f"a{i}" for i in range(30)]
    index.upsert(
        "docent",
        [*crowd, "rare"],
        [*(["Volcano volcano volcano eruption."] * 30), "A long note on many things, a volcano among them."],
        [*(["crowd.html"] * 30), "rare.html"],
        [*([chunk_filter_metadata("crowd.html", None)] * 30), chunk_filter_metadata("rare.html", None)],
    )
    assert "rare" not in _ids(index.search("docent", "volcano", 3))
    assert _ids(index.search("docent", "volcano", 3, where=SearchFilter(sources=("rare",)))) == {"rare"}


def test_a_filtered_bm25_ranking_is_the_unfiltered_one_restricted_to_what_matches(engine: Engine) -> None:
    index = KeywordIndex(engine)
    ids = [f"c{i}" for i in range(40)]
    texts = [f"{'soil ' * (i % 7 + 1)}worms and {'leaves ' * (i // 7)}in note" for i in range(40)]  # no ties
    pages = [{"page": i % 10 + 1, "kind": "pdf" if i % 3 else "html"} for i in range(40)]
    index.upsert("docent", ids, texts, ["s.pdf"] * 40, pages)
    everything = [chunk_id for chunk_id, _ in index.search("docent", "soil leaves", 100)]
    where = SearchFilter(kinds=("pdf",), page_from=2, page_to=8)
    allowed = {i for i, p in zip(ids, pages, strict=True) if p["kind"] == "pdf" and 2 <= int(p["page"]) <= 8}
    filtered = [chunk_id for chunk_id, _ in index.search("docent", "soil leaves", 5, where=where)]
    assert filtered == [chunk_id for chunk_id in everything if chunk_id in allowed][:5]


def test_chroma_filters_before_its_top_k(settings: Settings) -> None:
    store = open_vector_store(settings, model_id="test-model", dimension=8)
    try:
        query = np.ones(8, dtype=np.float32) / np.sqrt(8)
        far = np.zeros(8, dtype=np.float32)
        far[0] = 1.0
        rows = np.vstack([np.tile(query, (30, 1)), far[None, :]])
        ids = [*(f"a{i}" for i in range(30)), "rare"]
        store.add("docent", ids, ids, [{"source": "crowd.html"}] * 30 + [{"source": "rare.html"}], rows)
        assert "rare" not in {p["chunk_id"] for p in store.search("docent", query, 3)}
        found = store.search("docent", query, 3, where=SearchFilter(sources=("rare.html",)))
        assert [p["chunk_id"] for p in found] == ["rare"]
    finally:
        store.close()


def test_filter_values_are_bound_never_written_into_the_sql(keywords: KeywordIndex) -> None:
    hostile = "x') OR 1=1 --"
    where = SearchFilter(sources=(hostile,), titles=("Notes' OR '1'='1",), sections=('"; DROP TABLE k; --',))
    assert keywords.search("docent", "compost", 20, where=where) == []
    assert len(_ids(keywords.search("docent", "compost", 20))) == len(ROWS)


# ------------------------------------------------------------------------------------------ the retriever

PLANETS = """<html><head><title>Planets</title></head><body>
<h2>Giants</h2><p>Jupiter is the largest planet; its Great Red Spot is a storm older than 350 years.</p>
<h2>Rings</h2><p>Saturn's rings are made mostly of water ice, with some rocky debris and dust.</p>
</body></html>"""
OCEANS = """<html><head><title>Oceans</title></head><body>
<h2>Trenches</h2><p>The Mariana Trench in the Pacific Ocean reaches a depth of about 10,994 metres.</p>
</body></html>"""
TRENCH = "How deep is the Mariana Trench in the Pacific Ocean?"


def _open(settings: Settings, embedder: OnnxMiniLMEmbedder) -> Services:
    if settings.server_mode:  # `docent db upgrade` first, as a server needs
        migrating = make_engine(settings)
        upgrade(migrating)
        migrating.dispose()
    return Services(settings, embedder=embedder)


def _ingest(services: Services, *paths: Path) -> None:
    summary = Ingestor(services.settings, services.embedder, services.store).run([str(p) for p in paths])
    assert not summary.failures and summary.chunks_added > 0


@pytest.fixture
def corpus(db_settings: Settings) -> Path:
    """Two web pages and the sample PDF, inside the data dir (answers show them by their path there)."""
    folder = db_settings.data_dir / "docs"
    folder.mkdir(parents=True)
    (folder / "planets.html").write_text(PLANETS)
    (folder / "oceans.html").write_text(OCEANS)
    shutil.copy(SAMPLE_CORPUS / "compost-field-guide.pdf", folder)
    return folder


def _search(services: Services, mode: RetrieverMode, where: SearchFilter | None, k: int = 5) -> list[str]:
    found = services.retriever.search(TRENCH, k=k, collection="docent", mode=mode, where=where)
    return [p["source"] for p in found]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_filtered_out_chunk_never_appears_even_as_the_top_hit_of_both_indexes(
    db_settings: Settings, embedder: OnnxMiniLMEmbedder, corpus: Path, mode: RetrieverMode
) -> None:
    services = _open(db_settings, embedder)
    try:
        _ingest(services, corpus)
        for each in ("dense", "bm25"):  # the ocean chunk is the best hit of each index unfiltered
            assert _search(services, each, None)[0] == "docs/oceans.html"
        where = SearchFilter(sources=("docs/planets.html",))  # the path answers show
        found = _search(services, mode, where, k=1)
        if mode != "bm25":  # BM25 finds nothing of the planets page in a question about trenches
            assert found == ["docs/planets.html"]  # the best of what the filter lets through
        assert all(s == "docs/planets.html" for s in _search(services, mode, where))
        assert set(_search(services, mode, SearchFilter(kinds=("pdf",)))) <= {"docs/compost-field-guide.pdf"}
        assert _search(services, mode, SearchFilter(ingested_after=datetime(2100, 1, 1))) == []
        assert _search(services, mode, SearchFilter(sections=("Trenches",)))[:1] == ["docs/oceans.html"]
    finally:
        services.close()


def test_follow_up_searches_and_the_page_range_are_filtered_in_every_query(
    db_settings: Settings, embedder: OnnxMiniLMEmbedder, corpus: Path
) -> None:
    services = _open(db_settings, embedder)
    try:
        _ingest(services, corpus)
        where = SearchFilter(sources=("compost-field-guide.pdf",), page_from=2, page_to=3)
        found = services.retriever.search_all(
            ["What does a compost pile need?", "How hot should it get?"],
            k=10,
            collection="docent",
            mode="hybrid",
            where=where,
        )
        assert found and all(p["source"].endswith("compost-field-guide.pdf") for p in found)
        assert {p["page"] for p in found} <= {2, 3}
        # As many relative paths as a request may give, each also looked for under the data dir and cwd.
        paths = SearchFilter(sources=tuple(f"docs/missing-{i}.html" for i in range(MAX_VALUES - 1)))
        assert services.retriever.search(TRENCH, k=3, collection="docent", where=paths) == []
    finally:
        services.close()


def test_a_chroma_server_and_postgresql_filter_the_same_way(
    pg_url: str, tmp_path: Path, embedder: OnnxMiniLMEmbedder
) -> None:
    with ChromaServer(tmp_path / "chroma-server") as chroma:
        settings = Settings(data_dir=tmp_path / "data", database_url=pg_url, chroma_url=chroma.url)
        folder = tmp_path / "docs"
        folder.mkdir()
        (folder / "planets.html").write_text(PLANETS)
        (folder / "oceans.html").write_text(OCEANS)
        services = _open(settings, embedder)
        try:
            _ingest(services, folder)
            where = SearchFilter(sources=("planets",), sections=("Giants",))
            for mode in ("dense", "bm25", "hybrid"):
                found = services.retriever.search(
                    "Great Red Spot storm in the Mariana Trench",
                    k=5,
                    collection="docent",
                    mode=mode,
                    where=where,
                )
                assert [(Path(p["source"]).name, p["section"]) for p in found] == [("planets.html", "Giants")]
        finally:
            services.close()


# ------------------------------------------------------------------------------------------ older chunks


def _write_as_revision_0003(engine: Engine, chunk_id: str, text_: str, source: str) -> None:
    """A keyword row as Docent wrote it before migration 0004: its four columns (and, in SQLite, its FTS5
    row)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO keyword_chunks (collection, chunk_id, source, text)"
                " VALUES ('docent', :chunk_id, :source, :text)"
            ),
            {"chunk_id": chunk_id, "source": source, "text": text_},
        )
        if engine.dialect.name == "sqlite":
            table = fts_table("docent")
            connection.exec_driver_sql(
                f"CREATE VIRTUAL TABLE {table} USING fts5(text, content = '', tokenize = '{TOKENIZER}')"
            )
            connection.exec_driver_sql(
                f"INSERT INTO {table} (rowid, text) SELECT rowid, text FROM keyword_chunks"
            )


def test_rows_from_before_the_filter_columns_are_found_unfiltered_and_match_no_new_field(
    db_settings: Settings,
) -> None:
    engine = make_engine(db_settings)
    try:
        upgrade(engine, "0003")
        _write_as_revision_0003(engine, "old", "Bokashi ferments kitchen scraps.", "/corpus/bokashi.md")
        upgrade(engine)
        index = KeywordIndex(engine)
        assert _ids(index.search("docent", "bokashi", 5)) == {"old"}
        by_uri = SearchFilter(sources=("/corpus/bokashi.md",))
        assert _ids(index.search("docent", "bokashi", 5, where=by_uri)) == {"old"}
        for where in (SearchFilter(sources=("bokashi.md",)), SearchFilter(kinds=("markdown",))):
            assert index.search("docent", "bokashi", 5, where=where) == []
        # A new version of the source fills its columns.
        metadata = {"kind": "markdown", **chunk_filter_metadata("/corpus/bokashi.md", None)}
        index.upsert(
            "docent", ["old"], ["Bokashi ferments kitchen scraps."], ["/corpus/bokashi.md"], [metadata]
        )
        assert _ids(index.search("docent", "bokashi", 5, where=SearchFilter(sources=("bokashi",)))) == {"old"}
    finally:
        engine.dispose()


def test_a_new_version_of_a_source_restamps_its_unchanged_chunks_in_both_indexes(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "planets.html"
    page.write_text(PLANETS)
    _ingest(services, page)
    monkeypatch.setattr("ingest.pipeline.utc_now", lambda: "2100-01-01T00:00:00+00:00")
    page.write_text(PLANETS.replace("</body>", "<h2>Moons</h2><p>Titan has lakes of methane.</p></body>"))
    summary = Ingestor(services.settings, services.embedder, services.store).run([str(page)])
    assert summary.chunks_skipped > 0  # the unchanged chunks were not embedded again
    later = SearchFilter(ingested_after=datetime(2099, 1, 1))
    for mode in ("dense", "bm25"):
        found = services.retriever.search(
            "Jupiter Great Red Spot", k=5, collection="docent", mode=mode, where=later
        )
        assert "Giants" in {p["section"] for p in found}, mode
    with services.keywords.engine.connect() as connection:
        stamps = connection.execute(text("SELECT DISTINCT ingested_at FROM keyword_chunks")).scalars().all()
    assert stamps == [4102444800]


# ------------------------------------------------------------------------------------------ the graph


async def test_the_graph_takes_a_filter_in_a_context_built_from_json_as_studio_sends_it(
    sample_services: Services,
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from graph.build import build_graph

    graph = build_graph(sample_services, InMemorySaver())
    for given in (
        {"sources": ["compost-field-guide.pdf"], "ingested_after": "2000-01-01T00:00:00Z"},  # the dataclass's
        {"source": "compost-field-guide.pdf", "page_from": 1},  # the API's JSON form
    ):
        config: RunnableConfig = {"configurable": {"thread_id": f"studio-{sorted(given)[0]}"}}
        values = await graph.ainvoke(  # type: ignore[call-overload]
            {"message": "What temperature should a hot compost pile reach?"},
            config,
            context={"k": 4, "filter": given},
        )
        assert values["citations"], given
        assert {Path(c["source"]).name for c in values["citations"]} == {"compost-field-guide.pdf"}
