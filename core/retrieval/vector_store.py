"""Chroma access: one client per process, collections guarded by the embedding model that filled them.
Only writing creates a collection; reading one that does not exist finds nothing.

The client is embedded (files under the data dir) or a Chroma server (`DOCENT_CHROMA_URL`). Either can fail
under a running process: the server stops, or another process writes the embedded files, after which this
process's Chroma answers `InternalError: Error finding id`. Every call then reopens the client once and
retries; if that fails too it raises DependencyUnavailable (HTTP 503), never a bare Chroma error.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from core.errors import DependencyUnavailable
from core.retrieval.filters import SOURCE_NAME, SOURCE_STEM, SearchFilter
from core.settings import Settings
from core.types import Passage

if TYPE_CHECKING:  # chromadb takes a second to import: only the commands that use Chroma pay for it
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

log = logging.getLogger(__name__)
T = TypeVar("T")

CHROMA_CONNECT_TIMEOUT_S = 2.0
"""Connect timeout to a Chroma server: a stopped server is reported within it, not waited for."""
CHROMA_TIMEOUT_S = 20.0
"""Read and write timeout of one Chroma server call (chromadb's own client has none)."""

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]

CONTEXT_KEY = "context"
"""Chunk metadata: the name of the document a chunk comes from, embedded and indexed with its text."""


def indexed_text(text: str, metadata: Mapping[str, object]) -> str:
    """What is embedded and keyword-indexed for a chunk: its document's name, then its text. A passage's shown
    text stays the chunk's own; the name lets a question that names the document (a company, an article)
    find that document's chunks among many that read alike (tables of every filing)."""
    context = metadata.get(CONTEXT_KEY)
    return f"{context}: {text}" if context else text


def chroma_where(where: SearchFilter | None) -> dict[str, Any] | None:
    """A filter as Chroma's `where` over chunk metadata (None for no restriction). Its sources should be
    widened to absolute paths first (`SearchFilter.source_keys`); each may equal the chunk's `source`, its
    `source_name` or its `source_stem` (Chroma's `where` has no LIKE, so the keys are stored)."""
    if where is None or where.is_empty():
        return None
    clauses: list[dict[str, Any]] = []
    if where.sources:
        keys = list(where.sources)
        clauses.append({"$or": [{key: {"$in": keys}} for key in ("source", SOURCE_NAME, SOURCE_STEM)]})
    for key, values in (("kind", where.kinds), ("title", where.titles), ("section", where.sections)):
        if values:
            clauses.append({key: {"$in": list(values)}})
    bounds = (
        ("page", "$gte", where.page_from),
        ("page", "$lte", where.page_to),
        ("ingested_at", "$gt", where.ingested_after_epoch()),
        ("ingested_at", "$lt", where.ingested_before_epoch()),
    )
    clauses.extend({key: {operator: bound}} for key, operator, bound in bounds if bound is not None)
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class CollectionError(RuntimeError):
    """A collection this process cannot use: a bad name, or another embedding model's vectors."""


class EmbeddingMismatchError(CollectionError):
    """A collection was filled by another embedding model than the one configured."""


class UnknownCollectionError(CollectionError):
    """No collection has this name (reading never creates one)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no collection {name!r}")
        self.name = name


_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]")


def validate_collection_name(name: str) -> str:
    """Chroma's naming rules, checked without opening Chroma; returns the name or raises CollectionError."""
    if not _COLLECTION_NAME.fullmatch(name):
        problem = "use 3-512 characters from A-Z a-z 0-9 . _ -, starting and ending with a letter or digit"
    elif ".." in name:
        problem = "two consecutive periods (..) are not allowed"
    elif _is_ipv4(name):
        problem = "an IPv4 address is not allowed"
    else:
        return name
    raise CollectionError(f"invalid collection name: {problem}. Got: {name}")


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def chroma_server_url(settings: Settings) -> str | None:
    """The Chroma server's base URL (`DOCENT_CHROMA_URL`, or the older chroma_mode=http host and port); None
    for the embedded store."""
    if settings.chroma_url:
        return settings.chroma_url.rstrip("/")
    if settings.chroma_mode == "http":
        return f"http://{settings.chroma_host}:{settings.chroma_port}"
    return None


def open_chroma(settings: Settings) -> ClientAPI:
    """Open the Chroma client the settings name: files under the data dir, or a Chroma server
    (DependencyUnavailable when it does not answer its heartbeat within seconds)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if (url := chroma_server_url(settings)) is not None:
        return _http_client(url, chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def _http_client(url: str, chroma_settings: Any) -> ClientAPI:
    """A client of the Chroma server at url, whose every call has a deadline."""
    import chromadb
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"DOCENT_CHROMA_URL must look like http://host:port, got {url!r}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    timeout = httpx.Timeout(CHROMA_TIMEOUT_S, connect=CHROMA_CONNECT_TIMEOUT_S)
    # chromadb's constructor makes three calls with no deadline: a heartbeat with one first fails fast.
    try:
        httpx.get(f"{url}/api/v2/heartbeat", timeout=timeout).raise_for_status()
    except httpx.HTTPError as exc:
        raise DependencyUnavailable("chroma", f"the Chroma server at {url} does not answer: {exc}") from exc
    host = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.path.strip("/") else parts.hostname
    try:
        client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings)
    except (ValueError, httpx.HTTPError) as exc:  # chromadb reports a refused connection as ValueError
        raise DependencyUnavailable("chroma", f"the Chroma server at {url} does not answer: {exc}") from exc
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):  # chromadb leaves its httpx session without timeouts
        session.timeout = timeout
    return client


def open_vector_store(settings: Settings, *, model_id: str, dimension: int) -> VectorStore:
    """The configured Chroma client, wrapped for one embedding model. A Chroma server that is down at start
    leaves the store unconnected: it connects on first use, so the process starts and /ready says why."""
    server = chroma_server_url(settings)
    try:
        client: ClientAPI | None = open_chroma(settings)
    except DependencyUnavailable as exc:
        log.warning("%s; connecting on first use", exc)
        client = None
    return VectorStore(
        client,
        model_id=model_id,
        dimension=dimension,
        cache_size=settings.collection_cache_size,
        reopen=lambda: open_chroma(settings),
        files_stamp=None if server else lambda: _file_stamp(settings.chroma_dir / "chroma.sqlite3"),
    )


class VectorStore:
    """Chunks with their embeddings in named Chroma collections (cosine space).

    Every call runs through `_call`: on a lost connection or a store changed underneath (see the module
    docstring) the client and the collection handles are reopened once and the call retried; failing again, it
    raises DependencyUnavailable. Without `reopen` the same client is kept and only the handles are dropped.

    `files_stamp` (embedded stores) stamps the store's files; a call that finds it changed while this store
    wrote nothing reopens the client first, so it answers from what another process wrote, not from the stale
    index that process left this one with.
    """

    def __init__(
        self,
        client: ClientAPI | None,
        *,
        model_id: str,
        dimension: int,
        cache_size: int = 256,
        reopen: Callable[[], ClientAPI] | None = None,
        files_stamp: Callable[[], object] | None = None,
    ) -> None:
        """`client`: None to connect on first use (then `reopen` is required)."""
        if client is None and reopen is None:
            raise ValueError("a VectorStore needs a client or a way to open one")
        self._client = client
        self._reopen = reopen
        self._generation = 0  # bumped whenever the client is dropped: handles of older ones are not used
        self._client_lock = threading.Lock()
        self._files_stamp = files_stamp if reopen is not None else None
        self._stamp_lock = threading.Lock()
        self._seen_stamp: object = (
            self._files_stamp() if self._files_stamp is not None and client is not None else None
        )
        self._writing = 0  # calls of this store writing now: the files change under them by our own hand
        self._model_id = model_id
        self._dimension = dimension
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._collections: OrderedDict[str, tuple[int, Collection]] = OrderedDict()

    # ------------------------------------------------------------------------------ the client, recovered

    def _connection(self) -> tuple[ClientAPI, int]:
        """The current client and its generation, opening one when there is none."""
        with self._client_lock:
            if self._client is None:
                assert self._reopen is not None
                self._client = self._reopen()
                if self._files_stamp is not None:
                    with self._stamp_lock:
                        self._seen_stamp = self._files_stamp()
            return self._client, self._generation

    def _reopen_if_written_elsewhere(self) -> None:
        """Reopen the client if the store's files changed since it opened or last wrote them, and no write of
        its own is running (writing to another process's files through a stale index would undo theirs)."""
        if self._files_stamp is None or self._client is None:
            return
        with self._stamp_lock:
            changed = not self._writing and self._files_stamp() != self._seen_stamp
        if changed:
            log.info("the Chroma files changed under this process; reopening them")
            self._drop(self._generation)

    @contextmanager
    def _writing_files(self) -> Iterator[None]:
        """Mark a write of this store's own; when the last one ends, its files' new stamp is ours."""
        with self._stamp_lock:
            self._writing += 1
        try:
            yield
        finally:
            with self._stamp_lock:
                self._writing -= 1
                if not self._writing and self._files_stamp is not None:
                    self._seen_stamp = self._files_stamp()

    def _drop(self, generation: int) -> None:
        """Forget the client of `generation` (unless a call that failed with it already did) and every
        collection handle; the next call opens a new client."""
        with self._client_lock:
            if generation != self._generation:
                return
            self._generation += 1
            with self._cache_lock:
                self._collections.clear()
            if self._reopen is None:
                return
            old, self._client = self._client, None
        if old is not None:
            try:  # the last client of an embedded store closes its files, so the next one reads them anew
                _close(old)
            except Exception as exc:
                log.debug("closing the old Chroma client failed: %s", exc)

    def _lost(self, exc: Exception, generation: int) -> bool:
        """Whether a call failed because of the connection or a stale handle, which reopening may cure."""
        import httpx
        from chromadb.errors import InternalError, NotFoundError

        if generation != self._generation:  # the client was replaced while this call used it
            return True
        # NotFoundError escapes only from a handle whose collection was replaced (looking one up maps it).
        return isinstance(exc, InternalError | NotFoundError | httpx.TransportError)

    def _call(self, what: str, operation: Callable[[ClientAPI, int], T], *, writes: bool = False) -> T:
        """Run an operation on the client; if the client was lost, reopen it and retry once."""
        self._reopen_if_written_elsewhere()
        with self._writing_files() if writes else nullcontext():
            return self._run(what, operation)

    def _run(self, what: str, operation: Callable[[ClientAPI, int], T]) -> T:
        """The operation on the current client; a client lost to the failure is reopened for one retry."""
        for attempt in (1, 2):
            client, generation = self._connection()
            try:
                return operation(client, generation)
            except Exception as exc:
                if not self._lost(exc, generation):
                    raise
                self._drop(generation)
                if attempt == 2:
                    raise DependencyUnavailable(
                        "chroma", f"Chroma failed to {what}: {type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("Chroma failed to %s (%s: %s); reopening it", what, type(exc).__name__, exc)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """Raise DependencyUnavailable unless Chroma answers its heartbeat now."""
        self._call("answer", lambda client, _: client.heartbeat())

    # ------------------------------------------------------------------------------ collections

    def collection(self, name: str, *, create: bool = False) -> Collection:
        """A collection (created only with `create`, else UnknownCollectionError), refusing one made with
        another embedding model. The handles of the most recently used ones are kept."""
        return self._call(
            "open a collection",
            lambda client, generation: self._open(client, generation, name, create=create),
            writes=create,
        )

    def _open(self, client: ClientAPI, generation: int, name: str, *, create: bool = False) -> Collection:
        with self._cache_lock:
            if (cached := self._collections.get(name)) is not None and cached[0] == generation:
                self._collections.move_to_end(name)
                return cached[1]
        from chromadb.errors import InvalidArgumentError

        validate_collection_name(name)
        try:
            if create:
                collection = client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedding_model": self._model_id, "embedding_dimension": self._dimension},
                )
            else:
                collection = client.get_collection(name)
        except InvalidArgumentError as exc:
            raise CollectionError(f"collection {name!r}: {exc}") from exc
        except (_not_found(), ValueError) as exc:
            raise UnknownCollectionError(name) from exc
        meta = collection.metadata or {}
        stored, stored_dimension = meta.get("embedding_model"), meta.get("embedding_dimension")
        if (stored is not None and stored != self._model_id) or (
            stored_dimension is not None and stored_dimension != self._dimension
        ):
            raise EmbeddingMismatchError(
                f"collection {name!r} was embedded with {stored!r} ({stored_dimension} dimensions) but the "
                f"configured embedder is {self._model_id!r} ({self._dimension} dimensions); query it with "
                f"the model that filled it, ingest into another collection, or re-embed it with "
                f"`docent reindex --collection {name}`"
            )
        with self._cache_lock:
            if generation == self._generation:
                self._collections[name] = (generation, collection)
                while len(self._collections) > self._cache_size:
                    self._collections.popitem(last=False)
        return collection

    def _existing(self, client: ClientAPI, generation: int, name: str) -> Collection | None:
        """The collection, or None when there is none by that name."""
        try:
            return self._open(client, generation, name)
        except UnknownCollectionError:
            return None

    def exists(self, name: str) -> bool:
        """Whether Chroma has a collection by this name (whichever model filled it); creates nothing."""
        with self._cache_lock:
            if (cached := self._collections.get(name)) is not None and cached[0] == self._generation:
                return True
        validate_collection_name(name)

        def exists(client: ClientAPI, _: int) -> bool:
            try:
                client.get_collection(name)
            except (_not_found(), ValueError):
                return False
            return True

        return self._call("look up a collection", exists)

    def names(self) -> list[str]:
        """Every collection's name."""
        return self._call(
            "list collections", lambda client, _: sorted(c.name for c in client.list_collections())
        )

    @property
    def model_id(self) -> str:
        """The embedding model this store writes and queries with."""
        return self._model_id

    def stored_model(self, name: str) -> str | None:
        """The embedding model recorded on an existing collection (None: no such collection or no record)."""

        def stored_model(client: ClientAPI, _: int) -> str | None:
            try:
                collection = client.get_collection(name)
            except (_not_found(), ValueError):
                return None
            model = (collection.metadata or {}).get("embedding_model")
            return str(model) if model is not None else None

        return self._call("read a collection", stored_model)

    def reembed(
        self,
        name: str,
        embed: Callable[[list[str]], np.ndarray],
        *,
        page_size: int = 512,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-embed every chunk of a collection with this store's model, from the text Chroma holds.

        The new vectors fill a staging collection which then replaces the old one, so queries never see a mix
        of models. Interrupted, it resumes: chunks already in the staging collection are not embedded again.
        Returns the number of chunks in the collection.
        """
        return self._call(
            "re-embed a collection",
            lambda client, _: self._reembed(
                client, name, embed, page_size=page_size, on_progress=on_progress
            ),
            writes=True,
        )

    def _reembed(
        self,
        client: ClientAPI,
        name: str,
        embed: Callable[[list[str]], np.ndarray],
        *,
        page_size: int,
        on_progress: Callable[[int, int], None] | None,
    ) -> int:
        staging_name = f"{name}.reindex"
        with self._cache_lock:
            self._collections.pop(name, None)
        try:
            old: Collection | None = client.get_collection(name)
        except (_not_found(), ValueError):
            old = None
        staging = client.get_or_create_collection(
            staging_name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": self._model_id, "embedding_dimension": self._dimension},
        )
        if (staging.metadata or {}).get("embedding_model") != self._model_id:  # left by another model's run
            client.delete_collection(staging_name)
            return self._reembed(client, name, embed, page_size=page_size, on_progress=on_progress)
        if old is not None:
            total = old.count()
            for offset in range(0, total, page_size):
                page = old.get(limit=page_size, offset=offset, include=["documents", "metadatas"])
                done = set(staging.get(ids=page["ids"], include=[])["ids"]) if page["ids"] else set()
                todo = [i for i, chunk_id in enumerate(page["ids"]) if chunk_id not in done]
                if todo:
                    documents = page["documents"] or []
                    metadatas = page["metadatas"] or []
                    texts = [documents[i] for i in todo]
                    kept = [dict(metadatas[i] or {}) for i in todo]
                    staging.upsert(
                        ids=[page["ids"][i] for i in todo],
                        documents=texts,
                        metadatas=kept,  # type: ignore[arg-type]
                        embeddings=embed([indexed_text(t, m) for t, m in zip(texts, kept, strict=True)]),
                    )
                if on_progress is not None:
                    on_progress(min(offset + page_size, total), total)
            client.delete_collection(name)
        staging.modify(name=name)
        return staging.count()

    # ------------------------------------------------------------------------------ chunks

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids the collection already holds."""
        if not ids:
            return set()

        def existing_ids(client: ClientAPI, generation: int) -> set[str]:
            if (collection := self._existing(client, generation, name)) is None:
                return set()
            return set(collection.get(ids=list(ids), include=[])["ids"])

        return self._call("read chunk ids", existing_ids)

    def add(
        self,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
        embeddings: np.ndarray,
    ) -> None:
        """Write chunks in batches below Chroma's maximum batch size (creating the collection); upserts, so a
        retried call writes nothing twice."""

        def add(client: ClientAPI, generation: int) -> None:
            collection = self._open(client, generation, name, create=True)
            step = max(1, min(client.get_max_batch_size(), 1000))
            for start in range(0, len(ids), step):
                end = start + step
                collection.upsert(
                    ids=list(ids[start:end]),
                    documents=list(texts[start:end]),
                    metadatas=[dict(m) for m in metadatas[start:end]],
                    embeddings=embeddings[start:end],
                )

        self._call("write chunks", add, writes=True)

    def update_metadata(self, name: str, ids: Sequence[str], metadatas: Sequence[Metadata]) -> None:
        """Replace stored chunks' metadata (their vectors and text stay); unknown ids are ignored."""
        if not ids:
            return

        def update_metadata(client: ClientAPI, generation: int) -> None:
            if (collection := self._existing(client, generation, name)) is None:
                return
            step = max(1, min(client.get_max_batch_size(), 1000))
            for start in range(0, len(ids), step):
                end = start + step
                collection.update(ids=list(ids[start:end]), metadatas=[dict(m) for m in metadatas[start:end]])

        self._call("update chunk metadata", update_metadata, writes=True)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove chunks by id."""
        if not ids:
            return

        def delete(client: ClientAPI, generation: int) -> None:
            if (collection := self._existing(client, generation, name)) is not None:
                collection.delete(ids=list(ids))

        self._call("delete chunks", delete, writes=True)

    def source_ids(self, name: str, source: str) -> set[str]:
        """Ids of every chunk of one source."""

        def source_ids(client: ClientAPI, generation: int) -> set[str]:
            if (collection := self._existing(client, generation, name)) is None:
                return set()
            return set(collection.get(where={"source": source}, include=[])["ids"])

        return self._call("read a source's chunks", source_ids)

    def passages(self, name: str, ids: Sequence[str], query: np.ndarray) -> dict[str, Passage]:
        """Chunks by id, scored by cosine similarity to the query vector (the best of several rows)."""
        if not ids:
            return {}

        def passages(client: ClientAPI, generation: int) -> dict[str, Passage]:
            if (collection := self._existing(client, generation, name)) is None:
                return {}
            got = collection.get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
            documents = got["documents"] or []
            metadatas = got["metadatas"] or []
            embeddings = got["embeddings"] if got["embeddings"] is not None else []
            rows = np.atleast_2d(query)
            return {
                chunk_id: _passage(chunk_id, text, meta or {}, float(np.max(rows @ np.asarray(vector))))
                for chunk_id, text, meta, vector in zip(
                    got["ids"], documents, metadatas, embeddings, strict=True
                )
            }

        return self._call("read chunks", passages)

    def count(self, name: str) -> int:
        """Number of chunks in a collection."""

        def count(client: ClientAPI, generation: int) -> int:
            collection = self._existing(client, generation, name)
            return 0 if collection is None else collection.count()

        return self._call("count chunks", count)

    def search(
        self, name: str, query: np.ndarray, k: int, *, where: SearchFilter | None = None
    ) -> list[Passage]:
        """The k chunks nearest to a query vector, best first, with cosine similarity as score; with `where`,
        the k nearest of those it lets through (Chroma filters inside the query)."""
        chroma_filter = chroma_where(where)

        def search(client: ClientAPI, generation: int) -> list[Passage]:
            if (collection := self._existing(client, generation, name)) is None:
                return []
            result = collection.query(
                query_embeddings=query.reshape(1, -1),
                n_results=k,
                where=chroma_filter,
                include=["documents", "metadatas", "distances"],
            )
            ids = result["ids"][0]
            documents = (result["documents"] or [[]])[0]
            metadatas = (result["metadatas"] or [[]])[0]
            distances = (result["distances"] or [[]])[0]
            return [
                _passage(chunk_id, text, meta or {}, 1.0 - float(distance))
                for chunk_id, text, meta, distance in zip(ids, documents, metadatas, distances, strict=True)
            ]

        return self._call("search", search)

    def nearest(
        self, name: str, query: np.ndarray, k: int, *, where: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """As `search`, the ids and cosine similarities alone (a deep candidate list reads no text)."""
        chroma_filter = chroma_where(where)

        def nearest(client: ClientAPI, generation: int) -> list[tuple[str, float]]:
            if (collection := self._existing(client, generation, name)) is None:
                return []
            result = collection.query(
                query_embeddings=query.reshape(1, -1), n_results=k, where=chroma_filter, include=["distances"]
            )
            distances = (result["distances"] or [[]])[0]
            return [(i, 1.0 - float(d)) for i, d in zip(result["ids"][0], distances, strict=True)]

        return self._call("search", nearest)

    def close(self) -> None:
        """Release the client (an embedded store's files close with the process's last client)."""
        with self._client_lock:
            client, self._client = self._client, None
            self._generation += 1
        if client is not None and self._reopen is not None:
            _close(client)


def _passage(chunk_id: str, text: str, meta: Mapping[str, Any], score: float) -> Passage:
    page = meta.get("page")
    section = meta.get("section")
    paragraphs = meta.get("paragraph_ids")
    return Passage(
        chunk_id=chunk_id,
        text=text,
        source=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        page=int(page) if page is not None else None,
        section=str(section) if section else None,
        score=round(score, 4),
        paragraph_ids=str(paragraphs).split() if paragraphs else [],
    )


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """A file's modification time and size (None while it does not exist): every write to Chroma's embedded
    store goes through its SQLite file first."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _close(client: ClientAPI) -> None:
    """Close a client (chromadb's clients have `close`; its ClientAPI protocol does not declare it)."""
    close = getattr(client, "close", None)
    if callable(close):
        close()


def _not_found() -> type[Exception]:
    from chromadb.errors import NotFoundError

    return NotFoundError
