"""OpenTelemetry tracing, off unless the standard `OTEL_*` variables ask for an exporter: then one trace per
request, with spans for the HTTP route (opentelemetry-instrumentation-fastapi), the graph and its nodes and
every chat model call (LangChain's callbacks, through openinference-instrumentation-langchain), and Docent's
own steps (`span`: the embedder, the index queries, the answerer's retries and fallbacks, the records write).

With nothing configured no TracerProvider is installed, nothing is instrumented, no exporter thread runs and
`span` returns at once (no OpenTelemetry call at all). docs/observability.md#tracing says what to set.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from starlette.applications import Starlette

log = logging.getLogger("docent")

TRACER_NAME = "docent"
REQUEST_ID_ATTRIBUTE = "docent.request_id"
"""The server span's attribute holding the request's X-Request-ID (the one every log line carries)."""
EXPORTERS = ("otlp", "console")
"""What OTEL_TRACES_EXPORTER may name (comma-separated), besides `none`."""
PROTOCOL = "http/protobuf"
UNTRACED_URLS = "/health,/ready,/metrics"
"""Probes and scrapes: no trace unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) says
otherwise."""

_tracer = trace.get_tracer(TRACER_NAME)
_OWN_SPAN: ContextVar[Span | None] = ContextVar("docent_own_span", default=None)
_active: Tracing | None = None
"""The process's tracing once `open_tracing` installed it (None: `span` does nothing)."""


class TracingConfigError(ValueError):
    """An OTEL_* variable asks for something Docent cannot export with."""


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def requested_exporters(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters the environment asks for: none when OTEL_SDK_DISABLED=true or
    OTEL_TRACES_EXPORTER=none; OTEL_TRACES_EXPORTER's list when set; else `otlp` when an OTLP endpoint is set
    (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); else none (tracing stays off)."""
    if _true(environ.get("OTEL_SDK_DISABLED")):
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not named and not any(environ.get(name, "").strip() for name in endpoints):
        return []
    exporters = [e.strip() for e in (named or "otlp").split(",") if e.strip()]
    if "none" in exporters:
        return []
    if unknown := [e for e in exporters if e not in EXPORTERS]:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r}; use {', '.join(EXPORTERS)} or none"
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if "otlp" in exporters and protocol and protocol.strip() != PROTOCOL:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: Docent exports OTLP over HTTP only; use {PROTOCOL}"
        )
    return exporters


@dataclass
class Tracing:
    """The installed TracerProvider and the exporters it sends to. `exporting()` runs the exporters' batch
    processors (one background thread each) for an app's lifetime and flushes them when it ends."""

    provider: TracerProvider
    exporters: list[str]

    def instrument_app(self, app: Starlette) -> None:
        """One server span per HTTP request, named by route template, continuing an incoming `traceparent`;
        without the per-message `http send`/`http receive` spans."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
            "OTEL_PYTHON_EXCLUDED_URLS", UNTRACED_URLS
        )
        FastAPIInstrumentor.instrument_app(
            app,  # type: ignore[arg-type]  # a FastAPI app (core does not import FastAPI's types)
            tracer_provider=self.provider,
            excluded_urls=excluded,
            exclude_spans=["receive", "send"],
        )

    @asynccontextmanager
    async def exporting(self) -> AsyncIterator[None]:
        """Export spans (batched: OTEL_BSP_* apply) while the block runs; flush and stop on exit."""
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processors = [BatchSpanProcessor(_exporter(name)) for name in self.exporters]
        for processor in processors:
            self.provider.add_span_processor(processor)
        try:
            yield
        finally:
            for processor in processors:
                # exports what is queued, then joins its worker thread (blocking: off the event loop)
                await asyncio.to_thread(processor.shutdown)


def _exporter(name: str) -> SpanExporter:
    """A span exporter; OTLP's reads its endpoint, headers, timeout, compression from OTEL_EXPORTER_OTLP_*."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource(environ: Mapping[str, str]) -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES as set, with `docent` as the default service name."""
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    attributes: dict[str, AttributeValue] = {SERVICE_VERSION: version("docent-rag")}
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not named:
        attributes[SERVICE_NAME] = "docent"
    return Resource.create(attributes)


def open_tracing(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """The process's tracing when the environment asks for it (installed on the first call: the global
    TracerProvider and LangChain's instrumentation), else None and nothing is touched."""
    global _active
    exporters = requested_exporters(environ)
    if not exporters:
        return None
    if _active is not None:
        return _active
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=_resource(environ))
    trace.set_tracer_provider(provider)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    _active = Tracing(provider, exporters)
    log.info("tracing on: exporting spans to %s", ", ".join(exporters))
    return _active


def _parent() -> Context | None:
    """Where a span of ours hangs: under the one of ours open here, else under the LangChain run (a graph
    node) that calls us (LangChain's spans are never made current), else under the current span."""
    if (own := _OWN_SPAN.get()) is not None:
        return trace.set_span_in_context(own)
    from openinference.instrumentation.langchain import get_current_span

    run = get_current_span()
    return trace.set_span_in_context(run) if run is not None else None


@contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> Iterator[Span | None]:
    """A span of Docent's own around the block (attributes that are None are left out); None, at no cost,
    when tracing is off. An exception escaping the block is recorded on the span."""
    if _active is None:
        yield None
        return
    given = {key: value for key, value in (attributes or {}).items() if value is not None}
    with _tracer.start_as_current_span(name, context=_parent(), attributes=given) as opened:
        token = _OWN_SPAN.set(opened)
        try:
            yield opened
        finally:
            _OWN_SPAN.reset(token)


def annotate_current(attributes: Mapping[str, AttributeValue | None]) -> None:
    """Set attributes on the current span (the request's server span in the HTTP middleware); nothing when
    tracing is off."""
    if _active is None:
        return
    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(key, value)
