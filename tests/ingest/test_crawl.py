"""Crawling sites served on 127.0.0.1: links, sitemaps, robots.txt, listings, re-crawls, bounds, URL forms."""

from __future__ import annotations

import functools
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from ingest.crawl import (
    CrawledPage,
    Crawler,
    CrawlOptions,
    CrawlScope,
    CrawlSkip,
    read_links,
    robots_agent,
    sitemap_locations,
)
from ingest.fetch import GENERIC_REFUSAL, FetchPolicy
from ingest.pipeline import Ingestor, IngestSummary
from ingest.urls import canonical_url
from tests.fixtures_http import Reply, Site, redirect, serving
from tests.helpers import docent_env, run_docent

TEXT = "text/plain; charset=utf-8"


def page(title: str, body: str, *links: str, head: str = "") -> Reply:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    html = f"<html><head><title>{title}</title>{head}</head><body><h1>{title}</h1><p>{body}</p>"
    return Reply(f"{html}<ul>{anchors}</ul></body></html>".encode())


def docs_site() -> dict[str, Reply]:
    """A small site under /docs/: an index with links, one page only its sitemap names, one robots.txt
    forbids, a link to another host and one out of the folder, a fragment and a tracking-tagged link."""
    return {
        "/robots.txt": Reply(b"User-agent: *\nDisallow: /docs/private.html\n", content_type=TEXT),
        "/sitemap.xml": Reply(b"", content_type="application/xml"),  # filled in by `site_with_sitemap`
        "/docs/": page(
            "Home insulation guide",
            "Start here to learn how to keep a house warm in winter.",
            "loft.html",
            "walls.html#cavity",
            "walls.html?utm_source=newsletter",
            "private.html",
            "/about.html",
            "http://localhost:{port}/docs/elsewhere.html",
            "logo.png",
        ),
        "/docs/loft.html": page("Lofts", "Lay 270 mm of mineral wool between and over the joists.", "./"),
        "/docs/walls.html": page("Walls", "Cavity walls can be filled with blown beads through small holes."),
        "/docs/private.html": page("Private", "Staff notes that robots.txt keeps out of the crawl."),
        "/docs/floors.html": page(
            "Floors", "Suspended timber floors lose heat through the gaps in the boards."
        ),
        "/about.html": page("About", "This page lies outside the crawl's folder."),
    }


def with_sitemap(site: Site, *paths: str) -> None:
    locs = "".join(f"<url><loc>{site.url(path)}</loc></url>" for path in paths)
    xml = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'
    site.routes["/sitemap.xml"] = Reply(xml.encode(), content_type="application/xml")


@contextmanager
def served_docs() -> Iterator[Site]:
    with serving(docs_site()) as site:
        port = site.base.rsplit(":", 1)[-1]
        index = site.routes["/docs/"]
        site.routes["/docs/"] = Reply(index.body.replace(b"{port}", port.encode()))
        with_sitemap(site, "/docs/floors.html")
        yield site


@pytest.fixture
def crawl_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", crawl_delay_s=0.0)


@pytest.fixture
def ingestor(crawl_settings: Settings, embedder: OnnxMiniLMEmbedder) -> Iterator[Ingestor]:
    services = Services(crawl_settings, embedder=embedder)
    yield Ingestor(crawl_settings, embedder, services.store)
    services.close()


def crawl(ingestor: Ingestor, root: str, *, prune: bool = False, **options: Any) -> IngestSummary:
    return ingestor.run(
        [root],
        prune=prune,
        crawl=CrawlOptions.from_settings(ingestor.settings, **options),
    )


def statuses(summary: IngestSummary, site: Site) -> dict[str, str]:
    return {r.source.removeprefix(site.base): r.status for r in summary.results}


def test_a_crawl_follows_links_and_the_sitemap_within_its_folder_and_honours_robots_txt(
    ingestor: Ingestor,
) -> None:
    with served_docs() as site:
        summary = crawl(ingestor, site.url("/docs/"))
    assert statuses(summary, site) == {
        "/docs": "added",
        "/docs/floors.html": "added",  # named by the sitemap only
        "/docs/loft.html": "added",
        "/docs/walls.html": "added",  # one source for its fragment and its tracking-tagged link
    }
    assert site.hits("/docs/private.html") == 0
    assert site.hits("/about.html") == 0  # outside the root's folder
    assert site.hits("/docs/elsewhere.html") == 0  # on another host (localhost, not 127.0.0.1)
    assert site.hits("/docs/logo.png") == 0
    assert site.hits("/docs/walls.html") == 1
    assert ("disallowed by robots.txt for DocentBot") in {p.reason for p in summary.ignored}
    assert not summary.failures


def test_same_host_widens_the_scope_to_the_whole_host_but_never_to_another(ingestor: Ingestor) -> None:
    with served_docs() as site:
        summary = crawl(ingestor, site.url("/docs/"), same_host=True)
    assert "/about.html" in statuses(summary, site)
    assert site.hits("/docs/elsewhere.html") == 0


def test_recrawl_updates_a_changed_page_and_prunes_one_that_disappeared(ingestor: Ingestor) -> None:
    with served_docs() as site:
        crawl(ingestor, site.url("/docs/"), prune=True)
        site.routes["/docs/loft.html"] = page("Lofts", "Lay 300 mm of mineral wool now, say the new rules.")
        del site.routes["/docs/walls.html"]  # gone: the index still links to it, the server says 404
        second = crawl(ingestor, site.url("/docs/"), prune=True)
        sources = {r.uri for r in ingestor._store.sources.list(ingestor.settings.collection)}
    assert statuses(second, site) == {
        "/docs": "unchanged",
        "/docs/floors.html": "unchanged",
        "/docs/loft.html": "updated",
        "/docs/walls.html": "removed",
    }
    assert sources == {site.url(p) for p in ("/docs", "/docs/floors.html", "/docs/loft.html")}
    assert any(p.reason.startswith("gone (HTTP 404") for p in second.ignored)


def test_a_page_that_fails_to_fetch_is_kept_and_the_crawl_prunes_nothing(ingestor: Ingestor) -> None:
    with served_docs() as site:
        crawl(ingestor, site.url("/docs/"), prune=True)
        site.routes["/docs/walls.html"] = Reply(b"busy", status=503, content_type=TEXT)
        with_sitemap(site)  # floors.html is no longer reachable, but the crawl is incomplete
        second = crawl(ingestor, site.url("/docs/"), prune=True)
    assert statuses(second, site)["/docs/walls.html"] == "failed"
    assert "removed" not in statuses(second, site).values()
    assert any("crawl incomplete, nothing pruned" in w.reason for w in second.warnings)


def test_without_prune_a_recrawl_removes_nothing(ingestor: Ingestor) -> None:
    with served_docs() as site:
        crawl(ingestor, site.url("/docs/"))
        del site.routes["/docs/walls.html"]
        second = crawl(ingestor, site.url("/docs/"))
    assert second.sources_removed == 0


def test_the_page_limit_stops_the_crawl_with_a_warning_and_blocks_pruning(ingestor: Ingestor) -> None:
    with served_docs() as site:
        crawl(ingestor, site.url("/docs/"), prune=True)
        second = crawl(ingestor, site.url("/docs/"), prune=True, max_pages=2)
    assert len(second.results) == 2
    assert "crawl stopped at the page limit of 2 (--max-pages)" in {w.reason for w in second.warnings}
    assert second.sources_removed == 0


def test_depth_bounds_how_far_links_are_followed(ingestor: Ingestor) -> None:
    with served_docs() as site:
        root_only = crawl(ingestor, site.url("/docs/"), depth=0)
        assert site.hits("/sitemap.xml") == 0  # sitemap entries are depth 1
    assert statuses(root_only, site) == {"/docs": "added"}


@contextmanager
def serving_folder(folder: Path) -> Iterator[str]:
    """Python's own http.server over a folder: real directory listings."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_directory_listing_is_walked_like_a_folder_not_ingested(ingestor: Ingestor, tmp_path: Path) -> None:
    served = tmp_path / "served"
    (served / "reports" / "2023").mkdir(parents=True)
    (served / "reports" / "summary.html").write_text("<h1>Summary</h1><p>Heating costs fell by a tenth.</p>")
    (served / "reports" / "2023" / "notes.txt").write_text("Boiler serviced in March; radiators bled.")
    (served / "reports" / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (served / "outside.txt").write_text("Not under the crawled folder.")
    with serving_folder(served) as base:
        summary = crawl(ingestor, f"{base}/reports/")
    assert {r.source.removeprefix(base): r.status for r in summary.results} == {
        "/reports/summary.html": "added",
        "/reports/2023/notes.txt": "added",
    }
    assert not summary.failures


def test_listings_of_apache_nginx_and_python_are_recognised_and_only_their_entries_followed() -> None:
    apache = (
        b"<html><head><title>Index of /files</title></head><body><h1>Index of /files</h1><table>"
        b'<tr><th><a href="?C=N;O=D">Name</a></th></tr><tr><td><a href="/">Parent Directory</a></td></tr>'
        b'<tr><td><a href="a.pdf">a.pdf</a></td></tr><tr><td><a href="sub/">sub/</a></td></tr></table>'
    )
    nginx = (
        b"<html><head><title>Index of /files/</title></head><body><h1>Index of /files/</h1><hr><pre>"
        b'<a href="../">../</a>\n<a href="a.pdf">a.pdf</a></pre></body></html>'
    )
    python = b"<title>Directory listing for /files/</title><h1>Directory listing for /files/</h1>"
    article = b"<title>Index of European rivers</title><h1>Index of European rivers</h1>"
    for listing in (apache, nginx, python):
        assert read_links(listing, "http://h/files/").listing
    assert not read_links(article, "http://h/rivers").listing
    assert read_links(apache, "http://h/files/").links == [
        "http://h/files/?C=N;O=D",
        "http://h/",
        "http://h/files/a.pdf",
        "http://h/files/sub/",
    ]


def test_robots_txt_groups_are_matched_by_the_user_agents_product_token(ingestor: Ingestor) -> None:
    assert robots_agent("Mozilla/5.0 (compatible; DocentBot/0.1; +https://pypi.org/project/docent-rag/)") == (
        "DocentBot"
    )
    with served_docs() as site:
        site.routes["/robots.txt"] = Reply(
            b"User-agent: DocentBot\nDisallow: /docs/loft.html\n\nUser-agent: *\nDisallow: /\n",
            content_type=TEXT,
        )
        summary = crawl(ingestor, site.url("/docs/"))
    assert site.hits("/docs/loft.html") == 0
    assert "/docs/walls.html" in statuses(summary, site)


def test_a_root_that_is_gone_or_disallowed_fails_the_crawl(ingestor: Ingestor) -> None:
    with served_docs() as site:
        gone = crawl(ingestor, site.url("/docs/nothing-here/"))
        disallowed = crawl(ingestor, site.url("/docs/private.html"))
    assert [p.reason for p in gone.failures] == ["gone (HTTP 404 Not Found)"]
    assert [p.reason for p in disallowed.failures] == ["disallowed by robots.txt for DocentBot"]


def test_an_unreadable_robots_txt_means_nothing_is_crawled(ingestor: Ingestor) -> None:
    with served_docs() as site:
        site.routes["/robots.txt"] = Reply(b"down", status=500, content_type=TEXT)
        summary = crawl(ingestor, site.url("/docs/"))
    assert site.hits("/docs/") == 0
    assert summary.sources == 0
    assert [p.reason for p in summary.failures] == [
        "robots.txt could not be read (HTTP 500 Internal Server Error): not crawled"
    ]


def test_noindex_and_nofollow_are_honoured(ingestor: Ingestor) -> None:
    with served_docs() as site:
        meta = '<meta name="robots" content="noindex, nofollow">'
        site.routes["/docs/loft.html"] = page("Lofts", "Secret loft plans.", "hidden.html", head=meta)
        site.routes["/docs/hidden.html"] = page("Hidden", "Only loft.html links here.")
        summary = crawl(ingestor, site.url("/docs/"))
    assert "/docs/loft.html" not in statuses(summary, site)
    assert site.hits("/docs/hidden.html") == 0


class FakeTime:
    """A clock that only moves when the crawler sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds

    def clock(self) -> float:
        return self.now


def crawl_events(site: Site, options: CrawlOptions, fake: FakeTime) -> list[CrawledPage | CrawlSkip]:
    with httpx.Client() as client:
        crawler = Crawler(
            site.url("/docs/"),
            client,
            FetchPolicy(allow_private=True),
            options,
            sleep=fake.sleep,
            clock=fake.clock,
        )
        return list(crawler)


def test_requests_to_a_host_are_spaced_by_the_delay_or_robots_crawl_delay() -> None:
    with served_docs() as site:
        fake = FakeTime()
        crawl_events(site, CrawlOptions(delay_s=0.5, depth=0), fake)
        assert fake.slept == [0.5]  # robots.txt, then the root (depth 0: no sitemap)
        site.routes["/robots.txt"] = Reply(b"User-agent: *\nCrawl-delay: 3\n", content_type=TEXT)
        fake = FakeTime()
        crawl_events(site, CrawlOptions(delay_s=0.5, depth=0), fake)
        assert fake.slept == [3.0]


def test_the_time_limit_stops_a_crawl_before_the_next_request() -> None:
    with served_docs() as site:
        site.routes["/robots.txt"] = Reply(b"User-agent: *\nCrawl-delay: 100000\n", content_type=TEXT)
        fake = FakeTime()
        events = crawl_events(site, CrawlOptions(delay_s=0.0, max_seconds=60), fake)
    assert events == [] and fake.slept == []


def test_a_strict_policy_refuses_every_page_of_a_private_site(crawl_settings: Settings) -> None:
    with served_docs() as site, httpx.Client() as client:
        crawler = Crawler(site.url("/docs/"), client, FetchPolicy.strict(crawl_settings), CrawlOptions())
        events = list(crawler)
    reason = f"robots.txt could not be read ({GENERIC_REFUSAL}): not crawled"
    assert events == [CrawlSkip(canonical_url(site.url("/docs/")), reason, failed=True)]
    assert site.requests == []
    assert not crawler.complete


def test_a_redirect_out_of_the_crawls_scope_is_not_followed(ingestor: Ingestor) -> None:
    with served_docs() as site:
        port = site.base.rsplit(":", 1)[-1]
        site.routes["/docs/loft.html"] = redirect(f"http://localhost:{port}/docs/walls.html")
        summary = crawl(ingestor, site.url("/docs/"))
    assert "/docs/loft.html" not in statuses(summary, site)
    assert any(p.reason.startswith("redirected out of the crawl's scope") for p in summary.ignored)


def test_sitemaps_may_be_gzipped_indexes_of_sitemaps() -> None:
    index = b"<sitemapindex><sitemap><loc>http://h/a.xml.gz</loc></sitemap></sitemapindex>"
    assert sitemap_locations(index) == (True, ["http://h/a.xml.gz"])
    pages = gzip.compress(b"<urlset><url><loc> http://h/x?a=1&amp;b=2 </loc></url></urlset>")
    assert sitemap_locations(pages) == (False, ["http://h/x?a=1&b=2"])


def test_scope_is_the_roots_folder_on_its_host() -> None:
    scope = CrawlScope.of("https://Docs.Example.com:443/guide/index.html", same_host=False)
    assert scope == CrawlScope("https://docs.example.com", "/guide/")
    assert scope.covers("https://docs.example.com/guide") and scope.covers(
        "https://docs.example.com/guide/a/b"
    )
    assert not scope.covers("https://docs.example.com/guides/x")
    assert not scope.covers("http://docs.example.com/guide/x")  # another scheme is another origin


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://Example.COM:443/a/b/#top", "https://example.com/a/b"),
        ("http://example.com:8080", "http://example.com:8080/"),
        ("http://example.com/a/./b/../c/", "http://example.com/a/c"),
        (
            "http://example.com/p?utm_source=x&b=2&a=1&fbclid=y&gclid=z&a=0",
            "http://example.com/p?a=1&a=0&b=2",
        ),
        ("http://example.com/p?UTM_Medium=mail", "http://example.com/p"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("http://user@Example.com./x", "http://user@example.com/x"),
        ("ftp://example.com/x", "ftp://example.com/x"),
        ("http://[::1", "http://[::1"),  # not a URL: left for the fetch to refuse
    ],
)
def test_urls_are_canonical(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_the_same_page_by_two_spellings_is_one_source(ingestor: Ingestor) -> None:
    with serving({"/tips": page("Tips", "Close the curtains at dusk to keep the heat in.")}) as site:
        summary = ingestor.run([site.url("/tips/?utm_campaign=winter#intro"), site.url("/tips")])
    assert [(r.source, r.status) for r in summary.results] == [(site.url("/tips"), "added")]


def test_docent_ingest_crawl_from_the_command_line(tmp_path: Path) -> None:
    with served_docs() as site:
        args = ["ingest", site.url("/docs/"), "--crawl", "--max-pages", "3", "--allow-private", "--json"]
        done = run_docent(args, docent_env(tmp_path / "data", DOCENT_CRAWL_DELAY_S="0"), timeout=180)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [r["status"] for r in summary["results"]] == ["added"] * 3
    assert "crawl stopped at the page limit of 3 (--max-pages)" in {w["reason"] for w in summary["warnings"]}


def test_crawl_options_need_crawl(tmp_path: Path) -> None:
    done = run_docent(["ingest", "http://127.0.0.1:9/", "--depth", "2"], docent_env(tmp_path / "data"))
    assert done.returncode == 2
    assert "--depth, --max-pages and --same-host need --crawl" in done.stderr
