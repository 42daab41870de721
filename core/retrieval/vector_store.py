"""Chroma access: one client per process, collections guarded by the embedding model that filled them.
Only writing creates a collection; reading one that does not exist finds nothing."""

from __future__ import annotations

import ipaddress
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.settings import Settings
from core.types import Passage

if TYPE_CHECKING:  # chromadb takes a second to import: only the commands that use Chroma pay for it
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]


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


def open_chroma(settings: Settings) -> ClientAPI:
    """Open the Chroma client the settings name: files under the data dir, or a Chroma server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_mode == "http":
        return chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
        )
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def open_vector_store(settings: Settings, *, model_id: str, dimension: int) -> VectorStore:
    """The configured Chroma client, wrapped for one embedding model."""
    return VectorStore(
        open_chroma(settings),
        model_id=model_id,
        dimension=dimension,
        cache_size=settings.collection_cache_size,
    )


class VectorStore:
    """Chunks with their embeddings in named Chroma collections (cosine space)."""

    def __init__(self, client: ClientAPI, *, model_id: str, dimension: int, cache_size: int = 256) -> None:
        self._client = client
        self._model_id = model_id
        self._dimension = dimension
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._collections: OrderedDict[str, Collection] = OrderedDict()

    def collection(self, name: str, *, create: bool = False) -> Collection:
        """A collection (created only with `create`, else UnknownCollectionError), refusing one made with
        another embedding model. The handles of the most recently used ones are kept."""
        with self._cache_lock:
            if (cached := self._collections.get(name)) is not None:
                self._collections.move_to_end(name)
                return cached
        from chromadb.errors import InvalidArgumentError

        validate_collection_name(name)
        try:
            if create:
                collection = self._client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedding_model": self._model_id, "embedding_dimension": self._dimension},
                )
            else:
                collection = self._client.get_collection(name)
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
            self._collections[name] = collection
            while len(self._collections) > self._cache_size:
                self._collections.popitem(last=False)
        return collection

    def _existing(self, name: str) -> Collection | None:
        """The collection, or None when there is none by that name."""
        try:
            return self.collection(name)
        except UnknownCollectionError:
            return None

    def exists(self, name: str) -> bool:
        """Whether Chroma has a collection by this name (whichever model filled it); creates nothing."""
        with self._cache_lock:
            if name in self._collections:
                return True
        try:
            self._client.get_collection(validate_collection_name(name))
        except (_not_found(), ValueError):
            return False
        return True

    def names(self) -> list[str]:
        """Every collection's name."""
        return sorted(collection.name for collection in self._client.list_collections())

    @property
    def model_id(self) -> str:
        """The embedding model this store writes and queries with."""
        return self._model_id

    def stored_model(self, name: str) -> str | None:
        """The embedding model recorded on an existing collection (None: no such collection or no record)."""
        try:
            collection = self._client.get_collection(name)
        except (_not_found(), ValueError):
            return None
        model = (collection.metadata or {}).get("embedding_model")
        return str(model) if model is not None else None

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
        staging_name = f"{name}.reindex"
        with self._cache_lock:
            self._collections.pop(name, None)
        try:
            old: Collection | None = self._client.get_collection(name)
        except (_not_found(), ValueError):
            old = None
        staging = self._client.get_or_create_collection(
            staging_name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": self._model_id, "embedding_dimension": self._dimension},
        )
        if (staging.metadata or {}).get("embedding_model") != self._model_id:  # left by another model's run
            self._client.delete_collection(staging_name)
            return self.reembed(name, embed, page_size=page_size, on_progress=on_progress)
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
                    staging.upsert(
                        ids=[page["ids"][i] for i in todo],
                        documents=texts,
                        metadatas=[dict(metadatas[i] or {}) for i in todo],
                        embeddings=embed(texts),
                    )
                if on_progress is not None:
                    on_progress(min(offset + page_size, total), total)
            self._client.delete_collection(name)
        staging.modify(name=name)
        return staging.count()

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids the collection already holds."""
        if not ids or (collection := self._existing(name)) is None:
            return set()
        return set(collection.get(ids=list(ids), include=[])["ids"])

    def add(
        self,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
        embeddings: np.ndarray,
    ) -> None:
        """Write chunks in batches below Chroma's maximum batch size (creating the collection)."""
        collection = self.collection(name, create=True)
        step = max(1, min(self._client.get_max_batch_size(), 1000))
        for start in range(0, len(ids), step):
            end = start + step
            collection.upsert(
                ids=list(ids[start:end]),
                documents=list(texts[start:end]),
                metadatas=[dict(m) for m in metadatas[start:end]],
                embeddings=embeddings[start:end],
            )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove chunks by id."""
        if ids and (collection := self._existing(name)) is not None:
            collection.delete(ids=list(ids))

    def source_ids(self, name: str, source: str) -> set[str]:
        """Ids of every chunk of one source."""
        if (collection := self._existing(name)) is None:
            return set()
        return set(collection.get(where={"source": source}, include=[])["ids"])

    def passages(self, name: str, ids: Sequence[str], query: np.ndarray) -> dict[str, Passage]:
        """Chunks by id, scored by cosine similarity to the query vector (the best of several rows)."""
        if not ids or (collection := self._existing(name)) is None:
            return {}
        got = collection.get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
        documents = got["documents"] or []
        metadatas = got["metadatas"] or []
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        return {
            chunk_id: _passage(
                chunk_id, text, meta or {}, float(np.max(np.atleast_2d(query) @ np.asarray(vector)))
            )
            for chunk_id, text, meta, vector in zip(got["ids"], documents, metadatas, embeddings, strict=True)
        }

    def count(self, name: str) -> int:
        """Number of chunks in a collection."""
        collection = self._existing(name)
        return 0 if collection is None else collection.count()

    def search(self, name: str, query: np.ndarray, k: int) -> list[Passage]:
        """The k chunks nearest to a query vector, best first, with cosine similarity as score."""
        if (collection := self._existing(name)) is None:
            return []
        result = collection.query(
            query_embeddings=query.reshape(1, -1),
            n_results=k,
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


def _not_found() -> type[Exception]:
    from chromadb.errors import NotFoundError

    return NotFoundError
