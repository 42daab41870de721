"""Dense, BM25 and hybrid retrieval over real Chroma and the SQLite keyword index, kept in step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.retriever import distinct_pages, reciprocal_rank_fusion
from core.services import Services
from core.settings import Settings
from core.types import Passage, RetrieverMode
from ingest.pipeline import Ingestor
from tests.ingest.pdf_fixtures import paragraph, text_pdf

PLANETS = """<html><head><title>Planets</title></head><body>
<h1>Planets</h1>
<p id="p0">Jupiter is the largest planet; its Great Red Spot is a storm older than 350 years.</p>
<p id="p1">Saturn's rings are made mostly of water ice, with some rocky debris and dust.</p>
</body></html>"""
OCEANS = """<html><head><title>Oceans</title></head><body>
<h1>Oceans</h1>
<p id="p0">The Mariana Trench in the Pacific Ocean reaches a depth of about 10,994 metres.</p>
</body></html>"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "planets.html").write_text(PLANETS)
    (folder / "oceans.html").write_text(OCEANS)
    return folder


def ingest(services: Services, *items: Path) -> None:
    summary = Ingestor(services.settings, services.embedder, services.store).run([str(i) for i in items])
    assert not summary.failures


def sources(services: Services, query: str, mode: str) -> list[str]:
    found = services.retriever.search(query, k=5, collection="docent", mode=mode)  # type: ignore[arg-type]
    return [Path(p["source"]).name for p in found]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_finds_the_passage_and_its_paragraph_ids(
    services: Services, corpus: Path, mode: RetrieverMode
) -> None:
    ingest(services, corpus)
    best = services.retriever.search("How deep is the Mariana Trench?", k=3, collection="docent", mode=mode)[
        0
    ]
    assert Path(best["source"]).name == "oceans.html"
    assert best["paragraph_ids"] == ["p0"]
    assert 0.2 < best["score"] <= 1.0  # cosine similarity in every mode


def test_bm25_finds_an_exact_rare_term_and_scores_it_by_cosine(services: Services, corpus: Path) -> None:
    ingest(services, corpus)
    found = services.retriever.search("10,994", k=2, collection="docent", mode="bm25")
    assert [Path(p["source"]).name for p in found] == ["oceans.html"]


def test_a_removed_source_never_comes_back_from_any_retriever(services: Services, corpus: Path) -> None:
    ingest(services, corpus)
    oceans = str((corpus / "oceans.html").resolve())
    assert services.store.remove_source("docent", oceans) > 0
    for mode in ("dense", "bm25", "hybrid"):
        assert "oceans.html" not in sources(services, "Mariana Trench depth Pacific Ocean", mode)
    assert services.store.keywords.search("docent", "Mariana Trench", 10) == []


def test_reingesting_a_changed_source_replaces_its_chunks_in_both_indexes(
    services: Services, corpus: Path
) -> None:
    ingest(services, corpus)
    page = corpus / "oceans.html"
    page.write_text(OCEANS.replace("Mariana Trench in the Pacific", "Puerto Rico Trench in the Atlantic"))
    ingest(services, corpus)
    assert services.store.keywords.search("docent", "Mariana", 10) == []
    source_ids = services.store.vectors.source_ids("docent", str(page.resolve()))
    assert source_ids == services.store.keywords.source_ids("docent", str(page.resolve()))
    assert len(source_ids) == 1
    assert sources(services, "Puerto Rico Trench", "hybrid")[0] == "oceans.html"


def test_a_chunk_missing_from_the_keyword_index_is_written_again(services: Services, corpus: Path) -> None:
    ingest(services, corpus)
    ids = sorted(services.store.keywords.source_ids("docent", str((corpus / "oceans.html").resolve())))
    services.store.keywords.delete("docent", ids)  # as if the process died between the two writes
    summary = Ingestor(services.settings, services.embedder, services.store).run([str(corpus)])
    assert summary.chunks_added == len(ids)
    assert "oceans.html" in sources(services, "Mariana Trench", "bm25")


def test_reciprocal_rank_fusion_rewards_agreement_and_weights() -> None:
    fused = reciprocal_rank_fusion([(["a", "b", "c"], 1.0), (["c", "b", "d"], 1.0)], rrf_k=60)
    assert set(fused[:2]) == {"b", "c"}  # found by both beat "a", first in one list only
    assert fused[2:] == ["a", "d"]
    assert reciprocal_rank_fusion([(["a"], 1.0), (["b"], 2.0)], rrf_k=60) == ["b", "a"]


def test_hybrid_scores_match_the_dense_ones_and_read_the_kept_chunks_once(
    services: Services, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(services, corpus)
    vectors = services.store.vectors
    reads: list[list[str]] = []
    real_passages = vectors.passages

    def passages(name: str, ids: Sequence[str], query: np.ndarray) -> dict[str, Passage]:
        reads.append(list(ids))
        return real_passages(name, ids, query)

    monkeypatch.setattr(vectors, "passages", passages)
    query = "How deep is the Mariana Trench?"
    dense = {
        p["chunk_id"]: p["score"]
        for p in services.retriever.search(query, k=3, collection="docent", mode="dense")
    }
    assert reads == []  # one query of k gives its passages' text itself
    hybrid = services.retriever.search(query, k=3, collection="docent", mode="hybrid")
    # The deep candidate lists carry ids alone; the k kept are read once, scored by their cosine.
    assert reads == [[p["chunk_id"] for p in hybrid]]
    assert hybrid and all(abs(p["score"] - dense[p["chunk_id"]]) < 1e-5 for p in hybrid)
    reads.clear()
    bm25 = services.retriever.search(query, k=3, collection="docent", mode="bm25")
    assert reads == [[p["chunk_id"] for p in bm25]]  # BM25 alone reads its hits' text and vectors
    assert all(abs(p["score"] - dense[p["chunk_id"]]) < 1e-3 for p in bm25)  # cosine, as dense gives


def _passage(source: str, page: int | None, n: int) -> Passage:
    return cast(Passage, {"chunk_id": f"{source}:{page}:{n}", "source": source, "page": page})


def test_distinct_pages_moves_a_repeated_page_behind_the_pages_not_shown_yet() -> None:
    ranked = [
        _passage("a.pdf", 3, 0),
        _passage("a.pdf", 3, 1),  # page 3 again
        _passage("b.pdf", 3, 0),  # another document's page 3
        _passage("page.html", None, 0),  # no pages: each chunk is its own
        _passage("page.html", None, 1),
        _passage("a.pdf", 4, 0),
    ]
    kept = [p["chunk_id"] for p in distinct_pages(ranked, 5)]
    assert kept == ["a.pdf:3:0", "b.pdf:3:0", "page.html:None:0", "page.html:None:1", "a.pdf:4:0"]
    # With too few pages the repeats fill the list, in their order.
    assert [p["chunk_id"] for p in distinct_pages(ranked[:3], 3)] == ["a.pdf:3:0", "b.pdf:3:0", "a.pdf:3:1"]


JUPITER_LINES = [
    f"Jupiter fact {n}: the Great Red Spot storm on Jupiter is wider than the Earth and has raged for ages."
    for n in range(6)
]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_page_with_many_matching_chunks_leaves_room_for_the_next_page(
    tmp_path: Path, embedder: OnnxMiniLMEmbedder, mode: RetrieverMode
) -> None:
    pdf = tmp_path / "jupiter.pdf"
    first = paragraph(72, 720, JUPITER_LINES)  # one page of many chunks about the storm
    second = paragraph(72, 720, ["That storm is shrinking, as later images from the probes showed."])
    pdf.write_bytes(text_pdf([first, second]))
    pages: dict[bool, list[int]] = {}
    for distinct in (True, False):
        settings = Settings(data_dir=tmp_path / f"data-{distinct}", chunk_size=200, chunk_overlap=0)
        settings = settings.model_copy(update={"distinct_pages": distinct})
        services = Services(settings, embedder=embedder).open_all()
        try:
            ingest(services, pdf)
            found = services.retriever.search(
                "How big is Jupiter's Great Red Spot storm?", k=3, collection="docent", mode=mode
            )
        finally:
            services.close()
        pages[distinct] = [p["page"] or 0 for p in found]
    assert pages[False] == [1, 1, 1]  # the first page's chunks fill the top 3
    assert sorted(pages[True]) == [1, 1, 2]
