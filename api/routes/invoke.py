"""POST /invoke: one turn, LangServe-shaped; POST /batch: many; and the JSON Schemas of their bodies."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import HTTPException, Request, Response
from pydantic import TypeAdapter

from api.deps import DocentDep
from api.idempotency import IdempotencyKey, run_once
from api.routes import docent_router
from api.schemas import (
    AUTH_ERRORS,
    TURN_ERRORS,
    BatchError,
    BatchMetadata,
    BatchRequest,
    BatchResponse,
    ErrorBody,
    InvokeConfig,
    InvokeInput,
    InvokeRequest,
    InvokeResponse,
    ValidationErrorBody,
)
from api.security.auth import QueryCaller, charge
from api.security.limits import check_question
from api.security.ownership import thread_and_lookup
from api.security.workspaces import turn_context
from core.answering.providers import UnknownModelError
from core.errors import unavailable
from core.retrieval.vector_store import CollectionError, EmbeddingMismatchError
from core.storage.keys import Principal
from core.types import TurnOutput, TurnResult, turn_output
from graph.build import Docent
from graph.multitask import ThreadBusyError
from graph.turn import run_turn

router = docent_router(tags=["invoke"])
OUTPUT_SCHEMA = TypeAdapter(TurnOutput).json_schema()
log = logging.getLogger(__name__)


async def answer(
    request: Request, docent: Docent, caller: Principal, body: InvokeRequest, run_id: str | None = None
) -> InvokeResponse:
    """One checked turn on a thread the caller owns (shared by /invoke and /batch)."""
    knobs = body.config.configurable
    check_question(request, body.input.message, knobs)
    context = await turn_context(docent.services, caller, body.run_context())
    thread, lookup = await thread_and_lookup(
        docent.services, caller, knobs.thread_id, body.input.message, context
    )
    result = await run_turn(
        docent.graph,
        body.input.message,
        thread_id=thread,
        context=context,
        gate=docent.turns,
        run_id=run_id,
        cache=docent.services.answer_cache,
        records=docent.services.records,
        lookup=lookup,
        owner=caller,
    )
    return InvokeResponse.model_validate(result.response())


async def stored_turn(docent: Docent, run_id: str) -> TurnResult | None:
    """The turn a run stored in the records, as its answer (for an idempotent retry after a crash)."""
    record = await asyncio.to_thread(docent.services.records.by_run_id, run_id)
    if record is None:
        return None
    return TurnResult(run_id=run_id, output=turn_output(record.thread_id, dict(record.answer)))


@router.post(
    "/invoke",
    response_model=InvokeResponse,
    responses=TURN_ERRORS,
)
async def invoke(
    body: InvokeRequest,
    request: Request,
    docent: DocentDep,
    caller: QueryCaller,
    idempotency_key: IdempotencyKey = None,
) -> InvokeResponse | Response:
    """Answer a question on a thread (a new one when `config.configurable.thread_id` is omitted). With an
    `Idempotency-Key`, a retry gets the first answer back instead of a second turn (see docs/api.md)."""
    if idempotency_key is None:
        return await answer(request, docent, caller, body)

    async def recover(run_id: str) -> InvokeResponse | None:
        found = await stored_turn(docent, run_id)
        return InvokeResponse.model_validate(found.response()) if found is not None else None

    return await run_once(
        request,
        caller,
        idempotency_key,
        body,
        lambda run_id: answer(request, docent, caller, body, run_id),
        recover=recover,
    )


def _failure(exc: Exception) -> BatchError:
    if isinstance(exc, HTTPException):
        return BatchError(status=exc.status_code, detail=str(exc.detail))
    if isinstance(exc, UnknownModelError):
        return BatchError(status=400, detail=str(exc))
    if isinstance(exc, EmbeddingMismatchError | CollectionError | ThreadBusyError):
        return BatchError(status=409, detail=str(exc))
    if (down := unavailable(exc)) is not None:
        return BatchError(status=503, detail=f"{down.dependency} is unavailable: {down}")
    log.exception("batch input failed", exc_info=exc)
    return BatchError(status=500, detail=f"internal error: {type(exc).__name__}")


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorBody, "description": "The body is not UTF-8 JSON."},
        413: {"model": ErrorBody, "description": "Body too large."},
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid body, too many inputs, or configs do not match.",
        },
    },
)
async def batch(
    body: BatchRequest, request: Request, docent: DocentDep, caller: QueryCaller
) -> BatchResponse:
    """Answer several inputs, a few at a time; each input counts against the rate limit. Inputs that share a
    thread id run one after another, in the order given. One input's failure is reported in `errors` at its
    index and does not fail the others.
    """
    services = docent.services
    limit = services.settings.batch_max_items
    if len(body.inputs) > limit:
        raise HTTPException(422, f"{len(body.inputs)} inputs; a batch takes at most {limit}")
    configs = body.config if isinstance(body.config, list) else [body.config] * len(body.inputs)
    if len(configs) != len(body.inputs):
        raise HTTPException(422, f"{len(configs)} configs for {len(body.inputs)} inputs")
    await charge(request, caller, len(body.inputs) - 1)
    slots = asyncio.Semaphore(services.settings.batch_concurrency)
    results: list[InvokeResponse | BatchError | None] = [None] * len(body.inputs)
    lines: dict[str, list[int]] = {}  # inputs by thread (an input without one starts its own)
    for index, config in enumerate(configs):
        lines.setdefault(config.configurable.thread_id or f"#{index}", []).append(index)

    async def run_line(indexes: list[int]) -> None:
        for index in indexes:
            async with slots:
                request_body = InvokeRequest(input=body.inputs[index], config=configs[index])
                try:
                    results[index] = await answer(request, docent, caller, request_body)
                except Exception as exc:  # reported per input
                    results[index] = _failure(exc)

    await asyncio.gather(*(run_line(indexes) for indexes in lines.values()))
    return BatchResponse(
        output=[r.output if isinstance(r, InvokeResponse) else None for r in results],
        errors=[r if isinstance(r, BatchError) else None for r in results],
        metadata=BatchMetadata(
            run_ids=[r.metadata.run_id if isinstance(r, InvokeResponse) else None for r in results]
        ),
    )


def _schema_reply(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": example}}}, **AUTH_ERRORS}


@router.get("/invoke/input_schema", responses=_schema_reply(InvokeInput.model_json_schema()))
async def input_schema(caller: QueryCaller) -> dict[str, Any]:
    """JSON Schema of /invoke's `input` (LangServe)."""
    return InvokeInput.model_json_schema()


@router.get("/invoke/output_schema", responses=_schema_reply(OUTPUT_SCHEMA))
async def output_schema(caller: QueryCaller) -> dict[str, Any]:
    """JSON Schema of /invoke's `output` (LangServe)."""
    return OUTPUT_SCHEMA


@router.get("/invoke/config_schema", responses=_schema_reply(InvokeConfig.model_json_schema()))
async def config_schema(caller: QueryCaller) -> dict[str, Any]:
    """JSON Schema of /invoke's `config` (LangServe)."""
    return InvokeConfig.model_json_schema()
