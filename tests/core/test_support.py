"""Citations and their checks: an answer's claims and their `[n]`, the citation list, and whether a cited
passage supports the sentence that cites it (real ONNX embedder)."""

from __future__ import annotations

from core.answering.support import (
    SUPPORT_THRESHOLD,
    Claim,
    SupportChecker,
    answer_claims,
    list_citations,
    passage_sentences,
)
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.types import Passage

TURNING = (
    "Keeping the pile hot requires regular turning. Turn the pile every 3 to 5 days, moving the cooler"
    " outer material into the hot centre, and add water if it has dried out. With consistent turning, a hot"
    " pile can be finished in 4 to 8 weeks, followed by a curing period."
)
BOKASHI = "Bokashi is a Japanese method that ferments food scraps in an airtight bucket with bran."


def passage(n: int, text: str, score: float = 0.6) -> Passage:
    return Passage(
        chunk_id=f"c{n}",
        text=text,
        source=f"/docs/{n}.html",
        title=f"Doc {n}",
        page=None,
        section=None,
        score=score,
        paragraph_ids=[],
    )


def test_markers_belong_to_the_sentence_they_follow() -> None:
    text = "Turn it every 3 days. [1] Bokashi ferments scraps [2][1]. A closing remark. [2]"
    assert answer_claims(text) == [
        Claim("Turn it every 3 days.", (1,)),
        Claim("Bokashi ferments scraps.", (2, 1)),
        Claim("A closing remark.", (2,)),
    ]
    assert answer_claims("No citation here. None here either.") == [
        Claim("No citation here.", ()),
        Claim("None here either.", ()),
    ]


def test_passage_sentences_keep_headings_apart_and_join_wrapped_lines_and_abbreviations() -> None:
    text = (
        "The pile smells bad\n"
        "A rotten-egg smell means the pile has gone anaerobic: it is too wet or too compacted, and\n"
        "oxygen-starved bacteria are producing hydrogen sulphide. Ask Dr. Green on St. Johns Road.\n\n"
        "Revenue 2023 1,234"
    )
    assert passage_sentences(text) == [
        "The pile smells bad",
        "A rotten-egg smell means the pile has gone anaerobic: it is too wet or too compacted, and"
        " oxygen-starved bacteria are producing hydrogen sulphide.",
        "Ask Dr. Green on St. Johns Road.",
        "Revenue 2023 1,234",
    ]


def test_citations_list_every_relevant_passage_in_retrieval_order_with_the_prompts_numbers() -> None:
    passages = [
        passage(1, TURNING),
        passage(2, "Weak.", score=0.1),
        passage(3, BOKASHI),
        passage(4, "Low.", 0.1),
    ]
    listed = list_citations(passages, min_score=0.2, cited=[3, 4], supported={3: True, 4: False})
    assert [(c["n"], c["chunk_id"], c["cited"], c.get("supported")) for c in listed] == [
        (1, "c1", False, None),
        (3, "c3", True, True),
        (4, "c4", True, False),  # cited, so listed although under the floor
    ]


def test_a_supported_sentence_passes_and_a_fabricated_one_is_counted(embedder: OnnxMiniLMEmbedder) -> None:
    checker = SupportChecker(embedder)
    passages = [passage(1, TURNING), passage(2, BOKASHI)]
    check = checker.check(
        "You should turn a hot pile every few days, roughly twice a week. [1] "
        "Compost piles must be turned by a licensed arborist every full moon. [1] "
        "Bokashi ferments food scraps in a sealed bucket. [2]",
        passages,
    )
    scores = [score for _, _, score in check.scores]
    assert scores[0] >= SUPPORT_THRESHOLD > scores[1] and scores[2] >= SUPPORT_THRESHOLD
    assert check.supported == {1: True, 2: True}  # passage 1 supports at least one sentence citing it
    assert check.unsupported_sentences == 1


def test_a_passage_cited_only_by_sentences_it_does_not_support_is_unsupported(
    embedder: OnnxMiniLMEmbedder,
) -> None:
    checker = SupportChecker(embedder)
    passages = [passage(1, TURNING), passage(2, BOKASHI)]
    check = checker.check("Turn the pile every 30 days. [1] The Eiffel Tower is in Paris. [2]", passages)
    assert check.supported == {1: False, 2: False}  # a figure the passage lacks is never supported
    assert check.unsupported_sentences == 2
    # A sentence citing two passages is supported when either supports it; uncited sentences are not counted.
    check = checker.check(
        "Turn the pile every 3 to 5 days. [2][1] An uncited aside about the moon.", passages
    )
    assert check.supported == {1: True, 2: False} and check.unsupported_sentences == 0
    assert checker.check("Nothing cited at all.", passages).unsupported_sentences == 0
