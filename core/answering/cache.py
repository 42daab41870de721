"""The semantic answer cache: a first question close enough to one already answered, on the same collection,
the same corpus version and the same answering choices, gets the stored answer back without retrieval or a
model call.

A lookup embeds the question with the query path's embedder (core/retrieval/query_embedder.py), whose
vector cache then hands the same vector to retrieval on a miss: the question is embedded once either way. An
answer is kept under its *scope*, a hash of everything besides the question that decides it: the stored
collection (which names its workspace), the collection's corpus version (core/storage/corpus.py, bumped by
every ingest, reindex and source removal), the model, the retriever, k, the filter and the settings that
shape answers (system prompt, sampling, guardrails, ...). A change of corpus so makes every older answer of
the collection unreachable at once, in every process; they age out of the store by themselves.

Two stores: a bounded LRU in process memory (the default), or Redis in server mode, so that every replica
serves what any of them answered. docs/cache.md has the threshold's measurement and the figures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, is_dataclass
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from core.answering.output_guard import withheld
from core.metrics import ANSWER_CACHE
from core.retrieval.query_embedder import QueryEmbedder
from core.settings import Settings
from core.storage.corpus import CorpusVersions
from core.types import ANSWER_FIELDS, AnswerFields, DocentContext

if TYPE_CHECKING:
    import redis

    from core.storage.records import TurnRecords

log = logging.getLogger(__name__)

ANSWER_SETTINGS = (
    "system_prompt",
    "llm_provider",
    "llm_model",
    "llm_fallbacks",
    "llm_max_tokens",
    "llm_temperature",
    "prompt_history_turns",
    "prompt_history_tokens",
    "min_score",
    "answer_sentences",
    "extractive_dense_candidates",
    "retrieval_depth",
    "rrf_k",
    "dense_weight",
    "bm25_weight",
    "bm25_flat_weight",
    "bm25_peak_ratio",
    "reranker",
    "rerank_candidates",
    "distinct_pages",
    "embeddings_provider",
    "embeddings_model",
    "blocked_output_patterns",
    "redact_pii",
)
"""Settings that change an answer to the same question over the same corpus: part of every scope, so that
replicas configured differently never serve each other's answers."""

REDIS_TIMEOUT_S = 1.0
"""Connect and read timeout of one Redis call; past it the lookup is a miss (the cache fails open)."""

REDIS_SCOPE_ENTRIES = 256
"""Answers one scope keeps in Redis at most: a lookup reads every vector of its scope (1.5 KB each; 0.5 ms
for 100, 5 ms for 1,000 and 100 ms for 4,000 on loopback), so a scope keeps its newest few hundred."""


@dataclass(frozen=True)
class StoredAnswer:
    """One answered question as the cache keeps it."""

    question: str
    answer: AnswerFields
    stored_at: float
    """Epoch seconds."""

    def to_json(self) -> str:
        """The entry as Redis keeps it."""
        return json.dumps(
            {"question": self.question, "answer": self.answer, "stored_at": self.stored_at},
            ensure_ascii=False,
        )

    @staticmethod
    def from_json(text: str | bytes) -> StoredAnswer:
        """An entry read back from Redis."""
        data = json.loads(text)
        return StoredAnswer(data["question"], cast(AnswerFields, data["answer"]), float(data["stored_at"]))


@dataclass(frozen=True)
class CacheProbe:
    """A first turn's lookup: the scope its answer belongs to, the question's vector and, on a hit, the
    stored answer with its cosine similarity to the question."""

    scope: str
    vector: np.ndarray
    hit: StoredAnswer | None = None
    similarity: float | None = None


class AnswerStore(Protocol):
    """Where answers are kept, by scope: the nearest one to a vector, and a new one."""

    def nearest(self, scope: str, vector: np.ndarray) -> tuple[float, StoredAnswer] | None:
        """The scope's entry with the highest cosine similarity to `vector` (unit length), and that
        similarity; None for an empty scope."""
        ...

    def put(self, scope: str, vector: np.ndarray, entry: StoredAnswer) -> None:
        """Keep an entry (one with the same question in the scope is replaced)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _entry_id(question: str) -> str:
    return hashlib.sha256(" ".join(question.lower().split()).encode()).hexdigest()[:16]


class MemoryAnswerStore:
    """A bounded LRU of answers in process memory (`max_entries` over every scope, the least recently served
    or stored out first). Thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[np.ndarray, StoredAnswer]] = OrderedDict()
        self._scopes: dict[str, dict[str, None]] = {}
        self._matrices: dict[str, tuple[list[str], np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def nearest(self, scope: str, vector: np.ndarray) -> tuple[float, StoredAnswer] | None:
        """Scanned as one matrix product over the scope's vectors (rebuilt after a change)."""
        with self._lock:
            ids = self._scopes.get(scope)
            if not ids:
                return None
            if (matrix := self._matrices.get(scope)) is None:
                order = list(ids)
                stacked = np.stack([self._entries[(scope, i)][0] for i in order])
                matrix = self._matrices[scope] = (order, stacked)
            order, stacked = matrix
            scores = stacked @ vector
            best = int(np.argmax(scores))
            key = (scope, order[best])
            self._entries.move_to_end(key)
            return float(scores[best]), self._entries[key][1]

    def put(self, scope: str, vector: np.ndarray, entry: StoredAnswer) -> None:
        """Stored; the least recently used entries beyond `max_entries` are dropped."""
        entry_id = _entry_id(entry.question)
        with self._lock:
            self._entries[(scope, entry_id)] = (np.asarray(vector, dtype=np.float32), entry)
            self._entries.move_to_end((scope, entry_id))
            self._scopes.setdefault(scope, {})[entry_id] = None
            self._matrices.pop(scope, None)
            while len(self._entries) > self._max:
                (old_scope, old_id), _ = self._entries.popitem(last=False)
                ids = self._scopes[old_scope]
                del ids[old_id]
                if not ids:
                    del self._scopes[old_scope]
                self._matrices.pop(old_scope, None)

    def close(self) -> None:
        """Nothing to release."""


class RedisAnswerStore:
    """Answers in Redis, shared by every replica: per scope, a hash of vectors (float32 bytes), a hash of
    entries (JSON) and a sorted set of when each was stored. A scope keeps `max_entries` at most (at most
    REDIS_SCOPE_ENTRIES; the oldest out first) and expires `ttl_s` after its last write, which is how the
    scopes of older corpus versions leave. A lookup is two round trips: the scope's vectors, then the best
    entry."""

    def __init__(self, client: redis.Redis, prefix: str, *, max_entries: int, ttl_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._max = min(max_entries, REDIS_SCOPE_ENTRIES)
        self._ttl_ms = max(1, int(ttl_s * 1000))

    @classmethod
    def from_url(cls, url: str, prefix: str, *, max_entries: int, ttl_s: float) -> RedisAnswerStore:
        """A store on a new client (connections are made on first use)."""
        import redis

        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        return cls(client, prefix, max_entries=max_entries, ttl_s=ttl_s)

    def _keys(self, scope: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:answers:{scope}"
        return f"{base}:vectors", f"{base}:entries", f"{base}:order"

    def nearest(self, scope: str, vector: np.ndarray) -> tuple[float, StoredAnswer] | None:
        """The best vector of the scope, then its entry."""
        vectors_key, entries_key, _ = self._keys(scope)
        stored = cast(dict[bytes, bytes], self._client.hgetall(vectors_key))
        if not stored:
            return None
        ids = list(stored)
        matrix = np.frombuffer(b"".join(stored[i] for i in ids), dtype=np.float32).reshape(len(ids), -1)
        if matrix.shape[1] != vector.shape[0]:
            return None
        scores = matrix @ vector
        best = int(np.argmax(scores))
        found = cast(bytes | None, self._client.hget(entries_key, ids[best]))
        if found is None:  # dropped between the two reads
            return None
        return float(scores[best]), StoredAnswer.from_json(found)

    def put(self, scope: str, vector: np.ndarray, entry: StoredAnswer) -> None:
        """Written in one transaction; a scope over `max_entries` then loses its oldest entries."""
        vectors_key, entries_key, order_key = self._keys(scope)
        entry_id = _entry_id(entry.question)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(vectors_key, entry_id, np.asarray(vector, dtype=np.float32).tobytes())
        pipe.hset(entries_key, entry_id, entry.to_json())
        pipe.zadd(order_key, {entry_id: entry.stored_at})
        for key in (vectors_key, entries_key, order_key):
            pipe.pexpire(key, self._ttl_ms)
        pipe.zcard(order_key)
        size = int(pipe.execute()[-1])
        if size > self._max:
            dropped = [
                i
                for i, _ in cast(list[tuple[bytes, float]], self._client.zpopmin(order_key, size - self._max))
            ]
            if dropped:
                self._client.hdel(vectors_key, *dropped)
                self._client.hdel(entries_key, *dropped)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


def _canonical(value: object) -> object:
    """A JSON-ready form of a context value (a filter dataclass or mapping), for hashing."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


class AnswerCache:
    """Looks answers up for first turns and keeps those worth serving again. Blocking (an embedding, a
    database read, perhaps Redis): call it from a worker thread. A Redis that fails makes a lookup a miss and
    a write a no-op, logged: the cache never fails a turn."""

    def __init__(
        self,
        store: AnswerStore,
        embedder: QueryEmbedder,
        versions: CorpusVersions,
        records: TurnRecords,
        settings: Settings,
        *,
        default_model: str,
    ) -> None:
        """`embedder`: the query path's (its vector cache shares the question's vector with retrieval);
        `records`: where a turn served from the cache is recorded; `default_model`: the model a turn that
        names none is answered by."""
        self.store = store
        self.records = records
        self._embedder = embedder
        self._versions = versions
        self._settings = settings
        self._default_model = default_model
        self._fingerprint = hashlib.sha256(
            json.dumps(
                settings.model_dump(include=set(ANSWER_SETTINGS), mode="json"), sort_keys=True
            ).encode()
        ).hexdigest()[:16]
        self.threshold = settings.cache_threshold

    def scope(self, context: DocentContext) -> str:
        """The key every answer for this context shares (the corpus version read now)."""
        settings = self._settings
        collection = context.collection or settings.collection
        parts = {
            "collection": collection,
            "version": self._versions.current(collection),
            "model": context.model or self._default_model,
            "retriever": context.retriever or settings.retriever,
            "k": context.k or settings.k,
            "filter": _canonical(context.filter),
            "settings": self._fingerprint,
            "embedder": self._embedder.model_id,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def probe(self, question: str, context: DocentContext) -> CacheProbe:
        """The question's scope and vector, and the stored answer to serve if one is close enough. The
        corpus version (the scope) is read while the query embedder's thread embeds the question."""
        vectors, scope = self._embedder.embed_while([question.strip()], lambda: self.scope(context))
        return self.lookup(scope, vectors[0], question)

    def lookup(self, scope: str, vector: np.ndarray, question: str) -> CacheProbe:
        """The probe of a question whose scope and vector are known: the nearest stored answer of the scope,
        served when close enough, fresh and asking the same thing (counted as a hit or a miss)."""
        try:
            found = self.store.nearest(scope, vector)
        except Exception as exc:  # Redis down or slow: answer as if nothing were cached
            log.warning("answer cache lookup failed, answering without it: %s", exc)
            found = None
        if found is not None:
            similarity, entry = found
            fresh = time.time() - entry.stored_at <= self._settings.cache_ttl_s
            if similarity >= self.threshold and fresh and same_ask(question, entry.question):
                ANSWER_CACHE.labels(result="hit").inc()
                return CacheProbe(scope, vector, entry, similarity)
        ANSWER_CACHE.labels(result="miss").inc()
        return CacheProbe(scope, vector)

    def remember(self, probe: CacheProbe, question: str, answer: AnswerFields) -> bool:
        """Keep a first turn's answer under the probe's scope (read before the turn ran, so an answer of a
        corpus that changed meanwhile lands under the old version, where nobody looks). Degraded answers,
        withheld ones and empty ones are not kept. True when kept."""
        if not cacheable(answer):
            return False
        fields = cast(AnswerFields, {name: answer.get(name) for name in ANSWER_FIELDS if name != "cached"})
        try:
            self.store.put(probe.scope, probe.vector, StoredAnswer(question.strip(), fields, time.time()))
        except Exception as exc:
            log.warning("answer cache write failed, the answer is not cached: %s", exc)
            return False
        return True

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()


_QUESTION_WORDS = frozenset(("what", "when", "where", "who", "whom", "whose", "which", "why", "how"))
_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


def same_ask(question: str, other: str) -> bool:
    """Whether two questions close in embedding space ask for the same thing as far as words can tell: the
    same question words ("when" is not "where", which MiniLM barely tells apart) where both have any, and
    the same numbers ("in 2008" is not "in 2010")."""
    words, others = _WORD.findall(question.lower()), _WORD.findall(other.lower())
    asked, other_asked = _QUESTION_WORDS.intersection(words), _QUESTION_WORDS.intersection(others)
    if asked and other_asked and asked != other_asked:
        return False
    numbers = {w for w in words if any(c.isdigit() for c in w)}
    return numbers == {w for w in others if any(c.isdigit() for c in w)}


def cacheable(answer: AnswerFields) -> bool:
    """An answer worth serving again: answered by the chosen model, not withheld, not empty, not itself
    served from the cache."""
    return (
        not answer.get("degraded")
        and not answer.get("cached")
        and not withheld(answer.get("output_rule"))
        and bool((answer.get("answer") or "").strip())
    )


def open_answer_cache(
    settings: Settings,
    embedder: QueryEmbedder,
    versions: CorpusVersions,
    records: TurnRecords,
    default_model: str,
) -> AnswerCache | None:
    """The configured cache (None with DOCENT_CACHE=off): Redis in server mode, else process memory."""
    if settings.cache == "off":
        return None
    store: AnswerStore
    if settings.server_mode:
        store = RedisAnswerStore.from_url(
            settings.redis_url,
            settings.redis_prefix,
            max_entries=settings.cache_max_entries,
            ttl_s=settings.cache_ttl_s,
        )
    else:
        store = MemoryAnswerStore(settings.cache_max_entries)
    return AnswerCache(store, embedder, versions, records, settings, default_model=default_model)
