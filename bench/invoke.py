"""Latency benchmark of POST /invoke over real HTTP, against the retrieval floor it cannot beat.

What it does, in order:

1. Setup: a fresh temporary DOCENT_DATA_DIR (or `--data-dir`), filled with `docent ingest` from the corpus
   (default: `../shared/corpus/energy-saving` and `data/sample`, relative to the repository root), and an
   API key with the `query` scope in a temporary keys file (DOCENT_API_KEYS_FILE).
2. Service: `docent serve` (real uvicorn, auth as configured: on by default) on a free loopback port, in its
   own session; it is always stopped at the end, on errors and on Ctrl-C too. After a warm-up, `--requests`
   POST /invoke calls are made at each `--concurrency` level (default 1, 8, 32: the overhead at c=1,
   throughput at 8 and 32) with httpx.AsyncClient, sending the key and cycling a fixed list of questions about
   the corpus. Every reply must be 200 with an answer; anything else counts as an error.
3. Floor: in-process, opened like the server (`open_docent`), with the same corpus and settings, the time
   of one query embedding plus one Chroma query (the plain embedder, without the query path's cache and
   batcher, then `vectors.search`), which a question never asked before pays; also a full graph turn
   without HTTP.
4. Report: p50, p95, p99, mean and throughput per level, the floor, and the overhead of the service
   over the floor at concurrency 1. `--json OUT` writes every figure.
5. Baseline (`--baseline-ref REF`, a git ref or commit): after all of the above for the working tree, the same
   measurement for REF's code, and the ratios new/baseline of the floor p50, the c=1 p50, the overhead p50,
   and per level the server CPU ms/request and the throughput. REF is checked out with `git worktree add
   --detach` in the temporary directory (removed with `git worktree remove --force` at the end, on errors and
   on Ctrl-C too), and REF's own `bench/invoke.py` runs there as a subprocess (cwd the worktree, its own
   session, interrupted with SIGINT if this bench is) with the same corpus (absolute paths), --requests,
   --concurrency, --warmup, --floor-repeats, --timeout and flags, where REF's bench has those options (its
   `--help` says), and `--json`, which this bench reads; it ingests into a temporary data dir of its own
   (never `--data-dir`). The repo's .env, if any, is copied into the worktree. REF's code really is what runs:
   the subprocess gets PYTHONPATH=<worktree>, whose entries precede site-packages on sys.path, and the venv's
   editable install is a finder appended at the end of sys.meta_path (`__editable___docent_rag_0_1_0_finder`),
   after the PathFinder that searches sys.path, so `core`, `cli`, `graph`, ... resolve to the worktree, in
   REF's bench (its in-process floor) and in the `docent ingest` / `docent serve` it starts from the venv bin
   (the console script does `from cli.main import main`; the environment, PYTHONPATH included, is inherited).
   `--json` puts REF's report under "baseline" (with "git": ref and commit) and the ratios under
   "vs_baseline". The two runs follow each other, so a change of machine load between them skews the ratios.

The extractive answerer is used (no LLM) and rate limiting is off, unless DOCENT_LLM_PROVIDER or
DOCENT_RATE_LIMIT_PER_MINUTE say otherwise. The benchmark prints figures and asserts nothing about speed.

    .venv/bin/python bench/invoke.py
    .venv/bin/python bench/invoke.py --requests 500 --concurrency 1,4,8 --json /tmp/invoke.json
    .venv/bin/python bench/invoke.py --baseline-ref HEAD~1 --json /tmp/invoke.json  # this tree vs HEAD~1
    .venv/bin/python bench/invoke.py --smoke    # data/sample, a few requests: does the bench work at all?
    .venv/bin/python bench/invoke.py --otlp     # tracing on, exporting to a local OTLP sink (off by default)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
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
from bench.support.servers import docent_serving, run_docent, serving  # noqa: E402
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
class OtlpSink:
    """An OTLP/HTTP collector that counts what `docent serve` exports with `--otlp` and drops it (nothing is
    decoded: the sink shares this process with the client being timed)."""

    exports: int = 0
    bytes: int = 0

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        async def traces(request: Request) -> Response:
            self.exports += 1
            self.bytes += len(await request.body())
            return Response(b"", media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


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
# The answer cache off: the bench cycles a fixed list of questions and measures the graph
# (bench/answer_cache.py measures the cache).
BENCH_DEFAULTS = {"llm_provider": "extractive", "rate_limit_per_minute": "0", "cache": "off"}


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

    Each repetition times, back to back, the embedding and the Chroma query (together, the floor), and
    (unless disabled) a full graph turn, so that all series see the same machine load. The heavy imports
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
            # The floor is the query path's model (no cache, no batcher) and one Chroma query: what a
            # request that shares nothing with an earlier one pays at least. (A --baseline-ref before the
            # fast query model has none: its query path embeds with the configured embedder.)
            floor = time.perf_counter()
            vector = getattr(services, "query_model", services.embedder).embed([question])[0]
            embedded = time.perf_counter()
            services.store.vectors.search(collection, vector, k)
            queried = time.perf_counter()
            if graph_turns:
                await run_turn(graph, question)
            turned = time.perf_counter()
            if index >= warmup:
                series["retrieve"].append(queried - floor)
                series["embed"].append(embedded - floor)
                series["chroma_query"].append(queried - embedded)
                series["graph_turn"].append(turned - queried)
    return series


# --------------------------------------------------------------------------------------------- baseline


def git(*args: str) -> subprocess.CompletedProcess[str]:
    """`git -C <repo root> ARGS`, output captured."""
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=300, check=False
    )


def resolve_ref(ref: str) -> str | None:
    """The commit a git ref names in this repository; None when it names none."""
    done = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


@contextlib.contextmanager
def baseline_worktree(tree: Path, commit: str) -> Iterator[Path]:
    """A detached `git worktree` of commit at tree, always removed afterwards (errors and Ctrl-C too)."""
    try:
        added = git("worktree", "add", "--detach", str(tree), commit)
        if added.returncode != 0:
            raise RuntimeError(f"git worktree add {tree} {commit} failed: {added.stderr.strip()}")
        yield tree
    finally:
        if git("worktree", "remove", "--force", str(tree)).returncode != 0:
            shutil.rmtree(tree, ignore_errors=True)
            git("worktree", "prune")


def baseline_env(tree: Path) -> dict[str, str]:
    """This environment with the worktree first on PYTHONPATH: REF's bench, and the `docent` commands it
    starts from the venv bin (which inherit it), import REF's packages, not the editable install's."""
    paths = [str(tree), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def bench_options(script: Path, env: dict[str, str]) -> set[str]:
    """The long options that a bench script's `--help` lists."""
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=script.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return set(re.findall(r"^\s+(?:-\w+, )?(--[\w-]+)", done.stdout, re.M))


def baseline_command(
    args: argparse.Namespace, corpus: Sequence[Path], script: Path, out: Path, supported: set[str]
) -> tuple[list[str], list[str]]:
    """REF's bench with this run's options, those that it has; and the options it lacks."""
    options: list[tuple[str, list[str]]] = [("--corpus", [str(path)]) for path in corpus]
    options += [
        ("--requests", [str(args.requests)]),
        ("--concurrency", [",".join(map(str, args.levels))]),
        ("--warmup", [str(args.warmup)]),
        ("--floor-repeats", [str(args.floor_repeats)]),
        ("--timeout", [str(args.timeout)]),
    ]
    options += [("--same-thread", [])] if args.same_thread else []
    options += [("--no-graph-turn", [])] if args.no_graph_turn else []
    options += [("--otlp", [])] if args.otlp else []
    command = [sys.executable, str(script), "--json", str(out)]
    lacking: list[str] = []
    for flag, values in options:
        if flag in supported:
            command += [flag, *values]
        elif flag not in lacking:
            lacking.append(flag)
    return command, lacking


def run_interruptible(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run command in its own session; if this bench is interrupted, pass one SIGINT on to it (its
    `finally` stops its server), wait for it, and re-raise."""
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    try:
        return process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def measure_baseline(
    args: argparse.Namespace, corpus: Sequence[Path], work: Path, ref: str, commit: str
) -> tuple[int, dict[str, Any] | None]:
    """Run REF's own bench/invoke.py on REF's code in a worktree; its exit status and JSON report (None
    when there is none)."""
    out = work / "baseline.json"
    print(f"\n===== baseline: {ref} ({commit[:12]}), its own bench/invoke.py and code =====", flush=True)
    with baseline_worktree(work / "baseline", commit) as tree:
        script = tree / "bench" / "invoke.py"
        if not script.exists():
            print(f"baseline: {ref} has no bench/invoke.py, nothing to compare", file=sys.stderr)
            return 2, None
        if (REPO_ROOT / ".env").exists():  # ignored by git: the settings must be the same on both sides
            shutil.copy2(REPO_ROOT / ".env", tree / ".env")
        env = baseline_env(tree)
        supported = bench_options(script, env)
        if "--json" not in supported:
            print(f"baseline: {ref}'s bench/invoke.py has no --json, nothing to compare", file=sys.stderr)
            return 2, None
        command, lacking = baseline_command(args, corpus, script, out, supported)
        if lacking:
            print(f"baseline: {ref}'s bench has no {', '.join(lacking)}: its defaults apply", flush=True)
        status = run_interruptible(command, tree, env)
    try:
        baseline: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        print(f"baseline: {ref}'s bench exited {status} without a JSON report", file=sys.stderr)
        return status or 2, None
    baseline["git"] = {"ref": ref, "commit": commit}
    return status, baseline


def _figure(report: dict[str, Any] | None, *keys: str) -> float | None:
    """report[keys[0]][keys[1]]... as a float; None where absent."""
    value: Any = report
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _pair(new: float | None, old: float | None) -> dict[str, float | None]:
    """Both figures and new / old (None unless both are finite and old > 0)."""
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old) and old > 0):
        return {"new": new, "baseline": old, "ratio": None}
    return {"new": new, "baseline": old, "ratio": new / old}


def compare(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Ratios new / baseline: floor p50, c=1 p50, overhead p50, and per level server CPU and throughput."""
    new = {int(r["concurrency"]): r for r in report.get("http", [])}
    old = {int(r["concurrency"]): r for r in baseline.get("http", [])}
    levels = sorted(new.keys() | old.keys())
    return {
        "floor_p50_ms": _pair(
            _figure(report, "floor", "retrieve", "p50_ms"), _figure(baseline, "floor", "retrieve", "p50_ms")
        ),
        "c1_p50_ms": _pair(
            _figure(new.get(1), "latency", "p50_ms"), _figure(old.get(1), "latency", "p50_ms")
        ),
        "overhead_c1_p50_ms": _pair(
            _figure(report, "overhead_c1", "p50_ms"), _figure(baseline, "overhead_c1", "p50_ms")
        ),
        "server_cpu_ms_per_request": {
            str(level): _pair(
                _figure(new.get(level), "server_cpu_ms_per_request"),
                _figure(old.get(level), "server_cpu_ms_per_request"),
            )
            for level in levels
        },
        "throughput_rps": {
            str(level): _pair(
                _figure(new.get(level), "throughput_rps"), _figure(old.get(level), "throughput_rps")
            )
            for level in levels
        },
    }


def print_comparison(vs: dict[str, Any], ref: str, commit: str) -> None:
    """The comparison as a table."""

    def shown(value: float | None, digits: int) -> str:
        return f"{value:10.{digits}f}" if value is not None else f"{'n/a':>10}"

    rows = [
        ("floor p50 (ms)", vs["floor_p50_ms"]),
        ("c=1 p50 (ms)", vs["c1_p50_ms"]),
        ("overhead p50 at c=1 (ms)", vs["overhead_c1_p50_ms"]),
        *((f"server CPU/request c={c} (ms)", pair) for c, pair in vs["server_cpu_ms_per_request"].items()),
        *((f"throughput c={c} (req/s)", pair) for c, pair in vs["throughput_rps"].items()),
    ]
    print(f"\nWorking tree vs baseline {ref} ({commit[:12]}): ratio new / baseline")
    print("  (ms: below 1 is better; req/s: above 1 is better)")
    print(f"  {'':<32}{'new':>10}{'baseline':>10}{'ratio':>10}")
    for label, pair in rows:
        print(f"  {label:<32}{shown(pair['new'], 1)}{shown(pair['baseline'], 1)}{shown(pair['ratio'], 3)}")


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
        "--concurrency",
        default="1,8,32",
        help="comma-separated concurrency levels (default 1,8,32: c=1 overhead, c=8 and c=32 throughput)",
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
        "--baseline-ref",
        metavar="REF",
        help="then measure the same for git REF's code (e.g. HEAD~1) and compare (ratio new/baseline)",
    )
    parser.add_argument(
        "--otlp",
        action="store_true",
        help="trace the server: OTEL_EXPORTER_OTLP_ENDPOINT set to a local OTLP/HTTP sink that counts and "
        "drops the spans (default: no OTEL_* variable reaches the server, tracing is off)",
    )
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
    commit = resolve_ref(args.baseline_ref) if args.baseline_ref else None
    if args.baseline_ref and commit is None:
        print(f"--baseline-ref: {args.baseline_ref!r} is not a commit of {REPO_ROOT}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="docent-bench-"))
    data_dir = args.data_dir.resolve() if args.data_dir else work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        status, report = _run(args, corpus, data_dir, work)
        if args.baseline_ref and commit:
            baseline_status, baseline = measure_baseline(args, corpus, work, args.baseline_ref, commit)
            status = max(status, baseline_status)
            if baseline is not None:
                report["baseline"] = baseline
                report["vs_baseline"] = compare(report, baseline)
                print_comparison(report["vs_baseline"], args.baseline_ref, commit)
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
            print(f"\nJSON written to {args.json_out}")
        return status
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(
    args: argparse.Namespace, corpus: list[Path], data_dir: Path, work: Path
) -> tuple[int, dict[str, Any]]:
    """Measure the working tree's code; the exit status (1 when requests failed) and the JSON report."""
    keys_file = work / "api_keys.json"  # temporary, also with --data-dir: the key is this run's alone
    env = {k: v for k, v in docent_env(data_dir, keys_file).items() if not k.startswith("OTEL_")}
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
    sink = OtlpSink()
    with contextlib.ExitStack() as stack:
        if args.otlp:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = stack.enter_context(serving(sink.app()))
            env["OTEL_SERVICE_NAME"] = "docent-bench"
        print(f"tracing    : {'on, OTLP/HTTP to a local sink' if args.otlp else 'off (no OTEL_* variable)'}")
        base, process = stack.enter_context(docent_serving(env, work / "server.log", timeout=120))
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

    if args.otlp:
        print(f"  traces exported to the sink: {sink.exports} requests, {sink.bytes / 1024:.0f} KiB")
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
        "tracing": {"otlp": args.otlp, "exports": sink.exports, "bytes": sink.bytes},
    }
    return (1 if any(r.errors for r in levels) else 0), report


if __name__ == "__main__":
    sys.exit(main())
