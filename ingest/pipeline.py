"""The ingestion pipeline: expand inputs, load, split, skip known chunks, embed the new ones, write them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core.embeddings import OnnxMiniLMEmbedder
from core.settings import Settings
from core.vectorstore import VectorStore
from ingest.load import SUPPORTED_SUFFIXES, LoadedDocument, LoadError, load_path, load_url
from ingest.split import make_splitter, split_document

ProgressCallback = Callable[[str], None]


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


def expand_inputs(items: Iterable[str]) -> tuple[list[str], list[Problem]]:
    """Resolve inputs to unique URLs and files; directories are walked recursively.

    Files of unsupported types found inside directories are ignored (and listed); named explicitly, they fail.
    """
    targets: list[str] = []
    ignored: list[Problem] = []
    for item in items:
        if is_url(item):
            targets.append(item)
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in SUPPORTED_SUFFIXES:
                    targets.append(str(child.resolve()))
                elif not child.name.startswith("."):
                    ignored.append(
                        Problem(str(child.resolve()), f"unsupported file type {child.suffix or '(none)'}")
                    )
        else:
            targets.append(str(path.resolve()) if path.exists() else item)
    return list(dict.fromkeys(targets)), ignored


class Ingestor:
    """Fills a collection from sources; opened once with the process's embedder and vector store."""

    def __init__(self, settings: Settings, embedder: OnnxMiniLMEmbedder, vectors: VectorStore) -> None:
        self._settings = settings
        self._embedder = embedder
        self._vectors = vectors
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
        self._vectors.collection(name)  # fail fast on a bad name or an embedding-model mismatch
        targets, ignored = expand_inputs(items)
        summary = IngestSummary(collection=name, ignored=ignored)
        with httpx.Client(
            follow_redirects=True,
            max_redirects=10,
            timeout=self._settings.http_timeout_s,
            headers={"User-Agent": self._settings.user_agent},
        ) as client:
            for target in targets:
                try:
                    document = load_url(target, client) if is_url(target) else self._load_file(target)
                    self._write(document, name, summary)
                except LoadError as exc:
                    summary.failures.append(Problem(target, str(exc)))
                if on_progress is not None:
                    on_progress(target)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def planned(self, items: Iterable[str]) -> int:
        """How many sources a run over these items will visit (for progress bars)."""
        return len(expand_inputs(items)[0])

    @staticmethod
    def _load_file(target: str) -> LoadedDocument:
        path = Path(target)
        if not path.exists():
            raise LoadError("no such file or directory")
        return load_path(path)

    def _write(self, document: LoadedDocument, collection: str, summary: IngestSummary) -> None:
        chunks = split_document(document, self._splitter)
        if not chunks:
            raise LoadError("no text to ingest after cleaning")
        known = self._vectors.existing_ids(collection, [c.id for c in chunks])
        fresh = [c for c in chunks if c.id not in known]
        if fresh:
            vectors = self._embedder.embed([c.text for c in fresh])
            self._vectors.add(
                collection,
                [c.id for c in fresh],
                [c.text for c in fresh],
                [c.metadata for c in fresh],
                vectors,
            )
        summary.sources += 1
        summary.pages += document.page_count
        summary.chunks_added += len(fresh)
        summary.chunks_skipped += len(known)
        summary.warnings.extend(Problem(document.source, w) for w in document.warnings)
