"""`docent ask` over the seed project's real PDFs: the acceptance question, plain and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import ENERGY_CORPUS, docent_env, run_docent

THERMOSTAT = "How much can I save a year by turning my thermostat back for 8 hours a day?"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    environment = docent_env(tmp_path_factory.mktemp("ask") / "data")
    done = run_docent(["ingest", str(ENERGY_CORPUS)], environment)
    assert done.returncode == 0, done.stdout + done.stderr
    return environment


def test_ask_answers_ten_percent_citing_energy_savers_page_17(env: dict[str, str]) -> None:
    done = run_docent(["ask", THERMOSTAT], env)
    assert done.returncode == 0, done.stderr
    assert "10%" in done.stdout
    assert "energy_savers.pdf, page 17" in done.stdout
    assert "model: extractive" in done.stdout


def test_ask_json_prints_the_invoke_output_and_continues_a_thread(env: dict[str, str]) -> None:
    first = json.loads(run_docent(["ask", THERMOSTAT, "--json"], env).stdout)
    output = first["output"]
    assert output["model"] == "extractive" and first["metadata"]["run_id"]
    assert any(Path(c["source"]).name == "energy_savers.pdf" and c["page"] == 17 for c in output["citations"])
    second = json.loads(
        run_docent(
            ["ask", "And what if I have a heat pump?", "--thread", output["thread_id"], "--json"], env
        ).stdout
    )
    assert second["output"]["thread_id"] == output["thread_id"]
    assert second["output"]["citations"]


def test_ask_filter_keeps_every_citation_inside_it(env: dict[str, str]) -> None:
    done = run_docent(["ask", THERMOSTAT, "--filter", "source=energy_savers,page=17", "--json"], env)
    assert done.returncode == 0, done.stderr
    citations = json.loads(done.stdout)["output"]["citations"]
    assert citations and {(Path(c["source"]).name, c["page"]) for c in citations} == {
        ("energy_savers.pdf", 17)
    }
    other = "Energy-Saving-Trust-Warm-Home-Hacks-guide-final.pdf"
    repeated = ["--filter", f"source={other}", "--filter", "kind=pdf"]
    elsewhere = json.loads(run_docent(["ask", THERMOSTAT, *repeated, "--json"], env).stdout)["output"]
    assert elsewhere["citations"] and {Path(c["source"]).name for c in elsewhere["citations"]} == {other}


def test_ask_refuses_a_bad_filter_saying_what_is_wrong(env: dict[str, str]) -> None:
    done = run_docent(["ask", THERMOSTAT, "--filter", "colour=red"], env)
    assert done.returncode == 2
    assert "--filter" in done.stderr and "unknown filter key 'colour'" in done.stderr
    backwards = run_docent(["ask", THERMOSTAT, "--filter", "page=9-2"], env)
    assert backwards.returncode == 2 and "page_from (9) is after page_to (2)" in backwards.stderr
