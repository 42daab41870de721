"""Dense retrieval: embed the search query, take the nearest chunks from Chroma."""

from __future__ import annotations

from core.embeddings import OnnxMiniLMEmbedder
from core.passages import Passage
from core.vectorstore import VectorStore


class Retriever:
    """Top-k passages for a query from one collection, with cosine similarity scores."""

    def __init__(self, embedder: OnnxMiniLMEmbedder, vectors: VectorStore) -> None:
        self._embedder = embedder
        self._vectors = vectors

    def search(self, query: str, *, k: int, collection: str) -> list[Passage]:
        """Blocking: run it in a worker thread from async code."""
        return self._vectors.search(collection, self._embedder.embed([query])[0], k)
