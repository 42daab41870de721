"""Latency benchmark of POST /invoke over real HTTP, against the retrieval floor it cannot beat.

What it does, in order:

1. Setup: a fresh temporary DOCENT_DATA_DIR (or `--data-dir`), filled with `docent ingest` from the corpus
   (default: `../shared/corpus/energy-saving` and `data/sample`, relative to the repository root), and an
   API key with the `query` scope in a temporary keys file (DOCENT_API_KEYS_FILE).
2. Service: `docent serve` (real uvicorn, auth as configured: on by default) on a free loopback port, in its
   own session; it is always stopped at the end, on errors and on Ctrl-C too. After a warm-up,
   `--requests` POST /invoke calls are made at each `--concurrency` level with httpx.AsyncClient, sending
   the key and cycling a fixed list of questions about the corpus. Every reply must be 200 with an answer;
   anything else counts as an error.
3. Floor: in-process, opened like the server (`open_docent`), with the same corpus and settings, the time
   of one query embedding plus one Chroma query (`services.retriever.search`), which every /invoke pays;
   also a full graph turn without HTTP.
4. Report: p50, p95, p99, mean and throughput per level, the floor, and the overhead of the service
   over the floor at concurrency 1. `--json OUT` writes every figure.

The extractive answerer is used (no LLM) and rate limiting is off, unless DOCENT_LLM_PROVIDER or
DOCENT_RATE_LIMIT_PER_MINUTE say otherwise. The benchmark prints figures and asserts nothing about speed.

    .venv/bin/python bench/invoke.py
    .venv/bin/python bench/invoke.py --requests 500 --concurrency 1,4,8 --json /tmp/invoke.json
    .venv/bin/python bench/invoke.py --smoke    # data/sample, a few requests: does the bench work at all?
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place, so that bench.support
# imports and bench/ingest.py does not shadow the `ingest` package.
sys.path[0] = str(REPO_ROOT)

from bench.support.machine import (  # noqa: E402
    load_average,
    resolved_corpus,
    shown_path,
    unwind_on_signals,
)
from bench.support.servers import docent_serving, run_docent  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.storage.keys import add_key  # noqa: E402

DEFAULT_CORPUS = ("../shared/corpus/energy-saving", "data/sample")
SMOKE_CORPUS = ("data/sample",)
SMOKE_REQUESTS = 4

# Realistic questions about the default corpus (home energy saving and composting), asked in a cycle.
QUESTIONS: tuple[str, ...] = (
    "How much can I save by turning my thermostat down by one degree?",
    "How do I stop draughts coming in around my windows and doors?",
    "Should I close my curtains at night to keep the heat in?",
    "How much money does switching appliances off standby save each year?",
    "What is a programmable thermostat and how should I use it in winter?",
    "How long do CFL bulbs last compared with incandescent bulbs?",
    "Is rigid foam insulation more expensive than rolls and batts?",
    "What window coverings help keep a house cool in warm weather?",
    "How much could I save by swapping a bath for a four minute shower?",
    "How can I use my kettle more efficiently in the kitchen?",
    "What maintenance keeps a car's fuel economy up?",
    "How should I recycle old CFL bulbs that contain mercury?",
    "What is hot composting and who is it suited to?",
    "What is the difference between hot and cold composting?",
    "Why does my compost pile smell bad and how do I fix it?",
    "Which materials should be kept out of a cold compost pile?",
    "What is the right balance of greens and browns in a compost heap?",
    "How often should I turn a hot compost pile?",
    "Why is my compost heap too wet or not heating up?",
    "How do I know when compost is finished and ready to use?",
)


# ---------------------------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Summary:
    """Latency figures of one series, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        """Summarise latencies given in seconds."""
        ms = [s * 1000 for s in seconds]
        return cls(
            n=len(ms),
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            p99_ms=percentile(ms, 99),
            mean_ms=sum(ms) / len(ms) if ms else math.nan,
            min_ms=min(ms) if ms else math.nan,
            max_ms=max(ms) if ms else math.nan,
        )


@dataclass
class LevelResult:
    """The HTTP figures at one concurrency level."""

    concurrency: int
    requests: int
    errors: int
    wall_s: float
    throughput_rps: float
    latency: Summary
    answered_with_citations: int
    server_cpu_ms_per_request: float | None
    client_cpu_ms_per_request: float
    error_samples: list[str] = field(default_factory=list)


@dataclass
class FloorResult:
    """In-process figures: embed + Chroma query (the floor), its parts, and a full graph turn."""

    repeats: int
    retrieve: Summary
    embed: Summary
    chroma_query: Summary
    graph_turn: Summary | None


# ------------------------------------------------------------------------------------------------ setup

# Settings the bench chooses unless the environment sets them: the extractive answerer (no LLM), and no rate
# limit (the bench measures latency, not the limiter).
BENCH_DEFAULTS = {"llm_provider": "extractive", "rate_limit_per_minute": "0"}


def _unset_defaults() -> dict[str, str]:
    """The bench's defaults that the environment does not override, by settings field."""
    return {
        name: value for name, value in BENCH_DEFAULTS.items() if f"DOCENT_{name.upper()}" not in os.environ
    }


def docent_env(data_dir: Path, keys_file: Path) -> dict[str, str]:
    """This process's environment (any DOCENT_* knobs included) with the bench's defaults, data dir and keys
    file."""
    return {
        **os.environ,
        **{f"DOCENT_{name.upper()}": value for name, value in _unset_defaults().items()},
        "DOCENT_DATA_DIR": str(data_dir),
        "DOCENT_API_KEYS_FILE": str(keys_file),
        "PYTHONUNBUFFERED": "1",
    }


def server_settings(data_dir: Path, keys_file: Path) -> Settings:
    """The settings `docent serve` reads from `docent_env` and the repo's .env, read the same way."""
    chosen: dict[str, Any] = {"data_dir": data_dir, "api_keys_file": keys_file, **_unset_defaults()}
    return Settings(_env_file=REPO_ROOT / ".env", **chosen)


def create_key(settings: Settings) -> str:
    """A new key with the `query` scope in the settings' keys file."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return add_key(settings.keys_file, f"bench-{os.getpid()}", ["query"], created)


def ingest(corpus: Sequence[Path], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run `docent ingest --json` over the corpus; the seconds it took and its summary."""
    start = time.perf_counter()
    done = run_docent(["ingest", "--json", *map(str, corpus)], env, timeout=900)
    seconds = time.perf_counter() - start
    try:
        summary: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        summary = {}
    if done.returncode != 0 or not summary.get("chunks_added", 0) + summary.get("chunks_skipped", 0):
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise RuntimeError(f"docent ingest failed (exit {done.returncode})")
    return seconds, summary


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc); None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------- HTTP


def body(question: str, thread_id: str | None) -> dict[str, Any]:
    """A LangServe-shaped /invoke body."""
    configurable = {"thread_id": thread_id} if thread_id else {}
    return {"input": {"message": question}, "config": {"configurable": configurable}}


def client_for(base: str, key: str, timeout: float, connections: int = 1) -> httpx.AsyncClient:
    """One kept-alive client sending the key, with `connections` connections at most."""
    return httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def run_level(
    base: str,
    key: str,
    *,
    concurrency: int,
    requests: int,
    offset: int,
    same_thread: bool,
    request_timeout: float,
    server_pid: int | None,
) -> LevelResult:
    """`requests` POST /invoke calls by `concurrency` workers sharing one client; per-request latency."""
    latencies: list[float] = []
    errors: list[str] = []
    cited = 0
    next_index = 0

    async def worker(client: httpx.AsyncClient, number: int) -> None:
        nonlocal next_index, cited
        thread_id = f"bench-c{concurrency}-w{number}-{os.getpid()}" if same_thread else None
        while next_index < requests:
            index = next_index
            next_index += 1
            question = QUESTIONS[(offset + index) % len(QUESTIONS)]
            start = time.perf_counter()
            try:
                reply = await client.post("/invoke", json=body(question, thread_id))
                elapsed = time.perf_counter() - start
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(elapsed)
            if reply.status_code != 200:
                errors.append(f"HTTP {reply.status_code}: {reply.text[:200]}")
                continue
            try:
                output = reply.json()["output"]
                if not output["answer"]:
                    raise ValueError("empty answer")
            except (ValueError, KeyError, TypeError) as exc:
                errors.append(f"bad body: {exc}")
                continue
            cited += bool(output.get("citations"))

    server_cpu = process_cpu_seconds(server_pid) if server_pid else None
    client_cpu = time.process_time()
    async with client_for(base, key, request_timeout, concurrency) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client, n) for n in range(concurrency)))
        wall = time.perf_counter() - start
    client_cpu = time.process_time() - client_cpu
    server_cpu_after = process_cpu_seconds(server_pid) if server_pid else None
    server_ms = (
        (server_cpu_after - server_cpu) * 1000 / requests
        if server_cpu is not None and server_cpu_after is not None
        else None
    )
    return LevelResult(
        concurrency=concurrency,
        requests=requests,
        errors=len(errors),
        wall_s=wall,
        throughput_rps=requests / wall if wall else math.nan,
        latency=Summary.of(latencies),
        answered_with_citations=cited,
        server_cpu_ms_per_request=server_ms,
        client_cpu_ms_per_request=client_cpu * 1000 / requests,
        error_samples=errors[:5],
    )


async def warm_up(base: str, key: str, count: int, request_timeout: float) -> int:
    """`count` sequential requests that are not measured; the number that failed."""
    failed = 0
    async with client_for(base, key, request_timeout) as client:
        for index in range(count):
            with contextlib.suppress(httpx.HTTPError):
                reply = await client.post("/invoke", json=body(QUESTIONS[index % len(QUESTIONS)], None))
                failed += reply.status_code != 200
                continue
            failed += 1
    return failed


# ------------------------------------------------------------------------------------------------ floor


def measure_floor(settings: Settings, *, repeats: int, warmup: int, graph_turns: bool) -> FloorResult:
    """In-process: embed one query + one Chroma query, with the server's settings, over the questions.

    Each repetition times, back to back, `retriever.search` (the floor), its two parts apart, and (unless
    disabled) a full graph turn, so that all series see the same machine load. The heavy imports
    (onnxruntime, chromadb, langgraph) happen here, after the server is stopped, so that the load
    generator stays light while the service is being measured.
    """
    series = asyncio.run(_floor_series(settings, repeats, warmup, graph_turns))
    return FloorResult(
        repeats=repeats,
        retrieve=Summary.of(series["retrieve"]),
        embed=Summary.of(series["embed"]),
        chroma_query=Summary.of(series["chroma_query"]),
        graph_turn=Summary.of(series["graph_turn"]) if graph_turns else None,
    )


async def _floor_series(
    settings: Settings, repeats: int, warmup: int, graph_turns: bool
) -> dict[str, list[float]]:
    """Seconds per repetition: the floor, embed alone, Chroma query alone, a graph turn (new thread each)."""
    from graph.build import open_docent
    from graph.turn import run_turn

    k, collection = settings.k, settings.collection
    series: dict[str, list[float]] = {"retrieve": [], "embed": [], "chroma_query": [], "graph_turn": []}
    async with open_docent(settings) as docent:
        services, graph = docent.services, docent.graph
        for index in range(warmup + repeats):
            question = QUESTIONS[index % len(QUESTIONS)]
            start = time.perf_counter()
            services.retriever.search(question, k=k, collection=collection, mode="dense")
            floor = time.perf_counter()
            vector = services.embedder.embed([question])[0]
            embedded = time.perf_counter()
            services.store.vectors.search(collection, vector, k)
            queried = time.perf_counter()
            if graph_turns:
                await run_turn(graph, question)
            turned = time.perf_counter()
            if index >= warmup:
                series["retrieve"].append(floor - start)
                series["embed"].append(embedded - floor)
                series["chroma_query"].append(queried - embedded)
                series["graph_turn"].append(turned - queried)
    return series


# ----------------------------------------------------------------------------------------------- report


def fmt(summary: Summary) -> str:
    """One line of latency figures."""
    return (
        f"p50 {summary.p50_ms:7.1f}  p95 {summary.p95_ms:7.1f}  p99 {summary.p99_ms:7.1f}  "
        f"mean {summary.mean_ms:7.1f}  min {summary.min_ms:6.1f}  max {summary.max_ms:7.1f} ms"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Benchmark POST /invoke over real HTTP (extractive answerer) against the retrieval floor",
    )
    parser.add_argument(
        "--corpus",
        action="append",
        type=Path,
        metavar="PATH",
        help="file or directory to ingest (repeatable; relative to the repo root); "
        f"default: {' and '.join(DEFAULT_CORPUS)}",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="DOCENT_DATA_DIR to use (kept); default: a fresh temporary directory (removed)",
    )
    parser.add_argument("--requests", type=int, default=200, help="measured requests per level (default 200)")
    parser.add_argument(
        "--concurrency", default="1,8", help="comma-separated concurrency levels (default 1,8)"
    )
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests first (default 10)")
    parser.add_argument(
        "--floor-repeats", type=int, help="in-process floor repetitions (default: --requests)"
    )
    parser.add_argument(
        "--same-thread",
        action="store_true",
        help="each worker keeps one conversation thread (default: a new thread per request)",
    )
    parser.add_argument(
        "--no-graph-turn", action="store_true", help="skip the in-process full-graph measurement"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    parser.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="write all figures as JSON")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"seconds: {', '.join(SMOKE_CORPUS)}, {SMOKE_REQUESTS} requests at concurrency 1 and 2, "
        "one warm-up",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.corpus = args.corpus or [Path(c) for c in SMOKE_CORPUS]
        args.requests, args.concurrency, args.warmup = SMOKE_REQUESTS, "1,2", 1
    try:
        args.levels = [int(level) for level in args.concurrency.split(",") if level.strip()]
    except ValueError:
        parser.error("--concurrency takes integers separated by commas, e.g. 1,8")
    if not args.levels or min(args.levels) < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--concurrency levels and --requests must be >= 1, --warmup >= 0")
    args.floor_repeats = args.floor_repeats or args.requests
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, measure, report; 0 when every request succeeded, 1 when some failed, 130 on Ctrl-C."""
    args = parse_args(argv)
    unwind_on_signals()  # the `finally` below stops what was started
    corpus, missing = resolved_corpus(args.corpus, DEFAULT_CORPUS)
    if missing:
        print(f"corpus path not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="docent-bench-"))
    data_dir = args.data_dir.resolve() if args.data_dir else work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, corpus, data_dir, work)
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, corpus: list[Path], data_dir: Path, work: Path) -> int:
    keys_file = work / "api_keys.json"  # temporary, also with --data-dir: the key is this run's alone
    env = docent_env(data_dir, keys_file)
    server = server_settings(data_dir, keys_file)
    key = create_key(server)
    settings = server.model_dump(mode="json")
    cpus = os.cpu_count() or 1
    print("Docent /invoke benchmark")
    print(
        f"machine    : {cpus} CPU(s), {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"settings   : answerer={settings['llm_provider']} k={settings['k']} "
        f"collection={settings['collection']} checkpointer={settings['checkpointer']} "
        f"chroma={settings['chroma_mode']} embedding_threads={settings['embedding_threads'] or cpus} "
        f"max_tokens={settings['embedding_max_tokens']} min_score={settings['min_score']}"
    )
    print(
        f"HTTP       : auth={settings['auth']} (key in {keys_file}), "
        f"rate_limit_per_minute={settings['rate_limit_per_minute']}"
    )
    print(
        f"run        : requests={args.requests} per level, concurrency={args.levels}, "
        f"warmup={args.warmup}, "
        f"threads={'one per worker' if args.same_thread else 'new per request'}, "
        f"questions={len(QUESTIONS)} (cycled)"
    )
    print(f"data dir   : {data_dir}{'' if args.data_dir else ' (temporary)'}")

    print(f"load avg   : {load_average()} at start (other processes on this machine skew every figure)")
    ingest_s, ingested = ingest(corpus, env)
    print(
        f"ingest     : {', '.join(shown_path(p) for p in corpus)} -> {ingested.get('sources')} sources, "
        f"{ingested.get('pages')} pages, {ingested.get('chunks_added')} chunks added, "
        f"{ingested.get('chunks_skipped')} skipped, in {ingest_s:.1f}s"
    )

    levels: list[LevelResult] = []
    started = time.perf_counter()
    with docent_serving(env, work / "server.log", timeout=120) as (base, process):
        pid = process.pid
        print(f"server     : {base} (pid {pid}) up in {time.perf_counter() - started:.1f}s")
        warm_failed = asyncio.run(warm_up(base, key, args.warmup, args.timeout))
        print(f"warm-up    : {args.warmup} requests, {warm_failed} failed")
        print("\nHTTP POST /invoke (latency per request, client side)")
        offset = args.warmup
        for level in args.levels:
            result = asyncio.run(
                run_level(
                    base,
                    key,
                    concurrency=level,
                    requests=args.requests,
                    offset=offset,
                    same_thread=args.same_thread,
                    request_timeout=args.timeout,
                    server_pid=pid,
                )
            )
            offset += args.requests
            levels.append(result)
            server_cpu = (
                f"{result.server_cpu_ms_per_request:.1f}"
                if result.server_cpu_ms_per_request is not None
                else "n/a"
            )
            print(f"  c={level:<3} {fmt(result.latency)}")
            print(
                f"        throughput {result.throughput_rps:6.1f} req/s  ({result.requests} in "
                f"{result.wall_s:.1f}s)  errors {result.errors}  with citations "
                f"{result.answered_with_citations}/{result.requests}  CPU/request: server {server_cpu} ms, "
                f"client {result.client_cpu_ms_per_request:.1f} ms"
            )
            for sample in result.error_samples:
                print(f"        error: {sample}")

    print("\nIn-process (no HTTP, server stopped)")
    floor = measure_floor(
        server, repeats=args.floor_repeats, warmup=args.warmup, graph_turns=not args.no_graph_turn
    )
    print(f"  floor: embed + Chroma query   {fmt(floor.retrieve)}")
    print(f"    embed one query             {fmt(floor.embed)}")
    print(f"    {'Chroma query (k=' + str(settings['k']) + ')':<28}{fmt(floor.chroma_query)}")
    if floor.graph_turn is not None:
        print(f"  full graph turn (run_turn)    {fmt(floor.graph_turn)}")

    overhead: dict[str, float] = {}
    print("\nOverhead of the service over the floor")
    if 1 in args.levels:
        c1 = next(r for r in levels if r.concurrency == 1).latency
        overhead = {"p50_ms": c1.p50_ms - floor.retrieve.p50_ms, "p95_ms": c1.p95_ms - floor.retrieve.p95_ms}
        print(
            f"  c=1: p50 {c1.p50_ms:.1f} - {floor.retrieve.p50_ms:.1f} = {overhead['p50_ms']:.1f} ms   "
            f"p95 {c1.p95_ms:.1f} - {floor.retrieve.p95_ms:.1f} = {overhead['p95_ms']:.1f} ms"
        )
        if floor.graph_turn is not None:
            graph_p50 = floor.graph_turn.p50_ms
            print(
                f"       of the p50: graph beyond retrieval {graph_p50 - floor.retrieve.p50_ms:.1f} ms, "
                f"HTTP + FastAPI + validation {c1.p50_ms - graph_p50:.1f} ms"
            )
    else:
        print("  (no concurrency-1 level measured)")
    for result in (r for r in levels if r.concurrency > 1):
        little = result.concurrency / result.throughput_rps * 1000
        busy = "more requests in flight than cores" if result.concurrency > cpus else "shared cores"
        print(
            f"  c={result.concurrency}: {busy} ({cpus}): in flight / throughput = {result.concurrency} / "
            f"{result.throughput_rps:.1f} req/s = {little:.0f} ms ~ mean {result.latency.mean_ms:.0f} ms "
            f"(Little's law):\n        requests mostly wait their turn for the CPU, so queueing dominates "
            f"latency there; read throughput, not latency, at this level"
        )

    print(f"\nload avg   : {load_average()} at the end")
    if args.json_out:
        report = {
            "machine": {
                "cpu_count": cpus,
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "settings": settings,
            "run": {
                "requests": args.requests,
                "concurrency": args.levels,
                "warmup": args.warmup,
                "same_thread": args.same_thread,
                "questions": list(QUESTIONS),
                "corpus": [str(p) for p in corpus],
                "data_dir": str(data_dir),
            },
            "ingest": {"seconds": ingest_s, "summary": ingested},
            "http": [asdict(r) for r in levels],
            "floor": asdict(floor),
            "overhead_c1": overhead,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
        print(f"\nJSON written to {args.json_out}")
    return 1 if any(r.errors for r in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
