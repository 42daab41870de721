"""`docent ingest` as users run it: the real console command in a subprocess, over real files and HTTP."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pypdf
import pytest

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.vector_store import VectorStore, open_chroma
from core.settings import Settings
from tests.fixtures_http import Reply, serving
from tests.helpers import ENERGY_CORPUS, SAMPLE_CORPUS, docent_env, docent_server, free_port, run_docent

ENERGY_SAVERS = ENERGY_CORPUS / "energy_savers.pdf"
GOOD_PAGE = b"""<html><head><title>Heat pumps</title></head><body>
<p>An air source heat pump moves heat from outside air into the home, even in winter.</p></body></html>"""


@dataclass
class Run:
    """A finished `docent ingest` subprocess."""

    done: subprocess.CompletedProcess[str]

    @property
    def summary(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.done.stdout)
        return parsed

    def reasons(self) -> dict[str, str]:
        """Failure reason by the file name or URL path of the failed item."""
        return {_short_name(p["source"]): p["reason"] for p in self.summary["failures"]}


def _short_name(source: str) -> str:
    return source.rsplit("/", 1)[-1]


def _ingest(args: list[str], data_dir: Path, **env: str) -> Run:
    return Run(run_docent(["ingest", *args], docent_env(data_dir, **env), timeout=180))


# The energy-saving corpus from ../shared, ingested twice into the same store.


@dataclass
class EnergyRuns:
    first: Run
    second: Run
    data_dir: Path


@pytest.fixture(scope="module")
def energy(tmp_path_factory: pytest.TempPathFactory) -> EnergyRuns:
    data_dir = tmp_path_factory.mktemp("energy") / "data"
    first = _ingest([f"{ENERGY_CORPUS}/", "--json"], data_dir)
    second = _ingest([f"{ENERGY_CORPUS}/", "--json"], data_dir)
    return EnergyRuns(first, second, data_dir)


def test_energy_corpus_ingests_both_pdfs_and_all_59_pages(energy: EnergyRuns) -> None:
    assert energy.first.done.returncode == 0, energy.first.done.stderr
    summary = energy.first.summary
    assert summary["sources"] == 2
    assert summary["pages"] == 59
    assert summary["chunks_added"] > 0
    assert summary["failures"] == []


def test_energy_corpus_pages_without_text_layer_are_warnings(energy: EnergyRuns) -> None:
    warnings = energy.first.summary["warnings"]
    assert {w["source"] for w in warnings} == {str(ENERGY_SAVERS)}
    assert [w["reason"].split(" has no text layer")[0] for w in warnings] == ["page 2", "page 43"]


def test_energy_corpus_json_file_is_ignored_not_failed(energy: EnergyRuns) -> None:
    ignored = energy.first.summary["ignored"]
    assert [(_short_name(p["source"]), p["reason"]) for p in ignored] == [
        ("energySavingUrls.json", "unsupported file type .json")
    ]


def test_energy_corpus_chunks_carry_one_based_page_numbers(energy: EnergyRuns) -> None:
    settings = Settings(data_dir=energy.data_dir)
    model = OnnxMiniLMEmbedder
    store = VectorStore(open_chroma(settings), model_id=model.model_id, dimension=model.dimension)
    collection = store.collection(settings.collection)
    page_17 = collection.get(
        where={"$and": [{"source": str(ENERGY_SAVERS)}, {"page": 17}]}, include=["documents"]
    )
    assert any("10%" in text for text in page_17["documents"] or [])
    pages = {m["page"] for m in collection.get(where={"source": str(ENERGY_SAVERS)})["metadatas"] or []}
    assert min(pages) == 1 and max(pages) == 44  # type: ignore[type-var]
    assert not pages & {0, 2, 43}


def test_reingest_of_unchanged_energy_corpus_adds_no_chunks(energy: EnergyRuns) -> None:
    assert energy.second.done.returncode == 0, energy.second.done.stderr
    assert energy.second.summary["chunks_added"] == 0
    assert energy.second.summary["chunks_skipped"] == energy.first.summary["chunks_added"]


# One run mixing good and bad items: the bad ones fail with reasons, the good ones go in.


def _blank_page_pdf(path: Path) -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.write(path)


def _encrypted_pdf(path: Path) -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLE_CORPUS / "compost-field-guide.pdf")
    writer.encrypt(user_password="correct horse", algorithm="AES-256")
    writer.write(path)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("mixed")
    files = root / "files"
    files.mkdir()
    (files / "random-bytes.pdf").write_bytes(random.Random(7).randbytes(4096))
    (files / "damaged.pdf").write_bytes(b"%PDF-1.7\n" + random.Random(8).randbytes(4096))
    (files / "empty.pdf").write_bytes(b"")
    _blank_page_pdf(files / "scanned.pdf")
    _encrypted_pdf(files / "locked.pdf")
    (files / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (files / "good.html").write_bytes(GOOD_PAGE)
    routes = {
        "/good": Reply(GOOD_PAGE.replace(b"Heat pumps", b"Heat pumps online")),
        "/slow": Reply(delay_s=60),
    }
    with serving(routes) as site:
        names = ["random-bytes.pdf", "damaged.pdf", "empty.pdf", "scanned.pdf", "locked.pdf", "photo.png"]
        items = [str(files / name) for name in names]
        items += [site.url("/missing"), site.url("/slow"), str(files / "good.html"), site.url("/good")]
        yield _ingest([*items, "--json", "--allow-private"], root / "data", DOCENT_HTTP_TIMEOUT_S="1")


def test_mixed_run_exits_non_zero(mixed: Run) -> None:
    assert mixed.done.returncode == 1, mixed.done.stderr


def test_mixed_run_still_ingests_the_good_file_and_the_good_url(mixed: Run) -> None:
    assert mixed.summary["sources"] == 2
    assert mixed.summary["chunks_added"] > 0
    assert {"good.html", "good"}.isdisjoint(mixed.reasons())


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("random-bytes.pdf", "not a PDF: no %PDF- header"),
        ("damaged.pdf", "corrupt PDF"),
        ("empty.pdf", "empty file (0 bytes)"),
        ("scanned.pdf", "PDF has no text layer on any of its 1 page(s) (a blank page)"),
        ("locked.pdf", "encrypted PDF: it needs a password"),
        ("photo.png", "unsupported file type .png"),
        ("missing", "HTTP 404 Not Found"),
        ("slow", "timed out after 1s fetching URL"),
    ],
)
def test_mixed_run_lists_each_bad_item_with_its_reason(mixed: Run, item: str, reason: str) -> None:
    assert mixed.reasons()[item].startswith(reason)


def test_mixed_run_lists_nothing_but_the_bad_items(mixed: Run) -> None:
    assert len(mixed.summary["failures"]) == 8


# The human summary, and errors that stop a run.


def test_human_output_summarises_on_stdout_and_shows_progress_on_stderr(tmp_path: Path) -> None:
    page = tmp_path / "[draft] heat pumps.html"  # brackets must not be read as console markup
    page.write_bytes(GOOD_PAGE)
    missing = tmp_path / "gone [/b].pdf"
    run = _ingest([str(page), str(missing)], tmp_path / "data")
    out, err = run.done.stdout, run.done.stderr
    assert run.done.returncode == 1, err
    rows = (
        ("sources ingested", 1),
        ("pages", 1),
        ("chunks added", 1),
        ("chunks skipped (already stored)", 0),
        ("failures", 1),
    )
    for label, value in rows:
        assert f"{label} " in out and f" {value} " in out.split(label, 1)[1].splitlines()[0]
    assert f"failed {missing}: no such file or directory" in out
    assert f"ingest 1/2 {page}" in err and f"ingest 2/2 {missing}" in err
    assert "ingest 1/2" not in out and "sources ingested" not in err


def test_bad_collection_name_exits_2_with_the_reason(tmp_path: Path) -> None:
    run = _ingest(["--collection", "a b", str(SAMPLE_CORPUS / "composting-basics.html")], tmp_path / "data")
    assert run.done.returncode == 2
    assert "error:" in run.done.stderr and "Got: a b" in run.done.stderr


def test_ingest_refuses_a_loopback_url_unless_the_operator_allows_private_addresses(tmp_path: Path) -> None:
    with serving({"/page": Reply(GOOD_PAGE)}) as site:
        refused = _ingest([site.url("/page"), "--json"], tmp_path / "data")
        allowed = _ingest([site.url("/page"), "--json", "--allow-private"], tmp_path / "data")
    assert refused.done.returncode == 1 and refused.summary["sources"] == 0
    assert "loopback" in " ".join(refused.reasons().values()), refused.reasons()
    assert allowed.done.returncode == 0 and allowed.summary["chunks_added"] > 0, allowed.done.stderr


# While `docent serve` holds the data dir: refuse, naming the server, or go through it with --server.

NOTE = b"Bleed radiators every autumn so that trapped air does not keep them cold at the top."


def test_ingest_while_a_server_holds_the_data_dir_refuses_naming_it_and_writes_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    notes = tmp_path / "notes.txt"
    notes.write_bytes(NOTE)
    with docent_server(data_dir, tmp_path / "server.log") as base:
        served = httpx.get(f"{base}/sources", timeout=10).json()
        refused = _ingest([str(notes), "--json"], data_dir)
        said = " ".join(refused.done.stderr.split())  # as one line, however the console wrapped it
        assert refused.done.returncode == 2
        assert "a server (pid " in said and f", {base}) is using this data dir" in said
        assert f"use `docent ingest --server {base}`" in said
        assert httpx.get(f"{base}/sources", timeout=10).json() == served  # nothing written under it
        ask = httpx.post(
            f"{base}/invoke", json={"input": {"message": "When should I bleed radiators?"}}, timeout=30
        )
        assert ask.status_code == 200
    after = _ingest([str(notes), "--json"], data_dir)  # the server is gone: the lock went with it
    assert after.done.returncode == 0 and after.summary["chunks_added"] == 1, after.done.stderr


def test_ingest_through_the_server_uploads_files_and_follows_the_job_to_its_end(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "radiators.txt").write_bytes(NOTE)
    (folder / "lofts.md").write_text(
        "Lay loft insulation at least 270 mm deep, joists covered by a second layer."
    )
    with docent_server(data_dir, tmp_path / "server.log") as base:
        run = _ingest(["--server", base, str(folder), "--collection", "home", "--json"], data_dir)
        assert run.done.returncode == 0, run.done.stderr
        job = run.summary
        assert (job["status"], job["done"], job["total"]) == ("done", 2, 2)
        assert sorted(Path(r["source"]).name for r in job["results"]) == ["lofts.md", "radiators.txt"]
        assert "ingest 1/2 " in run.done.stderr or "ingest 2/2 " in run.done.stderr  # progress as it went
        listed = httpx.get(f"{base}/sources", params={"collection": "home"}, timeout=10).json()
        assert sorted(Path(s["uri"]).name for s in listed) == ["lofts.md", "radiators.txt"]
        again = _ingest(["--server", base, str(folder), "--collection", "home"], data_dir)
        assert again.done.returncode == 0 and "0 chunks added" in again.done.stdout, again.done.stdout
        missing = _ingest(["--server", base, str(tmp_path / "nope.txt")], data_dir)
        assert missing.done.returncode == 2 and "nope.txt: no such file" in missing.done.stderr


def test_ingest_through_an_unreachable_server_says_so(tmp_path: Path) -> None:
    run = _ingest(["--server", f"http://127.0.0.1:{free_port()}", str(SAMPLE_CORPUS)], tmp_path / "data")
    assert run.done.returncode == 2 and "cannot reach the server at http://127.0.0.1:" in run.done.stderr
