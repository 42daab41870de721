"""Typed dependencies: what a route needs, opened once in the lifespan and read from app state."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from core.services import Services
from graph.build import DocentGraph


def get_graph(request: Request) -> DocentGraph:
    """The graph compiled at start-up."""
    return cast(DocentGraph, request.app.state.graph)


def get_services(request: Request) -> Services:
    """The models and stores opened at start-up."""
    return cast(Services, request.app.state.services)


GraphDep = Annotated[DocentGraph, Depends(get_graph)]
ServicesDep = Annotated[Services, Depends(get_services)]
