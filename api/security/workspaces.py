"""Collections per workspace: every route turns the collection a caller names into its workspace's stored
name here (core.storage.workspaces), so a key reaches only its own workspace's collections. Reading one that
does not exist is a 404 naming it, and creates nothing; only ingest creates.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from fastapi import HTTPException

from core.services import Services
from core.settings import Settings
from core.storage.keys import Principal
from core.storage.workspaces import WorkspaceError, split_stored, stored_collection
from core.types import DocentContext


class CollectionNotFound(HTTPException):
    """404 for a collection the caller's workspace does not have (another workspace's is not there either)."""

    def __init__(self, collection: str) -> None:
        super().__init__(404, f"no collection {collection!r}: ingest into it first")


def workspace_collection(settings: Settings, caller: Principal, requested: str | None) -> str:
    """The stored name of the caller's collection `requested` (default: the server's); 422 for a name
    that cannot be one."""
    try:
        return stored_collection(caller.workspace, requested or settings.collection)
    except WorkspaceError as exc:
        raise HTTPException(422, str(exc)) from exc


def collection_exists(services: Services, stored: str) -> bool:
    """Whether a stored collection has vectors or source records (blocking)."""
    return services.store.vectors.exists(stored) or stored in services.store.sources.collections()


async def readable_collection(services: Services, caller: Principal, requested: str | None) -> str:
    """The stored name of a collection the caller may search or list. One it names that its workspace does
    not have is a 404; the server's default collection, before anything is ingested, reads as empty."""
    stored = workspace_collection(services.settings, caller, requested)
    if requested is not None and not await asyncio.to_thread(collection_exists, services, stored):
        raise CollectionNotFound(requested)
    return stored


async def turn_context(services: Services, caller: Principal, context: DocentContext) -> DocentContext:
    """A turn's runtime context with its collection resolved in the caller's workspace (404 when unknown)."""
    return replace(context, collection=await readable_collection(services, caller, context.collection))


def visible_collection(stored: str) -> str:
    """The name a workspace's keys know one of its stored collections by."""
    return split_stored(stored)[1]
