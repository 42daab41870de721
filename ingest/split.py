"""Chunking: pages into overlapping chunks with deterministic ids and the metadata citations need."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.retrieval.vector_store import CONTEXT_KEY, Metadata
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


CHUNKING_VERSION = "c2"
"""Part of a source record's chunking: bumped when what is embedded changes, so that a re-ingest re-embeds
(c1: each chunk is embedded and indexed with its document's name, `document_name`), or when what chunks carry
changes, so that a re-ingest rewrites it (c2: the metadata filters read; the ids stay, nothing is
re-embedded)."""
_GENERIC_NAMES = frozenset({"", "index", "default", "home", "main", "page"})
_SEPARATORS = re.compile(r"[_\-\s]+")


def document_name(source: str, title: str) -> str:
    """A document's name as a question would say it: a file's name without its suffix, underscores and
    hyphens as spaces ("ADOBE_2022_10K.pdf" -> "ADOBE 2022 10K"; a PDF's own title is often a filing number);
    a web page's title, else its URL path's last name. A name that says nothing ("index") gives the title."""
    remote = "://" in source
    path = urlsplit(source).path if remote else source.replace("\\", "/")
    name = _SEPARATORS.sub(" ", PurePosixPath(path).stem).strip()
    if (remote and title.strip()) or name.lower() in _GENERIC_NAMES:
        return title.strip()
    return name


def chunk_id(source: str, page: int | None, occurrence: int, text: str, context: str = "") -> str:
    """Same source, text and context give the same id, so re-ingesting adds nothing."""
    key = f"{source}\x1f{page or 0}\x1f{occurrence}\x1f{text}\x1f{context}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def split_document(document: LoadedDocument, splitter: RecursiveCharacterTextSplitter) -> list[Chunk]:
    """Split each page on its own, so a chunk never straddles two pages."""
    chunks: list[Chunk] = []
    seen: Counter[tuple[int | None, str]] = Counter()
    context = document_name(document.source, document.title)
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
            if context:
                metadata[CONTEXT_KEY] = context
            chunks.append(
                Chunk(
                    id=chunk_id(document.source, page.page, occurrence, text, context),
                    text=text,
                    metadata=metadata,
                )
            )
    return chunks
