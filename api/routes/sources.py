"""GET /sources lists a collection's ingested sources, GET /sources/{id} shows one with its extraction report;
DELETE /sources/{id} removes one and its chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import HTTPException, Path, Query

from api.deps import JobsDep, ServicesDep
from api.routes import docent_router
from api.schemas import AUTH_ERRORS, COLLECTION_PATTERN, ErrorBody, JobConflict, SourceOut, SourceRemoved
from api.security.auth import IngestCaller, QueryCaller
from api.security.workspaces import readable_collection, visible_collection
from core.storage.sources import SourceRecord, shown_uri

router = docent_router(tags=["sources"])
CollectionQuery = Annotated[
    str | None,
    Query(pattern=COLLECTION_PATTERN, description="Collection (default: the server's).", examples=["docent"]),
]
SourceId = Annotated[
    str, Path(description="The source's id (from GET /sources).", examples=["9facee259573f7b5"])
]


@router.get(
    "/sources",
    response_model=list[SourceOut],
    responses={**AUTH_ERRORS, 404: {"model": ErrorBody, "description": "No such collection here."}},
)
async def list_sources(
    services: ServicesDep, caller: QueryCaller, collection: CollectionQuery = None
) -> list[SourceOut]:
    """Every source of one of the caller's workspace's collections, with its hash, chunk count, embedding
    model, last error and extraction report."""
    name = await readable_collection(services, caller, collection)
    records = await asyncio.to_thread(services.store.sources.list, name)
    return [_source_out(r, name, services.settings.data_dir) for r in records]


@router.get(
    "/sources/{source_id}",
    response_model=SourceOut,
    responses={**AUTH_ERRORS, 404: {"model": ErrorBody, "description": "No such source in the collection."}},
)
async def get_source(
    source_id: SourceId, services: ServicesDep, caller: QueryCaller, collection: CollectionQuery = None
) -> SourceOut:
    """One source's record with its extraction report: pages, characters per page, pages with no text,
    pages OCR'd, tables found. Another workspace's source is a 404, like one that does not exist."""
    name = await readable_collection(services, caller, collection)
    record = await asyncio.to_thread(services.store.sources.get, name, source_id)
    if record is None:
        raise HTTPException(404, f"no source {source_id!r} in collection {visible_collection(name)!r}")
    return _source_out(record, name, services.settings.data_dir)


def _source_out(record: SourceRecord, collection: str, data_dir: FilePath) -> SourceOut:
    """A record as callers see it: no server paths, the collection by its workspace's name for it."""
    shown = {"uri": shown_uri(record.uri, data_dir), "collection": visible_collection(collection)}
    return SourceOut.model_validate({**record.to_dict(), **shown})


@router.delete(
    "/sources/{source_id}",
    response_model=SourceRemoved,
    responses={
        **AUTH_ERRORS,
        404: {"model": ErrorBody, "description": "No such source in the collection."},
        409: {"model": JobConflict, "description": "An ingest job is writing to the collection."},
    },
)
async def delete_source(
    source_id: SourceId,
    services: ServicesDep,
    jobs: JobsDep,
    caller: IngestCaller,
    collection: CollectionQuery = None,
) -> SourceRemoved:
    """Remove a source's chunks from both indexes, and its record; refused while a job writes there. Another
    workspace's source is a 404, like one that does not exist."""
    name = await readable_collection(services, caller, collection)
    record = await asyncio.to_thread(services.store.sources.get, name, source_id)
    if record is None:
        raise HTTPException(404, f"no source {source_id!r} in collection {visible_collection(name)!r}")
    if await asyncio.to_thread(jobs.running, name) is not None:  # whose job is not this caller's business
        raise HTTPException(409, "an ingest job is already running on this collection")
    removed = await asyncio.to_thread(services.store.remove_source, name, record.uri)
    shown = shown_uri(record.uri, services.settings.data_dir)
    return SourceRemoved(id=record.id, uri=shown, chunks_removed=removed)
