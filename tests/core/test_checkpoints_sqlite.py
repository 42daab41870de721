"""The embedded checkpointer (ThreadedSqliteSaver): LangGraph's SqliteSaver run from worker threads. A file
written by LangGraph's AsyncSqliteSaver (what earlier Docent versions used) reads and continues with it."""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from core.settings import Settings
from core.storage.checkpoints import ThreadedSqliteSaver, open_checkpointer


class Steps(TypedDict):
    said: Annotated[list[str], operator.add]


def counting_graph(saver: BaseCheckpointSaver[str]) -> CompiledStateGraph[Steps, None, Steps, Steps]:
    """Two nodes, each appending what it saw."""
    builder = StateGraph(Steps)
    builder.add_node("first", lambda state: {"said": [f"first after {len(state['said'])}"]})
    builder.add_node("second", lambda state: {"said": [f"second after {len(state['said'])}"]})
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver)


CONFIG: RunnableConfig = {"configurable": {"thread_id": "t1"}}


async def test_a_file_written_by_the_aiosqlite_saver_reads_and_continues(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.checkpoint_db.parent.mkdir(parents=True)
    async with AsyncSqliteSaver.from_conn_string(str(settings.checkpoint_db)) as old:
        await old.setup()
        await counting_graph(old).ainvoke({"said": ["hello"]}, CONFIG)
        written = [s.config async for s in counting_graph(old).aget_state_history(CONFIG)]

    async with open_checkpointer(settings) as saver:
        assert isinstance(saver, ThreadedSqliteSaver)
        graph = counting_graph(saver)
        state = await graph.aget_state(CONFIG)
        assert state.values["said"] == ["hello", "first after 1", "second after 2"]
        assert [s.config async for s in graph.aget_state_history(CONFIG)] == written
        limited = [s async for s in graph.aget_state_history(CONFIG, limit=2)]
        assert len(limited) == 2 and limited[0].config == written[0]

        await graph.ainvoke({"said": ["again"]}, CONFIG)
        assert (await graph.aget_state(CONFIG)).values["said"][-2:] == ["first after 4", "second after 5"]
        await graph.aupdate_state(written[-1], None)  # a fork of the first checkpoint, as a rollback makes
        await saver.adelete_thread("t1")
        assert not (await graph.aget_state(CONFIG)).values

    async with AsyncSqliteSaver.from_conn_string(str(settings.checkpoint_db)) as old:
        assert await old.aget_tuple(CONFIG) is None  # the delete is in the file, for either saver


async def test_concurrent_threads_each_keep_their_own_turns(tmp_path: Path) -> None:
    async with open_checkpointer(Settings(data_dir=tmp_path / "data")) as saver:
        graph = counting_graph(saver)
        configs: list[RunnableConfig] = [{"configurable": {"thread_id": f"t{n}"}} for n in range(12)]
        await asyncio.gather(*(graph.ainvoke({"said": [str(n)]}, c) for n, c in enumerate(configs)))
        for n, config in enumerate(configs):
            assert (await graph.aget_state(config)).values["said"] == [
                str(n),
                "first after 1",
                "second after 2",
            ]
