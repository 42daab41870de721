"""The output guardrail on every route of a real `docent serve`: a scripted OpenAI-protocol model streams an
answer that trips a blocked output pattern, or one that carries personal data, and /invoke, /stream (both
formats), /ws, /v1 (whole and streamed) and MCP's `ask` each send the withheld or redacted answer; a stream
that trips a rule sends none of the blocked text, then an `error` and the withheld answer. Each turn's rule
is in the records DB and counted in /metrics.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from websockets.sync.client import connect

from core.answering.output_guard import WITHHELD
from tests.model_servers import ModelScript, model_backed_docent, read_sse

BLOCKED_REPLY = "Turn the pile weekly and keep it moist; the launch code 4242 opens the shed [1]"
PII_REPLY = "Call the desk on +1 415 555 0132 or write to help.desk@compost.example about your pile [1]"
SECRETS = ("4242",)
PII = ("415 555", "0132", "help.desk@", "compost.example")
QUESTION = "What temperature should a hot compost pile reach?"


@dataclass
class Served:
    base: str
    script: ModelScript
    data_dir: Path

    def replying(self, text: str) -> Served:
        self.script.reply = lambda _passage: text
        return self

    def output_rule(self, thread_id: str) -> list[str | None]:
        with closing(sqlite3.connect(self.data_dir / "docent.sqlite")) as db:
            rows = db.execute("SELECT output_rule FROM turns WHERE thread_id = ? ORDER BY id", (thread_id,))
            return [row[0] for row in rows]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("output-rules")
    with model_backed_docent(
        workdir,
        DOCENT_BLOCKED_OUTPUT_PATTERNS='["launch code \\\\d+"]',
        DOCENT_REDACT_PII="true",
        DOCENT_METRICS_PUBLIC="true",
    ) as docent:
        yield Served(docent.base, docent.openai, docent.data_dir)


def invoke(base: str, message: str = QUESTION) -> dict[str, Any]:
    reply = httpx.post(f"{base}/invoke", json={"input": {"message": message}}, timeout=60)
    assert reply.status_code == 200, reply.text
    output: dict[str, Any] = reply.json()["output"]
    return output


def stream(base: str, query: str = "") -> list[tuple[str, Any]]:
    body = {"input": {"message": QUESTION}}
    with httpx.stream("POST", f"{base}/stream{query}", json=body, timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        return [(e.event, e.data) for e in read_sse(reply.iter_lines())]


def tokens(events: list[tuple[str, Any]]) -> list[str]:
    return [data["text"] for name, data in events if name == "token"]


def assert_withheld(output: dict[str, Any]) -> None:
    assert output["answer"] == WITHHELD
    assert output["output_rule"] == "blocked: launch code \\d+"
    assert output["citations"] and not any(c["cited"] for c in output["citations"])


def assert_redacted(answer: str) -> None:
    assert "[phone removed]" in answer and "[email removed]" in answer, answer
    assert not any(raw in answer for raw in PII), answer
    assert "about your pile [1]" in answer


def test_invoke_withholds_a_blocked_answer_and_records_the_rule(served: Served) -> None:
    output = invoke(served.replying(BLOCKED_REPLY).base)
    assert_withheld(output)
    assert served.output_rule(output["thread_id"]) == ["blocked: launch code \\d+"]


def test_invoke_redacts_personal_data_and_records_it(served: Served) -> None:
    output = invoke(served.replying(PII_REPLY).base)
    assert_redacted(output["answer"])
    assert output["output_rule"] == "redacted: email, phone"
    assert served.output_rule(output["thread_id"]) == ["redacted: email, phone"]


def test_a_clean_answer_passes_untouched(served: Served) -> None:
    clean = "Keep the pile between 55 and 65 degrees [1]"
    output = invoke(served.replying(clean).base)
    assert output["answer"] == clean and output["output_rule"] is None
    assert served.output_rule(output["thread_id"]) == [None]


def test_a_stream_that_trips_a_rule_stops_its_tokens_then_ends_with_an_error_and_the_withheld_answer(
    served: Served,
) -> None:
    events = stream(served.replying(BLOCKED_REPLY).base)
    names = [name for name, _ in events]
    sent = "".join(tokens(events))
    assert sent and not any(secret in sent for secret in SECRETS), sent
    assert names[-2:] == ["error", "end"], names
    assert events[-2][1]["reason"] == "output_blocked"
    assert_withheld(events[-1][1])
    assert served.output_rule(events[-1][1]["thread_id"]) == ["blocked: launch code \\d+"]


def test_a_stream_under_the_pii_pass_sends_only_redacted_text_in_pieces(served: Served) -> None:
    events = stream(served.replying(PII_REPLY).base)
    pieces = tokens(events)
    assert len(pieces) > 3, pieces  # still streamed, not held back whole
    assert "".join(pieces) == events[-1][1]["answer"]
    assert_redacted("".join(pieces))
    sources = next(data for name, data in events if name == "sources")["sources"]
    assert sources and "error" not in [name for name, _ in events]


def test_langserve_format_stream_never_carries_the_blocked_text(served: Served) -> None:
    events = stream(served.replying(BLOCKED_REPLY).base, "?format=langserve")
    answer = "".join(data.get("answer", "") for name, data in events if name == "data")
    assert not any(secret in answer for secret in SECRETS)
    assert answer.endswith("\n\n" + WITHHELD)  # the sum cannot take back the tokens sent before the match


def test_websocket_turns_get_the_same_rules(served: Served) -> None:
    url = served.base.replace("http://", "ws://") + "/ws"
    turns: list[list[dict[str, Any]]] = []
    with connect(url, open_timeout=10) as socket:
        for reply in (BLOCKED_REPLY, PII_REPLY):
            served.replying(reply)
            socket.send(json.dumps({"input": {"message": QUESTION}}))
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1]["event"] != "end":
                frames.append(json.loads(socket.recv(timeout=30)))
            turns.append(frames)
    blocked, redacted = turns
    sent = "".join(f["data"]["text"] for f in blocked if f["event"] == "token")
    assert not any(secret in sent for secret in SECRETS)
    assert [f["event"] for f in blocked][-2:] == ["error", "end"]
    assert_withheld(blocked[-1]["data"])
    assert_redacted("".join(f["data"]["text"] for f in redacted if f["event"] == "token"))
    assert_redacted(redacted[-1]["data"]["answer"])


def chat(base: str, *, stream: bool) -> httpx.Response:
    body = {"model": "docent", "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)


def streamed_content(reply: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The content deltas of a streamed completion, joined, and its last (stop) chunk."""
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in reply.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return content, next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] == "stop")


def test_openai_compatible_route_whole_and_streamed(served: Served) -> None:
    served.replying(BLOCKED_REPLY)
    whole = chat(served.base, stream=False)
    assert whole.status_code == 200, whole.text
    assert whole.json()["choices"][0]["message"]["content"].startswith(WITHHELD)
    assert whole.json()["docent"]["output_rule"] == "blocked: launch code \\d+"
    content, stop = streamed_content(chat(served.base, stream=True))
    assert not any(secret in content for secret in SECRETS), content
    assert WITHHELD in content and stop["docent"]["output_rule"] == "blocked: launch code \\d+"
    served.replying(PII_REPLY)
    assert_redacted(chat(served.base, stream=False).json()["choices"][0]["message"]["content"])
    content, _ = streamed_content(chat(served.base, stream=True))
    assert_redacted(content)


async def test_mcp_ask_gets_the_reviewed_answer(served: Served) -> None:
    served.replying(BLOCKED_REPLY)
    async with Client(streamable_http_client(f"{served.base}/mcp")) as client:
        blocked = await client.call_tool("ask", {"question": QUESTION})
        served.replying(PII_REPLY)
        redacted = await client.call_tool("ask", {"question": QUESTION})
    assert not blocked.is_error and blocked.structured_content is not None
    assert blocked.structured_content["answer"] == WITHHELD
    assert redacted.structured_content is not None
    assert_redacted(redacted.structured_content["answer"])


def test_metrics_count_the_rules(served: Served) -> None:
    invoke(served.replying(BLOCKED_REPLY).base)
    invoke(served.replying(PII_REPLY).base)
    text = httpx.get(f"{served.base}/metrics", timeout=30).text
    assert 'docent_output_rules_total{action="withheld",rule="launch code \\\\d+"}' in text, text[-3000:]
    assert 'docent_output_rules_total{action="redacted",rule="email"}' in text
    assert 'docent_output_rules_total{action="redacted",rule="phone"}' in text
