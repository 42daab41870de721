"""`docent` starts fast: help never imports the heavy libraries, and an unchanged re-ingest reads the source
records without opening Chroma or loading the embedding model (checked on the import log, not on a clock)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, SAMPLE_CORPUS, docent_env, run_docent

# What the console script runs (`from cli.main import main`), as a -c program so -X importtime can log it.
ENTRY_POINT = "import sys; from cli.main import main; sys.argv[0] = 'docent'; sys.exit(main())"
HEAVY = ("chromadb", "onnxruntime", "fastapi", "uvicorn", "langchain", "langgraph", "httpx", "pypdf", "bs4")
HEAVY_FOR_HELP = (*HEAVY, "numpy")


def _docent_imports(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `docent ARGS` under `python -X importtime`; the run and every module it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY_POINT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    modules = {
        line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    }
    modules.discard("package")  # the log's header line
    return done, modules


def _heavy(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    """The imported modules that belong to a heavy distribution (`langchain` covers langchain_*)."""
    return sorted(m for m in modules if m.split(".")[0].startswith(heavy))


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["ingest"],
        ["ask"],
        ["serve"],
        ["eval"],
        ["reindex"],
        ["sources"],
        ["sources", "list"],
        ["sources", "remove"],
        ["keys"],
        ["keys", "create"],
    ],
    ids=lambda command: " ".join(["docent", *command]),
)
def test_help_imports_none_of_the_heavy_libraries(command: list[str], tmp_path: Path) -> None:
    done, modules = _docent_imports([*command, "--help"], docent_env(tmp_path / "data"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage:" in done.stdout
    assert "typer" in modules  # the log is read right
    assert _heavy(modules, HEAVY_FOR_HELP) == []


def test_unchanged_reingest_opens_neither_chroma_nor_the_embedding_model(tmp_path: Path) -> None:
    corpus = shutil.copytree(SAMPLE_CORPUS, tmp_path / "corpus")
    env = docent_env(tmp_path / "data")
    first = run_docent(["ingest", str(corpus), "--json"], env)
    assert first.returncode == 0, first.stderr
    added = json.loads(first.stdout)["sources"]
    again, modules = _docent_imports(["ingest", str(corpus), "--json"], env)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout)
    assert summary["sources_unchanged"] == added == len(list(corpus.iterdir()))
    assert summary["chunks_added"] == 0
    assert "core.storage.sources" in modules  # the records were read
    assert _heavy(modules, HEAVY) == []  # no Chroma, no model, and nothing parsed, split or fetched


def test_eval_help_shows_the_runners_default_retrievers_and_cut_offs() -> None:
    from cli.eval import DEFAULT_CUT_OFFS, DEFAULT_RETRIEVERS
    from evaluation.runner import DEFAULT_KS, RETRIEVERS

    assert ",".join(RETRIEVERS) == DEFAULT_RETRIEVERS
    assert ",".join(map(str, DEFAULT_KS)) == DEFAULT_CUT_OFFS
