"""Hostile and internal HTTP servers on loopback for the safe-fetching tests: each path is a function that
writes the whole answer (it can drip, stall, stream a bomb or hold a secret); every request is logged."""

from __future__ import annotations

import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]
SECRET = b"internal-service-secret: 7f3a9c"
MiB = 1 << 20


@dataclass
class Server:
    """A running server: its base URL and the (path, Host header) of every request it got."""

    host: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, path: str | None = None) -> int:
        return sum(1 for seen, _ in self.requests if path is None or seen == path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that stopped reading
            super().handle_error(request, client_address)


@contextmanager
def serving(routes: Mapping[str, Answer], host: str = "127.0.0.1", port: int = 0) -> Iterator[Server]:
    """Serve routes on host:port (0: a free port) for the block; streams stop when it ends."""
    stopped = threading.Event()
    server_info = Server(host, 0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_info.requests.append((self.path, self.headers.get("Host", "")))
            answer = routes.get(self.path)
            if answer is None:
                self.send_error(404)
                return
            with suppress(ConnectionError):
                answer(self, stopped)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server((host, port), Handler)
    server_info.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def body(data: bytes, content_type: str = "text/html; charset=utf-8") -> Answer:
    def answer(handler: BaseHTTPRequestHandler, _stopped: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def redirect(location: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler, _stopped: threading.Event) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def drip(every_s: float = 1.0, length: int = 1000) -> Answer:
    """Headers at once, then one byte of the body every `every_s` seconds."""

    def answer(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(length):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            if stopped.wait(every_s):
                return

    return answer


def stream(chunks: Callable[[], Iterator[bytes]], headers: Mapping[str, str]) -> Answer:
    """200 with these headers and no Content-Length: the body runs until the connection closes."""

    def answer(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
        handler.send_response(200)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        for chunk in chunks():
            if stopped.is_set():
                return
            handler.wfile.write(chunk)

    return answer


def zeros(total: int, step: int = MiB) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        block = bytes(step)
        for _ in range(total // step):
            yield block

    return chunks


def gzip_bomb(expanded: int = 1 << 30) -> bytes:
    """One gzip member of `expanded` zero bytes (1 GiB gives about 1 MB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(expanded // MiB)]
    parts.append(packer.flush())
    return b"".join(parts)


def pieces(data: bytes, step: int = 64 * 1024) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), step):
            yield data[start : start + step]

    return chunks


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class RssPeak:
    """Samples a process's RSS every few milliseconds while the block runs; `peak` is the highest seen."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.005)
