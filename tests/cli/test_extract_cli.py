"""`docent extract` as users run it: the real console command in a subprocess, over files the tests make and a
real HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pypdf

from tests.fixtures_http import Reply, serving
from tests.helpers import REPO_ROOT, SAMPLE_CORPUS, docent_env, run_docent
from tests.ingest.office_files import heat_pump_docx, results_pptx


def _extract(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_docent(["extract", *args], docent_env(tmp_path / "data"), timeout=120)


def test_extract_prints_each_unit_under_its_header_line(tmp_path: Path) -> None:
    done = _extract([str(heat_pump_docx(tmp_path / "guide.docx"))], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == [
        "— Heat pump guide —",
        "Heat pump guide",
        "",
        "Heat pumps move heat instead of making it.",
    ]
    assert "\n— Costs —\nCosts\n\nPrices rose" in done.stdout
    assert "\nHeat pump | 2022: 7,000 | 2023: 7,500\n" in done.stdout
    assert "\n— Savings —\n" in done.stdout
    assert "Heat pump guide (docx, 3 unit(s))" in done.stderr


def test_extract_of_a_pdf_heads_each_page_with_its_number(tmp_path: Path) -> None:
    done = _extract([str(SAMPLE_CORPUS / "compost-field-guide.pdf")], tmp_path)
    assert done.returncode == 0, done.stderr
    headers = [line for line in done.stdout.split("\n") if line.startswith("— ")]
    assert headers[0].startswith("— page 1") and headers[-1].startswith("— page 4")


def test_extract_opens_an_encrypted_pdf_with_the_password_given_as_to_ingest(tmp_path: Path) -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLE_CORPUS / "compost-field-guide.pdf")
    writer.encrypt("s3cret", algorithm="RC4-128")
    locked = tmp_path / "locked.pdf"
    writer.write(locked)
    refused = _extract([str(locked)], tmp_path)
    opened = _extract([str(locked), "--pdf-password", "locked.pdf=s3cret"], tmp_path)
    assert refused.returncode == 1 and "password" in refused.stderr, refused.stderr
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.startswith("— page 1") and "s3cret" not in opened.stdout + opened.stderr


def test_extract_json_is_the_document_as_it_would_be_indexed(tmp_path: Path) -> None:
    deck = results_pptx(tmp_path / "results.pptx")
    done = _extract([str(deck), "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {k: v for k, v in document.items() if k != "units"} == {
        "source": str(deck.resolve()),
        "title": "Quarterly results",
        "kind": "pptx",
        "page_count": 3,
        "warnings": ["slide(s) 3 have no text (pictures only?)"],
        "empty_pages": [3],
    }
    assert document["units"][1] == {
        "page": 2,
        "section": "Sales by region",
        "ocr": False,
        "tables": 1,
        "text": "Sales by region\n\nRegion | Sales\nNorth | Sales: 40\nSouth | Sales: 55",
    }


def test_extract_fetches_a_url_under_the_same_policy_as_ingest(tmp_path: Path) -> None:
    routes = {"/prices.csv": Reply(b"model,price\nA1,9.50\n", content_type="text/csv")}
    with serving(routes) as site:
        refused = _extract([site.url("/prices.csv")], tmp_path)
        allowed = _extract([site.url("/prices.csv"), "--allow-private"], tmp_path)
    assert refused.returncode == 1 and "loopback" in refused.stderr, refused.stderr
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == "— unit 1 —\nmodel | price\nA1 | price: 9.50\n\n"


def test_extract_failure_exits_1_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.docx"
    broken.write_bytes(heat_pump_docx(tmp_path / "guide.docx").read_bytes()[:5000])
    for target, reason in [
        (broken, "corrupt .docx: the zip archive cannot be read"),
        (tmp_path / "missing.pdf", "no such file or directory"),
        (tmp_path, "a directory: give one file or URL"),
    ]:
        done = _extract([str(target)], tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"error: {target}: {reason}"), done.stderr
        assert done.stdout == ""


def test_extract_stores_nothing_and_loads_no_model(tmp_path: Path) -> None:
    """The command in-process in a fresh interpreter, which then says what it imported and wrote."""
    script = (
        "import sys\n"
        "from cli.main import app\n"
        "try:\n"
        f"    app(['extract', {str(heat_pump_docx(tmp_path / 'guide.docx'))!r}], standalone_mode=False)\n"
        "finally:\n"
        "    heavy = ('onnxruntime', 'chromadb', 'tokenizers', 'torch')\n"
        "    print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=docent_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("\n[]"), done.stdout[-300:]
    assert not (tmp_path / "data").exists()
