"""Real servers on 127.0.0.1 that the benches and the tests share: Docent itself (`docent serve` in its own
session), scripted model servers (Ollama's `/api/chat` + `/api/embed` as NDJSON, and an OpenAI-compatible
`/v1/chat/completions` + `/v1/embeddings` as SSE, both with scripted faults, on uvicorn in a thread), and
llama-cpp-python's OpenAI-compatible server. Every one is stopped when its `with` block ends.

The scripted "model" is deterministic: it quotes the first words of passage 1 of the prompt and cites `[1]`,
one word per streamed chunk, so a client can check what reaches it token by token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = REPO_ROOT / "data" / "sample"
VENV_BIN = Path(sys.executable).parent
SMOLLM2 = "SmolLM2-135M-Instruct"
PASSAGE_ONE = re.compile(r'<passage n="1"[^>]*>\n(.*?)\n</passage>', re.S)
DIMENSION = 16


# --------------------------------------------------------------------------------- processes and ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docent_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a `docent` subprocess whose stores live under data_dir, with auth off unless
    `extra` turns it on (DOCENT_AUTH="on")."""
    # A developer's own provider settings must not change what runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "OPENAI_", "OLLAMA_"))}
    # The answer cache off unless asked for: tests and benches repeat questions and mean to run the graph.
    env.update(
        {
            "DOCENT_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
            "DOCENT_AUTH": "off",
            "DOCENT_CACHE": "off",
            **extra,
        }
    )
    return env


def run_docent(
    args: list[str], env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed `docent` console command."""
    return subprocess.run(
        [str(VENV_BIN / "docent"), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def ingest_sample(data_dir: Path) -> Path:
    """Ingest the repo's sample corpus into data_dir with the real `docent ingest`; returns data_dir."""
    done = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], docent_env(data_dir))
    if done.returncode != 0:
        raise RuntimeError(f"docent ingest {SAMPLE_CORPUS} failed (exit {done.returncode}):\n{done.stderr}")
    return data_dir


def create_key(data_dir: Path, name: str, scopes: str = "query", **env: str) -> str:
    """A new API key made by `docent keys create` in data_dir's database, or the one `env` names (the last
    line it prints)."""
    done = run_docent(["keys", "create", name, "--scopes", scopes], docent_env(data_dir, **env), timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"docent keys create {name} failed (exit {done.returncode}):\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Poll url until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def running(
    command: list[str], env: Mapping[str, str], ready_url: str, log: Path, timeout: float = 90
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process in its own session, wait for ready_url, and always stop it (and its children)
    afterwards; on an error, the tail of its log goes to stderr."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        try:
            wait_until_up(ready_url, process, timeout)
            yield process
        except BaseException:
            out.flush()
            sys.stderr.write(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-4000:]}\n")
            raise
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process group politely, then firmly."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=5)


@contextmanager
def docent_serving(
    env: Mapping[str, str], log: Path, timeout: float = 90
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`docent serve` (real uvicorn) with exactly `env` on a free loopback port; yields (base URL, process)
    once /health answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "docent"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, env, f"{base}/health", log, timeout) as process:
        yield base, process


@contextmanager
def docent_server(data_dir: Path, log: Path, **env: str) -> Iterator[str]:
    """Docent serving data_dir (settings: `docent_env`) on a free loopback port; yields the base URL."""
    with docent_serving(docent_env(data_dir, **env), log) as (base, _process):
        yield base


@contextmanager
def llama_server(log: Path) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, the `local` extra)
    with the SmolLM2 GGUF, served as model `SmolLM2-135M-Instruct` on a free loopback port; yields its base
    URL (…/v1) and always stops it."""
    from core.answering.llama_local import smollm2_path  # imports LangChain: only when a model is served

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


# ---------------------------------------------------------------------------------- scripted models


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
    reply: Callable[[str], str] | None = None
    """Writes the answer from passage 1's text, instead of quoting its first 12 words."""

    def next_fault(self) -> str:
        return self.faults.pop(0) if self.faults else "ok"


def answer_words(messages: list[dict[str, Any]], reply: Callable[[str], str] | None = None) -> list[str]:
    """The deterministic answer: the first 12 words of passage 1, then `[1]` (or what `reply` writes from
    passage 1's text)."""
    prompt = str(messages[-1]["content"]) if messages else ""
    found = PASSAGE_ONE.search(prompt)
    if reply is not None:
        words = reply(found.group(1) if found else "").split()
        return [w + " " for w in words[:-1]] + words[-1:]
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
    cancelled streams, so a test can see a client's disconnect reach the model.
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
        words = answer_words(body["messages"], script.reply)
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
        words = answer_words(body["messages"], script.reply)
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
