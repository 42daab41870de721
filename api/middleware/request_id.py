"""The request id: the client's `X-Request-ID` when it is sane, else a fresh one (held in core.log_config's
contextvar, which every log line reads)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# Ids that are safe to echo in a header and to write in a log line.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID if it is 1-128 characters of `[A-Za-z0-9._:-]`, else a new uuid4 hex."""
    for name, value in headers:
        if name.lower() == _HEADER_KEY:
            candidate = value.decode("latin-1")
            if _SANE.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex
