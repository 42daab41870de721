"""Wiring: the four nodes in a line, compiled once with a checkpointer; and `open_docent`, which opens the
services, the checkpointer and the graph together for every entry point (server, CLI, Studio, benches)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from core.services import Services
from core.settings import Settings
from core.storage.checkpoints import open_checkpointer
from core.types import DocentContext
from graph.multitask import RedisTurnGate, TurnGate
from graph.state import DocentState, InputState, OutputState
from nodes.append_message import append_message
from nodes.persist import persist
from nodes.retrieve import retrieve
from nodes.summarize import summarize

DocentGraph = CompiledStateGraph[DocentState, DocentContext, InputState, OutputState]


def build_graph(services: Services, checkpointer: BaseCheckpointSaver[str] | None) -> DocentGraph:
    """Bind the opened services into the nodes and compile. Call once per process."""
    builder = StateGraph(
        DocentState, context_schema=DocentContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("append_message", append_message)
    builder.add_node("retrieve", partial(retrieve, retriever=services.retriever, settings=services.settings))
    builder.add_node(
        "summarize", partial(summarize, answerers=services.answerers, guard=services.output_guard)
    )
    builder.add_node("persist", partial(persist, records=services.records))
    builder.add_edge(START, "append_message")
    builder.add_edge("append_message", "retrieve")
    builder.add_edge("retrieve", "summarize")
    builder.add_edge("summarize", "persist")
    builder.add_edge("persist", END)
    return builder.compile(checkpointer=checkpointer, name="docent")


def turn_gate(settings: Settings) -> TurnGate:
    """The process's turn gate, with the configured multitask strategy: in this process when embedded, on
    Redis too in server mode (replicas share threads). Close it with `aclose`."""
    if settings.server_mode:
        return RedisTurnGate.from_url(
            settings.redis_url, settings.redis_prefix, settings.turn_multitask, settings.turn_wait_s
        )
    return TurnGate(settings.turn_multitask, settings.turn_wait_s)


@dataclass(frozen=True)
class Docent:
    """An opened Docent: its services, its checkpointer and the graph compiled over both."""

    services: Services
    checkpointer: BaseCheckpointSaver[str]
    graph: DocentGraph
    turns: TurnGate
    """One turn at a time per thread (DOCENT_TURN_MULTITASK), across replicas in server mode."""


@asynccontextmanager
async def open_docent(settings: Settings, services: Services | None = None) -> AsyncIterator[Docent]:
    """Open every resource once (models and stores in a worker thread: they block), the checkpointer and the
    graph; close them all on exit. `services`: already opened ones to use (and close) instead."""
    opened = await asyncio.to_thread((services or Services(settings)).open_all)
    try:
        async with open_checkpointer(settings) as checkpointer:
            gate = turn_gate(settings)
            try:
                yield Docent(opened, checkpointer, build_graph(opened, checkpointer), gate)
            finally:
                await gate.aclose()
    finally:
        await asyncio.to_thread(opened.close)
