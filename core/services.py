"""The composition root: every heavy resource a process uses (models, stores, the records DB), opened at most
once and closed together. The server, the CLI, Studio, `docent eval` and the benches all get theirs here.

Each resource opens on first use, so a CLI command pays only for what it touches (an unchanged re-ingest
reads the source records and never loads the embedder or Chroma); a server opens everything at start-up
(`open_all`) so that no request pays for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from core.retrieval.embedders import QUERY_MODEL_ID, Embedder, LazyEmbedder, make_embedder
from core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from core.answering.cache import AnswerCache
    from core.answering.output_guard import OutputGuard
    from core.answering.providers import AnswererRegistry
    from core.retrieval.chunk_store import ChunkStore
    from core.retrieval.keyword_index import KeywordIndex
    from core.retrieval.query_embedder import QueryEmbedder
    from core.retrieval.rerank import Reranker
    from core.retrieval.retriever import Retriever
    from core.retrieval.vector_store import VectorStore
    from core.storage.corpus import CorpusVersions
    from core.storage.records import TurnRecords
    from core.storage.sources import SourceCatalog

T = TypeVar("T")


class Services:
    """The process's resources, each opened once on first use (thread-safe) and closed by `close`."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        """`embedder`: an already loaded one to use instead of the configured one (tests, benches)."""
        self.settings = settings
        self._lock = threading.RLock()
        self._opened: dict[str, Any] = {}
        self._given_embedder = embedder

    def _once(self, name: str, open_: Callable[[], T]) -> T:
        if (found := self._opened.get(name)) is not None:
            return cast(T, found)
        with self._lock:
            if "data_dir" not in self._opened:
                self._opened["data_dir"] = _private_dir(self.settings.data_dir)
            if name not in self._opened:
                self._opened[name] = open_()
            return cast(T, self._opened[name])

    @property
    def database(self) -> Engine:
        """The relational database (SQLite under the data dir, or PostgreSQL), its schema checked."""
        return self._once("database", self._open_database)

    def _open_database(self) -> Engine:
        from core.storage.db import open_database
        from core.storage.legacy import import_legacy_keywords, import_legacy_records

        engine = open_database(self.settings)
        if not self.settings.server_mode:  # an embedded data dir from before the database
            import_legacy_records(engine, self.settings.data_dir, self._key_owners)
            import_legacy_keywords(engine, self.settings.data_dir)
        return engine

    def _key_owners(self) -> dict[str, tuple[str, str]]:
        """Key name -> (id, workspace) of the configured keys: how threads owned by names are migrated."""
        from core.storage.keys import read_key_file

        specs = [*self.settings.api_keys, *read_key_file(self.settings.keys_file)]
        return {spec.name: (spec.id, spec.workspace) for spec in specs}

    @property
    def embedder(self) -> LazyEmbedder:
        """The configured embedder; its `model_id` is known before the model loads (on the first embed)."""
        return self._once(
            "embedder", lambda: LazyEmbedder(self.settings, make_embedder, loaded=self._given_embedder)
        )

    @property
    def query_model(self) -> LazyEmbedder:
        """The model the query path embeds with: the fast int8 derivative of the packaged MiniLM
        (`DOCENT_QUERY_EMBEDDER=int8`, the default, for the onnx provider; loaded on first use), else the
        configured embedder itself (always, when the services were given an embedder)."""
        settings = self.settings
        fast = settings.embeddings_provider == "onnx" and settings.query_embedder == "int8"
        if not fast or self._given_embedder is not None:
            return self.embedder

        def open_query_model(settings: Settings) -> Embedder:
            from core.retrieval.onnx_embedder import open_query_model

            return open_query_model(
                settings.derived_models_dir,
                threads=settings.onnx_threads,
                batch_size=settings.embedding_batch_size,
                max_tokens=settings.embedding_max_tokens,
            )

        return self._once(
            "query_model", lambda: LazyEmbedder(settings, open_query_model, model_id=QUERY_MODEL_ID)
        )

    @property
    def query_embedder(self) -> QueryEmbedder:
        """The query path's embedder (retrieval, the extractive answerer, citation checks): the configured
        one behind a vector cache and a micro-batcher. Ingestion uses `embedder`."""
        from core.retrieval.query_embedder import QueryEmbedder

        settings = self.settings
        return self._once(
            "query_embedder",
            lambda: QueryEmbedder(
                self.query_model,
                cache_size=settings.query_cache_size,
                window_s=settings.embed_batch_window_ms / 1000,
                max_batch=settings.embed_batch_max,
                lowercase=settings.embeddings_provider == "onnx",  # MiniLM's tokenizer lowercases
            ),
        )

    @property
    def keywords(self) -> KeywordIndex:
        """The BM25 keyword index on the relational database (SQLite FTS5, or PostgreSQL full-text search)."""
        from core.retrieval.keyword_index import KeywordIndex

        return self._once("keywords", lambda: KeywordIndex(self.database))

    @property
    def sources(self) -> SourceCatalog:
        """One record per ingested URL or file, beside the keyword rows (no model, no Chroma)."""
        from core.storage.sources import SourceCatalog

        return self._once("sources", lambda: SourceCatalog(self.database))

    @property
    def vectors(self) -> VectorStore:
        """Chroma, guarded by the embedder's model id and dimension."""
        from core.retrieval.vector_store import open_vector_store

        embedder = self.embedder
        return self._once(
            "vectors",
            lambda: open_vector_store(
                self.settings, model_id=embedder.model_id, dimension=embedder.dimension
            ),
        )

    @property
    def store(self) -> ChunkStore:
        """Chroma, the keyword index and the source records, written in step; Chroma opens when first used."""
        from core.retrieval.chunk_store import ChunkStore

        return self._once("store", lambda: ChunkStore(lambda: self.vectors, self.keywords, self.sources))

    @property
    def retriever(self) -> Retriever:
        """Dense, BM25 or hybrid search over the chunk store."""
        from core.retrieval.retriever import Retriever

        return self._once(
            "retriever", lambda: Retriever(self.query_embedder, self.store, self.settings, self.reranker)
        )

    @property
    def reranker(self) -> Reranker | None:
        """The second-stage reranker (`DOCENT_RERANKER`), None by default."""
        from core.answering.providers import make_reranker

        if self.settings.reranker == "none":
            return None
        return self._once("reranker", lambda: make_reranker(self.settings))

    @property
    def answerers(self) -> AnswererRegistry:
        """The answering models this deployment offers, by name; the extractive answerer and the citation
        checks use the process's embedder."""
        from core.answering.providers import make_answerers

        embedder = self.query_embedder
        return self._once("answerers", lambda: make_answerers(self.settings, embedder=embedder))

    @property
    def output_guard(self) -> OutputGuard:
        """The output guardrail (blocked output patterns, the PII pass) every answer goes through."""
        from core.answering.output_guard import OutputGuard

        settings = self.settings
        return self._once(
            "output_guard",
            lambda: OutputGuard(settings.blocked_output_patterns, redact_pii=settings.redact_pii),
        )

    @property
    def records(self) -> TurnRecords:
        """One durable row per answered turn, and thread ownership."""
        from core.storage.records import TurnRecords

        database = self.database
        return self._once("records", lambda: TurnRecords(database))

    @property
    def corpus_versions(self) -> CorpusVersions:
        """Each collection's corpus version, which ingest, reindex and source removal bump."""
        from core.storage.corpus import CorpusVersions

        database = self.database
        return self._once("corpus_versions", lambda: CorpusVersions(database))

    @property
    def answer_cache(self) -> AnswerCache | None:
        """The semantic answer cache (in memory, or Redis in server mode); None with DOCENT_CACHE=off."""
        from core.answering.cache import open_answer_cache

        if self.settings.cache == "off":
            return None
        embedder, versions, records = self.query_embedder, self.corpus_versions, self.records
        default = self.answerers.default
        return self._once(
            "answer_cache", lambda: open_answer_cache(self.settings, embedder, versions, records, default)
        )

    def open_all(self) -> Services:
        """Open every resource now (blocking: call it in a worker thread from async code)."""
        self.embedder.load()
        self.query_model.load()  # the fast query model is built here on a first start, not by a request
        _ = (self.database, self.vectors, self.store, self.retriever, self.answerers, self.records)
        _ = self.answer_cache
        _ = self.output_guard  # a pattern that is not a regex stops the start here
        return self

    def close(self) -> None:
        """Close what was opened (files, connections); safe to call twice."""
        with self._lock:
            opened, self._opened = self._opened, {}
        for name in ("retriever", "query_embedder", "records", "keywords", "answer_cache"):
            resource = opened.get(name)
            if resource is not None:
                resource.close()
        if (engine := opened.get("database")) is not None:
            engine.dispose()


def _private_dir(path: Path) -> Path:
    """The data dir, created if need be and readable by its owner only (0700): it holds every tenant's
    documents, conversations and key hashes, whatever the process's umask made of the files inside."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def open_services(settings: Settings) -> Services:
    """Every resource opened now, as a server or an evaluation run wants them."""
    return Services(settings).open_all()
