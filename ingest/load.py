"""Reading sources: a local file's or a URL's bytes (`RawSource`), then the parser its kind needs.

httpx and the parsers are imported by the code that uses them, so reading and hashing a file (all an
unchanged re-ingest does) does not pay for them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.document import LoadedDocument, LoadError, ParseOptions, RawSource
from ingest.fetch import GENERIC_REFUSAL, Fetched, FetchError, FetchPolicy, fetch
from ingest.formats import CONTENT_TYPE_KINDS, LEGACY_CONTENT_TYPES, PARSERS, SUFFIX_KINDS
from ingest.formats.ooxml import LEGACY_SUFFIXES, legacy_refusal

if TYPE_CHECKING:
    import httpx

SUPPORTED_SUFFIXES = frozenset(SUFFIX_KINDS)
SUPPORTED_LIST = " ".join(sorted(SUPPORTED_SUFFIXES))
PDF_CONTENT_TYPES = frozenset({"application/pdf", "application/x-pdf"})
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_CONTENT_TYPES = frozenset({"text/plain"})
log = logging.getLogger(__name__)


def read_path(path: Path) -> RawSource:
    """Read a local file's bytes; its suffix tells its kind (`ingest.formats.SUFFIX_KINDS`)."""
    suffix = path.suffix.lower()
    kind = SUFFIX_KINDS.get(suffix)
    if kind is None and suffix in LEGACY_SUFFIXES:
        raise LoadError(legacy_refusal(suffix))
    if kind is None:
        raise LoadError(f"unsupported file type {suffix or '(none)'}: expected one of {SUPPORTED_LIST}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    return RawSource(str(path.resolve()), data, kind, path.name)


def fetch_url(url: str, client: httpx.Client, policy: FetchPolicy | None = None) -> RawSource:
    """Fetch a URL under a policy (ingest/fetch.py; default: the operator's, private addresses allowed) and
    tell its kind from the content type. The specific reason of a failure is always logged; the error says
    it only if the policy reveals reasons."""
    policy = policy or FetchPolicy(allow_private=True)
    try:
        return raw_source(fetch(url, client, policy), policy)
    except FetchError as exc:
        log.warning("fetch failed: %s: %s", url, exc.reason)
        raise LoadError(policy.message(exc)) from exc
    except Exception as exc:  # an httpx or loader surprise must not leak details past a strict policy
        if policy.detailed_errors:
            raise
        log.warning("fetch failed: %s: %s: %s", url, type(exc).__name__, exc)
        raise LoadError(GENERIC_REFUSAL) from exc


def raw_source(fetched: Fetched, policy: FetchPolicy) -> RawSource:
    """A fetched body as a source of the kind its content type says; FetchError if none (or over a cap)."""
    url, data, content_type = fetched.url, fetched.data, fetched.content_type
    name = fetched.final_url.path.rstrip("/").rsplit("/", 1)[-1] or url
    if kind := _document_kind(content_type, name):
        return RawSource(url, data, kind, name, fetched.charset)
    if content_type in PDF_CONTENT_TYPES or (
        content_type in ("", "application/octet-stream") and data[:1024].find(b"%PDF-") >= 0
    ):
        return RawSource(url, data, "pdf", name)
    if content_type in HTML_CONTENT_TYPES or not content_type:
        if len(data) > policy.max_html_bytes:
            raise FetchError(
                f"HTML page of {len(data):,} bytes, over the parser's limit of {policy.max_html_bytes:,} "
                "(DOCENT_FETCH_MAX_HTML_BYTES)",
                limit=True,
            )
        return RawSource(url, data, "html", url, fetched.charset)
    if content_type in TEXT_CONTENT_TYPES:
        return RawSource(url, data, "text", name, fetched.charset)
    raise FetchError(
        f"unsupported content type {content_type!r}: expected HTML, PDF, plain text, Markdown, CSV, .docx, "
        ".pptx or .xlsx"
    )


def _document_kind(content_type: str, name: str) -> str | None:
    """An Office, Markdown or CSV body by its content type, or by its URL's suffix when the server sent a
    generic type (raw file hosts serve .md and .csv as text/plain, many servers .docx as octet-stream)."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    generic = content_type in ("", "text/plain", "application/octet-stream")
    if content_type in LEGACY_CONTENT_TYPES or (generic and suffix in LEGACY_SUFFIXES):
        raise FetchError(legacy_refusal(LEGACY_CONTENT_TYPES.get(content_type, suffix)))
    if kind := CONTENT_TYPE_KINDS.get(content_type):
        return kind
    by_suffix = SUFFIX_KINDS.get(suffix)
    return by_suffix if generic and by_suffix in CONTENT_TYPE_KINDS.values() else None


def parse(raw: RawSource, options: ParseOptions | None = None) -> LoadedDocument:
    """Turn fetched or read bytes into a document."""
    return PARSERS[raw.kind](raw, options or ParseOptions())


def load_path(path: Path, options: ParseOptions | None = None) -> LoadedDocument:
    """Load a local file of a supported kind."""
    return parse(read_path(path), options)
