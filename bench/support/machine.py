"""What every benchmark report says about where it ran: the load average, and paths shown from the
repository's parent (so `../shared/...` reads as in the commands)."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or n/a."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def shown_path(path: Path) -> str:
    """A path relative to the repository's parent when it is under it, else as given."""
    try:
        return str(path.relative_to(REPO_ROOT.parent))
    except ValueError:
        return str(path)


def unwind_on_signals() -> None:
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, so a bench's `finally` stops what it started (SIGINT
    even where the parent shell started the process with SIGINT ignored, as non-interactive shells do for `&`
    jobs)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def resolved_corpus(given: Sequence[Path] | None, default: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The corpus paths (relative ones from the repository root) and those that do not exist."""
    corpus = [
        (p if p.is_absolute() else REPO_ROOT / p).resolve() for p in (given or [Path(c) for c in default])
    ]
    return corpus, [str(p) for p in corpus if not p.exists()]
