"""Which OTEL_* settings turn tracing on, and which Docent refuses with a message (core/tracing.py)."""

from __future__ import annotations

import pytest

from core.tracing import TracingConfigError, requested_exporters, span

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


def test_tracing_is_off_with_no_otel_variable_and_on_with_an_endpoint() -> None:
    assert requested_exporters({}) == []
    assert requested_exporters({"OTEL_SERVICE_NAME": "docent"}) == []
    assert requested_exporters(ENDPOINT) == ["otlp"]
    assert requested_exporters({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == ["otlp"]
    assert requested_exporters({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]


def test_sdk_disabled_or_exporter_none_turns_it_off_whatever_else_is_set() -> None:
    assert requested_exporters({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) == []
    assert requested_exporters({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}) == []


def test_an_exporter_or_protocol_docent_lacks_is_an_error_naming_the_variable() -> None:
    with pytest.raises(TracingConfigError, match="OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"):
        requested_exporters({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(TracingConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc"):
        requested_exporters({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_a_span_of_ours_is_nothing_while_tracing_is_off() -> None:
    with span("embed", {"docent.texts": 1}) as opened:
        assert opened is None
