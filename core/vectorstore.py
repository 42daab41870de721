"""Chroma access: one client per process, collections guarded by the embedding model that filled them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InvalidArgumentError

from core.passages import Passage
from core.settings import Settings

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]


class CollectionError(RuntimeError):
    """A collection this process cannot use: a bad name, or another embedding model's vectors."""


class EmbeddingMismatchError(CollectionError):
    """A collection was filled by another embedding model than the one configured."""


def open_chroma(settings: Settings) -> ClientAPI:
    """Open the Chroma client the settings name: files under the data dir, or a Chroma server."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_mode == "http":
        return chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
        )
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def open_vector_store(settings: Settings, *, model_id: str, dimension: int) -> VectorStore:
    """The configured Chroma client, wrapped for one embedding model."""
    return VectorStore(open_chroma(settings), model_id=model_id, dimension=dimension)


class VectorStore:
    """Chunks with their embeddings in named Chroma collections (cosine space)."""

    def __init__(self, client: ClientAPI, *, model_id: str, dimension: int) -> None:
        self._client = client
        self._model_id = model_id
        self._dimension = dimension
        self._collections: dict[str, Collection] = {}

    def collection(self, name: str) -> Collection:
        """Get or create a collection, refusing one made with another embedding model."""
        if (cached := self._collections.get(name)) is not None:
            return cached
        try:
            collection = self._client.get_or_create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": self._model_id, "embedding_dimension": self._dimension},
            )
        except InvalidArgumentError as exc:
            raise CollectionError(f"collection {name!r}: {exc}") from exc
        stored = (collection.metadata or {}).get("embedding_model")
        if stored is not None and stored != self._model_id:
            raise EmbeddingMismatchError(
                f"collection {name!r} was embedded with {stored!r} but the configured embedder is "
                f"{self._model_id!r}; ingest into another collection or re-embed it"
            )
        self._collections[name] = collection
        return collection

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids the collection already holds."""
        if not ids:
            return set()
        return set(self.collection(name).get(ids=list(ids), include=[])["ids"])

    def add(
        self,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
        embeddings: np.ndarray,
    ) -> None:
        """Write chunks in batches below Chroma's maximum batch size."""
        collection = self.collection(name)
        step = max(1, min(self._client.get_max_batch_size(), 1000))
        for start in range(0, len(ids), step):
            end = start + step
            collection.upsert(
                ids=list(ids[start:end]),
                documents=list(texts[start:end]),
                metadatas=[dict(m) for m in metadatas[start:end]],
                embeddings=embeddings[start:end],
            )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove chunks by id."""
        if ids:
            self.collection(name).delete(ids=list(ids))

    def source_ids(self, name: str, source: str) -> set[str]:
        """Ids of every chunk of one source."""
        return set(self.collection(name).get(where={"source": source}, include=[])["ids"])

    def passages(self, name: str, ids: Sequence[str], query: np.ndarray) -> dict[str, Passage]:
        """Chunks by id, scored by cosine similarity to the query vector."""
        if not ids:
            return {}
        got = self.collection(name).get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
        documents = got["documents"] or []
        metadatas = got["metadatas"] or []
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        return {
            chunk_id: _passage(chunk_id, text, meta or {}, float(np.dot(np.asarray(vector), query)))
            for chunk_id, text, meta, vector in zip(got["ids"], documents, metadatas, embeddings, strict=True)
        }

    def count(self, name: str) -> int:
        """Number of chunks in a collection."""
        return self.collection(name).count()

    def search(self, name: str, query: np.ndarray, k: int) -> list[Passage]:
        """The k chunks nearest to a query vector, best first, with cosine similarity as score."""
        result = self.collection(name).query(
            query_embeddings=query.reshape(1, -1),
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        ids = result["ids"][0]
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        return [
            _passage(chunk_id, text, meta or {}, 1.0 - float(distance))
            for chunk_id, text, meta, distance in zip(ids, documents, metadatas, distances, strict=True)
        ]


def _passage(chunk_id: str, text: str, meta: Mapping[str, Any], score: float) -> Passage:
    page = meta.get("page")
    section = meta.get("section")
    paragraphs = meta.get("paragraph_ids")
    return Passage(
        chunk_id=chunk_id,
        text=text,
        source=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        page=int(page) if page is not None else None,
        section=str(section) if section else None,
        score=round(score, 4),
        paragraph_ids=str(paragraphs).split() if paragraphs else [],
    )
