"""LLM answerers: a LangChain chat model streamed inside the graph (so LangGraph's `messages` mode sees its
tokens), and the resilient chain around it: timeouts, retries with backoff, fallbacks, extractive at last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import anyio
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from core.answering.base import Answerer, AnswerRequest
from core.answering.pricing import Prices, answer_cost
from core.answering.prompts import build_messages, estimate_tokens
from core.answering.resilience import ModelTimeoutError, RetryPolicy, StreamInterruptedError, describe
from core.answering.support import SupportChecker, cited_numbers, list_citations
from core.tracing import span
from core.types import Answer, Citation, Passage, Usage


@dataclass(frozen=True)
class PromptOptions:
    """How the question is put to a model."""

    system_prompt: str | None = None
    history_turns: int = 3
    history_tokens: int = 1000


def cited_passages(
    text: str,
    passages: Sequence[Passage],
    *,
    min_score: float = 0.0,
    supported: Mapping[int, bool] | None = None,
) -> list[Citation]:
    """The citations of an answer written from `passages`: every passage at or above `min_score` and every
    passage the text cites as `[n]` (numbers outside 1..len ignored), in retrieval order; `cited` marks the
    cited ones, `supported` is the support check's verdict for each (None when not checked)."""
    cited = cited_numbers(text, len(passages))
    return list_citations(passages, min_score=min_score, cited=cited, supported=supported)


def usage_of(message: AIMessageChunk | None, prompt: Sequence[BaseMessage], text: str) -> Usage:
    """Token counts as the provider reported them, else estimated (and marked so)."""
    reported = message.usage_metadata if message is not None else None
    if reported and (reported.get("input_tokens") or reported.get("output_tokens")):
        prompt_tokens, completion_tokens = reported["input_tokens"], reported["output_tokens"]
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            estimated=False,
        )
    prompt_tokens = sum(estimate_tokens(m.text) + 4 for m in prompt)
    completion_tokens = estimate_tokens(text)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        estimated=True,
    )


class ChatAnswerer:
    """One chat model behind the Answerer seam. Streams, so every token reaches the graph's stream; a silence
    longer than `timeout_s` (before the first token or between two) is a ModelTimeoutError. With a `checker`,
    each cited sentence of the answer is checked against the passages it cites (in a worker thread).
    """

    def __init__(
        self,
        chat: BaseChatModel,
        *,
        provider: str,
        model_name: str,
        timeout_s: float,
        prompt: PromptOptions,
        prices: Prices,
        min_score: float = 0.0,
        checker: SupportChecker | None = None,
    ) -> None:
        self._chat = chat
        self.provider = provider
        self.model_name = model_name
        self._timeout_s = timeout_s
        self._prompt = prompt
        self._prices = prices
        self._min_score = min_score
        self._checker = checker

    @property
    def model(self) -> str:
        """`provider/model`, e.g. `ollama/llama3.2`."""
        return f"{self.provider}/{self.model_name}"

    async def answer(self, request: AnswerRequest) -> Answer:
        """Stream the answer; raise StreamInterruptedError if the model fails after its first token."""
        messages = build_messages(
            request,
            system_prompt=self._prompt.system_prompt,
            max_turns=self._prompt.history_turns,
            max_tokens=self._prompt.history_tokens,
        )
        full: AIMessageChunk | None = None
        first_chunk_at: float | None = None
        requested_at = time.perf_counter()
        stream = self._chat.astream(messages).__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise ModelTimeoutError(f"no token for {self._timeout_s:g}s from {self.model}") from exc
                if first_chunk_at is None and chunk.text:
                    first_chunk_at = time.perf_counter()
                full = chunk if full is None else full + chunk
        except Exception as exc:
            if full is not None and full.text:
                raise StreamInterruptedError(exc) from exc
            raise
        finally:
            # Close the model's stream now, even when cancelled (a client went away): that is what stops
            # generation. Under anyio (sse-starlette) an unshielded await here would be cancelled at once.
            with anyio.CancelScope(shield=True):
                await stream.aclose()  # type: ignore[attr-defined]
        text = (full.text if full is not None else "").strip()
        usage = usage_of(full, messages, text)
        supported: dict[int, bool] | None = None
        unsupported: int | None = None
        if self._checker is not None:
            check = await asyncio.to_thread(self._checker.check, text, request.passages)
            supported, unsupported = check.supported, check.unsupported_sentences
        return Answer(
            text=text,
            citations=cited_passages(text, request.passages, min_score=self._min_score, supported=supported),
            model=self.model,
            usage=usage,
            cost=answer_cost(self.provider, self.model_name, usage, self._prices),
            requested_at=requested_at,
            first_chunk_at=first_chunk_at,
            unsupported_sentences=unsupported,
        )


class ResilientAnswerer:
    """Tries each answerer of a chain in turn, retrying transient failures with backoff. When all fail, or one
    fails mid-stream, the extractive answerer answers and the answer says `degraded` and why.
    """

    def __init__(self, chain: Sequence[Answerer], *, last_resort: Answerer, policy: RetryPolicy) -> None:
        self._chain = list(chain)
        self._last_resort = last_resort
        self._policy = policy

    @property
    def model(self) -> str:
        """The first choice's name."""
        return self._chain[0].model if self._chain else self._last_resort.model

    async def answer(self, request: AnswerRequest) -> Answer:
        """The first answer the chain produces; failures never escape (cancellation does). Traced as one
        `answer` span (tries, retries, fallbacks; each model call is a LangChain span beside it)."""
        with span("answer", {"docent.model.requested": self.model}) as traced:
            answer, tries = await self._answer(request, traced)
            if traced is not None:
                traced.set_attributes(_answer_attributes(answer, tries))
            return answer

    async def _answer(self, request: AnswerRequest, traced: Span | None) -> tuple[Answer, int]:
        failures: list[str] = []
        tries = 0
        for answerer in self._chain:
            attempt = 0
            while True:
                tries += 1
                try:
                    answer = await answerer.answer(request)
                except StreamInterruptedError as exc:
                    failures.append(f"{answerer.model}: {describe(exc.cause)} mid-stream")
                    return await self._degrade(request, failures, interrupted=True), tries
                except Exception as exc:
                    delay = self._policy.delay(attempt, exc)
                    if traced is not None:
                        failure = {"docent.model": answerer.model, "error": describe(exc)}
                        traced.add_event("model call failed", {**failure, "retry_in_s": delay or 0.0})
                    if delay is None:
                        tried = f" after {attempt + 1} tries" if attempt else ""
                        failures.append(f"{answerer.model}: {describe(exc)}{tried}")
                        break
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                if failures:
                    return replace(answer, degraded=True, degraded_reason="; ".join(failures)), tries
                return answer, tries
        return await self._degrade(request, failures, interrupted=False), tries

    async def _degrade(self, request: AnswerRequest, failures: list[str], *, interrupted: bool) -> Answer:
        answer = await self._last_resort.answer(request)
        return replace(
            answer,
            cost=answer.cost if answer.cost is not None else 0.0,
            degraded=True,
            degraded_reason="; ".join(failures) or "no model available",
            interrupted=interrupted,
        )


def _answer_attributes(answer: Answer, tries: int) -> dict[str, AttributeValue]:
    """What the `answer` span says of how it went: the model that answered, its tokens, tries, degradation."""
    attributes: dict[str, AttributeValue] = {
        "docent.model": answer.model,
        "docent.answer.tries": tries,
        "docent.answer.degraded": answer.degraded,
    }
    if answer.degraded_reason:
        attributes["docent.answer.degraded_reason"] = answer.degraded_reason
    if answer.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = answer.usage["prompt_tokens"]
        attributes["gen_ai.usage.output_tokens"] = answer.usage["completion_tokens"]
        attributes["docent.usage.estimated"] = answer.usage["estimated"]
    return attributes
