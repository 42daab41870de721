"""Schemathesis against a real Docent server: no 5xx, and every response as its OpenAPI schema declares.

What it does, in order:

1. Setup: a fresh temporary DOCENT_DATA_DIR filled with `docent ingest data/sample`, and an API key with
   every scope (query, ingest, admin) in a temporary keys file.
2. Service: `docent serve` (real uvicorn, auth on) on a free loopback port, in its own session; it is always
   stopped at the end, on errors and on Ctrl-C too.
3. Run: `st run <base>/openapi.json` with the key, every check (see CHECKS) and phases examples, coverage,
   fuzzing and stateful, at most `--max-examples` generated cases per operation and phase.
4. Report: operations tested, test cases generated, failures and errors, duration, and schemathesis's own
   summary. `--report-dir DIR` keeps its JUnit XML and NDJSON reports. Exit code 0 only with zero failures
   and zero errors.

The server runs with the extractive answerer (no LLM), rate limiting off (schemathesis sends hundreds of
requests a minute), and its request limits raised to the bounds the schema declares (DOCENT_MAX_MESSAGE_CHARS,
DOCENT_MAX_K, DOCENT_BATCH_MAX_ITEMS), so that a request the schema allows is one the server accepts.

Operations not tested, by design:
- `/ws` (WebSocket) is not an OpenAPI operation; `/` (the chat page) and `/docs` are left out of the schema.
- Nothing else is excluded. `/stream` and `/v1/chat/completions` with `stream: true` answer
  text/event-stream (checked for status and content type; their events are not JSON Schema-checked).
  `POST /ingest` starts background jobs that fetch whatever http(s) URLs are generated: they fail fast
  (DOCENT_HTTP_TIMEOUT_S=2, the hosts do not exist) and only touch the temporary data dir.

    .venv/bin/python bench/schemathesis_run.py
    .venv/bin/python bench/schemathesis_run.py --max-examples 100 --seed 2 --report-dir /tmp/st-report
    .venv/bin/python bench/schemathesis_run.py --smoke    # seconds: does the run work at all?
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path: the repo root takes its place, so that bench.support
# imports and bench/ingest.py does not shadow the `ingest` package.
sys.path[0] = str(REPO_ROOT)

from bench.support.servers import VENV_BIN, docent_env, docent_server, ingest_sample  # noqa: E402
from core.storage.keys import add_key  # noqa: E402

# Every check schemathesis 4 has. use_after_free and ensure_resource_availability act in the stateful phase,
# on the links schemathesis infers (POST /threads -> GET/DELETE /threads/{thread_id}); ignored_auth needs
# securitySchemes in the schema, which Docent does not declare (its keys are read by a dependency), so it
# finds nothing to check.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)
PHASES = "examples,coverage,fuzzing,stateful"
# --smoke: every operation once from its OpenAPI examples, and one generated case each.
SMOKE_PHASES = "examples,fuzzing"
SMOKE_EXAMPLES = 1

# schemathesis.toml for the run.
CONFIG = """\
[generation]
# Unknown query parameters are ignored, as by most HTTP APIs; do not send them as "invalid" data.
allow-extra-parameters = false

# Rules JSON Schema cannot state, so schema-valid bodies may get the status the route declares for them
# (each of these paths has one operation, POST; filters in one block are OR-ed, so name the path alone):
# - POST /v1/chat/completions: 400 when the last message is not a non-empty user message ("the last item of
#   an array" has no keyword).
# - POST /invoke, POST /stream: 400 for a `model` this server does not run (GET /health lists them; the
#   schema cannot, it is written before the models are opened).
# - POST /invoke, POST /stream, POST /v1/chat/completions: 400 for a `filter` whose page range runs
#   backwards, whose times are not ISO 8601 or not in order, or with a NUL in a value.
# - POST /batch: 422 when `config` is a list whose length differs from `inputs`.
# - POST /ingest: the schema's top-level anyOf (at least one of `urls` or `files`) is stated, but
#   schemathesis 4 builds "valid" bodies from one anyOf branch without its sibling `properties`
#   (`{"files": null}`) or from property defaults (`{"urls": []}`); the server answers those with 422.
[[operations]]
include-path = "/v1/chat/completions"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-path = ["/invoke", "/stream"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-path = "/batch"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]
include-path = "/ingest"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# use_after_free (stateful) counts a DELETE as done when the step before it succeeded, whatever the DELETE
# answered, and it ignores query parameters: `DELETE /sources/X?collection=other` (404, X is not there),
# then `DELETE /sources/X` (200, X removed from the default collection) is reported as a use after free.
# It stays on for /threads/{thread_id}.
[[operations]]
include-path = "/sources/{source_id}"
checks.use_after_free.enabled = false
"""

# The server's settings (bench.support.servers.docent_env drops a developer's own DOCENT_*/OPENAI_* settings).
SERVER_ENV = {
    "DOCENT_AUTH": "on",
    "DOCENT_LLM_PROVIDER": "extractive",
    "DOCENT_EMBEDDINGS_PROVIDER": "onnx",
    "DOCENT_RATE_LIMIT_PER_MINUTE": "0",
    "DOCENT_HTTP_TIMEOUT_S": "2",
    "DOCENT_MAX_MESSAGE_CHARS": "100000",
    "DOCENT_MAX_K": "50",
    "DOCENT_BATCH_MAX_ITEMS": "1000",
    "DOCENT_LOG_LEVEL": "warning",
}


@dataclass
class Figures:
    """What the run's summary says."""

    operations_selected: int | None
    operations_tested: int | None
    cases: int | None
    failures: int
    errors: int
    seconds: float
    exit_code: int
    crashed: bool

    @property
    def ok(self) -> bool:
        """Schemathesis passed: every operation tested, zero failures, zero errors, no crashed worker."""
        return (
            self.exit_code == 0
            and self.failures == 0
            and self.errors == 0
            and not self.crashed
            and self.operations_tested is not None
            and self.operations_tested == self.operations_selected
        )


def parse_summary(text: str, exit_code: int, seconds: float) -> Figures:
    """The figures of `st run`'s summary (plain text, --no-color)."""

    def number(pattern: str) -> int | None:
        found = re.search(pattern, text)
        return int(found.group(1)) if found else None

    # The closing line: `=== 2 failures, 1 error, 1 warning in 61.20s ===` or `=== 20 passed in 9.1s ===`.
    closing = re.findall(r"^=+ (.+ in [\d.]+s) =+$", text, flags=re.MULTILINE)
    final = closing[-1] if closing else ""
    failures = int(m.group(1)) if (m := re.search(r"(\d+) failures?\b", final)) else 0
    errors = int(m.group(1)) if (m := re.search(r"(\d+) errors?\b", final)) else 0
    return Figures(
        operations_selected=number(r"Selected:\s+(\d+)/\d+"),
        operations_tested=number(r"Tested:\s+(\d+)"),
        cases=number(r"(\d+) generated"),
        failures=failures,
        errors=errors,
        seconds=seconds,
        exit_code=exit_code,
        crashed="Exception in thread" in text,
    )


# -------------------------------------------------------------------------------------------------- run


def schemathesis(
    base: str, key: str, config: Path, args: argparse.Namespace, env: dict[str, str]
) -> tuple[str, int, float]:
    """Run `st run` against the server; its output, exit code and seconds."""
    command = [
        str(VENV_BIN / "st"),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        args.phases,
        "--max-examples",
        str(args.max_examples),
        "--workers",
        str(args.workers),
        "--seed",
        str(args.seed),
        "--request-timeout",
        str(args.request_timeout),
        "--generation-database",
        "none",
        "--output-truncate",
        "true",
    ]
    if args.report_dir:
        command += ["--report", "junit,ndjson", "--report-dir", str(args.report_dir.resolve())]
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, cwd=config.parent, capture_output=True, text=True, timeout=args.timeout, check=False
    )
    return done.stdout + done.stderr, done.returncode, time.perf_counter() - start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=25, help="cases per operation and phase")
    # One worker: hypothesis's lambda descriptions call ast.parse, which CPython 3.11 does not make safe
    # across threads (SystemError "AST constructor recursion depth mismatch" kills a worker).
    parser.add_argument("--workers", type=int, default=1, help="concurrent schemathesis workers")
    parser.add_argument("--seed", type=int, default=1, help="hypothesis seed (reproducible runs)")
    parser.add_argument("--phases", default=PHASES, help="schemathesis phases")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds for the whole st run")
    parser.add_argument(
        "--report-dir",
        type=Path,
        help="keep schemathesis's JUnit XML and NDJSON (every request) reports here",
    )
    parser.add_argument("--output", type=Path, help="write schemathesis's full output here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"seconds, not minutes: phases {SMOKE_PHASES}, {SMOKE_EXAMPLES} example per operation",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.phases, args.max_examples = SMOKE_PHASES, SMOKE_EXAMPLES
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, run, report; 0 when schemathesis found no failure and no error, 1 otherwise, 130 on Ctrl-C."""
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    work = Path(tempfile.mkdtemp(prefix="docent-schemathesis-"))
    try:
        return _run(args, work)
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    data_dir = work / "data"
    data_dir.mkdir()
    keys_file = work / "api_keys.json"
    server_env = {**SERVER_ENV, "DOCENT_API_KEYS_FILE": str(keys_file)}
    env = docent_env(data_dir, **server_env)
    config = work / "schemathesis.toml"
    config.write_text(CONFIG)
    ingest_sample(data_dir)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    key = add_key(keys_file, "schemathesis", ["query", "ingest", "admin"], created)
    log = work / "server.log"
    try:
        with docent_server(data_dir, log, **server_env) as base:
            print(f"schemathesis against {base}/openapi.json (auth on, key with query,ingest,admin)")
            print(
                f"checks: {','.join(CHECKS)}\nphases: {args.phases}  max examples: {args.max_examples}"
                f"  workers: {args.workers}  seed: {args.seed}",
                flush=True,
            )
            output, code, seconds = schemathesis(base, key, config, args, env)
    except BaseException:
        sys.stderr.write("--- server log (tail) ---\n" + log.read_text(errors="replace")[-4000:] + "\n")
        raise
    if args.output:
        args.output.write_text(output)
    figures = parse_summary(output, code, seconds)
    # All of it when something failed; else from the warnings (or the summary) on.
    sections = [m.start() for m in re.finditer(r"^=+ (WARNINGS|SUMMARY) =+$", output, flags=re.MULTILINE)]
    detail = output if not figures.ok or not sections else output[sections[0] :]
    print(detail.rstrip())
    print(
        f"\noperations tested: {figures.operations_tested}/{figures.operations_selected}"
        f"  test cases: {figures.cases}  failures: {figures.failures}  errors: {figures.errors}"
        f"  duration: {figures.seconds:.1f}s  st exit code: {figures.exit_code}"
        + ("  (a schemathesis worker crashed)" if figures.crashed else "")
    )
    if "Traceback" in log.read_text(errors="replace"):
        print("--- server log has tracebacks (tail) ---\n" + log.read_text(errors="replace")[-4000:])
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
