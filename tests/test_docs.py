"""The documentation keeps up with the code: every setting has its row in docs/configuration.md, and every
file the README links to exists."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_configuration_table() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"| `DOCENT_{name.upper()}` |" not in table]
    assert not missing, f"regenerate the table in docs/configuration.md (its command is there): {missing}"


def test_the_configuration_table_names_no_setting_that_is_gone() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    named = set(re.findall(r"^\| `DOCENT_([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    assert named - {name.upper() for name in Settings.model_fields} == set()


def test_every_file_the_readme_links_to_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert links and [link for link in links if not (ROOT / link).exists()] == []
