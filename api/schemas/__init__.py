"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import binascii
from typing import Annotated, Any, Literal

from fastapi import HTTPException
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.retrieval.filters import MAX_PAGE, MAX_VALUE_CHARS, MAX_VALUES, SearchFilter, filter_from_mapping
from core.types import Citation, DocentContext, TurnOutput, Usage

COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$"
# Uploads are stored under `<data_dir>/uploads/<collection>/`: a directory name has at most 255 bytes.
UPLOAD_COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$"
THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Not blank: some character that is not whitespace. \x1c-\x1f are named because regex dialects disagree on
# them (Python counts them as whitespace, Rust and ECMAScript do not); anchored so every engine is linear.
NOT_BLANK_PATTERN = r"^[\s\x1c-\x1f]*[^\s\x1c-\x1f]"
# Canonical base64 (padded), exactly what `base64.b64decode(..., validate=True)` accepts.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# A file name, optionally after a path: the part after the last / or \ is kept, must not start with a dot.
FILE_NAME_PATTERN = r"^(?:.*[/\\])?[^/\\.\x00][^/\\\x00]*$"
MAX_UPLOAD_FILES = 200
"""Files in one POST /ingest, in either body."""


def _whole_number(value: object) -> object:
    """A float with no fraction as an int: JSON Schema's `integer` includes 4.0 (request models are strict,
    so "4" and true stay refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Passages per request: the schema's bound (the server's own limit, DOCENT_MAX_K, may be lower).
PassageCount = Annotated[int, Field(ge=1, le=50), BeforeValidator(_whole_number)]

# Examples of the OpenAPI document. FastAPI drops every null from the document, examples included, so the
# nullable fields of replies default to null (they are always sent) and examples stay valid without them.
SAMPLE_THREAD_ID = "0d7bd59d38914dec8f92b3633fa64c19"
SAMPLE_RUN_ID = "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382"
SAMPLE_CITATION: dict[str, Any] = {
    "n": 1,
    "source": "data/sample/hot-vs-cold-composting.html",
    "title": "Hot vs. Cold Composting: Which Method Fits Your Garden?",
    "page": None,
    "snippet": "Keeping the pile hot requires regular turning.",
    "chunk_id": "5f0c1e2d9a7b4c3e",
    "cited": True,
    "supported": True,
}
SAMPLE_OUTPUT: dict[str, Any] = {
    "answer": "Keeping the pile hot requires regular turning. [1] Turn the pile every 3 to 5 days. [1]",
    "citations": [SAMPLE_CITATION],
    "thread_id": SAMPLE_THREAD_ID,
    "model": "extractive",
    "usage": None,
    "cost": 0.0,
    "degraded": False,
    "degraded_reason": None,
    "unsupported_sentences": 0,
    "output_rule": None,
    "cached": False,
}


class InvokeInput(BaseModel):
    """The user's turn."""

    model_config = ConfigDict(extra="forbid", strict=True)
    message: str = Field(
        min_length=1,
        max_length=100_000,
        pattern=NOT_BLANK_PATTERN,
        description="The question (the server's limit, 8,000 characters by default, applies).",
        examples=["How much can I save by turning my thermostat back?"],
    )


FilterText = Annotated[str, Field(min_length=1, max_length=MAX_VALUE_CHARS)]
FilterValues = FilterText | Annotated[list[FilterText], Field(min_length=1, max_length=MAX_VALUES)]
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_whole_number)]
FilterTime = Annotated[str, Field(min_length=1, max_length=64)]


class SearchFilterBody(BaseModel):
    """Search only the chunks that match every key given (any of a key's values): `filter_from_mapping`'s
    JSON form (docs/retrieval.md, "Filters"). Rules the schema cannot state (a page range that runs
    backwards, a time that is not ISO 8601, an empty window) are a 400."""

    model_config = ConfigDict(extra="forbid", strict=True)
    source: FilterValues | None = Field(
        None,
        description="Source URL or path as citations show it, its file name, or the name without suffix.",
        examples=["compost-field-guide.pdf"],
    )
    kind: FilterValues | None = Field(
        None, description="Document kind: pdf, html, docx, pptx, xlsx, markdown, text, …", examples=["pdf"]
    )
    title: FilterValues | None = Field(None, description="Exact document title.")
    section: FilterValues | None = Field(None, description="Exact section heading.")
    page_from: PageNumber | None = Field(None, description="First page, inclusive, 1-based.", examples=[2])
    page_to: PageNumber | None = Field(None, description="Last page, inclusive.", examples=[5])
    ingested_after: FilterTime | None = Field(
        None,
        description="Sources ingested after this ISO 8601 date or date-time (UTC unless it says).",
        examples=["2026-11-01"],
    )
    ingested_before: FilterTime | None = Field(
        None, description="Sources ingested before this ISO 8601 date or date-time.", examples=["2027-01-01"]
    )


def search_filter(body: SearchFilterBody | None, where: str) -> SearchFilter | None:
    """The filter a request names (None for none or an empty one); a 400 naming `where` for a rule the
    schema cannot state."""
    if body is None:
        return None
    try:
        found = filter_from_mapping(body.model_dump(exclude_none=True))
    except ValueError as exc:
        raise HTTPException(400, f"{where}: {exc}") from None
    return None if found.is_empty() else found


class Configurable(BaseModel):
    """LangServe's `configurable`: the thread, and optional run-time knobs."""

    model_config = ConfigDict(extra="forbid", strict=True)
    thread_id: str | None = Field(
        None,
        pattern=THREAD_ID_PATTERN,
        description="Continue this thread; omit for new.",
        examples=[SAMPLE_THREAD_ID],
    )
    k: PassageCount | None = Field(
        None, description="Passages to retrieve (the server's limit applies).", examples=[4]
    )
    collection: str | None = Field(
        None, pattern=COLLECTION_PATTERN, description="Collection to search.", examples=["docent"]
    )
    retriever: Literal["dense", "bm25", "hybrid"] | None = Field(
        None, description="Retrieval mode.", examples=["hybrid"]
    )
    model: str | None = Field(
        None,
        max_length=200,
        description="Answering model by name (see GET /health).",
        examples=["extractive"],
    )
    filter: SearchFilterBody | None = Field(
        None, description="Search only matching chunks (source, kind, title, section, pages, ingest time)."
    )


def _no_kwargs(value: dict[str, Any]) -> dict[str, Any]:
    if value:
        raise ValueError(f"kwargs are not supported (got {sorted(value)}); send an empty object or none")
    return value


# LangServe's RemoteRunnable sends `"kwargs": {}` with every invoke, batch and stream (it refuses non-empty
# ones itself): accepted when empty.
LangServeKwargs = Annotated[dict[str, Any], AfterValidator(_no_kwargs)]
KWARGS_DESCRIPTION = "LangServe clients' `kwargs`: accepted, and must be empty."


class InvokeConfig(BaseModel):
    """LangServe's `config` object."""

    model_config = ConfigDict(strict=True)
    configurable: Configurable = Field(default_factory=lambda: Configurable())


class InvokeRequest(BaseModel):  # type: ignore[no-redef]  # pydantic-mypy: field alias "kwargs" vs **kwargs
    """Body of POST /invoke (LangServe shape)."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "input": {"message": "How often should I turn a hot compost pile?"},
                    "config": {"configurable": {"thread_id": "my-thread", "k": 4}},
                }
            ]
        },
    )
    input: InvokeInput
    config: InvokeConfig = Field(default_factory=InvokeConfig)
    langserve_kwargs: LangServeKwargs = Field(
        default_factory=dict, alias="kwargs", description=KWARGS_DESCRIPTION
    )

    def run_context(self) -> DocentContext:
        """The run-time knobs this body sets, as the graph's runtime context."""
        knobs = self.config.configurable
        return DocentContext(
            k=knobs.k,
            collection=knobs.collection,
            retriever=knobs.retriever,
            model=knobs.model,
            filter=search_filter(knobs.filter, "config.configurable.filter"),
        )


class InvokeMetadata(BaseModel):
    """Run identifiers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"run_id": SAMPLE_RUN_ID}]})

    run_id: str


class InvokeResponse(BaseModel):
    """Body of POST /invoke's reply (LangServe shape)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"output": SAMPLE_OUTPUT, "metadata": {"run_id": SAMPLE_RUN_ID}}]}
    )

    output: TurnOutput = Field(examples=[SAMPLE_OUTPUT])
    metadata: InvokeMetadata


class Health(BaseModel):
    """Liveness and what this process serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "version": "0.1.0", "models": ["extractive"], "collection": "docent"}
            ]
        }
    )

    status: str
    version: str
    models: list[str]
    collection: str


class ErrorBody(BaseModel):
    """Every error reply."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "unknown API key"}]})
    detail: str


class ValidationIssue(BaseModel):
    """One reason a request was invalid (FastAPI's validation error item)."""

    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field's path.")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """A 422: the validation errors of the body or parameters, or one message for a check the server makes
    beyond the schema (its message and k limits, a bad upload)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {"loc": ["body", "input", "message"], "msg": "Field required", "type": "missing"}
                    ]
                },
                {"detail": "message is 9120 characters; this server takes at most 8000"},
            ]
        }
    )
    detail: str | list[ValidationIssue]


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key."},
    403: {"model": ErrorBody, "description": "The key lacks the scope this route needs."},
    429: {"model": ErrorBody, "description": "Rate limit exceeded; retry after `Retry-After` seconds."},
}

# The refusals of a route that runs one turn (/invoke, /stream).
TURN_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    400: {
        "model": ErrorBody,
        "description": "Unknown model, blocked by the input guardrail, or a body that is not UTF-8 JSON.",
    },
    404: {"model": ErrorBody, "description": "The thread belongs to another key."},
    409: {
        "model": ErrorBody,
        "description": "The thread is answering another turn (DOCENT_TURN_MULTITASK), or the collection"
        " cannot be searched.",
    },
    413: {"model": ErrorBody, "description": "Body too large."},
    422: {"model": ValidationErrorBody, "description": "Invalid body, or over the message/k limits."},
    503: {
        "model": ErrorBody,
        "description": "A store it needs (the Chroma server, the database, Redis) cannot be reached; retry"
        " after Retry-After.",
    },
}


class UploadedFile(BaseModel):
    """A file sent inline with an ingest request."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(
        min_length=1,
        max_length=255,
        pattern=FILE_NAME_PATTERN,
        description="File name (at most 255 bytes in UTF-8; a leading path is dropped); its suffix picks the"
        " parser (.pdf .html .md …).",
        examples=["radiator-notes.txt"],
    )
    content_base64: str = Field(
        description="The file's bytes, base64-encoded (padded).",
        examples=["UmFkaWF0b3Igbm90ZXMKCkJsZWVkIHJhZGlhdG9ycyBvbmNlIGEgeWVhci4="],
        # Checked by `_is_base64` (a clearer message than a pattern mismatch), stated here for the schema.
        json_schema_extra={"pattern": BASE64_PATTERN},
    )

    @field_validator("content_base64")
    @classmethod
    def _is_base64(cls, content: str) -> str:
        """Padded base64, exactly as BASE64_PATTERN says (checked in C: uploads can be tens of MB)."""
        try:
            binascii.a2b_base64(content, strict_mode=True)
            decodes = True
        except (binascii.Error, ValueError):
            decodes = False
        padding = len(content) - len(content.rstrip("="))
        if not decodes or len(content) % 4 or padding > 2:
            raise ValueError("not valid base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)")
        return content

    @field_validator("name")
    @classmethod
    def _fits_file_system(cls, name: str) -> str:
        """The kept file name must fit the file system's 255-byte limit."""
        if len(name.replace("\\", "/").rsplit("/", 1)[-1].encode("utf-8")) > 255:
            raise ValueError("the file name is over 255 bytes in UTF-8")
        return name


class IngestRequest(BaseModel):
    """Body of POST /ingest: URLs and/or files (at least one), into one collection."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["urls"], "properties": {"urls": {"minItems": 1}}},
                {"required": ["files"], "properties": {"files": {"minItems": 1}}},
            ],
            "examples": [
                {"urls": ["https://www.energy.gov/energysaver/thermostats"], "collection": "docent"},
                {
                    "files": [
                        {
                            "name": "radiator-notes.txt",
                            "content_base64": "UmFkaWF0b3Igbm90ZXMKCkJsZWVkIHJhZGlhdG9ycyBvbmNlIGEgeWVhci4=",
                        }
                    ]
                },
            ],
        },
    )
    urls: list[Annotated[str, Field(pattern=r"^https?://")]] = Field(
        default_factory=list,
        max_length=1000,
        description="http(s) URLs to fetch: at most DOCENT_INGEST_MAX_URLS (100; never over 1000). Each is"
        " fetched only from a public address or one in DOCENT_FETCH_ALLOW.",
    )
    files: list[UploadedFile] = Field(
        default_factory=list, max_length=MAX_UPLOAD_FILES, description="Files to ingest."
    )
    collection: str | None = Field(
        None,
        pattern=UPLOAD_COLLECTION_PATTERN,
        description="Target collection (default: the server's); at most 255 characters.",
        examples=["docent"],
    )


SAMPLE_REPORT: dict[str, Any] = {
    "pages": 4,
    "units": 6,
    "characters": 9412,
    "characters_per_page": 2353,
    "empty_pages": 1,
    "ocr_pages": 1,
    "tables": 2,
    "warnings": 1,
    "empty_page_numbers": [4],
    "ocr_page_numbers": [3],
    "warning_messages": ["page 4: no text, even after OCR"],
}


class ExtractionReportOut(BaseModel):
    """What Docent read from a source (ingest/report.py): see `docent extract` for the text itself."""

    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_REPORT]})

    pages: int = Field(
        description="Pages of the source (a web page or text file is one; a deck, one per slide)."
    )
    units: int = Field(description="Pieces a chunk may not straddle: PDF pages, sections, slides, sheets.")
    characters: int = Field(description="Characters of text extracted in all.")
    characters_per_page: int = Field(description="`characters` / `pages`, rounded.")
    empty_pages: int = Field(description="Pages with no text, even after OCR.")
    ocr_pages: int = Field(description="Pages whose text was recognised from their image.")
    tables: int = Field(description="Tables found (each kept as rows, one per line).")
    warnings: int = Field(description="Warnings the loader gave.")
    empty_page_numbers: list[int] = Field(default_factory=list, description="The first 50 empty pages.")
    ocr_page_numbers: list[int] = Field(default_factory=list, description="The first 50 OCR'd pages.")
    warning_messages: list[str] = Field(default_factory=list, description="The first 10 warnings.")


INGEST_FORM: dict[str, Any] = {
    "schema": {
        "type": "object",
        "properties": {
            "file": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "maxItems": MAX_UPLOAD_FILES,
                "description": "Files to ingest (`-F file=@report.pdf`, repeated for more); each part's"
                " file name (at most 255 bytes, a leading path dropped, not starting with a dot) picks the"
                " parser by its suffix. Streamed to disk; the whole body within DOCENT_MAX_UPLOAD_BYTES.",
            },
            "url": {
                "type": "array",
                "items": {"type": "string", "pattern": r"^https?://"},
                "maxItems": 1000,
                "description": "http(s) URLs to fetch (`-F url=https://…`, repeated for more): at most"
                " DOCENT_INGEST_MAX_URLS.",
            },
            "collection": {
                "type": "string",
                "pattern": UPLOAD_COLLECTION_PATTERN,
                "description": "Target collection (default: the server's).",
            },
        },
        "additionalProperties": False,
    },
    "encoding": {"file": {"contentType": "application/octet-stream"}},
    "example": {"url": ["https://www.energy.gov/energysaver/thermostats"], "collection": "docent"},
}
"""POST /ingest's multipart/form-data body, as OpenAPI describes it (api/routes/ingest.py reads it)."""


SAMPLE_JOB: dict[str, Any] = {
    "id": "1c6c2d41e1db4a1c972345614299e449",
    "collection": "docent",
    "status": "done",
    "cancel_requested": False,
    "done": 1,
    "total": 1,
    "current": None,
    "started_at": "2026-11-21T23:21:54+00:00",
    "finished_at": "2026-11-21T23:21:54+00:00",
    "error": None,
    "results": [
        {
            "source": "uploads/docent/radiator-notes.txt",
            "status": "added",
            "chunks": 1,
            "reason": None,
            "report": {
                "pages": 1,
                "units": 1,
                "characters": 57,
                "characters_per_page": 57,
                "empty_pages": 0,
                "ocr_pages": 0,
                "tables": 0,
                "warnings": 0,
            },
        }
    ],
    "summary": {"sources": 1, "chunks_added": 1, "chunks_skipped": 0, "failures": [], "seconds": 0.077},
}


class SourceResultOut(BaseModel):
    """What happened to one source in a job: a `duplicate` holds the same bytes as `same_as`, which is
    stored (or kept earlier in the job), so it was not stored again."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                SAMPLE_JOB["results"][0],
                {
                    "source": "https://example.org/radiator-notes.txt",
                    "status": "duplicate",
                    "chunks": 0,
                    "reason": "same content as uploads/docent/radiator-notes.txt",
                    "same_as": "uploads/docent/radiator-notes.txt",
                },
            ]
        }
    )

    source: str
    status: Literal["added", "updated", "unchanged", "failed", "removed", "duplicate"]
    chunks: int
    reason: str | None = None
    report: ExtractionReportOut | None = Field(
        None, description="What was read from the source (added, updated, unchanged; failed once parsed)."
    )
    same_as: str | None = Field(None, description="A duplicate's twin.")


class IngestJobOut(BaseModel):
    """An ingest job's progress; `results` fills in as sources finish, `summary` when the job ends."""

    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_JOB]})

    id: str
    collection: str
    status: Literal["queued", "running", "done", "failed", "cancelled"] = Field(
        description="`queued` until an ingest thread is free (DOCENT_INGEST_MAX_RUNNING_JOBS), then"
        " `running`; `cancelled` after DELETE /ingest/{id}."
    )
    cancel_requested: bool = Field(
        False, description="DELETE /ingest/{id} was called; a running job stops before its next source."
    )
    done: int = Field(description="Sources finished so far.")
    total: int | None = Field(None, description="Sources in the job, once known.")
    current: str | None = None
    started_at: str
    finished_at: str | None = None
    error: str | None = Field(
        None,
        description="Why the job failed as a whole: a bad collection, a store error, or every source failed"
        " (each result says why).",
    )
    results: list[SourceResultOut]
    summary: dict[str, object] | None = None


class SourceOut(BaseModel):
    """An ingested source's record."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9facee259573f7b5",
                    "uri": "/srv/docent/data/sample/compost-field-guide.pdf",
                    "collection": "docent",
                    "content_hash": "1b2acf1f7426ab8f811619d517ca62c8b4da0fb3d561a772cccde517636bebc9",
                    "title": "Compost Field Guide",
                    "kind": "pdf",
                    "pages": 4,
                    "chunks": 8,
                    "embedding_model": "sentence-transformers/all-MiniLM-L6-v2@onnx-int8",
                    "ingested_at": "2026-11-21T23:21:39+00:00",
                    "last_error": None,
                    "report": SAMPLE_REPORT,
                }
            ]
        }
    )

    id: str
    uri: str
    collection: str
    content_hash: str | None = None
    title: str
    kind: str
    pages: int
    chunks: int
    embedding_model: str
    ingested_at: str | None = None
    last_error: str | None = None
    report: ExtractionReportOut | None = Field(
        None,
        description="The extraction report of the stored version (of the failed attempt when none is"
        " stored); null for sources ingested before reports were kept.",
    )


class SourceRemoved(BaseModel):
    """Reply to DELETE /sources/{id}."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9facee259573f7b5",
                    "uri": "/srv/docent/data/sample/compost-field-guide.pdf",
                    "chunks_removed": 8,
                }
            ]
        }
    )

    id: str
    uri: str
    chunks_removed: int


class JobConflict(BaseModel):
    """409 reply: a job already runs on the collection."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "an ingest job is already running on this collection",
                    "job_id": "1c6c2d41e1db4a1c972345614299e449",
                }
            ]
        }
    )

    detail: str
    job_id: str | None = Field(
        None, description="The running job's id when this key started it; null when another key did."
    )


class KeyInfo(BaseModel):
    """Reply to GET /me: the calling key and the scopes it acts with."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "alice", "workspace": "default", "scopes": ["query", "ingest"]}]
        }
    )

    name: str
    workspace: str
    scopes: list[Literal["query", "ingest", "admin"]] = Field(
        description="What the key may do: `query` (ask, threads, sources), `ingest` (POST /ingest, DELETE"
        " /sources), `admin` (everything)."
    )


class ThreadCreated(BaseModel):
    """Reply to POST /threads."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": SAMPLE_THREAD_ID}]})
    id: str


SAMPLE_THREAD: dict[str, Any] = {
    "id": SAMPLE_THREAD_ID,
    "title": "How often should I turn a hot compost pile?",
    "turns": 1,
    "created_at": "2026-11-21T23:21:51.996+00:00",
    "updated_at": "2026-11-21T23:21:52.029+00:00",
}
SAMPLE_MESSAGES: list[Any] = [
    {
        "role": "user",
        "content": "How often should I turn a hot compost pile?",
        "created_at": "2026-11-21T23:21:52.029+00:00",
    },
    {
        "role": "assistant",
        "content": SAMPLE_OUTPUT["answer"],
        "created_at": "2026-11-21T23:21:52.029+00:00",
        "run_id": SAMPLE_RUN_ID,
        "citations": [SAMPLE_CITATION],
        "model": "extractive",
        "usage": None,
        "cost": 0.0,
        "latency_ms": 28.5,
        "degraded": False,
        "degraded_reason": None,
        "unsupported_sentences": 0,
        "output_rule": None,
        "cached": False,
    },
]


class ThreadSummary(BaseModel):
    """One of the caller's threads."""

    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_THREAD]})

    id: str
    title: str | None = Field(None, description="The thread's first question; null before any turn.")
    turns: int = Field(description="Answered turns.")
    created_at: str
    updated_at: str


class ThreadList(BaseModel):
    """A page of the caller's threads, most recently updated first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"threads": [SAMPLE_THREAD], "total": 1, "limit": 20, "offset": 0}]}
    )

    threads: list[ThreadSummary]
    total: int = Field(description="The caller's threads in all.")
    limit: int
    offset: int


class MessageOut(BaseModel):
    """One message of a thread: the user's question, or Docent's answer with what produced it."""

    model_config = ConfigDict(json_schema_extra={"examples": SAMPLE_MESSAGES})

    role: Literal["user", "assistant"]
    content: str
    created_at: str
    run_id: str | None = None
    citations: list[Citation] | None = None
    model: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    latency_ms: float | None = None
    degraded: bool | None = None
    degraded_reason: str | None = None
    unsupported_sentences: int | None = None
    output_rule: str | None = None
    cached: bool | None = None


class ThreadDetail(ThreadSummary):
    """A thread with its messages, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**SAMPLE_THREAD, "messages": SAMPLE_MESSAGES}]}
    )

    messages: list[MessageOut]


class BatchRequest(BaseModel):
    """Body of POST /batch (LangServe shape): inputs answered independently, each on its own thread unless
    its config names one. `config` is one config for all inputs or a list with one per input."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "inputs": [{"message": "What bedding do worms need?"}, {"message": "What is bokashi?"}],
                    "config": {"configurable": {"k": 3}},
                }
            ]
        },
    )
    inputs: list[InvokeInput] = Field(min_length=1, max_length=1000)
    config: InvokeConfig | list[InvokeConfig] = Field(default_factory=InvokeConfig)
    langserve_kwargs: LangServeKwargs = Field(
        default_factory=dict, alias="kwargs", description=KWARGS_DESCRIPTION
    )


class BatchError(BaseModel):
    """Why one input of a batch got no answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": 422, "detail": "k is 40; this server retrieves at most 20"}]
        }
    )

    status: int = Field(description="The HTTP status /invoke would have answered with.")
    detail: str


class BatchMetadata(BaseModel):
    """Run ids, one per input (null where the input failed)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"run_ids": [SAMPLE_RUN_ID, None]}]})

    run_ids: list[str | None]


class BatchResponse(BaseModel):
    """Reply to POST /batch: `output[i]` answers `inputs[i]`, or is null and `errors[i]` says why."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "output": [SAMPLE_OUTPUT, None],
                    "errors": [None, {"status": 400, "detail": "unknown model 'gpt-9'"}],
                    "metadata": {"run_ids": [SAMPLE_RUN_ID, None]},
                }
            ]
        }
    )

    output: list[TurnOutput | None]
    errors: list[BatchError | None]
    metadata: BatchMetadata
