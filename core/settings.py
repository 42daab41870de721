"""The one settings object: environment variables prefixed `DOCENT_`, and a `.env` file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.storage.keys import KeySpec

# OpenAI-compatible servers other than OpenAI's (llama.cpp, vLLM, LM Studio) usually want no key.
OPENAI_NO_KEY = "not-needed"


class ProviderConfigError(ValueError):
    """The settings name a provider that cannot be opened as configured."""


class Settings(BaseSettings):
    """Docent's configuration. Every field can be set as `DOCENT_<FIELD>` or in `.env`."""

    model_config = SettingsConfigDict(env_prefix="DOCENT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Root of every default store (Chroma, checkpoints, records)."
    )

    # Vector store
    chroma_mode: Literal["persistent", "http"] = Field(
        "persistent", description="`persistent`: Chroma files under the data dir; `http`: a Chroma server."
    )
    chroma_path: Path | None = Field(None, description="Chroma directory; default `<data_dir>/chroma`.")
    chroma_host: str = Field("127.0.0.1", description="Chroma server host when chroma_mode=http.")
    chroma_port: int = Field(8000, description="Chroma server port when chroma_mode=http.")
    collection: str = Field("docent", description="Default Chroma collection.")

    # Cluster mode (docs/cluster.md): shared stores for several replicas and workers
    database_url: str | None = Field(
        None,
        description="PostgreSQL as libpq writes it (`postgresql://user@host:port/db`) for records, keys,"
        " sources, jobs and checkpoints; unset: the SQLite file `<data_dir>/docent.sqlite`.",
    )
    database_pool_size: int = Field(10, ge=1, le=200, description="PostgreSQL connections per process.")
    chroma_url: str | None = Field(
        None, description="A Chroma server (`chroma run`), e.g. `http://127.0.0.1:8000`; unset: embedded."
    )

    # Conversation state
    checkpointer: Literal["sqlite", "memory"] = Field("sqlite", description="Where thread checkpoints live.")
    checkpoint_path: Path | None = Field(
        None, description="Checkpoint DB; default `<data_dir>/checkpoints.sqlite`."
    )

    # Embeddings
    embedding_batch_size: int = Field(8, ge=1, description="Texts per ONNX run (8 measured fastest here).")
    embedding_threads: int = Field(0, ge=0, description="ONNX intra-op threads; 0 = one per CPU core.")
    embedding_max_tokens: int = Field(
        256, ge=16, le=512, description="Word pieces kept per text (model limit 512)."
    )
    query_embedder: Literal["int8", "model"] = Field(
        "int8",
        description="How the query path (retrieval, answer sentences, citation checks, the answer cache)"
        " embeds with the onnx embedder: `int8`, the packaged MiniLM with dynamic int8 matrix products"
        " (built once into `models_dir`; about twice as fast, vectors within cosine 0.99);"
        " `model`, the packaged model itself, as ingestion does. Other providers always use `model`.",
    )
    models_dir: Path | None = Field(
        None,
        description="Where derived model files (the int8 query model) are built and kept; default"
        " `$XDG_CACHE_HOME/docent/models` (`~/.cache/docent/models`).",
    )
    query_cache_size: int = Field(
        4096, ge=0, description="Query and answer-sentence vectors kept in memory per process (0: no cache)."
    )
    embed_batch_window_ms: float = Field(
        0.0,
        ge=0,
        le=50,
        description="How long the query path's embedder waits for other requests' texts to embed them "
        "in one run (0: only those already waiting).",
    )
    embed_batch_max: int = Field(8, ge=1, description="Texts that end the query embedder's wait at once.")

    # Ingestion
    chunk_size: int = Field(
        800, ge=100, description="Characters per chunk (~180 word pieces: fits the embedder)."
    )
    chunk_overlap: int = Field(120, ge=0, description="Characters shared by neighbouring chunks.")
    http_timeout_s: float = Field(20.0, gt=0, description="Timeout for fetching one URL.")
    ingest_workers: int = Field(
        4, ge=1, le=64, description="Threads fetching URLs and reading/parsing files while the embedder runs."
    )
    ingest_batch_chunks: int = Field(
        512, ge=1, description="Chunks embedded (across sources) and written together in one step."
    )
    max_pdf_pages: int = Field(2000, ge=1, description="PDFs with more pages are refused with a reason.")
    pdf_max_elements: int = Field(
        1_000_000,
        ge=1,
        description="Largest PDF array/dictionary pypdf parses (its default, 100,000, refuses real files).",
    )
    ocr: Literal["auto", "off"] = Field(
        "auto",
        description="OCR (Tesseract) for PDF pages with an image and no text layer; `off`: such pages are"
        " reported empty.",
    )
    ocr_max_pages: int = Field(50, ge=0, description="PDF pages recognised by OCR per document at most.")
    ocr_timeout_s: float = Field(300.0, gt=0, description="Seconds of OCR per document at most.")
    ocr_dpi: int = Field(
        300, ge=72, le=600, description="Resolution pages are rendered at for OCR (capped at 12 megapixels)."
    )
    user_agent: str = Field(
        "Mozilla/5.0 (compatible; DocentBot/0.1; +https://pypi.org/project/docent-rag/)",
        description="User-Agent sent when fetching URLs.",
    )
    html_main_content: bool = Field(
        True, description="HTML keeps the main content only (trafilatura): no menus, footers or banners."
    )
    crawl_depth: int = Field(3, ge=0, le=20, description="Links followed from a crawl's root at most.")
    crawl_max_pages: int = Field(100, ge=1, le=100_000, description="Pages one crawl ingests at most.")
    crawl_delay_s: float = Field(
        1.0, ge=0, description="Seconds between two fetches from one host (robots.txt may ask for more)."
    )
    crawl_max_bytes: int = Field(
        500_000_000, ge=1, description="Bytes one crawl fetches at most (pages, robots.txt, sitemaps)."
    )
    crawl_max_seconds: float = Field(1800.0, gt=0, description="Wall-clock limit for one crawl.")

    # Retrieval and answering
    k: int = Field(5, ge=1, le=50, description="Passages retrieved per question.")
    min_score: float = Field(0.2, description="Cosine similarity below which a passage counts as irrelevant.")
    retriever: Literal["dense", "bm25", "hybrid"] = Field(
        "hybrid", description="Dense (embeddings), BM25 (keywords), or both fused by reciprocal rank fusion."
    )
    retrieval_depth: int = Field(50, ge=1, le=200, description="Candidates each retriever offers to fusion.")
    rrf_k: int = Field(10, ge=1, description="Reciprocal rank fusion constant (higher: flatter; measured).")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    bm25_weight: float = Field(
        2.0, ge=0, description="Weight of a BM25 ranking that peaks (its best hit stands out) in fusion."
    )
    bm25_flat_weight: float = Field(
        0.5, ge=0, description="Weight of a flat BM25 ranking (every hit scores alike) in fusion."
    )
    bm25_peak_ratio: float = Field(
        1.3, ge=1, description="BM25 best score over its fifth best at which its ranking counts as peaking."
    )
    distinct_pages: bool = Field(
        True,
        description="One passage per page of a paged document in the top k while other pages offer any.",
    )
    reranker: Literal["none", "llm"] = Field(
        "none", description="Second-stage reranking of the fused candidates: `llm` asks the answering model."
    )
    rerank_candidates: int = Field(
        20, ge=1, le=100, description="Fused candidates the reranker orders before the best k are kept."
    )
    history_turns: int = Field(
        2, ge=0, description="Earlier user turns folded into a follow-up's search query."
    )
    llm_provider: Literal["auto", "openai", "ollama", "local", "extractive"] = Field(
        "auto",
        description="Answering model provider; `auto`: openai with a key, else a live ollama, else a"
        " configured GGUF, else extractive.",
    )
    llm_model: str | None = Field(
        None, description="Model name for openai/ollama (default gpt-4o-mini / llama3.2); local: GGUF stem."
    )
    llm_fallbacks: str = Field(
        "", description="Comma list of providers tried in turn when the chosen one fails: `ollama,local`."
    )
    openai_base_url: str | None = Field(None, description="Any OpenAI-compatible server; None: OpenAI.")
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DOCENT_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"),
        description="API key; plain OPENAI_API_KEY is honoured too.",
    )
    ollama_base_url: str = Field("http://127.0.0.1:11434", description="Ollama server.")
    local_model_path: Path | None = Field(
        None, description="GGUF file for the in-process `local` provider; None: SmolLM2-135M-Instruct."
    )
    local_threads: int = Field(0, ge=0, description="llama.cpp threads; 0 = one per CPU core.")
    local_context_tokens: int = Field(2048, ge=256, description="llama.cpp context window.")
    llm_timeout_s: float = Field(
        60.0, gt=0, description="Per model call: the wait for the first token and between tokens."
    )
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries of a transient failure per provider.")
    llm_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles per retry, with jitter.")
    llm_backoff_max_s: float = Field(8.0, ge=0, description="Longest wait between retries (Retry-After too).")
    llm_max_tokens: int = Field(512, ge=1, description="Completion tokens at most per answer.")
    llm_temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature.")
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per million (prompt, completion) tokens by model, as JSON"
        ' `{"gpt-4o-mini": [0.15, 0.6]}`; merged over the built-in table.',
    )
    system_prompt: str | None = Field(None, description="Persona and rules; None: the built-in seed.")
    prompt_history_turns: int = Field(3, ge=0, description="Earlier turns (question, answer) sent to an LLM.")
    prompt_history_tokens: int = Field(1000, ge=0, description="Token budget (estimated) for that history.")
    embeddings_provider: Literal["onnx", "openai", "ollama"] = Field(
        "onnx", description="Embedder: offline ONNX MiniLM, or an openai/ollama embedding endpoint."
    )
    embeddings_model: str | None = Field(
        None, description="Embedding model for openai/ollama (default text-embedding-3-small / all-minilm)."
    )
    answer_sentences: int = Field(
        3, ge=1, le=10, description="Sentences the extractive answerer quotes at most."
    )
    extractive_dense_candidates: int = Field(
        8,
        ge=0,
        le=32,
        description="Sentences the extractive answerer embeds per answer to rescore them (0: term overlap "
        "alone; each costs about one query embedding).",
    )

    # Answer cache (docs/cache.md)
    cache: Literal["on", "off"] = Field(
        "on",
        description="Semantic answer cache: a first question close to one already answered on the same"
        " collection and corpus version gets the stored answer (`cached: true`) without a model call.",
    )
    cache_threshold: float = Field(
        0.92,
        ge=0,
        le=1,
        description="Cosine similarity of two questions' embeddings from which the cache serves one's answer"
        " to the other (measured on SQuAD paraphrases: docs/cache.md).",
    )
    cache_max_entries: int = Field(
        4096,
        ge=1,
        description="Answers the cache keeps: per process in memory, per collection scope in Redis (at most"
        " 256 there; the least recently used, or in Redis the oldest, out first).",
    )
    cache_ttl_s: float = Field(
        86_400.0,
        gt=0,
        description="How long a cached answer may be served (in Redis: kept after its scope's last write).",
    )

    # Safe URL fetching (ingest/fetch.py)
    fetch_allow: list[str] = Field(
        default_factory=list,
        description=(
            "Intranet sources POST /ingest may fetch although their addresses are private: host names, "
            'host:port or CIDRs, as a JSON list (e.g. ["wiki.corp", "10.2.0.0/16"]).'
        ),
    )
    fetch_max_wire_bytes: int = Field(
        50_000_000, ge=1, description="Bytes one fetched response may send on the wire (compressed)."
    )
    fetch_max_bytes: int = Field(
        50_000_000, ge=1, description="Bytes one fetched response may hold once decompressed."
    )
    fetch_max_html_bytes: int = Field(
        10_000_000, ge=1, description="Largest fetched HTML page handed to the HTML parser."
    )
    fetch_deadline_s: float = Field(
        60.0, gt=0, description="Wall-clock limit for one URL: connect, every redirect and the body."
    )
    ingest_max_urls: int = Field(
        100, ge=1, le=1000, description="URLs one POST /ingest may carry (the schema's ceiling is 1000)."
    )

    # Workspaces
    collection_cache_size: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Chroma collection handles a process keeps open at most (least recently used dropped).",
    )

    # Ingest jobs and turns (isolation, one turn at a time per thread)
    turn_multitask: Literal["reject", "enqueue"] = Field(
        "reject",
        description="A second turn on a thread that is answering one: `reject` (HTTP 409, LangGraph Server's"
        " default) or `enqueue` (it waits its turn, at most DOCENT_TURN_WAIT_S).",
    )
    turn_wait_s: float = Field(30.0, gt=0, description="Longest wait of an enqueued turn before a 409.")
    idempotency_ttl_s: float = Field(
        86_400.0,
        gt=0,
        description="How long the response to a request with an Idempotency-Key is replayed to its retries.",
    )
    ingest_max_running_jobs: int = Field(
        2,
        ge=1,
        le=64,
        description="Ingest jobs the server runs at once, on their own threads (never the query path's).",
    )
    ingest_max_queued_jobs: int = Field(
        8,
        ge=0,
        le=10_000,
        description="Jobs that wait (status `queued`) once the running ones are at the cap; beyond, POST"
        " /ingest is a 503 with Retry-After.",
    )
    ingest_job_ttl_s: float = Field(
        3600.0, gt=0, description="How long a finished job stays readable at GET /ingest/{id} (then 404)."
    )
    ingest_jobs_kept: int = Field(
        1000, ge=1, description="Finished jobs kept at most; the oldest are forgotten first."
    )

    # HTTP API: keys, limits, guardrail, observability
    auth: Literal["on", "off"] = Field(
        "on", description="`off` serves every route without a key (the server warns at start)."
    )
    api_keys: list[KeySpec] = Field(
        default_factory=list,
        description='Keys as JSON `[{"name": "ci", "sha256": "<hex>", "scopes": ["query"]}]`, besides'
        " the keys file.",
    )
    api_keys_file: Path | None = Field(
        None, description="Keys file written by `docent keys create`; default `<data_dir>/api_keys.json`."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Origins allowed by CORS, as JSON `["https://app.example"]`; none.'
    )
    rate_limit_per_minute: float = Field(
        120.0, ge=0, description="Requests per minute per key (token bucket refill); 0 turns limiting off."
    )
    rate_limit_burst: int = Field(30, ge=1, description="Token bucket size: requests a key may make at once.")
    rate_limit_backend: Literal["memory", "redis"] = Field(
        "memory", description="`memory`: per process; `redis`: shared by every replica."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for the shared rate limiter and (server mode) the per-thread turn locks.",
    )
    redis_prefix: str = Field("docent", min_length=1, description="Prefix of every Redis key Docent writes.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body (except /ingest).")
    max_upload_bytes: int = Field(
        50_000_000, ge=1024, description="Largest /ingest body (files come base64-encoded inside)."
    )
    max_message_chars: int = Field(8000, ge=1, le=100_000, description="Longest question.")
    max_k: int = Field(20, ge=1, le=50, description="Most passages a request may ask for.")
    batch_max_items: int = Field(32, ge=1, description="Most inputs in one POST /batch.")
    batch_concurrency: int = Field(4, ge=1, description="Inputs of one /batch answered at once.")
    blocked_patterns: list[str] = Field(
        default_factory=list,
        description='Input guardrail: regexes (case-insensitive) refused with a 400, as JSON `["secret"]`.',
    )
    blocked_output_patterns: list[str] = Field(
        default_factory=list,
        description="Output guardrail: regexes (case-insensitive); an answer that matches one is withheld"
        ' (a stream ends with an `error` event), as JSON `["internal only"]`.',
    )
    redact_pii: bool = Field(
        False, description="Take e-mail addresses, phone and card numbers out of answers and their snippets."
    )
    metrics_public: bool = Field(False, description="Serve /metrics without a key (else: `admin` scope).")
    log_format: Literal["json", "text"] = Field("json", description="`docent serve` log lines.")
    log_level: str = Field("info", description="Log level of `docent serve`.")

    @field_validator(
        "data_dir",
        "chroma_path",
        "checkpoint_path",
        "local_model_path",
        "api_keys_file",
    )
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def chroma_dir(self) -> Path:
        """Directory of the persistent Chroma store."""
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def relational_db(self) -> Path:
        """SQLite file holding records, threads, keys, sources and jobs when no DOCENT_DATABASE_URL is set."""
        return self.data_dir / "docent.sqlite"

    @property
    def server_mode(self) -> bool:
        """Relational state (and so checkpoints and jobs) on PostgreSQL, shared by replicas and workers."""
        return self.database_url is not None and self.database_url.startswith(("postgresql:", "postgres:"))

    @property
    def checkpoint_db(self) -> Path:
        """SQLite file holding LangGraph checkpoints."""
        return self.checkpoint_path or self.data_dir / "checkpoints.sqlite"

    @property
    def keys_file(self) -> Path:
        """JSON file of API key hashes written by `docent keys create`."""
        return self.api_keys_file or self.data_dir / "api_keys.json"

    @property
    def fallback_providers(self) -> list[str]:
        """DOCENT_LLM_FALLBACKS as a list, in order."""
        return [name.strip() for name in self.llm_fallbacks.split(",") if name.strip()]

    @property
    def llama_threads(self) -> int:
        """Threads for llama.cpp."""
        return self.local_threads or os.cpu_count() or 1

    def openai_key(self) -> SecretStr:
        """The key sent to the OpenAI-compatible server; a placeholder for a custom server that wants none."""
        if self.openai_api_key is not None:
            return self.openai_api_key
        if self.openai_base_url is None:
            raise ProviderConfigError(
                "the openai provider needs DOCENT_OPENAI_API_KEY (or OPENAI_API_KEY), or"
                " DOCENT_OPENAI_BASE_URL for a server that wants no key"
            )
        return SecretStr(OPENAI_NO_KEY)

    @property
    def derived_models_dir(self) -> Path:
        """`models_dir`, or the user's cache directory for Docent's derived models."""
        if self.models_dir is not None:
            return self.models_dir
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(cache) / "docent" / "models"

    @property
    def onnx_threads(self) -> int:
        """Threads for ONNX inference."""
        return self.embedding_threads or os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
