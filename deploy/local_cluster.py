"""`deploy/local-cluster up|down|status|stop|start`: the server-mode topology (deploy/topology.py) locally.

`up` starts PostgreSQL, Redis, `chroma run`, `docent db upgrade`, N `docent serve` replicas, one `docent
worker` and nginx in front, each in a session (process group) of its own, waiting until each answers. PIDs,
ports and the environment go to the state dir (`--dir`, else $DOCENT_CLUSTER_DIR, else `.cluster/` in the
repository) with one log file per process; data go to a temp dir that `down` removes unless `--keep`. `down`
stops every recorded process by PID (and its group) and is safe to run again. `stop NAME` / `start NAME` take
one process down and bring it back (same command, environment and port) for failure drills. Standard library
only; the functions (`up`, `down`, `status`, `stop_one`, `start_one`) serve tests and benches as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy import topology

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "state.json"
ENV_FILE = "env"
# Processes are stopped in this order (the reverse of starting); each gets this signal, then SIGKILL.
STOP_ORDER = ("nginx", "worker", "api", "chroma", "redis", "postgres")
STOP_SIGNAL = {"postgres": signal.SIGINT}  # PostgreSQL's "fast" shutdown; SIGTERM waits for clients
STOP_GRACE_S = 15.0
SHARED_ADMIN_URL = os.environ.get("DOCENT_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class ClusterError(RuntimeError):
    """What went wrong, worded for the person who ran the command."""


@dataclass
class Process:
    """One started process, as recorded in state.json."""

    name: str
    pid: int
    started: str  # /proc/<pid>/stat start time: a recycled PID is never mistaken for ours
    command: list[str]
    log: str
    ready: str  # what `up` and `start` wait for: "pg_isready", "PING", "GET <url>" or "running"
    cwd: str
    env: dict[str, str] = field(default_factory=dict)  # on top of the caller's environment less DOCENT_*
    user: str | None = None
    port: int | None = None
    url: str | None = None


@dataclass
class State:
    """Everything `down` and `status` need, written after each process starts."""

    runtime_dir: str
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    postgres: str = "own"  # "own": our postgres under runtime_dir; "shared": a database we created elsewhere
    database_url: str | None = None
    processes: list[Process] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def load(state_dir: Path) -> State | None:
        path = state_dir / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        processes = [Process(**item) for item in raw.pop("processes", [])]
        return State(**raw, processes=processes)

    def save(self, state_dir: Path) -> None:
        """Atomically, readable by its owner only (the environment may hold a key the caller passed)."""
        path = state_dir / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.touch(mode=0o600)
        temporary.chmod(0o600)
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)


# ------------------------------------------------------------------------------------------------ processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(process: Process) -> bool:
    """Whether the recorded process still runs (the same one, not a recycled PID) and is not a zombie."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == process.started and fields[0] != "Z"


def tool(name: str) -> str:
    """An executable: beside this Python (the venv's docent and chroma), else on PATH, else Debian's spots."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    for pattern in (f"/usr/lib/postgresql/*/bin/{name}", f"/usr/sbin/{name}"):
        matches = sorted(Path("/").glob(pattern.lstrip("/")))
        if matches:
            return str(matches[-1])
    raise ClusterError(
        f"`{name}` is not installed (looked beside {sys.executable}, on PATH and in /usr/sbin)"
    )


def resolved(command: Sequence[str]) -> list[str]:
    return [tool(command[0]), *command[1:]]


def log_tail(path: str, chars: int = 3000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class Cluster:
    """Starts and records the processes of one local cluster."""

    def __init__(self, state_dir: Path, state: State, say: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.state = state
        self.say = say
        self.logs = state_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.runtime = Path(state.runtime_dir)

    def start(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        ready: str,
        *,
        port: int | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start one long-running process (env on top of `base_env()`) and record it."""
        process = Process(
            name=name,
            pid=0,
            started="",
            command=resolved(command),
            log=str(self.logs / f"{name}.log"),
            ready=ready,
            cwd=str(cwd or self.runtime),
            env=dict(env),
            user=user,
            port=port,
        )
        spawn(process)
        self.state.processes.append(process)
        self.state.save(self.state_dir)
        return process

    def run(self, name: str, command: Sequence[str], env: Mapping[str, str], timeout: float = 300) -> str:
        """A one-shot command (env on top of `base_env()`; its output goes to its log); returns its stdout;
        fails with its log tail."""
        log = self.logs / f"{name}.log"
        done = subprocess.run(
            resolved(command),
            env={**base_env(), **env},
            cwd=self.runtime,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ClusterError(
                f"`{' '.join(command)}` failed (exit {done.returncode}):\n{log_tail(str(log))}"
            )
        return done.stdout


def base_env() -> dict[str, str]:
    """The caller's environment without its DOCENT_ variables: each process gets its own on top."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}


def spawn(process: Process) -> None:
    """(Re)start a recorded process in a session of its own, as its user, appending to its log."""
    user = process.user
    with Path(process.log).open("ab") as out:
        popen = subprocess.Popen(
            process.command,
            env={**base_env(), **process.env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=process.cwd,
            start_new_session=True,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    started = start_time(popen.pid)
    if started is None:  # it already exited
        raise ClusterError(f"{process.name} exited at once (exit {popen.wait()}):\n{log_tail(process.log)}")
    process.pid, process.started = popen.pid, started


def is_ready(process: Process) -> bool:
    """Whether the process answers as its `ready` says it should."""
    kind, _, target = process.ready.partition(" ")
    if kind == "pg_isready":
        return pg_ready(process.port or 0)()
    if kind == "PING":
        return redis_pong(process.port or 0)()
    if kind == "GET":
        return http_ok(target)()
    return True  # "running": alive is all


def wait(process: Process, timeout: float) -> None:
    """Poll until the process is ready; fail early, with its log's tail, if it dies."""
    deadline = time.monotonic() + timeout
    if process.ready == "running":
        time.sleep(1.0)  # no endpoint: it must at least survive its start
    while time.monotonic() < deadline:
        if not alive(process):
            raise ClusterError(f"{process.name} exited before {process.ready}:\n{log_tail(process.log)}")
        if is_ready(process):
            return
        time.sleep(0.2)
    raise ClusterError(f"{process.name}: no {process.ready} within {timeout:.0f} s:\n{log_tail(process.log)}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=3) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def redis_pong(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


def pg_ready(port: int) -> Callable[[], bool]:
    isready = tool("pg_isready")

    def check() -> bool:
        command = [isready, "-q", "-h", "127.0.0.1", "-p", str(port)]
        return subprocess.run(command, check=False, timeout=10).returncode == 0

    return check


def has_command(*words: str) -> bool:
    """Whether this install's `docent` has the command (e.g. `db upgrade`, `worker`)."""
    command = [tool("docent"), *words, "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0


# ------------------------------------------------------------------------------------------------------ up


def service_user() -> str | None:
    """Who PostgreSQL runs as: the caller, unless the caller is root (postgres refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ClusterError("running as root, and neither a `postgres` nor a `nobody` user exists to run postgres")


def own_postgres(cluster: Cluster, timeout: float) -> str:
    """initdb + postgres of our own under the runtime dir (trust auth, loopback only); its libpq URL."""
    user = service_user()
    data = cluster.runtime / "postgres"
    sockets = cluster.runtime / "postgres-sockets"
    for path in (data, sockets):
        path.mkdir()
        if user:
            shutil.chown(path, user)
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    initdb = [tool("initdb"), "-D", str(data), "-U", "docent", "--auth=trust", "-E", "UTF8", "--no-sync"]
    done = subprocess.run(
        initdb,
        env=env,
        user=user,
        group=pwd.getpwnam(user).pw_gid if user else None,
        extra_groups=[] if user else None,
        cwd=cluster.runtime,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (cluster.logs / "initdb.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise ClusterError(f"initdb failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    port = free_port()
    command = [
        "postgres",
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={sockets}",
        "-c",
        "max_connections=200",
    ]
    process = cluster.start("postgres", command, env, "pg_isready", port=port, user=user)
    wait(process, timeout)
    createdb = [tool("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "docent", "docent"]
    done = subprocess.run(createdb, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ClusterError(f"createdb docent failed: {done.stderr.strip()}")
    return f"postgresql://docent@127.0.0.1:{port}/docent"


def shared_postgres(cluster: Cluster) -> str:
    """A fresh database on the machine's server (DOCENT_TEST_PG_ADMIN_URL); `down` drops it."""
    name = f"docent_cluster_{uuid.uuid4().hex[:12]}"
    command = [tool("createdb"), f"--maintenance-db={SHARED_ADMIN_URL}", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ClusterError(f"createdb {name} on {SHARED_ADMIN_URL} failed: {done.stderr.strip()}")
    return SHARED_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def nginx_user() -> str | None:
    """nginx's workers, when its master runs as root: nobody, in nobody's own group."""
    if os.geteuid() != 0:
        return None
    import grp

    nobody = pwd.getpwnam("nobody")
    return f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"


def up(
    state_dir: Path, replicas: int, auth: str, postgres: str, timeout: float, say: Callable[[str], None]
) -> State:
    """Start the whole cluster; on any failure, stop what was started and raise."""
    previous = State.load(state_dir)
    if previous is not None:
        if any(alive(p) for p in previous.processes):
            raise ClusterError(f"a cluster already runs from {state_dir}: `deploy/local-cluster down` first")
        down(state_dir, keep=False, say=lambda _: None)
    shutil.rmtree(state_dir / "logs", ignore_errors=True)  # this run's logs only
    state_dir.mkdir(parents=True, exist_ok=True)
    runtime = Path(tempfile.mkdtemp(prefix="docent-cluster-"))
    runtime.chmod(0o755)  # postgres and nginx's workers (unprivileged) must reach their own subdirectories
    if postgres == "auto":
        postgres = (
            "own"
            if shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
            else "shared"
        )
    state = State(runtime_dir=str(runtime), postgres=postgres)
    state.save(state_dir)
    cluster = Cluster(state_dir, state, say)
    try:
        _start_all(cluster, replicas, auth, timeout)
    except BaseException:
        with contextlib.suppress(ClusterError):  # the first error is the one to report
            down(state_dir, keep=False, say=lambda _: None)
        raise
    return state


def _start_all(cluster: Cluster, replicas: int, auth: str, timeout: float) -> None:
    state, say, runtime = cluster.state, cluster.say, cluster.runtime

    say(f"postgres ({state.postgres}) ...")
    state.database_url = (
        own_postgres(cluster, timeout) if state.postgres == "own" else shared_postgres(cluster)
    )
    state.save(cluster.state_dir)

    say("redis ...")
    redis_port = free_port()
    (runtime / "redis").mkdir()
    redis_cmd = topology.redis_command("127.0.0.1", redis_port)
    wait(cluster.start("redis", redis_cmd, {}, "PING", port=redis_port, cwd=runtime / "redis"), timeout)

    say("chroma ...")
    chroma_port = free_port()
    chroma_url = f"http://127.0.0.1:{chroma_port}"
    chroma_cmd = topology.chroma_command(str(runtime / "chroma"), "127.0.0.1", chroma_port)
    chroma_ready = f"GET {chroma_url}/api/v2/heartbeat"
    chroma = cluster.start("chroma", chroma_cmd, topology.CHROMA_ENV, chroma_ready, port=chroma_port)
    chroma.url = chroma_url
    wait(chroma, timeout)

    endpoints = topology.Endpoints(
        database_url=state.database_url, redis_url=f"redis://127.0.0.1:{redis_port}/0", chroma_url=chroma_url
    )
    # The caller's other DOCENT_ settings (model provider, limits) reach every Docent process, as deploy/.env
    # does in compose; the topology's own variables win.
    passed = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("DOCENT_") and k != "DOCENT_CLUSTER_DIR" and not k.startswith("DOCENT_TEST_")
    }

    def env_for(name: str) -> dict[str, str]:
        data_dir = runtime / name
        data_dir.mkdir(exist_ok=True)
        return {**passed, **topology.docent_env(endpoints, str(data_dir), auth), "PYTHONUNBUFFERED": "1"}

    state.env = {k: v for k, v in env_for("client").items() if k.startswith("DOCENT_")}
    state.save(cluster.state_dir)

    if has_command("db", "upgrade"):
        say("docent db upgrade ...")
        cluster.run("migrate", topology.migrate_command(), env_for("migrate"))
    else:
        state.notes.append("`docent db upgrade` is not in this install: the schema was not migrated")
        say(f"warning: {state.notes[-1]}")

    if auth == "on":
        create = ["docent", "keys", "create", "local-cluster", "--scopes", "admin"]
        created = cluster.run("keys", create, env_for("keys"))
        key_file = cluster.state_dir / "api-key"
        key_file.write_text(created.strip().splitlines()[-1] + "\n")
        key_file.chmod(0o600)
        state.notes.append(f"an admin key is in {key_file}")

    apis = []
    for i in range(1, replicas + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = topology.serve_command("127.0.0.1", port)
        api = cluster.start(f"api-{i}", serve, env_for(f"api-{i}"), f"GET {url}/ready", port=port)
        api.url = url
        apis.append(api)
    for api in apis:  # started together, waited for in turn: their start-ups overlap
        say(f"{api.name} ...")
        wait(api, timeout)

    if has_command("worker"):
        say("worker ...")
        wait(cluster.start("worker", topology.worker_command(), env_for("worker"), "running"), timeout)
    else:
        state.notes.append("`docent worker` is not in this install: no worker runs (ingest jobs wait)")
        say(f"warning: {state.notes[-1]}")

    say("nginx ...")
    nginx_port = free_port()
    nginx_dir = runtime / "nginx"
    nginx_dir.mkdir()
    site = topology.NginxSite(
        listen=f"127.0.0.1:{nginx_port}",
        upstreams=[f"127.0.0.1:{api.port}" for api in apis],
        pid=str(nginx_dir / "nginx.pid"),
        error_log=str(cluster.logs / "nginx-error.log"),
        access_log=str(cluster.logs / "nginx-access.log"),
        temp_dir=str(nginx_dir),
        user=nginx_user(),
        worker_processes="2",
        max_body_bytes=int(os.environ.get("DOCENT_MAX_UPLOAD_BYTES", topology.MAX_UPLOAD_BYTES)),
    )
    conf = cluster.state_dir / "nginx.conf"
    conf.write_text(topology.render_nginx(site))
    nginx_cmd = ["nginx", "-p", str(nginx_dir), "-c", str(conf), "-e", site.error_log, "-g", "daemon off;"]
    cluster.run("nginx-test", [*nginx_cmd[:-2], "-t"], {})
    url = f"http://127.0.0.1:{nginx_port}"
    nginx = cluster.start("nginx", nginx_cmd, {}, f"GET {url}/ready", port=nginx_port)
    nginx.url = url
    wait(nginx, timeout)

    state.url = nginx.url
    state.save(cluster.state_dir)
    env_lines = [f"export {k}={shlex.quote(v)}" for k, v in state.env.items() if k != "DOCENT_DATA_DIR"]
    env_file = cluster.state_dir / ENV_FILE
    env_file.touch(mode=0o600)
    env_file.chmod(0o600)
    env_file.write_text("\n".join([*env_lines, f"export DOCENT_URL={state.url}"]) + "\n")


# ---------------------------------------------------------------------------------------------------- down


def stop(process: Process, say: Callable[[str], None]) -> None:
    """Signal the process group (politely, then SIGKILL) and wait until the process is gone."""
    if not alive(process):
        return
    polite = STOP_SIGNAL.get(process.name, signal.SIGTERM)
    group = process.pid if _pgid(process.pid) == process.pid else None  # each runs in a session of its own
    _signal(process, group, polite)
    deadline = time.monotonic() + STOP_GRACE_S
    while alive(process) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(process):
        say(f"{process.name} (pid {process.pid}) ignored {polite.name}: SIGKILL")
        _signal(process, group, signal.SIGKILL)
    elif group is not None:
        # Leftover children of the group (a postgres backend, an nginx worker) go too.
        _signal(process, group, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(process) and time.monotonic() < deadline:
        time.sleep(0.1)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal(process: Process, group: int | None, sig: signal.Signals) -> None:
    try:
        if group is not None:
            os.killpg(group, sig)
        else:
            os.kill(process.pid, sig)
    except ProcessLookupError:
        pass


def _order(process: Process) -> int:
    kind = process.name.split("-", 1)[0]
    return STOP_ORDER.index(kind) if kind in STOP_ORDER else 0


def down(state_dir: Path, keep: bool, say: Callable[[str], None]) -> None:
    """Stop every recorded process; drop the shared database; remove the data unless keep. Idempotent."""
    state = State.load(state_dir)
    if state is None:
        say(f"no cluster recorded in {state_dir}")
        return
    for process in sorted(state.processes, key=_order):
        say(f"stopping {process.name} (pid {process.pid})")
        stop(process, say)
    left = [p for p in state.processes if alive(p)]
    if left:
        raise ClusterError("still running: " + ", ".join(f"{p.name} (pid {p.pid})" for p in left))
    if state.postgres == "shared" and state.database_url:
        name = state.database_url.rsplit("/", 1)[1]
        drop = [tool("dropdb"), "--force", "--if-exists", f"--maintenance-db={SHARED_ADMIN_URL}", name]
        subprocess.run(drop, capture_output=True, timeout=60, check=False)
    if keep:
        say(f"data kept in {state.runtime_dir}")
    else:
        shutil.rmtree(state.runtime_dir, ignore_errors=True)
    (state_dir / STATE_FILE).replace(state_dir / "last-state.json")
    (state_dir / ENV_FILE).unlink(missing_ok=True)
    (state_dir / "api-key").unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- one process (drills)


def _recorded(state_dir: Path, name: str) -> tuple[State, Process]:
    state = State.load(state_dir)
    if state is None:
        raise ClusterError(f"no cluster recorded in {state_dir}")
    for process in state.processes:
        if process.name == name:
            return state, process
    names = ", ".join(p.name for p in state.processes)
    raise ClusterError(f"no process {name!r} in the cluster at {state_dir} (it has {names})")


def stop_one(state_dir: Path, name: str, say: Callable[[str], None], kill: bool = False) -> Process:
    """Stop one recorded process (its group), politely or with SIGKILL; its data stay for `start_one`."""
    _, process = _recorded(state_dir, name)
    if kill and alive(process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    stop(process, say)
    return process


def start_one(state_dir: Path, name: str, timeout: float = 180.0) -> Process:
    """Start a stopped process again: the same command, environment and port; waits until it is ready."""
    state, process = _recorded(state_dir, name)
    if alive(process):
        raise ClusterError(f"{name} (pid {process.pid}) is running")
    spawn(process)
    state.save(state_dir)
    wait(process, timeout)
    return process


# -------------------------------------------------------------------------------------------------- status


def status(state_dir: Path) -> dict[str, Any]:
    """The recorded cluster, each process with whether it still runs."""
    state = State.load(state_dir)
    if state is None:
        return {"running": False, "state_dir": str(state_dir), "processes": []}
    processes = [{**asdict(p), "alive": alive(p)} for p in state.processes]
    return {
        "running": bool(processes) and all(p["alive"] for p in processes),
        "state_dir": str(state_dir),
        "url": state.url,
        "env": state.env,
        "runtime_dir": state.runtime_dir,
        "notes": state.notes,
        "processes": processes,
    }


# ------------------------------------------------------------------------------------------------- command


def default_state_dir() -> Path:
    return Path(os.environ.get("DOCENT_CLUSTER_DIR") or REPO_ROOT / ".cluster")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/local-cluster", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="state dir (default $DOCENT_CLUSTER_DIR or .cluster/)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the cluster and print its URL and environment")
    start.add_argument("--replicas", type=int, default=topology.REPLICAS, help="docent serve replicas (2)")
    start.add_argument(
        "--auth", choices=["on", "off"], default="off", help="API keys (on: an admin key is made)"
    )
    start.add_argument(
        "--postgres",
        choices=["auto", "own", "shared"],
        default="auto",
        help="own: initdb + postgres in a temp dir; shared: a fresh database on DOCENT_TEST_PG_ADMIN_URL's"
        " server; auto: own when initdb is installed",
    )
    start.add_argument("--timeout", type=float, default=180.0, help="seconds each process has to be ready")
    stop_ = commands.add_parser("down", help="stop every recorded process and remove the data")
    stop_.add_argument("--keep", action="store_true", help="keep the data dir (databases, Chroma, logs)")
    halt = commands.add_parser("stop", help="stop one process (failure drills); `start` brings it back")
    halt.add_argument("name", help="postgres, redis, chroma, api-N, worker or nginx")
    halt.add_argument("--kill", action="store_true", help="SIGKILL at once (kill -9), no clean shutdown")
    again = commands.add_parser("start", help="start a stopped process again: same command, env and port")
    again.add_argument("name", help="postgres, redis, chroma, api-N, worker or nginx")
    again.add_argument("--timeout", type=float, default=180.0, help="seconds it has to be ready")
    show = commands.add_parser("status", help="what runs (exit 0: everything; 3: something stopped or none)")
    show.add_argument("--json", action="store_true", help="print the state as JSON")
    args = parser.parse_args(argv)
    state_dir = (args.dir or default_state_dir()).resolve()

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.command == "up":
            state = up(state_dir, args.replicas, args.auth, args.postgres, args.timeout, say)
            for note in state.notes:
                say(f"note: {note}")
            print(f"Docent cluster up: {state.url}")
            print(f"state, PIDs and logs: {state_dir}; environment: source {state_dir / ENV_FILE}")
            for key, value in state.env.items():
                if key != "DOCENT_DATA_DIR":  # each process has its own
                    print(f"  {key}={value}")
            return 0
        if args.command == "down":
            down(state_dir, args.keep, say)
            return 0
        if args.command == "stop":
            stop_one(state_dir, args.name, say, kill=args.kill)
            return 0
        if args.command == "start":
            started = start_one(state_dir, args.name, args.timeout)
            say(f"{started.name} running again (pid {started.pid})")
            return 0
        report = status(state_dir)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            where = f"up at {report['url']}" if report["running"] else "not (fully) running"
            print(f"cluster in {state_dir}: {where}")
            for p in report["processes"]:
                shown = "running" if p["alive"] else "stopped"
                print(f"  {p['name']:<10} pid {p['pid']:<8} {shown:<8} {p.get('url') or ''}")
        return 0 if report["running"] else 3
    except ClusterError as exc:
        say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
