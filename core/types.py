"""One type per concept: the passage retrieval finds, the citation an answer makes, the answer, and the
turn result that /invoke, /stream, /v1, the records DB and `docent ask --json` all carry. A field added to
`AnswerFields` appears in every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, cast

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from core.retrieval.filters import SearchFilter

# Attribute docstrings become field descriptions wherever pydantic builds a schema (the OpenAPI document).
# Nullable fields of replies are NotRequired only in the schema's sense: Docent always sends them (null when
# empty), but FastAPI drops nulls from the document's examples, which must still fit the schema.
_DESCRIBED = ConfigDict(use_attribute_docstrings=True)

Role = Literal["user", "assistant"]
RetrieverMode = Literal["dense", "bm25", "hybrid"]


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


@with_config(_DESCRIBED)
class Citation(TypedDict):
    """A numbered source of the answer: `[n]` in its text points at the passage it quotes."""

    n: int
    """The number used as `[n]` in the answer."""
    source: str
    """URL or file path of the source."""
    title: str
    """The source's title."""
    page: NotRequired[int | None]
    """1-based PDF page, when the source is a PDF."""
    snippet: str
    """The quoted text."""
    chunk_id: str
    """The stored chunk the citation points at."""
    cited: bool
    """The answer's text refers to this passage as `[n]`; false for a relevant passage it does not use."""
    supported: NotRequired[bool | None]
    """A sentence citing this passage was checked against it and found supported (true) or not (false);
    null when nothing was checked (the passage is not cited). Extractive quotes are true by construction."""


SNIPPET_CHARS = 300


def citation_of(
    n: int, passage: Passage, quote: str | None = None, *, cited: bool = False, supported: bool | None = None
) -> Citation:
    """Passage `passage` listed as `[n]`; the snippet is `quote` (default: the passage's opening text);
    `cited`: the answer's text refers to it."""
    return Citation(
        n=n,
        source=passage["source"],
        title=passage["title"],
        page=passage["page"],
        snippet=(passage["text"] if quote is None else quote)[:SNIPPET_CHARS],
        chunk_id=passage["chunk_id"],
        cited=cited,
        supported=supported,
    )


@with_config(_DESCRIBED)
class Usage(TypedDict):
    """Tokens a model reported (or that were estimated) for one answer."""

    prompt_tokens: int
    """Tokens of the prompt (passages, history and question)."""
    completion_tokens: int
    """Tokens of the answer."""
    total_tokens: int
    """Both together."""
    estimated: bool
    """The provider reported no counts and these are estimates (about 4 characters a token)."""


class PriorMessage(TypedDict):
    """A message of a conversation held elsewhere (an OpenAI-style client's history)."""

    role: Role
    content: str


@with_config(_DESCRIBED)
class AnswerFields(TypedDict):
    """An answer as every output carries it: the graph's output, /invoke, the stream's `end` event, /v1's
    extras, the records DB and `docent ask --json`."""

    answer: str
    """The answer; `[n]` markers refer to `citations`."""
    citations: list[Citation]
    """Every passage the answerer was given that cleared the relevance floor (or that the answer cites), in
    retrieval order, numbered as the answer cites them; `cited` marks those its text refers to."""
    model: str
    """What produced the answer; `extractive` when no LLM is configured."""
    usage: NotRequired[Usage | None]
    """Tokens the model used; null for the extractive answerer."""
    cost: NotRequired[float | None]
    """USD from the price table; 0 for models run here; null when the model has no price."""
    degraded: bool
    """The chosen model failed and a fallback answered."""
    degraded_reason: NotRequired[str | None]
    """What failed, when `degraded`."""
    unsupported_sentences: NotRequired[int | None]
    """Sentences of the answer that carry a citation none of their cited passages supports; 0 for an
    extractive answer; null when the answer was not checked."""
    output_rule: NotRequired[str | None]
    """The output guardrail changed the answer: `blocked: <pattern>` (the answer was withheld) or
    `redacted: email, phone, card` (the kinds of personal data taken out); null when no rule fired."""
    cached: NotRequired[bool]
    """The answer was served from the answer cache: the stored answer (and citations) of an earlier question
    close to this one, on the same collection and corpus version; no model ran (docs/cache.md)."""


ANSWER_FIELDS: tuple[str, ...] = tuple(AnswerFields.__annotations__)


@dataclass(frozen=True)
class Answer:
    """What an answerer returns: the answer's fields, and how the model call went (for streams, metrics)."""

    text: str
    citations: list[Citation]
    model: str
    usage: Usage | None = None
    cost: float | None = None
    """USD from the price table; 0 for models run here; None when the model has no price."""
    degraded: bool = False
    """The chosen model failed and a fallback (another model, or at last the extractive answerer) answered."""
    degraded_reason: str | None = None
    interrupted: bool = False
    """A model failed after part of its answer had been streamed; `text` replaces what was streamed."""
    requested_at: float | None = None
    """When (`time.perf_counter()`, this process) the model request was issued; None without a model."""
    first_chunk_at: float | None = None
    """When the model's first content chunk arrived (its own time to first token, as seen in-process)."""
    unsupported_sentences: int | None = None
    """Cited sentences no cited passage supports; None when the answer was not checked."""

    def fields(self) -> AnswerFields:
        """The fields every output carries."""
        return AnswerFields(
            answer=self.text,
            citations=self.citations,
            model=self.model,
            usage=self.usage,
            cost=self.cost,
            degraded=self.degraded,
            degraded_reason=self.degraded_reason,
            unsupported_sentences=self.unsupported_sentences,
        )


@with_config(_DESCRIBED)
class TurnOutput(AnswerFields):
    """The answer of one turn and the thread it belongs to: /invoke's `output`, `docent ask --json`."""

    thread_id: str
    """The conversation; pass it as `config.configurable.thread_id` to ask a follow-up."""


@dataclass(frozen=True)
class TurnResult:
    """A finished turn: its output and the run that produced it."""

    run_id: str
    output: TurnOutput

    @property
    def thread_id(self) -> str:
        """The turn's thread."""
        return self.output["thread_id"]

    def response(self) -> dict[str, Any]:
        """The LangServe-shaped `{"output": ..., "metadata": ...}` body of /invoke."""
        return {"output": self.output, "metadata": {"run_id": self.run_id}}


def turn_output(thread_id: str, values: dict[str, Any]) -> TurnOutput:
    """A turn's output from the graph's final values (or the summarize node's update)."""
    fields: dict[str, Any] = {name: values.get(name) for name in ANSWER_FIELDS}
    fields["degraded"] = bool(fields["degraded"])
    fields["cached"] = bool(fields["cached"])
    return cast(TurnOutput, {**fields, "thread_id": thread_id})


@dataclass(frozen=True)
class DocentContext:
    """Run-time choices (LangGraph's runtime context: `context=`, or Studio's form); a None field falls back
    to the service's settings."""

    k: int | None = None
    """How many passages to retrieve (1-50)."""

    collection: str | None = None
    """Chroma collection to search."""

    retriever: RetrieverMode | None = None
    """Dense, BM25, or both fused (reciprocal rank fusion)."""

    model: str | None = None
    """Answering model, by name (see GET /health for those available)."""

    filter: SearchFilter | None = None
    """Search only the chunks that match: source, kind, title, section, page range, time of ingest
    (docs/retrieval.md, "Filters")."""
