"""Per-run overrides of the settings, passed as LangGraph's runtime context (`context=` or Studio's form)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocentContext:
    """Run-time choices; a None field falls back to the service's settings."""

    k: int | None = None
    """How many passages to retrieve (1-50)."""

    collection: str | None = None
    """Chroma collection to search."""

    model: str | None = None
    """Answering model, by name (see GET /health for those available)."""
