"""The HTTP app `langgraph dev` mounts (langgraph.json `http.app`): Docent's routes beside the LangGraph API.

langgraph-api imports a module-level Starlette/FastAPI object (not a factory) and runs its lifespan after its
own, so the app borrows the process's Docent (graph.studio.STUDIO) instead of opening a second embedder,
Chroma client, records DB and checkpointer.
"""

from __future__ import annotations

from api.app import create_app
from graph.studio import STUDIO

app = create_app(opener=STUDIO.borrow, mounted_in_studio=True)
