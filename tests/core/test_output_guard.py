"""The output guardrail's rules on their own: blocked patterns, the PII pass (and what it must leave alone),
and a stream reviewed token by token that adds up to the reviewed whole, however the text is split."""

from __future__ import annotations

import pytest

from core.answering.output_guard import WITHHELD, OutputGuard, StreamReview
from core.types import Citation

PII_TEXT = (
    "Call the desk on +1 415 555 0132 or (415) 555-0199, write to help.desk@compost.example, and pay with"
    " 4111 1111 1111 1111 [1]"
)


def test_a_blocked_pattern_withholds_the_answer() -> None:
    guard = OutputGuard([r"launch code \d+"])
    reviewed = guard.review("The LAUNCH CODE 4242 is on page 3 [1]")
    assert reviewed.text == WITHHELD and reviewed.blocked
    assert reviewed.rule == r"blocked: launch code \d+"
    assert guard.review("The launch is on Tuesday [1]").rule is None


def test_an_invalid_pattern_is_refused_with_its_setting() -> None:
    with pytest.raises(ValueError, match="DOCENT_BLOCKED_OUTPUT_PATTERNS"):
        OutputGuard(["(unclosed"])


def test_the_pii_pass_removes_emails_phones_and_cards() -> None:
    reviewed = OutputGuard([], redact_pii=True).review(PII_TEXT)
    assert reviewed.rule == "redacted: email, phone, card"
    for raw in ("415 555 0132", "555-0199", "help.desk@", "4111"):
        assert raw not in reviewed.text
    assert reviewed.text.count("[phone removed]") == 2
    assert "[email removed]" in reviewed.text and "[card removed]" in reviewed.text
    assert reviewed.text.endswith("[1]")


@pytest.mark.parametrize(
    "text",
    [
        "Revenue was $1,024,300 in 2023 and 2024-12-31 closed the year [2]",
        "Turn the pile every 3 to 5 days at 55-65 °C; see pages 12 13 14 [1]",
        "Order 4111 1111 1111 1112 failed the check digit [1]",  # not a card: Luhn fails
        "Section 10.2.3 and ISBN 978 3 16 148410 0 [1]",
    ],
)
def test_the_pii_pass_leaves_figures_dates_and_numbers_alone(text: str) -> None:
    reviewed = OutputGuard([], redact_pii=True).review(text)
    assert reviewed.rule is None and reviewed.text == text


def test_no_rule_costs_nothing_and_changes_nothing() -> None:
    guard = OutputGuard([])
    assert not guard.active
    assert guard.review(PII_TEXT).text == PII_TEXT


def test_citations_of_a_withheld_answer_are_not_cited_and_snippets_are_redacted() -> None:
    guard = OutputGuard(["secret"], redact_pii=True)
    citation = Citation(
        n=1,
        source="s",
        title="t",
        page=None,
        snippet="mail a@b.example",
        chunk_id="c",
        cited=True,
        supported=True,
    )
    withheld = guard.review("a secret [1]")
    [out] = guard.review_citations([citation], withheld)
    assert out["cited"] is False and out["supported"] is None and out["snippet"] == "mail [email removed]"
    assert citation["cited"] is True  # the input is not changed


def tokens_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_a_reviewed_stream_adds_up_to_the_reviewed_answer_and_never_sends_pii(size: int) -> None:
    guard = OutputGuard([], redact_pii=True)
    review = StreamReview(guard)
    sent = [review.feed(token) for token in tokens_of(PII_TEXT, size)]
    sent.append(review.finish())
    assert "".join(sent) == guard.review(PII_TEXT).text
    pieces = [piece for piece in sent if piece]
    assert len(pieces) > 3  # it still streams
    for piece in pieces:
        assert not any(raw in piece for raw in ("0132", "0199", "help.desk", "1111"))


def test_words_are_streamed_as_they_come_when_only_patterns_are_set() -> None:
    review = StreamReview(OutputGuard(["launch code \\d+"]))
    assert review.feed("The ") == "The "
    assert review.feed("launch ") == "launch "
    assert review.feed("code ") == "code "
    assert review.feed("4242") == "" and review.blocked == "launch code \\d+"
    assert review.feed(" more") == "" and review.finish() == ""
