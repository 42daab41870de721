"""Smaller findings of the attack on `docent serve`, each fixed: lone surrogates gave 500s, the CSV export
wrote formulas, the data dir was world-readable, replies showed server paths."""

from __future__ import annotations

import base64
import csv
import io
import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import docent_server, ingest_sample

SURROGATE_BODIES = {
    "/invoke": '{"input": {"message": "is \\ud800 compost?"}}',
    "/stream": '{"input": {"message": "is \\ud800 compost?"}}',
    "/batch": '{"inputs": [{"message": "is \\ud800 compost?"}]}',
    "/v1/chat/completions": '{"model": "docent", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
    "/ingest": '{"urls": ["http://127.0.0.1:9/\\ud800"]}',
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingest_sample(tmp_path_factory.mktemp("hardening") / "data")


def test_a_lone_surrogate_in_a_json_body_is_a_422_on_every_route(data_dir: Path, tmp_path: Path) -> None:
    with docent_server(data_dir, tmp_path / "server.log") as base:
        for path, body in SURROGATE_BODIES.items():
            reply = httpx.post(
                f"{base}{path}", content=body, headers={"Content-Type": "application/json"}, timeout=60
            )
            assert reply.status_code == 422, (path, reply.status_code, reply.text)
            assert "surrogate" in reply.text, (path, reply.text)
        assert httpx.get(f"{base}/health").status_code == 200


def test_csv_export_does_not_write_formulas(data_dir: Path, tmp_path: Path) -> None:
    with docent_server(data_dir, tmp_path / "server.log") as base:
        body = {"input": {"message": '=HYPERLINK("http://127.0.0.1:9/x","compost")'}}
        thread = httpx.post(f"{base}/invoke", json=body, timeout=60).json()["output"]["thread_id"]
        exported = httpx.get(f"{base}/threads/{thread}/export", params={"format": "csv"}, timeout=60)
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.text)))
    cells = [cell for row in rows[1:] for cell in row]
    assert '\'=HYPERLINK("http://127.0.0.1:9/x","compost")' in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@"))]


def test_the_data_dir_is_private_to_its_owner(data_dir: Path) -> None:
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)
    for name in ("docent.sqlite", "checkpoints.sqlite"):
        path = data_dir / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (name, oct(path.stat().st_mode))


def test_answers_citations_sources_and_jobs_show_no_server_paths(tmp_path: Path) -> None:
    """Before: an upload's source was its absolute path under the data dir, in citations, /sources and the
    job's results."""
    data_dir = tmp_path / "data"
    ingest_sample(data_dir)
    notes = b"The greenhouse thermostat is set to 17 degrees in winter and vented at 27 degrees."
    upload = {"name": "greenhouse.txt", "content_base64": base64.b64encode(notes).decode()}
    with docent_server(data_dir, tmp_path / "server.log") as base:
        started = httpx.post(f"{base}/ingest", json={"files": [upload]}, timeout=60).json()
        deadline = time.monotonic() + 60
        job = started
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(f"{base}/ingest/{started['id']}", timeout=30).json()
        assert job["status"] == "done", job
        body = {"input": {"message": "What is the greenhouse thermostat set to in winter?"}}
        answer = httpx.post(f"{base}/invoke", json=body, timeout=60)
        listed = httpx.get(f"{base}/sources", timeout=30)
    replies = [json.dumps(job), answer.text, listed.text]
    server_root = str(data_dir.resolve().parent)
    for text in replies:
        assert server_root not in text, text[:500]
    cited = [c["source"] for c in answer.json()["output"]["citations"]]
    assert any(source.endswith("greenhouse.txt") for source in cited), cited
    assert not [s for s in [*cited, *(s["uri"] for s in listed.json())] if s.startswith("/")]
