"""`docent eval`: paragraph-, document- and page-level retrieval quality and search latency per retriever
mode, and with `--answers` the graph's answers, on one or several question sets each with its own corpus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import fail

if TYPE_CHECKING:  # the runner imports the stores and the graph's retrieval node: imported when eval runs
    from contextlib import AbstractContextManager

    from rich.console import Console
    from rich.table import Table

    from core.retrieval.filters import SearchFilter
    from core.settings import Settings
    from core.types import RetrieverMode
    from evaluation.answers import AnswerScore
    from evaluation.corpora import CorpusRun, MeanScore
    from evaluation.dataset import FollowUpPair, GoldQuestion
    from evaluation.followups import FollowUpScore
    from evaluation.runner import EvalIndex, RetrieverScore

FOLLOW_UP_K = 5
TABLE_WIDTH = 120
# evaluation.runner's RETRIEVERS and DEFAULT_KS, spelled out so that `--help` need not import the runner.
DEFAULT_RETRIEVERS = "dense,bm25,hybrid"
DEFAULT_CUT_OFFS = "1,3,5,10"

Target = tuple[Path | None, str | None]
"""What one question set is searched in: a corpus to ingest, or a named collection."""


def evaluate(
    qa: Annotated[
        list[Path] | None,
        typer.Option(
            "--qa",
            help="Questions with their gold paragraph, documents or pages (JSONL); one per corpus.",
        ),
    ] = None,
    corpus: Annotated[
        list[Path] | None,
        typer.Option(
            help="Directory (or file) to ingest into a temporary store and search; the n-th goes with the "
            "n-th --qa."
        ),
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option(help="Search this existing collection of the configured store instead (repeatable)."),
    ] = None,
    followups: Annotated[
        Path | None,
        typer.Option(help="Follow-up pairs (JSONL: first, follow_up, doc_id, para_id): bare vs built query."),
    ] = None,
    retrievers: Annotated[str, typer.Option(help="Retriever modes, comma-separated.")] = DEFAULT_RETRIEVERS,
    k: Annotated[str, typer.Option("--k", help="Cut-offs of hit@k, comma-separated.")] = DEFAULT_CUT_OFFS,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Score a random sample of N questions of each --qa.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="Search only matching chunks, as docent ask --filter: key=value pairs, comma-separated or"
            " repeated, e.g. kind=pdf,page=1-20.",
        ),
    ] = None,
    answers: Annotated[
        bool,
        typer.Option(
            "--answers",
            help="Also answer each question with the whole graph and score answers and citations.",
        ),
    ] = False,
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
    """Measure retrieval quality and search latency per retriever, and optionally the answers.

    Paragraph hit@k and MRR@10, document hit@k and MRR@10, page hit@5 and MRR@10
    (with gold_pages) and search latency p50/p95, over --corpus DIR (ingested into
    a temporary store) or --collection NAME (of the configured store). Several
    --qa/--corpus pairs, given in order, print one table per corpus and then their
    mean per retriever. --answers asks every question through the graph (the
    configured answerer, retriever and k; a new thread each) and scores exact
    match, token F1, contains-gold and the citations.

    \b
    --qa FILE is JSONL, one question a line, with its gold paragraph or only its
    gold documents:
      {"question": "…", "doc_id": "Black_Death", "para_id": "Black_Death#p3",
       "answers": ["…"]}
        a chunk is a hit when it overlaps <p id="p3"> of Black_Death.html;
        answers are optional (--answers scores against them).
      {"question": "…", "gold_docs": ["energy_savers.pdf"]}
        document gold only (e.g. PDF corpora): scored by document hit@k and
        MRR@10.
      {"question": "…", "gold_docs": ["ADOBE_2022_10K.pdf"],
       "gold_pages": [{"doc": "ADOBE_2022_10K.pdf", "page": 54}]}
        also page hit@5 and MRR@10: a chunk of one of the 1-based gold pages.
    """
    from pydantic import ValidationError
    from rich.console import Console

    from core.retrieval.vector_store import CollectionError
    from core.settings import get_settings
    from evaluation.corpora import CorpusRun
    from evaluation.dataset import DatasetError, load_followups, load_questions, sample
    from evaluation.options import parse_ints, parse_retrievers

    err = Console(stderr=True)
    try:
        ks = parse_ints(k)
        modes = parse_retrievers(retrievers)
        filter_text = ",".join(filters) if filters else None
        where = _parse_filter(filter_text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    qa_files = qa or []
    targets = _targets(qa_files, corpus or [], collection or [], followups, answers)
    settings = get_settings()
    chunking = {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}
    overrides = {name: value for name, value in chunking.items() if value is not None}
    if collection and overrides:
        raise typer.BadParameter("--chunk-size and --chunk-overlap apply to --corpus only")
    if (chunk_overlap or settings.chunk_overlap) > (chunk_size or settings.chunk_size) // 2:
        raise typer.BadParameter(
            "the chunk overlap can be at most half the chunk size (the splitter caps it)"
        )
    try:
        question_sets = [sample(load_questions(path), limit, seed) for path in qa_files] or [[]]
        pairs = load_followups(followups) if followups is not None else []
    except DatasetError as exc:
        fail(exc)

    console = Console()
    if not console.is_terminal:
        console = Console(width=TABLE_WIDTH)  # a pipe or a log gets whole tables
    runs: list[CorpusRun] = []
    for number, ((corpus_dir, name), questions) in enumerate(zip(targets, question_sets, strict=True)):
        run = CorpusRun({"qa": str(qa_files[number]) if qa_files else None, "questions": len(questions)})
        try:
            with _open_index(err, settings, corpus_dir, name, overrides) as index:
                run.described.update(_describe(index, corpus_dir))
                if index.ingest is not None:
                    _print_ingest(err, index)
                run.retrievers, run.followups = _score(err, index, questions, pairs, modes, ks, where)
                if answers:
                    run.answers = _answer(err, index, questions, where)
        except (CollectionError, ValidationError) as exc:
            fail(exc)
        runs.append(run)
        _print_run(console, run, len(targets) > 1)
    if len(runs) > 1:
        _print_means(console, runs)
    if json_out is not None:
        report = _report(runs, limit=limit, seed=seed, ks=ks, followups=followups, filter_text=filter_text)
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        err.print(f"figures written to {json_out}", markup=False, highlight=False)


def _parse_filter(text: str | None) -> SearchFilter | None:
    """`--filter`'s SearchFilter (ValueError with the parser's message when it is malformed)."""
    if text is None:
        return None
    from core.retrieval.filters import parse_filter

    return parse_filter(text)


def _targets(
    qa: Sequence[Path],
    corpora: Sequence[Path],
    collections: Sequence[str],
    followups: Path | None,
    answers: bool,
) -> list[Target]:
    """The corpus or collection each question set is searched in, checked against the --qa files."""
    if not qa and followups is None:
        raise typer.BadParameter("give --qa FILE, --followups FILE or both")
    if bool(corpora) == bool(collections):
        raise typer.BadParameter(
            "give exactly one of --corpus DIR and --collection NAME (each may be repeated)"
        )
    targets: list[Target] = [(path, None) for path in corpora] or [(None, name) for name in collections]
    if qa and len(qa) != len(targets):
        raise typer.BadParameter(
            f"{len(qa)} --qa files but {len(targets)} {'--corpus' if corpora else '--collection'}: give them "
            "in pairs (the n-th --qa is searched in the n-th corpus or collection)"
        )
    if followups is not None and len(targets) > 1:
        raise typer.BadParameter("--followups goes with a single --corpus or --collection")
    if answers and not qa:
        raise typer.BadParameter("--answers needs --qa FILE (questions with gold answers)")
    return targets


def _open_index(
    err: Console, settings: Settings, corpus: Path | None, collection: str | None, overrides: dict[str, int]
) -> AbstractContextManager[EvalIndex]:
    from evaluation.runner import existing_index, temporary_index

    if collection is not None:
        return existing_index(settings, collection)
    err.print(f"ingesting {corpus} into a temporary store…", markup=False, highlight=False)
    return temporary_index([str(corpus)], settings, **overrides)


def _score(
    err: Console,
    index: EvalIndex,
    questions: Sequence[GoldQuestion],
    pairs: Sequence[FollowUpPair],
    modes: Sequence[RetrieverMode],
    ks: Sequence[int],
    where: SearchFilter | None,
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
                    score_retriever(
                        index.searcher, questions, mode=mode, collection=index.collection, ks=ks, where=where
                    )
                )
            if pairs:
                follow_ks = sorted({*ks, FOLLOW_UP_K})
                follow.append(
                    score_followups(index, pairs, mode=mode, history_turns=history, ks=follow_ks, where=where)
                )
    return scores, follow


def _answer(
    err: Console, index: EvalIndex, questions: Sequence[GoldQuestion], where: SearchFilter | None
) -> AnswerScore:
    """The graph's answers to every question, asked through the index's services."""
    from evaluation.answers import score_answers

    if index.ingest is None:
        err.print(
            "each answered question is recorded as a turn in the configured database, as `docent ask` does",
            markup=False,
            highlight=False,
        )
    with err.status(f"answering {len(questions)} questions"):
        return score_answers(index, questions, where)


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


def _report(
    runs: Sequence[CorpusRun],
    *,
    limit: int | None,
    seed: int,
    ks: Sequence[int],
    followups: Path | None,
    filter_text: str | None,
) -> dict[str, Any]:
    """The JSON: every corpus's figures and their means; a single corpus's figures also at the top level (the
    shape of a one-corpus run before several were possible)."""
    from evaluation.corpora import mean_over_corpora

    report: dict[str, Any] = {"limit": limit, "seed": seed, "ks": list(ks), "filter": filter_text}
    report.update(
        followups_file=str(followups) if followups else None,
        corpora=[run.to_dict() for run in runs],
        mean=mean_over_corpora(runs),
    )
    return {**runs[0].to_dict(), **report} if len(runs) == 1 else report


def corpus_label(run: CorpusRun) -> str:
    """A short name for a corpus in titles: its directory and parent (`squad-dev/corpus_html`)."""
    corpus = run.described.get("corpus")
    if corpus is None:
        return f"collection {run.described.get('collection')!r}"
    path = Path(corpus)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _print_run(console: Console, run: CorpusRun, named: bool) -> None:
    """The corpus's tables: retrieval, follow-ups, answers."""
    prefix = f"{corpus_label(run)}: " if named else ""
    if run.retrievers:
        console.print(_score_table(run.retrievers, run.described, prefix))
    if run.followups:
        console.print(_followup_table(run.followups, run.described))
    if run.answers is not None:
        console.print(_answers_table(run.answers, prefix))


def _score_table(scores: Sequence[RetrieverScore], described: dict[str, Any], prefix: str = "") -> Table:
    from rich.table import Table

    from evaluation.runner import DOC_K

    first = scores[0]
    table = Table(title=prefix + _title(f"{first.questions} questions", described), title_justify="left")
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
        table.add_column("page MRR@10", justify="right", no_wrap=True)
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
            row += [
                _figure(score.page_hit_at[DOC_K] if score.page_hit_at else None),
                _figure(score.page_mrr_at_10),
            ]
        table.add_row(*row, f"{score.latency_p50_ms:.1f}", f"{score.latency_p95_ms:.1f}")
    if paragraph and first.paragraph_questions < first.questions:
        table.caption = f"paragraph figures over the {first.paragraph_questions} questions with a para_id"
    if pages and first.page_questions < first.questions:
        note = f"page figures over the {first.page_questions} questions with gold_pages"
        table.caption = f"{table.caption}; {note}" if table.caption else note
    return table


def _followup_table(scores: Sequence[FollowUpScore], described: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=_title("Follow-ups, bare vs built query", described), title_justify="left")
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


ANSWER_COLUMNS = (
    ("EM", "exact_match"),
    ("span F1", "span_f1"),
    ("F1", "answer_f1"),
    ("has gold", "contains_gold"),
    ("cit prec", "citation_precision"),
    ("no cite", "cites_nothing"),
    ("doc", "citations_name_gold_doc"),
    ("page", "citations_name_gold_page"),
    ("para", "citations_hold_gold_paragraph"),
)
"""The answers tables: header, AnswerScore field (a share or a mean, 0-1)."""
ANSWERS_CAPTION = (
    "EM, span F1: the shortest answering span; F1: the whole answer; has gold: holds a gold answer; cit prec:"
    " cited passages holding the gold answer, paragraph or page; no cite: answers citing nothing; doc, page,"
    " para: answers whose citations name the gold document, page, paragraph"
)


def _answers_table(score: AnswerScore, prefix: str = "") -> Table:
    from rich.table import Table

    models = ", ".join(sorted(score.models)) or "none"
    title = f"{score.questions} answers ({score.retriever} retriever, k={score.k}, model {models})"
    table = Table(title=prefix + title, title_justify="left")
    columns = [(h, name) for h, name in ANSWER_COLUMNS if getattr(score, name) is not None]
    for header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("words", justify="right", no_wrap=True)
    table.add_column("p95 ms", justify="right", no_wrap=True)
    figures = [_figure(getattr(score, name)) for _, name in columns]
    table.add_row(*figures, f"{score.median_words:.0f}", f"{score.turn_p95_ms:.0f}")
    table.caption = f"{ANSWERS_CAPTION}; words: median length; p95 ms: the whole turn"
    return table


def _print_means(console: Console, runs: Sequence[CorpusRun]) -> None:
    """The retrievers' means over the corpora, then the answers' (when answered)."""
    from evaluation.corpora import mean_answers, mean_retrievers

    labels = [corpus_label(run) for run in runs]
    means = mean_retrievers(runs)
    if means:
        console.print(_mean_table(means, runs, labels))
    answered = mean_answers(runs)
    if answered is not None:
        console.print(_mean_answers_table(answered, len(runs)))


def _mean_table(means: Sequence[MeanScore], runs: Sequence[CorpusRun], labels: Sequence[str]) -> Table:
    from rich.table import Table

    table = Table(title=f"Mean over {len(runs)} corpora: {', '.join(labels)}", title_justify="left")
    table.add_column("retriever", no_wrap=True)
    for header in ("para hit@5", "para MRR@10", "doc hit@5", "doc MRR@10", "page hit@5", "page MRR@10"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("p95 ms", justify="right", no_wrap=True)
    for mean in means:
        table.add_row(
            mean.retriever,
            _figure(mean.paragraph_hit_at_5),
            _figure(mean.paragraph_mrr_at_10),
            _figure(mean.doc_hit_at_5),
            _figure(mean.doc_mrr_at_10),
            _figure(mean.page_hit_at_5),
            _figure(mean.page_mrr_at_10),
            f"{mean.latency_p95_ms:.1f}",
        )
    counted = means[0].corpora
    paragraph = [label for label, run in zip(labels, runs, strict=True) if run.retrievers[0].hit_at]
    paged = [label for label, run in zip(labels, runs, strict=True) if run.retrievers[0].page_hit_at]
    table.caption = (
        "each figure is the plain mean over the corpora that have its gold: paragraph over"
        f" {counted['paragraph']} ({', '.join(paragraph) or 'none'}), document over {counted['doc']},"
        f" page over {counted['page']} ({', '.join(paged) or 'none'}); p95 ms over all"
    )
    return table


def _mean_answers_table(means: dict[str, Any], corpora: int) -> Table:
    from rich.table import Table

    table = Table(title=f"Answers, mean over {corpora} corpora", title_justify="left")
    table.add_column("", no_wrap=True)
    for header, _ in ANSWER_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("words", justify="right", no_wrap=True)
    counts = means["corpora"]
    table.add_row(
        "mean", *[_figure(means[name]) for _, name in ANSWER_COLUMNS], _figure(means["median_words"], 0)
    )
    table.add_row("corpora", *[str(counts[name]) for _, name in ANSWER_COLUMNS], str(counts["median_words"]))
    table.caption = (
        f"{ANSWERS_CAPTION}; words: the corpora's median lengths averaged; each figure over the corpora that"
        " have its gold (row `corpora`)"
    )
    return table


def _figure(value: float | None, decimals: int = 3) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _title(what: str, described: dict[str, Any]) -> str:
    if described.get("chunks") is None:
        return f"{what}, collection {described['collection']!r}"
    return (
        f"{what}, {described['chunks']} chunks (size {described['chunk_size']}, overlap "
        f"{described['chunk_overlap']})"
    )
