"""The relational database on both engines: the embedded SQLite file and a real PostgreSQL (a fresh database
per test). The same migrations make both; the same code reads and writes both."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from core.settings import Settings
from core.storage.db import (
    SchemaError,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    open_database,
    upgrade,
)
from core.storage.keys import KeyFileError, KeyRing, KeyTable, hash_key
from core.storage.records import NO_OWNER, TurnRecord, TurnRecords
from core.types import AnswerFields, Citation, Usage


def _answer(text_: str, *, tokens: int | None = None) -> AnswerFields:
    usage = (
        Usage(prompt_tokens=tokens, completion_tokens=1, total_tokens=tokens + 1, estimated=True)
        if tokens
        else None
    )
    return AnswerFields(
        answer=text_,
        citations=[
            Citation(
                n=1, source="a.pdf", title="A", page=2, snippet="s", chunk_id="c1", cited=True, supported=True
            )
        ],
        model="extractive",
        usage=usage,
        cost=None,
        degraded=False,
        degraded_reason=None,
        unsupported_sentences=1 if tokens else None,
        output_rule="redacted: email" if tokens else None,
        cached=bool(tokens),
    )


def test_turns_come_back_in_order_with_every_answer_field(engine: Engine) -> None:
    records = TurnRecords(engine)
    records.add_turn(TurnRecord("t1", "first?", _answer("one", tokens=10), 1.5, run_id="r1"))
    records.add_turn(TurnRecord("t1", "second?", _answer("two"), 2.5))
    records.add_turn(TurnRecord("t2", "other?", _answer("x"), 1.0))
    got = records.turns("t1")
    assert [t.question for t in got] == ["first?", "second?"]
    assert got[0].answer == _answer("one", tokens=10) and got[0].run_id == "r1"
    assert got[1].answer["usage"] is None
    info = records.thread("t1")
    assert info is not None and (info.owner, info.title, info.turns) == (NO_OWNER, "first?", 2)


def test_citations_stored_before_they_carried_cited_read_back_as_cited(engine: Engine) -> None:
    """Rows written before `cited` existed listed only the passages the answer cited."""
    records = TurnRecords(engine)
    records.add_turn(TurnRecord("t1", "first?", _answer("one"), 1.5))
    old = '[{"n": 1, "source": "a.pdf", "title": "A", "page": 2, "snippet": "s", "chunk_id": "c1"}]'
    with engine.begin() as connection:
        connection.execute(text("UPDATE turns SET citations = :old"), {"old": old})
    (turn,) = records.turns("t1")
    assert turn.answer["citations"][0]["cited"] is True and turn.answer["unsupported_sentences"] is None


def test_a_thread_is_claimed_once_and_listed_for_its_owner_alone(engine: Engine) -> None:
    records = TurnRecords(engine)
    assert records.claim_thread("t", "key-a", "team-a")
    assert not records.claim_thread("t", "key-b", "team-a")
    assert not records.claim_thread("t", "key-a", "team-b")
    records.add_turn(TurnRecord("t", "q?", _answer("a"), 1.0))
    mine, total = records.threads("key-a", limit=10, offset=0, workspace="team-a")
    assert total == 1 and [t.id for t in mine] == ["t"] and mine[0].turns == 1
    assert records.threads("key-b", limit=10, offset=0, workspace="team-a") == ([], 0)
    assert records.delete_thread("t") == 1 and records.thread("t") is None


def test_concurrent_claims_of_one_thread_have_one_winner(engine: Engine) -> None:
    records = TurnRecords(engine)
    wins: list[bool] = []
    workers = [
        threading.Thread(target=lambda i=i: wins.append(records.claim_thread("race", f"key-{i}")))
        for i in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert wins.count(True) == 1


def test_keys_in_the_database_keep_only_hashes_and_reach_every_keyring(
    engine: Engine, tmp_path: Path
) -> None:
    table = KeyTable(engine)
    key = table.add("carol", ["query", "ingest"], "2026-12-01T00:00:00+00:00", workspace="team-a")
    with pytest.raises(KeyFileError, match="already exists"):
        table.add("carol", ["query"], "2026-12-01T00:00:00+00:00")
    with engine.connect() as connection:
        dumped = repr(connection.execute(text("SELECT * FROM api_keys")).all())
    assert key not in dumped and hash_key(key) in dumped
    # Two replicas' keyrings: a key made after they started works on both once they re-read the table.
    first, second = (
        KeyRing([], tmp_path / "none.json", table=table),
        KeyRing([], tmp_path / "none.json", table=table),
    )
    later = table.add("dave", ["query"], "2026-12-01T00:00:00+00:00")
    assert first.identify(later) is None
    for ring in (first, second):
        ring.refresh_table()
        found = ring.identify(later)
        assert found is not None and found.name == "dave"
    carol = second.identify(key)
    assert carol is not None and carol.workspace == "team-a" and carol.scopes == {"query", "ingest"}
    assert table.remove("carol") and not table.remove("carol")
    second.refresh_table()
    assert second.identify(key) is None


def test_a_fresh_sqlite_file_is_created_at_the_newest_schema(tmp_path: Path) -> None:
    engine = open_database(Settings(data_dir=tmp_path / "data"))
    try:
        assert current_revision(engine) == head_revision()
        assert (tmp_path / "data" / "docent.sqlite").exists()
    finally:
        engine.dispose()


def test_an_unmigrated_postgresql_database_is_refused_naming_the_command(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_url)
    with pytest.raises(SchemaError, match="docent db upgrade"):
        open_database(settings)
    engine = make_engine(settings)
    try:
        upgrade(engine)
        check_schema(engine)
    finally:
        engine.dispose()


def test_an_embedded_sqlite_file_at_an_older_revision_is_upgraded_on_open_keeping_its_rows(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    engine = make_engine(settings)
    try:
        upgrade(engine, "0001")
        TurnRecords(engine).claim_thread("t-old", "k1")
    finally:
        engine.dispose()
    engine = open_database(settings)
    try:
        assert current_revision(engine) == head_revision()
        assert not TurnRecords(engine).claim_thread("t-old", "k2")  # still k1's
    finally:
        engine.dispose()


def test_an_sqlite_file_at_an_unknown_revision_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    engine = make_engine(settings)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(SchemaError, match=r"at schema revision 0000.*docent db upgrade"):
            check_schema(engine)
    finally:
        engine.dispose()


def test_turn_records_of_an_embedded_data_dir_from_before_the_database_are_imported_once(
    tmp_path: Path,
) -> None:
    from core.services import Services

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "records.sqlite") as old:  # as the SQLite-only release wrote it
        old.executescript(
            "CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, run_id TEXT,"
            " question TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL, model TEXT NOT NULL,"
            " latency_ms REAL NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,"
            " created_at TEXT NOT NULL, degraded INTEGER NOT NULL DEFAULT 0);"
            "CREATE TABLE threads (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at TEXT NOT NULL,"
            " workspace TEXT NOT NULL DEFAULT 'default');"
            "PRAGMA user_version = 1;"
        )
        old.execute("INSERT INTO threads VALUES ('t', 'key-id', '2026-01-01T00:00:00', 'team-a')")
        for n, question in enumerate(["first?", "second?"]):
            old.execute(
                "INSERT INTO turns (thread_id, question, answer, citations, model, latency_ms, created_at)"
                " VALUES ('t', ?, ?, '[]', 'extractive', 1.0, ?)",
                (question, f"answer {n}", f"2026-01-01T00:00:0{n}"),
            )
    services = Services(Settings(data_dir=data_dir))
    try:
        assert [t.question for t in services.records.turns("t")] == ["first?", "second?"]
        info = services.records.thread("t")
        assert info is not None and (info.owner, info.workspace, info.turns) == ("key-id", "team-a", 2)
    finally:
        services.close()
    assert not (data_dir / "records.sqlite").exists() and (data_dir / "records.sqlite.imported").exists()
    again = Services(Settings(data_dir=data_dir))
    try:
        assert len(again.records.turns("t")) == 2
    finally:
        again.close()


def test_sources_and_keyword_rows_of_an_embedded_data_dir_from_before_the_database_are_imported(
    tmp_path: Path,
) -> None:
    import hashlib

    from core.services import Services

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    table = "kw_" + hashlib.sha1(b"docent").hexdigest()[:16]
    with sqlite3.connect(data_dir / "keywords.sqlite") as old:  # the tables the FTS5-file release made
        old.executescript(
            f"CREATE TABLE {table}_rows (rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE,"
            " source TEXT NOT NULL);"
            f"CREATE VIRTUAL TABLE {table}_fts USING fts5(text, tokenize = 'porter unicode61');"
            "CREATE TABLE sources (collection TEXT NOT NULL, id TEXT NOT NULL, uri TEXT NOT NULL,"
            " content_hash TEXT, title TEXT NOT NULL, kind TEXT NOT NULL, pages INTEGER NOT NULL,"
            " chunks INTEGER NOT NULL, embedding_model TEXT NOT NULL, chunking TEXT NOT NULL,"
            " ingested_at TEXT, last_error TEXT, PRIMARY KEY (collection, id));"
        )
        texts = ["Worms eat half their weight in scraps a day.", "A hot pile reaches 60 degrees."]
        for rowid, text_ in enumerate(texts, start=1):
            old.execute(f"INSERT INTO {table}_rows VALUES (?, ?, 'notes.md')", (rowid, f"chunk-{rowid}"))
            old.execute(f"INSERT INTO {table}_fts (rowid, text) VALUES (?, ?)", (rowid, text_))
        old.execute(
            "INSERT INTO sources VALUES ('docent', 'abc', 'notes.md', 'h', 'Notes', 'markdown', 1, 2,"
            " 'onnx:all-MiniLM-L6-v2', 'c', '2026-01-01T00:00:00+00:00', NULL)"
        )
    services = Services(Settings(data_dir=data_dir))
    try:
        assert [r.uri for r in services.sources.list("docent")] == ["notes.md"]
        hits = services.keywords.search("docent", "how hot does the pile get", 5)
        assert [chunk for chunk, _ in hits] == ["chunk-2"]
        assert services.keywords.count("docent") == 2
    finally:
        services.close()
    assert (data_dir / "keywords.sqlite.imported").exists() and not (data_dir / "keywords.sqlite").exists()
