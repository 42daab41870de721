"""CLI start-up: wall time of `python -c pass` (the floor), `docent --help`, and an unchanged re-ingest of a
corpus into a temporary data dir (ingested once first), each run as a subprocess of the venv's binaries.

Usage: .venv/bin/python bench/cli_start.py [--runs 10] [--corpus data/sample] [--json OUT]
       .venv/bin/python bench/cli_start.py --smoke    # one file of data/sample, one run each: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path: the repo root takes its place (so bench.support imports).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.support.servers import REPO_ROOT, SAMPLE_CORPUS, VENV_BIN, docent_env  # noqa: E402

SMOKE_CORPUS = SAMPLE_CORPUS / "composting-basics.html"


@dataclass(frozen=True)
class Timing:
    """Wall seconds of one command over several runs."""

    name: str
    command: list[str]
    median_s: float
    min_s: float
    runs_s: list[float]


class BenchError(RuntimeError):
    """A timed command failed or did not do what is being timed."""


def run(command: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command to the end; its wall seconds and stdout (a failure raises BenchError)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def check_unchanged(stdout: str) -> None:
    """A re-ingest that ingested anything is not the run being timed."""
    summary = json.loads(stdout)
    if summary["failures"] or summary["chunks_added"] or summary["sources_unchanged"] != summary["sources"]:
        raise BenchError(f"the re-ingest was not unchanged: {stdout[-2000:]}")


def time_command(
    name: str, command: list[str], env: dict[str, str], runs: int, warmup: int, *, reingest: bool = False
) -> Timing:
    """Median and minimum wall time of `runs` runs, after `warmup` untimed ones."""
    seconds: list[float] = []
    for index in range(warmup + runs):
        elapsed, stdout = run(command, env)
        if reingest:
            check_unchanged(stdout)
        if index >= warmup:
            seconds.append(round(elapsed, 4))
    return Timing(name, command, round(statistics.median(seconds), 4), min(seconds), seconds)


def measure(corpus: Path, runs: int, warmup: int) -> list[Timing]:
    """The three timings; the re-ingest goes to a temporary data dir, filled by one ingest first."""
    python, docent = str(VENV_BIN / "python"), str(VENV_BIN / "docent")
    if not Path(docent).exists():
        raise BenchError(f"no {docent}: install the project into the venv (pip install -e .)")
    ingest = [docent, "ingest", str(corpus), "--json"]
    with tempfile.TemporaryDirectory(prefix="docent-cli-start-") as tmp:
        env = docent_env(Path(tmp) / "data")
        filled, _ = run(ingest, env)
        print(f"first ingest of {corpus} (loads the model): {filled:.2f}s", file=sys.stderr)
        return [
            time_command("python -c pass", [python, "-c", "pass"], env, runs, warmup),
            time_command("docent --help", [docent, "--help"], env, runs, warmup),
            time_command("docent ingest (unchanged)", ingest, env, runs, warmup, reingest=True),
        ]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (a busy machine inflates every figure)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    """Time the commands; print a table and, with --json, write every run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS, help="what to re-ingest")
    parser.add_argument("--json", type=Path, dest="json_out", help="write the figures to this file")
    parser.add_argument("--smoke", action="store_true", help="one file of data/sample, one run each")
    args = parser.parse_args(argv)
    runs, warmup, corpus = (1, 0, SMOKE_CORPUS) if args.smoke else (max(1, args.runs), 1, args.corpus)
    before = loadavg()
    try:
        timings = measure(corpus.resolve(), runs, warmup)
    except (BenchError, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    after = loadavg()
    print(f"cpus={os.cpu_count()} runs={runs} loadavg before={before} after={after} corpus={corpus}")
    print(f"{'command':<28}{'median s':>10}{'min s':>10}")
    for timing in timings:
        print(f"{timing.name:<28}{timing.median_s:>10.3f}{timing.min_s:>10.3f}")
    if args.json_out is not None:
        report: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "runs": runs,
            "corpus": str(corpus),
            "loadavg": {"before": before, "after": after},
            "timings": [asdict(t) for t in timings],
        }
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
