"""The ingestion pipeline: expand inputs, fetch and hash, skip unchanged sources, parse and split the rest,
embed their new chunks in large batches across sources, and commit each source with its record."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from core.retrieval.chunk_store import ChunkStore, NewChunks, SourceVersion
from core.retrieval.embedders import Embedder
from core.retrieval.vector_store import indexed_text, validate_collection_name
from core.settings import Settings
from core.storage.sources import SourceRecord, content_hash, source_id, utc_now
from ingest.crawl import CrawledPage, Crawler, CrawlOptions
from ingest.document import (
    LoadedDocument,
    LoadError,
    OcrOptions,
    ParseOptions,
    PdfLimits,
    PdfPasswords,
    RawSource,
)
from ingest.fetch import FetchPolicy
from ingest.load import (
    SUPPORTED_LIST,
    SUPPORTED_SUFFIXES,
    fetch_url,
    parse,
    read_path,
)
from ingest.report import ExtractionReport, extraction_report
from ingest.split import CHUNKING_VERSION, Chunk, make_splitter, split_document
from ingest.urls import canonical_url

if TYPE_CHECKING:  # httpx and the splitter are imported only by runs that fetch URLs or split sources
    import httpx
    from langchain_text_splitters import RecursiveCharacterTextSplitter

ProgressCallback = Callable[[str, int, int], None]
"""Called after each source with (source, sources done, sources in this run)."""

SourceStatus = Literal["added", "updated", "unchanged", "failed", "removed", "duplicate"]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Problem:
    """A source and what went wrong with it (or what was worth a warning)."""

    source: str
    reason: str


@dataclass(frozen=True)
class SourceResult:
    """What happened to one source in a run: `report` is what was read from it (ingest/report.py); a
    `duplicate` was skipped because `same_as` holds the same bytes."""

    source: str
    status: SourceStatus
    chunks: int = 0
    reason: str | None = None
    report: dict[str, Any] | None = None
    same_as: str | None = None


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
    sources_duplicate: int = 0
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

    @property
    def all_failed(self) -> bool:
        """Something was asked and every item of it failed: nothing was ingested, skipped or removed."""
        return bool(self.failures) and all(r.status == "failed" for r in self.results)


def is_url(item: str) -> bool:
    """http(s) URLs are fetched; everything else is a local path."""
    return item.startswith(("http://", "https://"))


def parse_options(settings: Settings) -> ParseOptions:
    """What the parsers are allowed and told, from settings: the same for a run and for `docent extract`."""
    return ParseOptions(
        pdf=PdfLimits(max_pages=settings.max_pdf_pages, max_elements=settings.pdf_max_elements),
        html_main_content=settings.html_main_content,
        ocr=OcrOptions(
            mode=settings.ocr,
            max_pages=settings.ocr_max_pages,
            timeout_s=settings.ocr_timeout_s,
            dpi=settings.ocr_dpi,
        ),
    )


def http_client(settings: Settings, policy: FetchPolicy) -> httpx.Client:
    """A pooled HTTP client for fetching under `policy` (httpx is imported only by runs that fetch).

    ingest/fetch.py follows redirects itself (each hop checked). Under a policy that checks addresses,
    proxy variables are ignored: a proxy would resolve the name again, after the check.
    """
    import httpx

    return httpx.Client(
        follow_redirects=False,
        trust_env=policy.allow_private,
        timeout=settings.http_timeout_s,
        headers={"User-Agent": settings.user_agent},
        limits=httpx.Limits(max_connections=settings.ingest_workers),
    )


def extract(
    target: str, settings: Settings, policy: FetchPolicy, options: ParseOptions | None = None
) -> LoadedDocument:
    """Read or fetch one file or URL and parse it exactly as a run would, storing nothing (`docent extract`).

    `options` default to `parse_options(settings)`; a LoadError says why the target cannot be read.
    """
    if is_url(target):
        with http_client(settings, policy) as client:
            raw = Ingestor._read(target, client, policy)
    else:
        path = Path(target).expanduser()
        if path.is_dir():
            raise LoadError("a directory: give one file or URL (`docent ingest` walks directories)")
        raw = Ingestor._read(str(path), None, policy)
    return _parse(raw, options or parse_options(settings))


@dataclass
class Inputs:
    """Inputs resolved to unique targets, plus what was ignored or failed and the directories walked."""

    targets: list[str]
    ignored: list[Problem]
    failures: list[Problem]
    directories: list[Path]
    roots: list[str] = field(default_factory=list)
    """URLs to crawl (with `crawl`): each one's pages are found by ingest/crawl.py as the run goes."""


def expand_inputs(items: Iterable[str], *, crawl: bool = False) -> Inputs:
    """Resolve inputs to unique URLs (canonical: ingest/urls.py) and files; directories are walked
    recursively, hidden entries skipped; with `crawl`, URLs are crawl roots.

    Files of unsupported types found inside directories are ignored (and listed); named explicitly, they fail
    when loaded. A directory with nothing to ingest is a failure.
    """
    targets: list[str] = []
    ignored: list[Problem] = []
    failures: list[Problem] = []
    directories: list[Path] = []
    roots: list[str] = []
    for item in items:
        if is_url(item):
            if crawl:  # as given: a crawl's scope is its root's folder, which a trailing slash names
                roots.append(item)
            else:
                targets.append(canonical_url(item))  # one page, one source (ingest/urls.py)
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
    unique_roots = list({canonical_url(root): root for root in reversed(roots)}.values())[::-1]
    return Inputs(list(dict.fromkeys(targets)), ignored, failures, directories, unique_roots)


@dataclass
class _Failed:
    source: str
    reason: str
    record: bool  # a real source (a URL, an existing file) whose record should carry the error
    report: ExtractionReport | None = None  # what was read, when parsing got that far


@dataclass
class _Duplicate:
    source: str
    same_as: str  # the source (stored, or kept earlier in this run) with the same bytes


# Skipping the same bytes under a second URI: a new source (no stored version) whose bytes equal those of a
# stored source that keeps them through this run (not re-read by it, not pruned by it), or of a source kept
# earlier in this run, is not stored again. A source already stored is updated as usual, even to bytes another
# source has, so skipping never leaves a stale version behind; a skipped source is re-checked by every run,
# and ingested once its twin is gone.


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
    report: ExtractionReport


_Outcome = _Failed | _Unchanged | _Prepared | _Duplicate


class _StageClock:
    """Seconds per stage, added to from several threads."""

    def __init__(self, stages: dict[str, float]) -> None:
        self._stages = stages
        self._lock = threading.Lock()

    def add(self, stage: str, started: float) -> None:
        with self._lock:
            self._stages[stage] += time.perf_counter() - started


def _ordered_map(
    pool: ThreadPoolExecutor, work: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """Like pool.map, in order, but with at most `window` items in flight (bounded memory and fetches).

    `items` is read as results are taken, so a crawl finds its next pages while workers parse its last."""
    futures: deque[Future[R]] = deque()
    for item in items:
        futures.append(pool.submit(work, item))
        if len(futures) >= window:
            yield futures.popleft().result()
    while futures:
        yield futures.popleft().result()


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
        self._chunking = f"{settings.chunk_size}/{settings.chunk_overlap}/{CHUNKING_VERSION}"
        self._options = parse_options(settings)

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
        crawl: CrawlOptions | None = None,
        pdf_passwords: PdfPasswords | None = None,
    ) -> IngestSummary:
        """Ingest every item; a bad item is recorded in the summary and the run goes on.

        With `crawl`, each URL is a crawl root (ingest/crawl.py) and each page it reaches its own source.
        With `prune`, sources recorded under a walked directory that the walk no longer finds are removed, and
        so are those in a complete crawl's scope that it no longer reaches (a page that failed is kept).
        `on_result` hears of each source as it finishes (the summary's `results`, as they come).
        `cancelled` is asked between sources: once it says True the run stops, keeping the sources already
        committed (each source commits with its record) and dropping the rest.
        `fetch_policy` says what URLs may reach (ingest/fetch.py): URLs from HTTP callers need
        `FetchPolicy.strict`; the default is the operator's (private addresses allowed, reasons shown).
        `pdf_passwords` open this run's encrypted PDFs (`--pdf-password`); they are never stored.
        """
        policy = fetch_policy or FetchPolicy.operator(self._settings)
        options = replace(self._options, pdf_passwords=pdf_passwords) if pdf_passwords else self._options
        started = time.perf_counter()
        name = validate_collection_name(collection or self._settings.collection)
        inputs = expand_inputs(items, crawl=crawl is not None)
        summary = IngestSummary(collection=name, failures=list(inputs.failures), ignored=inputs.ignored)
        summary.results.extend(SourceResult(p.source, "failed", reason=p.reason) for p in inputs.failures)
        clock = _StageClock(summary.stages)
        targets = inputs.targets
        reported = 0
        crawled = [0]  # pages the crawls handed over so far (part of the progress total)

        def report(outcomes: list[_Outcome]) -> None:
            nonlocal reported
            for outcome in outcomes:
                self._account(outcome, summary)
                if on_result is not None:
                    on_result(summary.results[-1])
                reported += 1
                if on_progress is not None:
                    on_progress(_source_of(outcome), reported, len(targets) + crawled[0])

        workers = self._settings.ingest_workers
        with (
            self._http_client(bool(inputs.roots) or any(is_url(t) for t in targets), policy) as client,
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

            crawlers = [
                Crawler(root, client, policy, crawl)
                for root in inputs.roots
                if client is not None and crawl is not None  # both are, when there are roots
            ]
            work: Iterable[_Target] = chain(targets, *(_crawled(c, summary, crawled) for c in crawlers))
            found = set(targets)

            def settled(uri: str) -> bool:  # a stored source this run neither re-reads nor prunes
                if crawlers and is_url(uri):
                    return False  # a crawl may yet reach it, or prune it
                return uri not in found and not (prune and _prunable(uri, found, inputs))

            def prepare(target: _Target) -> _Outcome:
                return (
                    target
                    if isinstance(target, _Failed)
                    else self._prepare(target, name, client, policy, clock, settled, options)
                )

            kept: dict[str, str] = {}  # content hash -> the source of this run that holds those bytes
            stopped = False
            for outcome in _ordered_map(loaders, prepare, work, window=workers * 2):
                if cancelled is not None and cancelled():
                    stopped = True  # drop this batch (nothing of it was written) and the fetches to come
                    loaders.shutdown(wait=False, cancel_futures=True)
                    break
                batch.append(_unless_kept(outcome, kept))
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
            self._prune_crawled(name, crawlers, summary)
        summary.stages = {stage: round(seconds, 3) for stage, seconds in summary.stages.items()}
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _http_client(self, needed: bool, policy: FetchPolicy) -> AbstractContextManager[httpx.Client | None]:
        """One pooled HTTP client for the run's URLs; none (and no httpx import) for local files only."""
        return http_client(self._settings, policy) if needed else nullcontext()

    def _prepare(
        self,
        target: str | RawSource,
        collection: str,
        client: httpx.Client | None,
        policy: FetchPolicy,
        clock: _StageClock,
        settled: Callable[[str], bool] = lambda _uri: False,
        options: ParseOptions | None = None,
    ) -> _Outcome:
        """Fetch or read, hash, and (unless unchanged) parse and split one target; runs in a worker thread.

        Unchanged means: same bytes, same chunking, same embedder, and all its chunks in the keyword index
        (which commits with the record, so only outside damage makes that check fail). A new source with the
        bytes of a stored one that is `settled` (keeps them through this run) is a duplicate, not parsed.
        Nothing extracted (no text, no chunks) is a failure, with the extraction report saying what was read.
        """
        started = time.perf_counter()
        try:
            raw = target if isinstance(target, RawSource) else self._read(target, client, policy)
        except LoadError as exc:
            clock.add("load", started)
            assert isinstance(target, str)
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
        stored = record is not None and record.content_hash is not None
        if not stored and (twin := self._stored_twin(collection, digest, raw.source, settled)) is not None:
            clock.add("load", started)
            return _Duplicate(raw.source, twin)
        try:
            document = _parse(raw, options or self._options)
        except LoadError as exc:
            return _Failed(raw.source, str(exc), record=True)
        finally:
            clock.add("load", started)
        report = extraction_report(document)
        if report.read_nothing:
            return _Failed(raw.source, report.nothing_read(), record=True, report=report)
        started = time.perf_counter()
        chunks = split_document(document, self._splitter)
        clock.add("split", started)
        if not chunks:
            return _Failed(raw.source, report.nothing_read(), record=True, report=report)
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
            replaces=stored,
            report=report,
        )

    def _stored_twin(
        self, collection: str, digest: str, uri: str, settled: Callable[[str], bool]
    ) -> str | None:
        """The URI of a stored source with these bytes that keeps them through this run, if any."""
        for twin in self._store.sources.with_content(collection, digest):
            if twin.uri != uri and settled(twin.uri):
                return twin.uri
        return None

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
                self._embedder.embed([indexed_text(c.text, c.metadata) for c in missing])
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
                texts=[indexed_text(c.text, c.metadata) for c in p.chunks],  # BM25 reads the name too
                stale=p.stale,
                metadatas=[c.metadata for c in p.chunks],
            )
            for p in prepared
        ]

        def write() -> None:
            started = time.perf_counter()
            if new is not None:
                self._store.commit(collection, new, versions)
            for outcome in batch:
                if isinstance(outcome, _Failed) and outcome.record:
                    report = outcome.report.to_dict() if outcome.report is not None else None
                    self._store.sources.record_failure(
                        collection, outcome.source, outcome.reason, self._embedder.model_id, report
                    )
                elif isinstance(outcome, _Duplicate):  # its earlier failures are moot now
                    self._store.sources.forget_failed(collection, outcome.source)
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
            report=prepared.report.to_dict(),
        )

    @staticmethod
    def _account(outcome: _Outcome, summary: IngestSummary) -> None:
        """Add a finished source to the summary."""
        if isinstance(outcome, _Failed):
            report = outcome.report.to_dict() if outcome.report is not None else None
            summary.failures.append(Problem(outcome.source, outcome.reason))
            summary.results.append(
                SourceResult(outcome.source, "failed", reason=outcome.reason, report=report)
            )
        elif isinstance(outcome, _Duplicate):
            summary.sources_duplicate += 1
            reason = f"same content as {outcome.same_as}"
            summary.results.append(
                SourceResult(outcome.source, "duplicate", reason=reason, same_as=outcome.same_as)
            )
        elif isinstance(outcome, _Unchanged):
            record = outcome.record
            summary.sources += 1
            summary.sources_unchanged += 1
            summary.pages += record.pages
            summary.chunks_skipped += record.chunks
            summary.results.append(SourceResult(record.uri, "unchanged", record.chunks, report=record.report))
        else:
            document = outcome.document
            summary.sources += 1
            summary.pages += document.page_count
            summary.chunks_added += len(outcome.chunks) - outcome.known
            summary.chunks_skipped += outcome.known
            summary.chunks_removed += len(outcome.stale)
            summary.warnings.extend(Problem(document.source, w) for w in document.warnings)
            status: SourceStatus = "updated" if outcome.replaces else "added"
            report = outcome.report.to_dict()
            summary.results.append(SourceResult(document.source, status, len(outcome.chunks), report=report))

    def _prune(self, collection: str, inputs: Inputs, summary: IngestSummary) -> None:
        """Remove recorded sources that lived under a walked directory and are no longer found there."""
        found = set(inputs.targets)
        for record in self._store.sources.list(collection):
            if _prunable(record.uri, found, inputs):
                removed = self._store.remove_source(collection, record.uri)
                summary.sources_removed += 1
                summary.chunks_removed += removed
                summary.results.append(SourceResult(record.uri, "removed", removed))

    def _prune_crawled(self, collection: str, crawlers: list[Crawler], summary: IngestSummary) -> None:
        """Remove recorded pages in a complete crawl's scope that it no longer reached (nor another crawl
        of this run); an incomplete crawl prunes nothing, and says why."""
        reached = set().union(*(crawler.reached for crawler in crawlers))
        complete = [c.scope for c in crawlers if c.complete and c.scope is not None]
        for crawler in crawlers:
            if not crawler.complete:
                why = "; ".join(crawler.incomplete[:3])
                summary.warnings.append(
                    Problem(crawler.root, f"crawl incomplete, nothing pruned under it: {why}")
                )
        for record in self._store.sources.list(collection):
            uri = record.uri
            if is_url(uri) and uri not in reached and any(scope.covers(uri) for scope in complete):
                removed = self._store.remove_source(collection, uri)
                summary.sources_removed += 1
                summary.chunks_removed += removed
                summary.results.append(SourceResult(uri, "removed", removed))


_Target = str | RawSource | _Failed
"""What a worker is handed: a file or URL to read, a page a crawl fetched, or a crawl's failed page."""


def _crawled(crawler: Crawler, summary: IngestSummary, count: list[int]) -> Iterator[_Target]:
    """A crawl's pages as targets (counted in `count`), its failures as failed sources; what it skipped is
    listed as ignored, and a crawl cut short by a bound is a warning."""
    for event in crawler:
        if isinstance(event, CrawledPage):
            count[0] += 1
            yield event.raw
        elif event.failed:
            count[0] += 1
            yield _Failed(event.url, event.reason, record=True)
        else:
            summary.ignored.append(Problem(event.url, event.reason))
    for why in crawler.incomplete:
        if why.startswith("stopped"):
            summary.warnings.append(Problem(crawler.root, f"crawl {why}"))


def _prunable(uri: str, found: set[str], inputs: Inputs) -> bool:
    """Whether `--prune` removes a recorded source: it lived under a walked directory and the walk no longer
    finds it. (Duplicate detection asks too: a source about to be pruned keeps no bytes for another.)"""
    if is_url(uri) or uri in found:
        return False
    path = Path(uri)
    return any(path.is_relative_to(directory) for directory in inputs.directories)


def _unless_kept(outcome: _Outcome, kept: dict[str, str]) -> _Outcome:
    """A new source whose bytes a source earlier in this run holds is that one's duplicate; the bytes of every
    kept source are noted in `kept` (content hash -> source)."""
    if isinstance(outcome, _Unchanged) and outcome.record.content_hash is not None:
        kept.setdefault(outcome.record.content_hash, outcome.record.uri)
    elif isinstance(outcome, _Prepared):
        source = outcome.document.source
        twin = kept.setdefault(outcome.digest, source)
        if twin != source and not outcome.replaces:
            return _Duplicate(source, twin)
    return outcome


def _source_of(outcome: _Outcome) -> str:
    if isinstance(outcome, _Failed | _Duplicate):
        return outcome.source
    if isinstance(outcome, _Unchanged):
        return outcome.record.uri
    return outcome.document.source


def _parse(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    return _guarded(lambda: parse(raw, options))


def _guarded(load: Callable[[], T]) -> T:
    """A loader bug on some odd input fails that input, not the whole run."""
    try:
        return load()
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"unexpected error while loading ({type(exc).__name__}: {exc})") from exc
