"""The HTTP app `langgraph dev` mounts (langgraph.json `http.app`): Docent's routes beside the LangGraph API.

langgraph-api imports a module-level Starlette/FastAPI object (not a factory) and runs its lifespan after its
own. Rather than open a second embedder, Chroma client, records DB and checkpointer, the app borrows the
process's shared resources (`graph.studio.STUDIO`): the Studio graph's services and the server's SQLite saver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.app import Resources, create_app
from core.settings import Settings
from graph.studio import STUDIO


@asynccontextmanager
async def _shared_resources(settings: Settings) -> AsyncIterator[Resources]:
    """The Studio's services and checkpointer, held for the app's lifetime."""
    async with STUDIO.lease() as services:
        yield services, STUDIO.require_checkpointer()


app = create_app(resources=_shared_resources, under_langgraph=True)
