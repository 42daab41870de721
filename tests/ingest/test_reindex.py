"""The embedding-model guard and `reindex`: a collection answers only to the model that filled it, and is
re-embedded from the text Chroma holds (a second embedder identity: the real model, vectors transformed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.retrieval.chunk_store import ChunkStore
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.retriever import Retriever
from core.retrieval.vector_store import EmbeddingMismatchError
from core.services import Services
from core.settings import Settings
from ingest.pipeline import Ingestor
from ingest.reindex import reindex
from tests.helpers import docent_env, run_docent

PAGE = """<html><head><title>Heat pumps</title></head><body><h1>Heat pumps</h1>
<p>An air source heat pump moves heat from outside air into the home, even in winter.</p>
<h2>Noise</h2><p>A modern heat pump is about as loud as a fridge at one metre.</p></body></html>"""


class ReversedMiniLM(OnnxMiniLMEmbedder):
    """Another embedder identity: the same model with its vector components reversed (cosines unchanged)."""

    model_id = "test/all-MiniLM-L6-v2-reversed"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.ascontiguousarray(super().embed(texts)[:, ::-1])


@pytest.fixture(scope="module")
def reversed_embedder() -> ReversedMiniLM:
    return ReversedMiniLM(threads=Settings().onnx_threads)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "heat pumps.html"
    path.write_text(PAGE)
    return path


@pytest.fixture
def filled(settings: Settings, embedder: OnnxMiniLMEmbedder, page: Path) -> Settings:
    """The default collection, filled by the stock embedder; the store is closed again."""
    store = Services(settings, embedder=embedder).store
    assert Ingestor(settings, embedder, store).run([str(page)]).chunks_added > 0
    store.close()
    return settings


def _store(settings: Settings, embedder: OnnxMiniLMEmbedder) -> ChunkStore:
    return Services(settings, embedder=embedder).store


def test_ingesting_with_another_embedder_fails_at_once_naming_both_models(
    filled: Settings, reversed_embedder: ReversedMiniLM, page: Path
) -> None:
    store = _store(filled, reversed_embedder)
    with pytest.raises(EmbeddingMismatchError) as raised:
        Ingestor(filled, reversed_embedder, store).run([str(page)])
    message = str(raised.value)
    assert OnnxMiniLMEmbedder.model_id in message and ReversedMiniLM.model_id in message
    assert "docent reindex --collection docent" in message


def test_querying_with_another_embedder_fails_naming_both_models(
    filled: Settings, reversed_embedder: ReversedMiniLM
) -> None:
    retriever = Retriever(reversed_embedder, _store(filled, reversed_embedder), filled)
    with pytest.raises(EmbeddingMismatchError, match="was embedded with 'sentence-transformers/all-MiniLM"):
        retriever.search("heat pump noise", k=2, collection="docent", mode="dense")


def test_reindex_reembeds_every_chunk_from_stored_text_with_the_configured_model(
    filled: Settings, reversed_embedder: ReversedMiniLM, page: Path, embedder: OnnxMiniLMEmbedder
) -> None:
    before = _store(filled, embedder).vectors.collection("docent").get(include=["documents"])
    page.unlink()  # nothing is fetched or read again: the text comes from Chroma
    store = _store(filled, reversed_embedder)
    result = reindex(store, reversed_embedder, "docent")
    assert (result.previous_model, result.model) == (OnnxMiniLMEmbedder.model_id, ReversedMiniLM.model_id)
    assert result.chunks == len(before["ids"]) and not result.skipped
    after = store.vectors.collection("docent").get(include=["documents", "metadatas", "embeddings"])
    assert sorted(after["ids"]) == sorted(before["ids"])
    metadatas = [dict(m or {}) for m in after["metadatas"] or []]
    assert all(m["context"] == "heat pumps" for m in metadatas)  # the document's name, embedded with the text
    texts = [f"heat pumps: {t}" for t in after["documents"] or []]
    expected = reversed_embedder.embed(texts)
    assert np.allclose(np.asarray(after["embeddings"]), expected, atol=1e-5)
    assert {r.embedding_model for r in store.sources.list("docent")} == {ReversedMiniLM.model_id}
    found = Retriever(reversed_embedder, store, filled).search(
        "How loud is a heat pump?", k=1, collection="docent", mode="hybrid"
    )
    assert "fridge" in found[0]["text"]
    with pytest.raises(EmbeddingMismatchError):  # and now the old model is the stranger
        _store(filled, embedder).check("docent")


def test_docent_reindex_leaves_a_collection_on_the_configured_model_alone_unless_forced(
    tmp_path: Path, page: Path
) -> None:
    env = docent_env(tmp_path / "data")
    assert run_docent(["ingest", str(page)], env).returncode == 0
    same = run_docent(["reindex"], env)
    assert same.returncode == 0, same.stderr
    assert (
        "already embedded with 'sentence-transformers/all-MiniLM-L6-v2@onnx-int8'; nothing to do"
        in same.stdout
    )
    forced = run_docent(["reindex", "--force"], env)
    assert forced.returncode == 0, forced.stderr
    assert "re-embedded 2 chunks of collection 'docent'" in forced.stdout
    asked = run_docent(["ask", "How loud is a heat pump?", "--json"], env)
    assert asked.returncode == 0 and "fridge" in asked.stdout
