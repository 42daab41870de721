"""Node 3: answer from the retrieved passages only, with numbered citations."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from core.answering.base import AnswerRequest
from core.answering.output_guard import OutputGuard
from core.answering.providers import AnswererRegistry
from core.metrics import DEGRADED_ANSWERS, MODEL_LATENCY, MODEL_TOKENS, OUTPUT_RULES
from core.types import Answer, DocentContext, Passage, Role


class SummarizeInput(TypedDict):
    """The question, the passages retrieved for it, and the thread so far."""

    question: str
    search_query: str
    contexts: list[Passage]
    messages: list[AnyMessage]


async def summarize(
    state: SummarizeInput,
    runtime: Runtime[DocentContext],
    *,
    answerers: AnswererRegistry,
    guard: OutputGuard | None = None,
) -> dict[str, Any]:
    """Ask the chosen answerer (an LLM streams its tokens to the graph's `messages` stream from here); the
    answer, reviewed by the output `guard`, joins the thread as an AI message. Custom stream events: `error`
    when the model failed mid-stream, `model_timing` (the `time.perf_counter()` instants of the model request
    and its first content chunk) when a model answered.
    """
    answerer = answerers.get(runtime.context.model if runtime.context else None)
    history: list[tuple[Role, str]] = [
        ("user" if m.type == "human" else "assistant", m.text) for m in state["messages"][:-1]
    ]
    request = AnswerRequest(
        question=state["question"],
        search_query=state["search_query"],
        passages=state["contexts"],
        history=history,
    )
    started = time.perf_counter()
    answer = await answerer.answer(request)
    model_s = time.perf_counter() - started
    _observe(answer, model_s)
    if answer.interrupted:
        runtime.stream_writer({"event": "error", "reason": answer.degraded_reason})
    if answer.requested_at is not None:
        runtime.stream_writer(
            {
                "event": "model_timing",
                "requested_at": answer.requested_at,
                "first_chunk_at": answer.first_chunk_at,
            }
        )
    fields: dict[str, Any] = {**answer.fields()}
    metadata: dict[str, Any] = {"model": answer.model}
    if guard is not None and guard.active:
        fields.update(_reviewed(guard, answer))
        if fields["output_rule"] is not None:  # a stream does not send a withheld answer as its token
            metadata["output_rule"] = fields["output_rule"]
    return {
        **fields,
        "model_ms": round(model_s * 1000, 1),
        "messages": [AIMessage(content=fields["answer"], response_metadata=metadata)],
    }


def _reviewed(guard: OutputGuard, answer: Answer) -> dict[str, Any]:
    """The answer's text and citations as they may leave the server, and the rule that changed them."""
    reviewed = guard.review(answer.text)
    if reviewed.pattern is not None:
        OUTPUT_RULES.labels("withheld", reviewed.pattern).inc()
    for kind in reviewed.redacted:
        OUTPUT_RULES.labels("redacted", kind).inc()
    return {
        "answer": reviewed.text,
        "citations": guard.review_citations(answer.citations, reviewed),
        "output_rule": reviewed.rule,
    }


def _observe(answer: Answer, seconds: float) -> None:
    """The turn's answering time, tokens and degradation, in the process's Prometheus metrics."""
    MODEL_LATENCY.labels(model=answer.model).observe(seconds)
    if answer.usage is not None:
        MODEL_TOKENS.labels(answer.model, "prompt").inc(answer.usage["prompt_tokens"])
        MODEL_TOKENS.labels(answer.model, "completion").inc(answer.usage["completion_tokens"])
    if answer.degraded:
        DEGRADED_ANSWERS.inc()
