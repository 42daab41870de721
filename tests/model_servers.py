"""Real HTTP model servers on 127.0.0.1 for the tests: Ollama's `/api/chat` + `/api/embed` (NDJSON) and an
OpenAI-compatible `/v1/chat/completions` + `/v1/embeddings` (SSE), with scripted faults.

The "model" behind them is deterministic: it quotes the first words of passage 1 of the prompt and cites
`[1]`, one word per streamed chunk, so tests can check what reaches the client token by token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.llama_local import smollm2_path
from tests.helpers import docent_env, docent_server, free_port, ingest_sample, running

PASSAGE_ONE = re.compile(r'<passage n="1"[^>]*>\n(.*?)\n</passage>', re.S)
DIMENSION = 16


class DroppedConnection(RuntimeError):
    """Raised inside a streaming body: uvicorn then cuts the connection mid-response."""


@dataclass
class ModelScript:
    """What the next requests get. `faults` is consumed one per chat request: `500`, `429:<seconds>`
    (Retry-After), `hang`, `drop` (two tokens, then the connection is cut) or `ok`; when empty, `ok`.
    `token_delay_s` paces streamed tokens.
    """

    faults: list[str] = field(default_factory=list)
    token_delay_s: float = 0.0
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    finished_streams: int = 0
    cancelled_streams: int = 0

    def next_fault(self) -> str:
        return self.faults.pop(0) if self.faults else "ok"


def answer_words(messages: list[dict[str, Any]]) -> list[str]:
    """The deterministic answer: the first 12 words of passage 1, then `[1]`."""
    prompt = str(messages[-1]["content"]) if messages else ""
    found = PASSAGE_ONE.search(prompt)
    words = (found.group(1).split()[:12] if found else ["I", "could", "not", "find", "it."]) + ["[1]"]
    return [w + " " for w in words[:-1]] + [words[-1]]


def fake_vector(text: str) -> list[float]:
    """A deterministic, not normalised vector (so the client's normalising shows)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [float(b) + 1.0 for b in digest[:DIMENSION]]


async def _fault_response(script: ModelScript, fault: str) -> Response | None:
    if fault == "500":
        return JSONResponse({"error": {"message": "scripted server error"}}, status_code=500)
    if fault.startswith("429"):
        seconds = fault.partition(":")[2] or "1"
        return JSONResponse(
            {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": seconds}
        )
    if fault == "hang":
        await asyncio.sleep(3600)  # cancelled when the client gives up or the server stops
    return None


async def _received(script: ModelScript, request: Request) -> tuple[dict[str, Any], str, Response | None]:
    """A chat request's body, logged with its time; the fault it gets; the reply that fault makes (if any)."""
    body = await request.json()
    script.chat_requests.append(body)
    script.request_times.append(time.monotonic())
    fault = script.next_fault()
    return body, fault, await _fault_response(script, fault)


async def _paced(script: ModelScript, pieces: list[str], fault: str) -> AsyncIterator[str]:
    """Yield pieces with the script's pace; `drop` cuts the connection after two. Counts finished and
    cancelled streams, so tests can see a client's disconnect reach the model.
    """
    try:
        for i, piece in enumerate(pieces):
            if fault == "drop" and i == 2:
                raise DroppedConnection("scripted mid-stream drop")
            if script.token_delay_s:
                await asyncio.sleep(script.token_delay_s)
            yield piece
        script.finished_streams += 1
    except (asyncio.CancelledError, GeneratorExit):
        script.cancelled_streams += 1
        raise


def ollama_app(script: ModelScript, model: str = "llama3.2") -> Starlette:
    """Ollama's documented API, the parts langchain-ollama uses."""

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "0.12.0"})

    async def tags(request: Request) -> Response:
        return JSONResponse({"models": [{"name": model, "model": model, "size": 1, "digest": "0" * 64}]})

    async def chat(request: Request) -> Response:
        body, fault, failed = await _received(script, request)
        if failed is not None:
            return failed
        words = answer_words(body["messages"])
        prompt_tokens = sum(len(str(m["content"]).split()) for m in body["messages"])

        def line(content: str, done: bool) -> str:
            item: dict[str, Any] = {
                "model": body["model"],
                "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": content},
                "done": done,
            }
            if done:
                item.update(done_reason="stop", prompt_eval_count=prompt_tokens, eval_count=len(words))
            return json.dumps(item) + "\n"

        if body.get("stream", True) is False:
            return Response(line("".join(words), True), media_type="application/json")
        pieces = [line(w, False) for w in words] + [line("", True)]
        return StreamingResponse(_paced(script, pieces, fault), media_type="application/x-ndjson")

    async def embed(request: Request) -> Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse(
            {"model": body["model"], "embeddings": [fake_vector(t) for t in texts], "prompt_eval_count": 1}
        )

    return Starlette(
        routes=[
            Route("/api/version", version),
            Route("/api/tags", tags),
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/embed", embed, methods=["POST"]),
        ]
    )


def openai_app(script: ModelScript) -> Starlette:
    """An OpenAI-compatible server: chat completions (streamed or not, usage on request) and embeddings."""

    async def completions(request: Request) -> Response:
        body, fault, failed = await _received(script, request)
        if failed is not None:
            return failed
        words = answer_words(body["messages"])
        usage = {"prompt_tokens": 321, "completion_tokens": len(words), "total_tokens": 321 + len(words)}
        base = {"id": "chatcmpl-1", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        pieces = [
            event([{"index": 0, "delta": {"role": "assistant", "content": w}, "finish_reason": None}])
            for w in words
        ]
        pieces.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            pieces.append(event([], usage=usage))
        pieces.append("data: [DONE]\n\n")
        return StreamingResponse(_paced(script, pieces, fault), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(str(t))} for i, t in enumerate(texts)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Run app on real uvicorn in a thread on a free loopback port; yields the base URL; always stops it."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", timeout_graceful_shutdown=1, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("model server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
            script.chat_requests.clear()
            script.request_times.clear()
            script.finished_streams = script.cancelled_streams = 0

    def turns(self, thread_id: str) -> list[tuple[Any, ...]]:
        """A thread's rows in the records DB, oldest first."""
        with closing(sqlite3.connect(self.data_dir / "records.sqlite")) as db:
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
def model_backed_docent(workdir: Path) -> Iterator[ModelBackedDocent]:
    """Ingest the sample corpus, start both scripted model servers and Docent; stop everything after."""
    data_dir = ingest_sample(workdir / "data")
    openai_script, ollama_script = ModelScript(), ModelScript()
    with (
        serving(openai_app(openai_script)) as openai_base,
        serving(ollama_app(ollama_script)) as ollama_base,
        docent_server(
            data_dir, workdir / "server.log", **docent_env_for_models(openai_base, ollama_base)
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


SMOLLM2 = "SmolLM2-135M-Instruct"


@contextmanager
def llama_server(log: Path) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, the `local` extra)
    with the SmolLM2 GGUF, served as model `SmolLM2-135M-Instruct` on a free loopback port; yields its base
    URL (…/v1) and always stops it."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_path()),
        "--model_alias",
        SMOLLM2,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    base = f"http://127.0.0.1:{port}/v1"
    with running(command, docent_env(log.parent), f"{base}/models", log, timeout=120):
        yield base
