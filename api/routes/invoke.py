"""POST /invoke: one turn, LangServe-shaped; POST /batch: many; and the JSON Schemas of their bodies."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import TypeAdapter

from api.deps import GraphDep, ServicesDep, get_records
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
from api.security.ownership import thread_for_turn
from core.answering.providers import UnknownModelError
from core.retrieval.vector_store import CollectionError, EmbeddingMismatchError
from core.storage.keys import Principal
from core.types import TurnOutput
from graph.build import DocentGraph
from graph.turn import run_turn

router = APIRouter(tags=["invoke"])
OUTPUT_SCHEMA = TypeAdapter(TurnOutput).json_schema()
log = logging.getLogger(__name__)


async def answer(
    request: Request, graph: DocentGraph, caller: Principal, body: InvokeRequest
) -> InvokeResponse:
    """One checked turn on a thread the caller owns (shared by /invoke and /batch)."""
    knobs = body.config.configurable
    check_question(request, body.input.message, knobs)
    thread = await thread_for_turn(get_records(request), caller, knobs.thread_id)
    result = await run_turn(graph, body.input.message, thread_id=thread, context=body.run_context())
    return InvokeResponse.model_validate(result.response())


@router.post(
    "/invoke",
    response_model=InvokeResponse,
    responses={
        **TURN_ERRORS,
        409: {
            "model": ErrorBody,
            "description": "The collection cannot be searched: another embedder filled it,"
            " or Chroma refuses the name.",
        },
    },
)
async def invoke(
    body: InvokeRequest, request: Request, graph: GraphDep, caller: QueryCaller
) -> InvokeResponse:
    """Answer a question on a thread (a new one when `config.configurable.thread_id` is omitted)."""
    return await answer(request, graph, caller, body)


def _failure(exc: Exception) -> BatchError:
    if isinstance(exc, HTTPException):
        return BatchError(status=exc.status_code, detail=str(exc.detail))
    if isinstance(exc, UnknownModelError):
        return BatchError(status=400, detail=str(exc))
    if isinstance(exc, EmbeddingMismatchError | CollectionError):
        return BatchError(status=409, detail=str(exc))
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
    body: BatchRequest, request: Request, graph: GraphDep, services: ServicesDep, caller: QueryCaller
) -> BatchResponse:
    """Answer several inputs, a few at a time; each input counts against the rate limit. One input's failure
    is reported in `errors` at its index and does not fail the others.
    """
    limit = services.settings.batch_max_items
    if len(body.inputs) > limit:
        raise HTTPException(422, f"{len(body.inputs)} inputs; a batch takes at most {limit}")
    configs = body.config if isinstance(body.config, list) else [body.config] * len(body.inputs)
    if len(configs) != len(body.inputs):
        raise HTTPException(422, f"{len(configs)} configs for {len(body.inputs)} inputs")
    await charge(request, caller, len(body.inputs) - 1)
    gate = asyncio.Semaphore(services.settings.batch_concurrency)

    async def one(item: InvokeInput, config: InvokeConfig) -> InvokeResponse | BatchError:
        async with gate:
            try:
                return await answer(request, graph, caller, InvokeRequest(input=item, config=config))
            except Exception as exc:  # reported per input
                return _failure(exc)

    results = await asyncio.gather(*(one(i, c) for i, c in zip(body.inputs, configs, strict=True)))
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
