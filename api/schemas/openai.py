"""Bodies of the OpenAI-compatible endpoints (/v1/chat/completions, /v1/models), as OpenAI clients send and
read them, with Docent's extras (`thread_id`, `citations`, `docent`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import (
    COLLECTION_PATTERN,
    SAMPLE_CITATION,
    SAMPLE_RUN_ID,
    SAMPLE_THREAD_ID,
    THREAD_ID_PATTERN,
    PassageCount,
    SearchFilterBody,
)
from core.types import Citation

DEFAULT_MODEL = "docent"


class TextPart(BaseModel):
    """A text part of a message's content list."""

    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str = Field(max_length=100_000)


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        """The message's text, parts joined."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`."""

    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. The last message (a user message) is the question; earlier user and
    assistant messages are the history of a new thread, unless `thread_id` pins a Docent thread, whose own
    history is used instead. Sampling parameters are accepted and ignored (the server's settings apply)."""

    model_config = ConfigDict(
        extra="ignore",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "model": "docent",
                    "messages": [{"role": "user", "content": "How hot should a compost pile get?"}],
                    "stream": False,
                }
            ]
        },
    )
    model: str = Field(
        DEFAULT_MODEL,
        max_length=200,
        description="`docent` (the server's default) or a name from GET /v1/models.",
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    thread_id: str | None = Field(
        None,
        pattern=THREAD_ID_PATTERN,
        description="Docent: continue this thread.",
        examples=[SAMPLE_THREAD_ID],
    )
    k: PassageCount | None = Field(None, description="Docent: passages to retrieve.", examples=[4])
    collection: str | None = Field(
        None, pattern=COLLECTION_PATTERN, description="Docent: collection to search.", examples=["docent"]
    )
    retriever: Literal["dense", "bm25", "hybrid"] | None = Field(
        None, description="Docent: retrieval mode.", examples=["hybrid"]
    )
    filter: SearchFilterBody | None = Field(
        None, description="Docent: search only matching chunks (as /invoke's `config.configurable.filter`)."
    )


class AssistantMessage(BaseModel):
    """The answer, with its citations appended as a `Sources:` list."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one choice Docent returns."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class CompletionUsage(BaseModel):
    """Token counts (estimated where the model reported none; see `docent.usage_estimated`)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class DocentExtras(BaseModel):
    """What an OpenAI response has no field for."""

    run_id: str
    model: str = Field(description="What produced the answer.")
    cost: float | None = None
    degraded: bool
    degraded_reason: str | None = None
    usage_estimated: bool
    unsupported_sentences: int | None = Field(
        None,
        description="Sentences with a citation that none of their cited passages supports (0 for an"
        " extractive answer); null when the answer was not checked.",
    )
    output_rule: str | None = Field(
        None,
        description="The output guardrail changed the answer: `blocked: <pattern>` (withheld) or"
        " `redacted: <kinds>`; null when no rule fired.",
    )
    cached: bool = Field(
        False, description="Served from the answer cache: an earlier, close question's answer; no model ran."
    )


SAMPLE_ANSWER = "Keeping the pile hot requires regular turning. [1] Turn the pile every 3 to 5 days. [1]"


class ChatCompletion(BaseModel):
    """OpenAI's `chat.completion` object, plus `thread_id`, `citations` and `docent`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": f"chatcmpl-{SAMPLE_RUN_ID}",
                    "object": "chat.completion",
                    "created": 1795303317,
                    "model": "extractive",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": SAMPLE_ANSWER
                                + "\n\nSources:\n[1] Hot vs. Cold Composting: Which Method Fits Your Garden?"
                                " — data/sample/hot-vs-cold-composting.html",
                            },
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    "thread_id": SAMPLE_THREAD_ID,
                    "citations": [SAMPLE_CITATION],
                    "docent": {
                        "run_id": SAMPLE_RUN_ID,
                        "model": "extractive",
                        "cost": 0.0,
                        "degraded": False,
                        "degraded_reason": None,
                        "usage_estimated": False,
                        "unsupported_sentences": 0,
                        "output_rule": None,
                    },
                }
            ]
        }
    )

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    thread_id: str
    citations: list[Citation]
    docent: DocentExtras


class ModelCard(BaseModel):
    """One model of GET /v1/models."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "docent"


class ModelList(BaseModel):
    """GET /v1/models."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "list",
                    "data": [
                        {"id": "docent", "object": "model", "created": 1795303274, "owned_by": "docent"},
                        {"id": "extractive", "object": "model", "created": 1795303274, "owned_by": "docent"},
                    ],
                }
            ]
        }
    )

    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorDetail(BaseModel):
    """The `error` object of an OpenAI error reply."""

    message: str
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `rate_limit_error` …")
    code: int | str | None = Field(None, description="The HTTP status.")
    param: str | None = None


class OpenAIError(BaseModel):
    """Every error under /v1, in OpenAI's shape, so OpenAI clients show it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "message": "model 'gpt-9' does not exist; see GET /v1/models",
                        "type": "not_found_error",
                        "code": 404,
                        "param": None,
                    }
                }
            ]
        }
    )
    error: OpenAIErrorDetail


def _openai_error(description: str) -> dict[str, Any]:
    return {"model": OpenAIError, "description": description}


OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _openai_error(
        "The last message is not a user question, it is blocked by the input guardrail, or the body is not"
        " UTF-8 JSON."
    ),
    401: _openai_error("Missing or unknown API key."),
    403: _openai_error("The key lacks the scope this route needs."),
    404: _openai_error("Unknown model, or the thread belongs to another key."),
    409: {
        "model": OpenAIError,
        "description": "The thread is answering another turn, or the collection cannot be searched.",
    },
    # A body whose Content-Length is over the limit is refused before routing, in the plain shape.
    413: {"model": OpenAIError, "description": "Body too large."},
    422: _openai_error("Invalid body, or over the server's message/k limits."),
    429: _openai_error("Rate limit exceeded; retry after `Retry-After` seconds."),
}
