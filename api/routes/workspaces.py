"""GET /workspaces (admin): each workspace with its collections and how many keys it has."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from api.deps import ResourcesDep
from api.routes import docent_router
from api.schemas import AUTH_ERRORS
from api.security.auth import AdminCaller
from core.services import Services
from core.storage.keys import ANONYMOUS, Principal
from core.storage.workspaces import split_stored

router = docent_router(tags=["workspaces"])


class WorkspaceOut(BaseModel):
    """One workspace: the keys that act in it and the collections it holds."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "default", "keys": 2, "collections": ["docent", "manuals"]}]}
    )

    name: str
    keys: int = Field(description="Keys in this workspace (from settings and the keys file).")
    collections: list[str] = Field(description="Its collections, by the names its keys use.")


def workspaces(services: Services, principals: list[Principal]) -> list[WorkspaceOut]:
    """Every workspace a key or a stored collection names (blocking: Chroma and SQLite)."""
    keys: dict[str, int] = {}
    for principal in principals:
        keys[principal.workspace] = keys.get(principal.workspace, 0) + 1
    collections: dict[str, set[str]] = {}
    stored = set(services.store.vectors.names()) | set(services.store.sources.collections())
    for name in stored:
        if name.endswith(".reindex"):  # a re-embedding's staging copy
            continue
        workspace, collection = split_stored(name)
        collections.setdefault(workspace, set()).add(collection)
    return [
        WorkspaceOut(name=name, keys=keys.get(name, 0), collections=sorted(collections.get(name, ())))
        for name in sorted(keys.keys() | collections.keys())
    ]


@router.get("/workspaces", response_model=list[WorkspaceOut], responses=AUTH_ERRORS)
async def list_workspaces(resources: ResourcesDep, caller: AdminCaller) -> list[WorkspaceOut]:
    """Every workspace with its collections and key count (the `admin` scope). An admin key otherwise acts
    in its own workspace, like any key."""
    principals = resources.keyring.principals() if resources.keyring is not None else [ANONYMOUS]
    return await asyncio.to_thread(workspaces, resources.docent.services, principals)
