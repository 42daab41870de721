"""Cost of an answer from a price table: USD per million prompt and completion tokens, by model."""

from __future__ import annotations

from collections.abc import Mapping

from core.types import Usage

Prices = Mapping[str, tuple[float, float]]

# USD per million (prompt, completion) tokens; DOCENT_LLM_PRICES adds to or overrides these.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1": (2.00, 8.00),
}

# Providers that run on hardware we already pay for: no per-token bill.
FREE_PROVIDERS = frozenset({"extractive", "local", "ollama"})


def answer_cost(provider: str, model: str, usage: Usage | None, prices: Prices) -> float | None:
    """USD for one answer: priced models by the table, free providers 0, anything else unknown (None)."""
    price = prices.get(f"{provider}/{model}") or prices.get(model)
    if price is not None:
        if usage is None:
            return None
        prompt, completion = price
        return round((usage["prompt_tokens"] * prompt + usage["completion_tokens"] * completion) / 1e6, 8)
    return 0.0 if provider in FREE_PROVIDERS else None
