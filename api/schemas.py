"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class InvokeOutput(BaseModel):
    """The answer of one turn."""

    answer: str
    citations: list[CitationOut]
    thread_id: str
    model: str = Field(description="What produced the answer; `extractive` when no LLM is configured.")
    usage: UsageOut | None = None


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
