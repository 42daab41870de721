"""API keys: stored only as sha256 hashes, each with a name, a workspace (the tenant whose collections it
sees) and scopes. A key's id, the start of its hash, owns the threads and jobs it creates: a key re-created
under an old name is a new owner.

`docent keys create` writes keys to the relational database (`api_keys`), which every replica reads; keys can
also come from settings (DOCENT_API_KEYS) and from a JSON keys file (DOCENT_API_KEYS_FILE, e.g. a mounted
secret; `<data_dir>/api_keys.json` from before keys moved to the database is still read)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator

from core.storage.workspaces import DEFAULT_WORKSPACE, WORKSPACE_PATTERN

if TYPE_CHECKING:  # settings import KeySpec from here
    from sqlalchemy import Engine

    from core.settings import Settings

Scope = Literal["query", "ingest", "admin"]
SCOPES: tuple[Scope, ...] = ("query", "ingest", "admin")
KEY_PREFIX = "dk_"


class KeySpec(BaseModel):
    """One configured key: who it is, the hash of its secret, and what it may do."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of the whole key.")
    scopes: list[Scope] = Field(min_length=1)
    workspace: str = Field(
        DEFAULT_WORKSPACE,
        min_length=2,
        max_length=32,
        pattern=WORKSPACE_PATTERN,
        description="The workspace whose collections it sees.",
    )
    created_at: str | None = None

    @property
    def id(self) -> str:
        """The key's stable id (the first 16 hex digits of its hash): what owns its threads and jobs."""
        return key_id(self.sha256)

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


log = logging.getLogger(__name__)
_SPECS = TypeAdapter(list[KeySpec])


@dataclass(frozen=True)
class Principal:
    """The caller a key identifies: `id` owns the threads and jobs it creates, `workspace` bounds what it
    sees, `name` is for people (logs, metrics, rate-limit buckets)."""

    id: str
    name: str
    workspace: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        """`admin` may do everything; otherwise the scope must be granted."""
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Principal(id="anonymous", name="anonymous", workspace=DEFAULT_WORKSPACE, scopes=frozenset(SCOPES))


class KeyFileError(ValueError):
    """A key store (the database's key table or a keys file) cannot be read or changed as asked."""


def hash_key(key: str) -> str:
    """The hex sha256 a key is stored as."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(sha256: str) -> str:
    """A key's id from its hash: 64 bits, enough to tell keys apart, and never the secret."""
    return sha256[:16]


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def read_key_file(path: Path) -> list[KeySpec]:
    """The keys in a keys file; none when it does not exist."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise KeyFileError(f"cannot read keys file {path}: {exc}") from exc
    try:
        return _SPECS.validate_python(json.loads(raw).get("keys", []))
    except (ValueError, AttributeError) as exc:
        raise KeyFileError(f"keys file {path} is malformed: {exc}") from exc


def add_key(
    path: Path, name: str, scopes: list[Scope], created_at: str, workspace: str = DEFAULT_WORKSPACE
) -> str:
    """Create a key named `name` in `workspace`, store its hash in the keys file (mode 0600), and return the
    key itself, which is never stored. A name already in the file is refused.
    """
    specs = read_key_file(path)
    if any(spec.name == name for spec in specs):
        raise KeyFileError(f"a key named {name!r} already exists in {path}")
    key = new_key()
    specs.append(
        KeySpec(name=name, sha256=hash_key(key), scopes=scopes, workspace=workspace, created_at=created_at)
    )
    _write_key_file(path, specs)
    return key


def remove_key(path: Path, name: str) -> None:
    """Delete the key named `name` from the keys file."""
    specs = read_key_file(path)
    kept = [spec for spec in specs if spec.name != name]
    if len(kept) == len(specs):
        raise KeyFileError(f"no key named {name!r} in {path}")
    _write_key_file(path, kept)


def _write_key_file(path: Path, specs: list[KeySpec]) -> None:
    """Replace the keys file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    body = json.dumps({"keys": [spec.model_dump() for spec in specs]}, indent=2) + "\n"
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, path)


class KeyTable:
    """The keys `docent keys` manages, in the relational database's `api_keys` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def stored(self) -> list[KeySpec]:
        """Every stored key, by name."""
        from sqlalchemy import select

        from core.storage.models import api_keys

        with self._engine.connect() as connection:
            rows = connection.execute(select(api_keys).order_by(api_keys.c.name)).mappings().all()
        return [
            KeySpec(
                name=row["name"],
                sha256=row["sha256"],
                scopes=json.loads(row["scopes"]),
                workspace=row["workspace"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    def add(self, name: str, scopes: list[Scope], created_at: str, workspace: str = DEFAULT_WORKSPACE) -> str:
        """Create a key named `name` in `workspace`, store its hash, and return the key itself (never
        stored). A name already taken is refused."""
        from sqlalchemy.exc import IntegrityError

        from core.storage.models import api_keys

        key = new_key()
        spec = KeySpec(
            name=name, sha256=hash_key(key), scopes=scopes, workspace=workspace, created_at=created_at
        )
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    api_keys.insert().values(
                        sha256=spec.sha256,
                        name=spec.name,
                        scopes=json.dumps(spec.scopes),
                        workspace=spec.workspace,
                        created_at=spec.created_at,
                    )
                )
        except IntegrityError as exc:
            raise KeyFileError(f"a key named {name!r} already exists") from exc
        return key

    def remove(self, name: str) -> bool:
        """Delete the key named `name`; False when there is none."""
        from sqlalchemy import delete

        from core.storage.models import api_keys

        with self._engine.begin() as connection:
            removed = connection.execute(delete(api_keys).where(api_keys.c.name == name)).rowcount
        return bool(removed)


class KeyRing:
    """Keys from settings, the keys file and the database's key table. The file is re-read when it changes,
    looked at no more than once per `recheck_s`; the table is re-read by `refresh_table`, which the server
    calls off the event loop every `recheck_s` (a key created with `docent keys create` works without a
    restart, on every replica). Lookups never touch the database.
    """

    def __init__(
        self,
        configured: list[KeySpec],
        path: Path,
        *,
        table: KeyTable | None = None,
        recheck_s: float = 1.0,
    ) -> None:
        self._configured = list(configured)
        self._path = path
        self._table = table
        self._recheck_s = recheck_s
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._stored: list[KeySpec] = table.stored() if table is not None else []
        self._by_hash: dict[str, Principal] = {}
        self._reload()

    @property
    def recheck_s(self) -> float:
        """How often the keys are looked at again."""
        return self._recheck_s

    def refresh_table(self) -> None:
        """Re-read the database's keys (blocking: run it in a worker thread). On failure the keys read
        before stay in use and the error propagates (the caller logs it)."""
        if self._table is None:
            return
        stored = self._table.stored()
        with self._lock:
            if stored != self._stored:
                previous, self._stored = self._stored, stored
                try:
                    self._reload()
                except KeyFileError as exc:
                    self._stored = previous
                    log.error("keeping the previous API keys: %s", exc)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _reload(self) -> None:
        stamp = self._file_stamp()
        specs = self._configured + read_key_file(self._path) + self._stored
        names: dict[str, str] = {}
        ids: dict[str, str] = {}
        by_hash: dict[str, Principal] = {}
        for spec in specs:
            if names.setdefault(spec.name, spec.sha256) != spec.sha256:
                raise KeyFileError(f"two different keys are named {spec.name!r}")
            if ids.setdefault(spec.id, spec.sha256) != spec.sha256:
                raise KeyFileError(f"two different keys share the id {spec.id!r}: create {spec.name!r} again")
            by_hash[spec.sha256] = Principal(
                id=spec.id, name=spec.name, workspace=spec.workspace, scopes=frozenset(spec.scopes)
            )
        self._by_hash, self._stamp = by_hash, stamp

    def __len__(self) -> int:
        return len(self._by_hash)

    def principals(self) -> list[Principal]:
        """Every key's principal, as last read."""
        with self._lock:
            return list(self._by_hash.values())

    def identify(self, key: str) -> Principal | None:
        """The principal of a presented key, or None for an unknown key."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self._recheck_s:
                self._checked_at = now
                self._refresh()
            return self._by_hash.get(hash_key(key))

    def _refresh(self) -> None:
        """Re-read the keys file when it has changed since it was last read."""
        stamp = self._file_stamp()
        if stamp != self._stamp:
            try:
                self._reload()
            except KeyFileError as exc:  # keep serving the keys read before; say why once per change
                self._stamp = stamp
                log.error("keeping the previous API keys: %s", exc)


def all_keys(settings: Settings, table: KeyTable) -> list[KeySpec]:
    """The keys from settings, the keys file and the database together (KeyFileError when the file is
    malformed)."""
    return list(settings.api_keys) + read_key_file(settings.keys_file) + table.stored()


class NoKeysError(RuntimeError):
    """Auth is on and no API key is configured: the server would refuse every request."""


def open_keyring(settings: Settings, table: KeyTable) -> KeyRing | None:
    """The API keys (None with auth off, after a warning); NoKeysError when auth is on without any key."""
    if settings.auth == "off":
        log.warning("DOCENT_AUTH=off: every route is open to anyone who can reach this server")
        return None
    keyring = KeyRing(settings.api_keys, settings.keys_file, table=table)
    if not len(keyring):
        raise NoKeysError(
            "no API key is configured (in the database, DOCENT_API_KEYS or the keys file"
            f" {settings.keys_file}): create one with"
            " `docent keys create NAME --scopes query,ingest`, or set DOCENT_AUTH=off to serve without keys"
        )
    return keyring
