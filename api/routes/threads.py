"""Threads (the seeds' sessions): create, list, read, delete and export the caller's conversations."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Annotated, Any, Literal

from fastapi import Query, Response

from api.deps import RecordsDep, ResourcesDep
from api.routes import docent_router
from api.schemas import (
    AUTH_ERRORS,
    SAMPLE_MESSAGES,
    SAMPLE_THREAD,
    ErrorBody,
    MessageOut,
    ThreadCreated,
    ThreadDetail,
    ThreadList,
    ThreadSummary,
)
from api.security.auth import QueryCaller
from api.security.ownership import OwnedThread, thread_for_turn
from core.storage.records import ThreadInfo, TurnRecords

router = docent_router(tags=["threads"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such thread for this key."}
}


def _summary(info: ThreadInfo) -> ThreadSummary:
    return ThreadSummary(
        id=info.id, title=info.title, turns=info.turns, created_at=info.created_at, updated_at=info.updated_at
    )


def _messages(records: TurnRecords, thread_id: str) -> list[MessageOut]:
    messages: list[MessageOut] = []
    for turn in records.turns(thread_id):
        messages.append(MessageOut(role="user", content=turn.question, created_at=turn.created_at))
        answer = turn.answer
        messages.append(
            MessageOut.model_validate(
                {
                    **answer,
                    "role": "assistant",
                    "content": answer["answer"],
                    "created_at": turn.created_at,
                    "run_id": turn.run_id,
                    "latency_ms": turn.latency_ms,
                }
            )
        )
    return messages


@router.post("/threads", status_code=201, response_model=ThreadCreated, responses=AUTH_ERRORS)
async def create_thread(records: RecordsDep, caller: QueryCaller) -> ThreadCreated:
    """Start a new, empty thread owned by the calling key; pass its id as `config.configurable.thread_id`."""
    return ThreadCreated(id=await thread_for_turn(records, caller, None))


@router.get("/threads", response_model=ThreadList, responses=AUTH_ERRORS)
async def list_threads(
    records: RecordsDep,
    caller: QueryCaller,
    limit: Annotated[int, Query(ge=1, le=100, description="Threads per page.", examples=[20])] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Threads to skip.", examples=[0])] = 0,
) -> ThreadList:
    """The calling key's threads, most recently updated first, with title (first question) and turn count."""
    infos, total = await asyncio.to_thread(
        records.threads, caller.id, limit=limit, offset=offset, workspace=caller.workspace
    )
    return ThreadList(threads=[_summary(i) for i in infos], total=total, limit=limit, offset=offset)


@router.get("/threads/{thread_id}", response_model=ThreadDetail, responses={**AUTH_ERRORS, **NOT_FOUND})
async def get_thread(thread: OwnedThread, records: RecordsDep) -> ThreadDetail:
    """A thread's messages, oldest first; answers carry citations, model, usage, cost and timestamps."""
    messages = await asyncio.to_thread(_messages, records, thread.id)
    return ThreadDetail(**_summary(thread).model_dump(), messages=messages)


@router.delete(
    "/threads/{thread_id}", status_code=204, response_class=Response, responses={**AUTH_ERRORS, **NOT_FOUND}
)
async def delete_thread(thread: OwnedThread, records: RecordsDep, resources: ResourcesDep) -> Response:
    """Delete a thread: its checkpoints (the conversation state) and its turn records."""
    await resources.docent.checkpointer.adelete_thread(thread.id)
    await asyncio.to_thread(records.delete_thread, thread.id)
    return Response(status_code=204)


CSV_COLUMNS = (
    "created_at",
    "role",
    "content",
    "model",
    "citations",
    "prompt_tokens",
    "completion_tokens",
    "usage_estimated",
    "cost_usd",
    "degraded",
    "degraded_reason",
)


CSV_EXAMPLE = (
    ",".join(CSV_COLUMNS)
    + "\r\n2026-11-21T23:21:52.029+00:00,user,How often should I turn a hot compost pile?,,,,,,,,\r\n"
    + "2026-11-21T23:21:52.029+00:00,assistant,"
    + '"Keeping the pile hot requires regular turning. [1]",extractive,'
    + "[1] Hot vs. Cold Composting (data/sample/hot-vs-cold-composting.html),,,,0.0,False,\r\n"
)


def _page(page: int | None) -> str:
    return f", page {page}" if page else ""


# A cell a spreadsheet would run as a formula (CSV injection): shown as text, behind a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(messages: list[MessageOut]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for m in messages:
        cites = "; ".join(
            f"[{c['n']}] {c['title']} ({c['source']}{_page(c['page'])})" for c in m.citations or []
        )
        usage = m.usage
        row = [
            m.created_at,
            m.role,
            m.content,
            m.model or "",
            cites,
            usage["prompt_tokens"] if usage else "",
            usage["completion_tokens"] if usage else "",
            usage["estimated"] if usage else "",
            "" if m.cost is None else m.cost,
            "" if m.degraded is None else m.degraded,
            m.degraded_reason or "",
        ]
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


@router.get(
    "/threads/{thread_id}/export",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/json": {"example": {**SAMPLE_THREAD, "messages": SAMPLE_MESSAGES}},
                "text/csv": {"example": CSV_EXAMPLE},
            },
            "description": "The thread as a file (Content-Disposition: attachment).",
        },
        **AUTH_ERRORS,
        **NOT_FOUND,
    },
)
async def export_thread(
    thread: OwnedThread,
    records: RecordsDep,
    format: Annotated[Literal["json", "csv"], Query(description="File format.", examples=["csv"])] = "json",
) -> Response:
    """Download a thread: JSON (the same body as GET /threads/{id}) or CSV (one row per message)."""
    detail = await get_thread(thread, records)
    name = f"docent-thread-{thread.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(_csv(detail.messages), media_type="text/csv; charset=utf-8", headers=headers)
    body = json.dumps(detail.model_dump(mode="json"), ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers=headers)
