"""LangGraph Studio (`langgraph dev`): the graph factory and the checkpointer that langgraph.json names.

How langgraph-api 0.16 (inmem runtime, what `langgraph dev` runs) uses these, from its source:

* Graph factory. A callable graph in langgraph.json is classified as a factory (0 args, `config`,
  `runtime: ServerRuntime`, or both) and called on *every* access: each run, state read and schema
  request (`langgraph_api.graph.get_graph` -> `invoke_factory`). Its result may be a graph, a coroutine
  or a (sync or async) context manager (`langgraph_api.asyncio.as_asynccontextmanager`). The server then
  replaces the returned graph's checkpointer and store with its own (`graph_obj.copy(update=...)`), so
  the factory compiles without one. So `make_graph` must be cheap: it returns the graph compiled once
  per process over services opened once per process (`STUDIO`).
* Checkpointer. `"checkpointer": {"path": ...}` (LANGGRAPH_CHECKPOINTER, backend "custom") does work with
  `langgraph dev`: `langgraph_runtime_inmem.lifespan` calls `start_checkpointer()`, which loads the path
  (`langgraph_api._checkpointer._adapter.collect_checkpointer_from_env`), calls it, enters the async
  context manager it returns and wraps the saver for every run and thread read; the inmem runtime's
  `_get_checkpointer` returns it whenever `USE_CUSTOM_CHECKPOINTER`. It is exited at shutdown
  (`exit_checkpointer`). So thread state lives in our SQLite file
  (`core.storage.checkpoints.open_checkpointer`), while the dev server's own bookkeeping (threads, runs,
  assistants) stays in `.langgraph_api/`.
  The path must use the dotted form `graph.studio.make_checkpointer`: the loader splits a module path on
  its last "." (`_load_checkpointer`), so the documented `pkg.module:attr` form fails, and a file path
  (`./graph/studio.py:...`) would load this file a second time as another module, with its own `STUDIO`.
  Caveats: the SQLite saver lacks `adelete_for_runs`, `acopy_thread` and `aprune` (the server logs
  warnings; thread copy uses a generic fallback, rollback of cancelled runs and pruning are unsupported);
  and the saver is entered once per thread (`CHECKPOINTER_STACK` is thread-local), which only matters
  with BG_JOB_ISOLATED_LOOPS=true.
* Blocking calls. `langgraph dev` turns blocking calls on the event loop into BlockingError once its run
  queue has started (blockbuster). Opening services (ONNX, Chroma, SQLite) runs in a worker thread;
  the checkpointer is entered by the server before the queue starts, so the `mkdir` inside
  `open_checkpointer` is not flagged there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from core.services import Services
from core.settings import Settings, get_settings
from core.storage.checkpoints import open_checkpointer
from graph.build import Docent, DocentGraph, build_graph, turn_gate

logger = logging.getLogger(__name__)


class StudioRuntime:
    """The one Docent a `langgraph dev` process serves. Whichever comes first (the graph factory, the
    checkpointer or the mounted HTTP app) opens the services, once, in a worker thread; the checkpointer's
    exit (server shutdown) closes them. The graph factory and the HTTP app only borrow.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._lock = threading.Lock()  # taken only in worker threads, never on an event loop
        self._services: Services | None = None
        self._graph: DocentGraph | None = None
        self.checkpointer: BaseCheckpointSaver[str] | None = None
        """The saver the server entered through `make_checkpointer`."""

    def _open(self) -> tuple[Services, DocentGraph]:
        """Open the services and compile the factory's graph unless done already (blocking)."""
        with self._lock:
            if self._services is None or self._graph is None:
                settings = self._settings or get_settings()
                self._services = Services(settings).open_all()
                self._graph = build_graph(self._services, None)  # the server sets its own saver
                logger.info("Docent services opened (data dir %s)", settings.data_dir)
            return self._services, self._graph

    def _close(self) -> None:
        with self._lock:
            if self._services is not None:
                self._services.close()
            self._services = self._graph = None

    async def services(self) -> Services:
        """The services, opened if nobody has yet."""
        return self._services or (await asyncio.to_thread(self._open))[0]

    async def graph(self) -> DocentGraph:
        """The graph the factory returns, compiled once."""
        return self._graph or (await asyncio.to_thread(self._open))[1]

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[BaseCheckpointSaver[str]]:
        """For the server's lifetime: the services open and our checkpointer entered; closed on exit."""
        services = await self.services()
        try:
            async with open_checkpointer(services.settings) as saver:
                self.checkpointer = saver
                try:
                    yield saver
                finally:
                    self.checkpointer = None
        finally:
            await asyncio.to_thread(self._close)

    @asynccontextmanager
    async def borrow(self, _settings: Settings) -> AsyncIterator[Docent]:
        """The mounted HTTP app's Docent: the shared services and the server's saver (a DocentOpener)."""
        if self.checkpointer is None:
            raise RuntimeError(
                'langgraph.json must set "checkpointer": {"path": "graph.studio.make_checkpointer"}'
            )
        services = await self.services()
        saver = self.checkpointer
        gate = turn_gate(services.settings)
        try:
            yield Docent(services, saver, build_graph(services, saver), gate)
        finally:
            await gate.aclose()


STUDIO = StudioRuntime()
"""This process's Docent (the server imports this module once, as `graph.studio`)."""


async def make_graph() -> DocentGraph:
    """Graph factory for langgraph.json: the graph compiled once per process (the server sets its saver)."""
    return await STUDIO.graph()


@asynccontextmanager
async def make_checkpointer() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Checkpointer for langgraph.json: our saver (SQLite under the data dir, or PostgreSQL in server mode:
    core.storage.checkpoints.open_checkpointer), entered once at server start, which also opens the services
    (so they open at start-up, not on the first run) and closes them at the end.
    """
    async with STUDIO.serving() as saver:
        yield saver
