"""Re-embed a collection with the configured embedder, from the chunk text Chroma already holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.retrieval.chunk_store import ChunkStore
    from core.retrieval.embedders import Embedder


@dataclass(frozen=True)
class ReindexResult:
    """What a re-embedding did: the collection, the model before and after, and how many chunks it holds."""

    collection: str
    previous_model: str | None
    model: str
    chunks: int
    skipped: bool


def reindex(
    store: ChunkStore,
    embedder: Embedder,
    collection: str,
    *,
    force: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReindexResult:
    """Re-embed every chunk of `collection` with `embedder` (nothing is fetched or parsed again).

    A collection already embedded with this model is left alone unless `force`. The keyword index and chunk
    ids do not depend on the embedder, so only the vectors and the source records' model change.
    """
    previous = store.vectors.stored_model(collection)
    if previous == embedder.model_id and not force:
        return ReindexResult(collection, previous, embedder.model_id, store.vectors.count(collection), True)
    chunks = store.vectors.reembed(collection, embedder.embed, on_progress=on_progress)
    store.sources.set_embedding_model(collection, embedder.model_id)
    return ReindexResult(collection, previous, embedder.model_id, chunks, False)
