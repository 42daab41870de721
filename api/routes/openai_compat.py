"""OpenAI-compatible chat: POST /v1/chat/completions (whole or streamed as `chat.completion.chunk`s) and
GET /v1/models, so OpenAI clients and tools can talk to Docent. Errors come in OpenAI's error shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import HTTPException, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import DocentDep, ServicesDep
from api.idempotency import OpenAIIdempotencyKey, run_once
from api.openai_errors import openai_error_body
from api.routes import docent_router
from api.routes.invoke import stored_turn
from api.routes.stream import STREAM_HEADERS
from api.schemas import Configurable, search_filter
from api.schemas.openai import (
    DEFAULT_MODEL,
    OPENAI_ERRORS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
    DocentExtras,
    ModelCard,
    ModelList,
)
from api.security.auth import QueryCaller
from api.security.limits import check_question
from api.security.ownership import thread_and_lookup
from api.security.workspaces import readable_collection
from core.errors import DependencyUnavailable
from core.retrieval.vector_store import CollectionError
from core.services import Services
from core.storage.keys import Principal
from core.types import Citation, DocentContext, PriorMessage, TurnOutput, TurnResult, turn_output
from graph.build import Docent
from graph.multitask import ThreadBusyError
from graph.turn import run_turn, stream_turn

router = docent_router(prefix="/v1", tags=["openai"])
STARTED = int(time.time())
_EXAMPLE_CHUNK = {
    "id": "chatcmpl-3a30",
    "object": "chat.completion.chunk",
    "created": 1795303317,
    "model": "docent",
}
CHUNKS_EXAMPLE = (
    "".join(
        f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        for chunk in (
            {**_EXAMPLE_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {
                **_EXAMPLE_CHUNK,
                "choices": [{"index": 0, "delta": {"content": "Turn the pile every 3 to 5 days. [1]"}}],
            },
            {
                **_EXAMPLE_CHUNK,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "thread_id": "0d7bd59d38914dec8f92b3633fa64c19",
                "citations": [],
                "docent": {
                    "run_id": "3a30",
                    "model": "extractive",
                    "cost": 0.0,
                    "degraded": False,
                    "unsupported_sentences": 0,
                },
            },
        )
    )
    + "data: [DONE]\n\n"
)


def sources_text(citations: Sequence[Citation]) -> str:
    """The cited citations as a `Sources:` block appended to the answer's text (empty when it cites none;
    the `citations` field still lists every relevant passage)."""
    cited = [c for c in citations if c["cited"]]
    if not cited:
        return ""
    lines = []
    for c in cited:
        page = f", page {c['page']}" if c["page"] is not None else ""
        lines.append(f"[{c['n']}] {c['title']} — {c['source']}{page}")
    return "\n\nSources:\n" + "\n".join(lines)


def _question(body: ChatCompletionRequest) -> tuple[str, list[PriorMessage]]:
    """The last message (the question) and the earlier user/assistant messages (system messages are dropped:
    the server's system prompt applies)."""
    last = body.messages[-1]
    if last.role != "user" or not last.text.strip():
        raise HTTPException(400, "the last message must be a non-empty `user` message: it is the question")
    history: list[PriorMessage] = [
        PriorMessage(role="user" if m.role == "user" else "assistant", content=m.text)
        for m in body.messages[:-1]
        if m.role in ("user", "assistant") and m.text.strip()
    ]
    return last.text, history


def _model(body: ChatCompletionRequest, services: Services) -> str | None:
    """The answerer a request names (None: the default); an unknown name is a 404 as at OpenAI."""
    if body.model == DEFAULT_MODEL:
        return None
    if body.model not in services.answerers.names:
        raise HTTPException(404, f"model {body.model!r} does not exist; see GET /v1/models")
    return body.model


def _extras(output: TurnOutput, run_id: str) -> DocentExtras:
    usage = output["usage"]
    return DocentExtras(
        run_id=run_id,
        model=output["model"],
        cost=output["cost"],
        degraded=output["degraded"],
        degraded_reason=output["degraded_reason"],
        usage_estimated=bool(usage and usage["estimated"]),
        unsupported_sentences=output["unsupported_sentences"],
        output_rule=output.get("output_rule"),
        cached=bool(output.get("cached")),
    )


def _usage(output: TurnOutput) -> CompletionUsage:
    usage = output["usage"]
    prompt, completion = (usage["prompt_tokens"], usage["completion_tokens"]) if usage else (0, 0)
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _completion(result: TurnResult) -> ChatCompletion:
    output = result.output
    return ChatCompletion(
        id=f"chatcmpl-{result.run_id}",
        created=int(time.time()),
        model=output["model"],
        choices=[
            Choice(message=AssistantMessage(content=output["answer"] + sources_text(output["citations"])))
        ],
        usage=_usage(output),
        thread_id=output["thread_id"],
        citations=output["citations"],
        docent=_extras(output, result.run_id),
    )


async def _chunks(
    events: AsyncIterator[tuple[str, dict[str, Any]]], include_usage: bool, model: str
) -> AsyncIterator[ServerSentEvent]:
    """A turn's events as OpenAI chunks: role, content deltas, the sources block, a finishing chunk carrying
    `citations`, `thread_id` and `docent`, an optional usage chunk, then `[DONE]`. A mid-stream model failure
    cannot take back the text already sent: a note and the fallback answer follow it."""
    chunk_id = "chatcmpl-"
    failed = False

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> ServerSentEvent:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        body = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        return ServerSentEvent(data=json.dumps({**body, "choices": choices, **extra}))

    try:
        async for name, data in events:
            if name == "metadata":
                chunk_id += data["run_id"]
                yield chunk({"role": "assistant", "content": ""})
            elif name == "token":
                yield chunk({"content": data["text"]})
            elif name == "error":
                failed = True
                if data.get("reason") == "output_blocked":
                    note = "\n\n[the answer was withheld by the server's output rules]\n\n"
                else:
                    why = data.get("reason")
                    note = f"\n\n[the model failed mid-answer ({why}); a fallback answer follows]\n\n"
                yield chunk({"content": note})
            elif name == "end":
                output = turn_output(data["thread_id"], data)
                if failed:
                    yield chunk({"content": output["answer"]})
                yield chunk({"content": sources_text(output["citations"])})
                model = output["model"]
                extras = _extras(output, data["run_id"]).model_dump()
                yield chunk(
                    {}, "stop", thread_id=output["thread_id"], citations=output["citations"], docent=extras
                )
                if include_usage:
                    yield chunk(None, usage=_usage(output).model_dump())
    except (CollectionError, ThreadBusyError) as exc:
        yield ServerSentEvent(data=json.dumps(openai_error_body(409, str(exc))))
    except DependencyUnavailable as exc:  # e.g. Redis, for the thread's turn lock, after the 200 went out
        yield ServerSentEvent(
            data=json.dumps(openai_error_body(503, f"{exc.dependency} is unavailable: {exc}"))
        )
    yield ServerSentEvent(data="[DONE]")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {"example": CHUNKS_EXAMPLE}},
            "description": "A `chat.completion`; with `stream: true`, `chat.completion.chunk` events.",
        },
        **OPENAI_ERRORS,
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    docent: DocentDep,
    caller: QueryCaller,
    idempotency_key: OpenAIIdempotencyKey = None,
) -> ChatCompletion | EventSourceResponse | Response:
    """Answer the last user message from the ingested documents; citations are appended to the text and
    given in `citations`. Pass `thread_id` (the response's) to continue a Docent thread. With an
    `Idempotency-Key` header (1 to 255 visible ASCII characters; not with `stream: true`), a retry with the
    same key and body gets the first completion back instead of a second turn."""
    if idempotency_key is not None:
        if body.stream:
            raise HTTPException(
                400,
                "Idempotency-Key: a streamed completion cannot be replayed; send `stream: false` or no key",
            )

        async def recover(run_id: str) -> ChatCompletion | None:
            found = await stored_turn(docent, run_id)
            return _completion(found) if found is not None else None

        return await run_once(
            request,
            caller,
            idempotency_key,
            body,
            lambda run_id: _complete(body, request, docent, caller, run_id),
            recover=recover,
        )
    return await _complete(body, request, docent, caller)


async def _complete(
    body: ChatCompletionRequest,
    request: Request,
    docent: Docent,
    caller: Principal,
    run_id: str | None = None,
) -> ChatCompletion | EventSourceResponse:
    """One completion, streamed or not (`run_id`: the turn's, for a non-streamed idempotent request)."""
    question, history = _question(body)
    services = docent.services
    model = _model(body, services)
    check_question(request, question, Configurable(k=body.k))
    where = search_filter(body.filter, "filter")
    collection = await readable_collection(services, caller, body.collection)
    context = DocentContext(
        k=body.k, collection=collection, retriever=body.retriever, model=model, filter=where
    )
    prior = None if body.thread_id else history
    thread, lookup = await thread_and_lookup(services, caller, body.thread_id, question, context, prior)
    if not body.stream:
        return _completion(
            await run_turn(
                docent.graph,
                question,
                thread_id=thread,
                context=context,
                history=prior,
                gate=docent.turns,
                run_id=run_id,
                cache=services.answer_cache,
                records=services.records,
                lookup=lookup,
                owner=caller,
            )
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = stream_turn(
        docent.graph,
        question,
        thread_id=thread,
        context=context,
        history=prior,
        gate=docent.turns,
        guard=docent.services.output_guard,
        cache=services.answer_cache,
        records=services.records,
        lookup=lookup,
        owner=caller,
    )
    return EventSourceResponse(
        _chunks(events, include_usage, body.model), headers=STREAM_HEADERS, ping=15, sep="\n"
    )


@router.get("/models", response_model=ModelList, responses={k: OPENAI_ERRORS[k] for k in (401, 403, 429)})
async def list_models(services: ServicesDep, caller: QueryCaller) -> ModelList:
    """`docent` (the server's default answering chain) and each model a request may name."""
    names = [DEFAULT_MODEL, *services.answerers.names]
    return ModelList(data=[ModelCard(id=name, created=STARTED) for name in names])
