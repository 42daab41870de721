"""Who writes an embedded data dir: `docent serve` holds an exclusive flock on `<data_dir>/server.lock` for
its lifetime, with its pid and URL written inside; `docent ingest` and `docent reindex` take the same lock for
their run, so a command-line ingestion never writes stores (embedded Chroma above all) under a running
server. The kernel drops the lock when its process dies, even by SIGKILL: a stale file blocks no one.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_NAME = "server.lock"


@dataclass(frozen=True)
class Holder:
    """The process holding a data dir: its pid, what it is, and its URL when it is a server."""

    pid: int
    role: str
    url: str | None = None


class DataDirBusyError(RuntimeError):
    """Another process writes the data dir; the message says which, and what to do instead."""

    def __init__(self, data_dir: Path, holder: Holder | None) -> None:
        if holder is not None and holder.role == "server" and holder.url:
            message = (
                f"a server (pid {holder.pid}, {holder.url}) is using this data dir ({data_dir}): use"
                f" `docent ingest --server {holder.url}` to ingest through it, or stop it first"
            )
        elif holder is not None:
            message = f"`docent {holder.role}` (pid {holder.pid}) is writing this data dir ({data_dir}): wait"
        else:
            message = f"another Docent process is using this data dir ({data_dir}); wait for it or stop it"
        super().__init__(message)
        self.holder = holder


def _read_holder(handle: IO[str]) -> Holder | None:
    handle.seek(0)
    try:
        found = json.loads(handle.read() or "null")
        return Holder(int(found["pid"]), str(found["role"]), found.get("url"))
    except (ValueError, KeyError, TypeError):
        return None


def _acquire(data_dir: Path, role: str, url: str | None) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = (data_dir / LOCK_NAME).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = _read_holder(handle)
        handle.close()
        raise DataDirBusyError(data_dir, holder) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "role": role, "url": url}))
    handle.flush()
    return handle


@contextmanager
def holding_data_dir(data_dir: Path, role: str, url: str | None = None) -> Iterator[None]:
    """Hold the data dir's lock for the block (DataDirBusyError at once if another process holds it)."""
    handle = _acquire(data_dir, role, url)
    try:
        yield
    finally:
        handle.truncate(0)
        handle.close()  # closing the last descriptor releases the flock


_HELD: list[IO[str]] = []


def hold_until_exit(data_dir: Path, role: str, url: str | None = None) -> None:
    """Hold the data dir's lock for the rest of this process (DataDirBusyError if another holds it)."""
    if any(Path(handle.name) == data_dir / LOCK_NAME for handle in _HELD):
        return  # this process holds it already (a second command run in-process)
    _HELD.append(_acquire(data_dir, role, url))
