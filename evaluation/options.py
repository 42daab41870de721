"""Parsers of `docent eval`'s comma lists, shared with bench/retrieval_grid.py."""

from __future__ import annotations

from typing import cast

from core.types import RetrieverMode


def parse_ints(text: str) -> tuple[int, ...]:
    """`1,3,5,10` → (1, 3, 5, 10): positive, sorted, without repeats."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise ValueError(f"expected comma-separated whole numbers, got {text!r}") from exc
    if not values or values[0] < 1:
        raise ValueError(f"expected positive whole numbers, got {text!r}")
    return tuple(values)


def parse_retrievers(text: str) -> tuple[RetrieverMode, ...]:
    """`dense,bm25` → ("dense", "bm25"), in the order given."""
    from evaluation.runner import RETRIEVERS

    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in RETRIEVERS]
    if unknown or not names:
        raise ValueError(f"unknown retriever {', '.join(unknown) or repr(text)}; use {', '.join(RETRIEVERS)}")
    return tuple(cast("RetrieverMode", name) for name in names)
