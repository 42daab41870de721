"""The rendered nginx config (deploy/nginx.conf.template) in front of stub replicas on loopback ports: events
and WebSocket frames pass unbuffered, a POST reaches one replica at most, request ids pass through."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from deploy import topology
from deploy.local_cluster import nginx_user
from tests.helpers import free_port


@contextmanager
def nginx(upstreams: list[str]) -> Iterator[str]:
    """nginx with the rendered config in front of upstreams (one worker: round robin is predictable); yields
    its base URL and always stops it."""
    # Not under pytest's 0700 tmp dir: nginx's workers run as nobody when the tests run as root.
    prefix = Path(tempfile.mkdtemp(prefix="docent-nginx-test-"))
    prefix.chmod(0o755)
    port = free_port()
    site = topology.NginxSite(
        listen=f"127.0.0.1:{port}",
        upstreams=upstreams,
        pid=str(prefix / "nginx.pid"),
        error_log=str(prefix / "error.log"),
        access_log=str(prefix / "access.log"),
        temp_dir=str(prefix),
        user=nginx_user(),
        worker_processes="1",
    )
    conf = prefix / "nginx.conf"
    conf.write_text(topology.render_nginx(site))
    command = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", site.error_log, "-g", "daemon off;"]
    process = subprocess.Popen(command, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (prefix / "error.log").read_text()
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        yield base
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def stub(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A stub replica on a free loopback port; yields its host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Recorded:
    """What one stub received: (method, path, X-Request-ID) per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    def add(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        handler.rfile.read(length)
        with self.lock:
            self.requests.append((handler.command, handler.path, handler.headers.get("X-Request-ID")))


def answering(recorded: Recorded) -> type[BaseHTTPRequestHandler]:
    class Answering(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            recorded.add(self)
            body = b'{"answer": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    return Answering


def dropping(recorded: Recorded) -> type[BaseHTTPRequestHandler]:
    """A replica that reads the request, then dies without answering (as one killed mid-turn does)."""

    class Dropping(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _drop(self) -> None:
            recorded.add(self)
            self.close_connection = True

        do_GET = do_POST = _drop

    return Dropping


def streaming(second: threading.Event) -> type[BaseHTTPRequestHandler]:
    """Server-Sent Events: one event, then a second only once the test has seen the first."""

    class Streaming(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(b"event: first\ndata: 1\n\n")
            self.wfile.flush()
            second.wait(10)
            self.wfile.write(b"event: second\ndata: 2\n\n")
            self.wfile.flush()

    return Streaming


@pytest.mark.parametrize("path", ["/stream", "/v1/chat/completions"])
def test_events_reach_the_client_as_the_replica_writes_them(path: str) -> None:
    second = threading.Event()
    with stub(streaming(second)) as replica, nginx([replica]) as base:
        # A buffering proxy holds the first event until the stream ends: 10 s later, past the read timeout.
        timeout = httpx.Timeout(5, read=3)
        with httpx.stream("POST", base + path, json={}, timeout=timeout) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()
            assert next(lines) == "event: first"
            second.set()
            rest = list(lines)
    assert "event: second" in rest


def test_websocket_frames_pass_through_nginx() -> None:
    def echo(socket: ServerConnection) -> None:
        for message in socket:
            socket.send(f"echo: {message if isinstance(message, str) else message.decode()}")

    port = free_port()
    with serve(echo, "127.0.0.1", port) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with nginx([f"127.0.0.1:{port}"]) as base, connect(base.replace("http", "ws") + "/ws") as socket:
                for question in ("one", "two"):
                    socket.send(question)
                    assert socket.recv(timeout=5) == f"echo: {question}"
        finally:
            server.shutdown()


def test_a_post_reaches_one_replica_at_most_and_refused_connections_go_to_the_next() -> None:
    dropped, answered = Recorded(), Recorded()
    dead = f"127.0.0.1:{free_port()}"  # refuses connections: a stopped replica
    with (
        stub(dropping(dropped)) as drops,
        stub(answering(answered)) as answers,
        nginx([drops, answers, dead]) as base,
    ):
        posts = [httpx.post(f"{base}/invoke", json={"n": i}, timeout=10) for i in range(6)]
        gets = [httpx.get(f"{base}/health", timeout=10) for _ in range(6)]
    dropped_posts = [r for r in dropped.requests if r[0] == "POST"]
    answered_posts = [r for r in answered.requests if r[0] == "POST"]
    assert dropped_posts, "round robin sends the first request to the first replica"
    # Each POST ran on exactly one replica: a dropped one is a 503 for the client to retry, not a replay.
    assert len(dropped_posts) + len(answered_posts) == len(posts)
    assert [r.status_code for r in posts].count(503) == len(dropped_posts)
    assert [r.status_code for r in posts].count(200) == len(answered_posts)
    failed = next(r for r in posts if r.status_code == 503)
    assert failed.headers["Retry-After"] == "2" and "detail" in failed.json()
    # GETs are idempotent: a dropped or refused one is passed to the next replica.
    assert [r.status_code for r in gets] == [200] * len(gets)


def test_request_ids_pass_through_or_are_made_by_nginx() -> None:
    recorded = Recorded()
    with stub(answering(recorded)) as replica, nginx([replica]) as base:
        httpx.get(f"{base}/health", headers={"X-Request-ID": "client-7"}, timeout=10)
        httpx.get(f"{base}/health", timeout=10)
    (_, _, sent), (_, _, made) = [r for r in recorded.requests if r[1] == "/health"]
    assert sent == "client-7"
    assert made is not None and len(made) == 32 and int(made, 16) >= 0


def test_nginx_answers_json_when_no_replica_is_reachable() -> None:
    with nginx([f"127.0.0.1:{free_port()}"]) as base:
        reply = httpx.get(f"{base}/ready", timeout=10)
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/json"
    assert json.loads(reply.text)["detail"]
    assert len(reply.headers["X-Request-ID"]) == 32
