"""Errors every layer may raise and the API maps to a status."""

from __future__ import annotations


class DependencyUnavailable(RuntimeError):
    """A service Docent depends on (PostgreSQL, Redis, the Chroma server) cannot be reached: HTTP 503."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency


def unavailable(exc: BaseException) -> DependencyUnavailable | None:
    """The exception as a DependencyUnavailable when it (or what caused it) says that a database, Redis or the
    Chroma server cannot be reached; None for any other error (a bug, a bad query), which stays a 500."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DependencyUnavailable):
            return current
        if (dependency := _dependency_of(current)) is not None:
            return DependencyUnavailable(dependency, _reason(current))
        current = current.__cause__ or current.__context__
    return None


def _dependency_of(exc: BaseException) -> str | None:
    """Which dependency a driver's connection-level error comes from (drivers imported only if loaded)."""
    import sys

    if (sqlalchemy_exc := sys.modules.get("sqlalchemy.exc")) is not None:
        if isinstance(exc, sqlalchemy_exc.OperationalError | sqlalchemy_exc.InterfaceError):
            return "database"
        if isinstance(exc, sqlalchemy_exc.DBAPIError) and exc.connection_invalidated:
            return "database"
        if isinstance(exc, sqlalchemy_exc.TimeoutError):  # no pooled connection came free in time
            return "database"
    if (psycopg := sys.modules.get("psycopg")) is not None and isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError
    ):
        return "database"
    if (psycopg_pool := sys.modules.get("psycopg_pool")) is not None and isinstance(
        exc, psycopg_pool.PoolTimeout
    ):
        return "database"
    if (redis_exc := sys.modules.get("redis.exceptions")) is not None and isinstance(
        exc, redis_exc.ConnectionError | redis_exc.TimeoutError
    ):
        return "redis"
    return None


def _reason(exc: BaseException) -> str:
    """The first line of a driver's message (theirs run to several lines of SQL and links)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
