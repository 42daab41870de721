"""The embedder seam: what retrieval, ingestion and the vector store's model guard need of an embedder,
and the remote embedders (an OpenAI-compatible `/embeddings`, Ollama's `/api/embed`) behind it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from langchain_core.embeddings import Embeddings


class Embedder(Protocol):
    """Texts to unit-length vectors, named by `model_id` (collections are guarded by it)."""

    @property
    def model_id(self) -> str:
        """Identifies the model and so the vector space; stored on every collection it fills."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """An (n, dimension) float32 array, rows L2-normalised."""
        ...


class RemoteEmbedder:
    """A LangChain embeddings client (OpenAIEmbeddings, OllamaEmbeddings) as an Embedder. The dimension is
    learned from one probe call when the embedder is opened.
    """

    def __init__(self, client: Embeddings, *, model_id: str, batch_size: int = 64) -> None:
        self._client = client
        self._model_id = model_id
        self._batch_size = batch_size
        self._dimension = int(self.embed(["dimension probe"]).shape[1])

    @property
    def model_id(self) -> str:
        """`provider:model`, e.g. `ollama:all-minilm`."""
        return self._model_id

    @property
    def dimension(self) -> int:
        """Learned from the probe call."""
        return self._dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed in batches; normalise, since not every server returns unit vectors."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._client.embed_documents(texts[start : start + self._batch_size]))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: np.ndarray = vectors / np.clip(norms, 1e-12, None)
        return normalised
