"""The OpenAPI document: every operation is described and has examples, and every example fits its schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from api.app import create_app
from core.settings import Settings

METHODS = ("get", "post", "put", "patch", "delete")
Operation = tuple[str, str, dict[str, Any]]


class Note(BaseModel):
    """A body for the undocumented route of test_an_undocumented_route_is_caught."""

    text: str


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The app's OpenAPI document, built in-process (`.openapi()` runs no lifespan: nothing is opened)."""
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    return create_app(Settings(data_dir=data_dir, auth="off")).openapi()


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    """(METHOD, path, operation) for every operation of the document."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its `$ref` (to #/components/schemas/…) followed."""
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def schema_has_example(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """The schema, or what it refers to, or the items of an array of it, carries an example."""
    schema = resolve(spec, schema)
    if "examples" in schema or "example" in schema:
        return True
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return schema_has_example(spec, schema["items"])
    return False


def media_examples(spec: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The examples a media type object gives: its own, else its schema's (through $ref and array items)."""
    if "example" in media:
        return [media["example"]]
    if "examples" in media:
        return [e["value"] for e in media["examples"].values() if "value" in e]
    schema = resolve(spec, media.get("schema", {}))
    if "examples" in schema:
        return list(schema["examples"])
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return [[example] for example in media_examples(spec, {"schema": schema["items"]})]
    return []


def validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema validator for a schema of the document (its $refs resolve within the document)."""
    return Draft202012Validator({**schema, "components": spec["components"]})


def test_the_document_lists_every_route(spec: dict[str, Any]) -> None:
    paths = set(spec["paths"])
    expected = {
        "/health",
        "/ready",
        "/invoke",
        "/batch",
        "/stream",
        "/ingest",
        "/ingest/{job_id}",
        "/sources",
        "/sources/{source_id}",
        "/threads",
        "/threads/{thread_id}",
        "/threads/{thread_id}/export",
        "/v1/chat/completions",
        "/v1/models",
        "/metrics",
    }
    assert expected <= paths, expected - paths


def undescribed(spec: dict[str, Any]) -> list[str]:
    """Operations without a summary or a description."""
    return [
        f"{method} {path}"
        for method, path, op in operations(spec)
        if not op.get("summary", "").strip() or not op.get("description", "").strip()
    ]


def request_without_examples(spec: dict[str, Any]) -> list[str]:
    """Request bodies and parameters that show no example."""
    missing: list[str] = []
    for method, path, op in operations(spec):
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            if not media_examples(spec, media):
                missing.append(f"{method} {path} request body ({media_type})")
        for param in op.get("parameters", []):
            if not ("example" in param or "examples" in param or schema_has_example(spec, param["schema"])):
                missing.append(f"{method} {path} parameter {param['name']}")
    return missing


def success_without_examples(spec: dict[str, Any]) -> list[str]:
    """Operations without a 2xx response, and 2xx bodies that show no example."""
    missing: list[str] = []
    for method, path, op in operations(spec):
        success = {status: r for status, r in op["responses"].items() if status.startswith("2")}
        if not success:
            missing.append(f"{method} {path}: no 2xx response declared")
        for status, response in success.items():
            for media_type, media in response.get("content", {}).items():
                if not media_examples(spec, media):
                    missing.append(f"{method} {path} {status} ({media_type})")
    return missing


def test_every_operation_has_a_summary_and_a_description(spec: dict[str, Any]) -> None:
    assert not undescribed(spec)


def test_every_request_body_and_parameter_has_an_example(spec: dict[str, Any]) -> None:
    assert not request_without_examples(spec)


def test_every_success_response_has_an_example(spec: dict[str, Any]) -> None:
    assert not success_without_examples(spec)


def test_an_undocumented_route_is_caught(tmp_path: Path) -> None:
    """The checks above fail for a route added without docstring or examples."""
    app = create_app(Settings(data_dir=tmp_path, auth="off"))

    @app.post("/notes/{note_id}")
    async def add_note(note_id: str, note: Note) -> Note:
        return note

    app.openapi_schema = None
    spec = app.openapi()
    assert undescribed(spec) == ["POST /notes/{note_id}"]
    assert request_without_examples(spec) == [
        "POST /notes/{note_id} request body (application/json)",
        "POST /notes/{note_id} parameter note_id",
    ]
    assert success_without_examples(spec) == ["POST /notes/{note_id} 200 (application/json)"]


def test_json_examples_fit_their_schemas(spec: dict[str, Any]) -> None:
    """Every example of a component schema, a JSON body or a parameter validates against its own schema."""
    checked = 0
    failures: list[str] = []
    for name, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            errors = list(validator(spec, schema).iter_errors(example))
            checked += 1
            failures += [f"components/{name}: {e.message}" for e in errors]
    for method, path, op in operations(spec):
        bodies = [
            (f"{method} {path} request", m) for m in op.get("requestBody", {}).get("content", {}).values()
        ]
        for status, response in op["responses"].items():
            bodies += [(f"{method} {path} {status} {t}", m) for t, m in response.get("content", {}).items()]
        for where, media in bodies:
            if "schema" not in media or "example" not in media:
                continue  # schema examples were checked above; text bodies have no JSON schema
            checked += 1
            failures += [
                f"{where}: {e.message}"
                for e in validator(spec, media["schema"]).iter_errors(media["example"])
            ]
        for param in op.get("parameters", []):
            for example in param["schema"].get("examples", []):
                checked += 1
                errors = validator(spec, param["schema"]).iter_errors(example)
                failures += [f"{method} {path} parameter {param['name']}: {e.message}" for e in errors]
    assert checked > 40
    assert not failures, failures


def test_text_responses_have_text_examples(spec: dict[str, Any]) -> None:
    """The streams, the CSV export and /metrics show what their text looks like."""
    stream = spec["paths"]["/stream"]["post"]["responses"]["200"]["content"]["text/event-stream"]["example"]
    assert stream.startswith("event: metadata\ndata: {") and "event: end\n" in stream
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert chat["text/event-stream"]["example"].rstrip().endswith("data: [DONE]")
    export = spec["paths"]["/threads/{thread_id}/export"]["get"]["responses"]["200"]["content"]
    assert export["text/csv"]["example"].startswith("created_at,role,content,")
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"]["example"]
    assert "# TYPE docent_http_requests_total counter" in metrics


def test_error_shapes_match_what_the_routes_send(spec: dict[str, Any]) -> None:
    """/v1 errors are declared in OpenAI's shape; a 422 may carry a list of issues or one message."""
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    for status in ("400", "401", "404", "422", "429"):
        assert chat[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/OpenAIError"
        }
    invalid = spec["paths"]["/invoke"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    body = validator(spec, invalid)
    assert body.is_valid({"detail": "k is 40; this server retrieves at most 20"})
    assert body.is_valid({"detail": [{"loc": ["body", "input"], "msg": "Field required", "type": "missing"}]})
    assert not body.is_valid({"error": {"message": "x"}})
