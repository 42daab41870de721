"""Follow-up questions: paragraph hit@k for the bare follow-up versus the query the retrieve node builds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from core.retrieval.filters import SearchFilter
from core.types import Passage, RetrieverMode
from evaluation.dataset import FollowUpPair, GoldQuestion
from evaluation.runner import DEFAULT_KS, EvalIndex, RetrieverScore, Searcher, score_retriever
from nodes.retrieve import is_follow_up, search_queries


@dataclass
class FollowUpScore:
    """One retriever mode on follow-up pairs: searched bare, and with the query built from recent turns."""

    retriever: str
    pairs: int
    flagged: int
    """Follow-ups that `is_follow_up` recognises (the others are searched bare either way)."""
    bare: RetrieverScore
    built: RetrieverScore

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "retriever": self.retriever,
            "pairs": self.pairs,
            "flagged": self.flagged,
            "bare": self.bare.to_dict(),
            "built": self.built.to_dict(),
        }


def conversation(pair: FollowUpPair) -> list[AnyMessage]:
    """The thread the follow-up is asked in: first question, an answer, the follow-up."""
    return [HumanMessage(pair.first), AIMessage("…"), HumanMessage(pair.follow_up)]


class NodeSearcher:
    """Searches each follow-up as the retrieve node does: `search_queries`, rankings fused."""

    def __init__(self, searcher: Searcher, pairs: Sequence[FollowUpPair], history_turns: int) -> None:
        self._searcher = searcher
        self._queries = {p.follow_up: search_queries(conversation(p), history_turns) for p in pairs}

    def search(
        self,
        query: str,
        *,
        k: int,
        collection: str,
        mode: RetrieverMode | None = None,
        where: SearchFilter | None = None,
    ) -> list[Passage]:
        """Search the conversation whose follow-up is `query`."""
        return self.search_all([query], k=k, collection=collection, mode=mode, where=where)

    def search_all(
        self,
        queries: Sequence[str],
        *,
        k: int,
        collection: str,
        mode: RetrieverMode | None = None,
        where: SearchFilter | None = None,
    ) -> list[Passage]:
        """Search several follow-ups' conversations, fused."""
        built = [q for query in queries for q in self._queries[query]]
        return self._searcher.search_all(built, k=k, collection=collection, mode=mode, where=where)


def score_followups(
    index: EvalIndex,
    pairs: Sequence[FollowUpPair],
    *,
    mode: RetrieverMode,
    history_turns: int,
    ks: Sequence[int] = DEFAULT_KS,
    where: SearchFilter | None = None,
) -> FollowUpScore:
    """Score the bare follow-ups and the built queries against the follow-ups' gold paragraphs."""

    def gold(query: str, pair: FollowUpPair) -> GoldQuestion:
        return GoldQuestion(query, gold_docs=(pair.doc_id,), para_id=pair.para_id)

    def score(questions: list[GoldQuestion], searcher: Searcher = index.searcher) -> RetrieverScore:
        return score_retriever(
            searcher, questions, mode=mode, collection=index.collection, ks=ks, where=where
        )

    return FollowUpScore(
        retriever=mode,
        pairs=len(pairs),
        flagged=sum(is_follow_up(p.follow_up) for p in pairs),
        bare=score([gold(p.follow_up, p) for p in pairs]),
        built=score(
            [gold(p.follow_up, p) for p in pairs], NodeSearcher(index.searcher, pairs, history_turns)
        ),
    )
