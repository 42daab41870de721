"""POST /ingest with `multipart/form-data`, as curl and browsers send files, on a real `docent serve`: several
files and URLs in one job, the upload limit counted as the body streams in, the same auth, scope and
validation as the JSON body, and (server mode) the files carried to a `docent worker` through the database."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.support.servers import docent_serving
from tests.fixtures_http import Reply, Site, serving
from tests.helpers import SAMPLE_CORPUS, create_key, docent_env, docent_server, run_docent
from tests.ingest.test_worker import worker

LIMIT = 400_000
"""DOCENT_MAX_UPLOAD_BYTES of the server under test."""
SAMPLE_PDF = SAMPLE_CORPUS / "compost-field-guide.pdf"
NOTES = b"Bleed radiators every autumn so that trapped air does not keep them cold at the top.\n"
PAGE = b"<html><title>Heat pumps</title><body><p>A heat pump moves heat from outside air.</p></body></html>"


@dataclass
class Server:
    base: str
    ingest: dict[str, str]
    query: dict[str, str]
    site: Site


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("multipart")
    data_dir = root / "data"
    ingest_key = create_key(data_dir, "loader", "ingest,query")
    query_key = create_key(data_dir, "reader", "query")
    with serving({"/heat-pumps": Reply(PAGE)}) as site:
        allow = f'["{site.base.removeprefix("http://")}"]'
        env = {"DOCENT_AUTH": "on", "DOCENT_MAX_UPLOAD_BYTES": str(LIMIT), "DOCENT_FETCH_ALLOW": allow}
        with docent_server(data_dir, root / "server.log", **env) as base:
            yield Server(base, _bearer(ingest_key), _bearer(query_key), site)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait(base: str, headers: dict[str, str], job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{base}/ingest/{job_id}", headers=headers, timeout=10).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise TimeoutError(job_id)


def _post(server: Server, headers: dict[str, str] | None = None, **parts: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base}/ingest", headers=server.ingest if headers is None else headers, timeout=60, **parts
    )


def test_several_files_and_a_url_in_one_multipart_body_make_one_job_with_a_report_per_source(
    server: Server,
) -> None:
    files = [
        ("file", ("compost-field-guide.pdf", SAMPLE_PDF.read_bytes(), "application/pdf")),
        ("file", ("radiator notes.txt", NOTES, "text/plain")),
        ("file", ("../../etc/lofts.html", b"<h1>Lofts</h1><p>Lay 270 mm of mineral wool.</p>", "text/html")),
    ]
    data = {"url": server.site.url("/heat-pumps"), "collection": "uploads"}
    started = _post(server, files=files, data=data)
    assert started.status_code == 202, started.text
    assert started.json()["collection"] == "uploads"
    job = _wait(server.base, server.ingest, started.json()["id"])
    assert job["status"] == "done" and job["done"] == job["total"] == 4, job
    results = {Path(r["source"]).name: r for r in job["results"]}
    assert [r["reason"] for r in job["results"]] == [None] * 4, job["results"]
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(
        ["heat-pumps", "compost-field-guide.pdf", "radiator notes.txt", "lofts.html"], "added"
    )
    assert results["lofts.html"]["source"].startswith("uploads/")  # the name alone, inside the data dir
    pdf = results["compost-field-guide.pdf"]["report"]
    assert (pdf["pages"], pdf["empty_pages"], pdf["ocr_pages"]) == (4, 0, 0) and pdf["characters"] > 2000
    assert results["radiator notes.txt"]["report"]["characters"] == len(NOTES.strip())
    listed = httpx.get(
        f"{server.base}/sources", params={"collection": "uploads"}, headers=server.query, timeout=10
    ).json()
    guide = next(s for s in listed if s["uri"].endswith("compost-field-guide.pdf"))
    one = httpx.get(
        f"{server.base}/sources/{guide['id']}", params={"collection": "uploads"}, headers=server.query
    )
    assert one.status_code == 200 and one.json() == guide and guide["report"] == pdf


def test_a_file_uploaded_by_multipart_and_then_as_base64_json_is_the_same_source(server: Server) -> None:
    first = _post(server, files=[("file", ("boiler.txt", NOTES + b"Service it yearly.\n"))])
    assert _wait(server.base, server.ingest, first.json()["id"])["results"][0]["status"] == "added"
    encoded = base64.b64encode(NOTES + b"Service it yearly.\n").decode()
    second = _post(server, json={"files": [{"name": "boiler.txt", "content_base64": encoded}]})
    job = _wait(server.base, server.ingest, second.json()["id"])
    assert [r["status"] for r in job["results"]] == ["unchanged"]


def test_a_job_whose_every_source_failed_ends_failed_and_says_so(server: Server) -> None:
    started = _post(server, files=[("file", ("blank.txt", b"  \n")), _field("collection", "blank")])
    job = _wait(server.base, server.ingest, started.json()["id"])
    assert (job["status"], job["error"]) == ("failed", "every source failed (1)"), job
    [result] = job["results"]
    assert result["status"] == "failed" and result["reason"], result


def test_a_retry_with_the_same_idempotency_key_and_files_gets_the_first_job(server: Server) -> None:
    headers = {**server.ingest, "Idempotency-Key": "multipart-retry-1"}
    parts = [("file", ("retry.txt", NOTES + b"Retry.\n")), _field("collection", "retry")]
    first = _post(server, headers=headers, files=parts)
    assert first.status_code == 202, first.text
    again = _post(server, headers=headers, files=parts)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = _post(server, headers=headers, files=[("file", ("retry.txt", b"Other bytes.\n")), parts[1]])
    assert other.status_code == 409 and "different request body" in other.json()["detail"]
    assert _wait(server.base, server.ingest, first.json()["id"])["status"] == "done"


def test_curl_uploads_a_file_as_users_send_it(server: Server, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    report = tmp_path / "report.txt"
    report.write_bytes(b"Draught-proofing: seal gaps around windows and doors with foam strips.\n")
    done = subprocess.run(
        [
            curl,
            "-sS",
            "-H",
            f"Authorization: {server.ingest['Authorization']}",
            "-F",
            f"file=@{report}",
            "-F",
            "collection=curl",
            "-w",
            "\n%{http_code}",
            f"{server.base}/ingest",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "202", done.stdout + done.stderr
    job = _wait(server.base, server.ingest, json.loads(body)["id"])
    assert [(Path(r["source"]).name, r["status"]) for r in job["results"]] == [("report.txt", "added")]


def test_a_body_over_the_upload_limit_is_413_even_when_streamed_without_a_length(server: Server) -> None:
    big = [("file", ("big.txt", b"x" * (LIMIT + 1)))]
    declared = _post(server, files=big)
    assert declared.status_code == 413 and f"the limit is {LIMIT} bytes" in declared.json()["detail"]
    boundary = "docent-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'.encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(LIMIT // 10_000 + 2):
            yield b"y" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**server.ingest, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    streamed = httpx.post(f"{server.base}/ingest", headers=headers, content=chunks(), timeout=60)
    assert streamed.status_code == 413, streamed.text
    assert httpx.get(f"{server.base}/health", timeout=10).status_code == 200


def test_a_key_without_the_ingest_scope_is_refused_and_get_me_tells_a_key_its_scopes(server: Server) -> None:
    files = [("file", ("notes.txt", NOTES))]
    refused = _post(server, headers=server.query, files=files)
    assert refused.status_code == 403 and "`ingest` scope" in refused.json()["detail"]
    anonymous = _post(server, headers={}, files=files)
    assert anonymous.status_code == 401
    me = {
        who: httpx.get(f"{server.base}/me", headers=h, timeout=10)
        for who, h in (("i", server.ingest), ("q", server.query))
    }
    assert me["i"].json() == {"name": "loader", "workspace": "default", "scopes": ["query", "ingest"]}
    assert me["q"].json()["scopes"] == ["query"]  # what the chat page reads to hide its upload panel
    assert httpx.get(f"{server.base}/me", timeout=10).status_code == 401


def _field(name: str, value: str) -> tuple[str, tuple[None, bytes]]:
    """A multipart part that is a plain field (no file name)."""
    return (name, (None, value.encode()))


NOTES_PART = ("file", ("notes.txt", NOTES))


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([_field("file", "not a file")], "must be a file with a file name"),
        ([("file", (".env", b"SECRET=1"))], "bad file name"),
        ([("document", ("notes.txt", NOTES))], "only `file` parts may be files"),
        ([NOTES_PART, _field("colour", "red")], "colour"),
        ([NOTES_PART, _field("collection", "a/b")], "collection"),
        ([_field("url", "ftp://example.org/notes.txt")], "urls"),
        ([_field("collection", "docent")], "give at least one"),
        ([("file", (f"{n}.txt", b"x")) for n in range(201)], "at most 200 files"),
        ([("file", (f"{n}.txt", b"x")) for n in range(202)], "at most 200 files"),
    ],
)
def test_bad_parts_are_422_naming_the_part(
    server: Server, parts: list[tuple[str, tuple[str | None, bytes]]], message: str
) -> None:
    answered = _post(server, files=parts)
    assert answered.status_code == 422, answered.text
    assert message in answered.text, answered.text


def test_a_body_neither_json_nor_multipart_is_415_and_broken_multipart_is_400(server: Server) -> None:
    plain = _post(server, headers={**server.ingest, "Content-Type": "text/plain"}, content=b"notes")
    assert plain.status_code == 415 and "multipart/form-data" in plain.json()["detail"]
    broken = _post(
        server, headers={**server.ingest, "Content-Type": "multipart/form-data"}, content=b"--x\r\nnope"
    )
    assert broken.status_code == 400 and broken.json()["detail"].startswith("multipart body:"), broken.text


def test_in_server_mode_multipart_files_reach_a_worker_through_the_database(
    pg_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """The replica takes the upload; a `docent worker` with a data dir of its own (as on another machine)
    finds the files in `ingest_uploads` and ingests them; the replica reports the job and the sources."""
    shared = {"DOCENT_DATABASE_URL": pg_url, "DOCENT_REDIS_PREFIX": redis_prefix}
    replica_env = docent_env(tmp_path / "replica", **shared)
    upgraded = run_docent(["db", "upgrade"], replica_env, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    with (
        worker(docent_env(tmp_path / "worker", **shared), tmp_path / "worker.log"),
        docent_serving(replica_env, tmp_path / "replica.log") as (base, _process),
    ):
        files = [("file", ("radiators.txt", NOTES)), ("file", ("guide.pdf", SAMPLE_PDF.read_bytes()))]
        started = httpx.post(f"{base}/ingest", files=files, timeout=60)
        assert started.status_code == 202, started.text
        job = _wait(base, {}, started.json()["id"], timeout=120)
    assert job["status"] == "done", job
    assert {(Path(r["source"]).name, r["status"]) for r in job["results"]} == {
        ("radiators.txt", "added"),
        ("guide.pdf", "added"),
    }
    assert not (tmp_path / "replica" / "uploads").exists()  # the worker placed them, in its own data dir
    assert {p.name for p in (tmp_path / "worker" / "uploads").rglob("*") if p.is_file()} == {
        "radiators.txt",
        "guide.pdf",
    }
