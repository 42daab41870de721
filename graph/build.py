"""Wiring: the four nodes in a line, compiled once with a checkpointer."""

from __future__ import annotations

from functools import partial

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from core.context import DocentContext
from core.services import Services
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
    builder.add_node("summarize", partial(summarize, answerers=services.answerers))
    builder.add_node("persist", partial(persist, records=services.records))
    builder.add_edge(START, "append_message")
    builder.add_edge("append_message", "retrieve")
    builder.add_edge("retrieve", "summarize")
    builder.add_edge("summarize", "persist")
    builder.add_edge("persist", END)
    return builder.compile(checkpointer=checkpointer, name="docent")
