"""The one settings object: environment variables prefixed `DOCENT_`, and a `.env` file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    # Conversation state
    checkpointer: Literal["sqlite", "memory"] = Field("sqlite", description="Where thread checkpoints live.")
    checkpoint_path: Path | None = Field(
        None, description="Checkpoint DB; default `<data_dir>/checkpoints.sqlite`."
    )
    records_path: Path | None = Field(
        None, description="Turn records DB; default `<data_dir>/records.sqlite`."
    )
    keyword_index_path: Path | None = Field(
        None, description="BM25 keyword index; default `<data_dir>/keywords.sqlite` (beside Chroma)."
    )

    # Embeddings
    embedding_batch_size: int = Field(8, ge=1, description="Texts per ONNX run (8 measured fastest here).")
    embedding_threads: int = Field(0, ge=0, description="ONNX intra-op threads; 0 = one per CPU core.")
    embedding_max_tokens: int = Field(
        256, ge=16, le=512, description="Word pieces kept per text (model limit 512)."
    )

    # Ingestion
    chunk_size: int = Field(
        800, ge=100, description="Characters per chunk (~180 word pieces: fits the embedder)."
    )
    chunk_overlap: int = Field(120, ge=0, description="Characters shared by neighbouring chunks.")
    http_timeout_s: float = Field(20.0, gt=0, description="Timeout for fetching one URL.")
    user_agent: str = Field(
        "Mozilla/5.0 (compatible; DocentBot/0.1; +https://pypi.org/project/docent-rag/)",
        description="User-Agent sent when fetching URLs.",
    )

    # Retrieval and answering
    k: int = Field(4, ge=1, le=50, description="Passages retrieved per question.")
    min_score: float = Field(0.2, description="Cosine similarity below which a passage counts as irrelevant.")
    retriever: Literal["dense", "bm25", "hybrid"] = Field(
        "hybrid", description="Dense (embeddings), BM25 (keywords), or both fused by reciprocal rank fusion."
    )
    retrieval_depth: int = Field(20, ge=1, le=200, description="Candidates each retriever offers to fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant (higher: flatter).")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    bm25_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in fusion.")
    history_turns: int = Field(
        2, ge=0, description="Earlier user turns folded into a follow-up's search query."
    )
    llm_provider: Literal["extractive"] = Field(
        "extractive", description="Answering model; `extractive` needs none."
    )
    answer_sentences: int = Field(
        3, ge=1, le=10, description="Sentences the extractive answerer quotes at most."
    )

    @field_validator("data_dir", "chroma_path", "checkpoint_path", "records_path", "keyword_index_path")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def chroma_dir(self) -> Path:
        """Directory of the persistent Chroma store."""
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def checkpoint_db(self) -> Path:
        """SQLite file holding LangGraph checkpoints."""
        return self.checkpoint_path or self.data_dir / "checkpoints.sqlite"

    @property
    def keyword_db(self) -> Path:
        """SQLite file holding the BM25 keyword index."""
        return self.keyword_index_path or self.data_dir / "keywords.sqlite"

    @property
    def records_db(self) -> Path:
        """SQLite file holding one record per answered turn."""
        return self.records_path or self.data_dir / "records.sqlite"

    @property
    def onnx_threads(self) -> int:
        """Threads for ONNX inference."""
        return self.embedding_threads or os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
