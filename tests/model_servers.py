"""A Docent server answering through the scripted model servers of bench/support/servers.py, and an SSE
reader, for the tests of streaming, fallbacks and faults.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.support.servers import (
    SMOLLM2,
    ModelScript,
    docent_server,
    ingest_sample,
    llama_server,
    ollama_app,
    openai_app,
    serving,
)

__all__ = [
    "SMOLLM2",
    "ModelBackedDocent",
    "ModelScript",
    "SseEvent",
    "docent_env_for_models",
    "llama_server",
    "model_backed_docent",
    "ollama_app",
    "openai_app",
    "read_sse",
    "serving",
]


@dataclass
class ModelBackedDocent:
    """A Docent server (real uvicorn) answering with `openai` (scripted server) and falling back to `ollama`
    (scripted server), over the sample corpus.
    """

    base: str
    data_dir: Path
    openai: ModelScript
    ollama: ModelScript

    def reset(self) -> None:
        for script in (self.openai, self.ollama):
            script.faults.clear()
            script.token_delay_s = 0.0
            script.reply = None
            script.chat_requests.clear()
            script.request_times.clear()
            script.finished_streams = script.cancelled_streams = 0

    def turns(self, thread_id: str) -> list[tuple[Any, ...]]:
        """A thread's rows in the records DB, oldest first."""
        with closing(sqlite3.connect(self.data_dir / "docent.sqlite")) as db:
            return db.execute(
                "SELECT question, answer, model, degraded, degraded_reason, prompt_tokens, completion_tokens,"
                " usage_estimated, cost_usd FROM turns WHERE thread_id = ? ORDER BY id",
                (thread_id,),
            ).fetchall()


def docent_env_for_models(openai_base: str, ollama_base: str) -> dict[str, str]:
    """Docent settings: the OpenAI-compatible server first, then Ollama, then extractive."""
    return {
        "DOCENT_LLM_PROVIDER": "openai",
        "DOCENT_OPENAI_BASE_URL": f"{openai_base}/v1",
        "DOCENT_LLM_MODEL": "gpt-4o-mini",
        "DOCENT_LLM_FALLBACKS": "ollama,extractive",
        "DOCENT_OLLAMA_BASE_URL": ollama_base,
        "DOCENT_LLM_TIMEOUT_S": "1",
        "DOCENT_LLM_MAX_RETRIES": "2",
        "DOCENT_LLM_BACKOFF_S": "0.05",
        "DOCENT_LLM_BACKOFF_MAX_S": "2",
    }


@contextmanager
def model_backed_docent(
    workdir: Path, data_dir: Path | None = None, **env: str
) -> Iterator[ModelBackedDocent]:
    """Start both scripted model servers and Docent over `data_dir` (default: the sample corpus ingested
    under `workdir`), with `env` on top of the model settings; stop everything after."""
    data_dir = data_dir or ingest_sample(workdir / "data")
    openai_script, ollama_script = ModelScript(), ModelScript()
    with (
        serving(openai_app(openai_script)) as openai_base,
        serving(ollama_app(ollama_script)) as ollama_base,
        docent_server(
            data_dir, workdir / "server.log", **docent_env_for_models(openai_base, ollama_base), **env
        ) as base,
    ):
        yield ModelBackedDocent(base, data_dir, openai_script, ollama_script)


@dataclass
class SseEvent:
    """One Server-Sent Event as read off the wire, with when it arrived."""

    event: str
    data: dict[str, Any]
    at: float


def read_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Parse a raw `text/event-stream` line by line (comments and pings skipped)."""
    event: str = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield SseEvent(event, json.loads("\n".join(data)), time.monotonic())
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].removeprefix(" "))
