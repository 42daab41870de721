"""Per-run overrides of the settings, passed as LangGraph's runtime context (`context=` or Studio's form)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DocentContext:
    """Run-time choices; a None field falls back to the service's settings."""

    k: int | None = None
    """How many passages to retrieve (1-50)."""

    collection: str | None = None
    """Chroma collection to search."""

    retriever: Literal["dense", "bm25", "hybrid"] | None = None
    """Dense, BM25, or both fused (reciprocal rank fusion)."""

    model: str | None = None
    """Answering model, by name (see GET /health for those available)."""
