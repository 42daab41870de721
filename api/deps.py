"""Typed dependencies: every resource a route needs, opened once by the lifespan (api.app) and handed to
routes through `AppResources`, which nothing writes to after start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from api.probes import ProbeRunner
from api.security.guardrail import Guardrail
from api.security.ratelimit import RateLimiter
from core.services import Services
from core.settings import Settings
from core.storage.keys import KeyRing
from core.storage.records import TurnRecords
from graph.build import Docent
from ingest.jobs import IngestJobs
from ingest.pipeline import Ingestor


@dataclass(frozen=True)
class AppResources:
    """What one server process opened at start-up, for its lifetime."""

    settings: Settings
    docent: Docent
    keyring: KeyRing | None
    """None with DOCENT_AUTH=off."""
    guardrail: Guardrail
    rate_limiter: RateLimiter | None
    """None when rate limiting is off."""
    ingest_jobs: IngestJobs
    ingestor: Ingestor
    probes: ProbeRunner


def get_resources(connection: HTTPConnection) -> AppResources:
    """The resources the lifespan opened (set once at start-up as `app.state.docent`)."""
    return cast(AppResources, connection.app.state.docent)


# The dependencies are coroutines: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
# per request for reading an attribute (profiled: 2% of the server's interpreter time under load).
async def _resources_dep(connection: HTTPConnection) -> AppResources:
    """The resources the lifespan opened (`get_resources`)."""
    return get_resources(connection)


async def get_settings_dep(connection: HTTPConnection) -> Settings:
    """The server's settings."""
    return get_resources(connection).settings


async def get_services(connection: HTTPConnection) -> Services:
    """The models and stores opened at start-up."""
    return get_resources(connection).docent.services


async def get_docent(connection: HTTPConnection) -> Docent:
    """The opened Docent: services, checkpointer, graph and turn gate."""
    return get_resources(connection).docent


async def get_records(connection: HTTPConnection) -> TurnRecords:
    """The records database."""
    return get_resources(connection).docent.services.records


async def get_jobs(connection: HTTPConnection) -> IngestJobs:
    """The process's ingest jobs."""
    return get_resources(connection).ingest_jobs


ResourcesDep = Annotated[AppResources, Depends(_resources_dep)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ServicesDep = Annotated[Services, Depends(get_services)]
DocentDep = Annotated[Docent, Depends(get_docent)]
RecordsDep = Annotated[TurnRecords, Depends(get_records)]
JobsDep = Annotated[IngestJobs, Depends(get_jobs)]
