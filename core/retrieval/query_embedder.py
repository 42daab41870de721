"""The query path's embedder: a bounded cache of vectors by normalised text, in front of a micro-batcher that
embeds the texts of concurrent callers in one model run.

Every turn embeds its search query, and the extractive answerer and the citation check embed the query again
with a few sentences of the passages. Questions repeat (and so do the sentences of popular passages), so a
vector is looked up before it is computed. What is left is handed to one batcher thread: it takes every text
already waiting, waits up to `window_s` for more (until `max_batch` texts are waiting), and embeds them all in
one call. Under concurrency the model runs once for several requests, and one run at a time (onnxruntime's
own threads use the cores); a lone request waits for nobody when `window_s` is 0. Ingestion never comes
here: it embeds through the plain embedder, in its own worker threads. Measurements: docs/benchmarks.md.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from core.retrieval.embedders import Embedder
from core.tracing import span


@dataclass
class _Job:
    texts: list[str]
    done: Future[np.ndarray] = field(default_factory=Future)


_STOP = None
T = TypeVar("T")


def _nothing() -> None:
    return None


class QueryEmbedder:
    """An Embedder for queries and answer sentences: cached (`cache_size` vectors, least recently used out
    first; 0 turns the cache off) and micro-batched across threads. `lowercase`: the model is uncased, so
    texts differing in case share a vector. Thread-safe; `close` stops the batcher thread."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        cache_size: int = 4096,
        window_s: float = 0.0,
        max_batch: int = 8,
        lowercase: bool = False,
    ) -> None:
        self._embedder = embedder
        self._cache_size = cache_size
        self._window_s = window_s
        self._max_batch = max_batch
        self._lowercase = lowercase
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.model_runs = 0
        """Calls made to the wrapped embedder (tests read it)."""
        self.cache_hits = 0
        """Texts answered from the cache."""

    @property
    def model_id(self) -> str:
        """The wrapped embedder's model id."""
        return self._embedder.model_id

    @property
    def dimension(self) -> int:
        """The wrapped embedder's dimension."""
        return self._embedder.dimension

    def key(self, text: str) -> str:
        """The cache key of a text: its words joined by single spaces (lowercased for an uncased model)."""
        joined = " ".join(text.split())
        return joined.lower() if self._lowercase else joined

    def embed(self, texts: list[str]) -> np.ndarray:
        """An (n, dimension) float32 array, rows L2-normalised, as the wrapped embedder gives them. Blocking:
        call it from a worker thread. Traced as one `embed` span (in the caller's trace, batched or not)."""
        return self.embed_while(texts, _nothing)[0]

    def embed_while(self, texts: list[str], meanwhile: Callable[[], T]) -> tuple[np.ndarray, T]:
        """`embed`, calling `meanwhile()` in this thread while the batcher thread embeds (a database read,
        say); returns the vectors and what `meanwhile` returned."""
        with span("embed", {"docent.embedder.model": self.model_id, "docent.texts": len(texts)}) as traced:
            vectors, hits, other = self._embed(texts, meanwhile)
            if traced is not None:
                traced.set_attribute("docent.cache_hits", hits)
            return vectors, other

    def _embed(self, texts: list[str], meanwhile: Callable[[], T]) -> tuple[np.ndarray, int, T]:
        keys = [self.key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for key in keys:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[key] = self._cache[key]
            hits = sum(key in found for key in keys)
            self.cache_hits += hits
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if not missing:
            other = meanwhile()
        else:
            originals = {self.key(t): t for t in texts}
            pending = self._submit([originals[k] for k in missing])
            other = meanwhile()
            vectors = pending.result()
            fresh = dict(zip(missing, vectors, strict=True))
            found.update(fresh)
            if self._cache_size:
                with self._lock:
                    self._cache.update(fresh)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32), hits, other
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False), hits, other

    def _submit(self, texts: list[str]) -> Future[np.ndarray]:
        """Hand texts to the batcher thread (started on first use); their vectors come in the future."""
        job = _Job(texts)
        with self._lock:
            if self._closed:
                raise RuntimeError("the query embedder is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
                self._thread.start()
            self._jobs.put(job)
        return job.done

    def _run(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            jobs = [job]
            waiting = len(job.texts)
            deadline = time.monotonic() + self._window_s
            while waiting < self._max_batch:
                try:
                    left = deadline - time.monotonic()
                    more = self._jobs.get(timeout=left) if left > 0 else self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._jobs.put(_STOP)
                    break
                jobs.append(more)
                waiting += len(more.texts)
            self._embed_jobs(jobs)

    def _embed_jobs(self, jobs: list[_Job]) -> None:
        try:
            vectors = self._embedder.embed([t for j in jobs for t in j.texts])
            self.model_runs += 1
        except BaseException as exc:  # each caller raises it
            for j in jobs:
                j.done.set_exception(exc)
            return
        start = 0
        for j in jobs:
            j.done.set_result(vectors[start : start + len(j.texts)])
            start += len(j.texts)

    def close(self) -> None:
        """Stop the batcher thread once the texts handed to it are embedded; safe to call twice."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join()
