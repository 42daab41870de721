"""API keys: stored only as sha256 hashes, each with a name, a workspace (the tenant whose collections it
sees) and scopes. A key's id, the start of its hash, owns the threads and jobs it creates: a key re-created
under an old name is a new owner."""

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
    """The keys file cannot be read or is malformed."""


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


class KeyRing:
    """Keys from settings plus the keys file, which is re-read when it changes (a key created with
    `docent keys create` works without a restart, on every replica that shares the file). The file is looked
    at no more than once per `recheck_s`, not on every request.
    """

    def __init__(self, configured: list[KeySpec], path: Path, *, recheck_s: float = 1.0) -> None:
        self._configured = list(configured)
        self._path = path
        self._recheck_s = recheck_s
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Principal] = {}
        self._reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _reload(self) -> None:
        stamp = self._file_stamp()
        specs = self._configured + read_key_file(self._path)
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


def all_keys(settings: Settings) -> list[KeySpec]:
    """The keys from settings and the keys file together (KeyFileError when the file is malformed)."""
    return list(settings.api_keys) + read_key_file(settings.keys_file)


class NoKeysError(RuntimeError):
    """Auth is on and no API key is configured: the server would refuse every request."""


def open_keyring(settings: Settings) -> KeyRing | None:
    """The API keys (None with auth off, after a warning); NoKeysError when auth is on without any key."""
    if settings.auth == "off":
        log.warning("DOCENT_AUTH=off: every route is open to anyone who can reach this server")
        return None
    keyring = KeyRing(settings.api_keys, settings.keys_file)
    if not len(keyring):
        raise NoKeysError(
            f"no API key is configured (keys file {settings.keys_file}): create one with"
            " `docent keys create NAME --scopes query,ingest`, or set DOCENT_AUTH=off to serve without keys"
        )
    return keyring
