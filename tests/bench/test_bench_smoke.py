"""Benchmarks do not rot: every bench/*.py runs its `--smoke` mode (seconds, tiny input) and exits 0.

The smokes check that each bench still works end to end; they assert nothing about its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.support.servers import REPO_ROOT

BENCH = REPO_ROOT / "bench"
# Modules of bench/ that are not benches.
NOT_BENCHES = {"__init__.py"}
# Benches that need an optional extra: the module to import, and why it is missing.
NEEDS = {
    "stream.py": ("llama_cpp", "bench/stream.py serves SmolLM2 with llama-cpp-python: the `local` extra"),
}
# Benches that read evaluation data from ../shared (never copied into the repo): skipped without it.
NEEDS_DATA = {
    "extraction.py": REPO_ROOT.parent / "shared" / "eval" / "article-extraction" / "ground-truth.json",
    "extractive_answers.py": REPO_ROOT.parent / "shared" / "eval" / "squad-dev" / "qa-dev.jsonl",
    "citation_support.py": REPO_ROOT.parent / "shared" / "eval" / "squad-dev" / "qa-dev.jsonl",
    "fusion_grid.py": REPO_ROOT.parent / "shared" / "eval" / "squad-dev" / "qa-dev.jsonl",
    "citations_http.py": REPO_ROOT.parent / "shared" / "eval" / "squad-dev" / "qa-dev.jsonl",
}
SMOKE_TIMEOUT_S = 240


def benches() -> list[Path]:
    """Every bench script, by name."""
    return sorted(path for path in BENCH.glob("*.py") if path.name not in NOT_BENCHES)


def test_bench_folder_has_the_known_benches() -> None:
    """Discovery finds the benches (a moved folder would otherwise pass with zero smokes)."""
    names = {path.name for path in benches()}
    assert {"embed.py", "ingest.py", "invoke.py", "retrieval_grid.py", "schemathesis_run.py"} <= names
    assert "cluster.py" in names  # server mode on a local cluster (docs/cluster.md#benchmarks)
    assert "ocr.py" in names  # Tesseract against RapidOCR on rendered pages (docs/documents.md)


@pytest.mark.timeout(SMOKE_TIMEOUT_S + 30)
@pytest.mark.parametrize("bench", benches(), ids=lambda path: path.stem)
def test_bench_smoke_mode_exits_0(bench: Path) -> None:
    if bench.name in NEEDS:
        module, reason = NEEDS[bench.name]
        pytest.importorskip(module, reason=f"{reason} is not installed")
    if bench.name in NEEDS_DATA and not NEEDS_DATA[bench.name].exists():
        pytest.skip(f"{NEEDS_DATA[bench.name]} is absent (../shared)")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(bench.relative_to(REPO_ROOT)), "--smoke"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    output = f"--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-6000:]}"
    assert done.returncode == 0, f"{bench.name} --smoke exited {done.returncode}\n{output}"
    assert done.stdout.strip(), f"{bench.name} --smoke reported no figures\n{output}"
    print(f"{bench.name} --smoke: {time.monotonic() - started:.1f}s")


@pytest.mark.timeout(2 * SMOKE_TIMEOUT_S + 30)
def test_invoke_baseline_ref_measures_the_ref_too_and_removes_its_worktree(tmp_path: Path) -> None:
    """`bench/invoke.py --smoke --baseline-ref HEAD`: HEAD's own bench runs in a git worktree, its report and
    the ratios land in the JSON, and the worktree is gone afterwards."""
    out = tmp_path / "invoke.json"
    done = subprocess.run(
        [sys.executable, "bench/invoke.py", "--smoke", "--baseline-ref", "HEAD", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=2 * SMOKE_TIMEOUT_S,
        check=False,
    )
    output = f"--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-6000:]}"
    assert done.returncode == 0, output
    report = json.loads(out.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert report["baseline"]["git"] == {"ref": "HEAD", "commit": head.stdout.strip()}
    assert [level["concurrency"] for level in report["baseline"]["http"]] == [1, 2], output
    vs = report["vs_baseline"]
    assert vs["c1_p50_ms"]["ratio"] > 0 and vs["floor_p50_ms"]["ratio"] > 0, vs
    assert set(vs["throughput_rps"]) == set(vs["server_cpu_ms_per_request"]) == {"1", "2"}, vs
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "docent-bench-" not in worktrees.stdout, worktrees.stdout
