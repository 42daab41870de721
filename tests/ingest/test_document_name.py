"""Each chunk is embedded and keyword-indexed with its document's name (ingest/split.py), shown without it."""

from __future__ import annotations

from core.retrieval.vector_store import indexed_text
from ingest.document import LoadedDocument, Page
from ingest.split import document_name, make_splitter, split_document


def test_a_files_name_is_its_stem_in_words_and_a_pages_name_its_title() -> None:
    assert document_name("/filings/ADOBE_2022_10K.pdf", "0000796343-23-000010") == "ADOBE 2022 10K"
    assert document_name("/corpus/Super_Bowl_50.html", "Super Bowl 50") == "Super Bowl 50"
    page = "https://example.com/guide/heat-pumps"
    assert document_name(page, "Heat pumps: a guide") == "Heat pumps: a guide"
    assert document_name(page, "") == "heat pumps"
    assert document_name("/site/index.html", "Energy tips") == "Energy tips"  # a name that says nothing


def test_chunks_carry_the_name_for_indexing_and_keep_their_own_text() -> None:
    text = "A modern heat pump is about as loud as a fridge at one metre."
    document = LoadedDocument(
        "/docs/heat_pumps.html", "Heat pumps", "html", [Page(text=text, section="Noise")]
    )
    chunk = split_document(document, make_splitter(800, 120))[0]
    assert chunk.text == text  # what a passage shows and an answer quotes
    assert indexed_text(chunk.text, chunk.metadata) == f"heat pumps: {text}"  # what is embedded and indexed
    other = LoadedDocument("/docs/boilers.html", "Boilers", "html", [Page(text=text)])
    assert split_document(other, make_splitter(800, 120))[0].id != chunk.id
