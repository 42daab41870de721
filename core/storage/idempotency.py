"""Idempotency keys: the first response to a request sent with an `Idempotency-Key`, kept in the
`idempotency` table so that a retry (on any replica) gets it back instead of running the request again.

A request claims its key by inserting the row (INSERT ... ON CONFLICT DO NOTHING): of two replicas racing on
one key, one inserts and runs, the other sees the row. While the request runs its row has no status code, and
its `created_at` is a heartbeat the running replica renews every `HEARTBEAT_S`; a claim whose heartbeat is
older than `CLAIM_STALE_S` belonged to a replica that died, and the next retry takes it over. Once answered,
`created_at` is the time of the answer, and the row is replayed until it is `ttl_s` old. Blocking
(SQLAlchemy): call it from a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.storage.models import idempotency

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""How often a running request renews its claim."""
CLAIM_STALE_S = 15.0
"""A claim not renewed for this long was left by a dead process: a retry may take it over."""
SWEEP_EVERY_S = 60.0
"""How often (at most) a process deletes expired rows of every key."""

ClaimState = Literal["claimed", "in_progress", "mismatch", "done"]
_swept: dict[int, float] = {}  # engine id -> time.monotonic() of its last sweep in this process
_swept_lock = threading.Lock()


@dataclass(frozen=True)
class Claim:
    """What a request found for its key: `claimed` (run it, then `finish` or `release`), `in_progress`
    (another request with the key runs now), `mismatch` (the key was used with another body) or `done`
    (replay `status_code` and `response`)."""

    state: ClaimState
    status_code: int | None = None
    response: str | None = None
    run_id: str | None = None
    """The run a claimed request must use (the same after a takeover: the dead run's, so that what it may
    have finished can be found)."""
    taken_over: bool = False
    """Claimed from a dead process, which may have finished the work without storing its answer."""


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


class IdempotencyStore:
    """The `idempotency` table on the process's engine; keys are scoped by owner and route."""

    def __init__(self, engine: Engine, ttl_s: float) -> None:
        self._engine = engine
        self._ttl = timedelta(seconds=ttl_s)
        self._insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert

    @staticmethod
    def _row(owner: str, route: str, key: str) -> list[ColumnElement[bool]]:
        c = idempotency.c
        return [c.owner == owner, c.route == route, c.key == key]

    def claim(self, owner: str, route: str, key: str, request_hash: str) -> Claim:
        """Claim `key` for a request whose body hashes to `request_hash`, or say why it cannot run."""
        self._sweep_now_and_then()
        c = idempotency.c
        where = self._row(owner, route, key)
        for _ in range(3):  # a row deleted between our insert and our read is claimed on the next pass
            now = datetime.now(UTC)
            with self._engine.begin() as db:
                db.execute(
                    delete(idempotency).where(
                        *where, c.status_code.is_not(None), c.created_at < _stamp(now - self._ttl)
                    )
                )
                run_id = str(uuid.uuid4())
                inserted = db.execute(
                    self._insert(idempotency)
                    .values(
                        owner=owner,
                        route=route,
                        key=key,
                        request_hash=request_hash,
                        run_id=run_id,
                        created_at=_stamp(now),
                    )
                    .on_conflict_do_nothing()
                    .returning(c.key)  # psycopg reports no rowcount for ON CONFLICT DO NOTHING
                )
                if inserted.first() is not None:
                    return Claim("claimed", run_id=run_id)
                row = db.execute(select(idempotency).where(*where)).one_or_none()
                if row is None:
                    continue
                if row.request_hash != request_hash:
                    return Claim("mismatch")
                if row.status_code is not None:
                    return Claim("done", row.status_code, row.response)
                if row.created_at >= _stamp(now - timedelta(seconds=CLAIM_STALE_S)):
                    return Claim("in_progress")
                taken = db.execute(  # only one of several retries takes the dead claim over
                    update(idempotency)
                    .where(*where, c.status_code.is_(None), c.created_at == row.created_at)
                    .values(created_at=_stamp(now))
                )
                if taken.rowcount == 1:
                    log.warning(
                        "idempotency key %r of %s: taking over a claim left by a dead process", key, route
                    )
                    return Claim("claimed", run_id=row.run_id or run_id, taken_over=True)
                return Claim("in_progress")
        return Claim("in_progress")

    def heartbeat(self, owner: str, route: str, key: str) -> None:
        """Renew a running request's claim."""
        with self._engine.begin() as db:
            db.execute(
                update(idempotency)
                .where(*self._row(owner, route, key), idempotency.c.status_code.is_(None))
                .values(created_at=_stamp(datetime.now(UTC)))
            )

    def finish(self, owner: str, route: str, key: str, status_code: int, response: str) -> None:
        """Keep the response for the key's retries."""
        with self._engine.begin() as db:
            db.execute(
                update(idempotency)
                .where(*self._row(owner, route, key))
                .values(status_code=status_code, response=response, created_at=_stamp(datetime.now(UTC)))
            )

    def release(self, owner: str, route: str, key: str) -> None:
        """Forget a claim whose request failed: it left nothing behind, so a retry runs it afresh."""
        with self._engine.begin() as db:
            db.execute(
                delete(idempotency).where(*self._row(owner, route, key), idempotency.c.status_code.is_(None))
            )

    def abandon(self, owner: str, route: str, key: str) -> None:
        """Give back a claim taken over from a dead process whose retry failed: it stays that run's, with its
        run id, and the next retry takes it over at once, so it looks again for what the dead run finished
        (a new run id would not find it)."""
        stale = datetime.now(UTC) - timedelta(seconds=CLAIM_STALE_S + 1)
        with self._engine.begin() as db:
            db.execute(
                update(idempotency)
                .where(*self._row(owner, route, key), idempotency.c.status_code.is_(None))
                .values(created_at=_stamp(stale))
            )

    def sweep(self) -> int:
        """Delete every expired response (and every claim dead for longer than the TTL); returns how many."""
        now = datetime.now(UTC)
        with self._engine.begin() as db:
            gone = db.execute(delete(idempotency).where(idempotency.c.created_at < _stamp(now - self._ttl)))
        return gone.rowcount

    def _sweep_now_and_then(self) -> None:
        with _swept_lock:
            now = time.monotonic()
            if now - _swept.get(id(self._engine), float("-inf")) < SWEEP_EVERY_S:
                return
            _swept[id(self._engine)] = now
        self.sweep()
