"""Blocks of a structured document (Word, Markdown) gathered into units, a new one at each heading."""

from __future__ import annotations

from ingest.document import Page


class Sections:
    """Collects blocks in document order; each heading starts a unit whose text begins with the heading.

    A heading followed at once by another one does not make a unit of its own: it opens the next unit, so the
    chunk under "Chapter 2 / Costs" carries both headings.
    """

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self._section: str | None = None
        self._blocks: list[str] = []
        self._tables = 0
        self._only_headings = False

    def heading(self, text: str) -> None:
        """Start a unit under this heading."""
        if not text:
            return
        if self._only_headings:
            self._blocks.append(text)
        else:
            self._flush()
            self._blocks = [text]
        self._section = text
        self._only_headings = True

    def block(self, text: str, *, tables: int = 0) -> None:
        """Add a paragraph, list, code block or table (`tables` = how many tables its text holds)."""
        if text:
            self._blocks.append(text)
            self._tables += tables
            self._only_headings = False

    def finish(self) -> list[Page]:
        """The units, the last one included."""
        self._flush()
        return self.pages

    def _flush(self) -> None:
        if self._blocks:
            self.pages.append(
                Page(text="\n\n".join(self._blocks), section=self._section, tables=self._tables)
            )
        self._blocks, self._tables, self._only_headings = [], 0, False
