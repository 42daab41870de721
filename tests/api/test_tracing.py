"""Tracing: `docent serve` with OTEL_EXPORTER_OTLP_ENDPOINT sends one trace per request, continuing the
client's `traceparent`, to a real OTLP/HTTP receiver (protobuf, decoded with opentelemetry-proto); with no
OTEL_* variable set, an app in process installs nothing and runs no exporter thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app import create_app
from core.services import Services
from core.settings import Settings
from core.tracing import REQUEST_ID_ATTRIBUTE
from graph.build import open_docent
from tests.model_servers import ModelScript, model_backed_docent, serving

NODES = ("append_message", "retrieve", "summarize", "persist")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    service: str
    start_ns: int
    end_ns: int


@dataclass
class Receiver:
    """What an OTLP/HTTP collector at /v1/traces was sent."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            assert request.headers["content-type"] == "application/x-protobuf"
            exported = ExportTraceServiceRequest.FromString(await request.body())
            with self.lock:
                self.spans.extend(_flattened(exported))
            ok = ExportTraceServiceResponse().SerializeToString()
            return Response(ok, media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def trace(self, trace_id: str, until: str, timeout: float = 30) -> list[ReceivedSpan]:
        """The spans of one trace, once a span named `until` has arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                spans = [s for s in self.spans if s.trace_id == trace_id]
            if any(s.name == until for s in spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"no span {until!r} in trace {trace_id} within {timeout}s: {self.spans}")


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _flattened(exported: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    for resource_spans in exported.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(),
                    kind=span.kind,
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    events=[(e.name, {a.key: _value(a.value) for a in e.attributes}) for e in span.events],
                    service=str(resource.get("service.name")),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                )


@dataclass
class Traced:
    base: str
    receiver: Receiver
    script: ModelScript


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    """`docent serve` (scripted OpenAI-compatible model first, extractive last) exporting to a receiver."""
    workdir = tmp_path_factory.mktemp("tracing")
    receiver = Receiver()
    with (
        serving(receiver.app()) as collector,
        model_backed_docent(
            workdir,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector,
            OTEL_SERVICE_NAME="docent-under-test",
            OTEL_BSP_SCHEDULE_DELAY="50",
        ) as docent,
    ):
        yield Traced(docent.base, receiver, docent.openai)


def invoke_traced(served: Traced, trace_id: str, request_id: str, **configurable: str) -> list[ReceivedSpan]:
    """One POST /invoke under a client's trace; the trace's spans once the server span has ended."""
    reply = httpx.post(
        f"{served.base}/invoke",
        json={
            "input": {"message": "What temperature should a hot compost pile reach?"},
            "config": {"configurable": configurable},
        },
        headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN_ID}-01", "X-Request-ID": request_id},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return served.receiver.trace(trace_id, until="POST /invoke")


def ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    """The names of a span's ancestors, nearest first; fails if a parent is missing from the trace."""
    names: list[str] = []
    while span.parent_id != CLIENT_SPAN_ID:
        assert span.parent_id in by_id, f"{span.name}: parent {span.parent_id} not in the trace"
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} among {sorted({s.name for s in spans})}"
    return found


def test_one_request_is_one_trace_under_the_clients_traceparent(traced: Traced) -> None:
    spans = invoke_traced(traced, TRACE_ID, "trace-extractive-1", model="extractive")
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans)
    assert {s.service for s in spans} == {"docent-under-test"}
    (root,) = [s for s in spans if s.parent_id == CLIENT_SPAN_ID]  # one root: the server span
    assert root.name == "POST /invoke" and root.kind == ProtoSpan.SPAN_KIND_SERVER
    assert root.attributes[REQUEST_ID_ATTRIBUTE] == "trace-extractive-1"
    assert root.attributes["http.route"] == "/invoke"
    for span in spans:  # every span hangs under the server span: one tree
        assert ancestors(span, by_id)[-1:] in ([], ["POST /invoke"]), span.name
    for node in NODES:
        assert all("POST /invoke" in ancestors(s, by_id) for s in named(spans, node))
    under = {
        name: {a for s in named(spans, name) for a in ancestors(s, by_id)}
        for name in (
            "embed",
            "chroma query",
            "chroma get",
            "bm25 query",
            "extractive answer",
            "records add_turn",
        )
    }
    assert "retrieve" in under["chroma query"] and "retrieve" in under["bm25 query"]
    assert "retrieve" in under["chroma get"]
    assert {"retrieve", "extractive answer"} <= under["embed"]  # the query; the answer's sentences
    assert "summarize" in under["extractive answer"]
    # The record is written once the run's checkpoint is: after the persist node, under the route's span.
    (record,) = named(spans, "records add_turn")
    assert record.parent_id == root.span_id
    assert record.start_ns >= max(s.end_ns for s in named(spans, "persist"))
    (query,) = [s for s in named(spans, "chroma query") if "retrieve" in ancestors(s, by_id)]
    assert query.attributes["db.system.name"] == "chromadb"
    assert named(spans, "bm25 query")[0].attributes["db.system.name"] == "sqlite"
    embed = next(s for s in named(spans, "embed") if "retrieve" in ancestors(s, by_id))
    assert embed.attributes["docent.embedder.model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert record.attributes["docent.thread_id"]


def test_the_model_call_carries_its_model_tokens_and_retries(traced: Traced) -> None:
    traced.script.faults = ["500"]  # the first try fails, the retry answers
    trace_id = "5bf92f3577b34da6a3ce929d0e0e4737"
    spans = invoke_traced(traced, trace_id, "trace-model-1")
    by_id = {s.span_id: s for s in spans}
    (answer,) = named(spans, "answer")
    assert "summarize" in ancestors(answer, by_id)
    assert answer.attributes["docent.model"] == "openai/gpt-4o-mini"
    assert answer.attributes["docent.answer.tries"] == 2
    assert answer.attributes["docent.answer.degraded"] is False
    assert answer.attributes["gen_ai.usage.input_tokens"] == 321  # what the scripted server reports
    (failed,) = [attrs for name, attrs in answer.events if name == "model call failed"]
    assert failed["error"] == "HTTP 500" and failed["retry_in_s"] > 0
    calls = [s for s in spans if s.attributes.get("openinference.span.kind") == "LLM"]
    assert len(calls) == 2, calls  # the failed try and the retry, each a LangChain model span
    for call in calls:
        assert "summarize" in ancestors(call, by_id)
        assert call.attributes["llm.model_name"] == "gpt-4o-mini"
    answered = [c for c in calls if "llm.token_count.prompt" in c.attributes]
    assert [c.attributes["llm.token_count.prompt"] for c in answered] == [321]
    assert (
        answered[0].attributes["llm.token_count.completion"]
        == answer.attributes["gen_ai.usage.output_tokens"]
    )


async def test_with_no_otel_variables_nothing_is_installed_and_no_exporter_runs(
    sample_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    settings: Settings = sample_services.settings.model_copy(update={"auth": "off"})
    app = create_app(settings, opener=lambda s: open_docent(s, sample_services))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            reply = await client.post("/invoke", json={"input": {"message": "What is bokashi?"}})
        assert reply.status_code == 200, reply.text
        threads = [t.name for t in threading.enumerate()]
        assert not [t for t in threads if "OtelBatchSpanProcessor" in t or "otel" in t.lower()], threads
        assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
