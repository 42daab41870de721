"""The fast query model: built from the packaged MiniLM, checked, kept, refused when tampered with, and the
query path's model by default (collections stay under the packaged model's id)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.retrieval import onnx_embedder as embeddings
from core.retrieval import quantized
from core.retrieval.embedders import ONNX_MODEL_ID, QUERY_MODEL_ID
from core.retrieval.onnx_embedder import (
    MODEL_SHA256,
    EmbeddingModelError,
    OnnxMiniLMEmbedder,
    open_query_model,
)
from core.retrieval.quantized import QuantizedModelError
from core.services import Services
from core.settings import Settings


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def fast(models_dir: Path) -> OnnxMiniLMEmbedder:
    return open_query_model(models_dir, threads=1)


def test_the_fast_model_embeds_in_the_packaged_models_space(
    fast: OnnxMiniLMEmbedder, embedder: OnnxMiniLMEmbedder
) -> None:
    texts = [
        "How do I fix a smelly compost pile?",
        "Add browns such as dry leaves and turn the pile to let air in.",
        "The 1998 football world cup final was played in Paris.",
    ]
    packaged, derived = embedder.embed(texts), fast.embed(texts)
    assert fast.model_id == QUERY_MODEL_ID != embedder.model_id
    np.testing.assert_allclose(np.linalg.norm(derived, axis=1), 1.0, atol=1e-5)
    assert float((packaged * derived).sum(axis=1).min()) > 0.98
    assert not np.allclose(packaged, derived, atol=1e-3)  # another model really ran
    # What a query finds: the question is closer to its answer than to the unrelated text, across models.
    assert float(derived[0] @ packaged[1]) > float(derived[0] @ packaged[2]) + 0.3


def test_the_built_file_is_kept_and_not_built_again(
    fast: OnnxMiniLMEmbedder, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = sorted(p.name for p in models_dir.glob("*.onnx"))
    assert built == [quantized.model_path(models_dir, MODEL_SHA256).name]
    monkeypatch.setattr(quantized, "_build", lambda source, target: pytest.fail("built again"))
    again = open_query_model(models_dir, threads=1)
    np.testing.assert_allclose(again.embed(["a question"]), fast.embed(["a question"]), atol=1e-6)


def test_a_tampered_file_is_refused(fast: OnnxMiniLMEmbedder, models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    copy.mkdir()
    for path in models_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    model = next(copy.glob("*.onnx"))
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(QuantizedModelError, match="sha256"):
        open_query_model(copy, threads=1)


def test_a_build_that_fails_its_check_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantized, "MIN_PROBE_COSINE", 1.01)  # no derived model can pass
    with pytest.raises(QuantizedModelError, match="not close enough"):
        open_query_model(tmp_path / "models", threads=1)
    assert list((tmp_path / "models").iterdir()) == []


def test_the_query_path_uses_the_fast_model_unless_told_not_to(
    tmp_path: Path, models_dir: Path, fast: OnnxMiniLMEmbedder
) -> None:
    default = Services(Settings(data_dir=tmp_path / "a", models_dir=models_dir))
    packaged = Services(Settings(data_dir=tmp_path / "b", models_dir=models_dir, query_embedder="model"))
    try:
        assert default.query_embedder.model_id == QUERY_MODEL_ID
        assert default.embedder.model_id == default.store.vectors.model_id == ONNX_MODEL_ID
        np.testing.assert_allclose(default.query_embedder.embed(["x y"]), fast.embed(["x y"]), atol=1e-6)
        assert packaged.query_embedder.model_id == ONNX_MODEL_ID
    finally:
        default.close()
        packaged.close()


def test_a_build_from_a_packaged_model_that_fails_its_checksum_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)
    with pytest.raises(EmbeddingModelError, match="sha256"):
        open_query_model(tmp_path / "models", threads=1)
    assert list((tmp_path / "models").iterdir()) == []
