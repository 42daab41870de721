"""The ingestion pipeline: expand inputs, load, split, skip known chunks, embed the new ones, write them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import httpx

from core.chunk_store import ChunkStore
from core.embeddings import OnnxMiniLMEmbedder
from core.settings import Settings
from ingest.load import SUPPORTED_LIST, SUPPORTED_SUFFIXES, LoadedDocument, LoadError, load_path, load_url
from ingest.split import make_splitter, split_document

ProgressCallback = Callable[[str, int, int], None]
"""Called after each source with (source, sources done, sources in this run)."""


@dataclass(frozen=True)
class Problem:
    """A source and what went wrong with it (or what was worth a warning)."""

    source: str
    reason: str


@dataclass
class IngestSummary:
    """What one run did; `failures` non-empty means the run should exit non-zero."""

    collection: str
    sources: int = 0
    pages: int = 0
    chunks_added: int = 0
    chunks_skipped: int = 0
    chunks_removed: int = 0
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as printed by `docent ingest --json`."""
        return asdict(self)


def is_url(item: str) -> bool:
    """http(s) URLs are fetched; everything else is a local path."""
    return item.startswith(("http://", "https://"))


def expand_inputs(items: Iterable[str]) -> tuple[list[str], list[Problem], list[Problem]]:
    """Resolve inputs to unique URLs and files; directories are walked recursively, hidden entries skipped.

    Returns (targets, ignored, failures). Files of unsupported types found inside directories are ignored
    (and listed); named explicitly, they fail when loaded. A directory with nothing to ingest is a failure.
    """
    targets: list[str] = []
    ignored: list[Problem] = []
    failures: list[Problem] = []
    for item in items:
        if is_url(item):
            targets.append(urldefrag(item).url)  # the fragment never reaches the server
            continue
        path = Path(item).expanduser()
        if not path.is_dir():
            targets.append(str(path.resolve()) if path.exists() else item)
            continue
        found = 0
        for child in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in child.relative_to(path).parts) or not child.is_file():
                continue
            if child.suffix.lower() in SUPPORTED_SUFFIXES:
                targets.append(str(child.resolve()))
                found += 1
            else:
                ignored.append(
                    Problem(str(child.resolve()), f"unsupported file type {child.suffix or '(none)'}")
                )
        if not found:
            failures.append(
                Problem(str(path.resolve()), f"no files to ingest in directory (looked for {SUPPORTED_LIST})")
            )
    return list(dict.fromkeys(targets)), ignored, failures


class Ingestor:
    """Fills a collection from sources; opened once with the process's embedder and vector store."""

    def __init__(self, settings: Settings, embedder: OnnxMiniLMEmbedder, store: ChunkStore) -> None:
        self._settings = settings
        self._embedder = embedder
        self._store = store
        self._splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)

    def run(
        self,
        items: Iterable[str],
        *,
        collection: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestSummary:
        """Ingest every item; a bad item is recorded in the summary and the run goes on."""
        started = time.perf_counter()
        name = collection or self._settings.collection
        self._store.check(name)  # fail fast on a bad name or an embedding-model mismatch
        targets, ignored, failures = expand_inputs(items)
        summary = IngestSummary(collection=name, failures=failures, ignored=ignored)
        with httpx.Client(
            follow_redirects=True,
            max_redirects=10,
            timeout=self._settings.http_timeout_s,
            headers={"User-Agent": self._settings.user_agent},
        ) as client:
            for done, target in enumerate(targets, start=1):
                try:
                    self._write(self._load(target, client), name, summary)
                except LoadError as exc:
                    summary.failures.append(Problem(target, str(exc)))
                if on_progress is not None:
                    on_progress(target, done, len(targets))
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    @staticmethod
    def _load(target: str, client: httpx.Client) -> LoadedDocument:
        """Load one target; a loader bug on some odd input fails that input, not the whole run."""
        try:
            if is_url(target):
                return load_url(target, client)
            path = Path(target)
            if not path.exists():
                raise LoadError("no such file or directory")
            return load_path(path)
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(f"unexpected error while loading ({type(exc).__name__}: {exc})") from exc

    def _write(self, document: LoadedDocument, collection: str, summary: IngestSummary) -> None:
        chunks = split_document(document, self._splitter)
        if not chunks:
            raise LoadError("no text to ingest after cleaning")
        ids = [c.id for c in chunks]
        known = self._store.existing_ids(collection, ids)
        fresh = [c for c in chunks if c.id not in known]
        if fresh:
            vectors = self._embedder.embed([c.text for c in fresh])
            self._store.add(
                collection,
                [c.id for c in fresh],
                [c.text for c in fresh],
                [c.metadata for c in fresh],
                vectors,
            )
        # The source changed since it was last ingested: its old chunks go, from both indexes.
        stale = sorted(self._store.source_ids(collection, document.source) - set(ids))
        self._store.remove(collection, stale)
        summary.sources += 1
        summary.pages += document.page_count
        summary.chunks_added += len(fresh)
        summary.chunks_removed += len(stale)
        summary.chunks_skipped += len(known)
        summary.warnings.extend(Problem(document.source, w) for w in document.warnings)
