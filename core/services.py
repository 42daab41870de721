"""The heavy resources a process opens once (models, stores) and injects everywhere it needs them."""

from __future__ import annotations

from dataclasses import dataclass

from core.chunk_store import ChunkStore, open_chunk_store
from core.embedders import Embedder
from core.providers import AnswererRegistry, make_answerers, make_embedder
from core.records import SqliteRecords
from core.retrieval import Retriever
from core.settings import Settings


@dataclass
class Services:
    """Everything the graph and the ingestion pipeline use, opened once per process."""

    settings: Settings
    embedder: Embedder
    store: ChunkStore
    retriever: Retriever
    answerers: AnswererRegistry
    records: SqliteRecords

    def close(self) -> None:
        """Release what holds files open."""
        self.records.close()
        self.store.close()


def open_services(settings: Settings) -> Services:
    """Open the embedder, the chunk store (Chroma + keyword index), the answerers and the records DB."""
    embedder = make_embedder(settings)
    store = open_chunk_store(settings, model_id=embedder.model_id, dimension=embedder.dimension)
    return Services(
        settings=settings,
        embedder=embedder,
        store=store,
        retriever=Retriever(embedder, store, settings),
        answerers=make_answerers(settings),
        records=SqliteRecords(settings.records_db),
    )
