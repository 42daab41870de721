"""Plain text (Markdown has its own parser, ingest/formats/markdown.py)."""

from __future__ import annotations

from ingest.document import LoadedDocument, LoadError, Page


def load_text(text: str, *, source: str, title: str) -> LoadedDocument:
    if not text.strip():
        raise LoadError("file is empty")
    return LoadedDocument(source=source, title=title, kind="text", pages=[Page(text=text)])
