"""`docent eval`: paragraph- and document-level retrieval quality and search latency, per retriever mode."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import fail

if TYPE_CHECKING:  # the runner imports the stores and the graph's retrieval node: imported when eval runs
    from rich.console import Console
    from rich.table import Table

    from core.types import RetrieverMode
    from evaluation.dataset import FollowUpPair, GoldQuestion
    from evaluation.followups import FollowUpScore
    from evaluation.runner import EvalIndex, RetrieverScore

FOLLOW_UP_K = 5
TABLE_WIDTH = 120
# evaluation.runner's RETRIEVERS and DEFAULT_KS, spelled out so that `--help` need not import the runner.
DEFAULT_RETRIEVERS = "dense,bm25,hybrid"
DEFAULT_CUT_OFFS = "1,3,5,10"


def evaluate(
    qa: Annotated[
        Path | None, typer.Option("--qa", help="Questions with their gold paragraph or documents (JSONL).")
    ] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="Directory (or file) to ingest into a temporary store and search.")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Search this existing collection of the configured store instead.")
    ] = None,
    followups: Annotated[
        Path | None,
        typer.Option(help="Follow-up pairs (JSONL: first, follow_up, doc_id, para_id): bare vs built query."),
    ] = None,
    retrievers: Annotated[str, typer.Option(help="Retriever modes, comma-separated.")] = DEFAULT_RETRIEVERS,
    k: Annotated[str, typer.Option("--k", help="Cut-offs of hit@k, comma-separated.")] = DEFAULT_CUT_OFFS,
    limit: Annotated[int | None, typer.Option(min=1, help="Score a random sample of N questions.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
    chunk_size: Annotated[
        int | None, typer.Option(help="Chunk size for --corpus (default: DOCENT_CHUNK_SIZE).")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Chunk overlap for --corpus (default: DOCENT_CHUNK_OVERLAP).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
) -> None:
    """Measure retrieval quality and search latency, per retriever.

    Paragraph hit@k, MRR@10, document hit@5, page hit@5 (with gold_pages) and search
    latency p50/p95, over --corpus DIR (ingested into a temporary store) or
    --collection NAME (of the configured store).

    \b
    --qa FILE is JSONL, one question a line, with its gold paragraph or only its
    gold documents:
      {"question": "…", "doc_id": "Black_Death", "para_id": "Black_Death#p3",
       "answers": ["…"]}
        a chunk is a hit when it overlaps <p id="p3"> of Black_Death.html;
        answers are optional.
      {"question": "…", "gold_docs": ["energy_savers.pdf"]}
        document gold only (e.g. PDF corpora): scored by document hit@k and
        MRR@10.
      {"question": "…", "gold_docs": ["ADOBE_2022_10K.pdf"],
       "gold_pages": [{"doc": "ADOBE_2022_10K.pdf", "page": 54}]}
        also page hit@5: a chunk of one of the 1-based gold pages.
    """
    from pydantic import ValidationError
    from rich.console import Console

    from core.retrieval.vector_store import CollectionError
    from core.settings import get_settings
    from evaluation.dataset import DatasetError, load_followups, load_questions, sample
    from evaluation.options import parse_ints, parse_retrievers
    from evaluation.runner import existing_index, temporary_index

    err = Console(stderr=True)
    try:
        ks = parse_ints(k)
        modes = parse_retrievers(retrievers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if qa is None and followups is None:
        raise typer.BadParameter("give --qa FILE, --followups FILE or both")
    if (corpus is None) == (collection is None):
        raise typer.BadParameter("give exactly one of --corpus DIR and --collection NAME")
    settings = get_settings()
    chunking = {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}
    overrides = {name: value for name, value in chunking.items() if value is not None}
    if collection is not None and overrides:
        raise typer.BadParameter("--chunk-size and --chunk-overlap apply to --corpus only")
    if (chunk_overlap or settings.chunk_overlap) > (chunk_size or settings.chunk_size) // 2:
        raise typer.BadParameter(
            "the chunk overlap can be at most half the chunk size (the splitter caps it)"
        )
    try:
        questions = sample(load_questions(qa), limit, seed) if qa is not None else []
        pairs = load_followups(followups) if followups is not None else []
    except DatasetError as exc:
        fail(exc)

    report: dict[str, Any] = {"qa": str(qa) if qa else None, "questions": len(questions), "limit": limit}
    report.update(seed=seed, ks=list(ks), followups_file=str(followups) if followups else None)
    try:
        if collection is not None:
            opened = existing_index(settings, collection)
        else:
            err.print(f"ingesting {corpus} into a temporary store…", markup=False, highlight=False)
            opened = temporary_index([str(corpus)], settings, **overrides)
        with opened as index:
            report.update(_describe(index, corpus))
            if index.ingest is not None:
                _print_ingest(err, index)
            scores, follow = _score(err, index, questions, pairs, modes, ks)
    except (CollectionError, ValidationError) as exc:
        fail(exc)
    report["retrievers"] = [score.to_dict() for score in scores]
    report["followups"] = [score.to_dict() for score in follow]
    console = Console()
    if not console.is_terminal:
        console = Console(width=TABLE_WIDTH)  # a pipe or a log gets whole tables
    if scores:
        console.print(_score_table(scores, report))
    if follow:
        console.print(_followup_table(follow, report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        err.print(f"figures written to {json_out}", markup=False, highlight=False)


def _score(
    err: Console,
    index: EvalIndex,
    questions: Sequence[GoldQuestion],
    pairs: Sequence[FollowUpPair],
    modes: Sequence[RetrieverMode],
    ks: Sequence[int],
) -> tuple[list[RetrieverScore], list[FollowUpScore]]:
    """Every retriever mode on the questions, then on the follow-up pairs."""
    from evaluation.followups import score_followups
    from evaluation.runner import score_retriever

    scores: list[RetrieverScore] = []
    follow: list[FollowUpScore] = []
    history = index.settings.history_turns
    for mode in modes:
        with err.status(f"scoring {mode}"):
            if questions:
                scores.append(
                    score_retriever(index.searcher, questions, mode=mode, collection=index.collection, ks=ks)
                )
            if pairs:
                follow_ks = sorted({*ks, FOLLOW_UP_K})
                follow.append(score_followups(index, pairs, mode=mode, history_turns=history, ks=follow_ks))
    return scores, follow


def _print_ingest(err: Console, index: EvalIndex) -> None:
    """One line for the ingestion, one per failed source; nothing to search is an error."""
    from rich.text import Text

    assert index.ingest is not None
    summary = index.ingest
    err.print(
        f"ingested {summary.sources} sources, {index.chunks} chunks in {summary.seconds:.1f}s",
        markup=False,
        highlight=False,
    )
    for problem in summary.failures:
        err.print(Text.assemble(("failed", "red"), f" {problem.source}: {problem.reason}"), highlight=False)
    if not index.chunks:
        fail("no chunks were ingested: nothing to search")


def _describe(index: EvalIndex, corpus: Path | None) -> dict[str, Any]:
    """What was searched: the corpus and how it was chunked, or the named collection."""
    described: dict[str, Any] = {"corpus": str(corpus) if corpus else None, "collection": index.collection}
    if index.ingest is not None:
        described.update(
            chunk_size=index.settings.chunk_size,
            chunk_overlap=index.settings.chunk_overlap,
            chunks=index.chunks,
            ingest=index.ingest.to_dict(),
        )
    return described


def _score_table(scores: Sequence[RetrieverScore], report: dict[str, Any]) -> Table:
    from rich.table import Table

    from evaluation.runner import DOC_K

    first = scores[0]
    table = Table(title=_title(f"{first.questions} questions", report), title_justify="left")
    table.add_column("retriever", no_wrap=True)
    paragraph = first.hit_at is not None
    cut_offs = list(first.hit_at or first.doc_hit_at)
    for cut in cut_offs:
        table.add_column(f"hit@{cut}" if paragraph else f"doc hit@{cut}", justify="right", no_wrap=True)
    table.add_column("MRR@10" if paragraph else "doc MRR@10", justify="right", no_wrap=True)
    if paragraph:
        table.add_column(f"doc hit@{DOC_K}", justify="right", no_wrap=True)
    pages = first.page_hit_at is not None
    if pages:
        table.add_column(f"page hit@{DOC_K}", justify="right", no_wrap=True)
    table.add_column("p50 ms", justify="right", no_wrap=True)
    table.add_column("p95 ms", justify="right", no_wrap=True)
    for score in scores:
        row = [score.retriever]
        if score.hit_at is not None and score.mrr_at_10 is not None:
            row += [f"{score.hit_at[cut]:.3f}" for cut in cut_offs]
            row += [f"{score.mrr_at_10:.3f}", f"{score.doc_hit_at[DOC_K]:.3f}"]
        else:
            row += [f"{score.doc_hit_at[cut]:.3f}" for cut in cut_offs] + [f"{score.doc_mrr_at_10:.3f}"]
        if pages:
            row.append(f"{score.page_hit_at[DOC_K]:.3f}" if score.page_hit_at else "-")
        table.add_row(*row, f"{score.latency_p50_ms:.1f}", f"{score.latency_p95_ms:.1f}")
    if paragraph and first.paragraph_questions < first.questions:
        table.caption = f"paragraph figures over the {first.paragraph_questions} questions with a para_id"
    if pages and first.page_questions < first.questions:
        note = f"page figures over the {first.page_questions} questions with gold_pages"
        table.caption = f"{table.caption}; {note}" if table.caption else note
    return table


def _followup_table(scores: Sequence[FollowUpScore], report: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=_title("Follow-ups, bare vs built query", report), title_justify="left")
    table.add_column("retriever", no_wrap=True)
    for header in ("pairs", "recognised", f"bare hit@{FOLLOW_UP_K}", f"built hit@{FOLLOW_UP_K}"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("bare MRR@10", justify="right", no_wrap=True)
    table.add_column("built MRR@10", justify="right", no_wrap=True)
    for score in scores:
        bare, built = score.bare, score.built
        assert bare.hit_at is not None and built.hit_at is not None
        table.add_row(
            score.retriever,
            str(score.pairs),
            str(score.flagged),
            f"{bare.hit_at[FOLLOW_UP_K]:.3f}",
            f"{built.hit_at[FOLLOW_UP_K]:.3f}",
            f"{bare.mrr_at_10 or 0:.3f}",
            f"{built.mrr_at_10 or 0:.3f}",
        )
    return table


def _title(what: str, report: dict[str, Any]) -> str:
    if report.get("chunks") is None:
        return f"{what}, collection {report['collection']!r}"
    return (
        f"{what}, {report['chunks']} chunks (size {report['chunk_size']}, overlap {report['chunk_overlap']})"
    )
