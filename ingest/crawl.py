"""Crawling a site from a root URL: its links and sitemaps, within a scope, politely and within bounds.

Every request (pages, robots.txt, sitemaps) goes through ingest/fetch.py under the run's policy, so the
address rules apply to each one and to each redirect. The scope is the root's host and, unless `same_host`,
the root's folder (`https://h/docs/x.html` covers `https://h/docs/...`); a link or redirect outside it is not
followed, nor one robots.txt disallows for the user agent's product token (RFC 9309: an unreadable robots.txt,
HTTP 5xx or no answer, disallows everything; a missing one, HTTP 4xx, allows everything). Crawl-delay is
honoured when it asks for more than the delay setting. Directory listings (Apache, nginx, python -m
http.server) are walked like folders, not ingested. Pages, depth, listings, bytes and time are bounded; a
crawl that stopped at a bound, or failed to fetch a page, is not `complete`, and only a complete crawl may
prune what it no longer reaches.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from ingest.document import RawSource, decode_text
from ingest.fetch import Fetched, FetchError, FetchPolicy, fetch
from ingest.load import raw_source
from ingest.urls import canonical_url

if TYPE_CHECKING:
    import httpx

    from core.settings import Settings

log = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: a crawler must read at least 500 KiB
SITEMAP_MAX_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own limit, uncompressed
MAX_SITEMAPS = 20
MAX_LINKS_PER_PAGE = 5000
MAX_QUEUED = 100_000
GONE_STATUSES = frozenset({404, 410})
# Links to these are never fetched: no parser reads them.
SKIPPED_SUFFIXES = frozenset(
    (
        *(".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".ico", ".bmp", ".tif", ".tiff", ".avif"),
        *(".css", ".js", ".mjs", ".json", ".map", ".woff", ".woff2", ".ttf", ".otf", ".eot"),
        *(".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".jar", ".whl", ".deb", ".rpm"),
        *(".mp3", ".mp4", ".m4a", ".ogg", ".wav", ".webm", ".avi", ".mov", ".mkv", ".flac"),
        *(".exe", ".dmg", ".iso", ".bin", ".apk", ".msi", ".img"),
    )
)
_LISTING_TITLE = re.compile(r"^\s*(?:index of|directory listing for)\s+/", re.IGNORECASE)
_LOC = re.compile(rb"<loc>\s*(.*?)\s*</loc>", re.IGNORECASE | re.DOTALL)
_COMPATIBLE = re.compile(r"compatible;\s*([A-Za-z0-9_.-]+)")
_PRODUCT = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class CrawlOptions:
    """How far and how fast one crawl may go (settings `crawl_*`; depth, pages and scope per run)."""

    depth: int = 3
    """Links followed from the root at most (0: the root only; sitemap entries count as depth 1)."""
    max_pages: int = 100
    """Pages yielded at most; as many directory listings may be walked besides."""
    same_host: bool = False
    """Anywhere on the root's host, not only under the root's folder."""
    delay_s: float = 1.0
    max_bytes: int = 500_000_000
    max_seconds: float = 1800.0
    user_agent: str = "DocentBot"

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        depth: int | None = None,
        max_pages: int | None = None,
        same_host: bool = False,
    ) -> CrawlOptions:
        """The settings' bounds, with a run's own depth, page limit and scope."""
        return cls(
            depth=settings.crawl_depth if depth is None else depth,
            max_pages=settings.crawl_max_pages if max_pages is None else max_pages,
            same_host=same_host,
            delay_s=settings.crawl_delay_s,
            max_bytes=settings.crawl_max_bytes,
            max_seconds=settings.crawl_max_seconds,
            user_agent=settings.user_agent,
        )


@dataclass(frozen=True)
class CrawlScope:
    """What a crawl covers: one origin (scheme, host, port) and a folder of it."""

    origin: str
    folder: str

    @classmethod
    def of(cls, url: str, same_host: bool) -> CrawlScope:
        """The scope of a root, from the URL it was finally served at (a redirect to https moves it)."""
        parts = urlsplit(canonical_url(url))
        origin = f"{parts.scheme}://{parts.netloc}"
        path = urlsplit(url).path  # as served: a trailing slash names a folder
        folder = urlsplit(canonical_url(origin + path[: path.rfind("/") + 1])).path.rstrip("/") + "/"
        return cls(origin, "/" if same_host else folder)

    def covers(self, url: str) -> bool:
        """True for a URL on the scope's origin, inside its folder (either spelling of the folder itself)."""
        parts = urlsplit(canonical_url(url))
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            return False
        return (parts.path.rstrip("/") + "/").startswith(self.folder)


@dataclass(frozen=True)
class CrawledPage:
    """A page the crawl fetched, to be ingested as its own source (its canonical URL)."""

    raw: RawSource
    depth: int


@dataclass(frozen=True)
class CrawlSkip:
    """A URL the crawl did not ingest: `failed` for a fetch error (its source keeps its record), else ignored
    (robots.txt, gone, unsupported, out of scope after a redirect)."""

    url: str
    reason: str
    failed: bool = False


CrawlEvent = CrawledPage | CrawlSkip


class _OutOfTime(Exception):
    """The crawl's time limit falls before the next request could be made."""


class Crawler:
    """One crawl from a root URL; iterate it for its pages and skips, then read `reached` and `complete`.

    Sequential by design: one request at a time, spaced by the politeness delay.
    """

    def __init__(
        self,
        root: str,
        client: httpx.Client,
        policy: FetchPolicy,
        options: CrawlOptions,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = urldefrag(root.strip()).url
        self.options = options
        self.scope: CrawlScope | None = None
        self.reached: set[str] = set()
        """Canonical URLs of the pages yielded: the sources this crawl keeps."""
        self.incomplete: list[str] = []
        """Why the crawl may have missed pages (a bound, a failed fetch); empty for a complete crawl."""
        self.fetched_bytes = 0
        self._client = client
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._deadline = 0.0
        self._stopped = False
        self._robots: dict[str, RobotFileParser] = {}
        self._unreadable: dict[str, str] = {}  # host -> why its robots.txt could not be read
        self._last_fetch: dict[str, float] = {}
        self._agent = robots_agent(options.user_agent)
        self._queue: deque[tuple[str, int]] = deque()
        self._queued: set[str] = set()
        self._listings: set[str] = set()

    @property
    def complete(self) -> bool:
        """Every page in reach was fetched: pruning what the crawl did not reach is safe."""
        return not self.incomplete

    def __iter__(self) -> Iterator[CrawlEvent]:
        self._deadline = self._clock() + self.options.max_seconds
        self._enqueue(self.root, 0)
        pages = 0
        while self._queue and not self._stopped:
            if pages >= self.options.max_pages:
                self._stop(f"stopped at the page limit of {self.options.max_pages} (--max-pages)")
            elif self.fetched_bytes >= self.options.max_bytes:
                self._stop(f"stopped at {self.options.max_bytes:,} bytes fetched (DOCENT_CRAWL_MAX_BYTES)")
            else:
                url, depth = self._queue.popleft()
                root = self.scope is None
                try:
                    for event in self._visit(url, depth):
                        if root and isinstance(event, CrawlSkip) and not event.failed:
                            event = self._root_failed(event)
                        pages += isinstance(event, CrawledPage)
                        yield event
                except _OutOfTime:
                    self._stop(f"stopped at the time limit of {self.options.max_seconds:g}s")

    def _visit(self, url: str, depth: int) -> Iterator[CrawlEvent]:
        """Fetch one URL, yield it as a page (unless it is a listing or says noindex), queue its links."""
        robots = self._robots_for(url)
        if (unreadable := self._unreadable.get(urlsplit(url).netloc.lower())) is not None:
            yield CrawlSkip(
                canonical_url(url), f"robots.txt could not be read ({unreadable}): not crawled", True
            )
            return
        if not robots.can_fetch(self._agent, url):
            yield CrawlSkip(canonical_url(url), f"disallowed by robots.txt for {self._agent}")
            return
        try:
            fetched = self._request(url, self._policy)
        except FetchError as exc:
            yield self._failure(url, exc)
            return
        final = str(fetched.final_url)
        if self.scope is None:  # the root: where it was finally served sets the scope
            self.scope = CrawlScope.of(final, self.options.same_host)
            if depth < self.options.depth:
                self._read_sitemaps(final)
        source = canonical_url(final)
        if not self.scope.covers(final):
            yield CrawlSkip(canonical_url(url), f"redirected out of the crawl's scope, to {source}")
            return
        if source in self.reached or source in self._listings:
            return  # a redirect to a page already read
        try:
            raw = raw_source(fetched, self._policy)
        except FetchError as exc:  # an unsupported type is ignored; a page over a cap is a failure
            if exc.limit:
                self.incomplete.append(f"{source} could not be read")
            yield CrawlSkip(source, self._policy.message(exc), failed=exc.limit)
            return
        raw = dataclasses.replace(raw, source=source, name=source if raw.kind == "html" else raw.name)
        if raw.kind != "html":
            self.reached.add(source)
            yield CrawledPage(raw, depth)
            return
        page = read_links(raw.data, final, raw.charset)
        if page.listing:
            self._walk_listing(source, page.links, depth)
            return
        if not page.noindex:
            self.reached.add(source)
            yield CrawledPage(raw, depth)
        if not page.nofollow and depth < self.options.depth:
            for link in page.links:
                self._enqueue(link, depth + 1)

    def _walk_listing(self, source: str, links: list[str], depth: int) -> None:
        """Queue a directory listing's entries (not its parent, not itself sorted another way) at its depth:
        a listing is a folder, not a page."""
        self._listings.add(source)
        if len(self._listings) > self.options.max_pages:
            self._stop(f"stopped at {self.options.max_pages} directory listings (--max-pages)")
            return
        folder = urlsplit(source).path.rstrip("/") + "/"
        for link in links:
            parts = urlsplit(link)
            if not parts.query and parts.path.startswith(folder) and parts.path != folder:
                self._enqueue(link, depth)

    def _root_failed(self, skip: CrawlSkip) -> CrawlSkip:
        """A root that cannot be crawled (gone, disallowed, not a document) fails the crawl."""
        self.incomplete.append(f"the root {skip.url} could not be crawled")
        return dataclasses.replace(skip, failed=True)

    def _failure(self, url: str, exc: FetchError) -> CrawlSkip:
        """A gone page (HTTP 404, 410) is skipped; any other error fails the page and leaves the crawl
        incomplete (the pages behind it were not seen)."""
        source = canonical_url(url)
        if exc.status in GONE_STATUSES:
            return CrawlSkip(source, f"gone ({self._policy.message(exc)})")
        self.incomplete.append(f"{source} could not be fetched")
        return CrawlSkip(source, self._policy.message(exc), failed=True)

    def _enqueue(self, url: str, depth: int) -> None:
        """Queue a URL once, if it is in scope (once the scope is known) and could be a document."""
        url = urldefrag(url).url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or len(self._queued) >= MAX_QUEUED:
            return
        if self.scope is not None and not self.scope.covers(url):
            return
        if "." + parts.path.rsplit(".", 1)[-1].lower() in SKIPPED_SUFFIXES:
            return
        key = canonical_url(url)
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append((url, depth))

    def _request(self, url: str, policy: FetchPolicy) -> Fetched:
        """One GET after the host's politeness delay, within the crawl's time and bytes (FetchError)."""
        host = urlsplit(url).netloc.lower()
        wait = max(0.0, self._delay(host) - (self._clock() - self._last_fetch.get(host, -1e18)))
        if self._clock() + wait >= self._deadline:
            raise _OutOfTime
        if wait:
            self._sleep(wait)
        bounded = dataclasses.replace(
            policy, deadline_s=max(0.001, min(policy.deadline_s, self._deadline - self._clock()))
        )
        try:
            fetched = fetch(url, self._client, bounded)
        except FetchError as exc:
            log.info("crawl: %s: %s", url, exc.reason)
            raise
        finally:
            self._last_fetch[host] = self._clock()
        self.fetched_bytes += len(fetched.data)
        return fetched

    def _delay(self, host: str) -> float:
        """The delay setting, or robots.txt's Crawl-delay when it asks for more."""
        robots = self._robots.get(host)
        asked = robots.crawl_delay(self._agent) if robots is not None else None
        return max(self.options.delay_s, float(asked or 0))

    def _robots_for(self, url: str) -> RobotFileParser:
        """The host's robots.txt rules, read once (RFC 9309: HTTP 4xx, no rules; any other failure, all
        disallowed, and the crawl incomplete)."""
        parts = urlsplit(url)
        host = parts.netloc.lower()
        if (known := self._robots.get(host)) is not None:
            return known
        robots = RobotFileParser()
        self._robots[host] = robots
        small = dataclasses.replace(self._policy, max_bytes=ROBOTS_MAX_BYTES, max_wire_bytes=ROBOTS_MAX_BYTES)
        try:
            fetched = self._request(f"{parts.scheme}://{parts.netloc}/robots.txt", small)
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                robots.parse([])  # no rules
            else:
                robots.parse(["User-agent: *", "Disallow: /"])
                self._unreadable[host] = self._policy.message(exc)
                self.incomplete.append(f"robots.txt of {host} could not be read")
            return robots
        robots.parse(decode_text(fetched.data, fetched.charset).splitlines())
        return robots

    def _read_sitemaps(self, root: str) -> None:
        """Queue the in-scope pages of the root host's sitemaps (robots.txt's `Sitemap:` lines, else
        /sitemap.xml; sitemap indexes followed) at depth 1. A missing or broken sitemap is no failure."""
        parts = urlsplit(root)
        robots = self._robots.get(parts.netloc.lower())
        listed = (
            [u for u in (robots.site_maps() or []) if urlsplit(u).netloc == parts.netloc] if robots else []
        )
        pending = deque(listed or [f"{parts.scheme}://{parts.netloc}/sitemap.xml"])
        policy = dataclasses.replace(self._policy, max_bytes=min(self._policy.max_bytes, SITEMAP_MAX_BYTES))
        for _ in range(MAX_SITEMAPS):
            if not pending:
                return
            url = pending.popleft()
            if not self._robots_for(url).can_fetch(self._agent, url):
                continue
            try:
                fetched = self._request(url, policy)
            except FetchError:
                continue
            is_index, locations = sitemap_locations(fetched.data)
            for location in locations:
                if not is_index:
                    self._enqueue(location, 1)
                elif urlsplit(location).netloc == parts.netloc:
                    pending.append(location)

    def _stop(self, why: str) -> None:
        self.incomplete.append(why)
        self._stopped = True


def robots_agent(user_agent: str) -> str:
    """The product token robots.txt groups name: `DocentBot` in "Mozilla/5.0 (compatible; DocentBot/0.1)"."""
    if match := _COMPATIBLE.search(user_agent):
        return match.group(1)
    match = _PRODUCT.match(user_agent.strip())
    return match.group(0) if match else "*"


def sitemap_locations(data: bytes) -> tuple[bool, list[str]]:
    """Whether a sitemap is an index (of sitemaps), and the URLs it lists; gzip is inflated, bounded."""
    if data[:2] == b"\x1f\x8b":
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflate.decompress(data, SITEMAP_MAX_BYTES)
        except zlib.error:
            return False, []
    is_index = b"<sitemapindex" in data[:4096].lower()
    locations = [html.unescape(m.decode("utf-8", "replace")).strip() for m in _LOC.findall(data)]
    return is_index, locations[:50_000]


@dataclass
class PageLinks:
    """What the crawl needs from a page: its links (absolute) and whether it is a listing or says noindex
    or nofollow (`<meta name="robots">`)."""

    links: list[str]
    listing: bool = False
    noindex: bool = False
    nofollow: bool = False


def read_links(data: bytes, url: str, charset: str | None = None) -> PageLinks:
    """The links of an HTML page, resolved against its <base> or its URL; rel=nofollow links left out."""
    reader = _LinkReader()
    try:
        reader.feed(decode_text(data, charset))
        reader.close()
    except AssertionError:  # html.parser's give-up on some malformed markup: keep what was read
        pass
    base = urljoin(url, reader.base) if reader.base else url
    links = [urljoin(base, href) for href in reader.hrefs[:MAX_LINKS_PER_PAGE]]
    listing = bool(_LISTING_TITLE.match(reader.title) or _LISTING_TITLE.match(reader.heading))
    return PageLinks(links, listing, reader.noindex, reader.nofollow)


class _LinkReader(HTMLParser):
    """Collects a/area hrefs, <base>, robots meta, the title and the first h1, in one pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base = ""
        self.title = ""
        self.heading = ""
        self.noindex = False
        self.nofollow = False
        self._capturing: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in ("a", "area") and (href := values.get("href", "").strip()):
            if (
                "nofollow" not in values.get("rel", "").lower().split()
                and len(self.hrefs) < MAX_LINKS_PER_PAGE
            ):
                self.hrefs.append(href)
        elif tag == "base" and not self.base:
            self.base = values.get("href", "").strip()
        elif tag == "meta" and values.get("name", "").lower() in ("robots", "docentbot"):
            directives = {d.strip() for d in values.get("content", "").lower().split(",")}
            self.noindex = self.noindex or bool(directives & {"noindex", "none"})
            self.nofollow = self.nofollow or bool(directives & {"nofollow", "none"})
        elif (tag == "title" and not self.title) or (tag == "h1" and not self.heading):
            self._capturing = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capturing:
            self._capturing = None

    def handle_data(self, data: str) -> None:
        if self._capturing == "title" and len(self.title) < 500:
            self.title += data
        elif self._capturing == "h1" and len(self.heading) < 500:
            self.heading += data
