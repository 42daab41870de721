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
  (`exit_checkpointer`). So thread state lives in our SQLite file (`core.checkpoints.open_checkpointer`),
  while the dev server's own bookkeeping (threads, runs, assistants) stays in `.langgraph_api/`.
  The path must use the dotted form `graph.studio.make_checkpointer`: the loader splits a module path on
  its last "." (`_load_checkpointer`), so the documented `pkg.module:attr` form fails, and a file path
  (`./graph/studio.py:...`) would load this file a second time as another module, with its own `STUDIO`.
  Caveats: AsyncSqliteSaver lacks `adelete_for_runs`, `acopy_thread` and `aprune` (the server logs
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

from core.checkpoints import open_checkpointer
from core.services import Services, open_services
from core.settings import Settings, get_settings
from graph.build import DocentGraph, build_graph

logger = logging.getLogger(__name__)


class StudioResources:
    """The services and compiled graph one `langgraph dev` process shares between its graph factory,
    its checkpointer and the mounted HTTP app: opened once (in a worker thread), closed with the last lease.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._lock = threading.Lock()  # taken only in worker threads, never on an event loop
        self._services: Services | None = None
        self._graph: DocentGraph | None = None
        self._leases = 0
        self.checkpointer: BaseCheckpointSaver[str] | None = None
        """The saver the server entered through `make_checkpointer`, for the HTTP app's own routes."""

    def _open(self) -> tuple[Services, DocentGraph]:
        """Open the services and compile the graph unless done already (blocking: call in a thread)."""
        with self._lock:
            if self._services is None or self._graph is None:
                settings = self._settings or get_settings()
                services = open_services(settings)
                self._graph = build_graph(services, None)
                self._services = services
                logger.info("Docent services opened (data dir %s)", settings.data_dir)
            return self._services, self._graph

    def _acquire(self) -> Services:
        """Count a lease and open the services if needed (blocking: call in a thread)."""
        with self._lock:
            self._leases += 1
        try:
            return self._open()[0]
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        """End a lease; the last one closes the services (blocking: call in a thread)."""
        with self._lock:
            self._leases -= 1
            if self._leases == 0 and self._services is not None:
                self._services.close()
                self._services = self._graph = None

    async def graph(self) -> DocentGraph:
        """The compiled graph, opening the services first if nobody has yet."""
        if self._graph is not None:
            return self._graph
        return (await asyncio.to_thread(self._open))[1]

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Services]:
        """Hold the services open for the duration of the block; the last lease to end closes them."""
        services = await asyncio.to_thread(self._acquire)
        try:
            yield services
        finally:
            await asyncio.to_thread(self._release)

    def require_checkpointer(self) -> BaseCheckpointSaver[str]:
        """The server's checkpointer; an error when langgraph.json does not name `make_checkpointer`."""
        if self.checkpointer is None:
            raise RuntimeError(
                'langgraph.json must set "checkpointer": {"path": "graph.studio.make_checkpointer"}'
            )
        return self.checkpointer


STUDIO = StudioResources()
"""This process's shared resources (the server imports this module once, as `graph.studio`)."""


async def make_graph() -> DocentGraph:
    """Graph factory for langgraph.json: the graph compiled once per process (the server sets its saver)."""
    return await STUDIO.graph()


@asynccontextmanager
async def make_checkpointer() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Checkpointer for langgraph.json: our SQLite saver under the data dir, entered once at server start.

    It also leases the services, so they open at start-up rather than on the first run, and close at shutdown.
    """
    async with STUDIO.lease() as services, open_checkpointer(services.settings) as saver:
        first = STUDIO.checkpointer is None
        if first:
            STUDIO.checkpointer = saver
        try:
            yield saver
        finally:
            if first:
                STUDIO.checkpointer = None
