"""GET /health: the process is up and what it serves."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

from api.deps import ServicesDep
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(services: ServicesDep) -> Health:
    """Liveness: answers as soon as the stores and models are open."""
    return Health(
        status="ok",
        version=version("docent-rag"),
        models=services.answerers.names,
        collection=services.settings.collection,
    )
