"""GET /me: who the presented key is and what it may do, so a client (the chat page) shows only what works."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api.routes import docent_router
from api.schemas import AUTH_ERRORS, KeyInfo
from api.security.auth import identify
from core.storage.keys import SCOPES, Principal

router = docent_router(tags=["keys"])


@router.get("/me", response_model=KeyInfo, responses=AUTH_ERRORS)
async def whoami(caller: Annotated[Principal, Depends(identify)]) -> KeyInfo:
    """The calling key's name, workspace and scopes (`admin` holds every scope). Any valid key may ask; with
    DOCENT_AUTH=off the one anonymous caller holds them all."""
    return KeyInfo(
        name=caller.name,
        workspace=caller.workspace,
        scopes=[scope for scope in SCOPES if caller.allows(scope)],
    )
