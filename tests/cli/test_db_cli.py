"""`docent db upgrade` / `docent db current` on a real PostgreSQL, and a server that refuses an old schema."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import docent_env, free_port, run_docent


def test_serve_refuses_an_unmigrated_database_until_db_upgrade_runs(pg_url: str, tmp_path: Path) -> None:
    env = docent_env(tmp_path / "data", DOCENT_DATABASE_URL=pg_url)
    refused = run_docent(["serve", "--port", str(free_port())], env, timeout=120)
    assert refused.returncode != 0
    assert "docent db upgrade" in refused.stderr and "no Docent schema" in refused.stderr
    assert run_docent(["db", "current"], env).returncode == 1
    upgraded = run_docent(["db", "upgrade"], env, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded from an empty database" in upgraded.stdout
    again = run_docent(["db", "upgrade"], env, timeout=120)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    current = run_docent(["db", "current"], env)
    now, needed = (part.split(": ")[1] for part in current.stdout.strip().split("; "))
    assert current.returncode == 0 and now == needed != "none"


def test_db_upgrade_names_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    done = run_docent(["db", "upgrade"], docent_env(tmp_path / "data", DOCENT_DATABASE_URL=url), timeout=60)
    assert done.returncode == 1 and "cannot upgrade" in done.stderr and "nothing" in done.stderr
