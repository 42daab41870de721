"""Metadata filters on a search: which chunks a query may find (by source, kind, title, section, page range
and time of ingest). Both indexes apply one inside their own query, Chroma as `where=` and the keyword index
as SQL conditions, before the rankings are fused: a filter never thins out a top k found without it.

Every chunk carries what the filters read, under the same names in Chroma's metadata and as columns of
`keyword_chunks`: `source`, `title`, `kind`, `page`, `section` (written at split), and `source_name`,
`source_stem` and `ingested_at` (written with each source version, `chunk_filter_metadata`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

MAX_VALUES = 50
"""Values one field of a filter may list."""
MAX_VALUE_CHARS = 2000
"""Characters of one value (a source URI is the longest)."""
MAX_PAGE = 1_000_000

LIST_KEYS = ("source", "kind", "title", "section")
"""Keys of the JSON form that take a string or a list of strings (a chunk matches any of them)."""
FILTER_KEYS = (*LIST_KEYS, "page_from", "page_to", "ingested_after", "ingested_before")
"""Every key of the JSON form (`config.configurable.filter`)."""
CLI_KEYS = (*FILTER_KEYS, "page")
"""Keys of the CLI form: the JSON keys, and `page` (`page=12` or `page=50-60`)."""

SOURCE_NAME = "source_name"
"""Chunk metadata: the file name of the chunk's source (`ADOBE_2022_10K.pdf`; a URL's last path segment)."""
SOURCE_STEM = "source_stem"
"""Chunk metadata: that name without its suffix (`ADOBE_2022_10K`)."""
INGESTED_AT = "ingested_at"
"""Chunk metadata: when its source version was ingested, in whole seconds since the Unix epoch (UTC)."""
FILTER_METADATA = ("title", "kind", "section", "page", SOURCE_NAME, SOURCE_STEM, INGESTED_AT)
"""What filters read of a chunk besides its `source`: Chroma metadata keys and `keyword_chunks` columns."""

_CLI_SPLIT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")
_PAGE_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
_FIELD_OF_KEY = {"source": "sources", "kind": "kinds", "title": "titles", "section": "sections"}


@dataclass(frozen=True)
class SearchFilter:
    """Which chunks a search may return. Values within a field are alternatives (any matches); fields
    combine (all must match). An empty filter restricts nothing. Matching is exact and case-sensitive; a
    chunk without the field (a web page has no page) matches no constraint on it."""

    sources: tuple[str, ...] = ()
    """The source by its stored URI or URL, the path answers show, its file name, or that name's stem."""
    kinds: tuple[str, ...] = ()
    """Document kind as ingest records it: pdf, html, docx, pptx, xlsx, markdown, text, …"""
    titles: tuple[str, ...] = ()
    """Exact document title."""
    sections: tuple[str, ...] = ()
    """Exact section heading (web pages and Markdown are split by heading)."""
    page_from: int | None = None
    """First page, inclusive, 1-based."""
    page_to: int | None = None
    """Last page, inclusive."""
    ingested_after: datetime | None = None
    """Only sources ingested strictly after this time (a naive time is UTC)."""
    ingested_before: datetime | None = None
    """Only sources ingested strictly before this time."""

    def __post_init__(self) -> None:
        for name in _FIELD_OF_KEY.values():
            object.__setattr__(self, name, _values(name, getattr(self, name)))
        for name in ("page_from", "page_to"):
            page = getattr(self, name)
            if page is not None and (
                isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE
            ):
                raise ValueError(f"{name} must be a whole number from 1 to {MAX_PAGE:,}, got {page!r}")
        if self.page_from is not None and self.page_to is not None and self.page_from > self.page_to:
            raise ValueError(f"page_from ({self.page_from}) is after page_to ({self.page_to})")
        for name in ("ingested_after", "ingested_before"):
            object.__setattr__(self, name, _utc(name, getattr(self, name)))
        after, before = self.ingested_after, self.ingested_before
        if after is not None and before is not None and after >= before:
            raise ValueError(
                f"ingested_after ({after.isoformat()}) must be earlier than ingested_before"
                f" ({before.isoformat()})"
            )

    def is_empty(self) -> bool:
        """True when the filter restricts nothing."""
        return self == SearchFilter()

    def to_mapping(self) -> dict[str, object]:
        """The JSON form (`filter_from_mapping` reads it back), without the fields left open."""
        out: dict[str, object] = {}
        for key, name in _FIELD_OF_KEY.items():
            if values := getattr(self, name):
                out[key] = list(values)
        for name in ("page_from", "page_to"):
            if (page := getattr(self, name)) is not None:
                out[name] = page
        for name in ("ingested_after", "ingested_before"):
            if (moment := getattr(self, name)) is not None:
                out[name] = moment.isoformat()
        return out

    def source_keys(self, bases: Iterable[Path] = ()) -> tuple[str, ...]:
        """The values a chunk's `source`, `source_name` or `source_stem` may equal to match `sources`: each
        value as given and, for a relative path, the absolute paths it names under `bases` (answers show a
        file inside the data dir or the working directory by its path there)."""
        keys = dict.fromkeys(self.sources)
        for value in self.sources:
            if "://" in value or Path(value).is_absolute() or not value.strip():
                continue
            for base in bases:
                keys.setdefault(str(base.resolve() / value))
        return tuple(keys)

    def ingested_after_epoch(self) -> int | None:
        """`ingested_after` as a bound on `ingested_at` (whole seconds): ingested_at > it."""
        return None if self.ingested_after is None else math.floor(self.ingested_after.timestamp())

    def ingested_before_epoch(self) -> int | None:
        """`ingested_before` as a bound on `ingested_at` (whole seconds): ingested_at < it."""
        return None if self.ingested_before is None else math.ceil(self.ingested_before.timestamp())


def filter_from_mapping(data: Mapping[str, object]) -> SearchFilter:
    """The JSON form, `{"source": "ADOBE_2022_10K.pdf", "kind": ["pdf"], "page_from": 50, "page_to": 60,
    "ingested_after": "2026-11-01"}`: source, kind, title and section take a string or a list of strings,
    pages whole numbers, times ISO 8601 dates or date-times. ValueError naming the key for anything else."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a filter is an object of {', '.join(FILTER_KEYS)}; got {type(data).__name__}")
    if unknown := sorted(str(key) for key in data if key not in FILTER_KEYS):
        raise ValueError(f"unknown filter key {', '.join(unknown)}: use {', '.join(FILTER_KEYS)}")
    values: dict[str, object] = {}
    for key, name in _FIELD_OF_KEY.items():
        if key in data and data[key] is not None:
            if not (found := _strings(key, data[key])):
                raise ValueError(f"{key}: give at least one value, or leave the key out")
            if len(found) > MAX_VALUES:
                raise ValueError(f"{key}: at most {MAX_VALUES} values, got {len(found)}")
            values[name] = found
    for name in ("page_from", "page_to"):
        if (page := data.get(name)) is not None:
            if isinstance(page, bool) or not isinstance(page, int):
                raise ValueError(f"{name} must be a whole number, got {page!r}")
            values[name] = page
    for name in ("ingested_after", "ingested_before"):
        if (moment := data.get(name)) is not None:
            values[name] = _moment(name, moment)
    return SearchFilter(**values)  # type: ignore[arg-type]


def parse_filter(text: str) -> SearchFilter:
    """The CLI form: `key=value` pairs separated by commas, e.g.
    `source=ADOBE_2022_10K.pdf,kind=pdf,page=50-60,ingested_after=2026-11-01`. A key may repeat to list
    alternatives (`source=a.pdf,source=b.pdf`); a comma not followed by `key=` belongs to the value
    (`title=Hot, cold and in between`). `page=12` is one page, `page=50-60` a range. ValueError, saying
    what to write, for anything else."""
    if not text.strip():
        raise ValueError("empty filter: write key=value pairs, e.g. source=report.pdf,page=3-5")
    lists: dict[str, list[str]] = {}
    single: dict[str, object] = {}
    for part in _CLI_SPLIT.split(text):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ValueError(f"filter part {part.strip()!r} is not key=value")
        if key not in CLI_KEYS:
            raise ValueError(f"unknown filter key {key!r}: use {', '.join(CLI_KEYS)}")
        value = value.strip()
        if key in LIST_KEYS:
            lists.setdefault(key, []).append(value)
            continue
        if key in single or (key == "page" and {"page_from", "page_to"} & single.keys()):
            raise ValueError(f"filter key {key!r} is given twice (or with page_from/page_to)")
        if key in ("page", "page_from", "page_to"):
            if not (found := _PAGE_RANGE.fullmatch(value)) or (key != "page" and found.group(2)):
                shape = "a page (12) or a range (50-60)" if key == "page" else "a page number"
                raise ValueError(f"{key} must be {shape}, got {value!r}")
            first, last = int(found.group(1)), int(found.group(2) or found.group(1))
            if key == "page":
                single["page_from"], single["page_to"] = first, last
                single["page"] = True
            else:
                single[key] = first
        else:
            single[key] = value
    single.pop("page", None)
    return filter_from_mapping({**lists, **single})


def chunk_filter_metadata(uri: str, ingested_at: datetime | str | None) -> dict[str, str | int]:
    """What a chunk of this source version carries for the filters besides its split metadata: the source's
    file name and stem, and its time of ingest (epoch seconds); a field with nothing to say is left out."""
    out: dict[str, str | int] = {}
    path = unquote(urlsplit(uri).path) if "://" in uri else uri.replace("\\", "/")
    name = PurePosixPath(path).name
    if name:
        out[SOURCE_NAME] = name
        out[SOURCE_STEM] = PurePosixPath(name).stem or name
    try:
        moment = datetime.fromisoformat(ingested_at) if isinstance(ingested_at, str) else ingested_at
    except ValueError:
        moment = None
    if moment is not None:
        out[INGESTED_AT] = math.floor(_as_utc(moment).timestamp())
    return out


def _strings(key: str, value: object) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a string or a list of strings")
        return tuple(value)
    raise ValueError(f"{key} must be a string or a list of strings, got {type(value).__name__}")


def _values(name: str, values: object) -> tuple[str, ...]:
    """A field's values, checked: non-blank strings of at most MAX_VALUE_CHARS, no NUL. (How many a request
    may list is bounded where requests are read, `filter_from_mapping`: the retriever adds paths.)"""
    key = next(k for k, n in _FIELD_OF_KEY.items() if n == name)
    found = _strings(key, values)
    for value in found:
        if not value.strip():
            raise ValueError(f"{key}: a value is empty")
        if len(value) > MAX_VALUE_CHARS or "\x00" in value:
            raise ValueError(f"{key}: a value is over {MAX_VALUE_CHARS} characters or holds a NUL")
    return tuple(dict.fromkeys(found))


def _moment(name: str, value: object) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it names no offset)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 date or date-time, got {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO 8601 date (2026-11-01) or date-time (2026-11-01T09:30:00Z), got {value!r}"
        ) from None


def _utc(name: str, value: object) -> datetime | None:
    """A time as UTC; an ISO 8601 string is read (the dataclass's JSON form, as Studio's form sends it)."""
    if value is None:
        return None
    value = _moment(name, value)
    try:
        return _as_utc(value)
    except OverflowError:
        raise ValueError(f"{name} is out of range: {value.isoformat()}") from None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def describe(where: SearchFilter | None) -> str:
    """A filter as the CLI writes it (for messages and reports); empty for none."""
    if where is None:
        return ""
    parts: list[str] = []
    for key, value in where.to_mapping().items():
        parts.extend(f"{key}={v}" for v in (value if isinstance(value, list) else [value]))
    return ",".join(parts)
