"""The ingestion pipeline: expand inputs, fetch and hash, skip unchanged sources, parse and split the rest,
embed their new chunks in large batches across sources, and commit each source with its record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urldefrag

import numpy as np

from core.retrieval.chunk_store import ChunkStore, NewChunks, SourceVersion
from core.retrieval.embedders import Embedder
from core.retrieval.vector_store import validate_collection_name
from core.settings import Settings
from core.storage.sources import SourceRecord, content_hash, source_id, utc_now
from ingest.fetch import FetchPolicy
from ingest.load import (
    SUPPORTED_LIST,
    SUPPORTED_SUFFIXES,
    LoadedDocument,
    LoadError,
    PdfLimits,
    RawSource,
    fetch_url,
    parse,
    read_path,
)
from ingest.split import Chunk, make_splitter, split_document

if TYPE_CHECKING:  # httpx and the splitter are imported only by runs that fetch URLs or split sources
    import httpx
    from langchain_text_splitters import RecursiveCharacterTextSplitter

ProgressCallback = Callable[[str, int, int], None]
"""Called after each source with (source, sources done, sources in this run)."""

SourceStatus = Literal["added", "updated", "unchanged", "failed", "removed"]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Problem:
    """A source and what went wrong with it (or what was worth a warning)."""

    source: str
    reason: str


@dataclass(frozen=True)
class SourceResult:
    """What happened to one source in a run."""

    source: str
    status: SourceStatus
    chunks: int = 0
    reason: str | None = None


@dataclass
class IngestSummary:
    """What one run did; `failures` non-empty means the run should exit non-zero.

    `stages` holds seconds per stage: `load` (read/fetch and parse) and `split` are summed over the worker
    threads, which run while the embedder does; `embed` and `write` are the embedder's and the stores' time.
    """

    collection: str
    sources: int = 0
    sources_unchanged: int = 0
    sources_removed: int = 0
    pages: int = 0
    chunks_added: int = 0
    chunks_skipped: int = 0
    chunks_removed: int = 0
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)
    results: list[SourceResult] = field(default_factory=list)
    stages: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("load", "split", "embed", "write"), 0.0)
    )
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as printed by `docent ingest --json`."""
        return asdict(self)


def is_url(item: str) -> bool:
    """http(s) URLs are fetched; everything else is a local path."""
    return item.startswith(("http://", "https://"))


@dataclass
class Inputs:
    """Inputs resolved to unique targets, plus what was ignored or failed and the directories walked."""

    targets: list[str]
    ignored: list[Problem]
    failures: list[Problem]
    directories: list[Path]


def expand_inputs(items: Iterable[str]) -> Inputs:
    """Resolve inputs to unique URLs and files; directories are walked recursively, hidden entries skipped.

    Files of unsupported types found inside directories are ignored (and listed); named explicitly, they fail
    when loaded. A directory with nothing to ingest is a failure.
    """
    targets: list[str] = []
    ignored: list[Problem] = []
    failures: list[Problem] = []
    directories: list[Path] = []
    for item in items:
        if is_url(item):
            targets.append(urldefrag(item).url)  # the fragment never reaches the server
            continue
        path = Path(item).expanduser()
        if not path.is_dir():
            targets.append(str(path.resolve()) if path.exists() else item)
            continue
        directories.append(path.resolve())
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
    return Inputs(list(dict.fromkeys(targets)), ignored, failures, directories)


@dataclass
class _Failed:
    source: str
    reason: str
    record: bool  # a real source (a URL, an existing file) whose record should carry the error


@dataclass
class _Unchanged:
    record: SourceRecord


@dataclass
class _Prepared:
    document: LoadedDocument
    digest: str
    chunks: list[Chunk]
    missing: list[Chunk]  # not yet in Chroma: these need embedding
    known: int  # chunks already in both indexes
    stale: list[str]  # chunk ids of older versions of the source
    replaces: bool  # the source had a stored version


_Outcome = _Failed | _Unchanged | _Prepared


class _StageClock:
    """Seconds per stage, added to from several threads."""

    def __init__(self, stages: dict[str, float]) -> None:
        self._stages = stages
        self._lock = threading.Lock()

    def add(self, stage: str, started: float) -> None:
        with self._lock:
            self._stages[stage] += time.perf_counter() - started


def _ordered_map(
    pool: ThreadPoolExecutor, work: Callable[[T], R], items: list[T], window: int
) -> Iterator[R]:
    """Like pool.map, in order, but with at most `window` items in flight (bounded memory and fetches)."""
    futures: list[Future[R]] = []
    for index, item in enumerate(items):
        futures.append(pool.submit(work, item))
        if index >= window - 1:
            yield futures[index - window + 1].result()
    yield from (future.result() for future in futures[max(0, len(items) - window + 1) :])


class Ingestor:
    """Fills a collection from sources; opened once with the process's embedder and chunk store.

    Chroma and the embedding model are touched only for sources that changed: an unchanged source is
    recognised from its record (SQLite) and the embedder's model id alone. A collection filled by another
    embedding model is refused (EmbeddingMismatchError) when the first changed source reaches Chroma.
    """

    def __init__(self, settings: Settings, embedder: Embedder, store: ChunkStore) -> None:
        self._settings = settings
        self._embedder = embedder
        self._store = store
        self._splitter_lock = threading.Lock()
        self._made_splitter: RecursiveCharacterTextSplitter | None = None
        self._chunking = f"{settings.chunk_size}/{settings.chunk_overlap}"
        self._limits = PdfLimits(max_pages=settings.max_pdf_pages, max_elements=settings.pdf_max_elements)

    @property
    def settings(self) -> Settings:
        """The settings this ingestor was opened with (callers build their fetch policy from them)."""
        return self._settings

    @property
    def _splitter(self) -> RecursiveCharacterTextSplitter:
        """Made on first use (by a worker thread), so runs with nothing to split never import it."""
        with self._splitter_lock:
            if self._made_splitter is None:
                self._made_splitter = make_splitter(self._settings.chunk_size, self._settings.chunk_overlap)
            return self._made_splitter

    def run(
        self,
        items: Iterable[str],
        *,
        collection: str | None = None,
        on_progress: ProgressCallback | None = None,
        prune: bool = False,
        on_result: Callable[[SourceResult], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        fetch_policy: FetchPolicy | None = None,
    ) -> IngestSummary:
        """Ingest every item; a bad item is recorded in the summary and the run goes on.

        With `prune`, sources recorded under a walked directory that the walk no longer finds are removed.
        `on_result` hears of each source as it finishes (the summary's `results`, as they come).
        `cancelled` is asked between sources: once it says True the run stops, keeping the sources already
        committed (each source commits with its record) and dropping the rest.
        `fetch_policy` says what URLs may reach (ingest/fetch.py): URLs from HTTP callers need
        `FetchPolicy.strict`; the default is the operator's (private addresses allowed, reasons shown).
        """
        policy = fetch_policy or FetchPolicy.operator(self._settings)
        started = time.perf_counter()
        name = validate_collection_name(collection or self._settings.collection)
        inputs = expand_inputs(items)
        summary = IngestSummary(collection=name, failures=list(inputs.failures), ignored=inputs.ignored)
        summary.results.extend(SourceResult(p.source, "failed", reason=p.reason) for p in inputs.failures)
        clock = _StageClock(summary.stages)
        targets = inputs.targets
        reported = 0

        def report(outcomes: list[_Outcome]) -> None:
            nonlocal reported
            for outcome in outcomes:
                self._account(outcome, summary)
                if on_result is not None:
                    on_result(summary.results[-1])
                reported += 1
                if on_progress is not None:
                    on_progress(_source_of(outcome), reported, len(targets))

        workers = self._settings.ingest_workers
        with (
            self._http_client(any(is_url(t) for t in targets), policy) as client,
            ThreadPoolExecutor(workers, thread_name_prefix="ingest-load") as loaders,
            ThreadPoolExecutor(1, thread_name_prefix="ingest-write") as writer,
        ):
            batch: list[_Outcome] = []
            in_flight: tuple[Future[None], list[_Outcome]] | None = None

            def flush() -> None:
                nonlocal batch, in_flight
                write = self._embed_and_submit(name, batch, writer, clock)
                if in_flight is not None:  # at most one write in flight: it overlaps the next embedding
                    in_flight[0].result()
                    report(in_flight[1])
                in_flight, batch = (write, batch), []

            def prepare(target: str) -> _Outcome:
                return self._prepare(target, name, client, policy, clock)

            stopped = False
            for outcome in _ordered_map(loaders, prepare, targets, window=workers * 2):
                if cancelled is not None and cancelled():
                    stopped = True  # drop this batch (nothing of it was written) and the fetches to come
                    loaders.shutdown(wait=False, cancel_futures=True)
                    break
                batch.append(outcome)
                pending = sum(len(o.missing) for o in batch if isinstance(o, _Prepared))
                if pending >= self._settings.ingest_batch_chunks or len(batch) >= 64:
                    flush()
            if not stopped:
                flush()
            if in_flight is not None:
                in_flight[0].result()
                report(in_flight[1])
        if prune and not stopped:
            self._prune(name, inputs, summary)
        summary.stages = {stage: round(seconds, 3) for stage, seconds in summary.stages.items()}
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _http_client(self, needed: bool, policy: FetchPolicy) -> AbstractContextManager[httpx.Client | None]:
        """One pooled HTTP client for the run's URLs; none (and no httpx import) for local files only.

        ingest/fetch.py follows redirects itself (each hop checked). Under a policy that checks addresses,
        proxy variables are ignored: a proxy would resolve the name again, after the check.
        """
        if not needed:
            return nullcontext()
        import httpx

        return httpx.Client(
            follow_redirects=False,
            trust_env=policy.allow_private,
            timeout=self._settings.http_timeout_s,
            headers={"User-Agent": self._settings.user_agent},
            limits=httpx.Limits(max_connections=self._settings.ingest_workers),
        )

    def _prepare(
        self,
        target: str,
        collection: str,
        client: httpx.Client | None,
        policy: FetchPolicy,
        clock: _StageClock,
    ) -> _Outcome:
        """Fetch or read, hash, and (unless unchanged) parse and split one target; runs in a worker thread.

        Unchanged means: same bytes, same chunking, same embedder, and all its chunks in the keyword index
        (which commits with the record, so only outside damage makes that check fail).
        """
        started = time.perf_counter()
        try:
            raw = self._read(target, client, policy)
        except LoadError as exc:
            clock.add("load", started)
            return _Failed(target, str(exc), record=is_url(target) or Path(target).exists())
        digest = content_hash(raw.data)
        record = self._store.sources.by_uri(collection, raw.source)
        if (
            record is not None
            and record.content_hash == digest
            and record.chunking == self._chunking
            and record.embedding_model == self._embedder.model_id
            and len(self._store.keywords.source_ids(collection, raw.source)) == record.chunks
        ):
            clock.add("load", started)
            return _Unchanged(record)
        try:
            document = _parse(raw, self._limits)
        except LoadError as exc:
            return _Failed(target, str(exc), record=True)
        finally:
            clock.add("load", started)
        started = time.perf_counter()
        chunks = split_document(document, self._splitter)
        clock.add("split", started)
        if not chunks:
            return _Failed(target, "no text to ingest after cleaning", record=True)
        ids = [c.id for c in chunks]
        in_chroma = self._store.vectors.existing_ids(collection, ids)
        in_both = in_chroma & self._store.keywords.existing_ids(collection, ids)
        stale = sorted(self._store.source_ids(collection, document.source) - set(ids))
        return _Prepared(
            document=document,
            digest=digest,
            chunks=chunks,
            missing=[c for c in chunks if c.id not in in_chroma],
            known=len(in_both),
            stale=stale,
            replaces=record is not None and record.content_hash is not None,
        )

    @staticmethod
    def _read(target: str, client: httpx.Client | None, policy: FetchPolicy) -> RawSource:
        if is_url(target):
            assert client is not None  # run() opens one whenever a target is a URL
            return _guarded(lambda: fetch_url(target, client, policy))
        path = Path(target)
        if not path.exists():
            raise LoadError("no such file or directory")
        return _guarded(lambda: read_path(path))

    def _embed_and_submit(
        self, collection: str, batch: list[_Outcome], writer: ThreadPoolExecutor, clock: _StageClock
    ) -> Future[None]:
        """Embed every new chunk of the batch in one call (main thread); write it in the writer thread."""
        prepared = [o for o in batch if isinstance(o, _Prepared)]
        missing = [c for p in prepared for c in p.missing]
        new: NewChunks | None = None
        if prepared:  # a batch of unchanged and failed sources needs no model (nor Chroma)
            started = time.perf_counter()
            vectors = (
                self._embedder.embed([c.text for c in missing])
                if missing
                else np.zeros((0, self._embedder.dimension), dtype=np.float32)
            )
            clock.add("embed", started)
            new = NewChunks(
                ids=[c.id for c in missing],
                texts=[c.text for c in missing],
                metadatas=[c.metadata for c in missing],
                embeddings=vectors,
            )
        versions = [
            SourceVersion(
                record=self._record(collection, p),
                ids=[c.id for c in p.chunks],
                texts=[c.text for c in p.chunks],
                stale=p.stale,
            )
            for p in prepared
        ]

        def write() -> None:
            started = time.perf_counter()
            if new is not None:
                self._store.commit(collection, new, versions)
            for outcome in batch:
                if isinstance(outcome, _Failed) and outcome.record:
                    self._store.sources.record_failure(
                        collection, outcome.source, outcome.reason, self._embedder.model_id
                    )
                elif isinstance(outcome, _Unchanged) and outcome.record.last_error is not None:
                    self._store.sources.clear_error(collection, outcome.record.id)
            clock.add("write", started)

        return writer.submit(write)

    def _record(self, collection: str, prepared: _Prepared) -> SourceRecord:
        document = prepared.document
        return SourceRecord(
            collection=collection,
            id=source_id(document.source),
            uri=document.source,
            content_hash=prepared.digest,
            title=document.title,
            kind=document.kind,
            pages=document.page_count,
            chunks=len(prepared.chunks),
            embedding_model=self._embedder.model_id,
            chunking=self._chunking,
            ingested_at=utc_now(),
        )

    @staticmethod
    def _account(outcome: _Outcome, summary: IngestSummary) -> None:
        """Add a finished source to the summary."""
        if isinstance(outcome, _Failed):
            summary.failures.append(Problem(outcome.source, outcome.reason))
            summary.results.append(SourceResult(outcome.source, "failed", reason=outcome.reason))
        elif isinstance(outcome, _Unchanged):
            summary.sources += 1
            summary.sources_unchanged += 1
            summary.pages += outcome.record.pages
            summary.chunks_skipped += outcome.record.chunks
            summary.results.append(SourceResult(outcome.record.uri, "unchanged", outcome.record.chunks))
        else:
            document = outcome.document
            summary.sources += 1
            summary.pages += document.page_count
            summary.chunks_added += len(outcome.chunks) - outcome.known
            summary.chunks_skipped += outcome.known
            summary.chunks_removed += len(outcome.stale)
            summary.warnings.extend(Problem(document.source, w) for w in document.warnings)
            status: SourceStatus = "updated" if outcome.replaces else "added"
            summary.results.append(SourceResult(document.source, status, len(outcome.chunks)))

    def _prune(self, collection: str, inputs: Inputs, summary: IngestSummary) -> None:
        """Remove recorded sources that lived under a walked directory and are no longer found there."""
        found = set(inputs.targets)
        for record in self._store.sources.list(collection):
            if is_url(record.uri) or record.uri in found:
                continue
            path = Path(record.uri)
            if any(path.is_relative_to(directory) for directory in inputs.directories):
                removed = self._store.remove_source(collection, record.uri)
                summary.sources_removed += 1
                summary.chunks_removed += removed
                summary.results.append(SourceResult(record.uri, "removed", removed))


def _source_of(outcome: _Outcome) -> str:
    if isinstance(outcome, _Failed):
        return outcome.source
    if isinstance(outcome, _Unchanged):
        return outcome.record.uri
    return outcome.document.source


def _parse(raw: RawSource, limits: PdfLimits) -> LoadedDocument:
    return _guarded(lambda: parse(raw, limits))


def _guarded(load: Callable[[], T]) -> T:
    """A loader bug on some odd input fails that input, not the whole run."""
    try:
        return load()
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"unexpected error while loading ({type(exc).__name__}: {exc})") from exc
