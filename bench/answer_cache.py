"""The answer cache (core/answering/cache.py): its similarity threshold on SQuAD paraphrases, and the time
of a hit against a miss.

1. Threshold. From the SQuAD dev questions (`--squad`, default ../shared/eval/squad-dev/qa-dev.jsonl),
   evaluation/paraphrases.py builds one case per paragraph with two or more questions: its first question is
   cached, two rule-made paraphrases of it should hit it, and the paragraph's other questions should hit
   nothing. Every text is embedded with the offline query embedder (ONNX MiniLM, as a turn does) and looked up
   in the in-memory store over all cached questions; hit rate and precision per threshold (docs/cache.md).
   Skipped when the file is absent.
2. Latency, in process: the sample corpus ingested into a temporary data dir, `open_docent` as the server
   opens it (extractive answerer, DOCENT_CACHE on), and for each of a few questions one turn that misses
   (the graph runs, its answer is kept), then turns on new threads with paraphrases never embedded before,
   which hit, then the questions again word for word (their vectors already in the query embedder's cache).
   `run_turn` time of each (what the server spends inside the turn; the route adds its checks), and of the
   lookup alone.
3. Latency over HTTP: the same questions and as many new paraphrases sent as POST /invoke to `docent serve`
   (real uvicorn, API keys on, the cache on) on a loopback port; the server's time of each (its access log's
   `duration_ms`) and the client's.

Usage: .venv/bin/python bench/answer_cache.py [--paragraphs N] [--json OUT]
       .venv/bin/python bench/answer_cache.py --smoke    # 40 paragraphs, 2 questions: does it work at all?
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place (see retrieval_grid.py).
sys.path[0] = str(REPO_ROOT)

from bench.support.machine import load_average  # noqa: E402
from bench.support.servers import SAMPLE_CORPUS  # noqa: E402
from core.answering.cache import MemoryAnswerStore, StoredAnswer, same_ask  # noqa: E402
from core.retrieval.query_embedder import QueryEmbedder  # noqa: E402
from core.services import Services  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import AnswerFields  # noqa: E402
from evaluation.paraphrases import cache_cases, paraphrase, score  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "eval" / "squad-dev" / "qa-dev.jsonl"
THRESHOLDS = [round(0.80 + 0.01 * n, 2) for n in range(20)]
SAMPLE_QUESTIONS = (
    "What temperature should a hot compost pile reach?",
    "How much do red wigglers eat per day?",
    "How do I fix a smelly compost pile?",
    "What is bokashi?",
    "How often should a hot compost pile be turned?",
    "What bedding do red wigglers need?",
)
_EMPTY = AnswerFields(answer="", citations=[], model="", degraded=False)


def measure_threshold(
    path: Path, paragraphs: int | None, embedder: QueryEmbedder, word_check: bool = True
) -> dict[str, Any]:
    """Hit rate and precision per threshold over the paraphrase cases of `path` (`word_check`: with the
    cache's check of question words and numbers, as it serves)."""
    cases = cache_cases(path, paragraphs=paragraphs)
    cached = [c.cached for c in cases]
    positives = [(n, p.text) for n, c in enumerate(cases) for p in c.paraphrases]
    others = [q for c in cases for q in c.others]
    started = time.perf_counter()
    vectors = embedder.embed([*cached, *(t for _, t in positives), *others])
    embed_s = time.perf_counter() - started
    store = MemoryAnswerStore(len(cached) + 1)
    for n, question in enumerate(cached):
        store.put("squad", vectors[n], StoredAnswer(question, {**_EMPTY, "answer": str(n)}, time.time()))
    positive_scores: list[tuple[float, bool, bool]] = []
    for offset, (n, text) in enumerate(positives):
        found = store.nearest("squad", vectors[len(cached) + offset])
        assert found is not None
        ok = same_ask(text, found[1].question) or not word_check
        positive_scores.append((found[0], found[1].answer["answer"] == str(n), ok))
    base = len(cached) + len(positives)
    other_scores: list[tuple[float, bool]] = []
    for offset, text in enumerate(others):
        found = store.nearest("squad", vectors[base + offset])
        assert found is not None
        other_scores.append((found[0], same_ask(text, found[1].question) or not word_check))
    rows = [vars(s) for s in score(positive_scores, other_scores, THRESHOLDS)]
    return {
        "file": str(path),
        "cached_questions": len(cached),
        "paraphrases": len(positives),
        "other_questions": len(others),
        "embed_s": round(embed_s, 1),
        "word_check": word_check,
        "by_threshold": rows,
    }


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": _p(values, 0.95),
        "mean_ms": round(statistics.fmean(values), 2),
    }


def new_paraphrases(question: str, wanted: int, pick: random.Random, seen: set[str]) -> list[str]:
    """Up to `wanted` paraphrases of a question, none of them (nor the question) in `seen` (lowercased),
    which then holds them all."""
    seen.add(question.lower())
    made: list[str] = []
    for _attempt in range(wanted * 20):
        if len(made) == wanted:
            break
        text = paraphrase(question, pick).text
        if text.lower() not in seen:
            seen.add(text.lower())
            made.append(text)
    return made


async def measure_latency(questions: Sequence[str], per_question: int, settings: Settings) -> dict[str, Any]:
    """run_turn milliseconds of misses and of hits (paraphrases never embedded before), and of lookups."""
    from graph.build import open_docent
    from graph.turn import run_turn
    from ingest.pipeline import Ingestor

    services = Services(settings)
    summary = await asyncio.to_thread(
        Ingestor(settings, services.embedder, services.store).run, [str(SAMPLE_CORPUS)]
    )
    assert not summary.failures, summary.failures
    misses: list[float] = []
    hits: list[float] = []
    lookups: list[float] = []
    repeats: list[float] = []
    not_hit: list[str] = []
    seen: set[str] = set()
    async with open_docent(settings, services) as docent:
        cache = docent.services.answer_cache
        assert cache is not None, "DOCENT_CACHE is off"
        for warm in ("How hot does compost get?", "What do worms eat?"):  # first calls load and warm things
            await run_turn(docent.graph, warm, cache=cache)
        pick = random.Random(0)
        for question in questions:
            started = time.perf_counter()
            first = await run_turn(docent.graph, question, cache=cache)
            misses.append((time.perf_counter() - started) * 1000)
            assert not first.output["cached"], question
            for text in new_paraphrases(question, per_question, pick, seen):
                started = time.perf_counter()
                result = await run_turn(docent.graph, text, cache=cache)
                elapsed = (time.perf_counter() - started) * 1000
                if result.output["cached"]:
                    hits.append(elapsed)
                    assert result.output["answer"] == first.output["answer"]
                else:
                    not_hit.append(text)
        for question in questions:  # exact repeats: the question's vector is in the query embedder's cache
            started = time.perf_counter()
            repeated = await run_turn(docent.graph, question, cache=cache)
            repeats.append((time.perf_counter() - started) * 1000)
            assert repeated.output["cached"], question
        for question in questions:  # the lookup alone, on texts not embedded before
            text = f"Please answer: {question}"
            started = time.perf_counter()
            await asyncio.to_thread(cache.probe, text, _context())
            lookups.append((time.perf_counter() - started) * 1000)
    return {
        "questions": len(questions),
        "miss_turn": _stats(misses),
        "hit_turn": _stats(hits) if hits else None,
        "repeat_hit_turn": _stats(repeats),
        "lookup": _stats(lookups),
        "paraphrases_not_hit": not_hit,
    }


def measure_http(questions: Sequence[str], per_question: int, tmp: Path) -> dict[str, Any]:
    """Milliseconds of POST /invoke against `docent serve` (real uvicorn, API keys on, the sample corpus, the
    cache on): each question once (a miss), then paraphrases of it never sent before, which the cache
    serves. Both the client's time and the server's own (the `duration_ms` its access log gives each
    request, from the first byte in to the last out)."""
    import httpx

    from bench.support.servers import create_key, docent_server, ingest_sample

    data_dir = ingest_sample(tmp / "http-data")
    key = create_key(data_dir, "cache-bench")
    sent: list[tuple[str, float]] = []  # ("warm" | "miss" | "hit" | "not hit", client ms), in order
    not_hit: list[str] = []
    pick = random.Random(1)
    seen: set[str] = set()
    env = {
        "DOCENT_AUTH": "on",
        "DOCENT_CACHE": "on",
        "DOCENT_LLM_PROVIDER": "extractive",
        "DOCENT_RATE_LIMIT_PER_MINUTE": "0",
        "DOCENT_LOG_FORMAT": "json",
    }
    headers = {"Authorization": f"Bearer {key}"}
    log = tmp / "http-server.log"
    with (
        docent_server(data_dir, log, **env) as base,
        httpx.Client(base_url=base, headers=headers, timeout=60) as client,
    ):

        def ask(text: str) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            reply = client.post("/invoke", json={"input": {"message": text}})
            elapsed = (time.perf_counter() - started) * 1000
            reply.raise_for_status()
            output: dict[str, Any] = reply.json()["output"]
            return elapsed, output

        for warm in ("How hot does compost get?", "What do worms eat?"):
            sent.append(("warm", ask(warm)[0]))
        for question in questions:
            elapsed, first = ask(question)
            sent.append(("miss", elapsed))
            for text in new_paraphrases(question, per_question, pick, seen):
                elapsed, output = ask(text)
                sent.append(("hit" if output["cached"] else "not hit", elapsed))
                if output["cached"]:
                    assert output["answer"] == first["answer"]
                else:
                    not_hit.append(text)
    served = _invoke_durations(log)
    assert len(served) == len(sent), f"{len(served)} /invoke lines in the server log for {len(sent)} requests"
    report: dict[str, Any] = {"paraphrases_not_hit": not_hit}
    for kind in ("miss", "hit"):
        client_ms = [ms for (k, ms) in sent if k == kind]
        server_ms = [ms for (k, _), ms in zip(sent, served, strict=True) if k == kind]
        report[f"{kind}_invoke_client"] = _stats(client_ms) if client_ms else None
        report[f"{kind}_invoke_server"] = _stats(server_ms) if server_ms else None
    return report


def _invoke_durations(log: Path) -> list[float]:
    """The `duration_ms` of each POST /invoke in a server log of JSON lines, in order."""
    durations: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("path") == "/invoke" and entry.get("method") == "POST" and "duration_ms" in entry:
            durations.append(float(entry["duration_ms"]))
    return durations


def _context() -> Any:
    from core.types import DocentContext

    return DocentContext()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD-style JSONL (question, para_id)")
    parser.add_argument(
        "--paragraphs", type=int, default=None, help="cases (paragraphs) at most; default all"
    )
    parser.add_argument("--per-question", type=int, default=8, help="paraphrase turns per sample question")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--smoke", action="store_true", help="40 paragraphs and 2 questions")
    args = parser.parse_args()
    if args.smoke:
        args.paragraphs, args.per_question = 40, 2
    report: dict[str, Any] = {"load_average_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="docent-cache-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", llm_provider="extractive", cache="on")
        services = Services(settings)
        try:
            if args.squad.exists():
                embedder = services.query_embedder
                report["threshold"] = measure_threshold(args.squad, args.paragraphs, embedder)
                report["threshold_without_word_check"] = measure_threshold(
                    args.squad, args.paragraphs, embedder, word_check=False
                )
            else:
                print(f"{args.squad} is absent: threshold part skipped")
        finally:
            services.close()
        questions = SAMPLE_QUESTIONS[:2] if args.smoke else SAMPLE_QUESTIONS
        report["latency"] = asyncio.run(measure_latency(questions, args.per_question, settings))
        report["http"] = measure_http(questions, args.per_question, Path(tmp))
    report["load_average_after"] = load_average()
    report["threshold_setting"] = Settings().cache_threshold
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _print(report: dict[str, Any]) -> None:
    for part in ("threshold", "threshold_without_word_check"):
        if (threshold := report.get(part)) is not None:
            _print_threshold(part, threshold)
    latency = report["latency"]
    print(f"latency (run_turn, ms), DOCENT_CACHE_THRESHOLD={report['threshold_setting']}:")
    for name in ("miss_turn", "hit_turn", "repeat_hit_turn", "lookup"):
        print(f"  {name}: {latency[name]}")
    if latency["paraphrases_not_hit"]:
        print(f"  paraphrases that missed: {latency['paraphrases_not_hit']}")
    http = report["http"]
    print("POST /invoke over loopback HTTP, keys on (ms; server: its access log's duration_ms):")
    for name in ("miss_invoke_server", "hit_invoke_server", "miss_invoke_client", "hit_invoke_client"):
        print(f"  {name}: {http[name]}")
    if http["paraphrases_not_hit"]:
        print(f"  paraphrases that missed: {http['paraphrases_not_hit']}")
    print(f"load average: {report['load_average_before']} -> {report['load_average_after']}")


def _print_threshold(part: str, threshold: dict[str, Any]) -> None:
    print(
        f"{part}: {threshold['cached_questions']} cached questions, {threshold['paraphrases']} paraphrases,"
        f" {threshold['other_questions']} other questions of the same paragraphs"
    )
    print("threshold  hit rate  precision  right  wrong  other questions hit")
    for row in threshold["by_threshold"]:
        print(
            f"{row['threshold']:9.2f}  {row['hit_rate']:8.3f}  {row['precision']:9.3f}"
            f"  {row['right_hits']:5d}  {row['wrong_hits']:5d}  {row['other_hit_rate']:.3f}"
        )


if __name__ == "__main__":
    main()
