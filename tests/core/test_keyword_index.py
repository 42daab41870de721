"""The BM25 keyword index and the source records on both engines: the embedded SQLite file (FTS5) and a real
PostgreSQL (full-text search, a fresh database per test), through the same code and migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from core.retrieval.keyword_index import KeywordIndex, content_words
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from core.storage.db import make_engine, upgrade
from core.storage.models import keyword_chunks
from core.storage.sources import SourceCatalog, SourceRecord, source_id
from ingest.pipeline import Ingestor

DOCS = {
    "c1": "Jupiter is the largest planet; its Great Red Spot is a storm older than 350 years.",
    "c2": "Saturn's rings are made mostly of water ice, with some rocky debris and dust.",
    "c3": "The Mariana Trench in the Pacific Ocean reaches a depth of about 10,994 metres.",
}


@pytest.fixture
def index(engine: Engine) -> KeywordIndex:
    """The three-chunk index of DOCS in collection `docent`, each chunk its own source."""
    keywords = KeywordIndex(engine)
    keywords.upsert("docent", list(DOCS), list(DOCS.values()), [f"{i}.html" for i in DOCS])
    return keywords


def _record(uri: str, *, chunks: int = 1, collection: str = "docent") -> SourceRecord:
    uid = source_id(uri)
    return SourceRecord(
        collection, uid, uri, "hash1", "Title", "html", 1, chunks, "minilm", "800/120", "2026"
    )


def _ids(found: list[tuple[str, float]]) -> list[str]:
    return [chunk_id for chunk_id, _ in found]


def test_search_finds_the_chunk_with_the_query_words_best_first_with_higher_scores_better(
    index: KeywordIndex,
) -> None:
    found = index.search("docent", "How deep is the Mariana Trench?", 3)
    assert _ids(found) == ["c3"]
    assert found[0][1] > 0
    assert _ids(index.search("docent", "storms on the largest planets", 3))[0] == "c1"  # stemmed


def test_a_rare_word_outweighs_a_common_one(engine: Engine) -> None:
    keywords = KeywordIndex(engine)
    texts = [f"apple orchard number {n} grows apple trees" for n in range(8)]
    texts.append("a durian stall and one apple")
    ids = [f"c{n}" for n in range(len(texts))]
    keywords.upsert("docent", ids, texts, ["s"] * len(ids))
    assert _ids(keywords.search("docent", "apple durian", 3))[0] == "c8"


def test_an_adjective_in_y_also_searches_the_noun_the_stemmers_cannot_reach(engine: Engine) -> None:
    """ "smelly" stems to "smelli" and never meets "smells": the query adds "smell" (doubled consonant + y),
    but not "full" for the adverb "fully" or "part" for "party"."""
    assert content_words("a smelly, grassy and chilly pile") == [
        "smelly",
        "smell",
        "grassy",
        "grass",
        "chilly",
        "chill",
        "pile",
    ]
    assert content_words("fully usually party early") == ["fully", "usually", "party", "early"]
    keywords = KeywordIndex(engine)
    texts = ["The pile smells bad when it is too wet.", "A dry pile heats slowly.", "Turn it weekly."]
    keywords.upsert("docent", ["c1", "c2", "c3"], texts, ["s"] * 3)
    assert _ids(keywords.search("docent", "How do I fix a smelly compost pile?", 3))[0] == "c1"


def test_only_stopwords_or_an_unknown_collection_find_nothing(index: KeywordIndex) -> None:
    assert index.search("docent", "what is the", 5) == []
    assert index.search("elsewhere", "Mariana Trench", 5) == []
    assert index.count("elsewhere") == 0


def test_quotes_backslashes_and_operators_in_text_and_query_are_plain_words(index: KeywordIndex) -> None:
    index.upsert("docent", ["odd"], ["O'Neil's path C:\\temp\\x & | ! <-> (rare) \"zebra\""], ["odd.html"])
    assert _ids(index.search("docent", "O'Neil \\temp & | ! zebra (", 5)) == ["odd"]


def test_upsert_replaces_a_chunk_with_the_same_id(index: KeywordIndex) -> None:
    index.upsert("docent", ["c3"], ["Mount Everest is the highest mountain above sea level."], ["c3.html"])
    assert index.search("docent", "Mariana Trench", 5) == []
    assert _ids(index.search("docent", "Everest", 5)) == ["c3"]
    assert index.count("docent") == 3


def test_delete_removes_chunks_and_ignores_unknown_ids(index: KeywordIndex) -> None:
    index.delete("docent", ["c3", "never-indexed"])
    assert index.search("docent", "Mariana Trench", 5) == []
    assert index.existing_ids("docent", ["c1", "c2", "c3"]) == {"c1", "c2"}
    assert index.source_ids("docent", "c3.html") == set()
    assert _ids(index.search("docent", "Saturn rings", 5)) == ["c2"]


def test_collections_are_separate_even_with_the_same_chunk_ids(index: KeywordIndex) -> None:
    index.upsert("other", ["c3"], ["Bananas ripen faster next to apples."], ["fruit.html"])
    assert _ids(index.search("docent", "Mariana", 5)) == ["c3"]
    assert index.search("docent", "bananas", 5) == []
    assert _ids(index.search("other", "bananas", 5)) == ["c3"]
    assert index.search("other", "Mariana", 5) == []
    index.delete("other", ["c3"])
    assert _ids(index.search("docent", "Mariana", 5)) == ["c3"]
    assert index.source_ids("docent", "c3.html") == {"c3"}


def test_a_second_process_on_the_same_database_reads_what_the_first_wrote(
    index: KeywordIndex, db_settings: Settings
) -> None:
    replica = make_engine(db_settings)
    try:
        assert _ids(KeywordIndex(replica).search("docent", "Saturn rings", 5)) == ["c2"]
        index.delete("docent", ["c2"])
        assert KeywordIndex(replica).search("docent", "Saturn rings", 5) == []
    finally:
        replica.dispose()


def test_keyword_rows_and_source_record_commit_together(index: KeywordIndex, engine: Engine) -> None:
    catalog = SourceCatalog(engine)
    seen_inside: list[object] = []
    with index.transaction() as tx:
        tx.upsert(
            "docent", ["n1", "n2"], ["Neptune has supersonic winds.", "Neptune is blue."], ["n.html"] * 2
        )
        catalog.put(tx.connection, _record("n.html", chunks=2))
        # Other connections see neither until the commit.
        seen_inside.extend([index.source_ids("docent", "n.html"), catalog.by_uri("docent", "n.html")])
    assert seen_inside == [set(), None]
    assert index.source_ids("docent", "n.html") == {"n1", "n2"}
    record = catalog.by_uri("docent", "n.html")
    assert record is not None and record.chunks == 2


def test_a_failure_inside_the_transaction_leaves_neither_keyword_rows_nor_record(
    index: KeywordIndex, engine: Engine
) -> None:
    catalog = SourceCatalog(engine)
    with pytest.raises(RuntimeError, match="embedder died"), index.transaction() as tx:
        tx.delete("docent", ["c1"])
        tx.upsert("fresh", ["f1"], ["Fresh words about volcanoes."], ["f.html"])
        catalog.put(tx.connection, _record("f.html", collection="fresh"))
        raise RuntimeError("embedder died")
    assert catalog.by_uri("fresh", "f.html") is None
    assert index.search("fresh", "volcanoes", 5) == []
    assert _ids(index.search("docent", "Jupiter", 5)) == ["c1"]  # the delete was rolled back too
    # The index still works for the collection whose first write was rolled back.
    index.upsert("fresh", ["f1"], ["Fresh words about volcanoes."], ["f.html"])
    assert _ids(index.search("fresh", "volcanoes", 5)) == ["f1"]


def test_source_records_are_put_replaced_listed_and_removed(engine: Engine) -> None:
    catalog = SourceCatalog(engine)
    with engine.begin() as connection:
        catalog.put(connection, _record("b.html"))
        catalog.put(connection, _record("a.html", chunks=4))
        catalog.put(connection, _record("a.html", chunks=5))
        catalog.put(connection, _record("z.html", collection="other"))
    assert [(r.uri, r.chunks) for r in catalog.list("docent")] == [("a.html", 5), ("b.html", 1)]
    assert catalog.collections() == {"docent": 2, "other": 1}
    assert catalog.get("docent", source_id("b.html")) == _record("b.html")
    with engine.begin() as connection:
        catalog.delete(connection, "docent", [source_id("b.html")])
    assert [r.uri for r in catalog.list("docent")] == ["a.html"]
    assert catalog.by_uri("other", "z.html") is not None


def test_a_failure_is_noted_without_losing_the_stored_version_and_cleared_later(engine: Engine) -> None:
    catalog = SourceCatalog(engine)
    with engine.begin() as connection:
        catalog.put(connection, _record("a.html", chunks=3))
    catalog.record_failure("docent", "a.html", "HTTP 503", "minilm")
    catalog.record_failure("docent", "new.html", "HTTP 404", "minilm")
    kept = catalog.by_uri("docent", "a.html")
    assert kept is not None and kept.last_error == "HTTP 503" and kept.chunks == 3 and kept.content_hash
    new = catalog.by_uri("docent", "new.html")
    assert new is not None and new.last_error == "HTTP 404" and new.content_hash is None
    catalog.clear_error("docent", kept.id)
    catalog.set_embedding_model("docent", "other-model")
    cleared = catalog.by_uri("docent", "a.html")
    assert cleared is not None and cleared.last_error is None and cleared.embedding_model == "other-model"


def test_ingest_and_bm25_retrieval_run_on_the_configured_database(
    db_settings: Settings, embedder: OnnxMiniLMEmbedder, tmp_path: Path
) -> None:
    if db_settings.server_mode:  # `docent db upgrade` first, as a server needs
        migrating = make_engine(db_settings)
        upgrade(migrating)
        migrating.dispose()
    page = tmp_path / "oceans.html"
    page.write_text(f"<html><head><title>Oceans</title></head><body><p>{DOCS['c3']}</p></body></html>")
    services = Services(db_settings, embedder=embedder)
    try:
        summary = Ingestor(db_settings, services.embedder, services.store).run([str(page)])
        assert not summary.failures and summary.chunks_added == 1
        found = services.retriever.search("Mariana Trench depth", k=3, collection="docent", mode="bm25")
        assert [Path(p["source"]).name for p in found] == ["oceans.html"]
        expected = "postgresql" if db_settings.server_mode else "sqlite"
        assert services.keywords.engine.dialect.name == expected
        record = services.sources.by_uri("docent", str(page.resolve()))
        assert record is not None and record.chunks == 1
    finally:
        services.close()


def test_sqlite_vacuum_keeps_the_fts5_rows_pointing_at_their_chunks(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data"))
    try:
        upgrade(engine)
        keywords = KeywordIndex(engine)
        ids = [f"c{n:03}" for n in range(300)]
        keywords.upsert("docent", ids, [f"filler text number {n} word{n}" for n in range(300)], ["s"] * 300)
        keywords.delete("docent", ids[::3])  # holes in the rowids, which a VACUUM could close up
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM")
        assert _ids(keywords.search("docent", "word299", 5)) == ["c299"]
        assert _ids(keywords.search("docent", "word298", 5)) == ["c298"]
        assert keywords.search("docent", "word297", 5) == []  # deleted
    finally:
        engine.dispose()


def _postings_drift(engine: Engine) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
    """(postings and totals the trigger kept, those the chunks imply)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        kept = {tuple(r) for r in connection.execute(text("SELECT * FROM keyword_postings"))}
        kept |= {("stats", *r) for r in connection.execute(text("SELECT * FROM keyword_stats"))}
        implied = {
            tuple(r)
            for r in connection.execute(
                text(
                    "SELECT k.collection, u.lexeme, k.chunk_id, cardinality(u.positions), k.doc_len"
                    " FROM keyword_chunks k CROSS JOIN LATERAL unnest(k.tsv) AS u"
                )
            )
        }
        implied |= {
            ("stats", *r)
            for r in connection.execute(
                text("SELECT collection, count(*), sum(doc_len) FROM keyword_chunks GROUP BY collection")
            )
        }
    return kept, implied


def test_postgresql_postings_follow_every_insert_replacement_and_delete(pg_url: str, tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path, database_url=pg_url))
    upgrade(engine)
    try:
        keywords = KeywordIndex(engine)
        keywords.upsert("docent", list(DOCS), list(DOCS.values()), ["s"] * len(DOCS))
        keywords.upsert("other", ["c1"], ["Neptune has supersonic winds"], ["t"])
        keywords.upsert("docent", ["c2"], ["Saturn's moon Titan has lakes of methane"], ["s"])  # replaced
        keywords.delete("docent", ["c3"])
        kept, implied = _postings_drift(engine)
        assert kept == implied and any(row[1] == "titan" for row in kept)
        assert _ids(keywords.search("docent", "methane lakes", 3)) == ["c2"]
        assert keywords.search("docent", "Mariana Trench", 3) == []
    finally:
        engine.dispose()


def test_upgrading_a_postgresql_database_builds_the_postings_of_its_existing_chunks(
    pg_url: str, tmp_path: Path
) -> None:
    engine = make_engine(Settings(data_dir=tmp_path, database_url=pg_url))
    try:
        upgrade(engine, "0002")
        with engine.begin() as connection:
            connection.execute(
                keyword_chunks.insert(),
                [{"collection": "docent", "chunk_id": i, "source": "s", "text": t} for i, t in DOCS.items()],
            )
        upgrade(engine)
        kept, implied = _postings_drift(engine)
        assert kept == implied and len(kept) > len(DOCS)
        assert _ids(KeywordIndex(engine).search("docent", "How deep is the Mariana Trench?", 3)) == ["c3"]
    finally:
        engine.dispose()
