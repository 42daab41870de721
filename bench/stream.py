"""Time to first token of POST /stream, against what Docent cannot avoid: the model server's own time to
first token for the same final prompt, and the retrieval floor.

1. Setup: a temporary data dir filled by `docent ingest` (default corpus: data/sample); llama-cpp-python's
   OpenAI-compatible server with SmolLM2-135M-Instruct (needs the `local` extra); `docent serve` using it
   through the `openai` provider. Every process is stopped at the end.
2. Per run (a question from a fixed list, `--runs` times after a warm-up):
   - stream: POST /stream, time from sending to the first `token` event (new thread each time);
   - model: the same final prompt (built in-process from the same retrieval with core.prompts) sent straight
     to the llama.cpp server, streamed, time to its first content delta;
   - floor: embed the query + one Chroma query, in-process.
   Before each of the two model-bound timings a short unrelated prompt resets llama.cpp's prompt cache, so
   neither timing reuses the other's evaluated prompt.
3. Report p50/p95 of each series and of overhead = stream - model - floor (per run). `--json OUT` writes all.

    .venv/bin/python bench/stream.py --runs 24 --k 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from core.answering import AnswerRequest  # noqa: E402
from core.llama_local import smollm2_path  # noqa: E402
from core.prompts import build_messages  # noqa: E402
from core.services import open_services  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.helpers import SAMPLE_CORPUS, docent_env, docent_server, free_port, run_docent, running  # noqa: E402

MODEL = "SmolLM2-135M-Instruct"
MAX_TOKENS = 8
QUESTIONS = (
    "What temperature should a hot compost pile reach?",
    "How much do red wigglers eat per day?",
    "What bedding do worms need?",
    "How often should a compost pile be turned?",
    "Can I compost meat and dairy?",
    "What is bokashi?",
)
ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def stream_ttft(base: str, question: str) -> float:
    start = time.perf_counter()
    with httpx.stream("POST", f"{base}/stream", json={"input": {"message": question}}, timeout=120) as reply:
        event = ""
        first = None
        for line in reply.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
                if event == "token" and first is None:
                    first = time.perf_counter() - start
        if first is None:
            raise RuntimeError(f"no token event for {question!r}")
        return first


def model_ttft(client: httpx.Client, llama: str, messages: list[dict[str, str]]) -> float:
    body = {
        "model": MODEL,
        "messages": messages,
        "stream": True,
        "max_completion_tokens": MAX_TOKENS,
        "temperature": 0.1,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    with client.stream("POST", f"{llama}/chat/completions", json=body, timeout=120) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:") and '"content":' in line:
                data = json.loads(line[5:])
                if data["choices"] and data["choices"][0]["delta"].get("content"):
                    return time.perf_counter() - start
    raise RuntimeError("the model streamed no content")


def reset_prompt_cache(client: httpx.Client, llama: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Zebra?"}], "max_tokens": 1}
    client.post(f"{llama}/chat/completions", json=body, timeout=60).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--k", type=int, default=2, help="passages per prompt (fewer: shorter model prompts)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="docent-bench-stream-"))
    data_dir = work / "data"
    done = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], docent_env(data_dir))
    assert done.returncode == 0, done.stderr
    port = free_port()
    llama = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_path()),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    env = {
        "DOCENT_LLM_PROVIDER": "openai",
        "DOCENT_OPENAI_BASE_URL": llama,
        "DOCENT_LLM_MODEL": MODEL,
        "DOCENT_LLM_MAX_TOKENS": str(MAX_TOKENS),
        "DOCENT_CHECKPOINTER": "sqlite",
        "DOCENT_K": str(args.k),
    }
    settings = Settings(data_dir=data_dir, k=args.k)
    services = open_services(Settings(data_dir=data_dir, llm_provider="extractive"))
    rows: list[dict[str, float]] = []
    try:
        with (
            running(command, docent_env(work), f"{llama}/models", work / "llama.log", timeout=120),
            docent_server(data_dir, work / "docent.log", **env) as base,
            httpx.Client() as client,
        ):
            for i in range(args.warmup + args.runs):
                question = QUESTIONS[i % len(QUESTIONS)]
                reset_prompt_cache(client, llama)
                stream = stream_ttft(base, question)
                start = time.perf_counter()
                vector = services.embedder.embed([question])[0]
                services.store.vectors.search(settings.collection, vector, settings.k)
                floor = time.perf_counter() - start
                passages = services.retriever.search(question, k=settings.k, collection=settings.collection)
                request = AnswerRequest(question=question, search_query=question, passages=passages)
                prompt = build_messages(
                    request,
                    system_prompt=None,
                    max_turns=settings.prompt_history_turns,
                    max_tokens=settings.prompt_history_tokens,
                )
                messages = [{"role": ROLES[m.type], "content": m.text} for m in prompt]
                reset_prompt_cache(client, llama)
                model = model_ttft(client, llama, messages)
                if i >= args.warmup:
                    rows.append(
                        {
                            "stream_ms": stream * 1e3,
                            "model_ms": model * 1e3,
                            "floor_ms": floor * 1e3,
                            "overhead_ms": (stream - model - floor) * 1e3,
                        }
                    )
    finally:
        services.close()
    summary: dict[str, Any] = {"runs": len(rows), "max_tokens": MAX_TOKENS, "k": args.k}
    for key in ("stream_ms", "model_ms", "floor_ms", "overhead_ms"):
        values = [r[key] for r in rows]
        summary[key] = {
            "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1),
            "mean": round(statistics.fmean(values), 1),
        }
        print(
            f"{key:12} p50 {summary[key]['p50']:8.1f}  p95 {summary[key]['p95']:8.1f}  "
            f"mean {summary[key]['mean']:8.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
