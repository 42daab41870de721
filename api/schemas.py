"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.context import DocentContext

COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$"
THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class InvokeInput(BaseModel):
    """The user's turn."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(
        min_length=1,
        max_length=8000,
        pattern=r"\S",
        description="The question.",
        examples=["How much can I save by turning my thermostat back?"],
    )


class Configurable(BaseModel):
    """LangServe's `configurable`: the thread, and optional run-time knobs."""

    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = Field(
        None, pattern=THREAD_ID_PATTERN, description="Continue this thread; omit for new."
    )
    k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve.")
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN, description="Collection to search.")
    retriever: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="Retrieval mode.")
    model: str | None = Field(None, max_length=200, description="Answering model by name.")


class InvokeConfig(BaseModel):
    """LangServe's `config` object."""

    configurable: Configurable = Field(default_factory=lambda: Configurable())


class InvokeRequest(BaseModel):
    """Body of POST /invoke (LangServe shape)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "input": {"message": "What is a programmable thermostat?"},
                    "config": {"configurable": {"thread_id": "my-thread"}},
                }
            ]
        }
    )
    input: InvokeInput
    config: InvokeConfig = Field(default_factory=InvokeConfig)

    def run_context(self) -> DocentContext:
        """The run-time knobs this body sets, as the graph's runtime context."""
        knobs = self.config.configurable
        return DocentContext(
            k=knobs.k, collection=knobs.collection, retriever=knobs.retriever, model=knobs.model
        )


class CitationOut(BaseModel):
    """A numbered source of the answer."""

    n: int = Field(description="The number used as `[n]` in the answer.")
    source: str = Field(description="URL or file path of the source.")
    title: str
    page: int | None = Field(description="1-based PDF page, when the source is a PDF.")
    snippet: str = Field(description="The quoted text.")


class UsageOut(BaseModel):
    """Tokens used by the answering model."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = Field(False, description="The provider reported no counts: these are estimates.")


class InvokeOutput(BaseModel):
    """The answer of one turn."""

    answer: str
    citations: list[CitationOut]
    thread_id: str
    model: str = Field(description="What produced the answer; `extractive` when no LLM is configured.")
    usage: UsageOut | None = None
    cost: float | None = Field(
        None, description="USD from the price table; 0 for models run here; null when the model has no price."
    )
    degraded: bool = Field(False, description="The chosen model failed and a fallback answered.")
    degraded_reason: str | None = Field(None, description="What failed, when `degraded`.")


class InvokeMetadata(BaseModel):
    """Run identifiers."""

    run_id: str


class InvokeResponse(BaseModel):
    """Body of POST /invoke's reply (LangServe shape)."""

    output: InvokeOutput
    metadata: InvokeMetadata


class Health(BaseModel):
    """Liveness and what this process serves."""

    status: str
    version: str
    models: list[str]
    collection: str


class ErrorBody(BaseModel):
    """Every error reply."""

    detail: str


class UploadedFile(BaseModel):
    """A file sent inline with an ingest request."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        min_length=1, max_length=255, description="File name; its suffix picks the parser (.pdf .html .md …)."
    )
    content_base64: str = Field(description="The file's bytes, base64-encoded.")


class IngestRequest(BaseModel):
    """Body of POST /ingest: URLs and/or files, into one collection."""

    model_config = ConfigDict(extra="forbid")
    urls: list[str] = Field(default_factory=list, max_length=1000, description="http(s) URLs to fetch.")
    files: list[UploadedFile] = Field(default_factory=list, max_length=200, description="Files to ingest.")
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN, description="Target collection.")


class SourceResultOut(BaseModel):
    """What happened to one source in a job."""

    source: str
    status: Literal["added", "updated", "unchanged", "failed", "removed"]
    chunks: int
    reason: str | None


class IngestJobOut(BaseModel):
    """An ingest job's progress; `results` fills in as sources finish, `summary` when the job ends."""

    id: str
    collection: str
    status: Literal["running", "done", "failed"]
    done: int = Field(description="Sources finished so far.")
    total: int | None = Field(description="Sources in the job, once known.")
    current: str | None
    started_at: str
    finished_at: str | None
    error: str | None = Field(description="Why the job failed as a whole (a bad collection, a store error).")
    results: list[SourceResultOut]
    summary: dict[str, object] | None


class SourceOut(BaseModel):
    """An ingested source's record."""

    id: str
    uri: str
    collection: str
    content_hash: str | None
    title: str
    kind: str
    pages: int
    chunks: int
    embedding_model: str
    ingested_at: str | None
    last_error: str | None


class SourceRemoved(BaseModel):
    """Reply to DELETE /sources/{id}."""

    id: str
    uri: str
    chunks_removed: int


class JobConflict(BaseModel):
    """409 reply: a job already runs on the collection."""

    detail: str
    job_id: str
