"""POST /invoke: one turn, LangServe-shaped."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import GraphDep
from api.schemas import ErrorBody, InvokeRequest, InvokeResponse
from graph.turn import run_turn

router = APIRouter(tags=["invoke"])


@router.post(
    "/invoke",
    response_model=InvokeResponse,
    responses={400: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"description": "Invalid body"}},
)
async def invoke(body: InvokeRequest, graph: GraphDep) -> InvokeResponse:
    """Answer a question on a thread (a new one when `config.configurable.thread_id` is omitted)."""
    result = await run_turn(
        graph, body.input.message, thread_id=body.config.configurable.thread_id, context=body.run_context()
    )
    return InvokeResponse.model_validate(result.output())
