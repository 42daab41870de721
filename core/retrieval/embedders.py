"""The embedder seam: what retrieval, ingestion and the vector store's model guard need of an embedder,
and the remote embedders (an OpenAI-compatible `/embeddings`, Ollama's `/api/embed`) behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.settings import Settings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

ONNX_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2@onnx-int8"
ONNX_DIMENSION = 384
QUERY_MODEL_ID = f"{ONNX_MODEL_ID}+query-dynamic-int8"
"""The fast query model's id (core.retrieval.quantized): vectors in the packaged model's space (cosine 0.99)
but not the same vectors, so answer cache scopes keep them apart; collections stay under ONNX_MODEL_ID."""


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


DEFAULT_EMBEDDING_MODELS = {"openai": "text-embedding-3-small", "ollama": "all-minilm"}


def embedder_model_id(settings: Settings) -> str:
    """The model id the configured embedder will report, known without loading it."""
    provider = settings.embeddings_provider
    if provider == "onnx":
        return ONNX_MODEL_ID
    return f"{provider}:{settings.embeddings_model or DEFAULT_EMBEDDING_MODELS[provider]}"


def make_embedder(settings: Settings) -> Embedder:
    """The embedder DOCENT_EMBEDDINGS_PROVIDER names: offline ONNX MiniLM (default), openai or ollama."""
    provider = settings.embeddings_provider
    if provider == "onnx":
        from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(
            threads=settings.onnx_threads,
            batch_size=settings.embedding_batch_size,
            max_tokens=settings.embedding_max_tokens,
        )
    from langchain_ollama import OllamaEmbeddings
    from langchain_openai import OpenAIEmbeddings

    model = settings.embeddings_model or DEFAULT_EMBEDDING_MODELS[provider]
    if provider == "openai":
        client: OpenAIEmbeddings | OllamaEmbeddings = OpenAIEmbeddings(
            model=model,
            openai_api_base=settings.openai_base_url,
            openai_api_key=settings.openai_key(),
            request_timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            # The default splits text with tiktoken, whose tables would be downloaded: send text as it is.
            check_embedding_ctx_length=False,
        )
    else:
        client = OllamaEmbeddings(
            model=model, base_url=settings.ollama_base_url, client_kwargs={"timeout": settings.llm_timeout_s}
        )
    return RemoteEmbedder(client, model_id=f"{provider}:{model}")


class LazyEmbedder:
    """The configured embedder, loaded on first use (`embed`, `dimension` or `load`); its `model_id` comes
    from the settings alone, so checks that only compare model ids never load a model."""

    def __init__(
        self,
        settings: Settings,
        open_embedder: Callable[[Settings], Embedder] = make_embedder,
        *,
        loaded: Embedder | None = None,
        model_id: str | None = None,
    ) -> None:
        """`loaded`: an embedder already loaded (tests and benches share one); it is used as it is.
        `model_id`: the id `open_embedder`'s embedder will report (default: the configured embedder's)."""
        self._settings = settings
        self._open = open_embedder
        self._loaded = loaded
        self._model_id = loaded.model_id if loaded is not None else model_id or embedder_model_id(settings)
        self._lock = threading.Lock()

    def load(self) -> Embedder:
        """The loaded embedder (loading it now if need be; blocking)."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._open(self._settings)
        return self._loaded

    @property
    def model_id(self) -> str:
        """The configured model's id."""
        return self._loaded.model_id if self._loaded is not None else self._model_id

    @property
    def dimension(self) -> int:
        """Length of each vector (loads the model)."""
        return self.load().dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        """An (n, dimension) float32 array, rows L2-normalised (loads the model)."""
        return self.load().embed(texts)
