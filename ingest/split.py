"""Chunking: pages into overlapping chunks with deterministic ids and the metadata citations need."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.retrieval.vector_store import Metadata
from ingest.document import LoadedDocument

if TYPE_CHECKING:  # langchain_text_splitters pulls in langchain_core: imported when a splitter is made
    from langchain_text_splitters import RecursiveCharacterTextSplitter


@dataclass(frozen=True)
class Chunk:
    """A piece of a source, addressed by an id derived from the source and the text."""

    id: str
    text: str
    metadata: Metadata


def make_splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    """Paragraph, then line, then sentence, then word boundaries, in that order of preference."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
        keep_separator="end",
        add_start_index=True,
    )


def chunk_id(source: str, page: int | None, occurrence: int, text: str) -> str:
    """Same source and same text give the same id, so re-ingesting adds nothing."""
    key = f"{source}\x1f{page or 0}\x1f{occurrence}\x1f{text}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def split_document(document: LoadedDocument, splitter: RecursiveCharacterTextSplitter) -> list[Chunk]:
    """Split each page on its own, so a chunk never straddles two pages."""
    chunks: list[Chunk] = []
    seen: Counter[tuple[int | None, str]] = Counter()
    for page in document.pages:
        for piece in splitter.create_documents([page.text]):
            text = piece.page_content.strip()
            if not text:
                continue
            occurrence = seen[(page.page, text)]
            seen[(page.page, text)] += 1
            start = page.text.find(text, int(piece.metadata.get("start_index", 0)))
            start = max(start, 0)
            end = start + len(text)
            metadata: dict[str, str | int | float | bool] = {
                "source": document.source,
                "title": document.title,
                "kind": document.kind,
                "chunk_index": len(chunks),
                "start_index": start,
                "end_index": end,
            }
            if covered := [a.id for a in page.anchors if a.start < end and start < a.end]:
                metadata["paragraph_ids"] = " ".join(covered)
            if page.page is not None:
                metadata["page"] = page.page
            if page.section:
                metadata["section"] = page.section
            if page.ocr:
                metadata["ocr"] = True
            chunks.append(
                Chunk(id=chunk_id(document.source, page.page, occurrence, text), text=text, metadata=metadata)
            )
    return chunks
