"""Markdown: its headings make the sections, code and tables survive, front matter gives the title."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.document import LoadedDocument, LoadError
from ingest.formats.markdown import load_markdown
from ingest.load import load_path


def _md(text: str) -> LoadedDocument:
    return load_markdown(text, source="notes.md", fallback_title="notes.md")


def test_atx_and_setext_headings_start_sections() -> None:
    document = _md(
        "Heating\n=======\n\nStart with the boiler.\n\n## Radiators\n\nBleed them yearly.\n\n"
        "Valves\n------\n\nTurn them slowly.\n"
    )
    assert [(p.section, p.text) for p in document.pages] == [
        ("Heating", "Heating\n\nStart with the boiler."),
        ("Radiators", "Radiators\n\nBleed them yearly."),
        ("Valves", "Valves\n\nTurn them slowly."),
    ]
    assert (document.kind, document.title) == ("markdown", "Heating")


def test_text_before_the_first_heading_is_a_unit_without_section() -> None:
    pages = _md("Read this first.\n\n# Setup\n\nPlug it in.").pages
    assert [(p.section, p.text) for p in pages] == [
        (None, "Read this first."),
        ("Setup", "Setup\n\nPlug it in."),
    ]


def test_heading_right_under_a_heading_opens_the_next_unit_and_level_5_is_a_paragraph() -> None:
    pages = _md("# Guide\n\n## Costs\n\nCheap.\n\n##### Note\n\nVAT extra.").pages
    assert [(p.section, p.text) for p in pages] == [
        ("Costs", "Guide\n\nCosts\n\nCheap.\n\nNote\n\nVAT extra.")
    ]


def test_fenced_code_is_kept_as_written_and_its_hash_lines_are_no_headings() -> None:
    source = "# Build\n\n```bash\n# install first\nmake install\n```\n\n    indented code\n"
    pages = _md(source).pages
    assert len(pages) == 1
    assert pages[0].text == "Build\n\n```bash\n# install first\nmake install\n```\n\n    indented code"


def test_pipe_table_becomes_labelled_rows() -> None:
    page = _md(
        "## Prices\n\n| Model | Price | Stock |\n|---|--:|:-:|\n| A1 | 9.50 | **4** |\n| B2 | 12 | |\n"
    ).pages[0]
    assert page.text == "Prices\n\nModel | Price | Stock\nA1 | Price: 9.50 | Stock: 4\nB2 | Price: 12"
    assert page.tables == 1


def test_front_matter_gives_the_title_and_is_not_indexed() -> None:
    document = _md('---\ntitle: "Boiler notes"\ntags: [heat]\n---\n# Service\n\nOnce a year.\n')
    assert document.title == "Boiler notes"
    assert [p.text for p in document.pages] == ["Service\n\nOnce a year."]
    toml = _md("+++\ntitle = 'Pumps'\n+++\nText.")
    assert (toml.title, toml.pages[0].text) == ("Pumps", "Text.")


def test_link_targets_emphasis_and_comments_are_dropped_list_markers_kept() -> None:
    text = (
        _md(
            "See [the guide](https://example.org/guide) and ![a pump](pump.png).\n\n"
            "- **Bleed** radiators\n- check the [valve][v]\n\n<!-- draft -->\n\n[v]: https://example.org/v\n"
        )
        .pages[0]
        .text
    )
    assert text == "See the guide and a pump.\n\n- Bleed radiators\n- check the valve"


def test_title_falls_back_to_the_file_name_without_a_level_1_heading() -> None:
    assert _md("## Only a subsection\n\nText.").title == "notes.md"


def test_markdown_of_only_front_matter_or_comments_fails() -> None:
    with pytest.raises(LoadError, match="no text found in Markdown"):
        _md("---\ntitle: Draft\n---\n<!-- nothing yet -->\n")
    with pytest.raises(LoadError, match=r"^file is empty$"):
        _md(" \n\n")


def test_md_and_markdown_files_are_read_as_markdown_with_windows_line_ends(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_bytes(b"# Loft\r\n\r\nKeep it dry.\r\n")
    (tmp_path / "b.markdown").write_text("Plain words.")
    first = load_path(tmp_path / "a.md")
    assert (first.kind, first.pages[0].section, first.pages[0].text) == (
        "markdown",
        "Loft",
        "Loft\n\nKeep it dry.",
    )
    assert load_path(tmp_path / "b.markdown").kind == "markdown"
