"""Request ids, /metrics, JSON logs and /ready over real uvicorn; the middleware on small in-process apps."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.middleware.observability import install_observability
from api.middleware.request_id import request_id_from
from core.log_config import REQUEST_ID, JsonFormatter, RequestIdFilter, logging_config
from core.settings import Settings
from tests.helpers import docent_server, ingest_sample
from tests.model_servers import serving

GENERATED = re.compile(r"[0-9a-f]{32}")
# Auth is the lead's; these tests look at observability only.
OPEN = {"DOCENT_AUTH": "off", "DOCENT_METRICS_PUBLIC": "true", "DOCENT_LLM_PROVIDER": "extractive"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the ingested sample corpus."""
    path = tmp_path_factory.mktemp("observability") / "data"
    ingest_sample(path)
    return path


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One Docent server (real uvicorn) for this module; yields its base URL and its log file."""
    log = tmp_path_factory.mktemp("observability-log") / "server.log"
    with docent_server(data_dir, log, **OPEN) as base:
        yield base, log


def invoke(base: str, message: str, request_id: str | None = None) -> httpx.Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    return httpx.post(f"{base}/invoke", json={"input": {"message": message}}, headers=headers, timeout=60)


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


# Over real uvicorn ------------------------------------------------------------------------------------------


def test_request_id_is_generated_echoed_or_replaced(server: tuple[str, Path]) -> None:
    base, _ = server
    generated = httpx.get(f"{base}/health")
    assert generated.status_code == 200
    assert GENERATED.fullmatch(generated.headers["X-Request-ID"])
    assert generated.headers["X-Request-ID"] != httpx.get(f"{base}/health").headers["X-Request-ID"]
    sent = "client-42.retry:1_A"
    assert httpx.get(f"{base}/health", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent
    for bad in ("has space", "semi;colon", "x" * 129, "é"):
        reply = httpx.get(f"{base}/health", headers={b"X-Request-ID": bad.encode()})
        assert GENERATED.fullmatch(reply.headers["X-Request-ID"]), bad
    missing = httpx.get(f"{base}/no/such/route", headers={"X-Request-ID": "on-a-404"})
    assert missing.status_code == 404 and missing.headers["X-Request-ID"] == "on-a-404"
    invalid = httpx.post(f"{base}/invoke", json={})
    assert invalid.status_code == 422 and GENERATED.fullmatch(invalid.headers["X-Request-ID"])


def test_stream_carries_the_request_id(server: tuple[str, Path]) -> None:
    base, _ = server
    body = {"input": {"message": "What temperature should a hot compost pile reach?"}}
    with httpx.stream(
        "POST", f"{base}/stream", json=body, headers={"X-Request-ID": "stream-1"}, timeout=60
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["X-Request-ID"] == "stream-1"
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line for line in reply.iter_lines() if line.startswith("event:")]
    assert events[0] == "event: metadata" and events[-1] == "event: end"


def test_metrics_count_requests_by_route_template_and_time_retrieval(server: tuple[str, Path]) -> None:
    base, _ = server
    before = metric_samples(httpx.get(f"{base}/metrics").text)
    for question in ("What is bokashi?", "How much do red wigglers eat per day?"):
        assert invoke(base, question).status_code == 200
    assert httpx.get(f"{base}/raw/path/7").status_code == 404
    reply = httpx.get(f"{base}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == CONTENT_TYPE_LATEST  # the text format generate_latest() writes
    after = metric_samples(reply.text)

    def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
        return sum(v for n, got, v in samples if n == name and labels.items() <= got.items())

    ok = {"route": "/invoke", "method": "POST", "status": "200"}
    requests = "docent_http_requests_total"
    assert value(after, requests, **ok) - value(before, requests, **ok) == 2
    assert value(after, "docent_http_request_duration_seconds_count", route="/invoke", method="POST") >= 2
    retrievals = value(after, "docent_retrieval_duration_seconds_count", retriever="hybrid")
    assert retrievals - value(before, "docent_retrieval_duration_seconds_count", retriever="hybrid") == 2
    assert value(after, "docent_http_requests_total", route="<unmatched>", status="404") >= 1
    routes = {labels.get("route") for _, labels, _ in after if "route" in labels}
    assert "/raw/path/7" not in routes and "/metrics" in routes


def test_log_lines_are_json_with_the_request_id(server: tuple[str, Path]) -> None:
    base, log = server
    assert invoke(base, "What is bokashi?", request_id="log-me-123").status_code == 200
    deadline = time.monotonic() + 10
    access: list[dict[str, Any]] = []
    while not access and time.monotonic() < deadline:
        access = [
            line
            for line in json_lines(log)
            if line.get("request_id") == "log-me-123" and line["logger"] == "docent.access"
        ]
        time.sleep(0.1)
    assert len(access) == 1, log.read_text()[-3000:]
    line = access[0]
    assert line["method"] == "POST" and line["path"] == "/invoke" and line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert {"ts", "level", "message"} <= set(line) and line["level"] == "INFO"
    # uvicorn's own lines go through the same JSON handler; its access log is off (ours replaces it).
    lines = json_lines(log)
    assert any(
        entry["logger"].startswith("uvicorn") and "startup complete" in entry["message"] for entry in lines
    )
    assert not any(entry["logger"] == "uvicorn.access" for entry in lines)


def test_ready_when_stores_and_model_answer(server: tuple[str, Path]) -> None:
    base, _ = server
    reply = httpx.get(f"{base}/ready")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "status": "ready",
        "checks": {"records": "ok", "chroma": "ok", "checkpointer": "ok", "model": "ok"},
    }
    assert httpx.get(f"{base}/health").status_code == 200


def test_ready_follows_the_openai_compatible_server(tmp_path: Path) -> None:
    """Ready while the model server answers (with our key); 503 naming the model once its port is closed."""
    seen: list[str | None] = []

    async def models(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})

    with ExitStack() as model_server:
        model_base = model_server.enter_context(serving(Starlette(routes=[Route("/v1/models", models)])))
        env = {
            **OPEN,
            "DOCENT_LLM_PROVIDER": "openai",
            "DOCENT_OPENAI_BASE_URL": f"{model_base}/v1",
            "DOCENT_OPENAI_API_KEY": "x",
        }
        with docent_server(tmp_path / "data", tmp_path / "server.log", **env) as base:
            up = httpx.get(f"{base}/ready")
            assert up.status_code == 200, up.text
            assert up.json()["checks"]["model"] == "ok" and seen == ["Bearer x"]
            model_server.close()  # nothing listens on that port any more
            down = httpx.get(f"{base}/ready", timeout=10)
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "not ready"
            assert body["checks"]["model"].startswith("unreachable")
            assert {name: body["checks"][name] for name in ("records", "chroma", "checkpointer")} == {
                "records": "ok",
                "chroma": "ok",
                "checkpointer": "ok",
            }
            assert httpx.get(f"{base}/health").status_code == 200


# In process: the middleware and the logging pieces on their own -------------------------------------------


def small_app(settings: Settings, **install: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        logging.getLogger("docent.test").info("thing", extra={"thing_id": thing_id})
        return {"thing_id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    install_observability(app, settings, **install)
    return app


async def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_metrics_use_the_route_template_not_the_raw_path(tmp_path: Path) -> None:
    app = small_app(Settings(data_dir=tmp_path, metrics_public=True))
    labels = {"route": "/things/{thing_id}", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("docent_http_requests_total", labels) or 0.0
    for n in (1, 2, 3):
        assert (await get(app, f"/things/{n}")).status_code == 200
    assert REGISTRY.get_sample_value("docent_http_requests_total", labels) == before + 3
    raw = {"route": "/things/1", "method": "GET", "status": "200"}
    assert REGISTRY.get_sample_value("docent_http_requests_total", raw) is None
    invalid = {"route": "/things/{thing_id}", "method": "GET", "status": "422"}
    before_invalid = REGISTRY.get_sample_value("docent_http_requests_total", invalid) or 0.0
    assert (await get(app, "/things/nope")).status_code == 422
    assert REGISTRY.get_sample_value("docent_http_requests_total", invalid) == before_invalid + 1


async def test_an_unhandled_error_is_a_500_with_the_request_id(tmp_path: Path) -> None:
    app = small_app(Settings(data_dir=tmp_path, metrics_public=True))
    reply = await get(app, "/boom", **{"X-Request-ID": "boom-1"})
    assert reply.status_code == 500
    assert reply.headers["X-Request-ID"] == "boom-1"
    assert reply.json()["request_id"] == "boom-1"


async def test_metrics_route_guard(tmp_path: Path) -> None:
    closed = small_app(Settings(data_dir=tmp_path, metrics_public=False))
    assert (await get(closed, "/metrics")).status_code == 403
    allowed: list[bool] = []

    def admin() -> None:
        allowed.append(True)

    guarded = small_app(Settings(data_dir=tmp_path, metrics_public=False), metrics_auth=[Depends(admin)])
    assert (await get(guarded, "/metrics")).status_code == 200 and allowed == [True]
    public = small_app(Settings(data_dir=tmp_path, metrics_public=True), metrics_auth=[Depends(admin)])
    reply = await get(public, "/metrics")
    assert reply.status_code == 200 and allowed == [True]
    assert "docent_http_requests_total" in reply.text


def test_request_id_from_headers() -> None:
    assert request_id_from([(b"x-request-id", b"abc:1.2_3-4")]) == "abc:1.2_3-4"
    assert GENERATED.fullmatch(request_id_from([]))
    assert GENERATED.fullmatch(request_id_from([(b"x-request-id", b"")]))
    assert GENERATED.fullmatch(request_id_from([(b"x-request-id", b"a/b")]))
    assert request_id_from([(b"x-request-id", b"y" * 128)]) == "y" * 128
    assert GENERATED.fullmatch(request_id_from([(b"x-request-id", b"y" * 129)]))


def test_json_formatter_writes_request_id_and_extras() -> None:
    record = logging.LogRecord("docent.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    record.thing_id = 7
    token = REQUEST_ID.set("rid-1")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you" and line["level"] == "WARNING" and line["logger"] == "docent.x"
    assert line["request_id"] == "rid-1" and line["thing_id"] == 7 and line["ts"].endswith("+00:00")
    outside = logging.LogRecord("docent.x", logging.INFO, __file__, 1, "plain", None, None)
    RequestIdFilter().filter(outside)
    assert json.loads(JsonFormatter().format(outside))["request_id"] == "-"


def test_logging_config_formats_and_levels(tmp_path: Path) -> None:
    as_json = logging_config(Settings(data_dir=tmp_path, log_level="debug"))
    assert as_json["formatters"]["docent"] == {"()": "core.log_config.JsonFormatter"}
    assert as_json["root"]["level"] == "DEBUG"
    text = logging_config(Settings(data_dir=tmp_path, log_format="text"))
    assert "%(request_id)s" in text["formatters"]["docent"]["format"]
    with pytest.raises(ValueError, match="DOCENT_LOG_LEVEL"):
        logging_config(Settings(data_dir=tmp_path, log_level="loud"))
