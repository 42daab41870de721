"""The query path's embedder: its cache gives back the vectors the model gives, and its batcher embeds the
texts of concurrent callers in one model run."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.query_embedder import QueryEmbedder


class SlowEmbedder:
    """Deterministic vectors from the text's hash; each call takes `delay_s` and is recorded."""

    model_id = "test:slow"
    dimension = 4

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self._delay_s = delay_s
        self._fail = fail
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        time.sleep(self._delay_s)
        if self._fail:
            raise RuntimeError("model down")
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).random(4) for t in texts]
        vectors = np.asarray(rows, dtype=np.float32)
        normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normalised


@pytest.fixture(scope="module")
def minilm() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder(threads=1)


def test_cached_vectors_are_the_models_and_an_uncased_model_shares_them_across_case(
    minilm: OnnxMiniLMEmbedder,
) -> None:
    texts = ["How hot should a compost pile get?", "Which bulbs contain mercury?"]
    queries = QueryEmbedder(minilm, lowercase=True)
    try:
        first = queries.embed(texts)
        again = queries.embed(["  how HOT should a compost   pile get? ", texts[1]])
        assert queries.model_runs == 1 and queries.cache_hits == 2
        np.testing.assert_allclose(first, minilm.embed(texts), atol=1e-6)
        np.testing.assert_array_equal(again, first)
    finally:
        queries.close()


def test_a_cased_key_keeps_case_and_a_full_cache_drops_the_least_recently_used() -> None:
    model = SlowEmbedder()
    queries = QueryEmbedder(model, cache_size=2)
    try:
        queries.embed(["a", "A"])  # two texts for a cased model
        queries.embed(["a"])  # a hit: "a" is now the most recently used
        queries.embed(["b"])  # pushes out "A"
        queries.embed(["a", "A"])
        assert model.calls == [["a", "A"], ["b"], ["A"]]
    finally:
        queries.close()


def test_no_cache_embeds_every_time_and_duplicates_once() -> None:
    model = SlowEmbedder()
    queries = QueryEmbedder(model, cache_size=0)
    try:
        vectors = queries.embed(["x", "y", "x"])
        queries.embed(["x"])
        assert model.calls == [["x", "y"], ["x"]]
        np.testing.assert_array_equal(vectors[0], vectors[2])
    finally:
        queries.close()


def test_concurrent_callers_share_model_runs_within_the_window() -> None:
    model = SlowEmbedder(delay_s=0.01)
    queries = QueryEmbedder(model, cache_size=0, window_s=0.2, max_batch=8)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: queries.embed([f"question {n}"]), range(8)))
        # Eight callers, one window of 200 ms or eight texts: far fewer runs than callers.
        assert queries.model_runs < 4, model.calls
        for n, vector in enumerate(results):
            np.testing.assert_array_equal(vector, model.embed([f"question {n}"]))
    finally:
        queries.close()


def test_embed_while_runs_the_other_work_while_the_batcher_embeds() -> None:
    model = SlowEmbedder(delay_s=0.3)
    queries = QueryEmbedder(model)

    def read() -> bool:
        """True when the model run began while this work ran (it waits for that, 5 s at most)."""
        deadline = time.monotonic() + 5
        while not model.calls and time.monotonic() < deadline:
            time.sleep(0.005)
        return bool(model.calls)

    try:
        vectors, overlapped = queries.embed_while(["question"], read)
        assert overlapped, "the model run did not begin until the other work had ended"
        np.testing.assert_array_equal(vectors, model.embed(["question"]))
        # A cached text: the other work still runs, no model run.
        runs = queries.model_runs
        assert queries.embed_while(["question"], lambda: 7)[1] == 7
        assert queries.model_runs == runs
    finally:
        queries.close()


def test_a_model_failure_reaches_every_caller_of_its_batch_and_the_next_call_runs_again() -> None:
    model = SlowEmbedder(fail=True)
    queries = QueryEmbedder(model)
    try:
        with pytest.raises(RuntimeError, match="model down"):
            queries.embed(["a"])
        model._fail = False
        assert queries.embed(["a"]).shape == (1, 4)
    finally:
        queries.close()


def test_a_closed_embedder_refuses_new_texts_but_still_answers_from_its_cache() -> None:
    queries = QueryEmbedder(SlowEmbedder())
    queries.embed(["kept"])
    queries.close()
    queries.close()
    assert queries.embed(["kept"]).shape == (1, 4)
    with pytest.raises(RuntimeError, match="closed"):
        queries.embed(["new"])
