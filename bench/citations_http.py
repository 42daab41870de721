"""Do /invoke's citations name the gold? Every question of a set asked over real HTTP, with the defaults.

What it does: fills a data dir with `docent ingest` of the corpus (or reuses `--data-dir` when it already
holds chunks), starts `docent serve` (real uvicorn, auth and rate limits off, the configured answerer:
extractive without a model) on a free loopback port, asks each question on a new thread with POST /invoke,
and reports the share of answers whose `citations` name a gold document and a gold page (with
`gold_pages`), the share whose text cites nothing (`cited` on no citation), and the latency of the calls.
The server is always stopped. The benchmark prints figures and asserts nothing.

    .venv/bin/python bench/citations_http.py                       # FinanceBench, all 40 questions
    .venv/bin/python bench/citations_http.py --data-dir /tmp/fb --json /tmp/citations.json
    .venv/bin/python bench/citations_http.py --smoke               # two SQuAD pages, a few questions
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO_ROOT)

from bench.support.servers import docent_env, docent_server, run_docent  # noqa: E402
from core.types import TurnOutput  # noqa: E402
from evaluation.answers import JudgedAnswer, judge  # noqa: E402
from evaluation.dataset import GoldQuestion, load_questions, sample  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "eval"
FINANCEBENCH = SHARED / "financebench"
SQUAD = SHARED / "squad-dev"
SMOKE_DOCS = ("Amazon_rainforest", "Construction")


def judged_shares(judged: list[JudgedAnswer]) -> dict[str, float]:
    """The shares the report prints: citations naming a gold document / page, answers citing nothing."""
    shares = {
        "citations_name_gold_doc": [j.names_gold_doc for j in judged],
        "citations_name_gold_page": [j.names_gold_page for j in judged if j.names_gold_page is not None],
        "cites_nothing": [j.cited == 0 for j in judged],
    }
    return {name: round(sum(values) / len(values), 4) for name, values in shares.items() if values}


def ingest(corpus: list[Path], data_dir: Path, collection: str) -> None:
    """`docent ingest` of the corpus into data_dir (nothing new when it is already there)."""
    command = ["ingest", *map(str, corpus), "--collection", collection, "--json"]
    done = run_docent(command, docent_env(data_dir), timeout=3600)
    if done.returncode not in (
        0,
        1,
    ):  # 1: some source failed (its reason is in the JSON); the rest is searchable
        raise SystemExit(f"docent ingest failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    print(f"ingested {', '.join(map(str, corpus))} into {data_dir}", file=sys.stderr)


def ask_all(base: str, questions: list[GoldQuestion]) -> tuple[list[JudgedAnswer], list[float]]:
    """POST /invoke once per question, each on its own thread; each answer judged as `docent eval --answers`
    judges it (from its citations alone: the server's passages are not in the reply), and its latency."""
    judged: list[JudgedAnswer] = []
    latency_ms: list[float] = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for item in questions:
            started = time.perf_counter()
            reply = client.post("/invoke", json={"input": {"message": item.question}})
            latency_ms.append((time.perf_counter() - started) * 1000)
            reply.raise_for_status()
            judged.append(judge(item, cast(TurnOutput, reply.json()["output"]), contexts=[]))
    return judged, latency_ms


def main() -> None:
    """Ingest (or reuse), serve, ask, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--qa", type=Path, default=FINANCEBENCH / "qa.jsonl")
    parser.add_argument("--corpus", type=Path, default=FINANCEBENCH / "pdfs")
    parser.add_argument(
        "--data-dir", type=Path, help="ingest here, or reuse what is here (default: a temp dir)"
    )
    parser.add_argument("--collection", default="docent", help="ingest into and ask this collection")
    parser.add_argument("--limit", type=int, default=0, help="sampled questions (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, dest="json_out")
    parser.add_argument(
        "--smoke", action="store_true", help=f"SQuAD pages {', '.join(SMOKE_DOCS)}, 4 questions"
    )
    args = parser.parse_args()
    corpus = [args.corpus]
    questions = load_questions(args.qa)
    if args.smoke:
        corpus = [SQUAD / "corpus_html" / f"{doc}.html" for doc in SMOKE_DOCS]
        questions = [q for q in load_questions(SQUAD / "qa-dev.jsonl") if set(q.gold_docs) & set(SMOKE_DOCS)][
            :4
        ]
    questions = sample(questions, args.limit or None, args.seed)
    with tempfile.TemporaryDirectory(prefix="docent-citations-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        ingest(corpus, data_dir, args.collection)
        serve_env = {"DOCENT_COLLECTION": args.collection, "DOCENT_RATE_LIMIT_PER_MINUTE": "0"}
        with docent_server(data_dir, Path(tmp) / "serve.log", **serve_env) as base:
            judged, latency_ms = ask_all(base, questions)
    report: dict[str, Any] = {
        "qa": str(args.qa),
        "corpus": [str(c) for c in corpus],
        "questions": len(judged),
    }
    report.update(judged_shares(judged))
    report["latency_p50_ms"] = round(statistics.median(latency_ms), 1)
    for key, value in report.items():
        print(f"{key}: {value}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
