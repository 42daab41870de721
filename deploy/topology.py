"""The server-mode topology in one place: which processes run, with which command and which environment.

deploy/local-cluster starts it on loopback ports; `python -m deploy.topology` writes deploy/compose.yaml and
deploy/nginx.compose.conf from it, so what the tests start is what compose ships (tests/deploy checks the
files are current). Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
NGINX_TEMPLATE = DEPLOY_DIR / "nginx.conf.template"
COMPOSE_FILE = DEPLOY_DIR / "compose.yaml"
NGINX_COMPOSE_CONF = DEPLOY_DIR / "nginx.compose.conf"

REPLICAS = 2
"""API replicas of the shipped topology (compose) and of the local cluster by default."""
MAX_UPLOAD_BYTES = 50_000_000
"""DOCENT_MAX_UPLOAD_BYTES' default (core/settings.py; a test keeps them equal): nginx's body limit."""
CONTAINER_PORT = 8000
"""Where `docent serve` and `chroma run` listen inside their containers."""
CHROMA_ENV = {"ANONYMIZED_TELEMETRY": "False"}
"""Chroma's server must not try to reach its telemetry endpoint."""


@dataclass(frozen=True)
class Endpoints:
    """Where the shared services answer, as every Docent process is told."""

    database_url: str
    redis_url: str
    chroma_url: str


def docent_env(endpoints: Endpoints, data_dir: str, auth: str) -> dict[str, str]:
    """The environment every Docent process (migration, replicas, worker) gets: the same shared stores; a data
    dir of its own (scratch: nothing shared may rely on it)."""
    return {
        "DOCENT_DATABASE_URL": endpoints.database_url,
        "DOCENT_CHROMA_URL": endpoints.chroma_url,
        "DOCENT_REDIS_URL": endpoints.redis_url,
        "DOCENT_RATE_LIMIT_BACKEND": "redis",
        "DOCENT_DATA_DIR": data_dir,
        "DOCENT_AUTH": auth,
    }


def redis_command(host: str, port: int) -> list[str]:
    """Redis holds only locks and rate-limit buckets: no snapshots, no append-only file."""
    return [
        "redis-server",
        "--bind",
        host,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
    ]


def chroma_command(path: str, host: str, port: int) -> list[str]:
    """The Chroma server that ships with chromadb (the client's own version)."""
    return ["chroma", "run", "--path", path, "--host", host, "--port", str(port)]


def migrate_command() -> list[str]:
    """Run once before any replica: creates or upgrades the schema."""
    return ["docent", "db", "upgrade"]


def serve_command(host: str, port: int) -> list[str]:
    """One API replica."""
    return ["docent", "serve", "--host", host, "--port", str(port)]


def worker_command() -> list[str]:
    """One ingest-job worker."""
    return ["docent", "worker"]


# ------------------------------------------------------------------------------------------------- nginx


@dataclass(frozen=True)
class NginxSite:
    """What differs between the nginx configs rendered from the one template."""

    listen: str
    upstreams: Sequence[str]
    pid: str
    error_log: str
    access_log: str
    temp_dir: str
    user: str | None = None
    worker_processes: str = "auto"
    max_body_bytes: int = MAX_UPLOAD_BYTES


def render_nginx(site: NginxSite, template: str | None = None) -> str:
    """nginx.conf for site, from deploy/nginx.conf.template."""
    text = NGINX_TEMPLATE.read_text() if template is None else template
    servers = "\n".join(
        f"        server {address} max_fails=2 fail_timeout=10s;" for address in site.upstreams
    )
    values = {
        "user": f"user {site.user};"
        if site.user
        else "# (no `user`: workers run as the user who starts nginx)",
        "worker_processes": site.worker_processes,
        "pid": site.pid,
        "error_log": site.error_log,
        "access_log": site.access_log,
        "temp_dir": site.temp_dir,
        "servers": servers,
        "listen": site.listen,
        "max_body_bytes": str(site.max_body_bytes),
        "tries": str(len(site.upstreams)),
    }
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        left = text[text.index("{{") : text.index("{{") + 40]
        raise ValueError(f"nginx template placeholder without a value: {left!r}")
    return text


def compose_nginx_site(replicas: int = REPLICAS) -> NginxSite:
    """nginx in its official image, in front of the compose replicas api-1 … api-N."""
    return NginxSite(
        listen="80",
        upstreams=[f"api-{i}:{CONTAINER_PORT}" for i in range(1, replicas + 1)],
        pid="/var/run/nginx.pid",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        temp_dir="/var/cache/nginx",
        user="nginx",
    )


# ----------------------------------------------------------------------------------------------- compose

POSTGRES_PASSWORD = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (in deploy/.env)}"
COMPOSE_ENDPOINTS = Endpoints(
    database_url=f"postgresql://docent:{POSTGRES_PASSWORD}@postgres:5432/docent",
    redis_url="redis://redis:6379/0",
    chroma_url=f"http://chroma:{CONTAINER_PORT}",
)
COMPOSE_DATA_DIR = "/var/lib/docent"
"""Inside each Docent container: its own scratch (the image's directory, not a shared volume)."""
DOCENT_IMAGE = {"image": "docent-rag:local", "build": {"context": "..", "dockerfile": "deploy/Dockerfile"}}
EXTRA_ENV = {"path": ".env", "required": False}
"""Any other DOCENT_ setting (model provider, keys, limits) goes in deploy/.env, for every Docent service."""


def _healthcheck(test: list[str]) -> dict[str, object]:
    return {"test": test, "interval": "5s", "timeout": "4s", "retries": 12, "start_period": "10s"}


def _url_check(url: str) -> list[str]:
    # The slim image has no curl: Python's urllib fails (exit 1) on anything but a 2xx.
    return ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=3)"]


def compose_services(replicas: int = REPLICAS) -> dict[str, dict[str, object]]:
    """The compose services, commands and environments taken from the functions above."""
    env = docent_env(COMPOSE_ENDPOINTS, COMPOSE_DATA_DIR, "on")
    started = {"condition": "service_healthy"}
    services: dict[str, dict[str, object]] = {
        "postgres": {
            "image": "postgres:15",
            "environment": {
                "POSTGRES_USER": "docent",
                "POSTGRES_DB": "docent",
                "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
            },
            "volumes": ["postgres:/var/lib/postgresql/data"],
            "healthcheck": _healthcheck(["CMD", "pg_isready", "-U", "docent", "-d", "docent"]),
            "restart": "unless-stopped",
        },
        "redis": {
            "image": "redis:7",
            "command": redis_command("0.0.0.0", 6379),
            "healthcheck": _healthcheck(["CMD", "redis-cli", "ping"]),
            "restart": "unless-stopped",
        },
        "chroma": {
            **DOCENT_IMAGE,
            "command": chroma_command("/var/lib/chroma", "0.0.0.0", CONTAINER_PORT),
            "environment": CHROMA_ENV,
            "volumes": ["chroma:/var/lib/chroma"],
            "healthcheck": _healthcheck(_url_check(f"http://127.0.0.1:{CONTAINER_PORT}/api/v2/heartbeat")),
            "restart": "unless-stopped",
        },
        "migrate": {
            **DOCENT_IMAGE,
            "command": migrate_command(),
            "environment": env,
            "env_file": [EXTRA_ENV],
            "depends_on": {"postgres": started},
            "healthcheck": {"disable": True},
            "restart": "no",
        },
    }
    after_migration = {
        "migrate": {"condition": "service_completed_successfully"},
        "chroma": started,
        "redis": started,
    }
    for i in range(1, replicas + 1):
        services[f"api-{i}"] = {
            **DOCENT_IMAGE,
            "command": serve_command("0.0.0.0", CONTAINER_PORT),
            "environment": env,
            "env_file": [EXTRA_ENV],
            "depends_on": after_migration,
            "restart": "unless-stopped",
        }
    services["worker"] = {
        **DOCENT_IMAGE,
        "command": worker_command(),
        "environment": env,
        "env_file": [EXTRA_ENV],
        "depends_on": after_migration,
        "healthcheck": {"disable": True},
        "restart": "unless-stopped",
    }
    services["nginx"] = {
        "image": "nginx:1.22",
        "command": ["nginx", "-g", "daemon off;"],
        "volumes": ["./nginx.compose.conf:/etc/nginx/nginx.conf:ro"],
        "ports": ["127.0.0.1:8080:80"],
        "depends_on": {f"api-{i}": started for i in range(1, replicas + 1)},
        "restart": "unless-stopped",
    }
    return services


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def _yaml(mapping: Mapping[str, object], indent: int = 0) -> list[str]:
    """Block YAML for nested mappings whose leaves are scalars, lists of scalars or lists of mappings."""
    pad = " " * indent
    lines: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            lines += [f"{pad}{key}:", *_yaml(value, indent + 2)]
        elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            lines.append(f"{pad}{key}:")
            for item in value:
                first, *rest = _yaml(item, indent + 4)
                lines += [f"{pad}  - {first.lstrip()}", *rest]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(item) for item in value)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def render_compose(replicas: int = REPLICAS) -> str:
    """deploy/compose.yaml."""
    document = {
        "name": "docent",
        "services": compose_services(replicas),
        "volumes": {"postgres": {}, "chroma": {}},
    }
    header = [
        "# Generated by `python -m deploy.topology` from deploy/topology.py: edit that, then regenerate.",
        "# The same commands and DOCENT_ variables as deploy/local-cluster (docs/cluster.md, Compose).",
        "# Usage (from deploy/): put POSTGRES_PASSWORD (and any other DOCENT_ setting) in .env, then",
        "#   docker compose up -d --build      # then create a key: see docs/cluster.md",
    ]
    return "\n".join([*header, *_yaml(document)]) + "\n"


def write_generated() -> list[Path]:
    """Regenerate compose.yaml and nginx.compose.conf; returns the files written."""
    COMPOSE_FILE.write_text(render_compose())
    NGINX_COMPOSE_CONF.write_text(render_nginx(compose_nginx_site()))
    return [COMPOSE_FILE, NGINX_COMPOSE_CONF]


if __name__ == "__main__":
    for written in write_generated():
        sys.stdout.write(f"wrote {written}\n")
