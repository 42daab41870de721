"""The offline ONNX embedder: real model, real vectors."""

from __future__ import annotations

import numpy as np
import pytest

from core.retrieval import onnx_embedder as embeddings
from core.retrieval.onnx_embedder import EmbeddingModelError, OnnxMiniLMEmbedder


def test_vectors_are_384_dimensional_and_unit_length(embedder: OnnxMiniLMEmbedder) -> None:
    vectors = embedder.embed(["a short text", "another, somewhat longer text about thermostats and heating"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_related_texts_are_closer_than_unrelated_ones(embedder: OnnxMiniLMEmbedder) -> None:
    query, related, unrelated = embedder.embed(
        [
            "How much can I save by turning down my thermostat?",
            "Setting the thermostat back 10 degrees for eight hours saves about 10% a year on heating.",
            "The 1998 football world cup final was played in Paris.",
        ]
    )
    assert float(query @ related) > float(query @ unrelated) + 0.3


def test_batching_does_not_change_the_vectors(embedder: OnnxMiniLMEmbedder) -> None:
    texts = [f"sentence number {i} " * (i % 7 + 1) for i in range(40)]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts[:5]])
    np.testing.assert_allclose(together[:5], alone, atol=1e-4)


def test_a_lone_short_text_on_the_one_thread_session_gets_the_vector_of_every_thread() -> None:
    """With two threads, a short question runs on the one-thread session; a batch of long texts on both."""
    embedder = OnnxMiniLMEmbedder(threads=2)
    question = "How hot should a compost pile get?"
    long_text = "Compost piles heat up as microbes break down the greens and browns. " * 6
    alone = embedder.embed([question])
    in_a_batch = embedder.embed([question, long_text])[:1]
    np.testing.assert_allclose(alone, in_a_batch, atol=1e-4)
    np.testing.assert_allclose(alone, OnnxMiniLMEmbedder(threads=1).embed([question]), atol=1e-5)


def test_langchain_interface_returns_plain_lists(embedder: OnnxMiniLMEmbedder) -> None:
    assert len(embedder.embed_query("hello")) == 384
    assert [len(v) for v in embedder.embed_documents(["a", "b"])] == [384, 384]


def test_a_model_file_with_the_wrong_checksum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)
    with pytest.raises(EmbeddingModelError, match="sha256"):
        OnnxMiniLMEmbedder(threads=1)
