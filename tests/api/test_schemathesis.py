"""Schemathesis against a real server (bench/schemathesis_run.py): no 5xx, no response off its schema."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

SUMMARY = re.compile(
    r"operations tested: (?P<tested>\d+)/(?P<selected>\d+)\s+test cases: (?P<cases>\d+)\s+"
    r"failures: (?P<failures>\d+)\s+errors: (?P<errors>\d+)"
)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    """The bench script ingests the sample corpus, serves it with auth on, and runs every schemathesis check
    over every operation of /openapi.json (phases examples, coverage, fuzzing, stateful)."""
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "bench/schemathesis_run.py", "--max-examples", "25", "--report-dir", str(reports)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    output = done.stdout + done.stderr
    found = SUMMARY.search(output)
    assert found, output[-6000:]
    figures = {name: int(value) for name, value in found.groupdict().items()}
    assert figures["failures"] == 0 and figures["errors"] == 0, output[-12000:]
    assert figures["selected"] >= 20 and figures["tested"] == figures["selected"], figures
    assert figures["cases"] >= 500, figures
    assert done.returncode == 0, output[-6000:]
    junit = ET.parse(next(reports.glob("junit-*.xml"))).getroot()
    assert junit.get("failures") == "0" and junit.get("errors") == "0"
    assert int(junit.get("tests", "0")) >= figures["selected"]
