"""The extractive answerer: quotes the retrieved sentences that answer the question, with citations that list
every relevant passage, or says the documents do not hold the answer."""

from __future__ import annotations

import asyncio

import numpy as np

from core.answering.base import AnswerRequest
from core.answering.extractive import NO_ANSWER, ExtractiveAnswerer, Scoring, focus_terms, headed_sentences
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.text import terms
from core.types import Passage


def passage(
    text: str,
    *,
    score: float = 0.6,
    source: str = "/docs/guide.pdf",
    page: int | None = 3,
    section: str | None = None,
) -> Passage:
    return Passage(
        chunk_id=f"id-{hash(text)}",
        text=text,
        source=source,
        title="Guide",
        page=page,
        section=section,
        score=score,
        paragraph_ids=[],
    )


class CountingEmbedder:
    """The real embedder, counting what it is asked to embed."""

    def __init__(self, inner: OnnxMiniLMEmbedder) -> None:
        self.inner = inner
        self.batches: list[int] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return self.inner.embed(texts)


def test_answer_quotes_the_matching_sentence_and_lists_every_relevant_passage() -> None:
    passages = [
        passage("Insulate the attic first. Seal gaps around windows with caulk."),
        passage(
            "You can save as much as 10% a year by turning your thermostat back for 8 hours a day.", page=17
        ),
        passage("Unrelated and below the relevance floor.", score=0.05),
    ]
    answer = ExtractiveAnswerer().answer_now("How much can I save by turning the thermostat back?", passages)
    assert answer.text == (
        "You can save as much as 10% a year by turning your thermostat back for 8 hours a day. [2]"
    )
    assert [(c["n"], c["cited"], c.get("supported")) for c in answer.citations] == [
        (1, False, None),
        (2, True, True),
    ]
    assert answer.citations[1]["page"] == 17
    assert answer.citations[1]["snippet"].startswith("You can save as much as 10%")
    assert answer.citations[0]["snippet"].startswith("Insulate the attic")
    assert answer.model == "extractive" and answer.unsupported_sentences == 0


def test_passages_below_the_relevance_floor_give_no_answer() -> None:
    passages = [passage("Turning your thermostat back saves energy.", score=0.05)]
    answer = ExtractiveAnswerer(min_score=0.2).answer_now("How do thermostats save energy?", passages)
    assert answer.text == NO_ANSWER
    assert answer.citations == []


def test_no_shared_terms_says_so_and_still_lists_the_relevant_passages_uncited() -> None:
    passages = [passage("Compost needs greens and browns in a ratio of about 30 to 1.")]
    answer = ExtractiveAnswerer().answer_now("Who won the 1998 world cup final?", passages)
    assert answer.text == NO_ANSWER
    assert [(c["n"], c["cited"]) for c in answer.citations] == [(1, False)]


def test_headings_are_not_quoted_as_answers() -> None:
    text = "How hot composting works\n\nA hot pile should reach 55 to 65 degrees within three days."
    answer = ExtractiveAnswerer().answer_now("How hot should a hot composting pile get?", [passage(text)])
    assert answer.text.startswith("A hot pile should reach")
    assert "How hot composting works" not in answer.text


def test_a_pdf_heading_line_is_never_glued_to_the_sentence_below_it() -> None:
    # As PDF text comes: the heading on its own line, the paragraph wrapped at the page width.
    text = (
        "Bokashi Fermentation\n"
        "Bokashi is a Japanese method that ferments food scraps in an airtight bucket with bran\n"
        "inoculated with lactic acid bacteria, yeasts and other microbes. Unlike a compost heap,\n"
        "a bokashi bucket can take cooked food, small amounts of meat and dairy.\n"
        "Compost Field Guide - page 4 of 4"
    )
    found = headed_sentences(passage(text))
    assert found[0] == (
        "Bokashi Fermentation",
        "Bokashi is a Japanese method that ferments food scraps in an airtight bucket with bran inoculated"
        " with lactic acid bacteria, yeasts and other microbes.",
    )
    assert all("page 4 of 4" not in sentence for _, sentence in found)
    answer = ExtractiveAnswerer().answer_now("What is bokashi?", [passage(text)])
    assert answer.text.startswith("Bokashi is a Japanese method")


def test_the_chosen_sentences_keep_their_passage_order() -> None:
    text = (
        "Turn the pile every 3 to 5 days to keep a hot compost pile working. "
        "Bananas are yellow. "
        "A hot compost pile that is turned often is finished in 4 to 8 weeks."
    )
    answer = ExtractiveAnswerer().answer_now(
        "How often should a hot compost pile be turned?", [passage(text)]
    )
    assert answer.text.index("every 3 to 5 days") < answer.text.index("4 to 8 weeks")
    assert "Bananas" not in answer.text


def test_focus_terms_are_names_numbers_and_the_noun_a_wh_word_asks_about() -> None:
    assert focus_terms("What temperature should a hot compost pile reach?") == set(terms("temperature"))
    assert focus_terms("Which team won Super Bowl 50?") == set(terms("team Super Bowl 50"))
    assert focus_terms("How many buckets of browns do I add?") == set(terms("buckets"))
    assert focus_terms("How do I fix a smelly compost pile?") == set()


def test_the_smelly_compost_question_quotes_the_section_on_smells(sample_services: Services) -> None:
    """The issue's example: "How do I fix a smelly compost pile?" once got generic sentences although the
    sample corpus has a section on bad smells. With every passage retrieval finds for it, the answer must
    quote that section, open with it, and cite it."""
    question = "How do I fix a smelly compost pile?"
    found = sample_services.retriever.search(question, k=6, collection=sample_services.settings.collection)
    smells = next(n for n, p in enumerate(found, start=1) if p["section"] == "The pile smells bad")
    answerer = ExtractiveAnswerer(embedder=sample_services.embedder)
    answer = asyncio.run(answerer.answer(AnswerRequest(question, question, found)))
    assert answer.text.startswith(("A rotten-egg smell", "Turn the pile thoroughly"))
    assert "Turn the pile thoroughly and work in dry, coarse browns" in answer.text
    assert "The fix is to make pieces smaller" not in answer.text
    assert f"[{smells}]" in answer.text
    assert [c["n"] for c in answer.citations] == list(range(1, len(found) + 1))  # every passage listed
    assert next(c for c in answer.citations if c["n"] == smells)["cited"]
    # The section's heading and a stem's near forms (`smelly`, `smell`) count even without an embedder.
    lexical = ExtractiveAnswerer().answer_now(question, found)
    assert lexical.text.startswith(("A rotten-egg smell", "Turn the pile thoroughly"))


def test_one_bounded_embedding_batch_per_answer(embedder: OnnxMiniLMEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    sentences = " ".join(f"Compost pile note {i} says the pile needs turning now." for i in range(30))
    answerer = ExtractiveAnswerer(embedder=counting, scoring=Scoring(candidates=8))
    answer = answerer.answer_now("Does the compost pile need turning?", [passage(sentences)])
    assert answer.text != NO_ANSWER
    assert counting.batches == [9]  # the question and the 8 best sentences by term overlap, in one call


def test_a_best_sentence_under_the_measured_floor_means_the_documents_do_not_hold_the_answer(
    embedder: OnnxMiniLMEmbedder,
) -> None:
    passages = [
        passage("Soil on a river bank is rich in worms, so compost there breaks down fast.", score=0.25)
    ]
    question = "Which river flows through the capital of Hungary?"
    assert ExtractiveAnswerer(embedder=embedder).answer_now(question, passages).text == NO_ANSWER
    unfloored = ExtractiveAnswerer(embedder=embedder, scoring=Scoring(floor=0.0))
    assert unfloored.answer_now(question, passages).text.startswith("Soil on a river bank")


def test_dense_candidates_setting_bounds_the_embedded_sentences_and_zero_embeds_nothing(
    embedder: OnnxMiniLMEmbedder,
) -> None:
    from core.answering.providers import make_answerers
    from core.settings import Settings

    sentences = " ".join(f"Compost pile note {i} says the pile needs turning now." for i in range(30))
    question = "Does the compost pile need turning?"
    for candidates, batches in ((3, [4]), (0, [])):
        counting = CountingEmbedder(embedder)
        registry = make_answerers(Settings(extractive_dense_candidates=candidates), embedder=counting)
        answerer = registry.get("extractive")
        assert isinstance(answerer, ExtractiveAnswerer)
        assert answerer.answer_now(question, [passage(sentences)]).text != NO_ANSWER
        assert counting.batches == batches
