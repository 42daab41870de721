"""Docent's own share of the time to first token of POST /stream: what is left once the model's time to first
token and the retrieval floor are taken away.

1. Setup: a temporary data dir filled with data/sample (in-process, by the pipeline `docent ingest` runs);
   llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (needs the `local` extra);
   `docent serve` using it through the `openai` provider. Every process is stopped at the end.
2. Per run (a question from a fixed list, `--runs` times after a warm-up; a short unrelated prompt first
   resets llama.cpp's prompt cache):
   - client TTFT: POST /stream (one kept-alive httpx client for all runs), time from sending to the first
     `token` event (new thread each time); the same turn's `end` event brings the server's `timings`, among
     them `model_ttft_ms`: the model's time to first chunk for this very request, measured in the server from
     the model request (client library included) to its first content chunk;
   - floor: embed the query + one Chroma query, in-process.
   overhead = client TTFT - model_ttft_ms - floor, and its parts (they add up to it):
   - transport = client TTFT - to_model_request_ms - model_ttft_ms - first_chunk_to_token_ms
     (client to server, and the first token's way back over SSE),
   - before the model = to_model_request_ms - floor (graph, checkpoints, hybrid retrieval beyond the floor),
   - first_chunk_to_token_ms (the model's first chunk through LangGraph's stream to the `token` event).
   Secondary series (unless --no-direct), the old pairing: the same final prompt (built in-process from the
   same retrieval with core.answering.prompts) sent straight to llama.cpp after another cache reset; its TTFT
   swings by hundreds of ms from the one inside the turn, so `paired_overhead_ms` is noise-dominated.
3. Report p50/p95/mean of each series, and the load average before and after. `--json OUT` writes all.

    .venv/bin/python bench/stream.py --runs 24 --k 2
    .venv/bin/python bench/stream.py --smoke    # one run, one passage: does the bench work at all?
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place, so that bench.support
# imports and bench/ingest.py does not shadow the `ingest` package.
sys.path[0] = str(REPO_ROOT)

from bench.support.servers import SAMPLE_CORPUS, SMOLLM2, docent_server, llama_server  # noqa: E402
from core.answering.base import AnswerRequest  # noqa: E402
from core.answering.prompts import build_messages  # noqa: E402
from core.services import open_services  # noqa: E402
from core.settings import Settings  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

MODEL = SMOLLM2
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


SERIES = (
    "client_ttft_ms",
    "model_ttft_ms",
    "floor_ms",
    "overhead_ms",
    "transport_ms",
    "before_model_ms",
    "first_chunk_to_token_ms",
    "retrieve_ms",
    "to_model_request_ms",
)
SECONDARY = ("direct_ttft_ms", "paired_overhead_ms")


def served_by(llama: str, k: int) -> dict[str, str]:
    """Docent's settings: answer through the `openai` provider with the llama.cpp server."""
    return {
        "DOCENT_LLM_PROVIDER": "openai",
        "DOCENT_OPENAI_BASE_URL": llama,
        "DOCENT_LLM_MODEL": MODEL,
        "DOCENT_LLM_MAX_TOKENS": str(MAX_TOKENS),
        "DOCENT_CHECKPOINTER": "sqlite",
        "DOCENT_K": str(k),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def stream_turn(client: httpx.Client, base: str, question: str) -> tuple[float, dict[str, Any]]:
    """Client TTFT (s) of one POST /stream, and its `end` event's data. The client is made beforehand: making
    one (its TLS context) takes tens of ms, which are no part of the server's overhead.
    """
    start = time.perf_counter()
    first: float | None = None
    end: dict[str, Any] | None = None
    body = {"input": {"message": question}}
    with client.stream("POST", f"{base}/stream", json=body, timeout=120) as reply:
        event = ""
        for line in reply.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
                if event == "token" and first is None:
                    first = time.perf_counter() - start
            elif line.startswith("data:") and event == "end":
                end = json.loads(line.partition(":")[2])
    if first is None or end is None:
        raise RuntimeError(f"no token or no end event for {question!r}")
    return first, end


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


def row_of(client_ttft: float, timings: dict[str, Any], floor: float) -> dict[str, float]:
    """One run's series in ms, from the client's TTFT, the turn's server timings and the floor."""
    client_ms, floor_ms = client_ttft * 1e3, floor * 1e3
    model_ms = float(timings["model_ttft_ms"])
    to_request = float(timings["to_model_request_ms"])
    to_token = float(timings["first_chunk_to_token_ms"])
    return {
        "client_ttft_ms": client_ms,
        "model_ttft_ms": model_ms,
        "floor_ms": floor_ms,
        "overhead_ms": client_ms - model_ms - floor_ms,
        "transport_ms": client_ms - to_request - model_ms - to_token,
        "before_model_ms": to_request - floor_ms,
        "first_chunk_to_token_ms": to_token,
        "retrieve_ms": float(timings["retrieve_ms"]),
        "to_model_request_ms": to_request,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--k", type=int, default=2, help="passages per prompt (fewer: shorter model prompts)")
    parser.add_argument("--no-direct", action="store_true", help="skip the secondary paired direct series")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--smoke", action="store_true", help="one run, no warm-up, one passage: seconds, not minutes"
    )
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.warmup, args.k = 1, 0, 1
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="docent-bench-stream-"))
    data_dir = work / "data"
    settings = Settings(data_dir=data_dir, k=args.k)
    services = open_services(Settings(data_dir=data_dir, llm_provider="extractive"))
    rows: list[dict[str, float]] = []
    try:
        ingested = Ingestor(services.settings, services.embedder, services.store).run([str(SAMPLE_CORPUS)])
        if ingested.failures or not ingested.chunks_added:
            raise RuntimeError(f"ingesting {SAMPLE_CORPUS} failed: {ingested.failures}")
        with (
            llama_server(work / "llama.log") as llama,
            docent_server(data_dir, work / "docent.log", **served_by(llama, args.k)) as base,
            httpx.Client() as client,
        ):
            for i in range(args.warmup + args.runs):
                question = QUESTIONS[i % len(QUESTIONS)]
                reset_prompt_cache(client, llama)
                client_ttft, end = stream_turn(client, base, question)
                if end["degraded"] or end["timings"]["model_ttft_ms"] is None:
                    raise RuntimeError(f"the model did not answer {question!r}: {end.get('degraded_reason')}")
                start = time.perf_counter()
                vector = services.embedder.embed([question])[0]
                services.store.vectors.search(settings.collection, vector, settings.k)
                floor = time.perf_counter() - start
                row = row_of(client_ttft, end["timings"], floor)
                if not args.no_direct:
                    passages = services.retriever.search(
                        question, k=settings.k, collection=settings.collection
                    )
                    request = AnswerRequest(question=question, search_query=question, passages=passages)
                    prompt = build_messages(
                        request,
                        system_prompt=None,
                        max_turns=settings.prompt_history_turns,
                        max_tokens=settings.prompt_history_tokens,
                    )
                    messages = [{"role": ROLES[m.type], "content": m.text} for m in prompt]
                    reset_prompt_cache(client, llama)
                    direct = model_ttft(client, llama, messages) * 1e3
                    row["direct_ttft_ms"] = direct
                    row["paired_overhead_ms"] = row["client_ttft_ms"] - direct - row["floor_ms"]
                if i >= args.warmup:
                    rows.append(row)
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    summary: dict[str, Any] = {
        "runs": len(rows),
        "max_tokens": MAX_TOKENS,
        "k": args.k,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    print(
        f"{len(rows)} runs, k={args.k}, max_tokens={MAX_TOKENS}; "
        f"load average before {summary['loadavg_before']}, after {summary['loadavg_after']}"
    )
    for key in SERIES + (() if args.no_direct else SECONDARY):
        if key == SECONDARY[0]:
            print("secondary, a separate direct request to llama.cpp (its TTFT varies from the turn's):")
        values = [r[key] for r in rows]
        summary[key] = {
            "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1),
            "mean": round(statistics.fmean(values), 1),
        }
        print(
            f"{key:24} p50 {summary[key]['p50']:8.1f}  p95 {summary[key]['p95']:8.1f}  "
            f"mean {summary[key]['mean']:8.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
