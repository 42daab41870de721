"""The shapes that flow from retrieval to answers: passages, citations and token usage."""

from __future__ import annotations

from typing_extensions import TypedDict


class Passage(TypedDict):
    """One retrieved chunk with its provenance and cosine similarity to the search query."""

    chunk_id: str
    text: str
    source: str
    title: str
    page: int | None
    section: str | None
    score: float
    paragraph_ids: list[str]


class Citation(TypedDict):
    """A numbered reference `[n]` in an answer, pointing at the passage it quotes."""

    n: int
    source: str
    title: str
    page: int | None
    snippet: str
    chunk_id: str


SNIPPET_CHARS = 300


def citation_of(n: int, passage: Passage, quote: str | None = None) -> Citation:
    """Passage `passage` cited as `[n]`; the snippet is `quote` (default: the passage's opening text)."""
    return Citation(
        n=n,
        source=passage["source"],
        title=passage["title"],
        page=passage["page"],
        snippet=(passage["text"] if quote is None else quote)[:SNIPPET_CHARS],
        chunk_id=passage["chunk_id"],
    )


class Usage(TypedDict):
    """Tokens a model reported (or that were estimated) for one answer."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool
    """True when the provider reported no counts and these are estimates (about 4 characters a token)."""
