"""Test helpers: free ports, and real servers started and stopped by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = (REPO_ROOT.parent / "shared").resolve()
ENERGY_CORPUS = SHARED / "corpus" / "energy-saving"
SAMPLE_CORPUS = REPO_ROOT / "data" / "sample"
VENV_BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docent_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a `docent` subprocess whose stores live under data_dir."""
    # A developer's own provider settings must not change what the tests run against.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "OPENAI_", "OLLAMA_"))}
    # Auth is on by default and the server refuses to start without keys; tests about something else serve
    # without keys (tests of auth pass DOCENT_AUTH="on").
    env.update({"DOCENT_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "DOCENT_AUTH": "off", **extra})
    return env


def ingest_sample(data_dir: Path) -> Path:
    """Ingest the repo's sample corpus into data_dir with the real `docent ingest`; returns data_dir."""
    done = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], docent_env(data_dir))
    assert done.returncode == 0, done.stderr
    return data_dir


def create_key(data_dir: Path, name: str, scopes: str = "query") -> str:
    """A new API key made by `docent keys create` in data_dir's keys file (the last line it prints)."""
    done = run_docent(["keys", "create", name, "--scopes", scopes], docent_env(data_dir), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def run_docent(
    args: list[str], env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed `docent` console command."""
    return subprocess.run(
        [str(VENV_BIN / "docent"), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Poll url until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def running(
    command: list[str], env: Mapping[str, str], ready_url: str, log: Path, timeout: float = 90
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait for ready_url, and always stop it (and its children) afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        try:
            wait_until_up(ready_url, process, timeout)
            yield process
        except BaseException:
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process group politely, then firmly."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=5)


@contextmanager
def docent_server(data_dir: Path, log: Path, **env: str) -> Iterator[str]:
    """Real uvicorn serving Docent on a free loopback port; yields the base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "docent"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, docent_env(data_dir, **env), f"{base}/health", log):
        yield base
