"""Throughput of POST /invoke at concurrency 32: one embedded `docent serve`, one server-mode replica asked
directly, and two replicas behind nginx (deploy/local-cluster), in one run; and the /invoke p50 overhead over
the retrieval floor in server mode against the embedded mode.

What it does, in order:

1. Embedded: a fresh temporary data dir, filled with `docent ingest` from the corpus (default:
   `../shared/corpus/energy-saving` and `data/sample`), served by one `docent serve` (auth off, extractive
   answerer, no rate limit, as everywhere below). After a warm-up: `--requests` POST /invoke at concurrency
   `--concurrency` (32), then `--c1-requests` at concurrency 1. The server is stopped.
2. Server mode: `deploy.local_cluster.up` with two replicas (own PostgreSQL, Redis, a Chroma server, a
   worker, nginx); the same corpus goes in with `docent ingest` in the cluster's environment (straight into
   the shared stores). The same two levels against api-1 alone (the other replica idles), then the
   concurrency level through nginx (both replicas). The cluster is brought down at the end, on errors and on
   Ctrl-C too.
3. Floors: in-process (bench/invoke.py's `measure_floor`), one query embedding plus one vector query, with the
   embedded settings (embedded Chroma) and with the cluster's (the Chroma server over HTTP). The overhead of
   a mode is its c=1 p50 minus its floor's p50; the bench reports server-mode overhead minus embedded.
4. Report: req/s, p50/p95 and errors per configuration; the ratios (goal: two replicas >= 1.6x one
   embedded process, 0 errors) and the overhead difference (goal: within 3 ms). `--json OUT` writes every
   figure. It asserts nothing about speed; it exits 1 when a request failed.

    .venv/bin/python bench/cluster.py
    .venv/bin/python bench/cluster.py --requests 960 --json /tmp/cluster-bench.json
    .venv/bin/python bench/cluster.py --smoke    # data/sample, a few requests: does the bench work at all?
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place (see bench/invoke.py).
sys.path[0] = str(REPO_ROOT)

from bench.invoke import (  # noqa: E402
    DEFAULT_CORPUS,
    FloorResult,
    LevelResult,
    ingest,
    measure_floor,
    run_level,
    warm_up,
)
from bench.support.machine import (  # noqa: E402
    load_average,
    resolved_corpus,
    shown_path,
    unwind_on_signals,
)
from bench.support.servers import docent_serving  # noqa: E402
from core.settings import Settings  # noqa: E402
from deploy import local_cluster  # noqa: E402

SMOKE_CORPUS = ("data/sample",)
BENCH_ENV = {
    "DOCENT_LLM_PROVIDER": "extractive",
    "DOCENT_RATE_LIMIT_PER_MINUTE": "0",
    "DOCENT_AUTH": "off",
    "DOCENT_CACHE": "off",  # it cycles a fixed list of questions and measures the graph
}
"""Every Docent process of the bench: no LLM, no rate limit, no keys (the local cluster's default)."""
NO_KEY = "-"
"""Auth is off: the Authorization header bench/invoke.py's client sends is not looked at."""
SPEEDUP_GOAL = 1.6
OVERHEAD_GOAL_MS = 3.0


@dataclass
class Configuration:
    """One way of serving, measured at the concurrency level and (where it has one) at concurrency 1."""

    name: str
    url: str
    load: LevelResult
    single: LevelResult | None = None


def clean_env() -> dict[str, str]:
    """This environment without the caller's DOCENT_ settings (a developer's provider must not change what
    runs), plus the bench's."""
    passed = {k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "OPENAI_", "OLLAMA_"))}
    return {**passed, **BENCH_ENV, "PYTHONUNBUFFERED": "1"}


def measure(
    name: str, url: str, args: argparse.Namespace, offset: int, pid: int | None, single: bool
) -> Configuration:
    """Warm up, then the concurrency level and (when `single`) concurrency 1 against url."""
    failed = asyncio.run(warm_up(url, NO_KEY, args.warmup, args.timeout))
    if failed:
        print(f"  {name}: {failed} of {args.warmup} warm-up requests failed")

    def level(concurrency: int, requests: int, at: int) -> LevelResult:
        return asyncio.run(
            run_level(
                url,
                NO_KEY,
                concurrency=concurrency,
                requests=requests,
                offset=at,
                same_thread=False,
                request_timeout=args.timeout,
                server_pid=pid,
            )
        )

    load = level(args.concurrency, args.requests, offset)
    report(name, load)
    one = level(1, args.c1_requests, offset + args.requests) if single else None
    if one is not None:
        report(name, one)
    return Configuration(name, url, load, one)


def report(name: str, result: LevelResult) -> None:
    """One line per level."""
    latency = result.latency
    print(
        f"  {name:<24} c={result.concurrency:<3} {result.throughput_rps:6.1f} req/s  "
        f"p50 {latency.p50_ms:7.1f}  p95 {latency.p95_ms:7.1f} ms  errors {result.errors}/{result.requests}"
    )
    for sample in result.error_samples:
        print(f"        error: {sample}")


@contextmanager
def cluster(work: Path, timeout: float) -> Iterator[local_cluster.State]:
    """A local cluster of two replicas with the bench's settings; always brought down."""
    state_dir = work / "cluster"
    try:
        with mock.patch.dict(os.environ, clean_env(), clear=True):
            state = local_cluster.up(state_dir, 2, "off", "own", timeout, lambda line: print(f"  {line}"))
        yield state
    finally:
        local_cluster.down(state_dir, keep=False, say=lambda _: None)


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a Docent process started with env reads (its DOCENT_ variables and the repo's .env)."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=REPO_ROOT / ".env")


def floor_of(settings: Settings, args: argparse.Namespace) -> FloorResult:
    return measure_floor(settings, repeats=args.floor_repeats, warmup=args.warmup, graph_turns=False)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Throughput of POST /invoke: embedded, one server-mode replica, two replicas behind nginx"
    )
    parser.add_argument(
        "--corpus",
        action="append",
        type=Path,
        metavar="PATH",
        help=f"file or directory to ingest (repeatable); default: {' and '.join(DEFAULT_CORPUS)}",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once (default 32)")
    parser.add_argument(
        "--requests", type=int, default=640, help="requests per configuration at --concurrency (default 640)"
    )
    parser.add_argument(
        "--c1-requests",
        type=int,
        default=100,
        help="requests at concurrency 1, for the overhead (default 100)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests first (default 10)")
    parser.add_argument("--floor-repeats", type=int, default=100, help="floor repetitions (default 100)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    parser.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="write all figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="data/sample, a few requests at concurrency 4 and 1: seconds"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.corpus = args.corpus or [Path(c) for c in SMOKE_CORPUS]
        args.concurrency, args.requests, args.c1_requests, args.warmup, args.floor_repeats = 4, 8, 4, 1, 4
    if min(args.concurrency, args.requests, args.c1_requests, args.floor_repeats) < 1 or args.warmup < 0:
        parser.error("--concurrency, --requests, --c1-requests and --floor-repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, measure, report; 0 when every request succeeded, 1 when some failed, 130 on Ctrl-C."""
    args = parse_args(argv)
    unwind_on_signals()  # the `finally` below stops what was started
    corpus, missing = resolved_corpus(args.corpus, DEFAULT_CORPUS)
    if missing:
        print(f"corpus path not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="docent-bench-cluster-"))
    try:
        return _run(args, corpus, work)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, corpus: list[Path], work: Path) -> int:
    cpus = os.cpu_count() or 1
    print("Docent cluster benchmark: POST /invoke, extractive answerer, auth off, no rate limit")
    print(
        f"machine    : {cpus} CPU(s), {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load avg {load_average()} at start"
    )
    print(
        f"run        : {args.requests} requests at c={args.concurrency} per configuration, "
        f"{args.c1_requests} at c=1, warm-up {args.warmup}, floor {args.floor_repeats} repeats, "
        f"corpus {', '.join(shown_path(p) for p in corpus)}"
    )

    configurations: list[Configuration] = []
    data_dir = work / "embedded"
    embedded_env = {**clean_env(), "DOCENT_DATA_DIR": str(data_dir)}
    seconds, summary = ingest(corpus, embedded_env)
    print(f"\nembedded   : ingested {summary.get('chunks_added')} chunks in {seconds:.1f}s")
    with docent_serving(embedded_env, work / "embedded.log", timeout=120) as (base, process):
        configurations.append(measure("embedded (1 process)", base, args, 0, process.pid, single=True))
    embedded_settings = settings_of(embedded_env)

    print("\nserver mode: deploy.local_cluster.up, 2 replicas")
    with cluster(work, 180) as state:
        cluster_env = {**clean_env(), **state.env}
        seconds, summary = ingest(corpus, cluster_env)
        print(f"  ingested {summary.get('chunks_added')} chunks into the shared stores in {seconds:.1f}s")
        api_1 = next(p for p in state.processes if p.name == "api-1")
        assert api_1.url and state.url
        configurations.append(measure("server mode, 1 replica", api_1.url, args, 0, api_1.pid, single=True))
        configurations.append(measure("2 replicas behind nginx", state.url, args, 0, None, single=False))
        server_settings = settings_of(cluster_env)
        print("\nfloors (in-process: embed one query + one vector query)")
        server_floor = floor_of(server_settings, args)
    embedded_floor = floor_of(embedded_settings, args)
    print(f"  embedded (embedded Chroma) p50 {embedded_floor.retrieve.p50_ms:.1f} ms")
    print(f"  server mode (Chroma server) p50 {server_floor.retrieve.p50_ms:.1f} ms")

    embedded, one, two = configurations
    speedup = two.load.throughput_rps / embedded.load.throughput_rps
    single_speedup = one.load.throughput_rps / embedded.load.throughput_rps
    assert embedded.single is not None and one.single is not None
    overhead = {
        "embedded_ms": embedded.single.latency.p50_ms - embedded_floor.retrieve.p50_ms,
        "server_mode_ms": one.single.latency.p50_ms - server_floor.retrieve.p50_ms,
    }
    overhead["difference_ms"] = overhead["server_mode_ms"] - overhead["embedded_ms"]
    errors = sum(c.load.errors + (c.single.errors if c.single else 0) for c in configurations)
    print("\nsummary")
    for c in configurations:
        print(
            f"  {c.name:<24} {c.load.throughput_rps:6.1f} req/s at c={args.concurrency}  "
            f"p50 {c.load.latency.p50_ms:7.1f}  p95 {c.load.latency.p95_ms:7.1f} ms  errors {c.load.errors}"
        )
    print(
        f"  two replicas / one embedded process: {speedup:.2f}x (goal >= {SPEEDUP_GOAL}x); "
        f"one server-mode replica / embedded: {single_speedup:.2f}x; errors {errors} (goal 0)"
    )
    print(
        f"  /invoke p50 over the floor at c=1: embedded {embedded.single.latency.p50_ms:.1f} - "
        f"{embedded_floor.retrieve.p50_ms:.1f} = {overhead['embedded_ms']:.1f} ms; server mode "
        f"{one.single.latency.p50_ms:.1f} - {server_floor.retrieve.p50_ms:.1f} = "
        f"{overhead['server_mode_ms']:.1f} ms; difference {overhead['difference_ms']:+.1f} ms "
        f"(goal within {OVERHEAD_GOAL_MS:g} ms)"
    )
    print(f"  load avg {load_average()} at the end (other processes on this machine skew every figure)")
    if args.json_out:
        figures = {
            "machine": {
                "cpu_count": cpus,
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "run": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "corpus"},
            "corpus": [str(p) for p in corpus],
            "configurations": [asdict(c) for c in configurations],
            "floors": {"embedded": asdict(embedded_floor), "server_mode": asdict(server_floor)},
            "speedup_two_replicas": speedup,
            "speedup_one_replica": single_speedup,
            "overhead_c1_p50": overhead,
            "errors": errors,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(figures, indent=2, allow_nan=True) + "\n")
        print(f"\nJSON written to {args.json_out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
