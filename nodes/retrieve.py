"""Node 2: build a search query from the latest message (and, for follow-ups, recent turns); fetch top-k."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from core.metrics import RETRIEVAL_LATENCY
from core.retrieval.filters import SearchFilter, filter_from_mapping
from core.retrieval.retriever import Retriever
from core.settings import Settings
from core.text import terms
from core.types import DocentContext

# A message that leans on an earlier turn: it opens with a connective or points back with a pronoun.
_FOLLOW_UP = re.compile(
    r"^\s*(and|but|so|also|then|what about|how about|why|how come)\b"
    r"|\b(it|its|that|this|these|those|they|them|their|theirs|he|him|his|she|her|hers|there|one|ones|same)\b",
    re.IGNORECASE,
)
_SHORT = 2  # content terms: a message this short rarely names its topic


class RetrieveInput(TypedDict):
    """The thread's messages, the latest last."""

    messages: list[AnyMessage]


def is_follow_up(message: str) -> bool:
    """True when the message probably depends on earlier turns to make sense."""
    return bool(_FOLLOW_UP.search(message)) or len(terms(message)) <= _SHORT


def build_search_query(messages: Sequence[AnyMessage], history_turns: int) -> str:
    """The latest user message; for a follow-up, prefixed with up to `history_turns` earlier user messages."""
    asked = [m.text for m in messages if isinstance(m, HumanMessage)]
    if not asked:
        return ""
    latest = asked[-1]
    earlier = asked[:-1][-history_turns:] if history_turns else []
    if not earlier or not is_follow_up(latest):
        return latest
    return "\n".join([*earlier, latest])


def search_queries(messages: Sequence[AnyMessage], history_turns: int) -> list[str]:
    """What to search: the built query and, for a follow-up, the bare message too (rankings are fused)."""
    built = build_search_query(messages, history_turns)
    latest = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    return [built] if built == latest else [built, latest]


def search_filter(given: object) -> SearchFilter | None:
    """The run's filter. The context is a DocentContext, but one built from JSON (Studio's form, whose schema
    is the dataclass's) keeps the nested filter as a mapping: its fields (`sources`, …) or the API's JSON
    form (`source`, …) are read here."""
    if given is None or isinstance(given, SearchFilter):
        return given
    if not isinstance(given, Mapping):
        raise TypeError(
            f"the context's filter must be a SearchFilter or a mapping, got {type(given).__name__}"
        )
    if given.keys() <= {f.name for f in fields(SearchFilter)}:
        return SearchFilter(**given)
    return filter_from_mapping(given)


async def retrieve(
    state: RetrieveInput, runtime: Runtime[DocentContext], *, retriever: Retriever, settings: Settings
) -> dict[str, Any]:
    """Top-k passages with scores for the built query (Chroma and ONNX run in a worker thread)."""
    queries = search_queries(state["messages"], settings.history_turns)
    knobs = runtime.context or DocentContext()
    k = knobs.k or settings.k
    collection = knobs.collection or settings.collection
    mode = knobs.retriever or settings.retriever
    where = search_filter(knobs.filter)
    with RETRIEVAL_LATENCY.labels(retriever=mode).time():
        contexts = await asyncio.to_thread(
            retriever.search_all, queries, k=k, collection=collection, mode=mode, where=where
        )
    return {"search_query": queries[0], "contexts": contexts}
