"""A real HTTP server on 127.0.0.1 for ingestion tests: canned replies per path, and a log of requests."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What the server answers on one path; `delay_s` holds the answer back (to provoke client timeouts)."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def redirect(location: str, status: int = 301) -> Reply:
    """A redirect to another path or URL."""
    return Reply(status=status, content_type=None, headers={"Location": location})


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it."""

    path: str
    headers: Mapping[str, str]


class Site:
    """A running server: its base URL, its routes and the requests it has seen."""

    def __init__(self, base: str, routes: Mapping[str, Reply]) -> None:
        self.base = base
        self.routes = dict(routes)
        self.requests: list[SeenRequest] = []
        self.released = threading.Event()  # set on shutdown, so delayed replies stop waiting

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        return self.base + path

    def hits(self, path: str) -> int:
        """How many requests reached this path."""
        return sum(1 for seen in self.requests if seen.path == path)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append(SeenRequest(self.path, dict(self.headers.items())))
            reply = site.routes.get(self.path, Reply(b"not found", status=404, content_type="text/plain"))
            if reply.delay_s and site.released.wait(reply.delay_s):
                return  # the test is over: do not answer
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that timed out and hung up
            super().handle_error(request, client_address)


@contextmanager
def serving(routes: Mapping[str, Reply]) -> Iterator[Site]:
    """Serve routes on a free 127.0.0.1 port for the duration of the block, then shut the server down."""
    site = Site("", routes)
    server = _Server(("127.0.0.1", 0), _handler(site))
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-http-server", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
