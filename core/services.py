"""The heavy resources a process opens once (models, stores) and injects everywhere it needs them."""

from __future__ import annotations

from dataclasses import dataclass

from core.embeddings import OnnxMiniLMEmbedder
from core.providers import AnswererRegistry, make_answerers, make_embedder
from core.records import SqliteRecords
from core.retrieval import Retriever
from core.settings import Settings
from core.vectorstore import VectorStore, open_vector_store


@dataclass
class Services:
    """Everything the graph and the ingestion pipeline use, opened once per process."""

    settings: Settings
    embedder: OnnxMiniLMEmbedder
    vectors: VectorStore
    retriever: Retriever
    answerers: AnswererRegistry
    records: SqliteRecords

    def close(self) -> None:
        """Release what holds files open."""
        self.records.close()


def open_services(settings: Settings) -> Services:
    """Open the embedder, Chroma, the answerer and the records DB the settings name."""
    embedder = make_embedder(settings)
    vectors = open_vector_store(settings, model_id=embedder.model_id, dimension=embedder.dimension)
    return Services(
        settings=settings,
        embedder=embedder,
        vectors=vectors,
        retriever=Retriever(embedder, vectors),
        answerers=make_answerers(settings),
        records=SqliteRecords(settings.records_db),
    )
