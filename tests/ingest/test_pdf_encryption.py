"""Encrypted PDFs: AES and RC4 with an empty user password open as they are; others open with the password
given (`--pdf-password`, for every PDF or per file), and without it fail naming the option. Passwords are
never written to a reason, a record or an object's repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.document import LoadError, ParseOptions, PdfPasswords, RawSource
from ingest.formats.pdf import load_pdf
from ingest.load import parse
from tests.helpers import SAMPLE_CORPUS, docent_env, run_docent
from tests.ingest.pdf_fixtures import encrypted

SAMPLE = (SAMPLE_CORPUS / "compost-field-guide.pdf").read_bytes()


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128", "RC4-40"])
def test_pdf_encrypted_with_an_empty_user_password_opens_with_its_layout(algorithm: str) -> None:
    locked = encrypted(SAMPLE, user_password="", algorithm=algorithm)
    document = load_pdf(locked, source="s.pdf", fallback_title="s.pdf")
    assert [page.page for page in document.pages] == [1, 2, 3, 4]
    assert document.pages[3].section == "Bokashi Fermentation"
    assert "airtight bucket" in document.pages[3].text


def test_pdf_with_a_user_password_fails_naming_the_option_and_opens_with_it() -> None:
    locked = encrypted(SAMPLE, user_password="correct horse", algorithm="AES-256")
    with pytest.raises(
        LoadError, match=r"^encrypted PDF: it needs a password; give it with .*--pdf-password"
    ):
        load_pdf(locked, source="locked.pdf", fallback_title="locked.pdf")
    with pytest.raises(LoadError, match="none given opens it") as wrong:
        load_pdf(locked, source="locked.pdf", fallback_title="locked.pdf", passwords=["battery staple"])
    assert "battery staple" not in str(wrong.value)
    opened = load_pdf(locked, source="locked.pdf", fallback_title="f", passwords=["wrong", "correct horse"])
    assert [page.page for page in opened.pages] == [1, 2, 3, 4]


def test_per_file_password_is_tried_on_that_file_only_and_first() -> None:
    passwords = PdfPasswords.parse(["report.pdf=owl", "everywhere", "*=a.pdf=b", "reports/q3.pdf=lark"])
    assert passwords.candidates("/data/report.pdf", "report.pdf") == ["owl", "everywhere", "a.pdf=b"]
    assert passwords.candidates("/data/other.pdf", "other.pdf") == ["everywhere", "a.pdf=b"]
    assert passwords.candidates("/srv/reports/q3.pdf", "q3.pdf")[0] == "lark"
    options = ParseOptions(pdf_passwords=passwords)
    assert "owl" not in repr(options) and "everywhere" not in repr(options)
    locked = encrypted(SAMPLE, user_password="owl", algorithm="AES-128")
    document = parse(RawSource("/data/report.pdf", locked, "pdf", "report.pdf"), options)
    assert document.page_count == 4
    with pytest.raises(LoadError, match="needs a password"):
        parse(RawSource("/data/other.pdf", locked, "pdf", "other.pdf"), options)


def test_docent_ingest_pdf_password_for_all_and_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "alpha.pdf").write_bytes(encrypted(SAMPLE, user_password="alpha secret", algorithm="AES-256"))
    (folder / "beta.pdf").write_bytes(encrypted(SAMPLE, user_password="beta secret", algorithm="RC4-128"))
    (folder / "gamma.pdf").write_bytes(encrypted(SAMPLE, user_password="gamma secret", algorithm="AES-256"))
    data_dir = tmp_path / "data"
    passwords = ["--pdf-password", "alpha.pdf=alpha secret", "--pdf-password", "beta secret"]
    done = run_docent(["ingest", str(folder), "--json", *passwords], docent_env(data_dir), timeout=180)
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert sorted(Path(r["source"]).name for r in summary["results"] if r["status"] == "added") == [
        "alpha.pdf",
        "beta.pdf",
    ]
    [failure] = summary["failures"]
    assert Path(failure["source"]).name == "gamma.pdf"
    assert "--pdf-password" in failure["reason"]
    stored = b"".join(path.read_bytes() for path in data_dir.rglob("*") if path.is_file())
    for secret in ("alpha secret", "beta secret"):
        assert secret not in done.stdout + done.stderr
        assert secret.encode() not in stored
