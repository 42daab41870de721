"""The extractive answerer: quotes retrieved sentences with citations, or says it found nothing."""

from __future__ import annotations

from core.answering.extractive import NO_ANSWER, ExtractiveAnswerer
from core.types import Passage


def passage(
    text: str, *, score: float = 0.6, source: str = "/docs/guide.pdf", page: int | None = 3
) -> Passage:
    return Passage(
        chunk_id=f"id-{hash(text)}",
        text=text,
        source=source,
        title="Guide",
        page=page,
        section=None,
        score=score,
    )


def test_answer_quotes_the_matching_sentence_and_cites_its_passage() -> None:
    passages = [
        passage("Insulate the attic first. Seal gaps around windows with caulk."),
        passage(
            "You can save as much as 10% a year by turning your thermostat back for 8 hours a day.", page=17
        ),
    ]
    answer = ExtractiveAnswerer().answer_now("How much can I save by turning the thermostat back?", passages)
    assert "10% a year" in answer.text
    assert "[2]" in answer.text
    assert [c["n"] for c in answer.citations] == [2]
    assert answer.citations[0]["page"] == 17
    assert answer.model == "extractive"


def test_passages_below_the_relevance_floor_give_no_answer() -> None:
    passages = [passage("Turning your thermostat back saves energy.", score=0.05)]
    answer = ExtractiveAnswerer(min_score=0.2).answer_now("How do thermostats save energy?", passages)
    assert answer.text == NO_ANSWER
    assert answer.citations == []


def test_no_shared_terms_gives_no_answer_instead_of_a_guess() -> None:
    passages = [passage("Compost needs greens and browns in a ratio of about 30 to 1.")]
    answer = ExtractiveAnswerer().answer_now("Who won the 1998 world cup final?", passages)
    assert answer.text == NO_ANSWER


def test_headings_are_not_quoted_as_answers() -> None:
    text = "How hot composting works\n\nA hot pile should reach 55 to 65 degrees within three days."
    answer = ExtractiveAnswerer().answer_now("How hot should a hot composting pile get?", [passage(text)])
    assert answer.text.startswith("A hot pile should reach")
    assert "How hot composting works" not in answer.text
