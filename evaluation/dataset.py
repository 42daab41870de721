"""Evaluation sets read from JSONL: questions with a gold paragraph, or with gold documents only."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class DatasetError(ValueError):
    """A line of an evaluation file that cannot be used: the message names the file, the line and the fix."""


@dataclass(frozen=True)
class GoldQuestion:
    """A question and where its answer lives: one paragraph (`para_id`), or any chunk of `gold_docs`, and
    optionally the 1-based pages of those documents that hold the evidence (`gold_pages`)."""

    question: str
    gold_docs: tuple[str, ...]
    para_id: str | None = None
    answers: tuple[str, ...] = ()
    gold_pages: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class FollowUpPair:
    """A question, then a follow-up that only makes sense after it; the gold is the follow-up's paragraph."""

    first: str
    follow_up: str
    doc_id: str
    para_id: str


def read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Non-blank lines as objects, each with its `file:line` label for error messages."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(item).__name__}")
        yield where, item


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: `{key}` must be a non-empty string")
    return value


def _para_id(item: dict[str, Any], where: str) -> tuple[str, str]:
    """(doc_id, para_id), checking `<doc_id>#pN` and that an explicit `doc_id` agrees with it."""
    para_id = _text(item, "para_id", where)
    doc_id, hash_, paragraph = para_id.rpartition("#")
    if not hash_ or not doc_id or not paragraph:
        raise DatasetError(f"{where}: `para_id` {para_id!r} must look like `<doc_id>#pN`")
    if "doc_id" in item and item["doc_id"] != doc_id:
        raise DatasetError(f"{where}: `doc_id` {item['doc_id']!r} disagrees with `para_id` {para_id!r}")
    return doc_id, para_id


def parse_question(item: dict[str, Any], where: str) -> GoldQuestion:
    """One evaluation line: paragraph gold (`para_id`) or document gold (`gold_docs`)."""
    question = _text(item, "question", where)
    answers = item.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DatasetError(f"{where}: `answers` must be a list of strings")
    if "para_id" in item:
        doc_id, para_id = _para_id(item, where)
        return GoldQuestion(question, gold_docs=(doc_id,), para_id=para_id, answers=tuple(answers))
    gold_docs = item.get("gold_docs")
    if (
        not isinstance(gold_docs, list)
        or not gold_docs
        or not all(isinstance(d, str) and d for d in gold_docs)
    ):
        raise DatasetError(
            f"{where}: give `para_id` (`<doc_id>#pN`) or `gold_docs` (a non-empty list of file names)"
        )
    return GoldQuestion(
        question, gold_docs=tuple(gold_docs), answers=tuple(answers), gold_pages=_gold_pages(item, where)
    )


def _gold_pages(item: dict[str, Any], where: str) -> tuple[tuple[str, int], ...]:
    """`gold_pages`: a list of `{"doc": file name, "page": 1-based page}` (optional)."""
    pages = item.get("gold_pages", [])
    if not isinstance(pages, list):
        raise DatasetError(f'{where}: `gold_pages` must be a list of {{"doc": …, "page": N}}')
    gold: list[tuple[str, int]] = []
    for page in pages:
        doc = page.get("doc") if isinstance(page, dict) else None
        number = page.get("page") if isinstance(page, dict) else None
        if not isinstance(doc, str) or not doc or not isinstance(number, int) or number < 1:
            raise DatasetError(f"{where}: each of `gold_pages` needs a `doc` name and a 1-based `page`")
        gold.append((doc, number))
    return tuple(gold)


def load_questions(path: Path) -> list[GoldQuestion]:
    """Every question of an evaluation file, in file order."""
    questions = [parse_question(item, where) for where, item in read_jsonl(path)]
    if not questions:
        raise DatasetError(f"{path}: no questions")
    return questions


def load_followups(path: Path) -> list[FollowUpPair]:
    """Follow-up pairs: `first`, `follow_up`, and the follow-up's gold `doc_id` / `para_id`."""
    pairs = []
    for where, item in read_jsonl(path):
        doc_id, para_id = _para_id(item, where)
        pairs.append(
            FollowUpPair(_text(item, "first", where), _text(item, "follow_up", where), doc_id, para_id)
        )
    if not pairs:
        raise DatasetError(f"{path}: no follow-up pairs")
    return pairs


def sample(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """A reproducible random sample of `limit` items; all of them, in order, when limit is None or too big."""
    if limit is None or limit >= len(items):
        return list(items)
    return random.Random(seed).sample(list(items), limit)
