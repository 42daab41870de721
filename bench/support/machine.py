"""What every benchmark report says about where it ran: the load average, and paths shown from the
repository's parent (so `../shared/...` reads as in the commands)."""

from __future__ import annotations

import os
from pathlib import Path

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
