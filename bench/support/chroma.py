"""A real Chroma server (`chroma run`, which ships with chromadb) on a free loopback port, for tests, benches
and drills. Its handle can stop the server and start it again on the same port and path, as an outage would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType

import httpx

from bench.support.servers import VENV_BIN, free_port, stop

START_TIMEOUT_S = 60.0


class ChromaServer:
    """`chroma run --path PATH --host 127.0.0.1 --port PORT`, started by `start` (which waits for its
    heartbeat) and stopped, by its PID, by `stop` or at the end of a `with` block."""

    def __init__(self, path: Path, *, port: int | None = None, log: Path | None = None) -> None:
        """`log`: where its output goes (default: `chroma.log` beside `path`)."""
        self.path = path
        self.port = port or free_port()
        self.log = log or path.parent / f"{path.name}.chroma.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its base URL, as DOCENT_CHROMA_URL takes it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the server (no-op while it runs) and wait until its heartbeat answers; returns its URL."""
        if self.pid is not None:
            return self.url
        self.path.mkdir(parents=True, exist_ok=True)
        command = [str(VENV_BIN / "chroma"), "run", "--path", str(self.path), "--host", "127.0.0.1"]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_for_heartbeat(self._process, timeout)
        except BaseException:
            self.stop()
            sys.stderr.write(
                f"--- {self.log.name} (tail) ---\n{self.log.read_text(errors='replace')[-4000:]}\n"
            )
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server (its process group, by PID) and wait until it has exited."""
        if self._process is not None:
            stop(self._process)
            self._process = None

    def _wait_for_heartbeat(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {process.returncode} before answering")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"chroma run on {self.url} did not answer within {timeout}s")

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """A Chroma server storing under `path` for the duration of the block; yields its URL."""
    with ChromaServer(path) as server:
        yield server.url
