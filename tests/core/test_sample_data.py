"""The sample corpus the README ingests: the committed PDF is what the script in the repo produces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT, SAMPLE_CORPUS


def test_sample_pdf_is_reproduced_byte_for_byte_by_its_script(tmp_path: Path) -> None:
    out = tmp_path / "guide.pdf"
    subprocess.run([sys.executable, str(REPO_ROOT / "data" / "make_sample_pdf.py"), str(out)], check=True)
    assert out.read_bytes() == (SAMPLE_CORPUS / "compost-field-guide.pdf").read_bytes()
