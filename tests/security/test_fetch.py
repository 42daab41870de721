"""Safe fetching (ingest/fetch.py through ingest/load.py's fetch_url), against real servers on loopback.

Every loopback address is private, so "public" is simulated by putting a server in the allow-list and leaving
the target of the attack out of it.
"""

from __future__ import annotations

import gc
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingest.document import LoadError
from ingest.fetch import GENERIC_REFUSAL, AllowRule, FetchPolicy
from ingest.load import fetch_url
from tests.helpers import free_port
from tests.security.fetch_servers import (
    SECRET,
    MiB,
    RssPeak,
    body,
    drip,
    gzip_bomb,
    pieces,
    redirect,
    rss_bytes,
    serving,
    stream,
    zeros,
)


def strict(*allow: str, **caps: Any) -> FetchPolicy:
    """The policy POST /ingest runs under, with these allow-list entries and caps."""
    return FetchPolicy(
        allow_private=False, allow=tuple(AllowRule.parse(a) for a in allow), detailed_errors=False, **caps
    )


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A client made as the pipeline makes it: no redirects of its own, no proxy variables."""
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=20) as made:
        yield made


def refusal(url: str, client: httpx.Client, policy: FetchPolicy) -> str:
    with pytest.raises(LoadError) as caught:
        fetch_url(url, client, policy)
    return str(caught.value)


def test_internal_service_on_loopback_is_refused_and_never_contacted(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with serving({"/secret": body(SECRET, "text/plain")}) as internal:
        with caplog.at_level(logging.WARNING, logger="ingest.load"):
            reason = refusal(internal.url("/secret"), client, strict())
        assert internal.hits() == 0
    assert reason == GENERIC_REFUSAL
    assert "loopback" in caplog.text  # the specific reason is in the server's log only


def test_refused_address_closed_port_and_json_get_the_same_text(client: httpx.Client) -> None:
    closed = free_port()
    with serving({"/secret": body(SECRET, "text/plain"), "/api": body(b'{"a": 1}', "application/json")}) as s:
        policy = strict(f"127.0.0.1:{closed}", f"127.0.0.1:{s.port}")
        json_reason = refusal(s.url("/api"), client, policy)
        closed_reason = refusal(f"http://127.0.0.1:{closed}/", client, policy)
        refused_reason = refusal(f"http://localhost:{s.port}/secret", client, strict(f"127.0.0.1:{closed}"))
        assert s.hits("/api") == 1 and s.hits("/secret") == 0
    assert json_reason == closed_reason == refused_reason == GENERIC_REFUSAL


def test_redirect_from_an_allowed_server_to_loopback_is_refused_at_the_hop(client: httpx.Client) -> None:
    with serving({"/secret": body(SECRET, "text/plain")}) as internal:
        with serving({"/moved": redirect(internal.url("/secret"))}) as public:
            reason = refusal(public.url("/moved"), client, strict(f"127.0.0.1:{public.port}"))
            detailed = FetchPolicy(allow_private=False, allow=(AllowRule.parse(f"127.0.0.1:{public.port}"),))
            with pytest.raises(LoadError, match=r"127\.0\.0\.1, a loopback address"):
                fetch_url(public.url("/moved"), client, detailed)
            assert public.hits("/moved") == 2
        assert internal.hits() == 0
    assert reason == GENERIC_REFUSAL


def test_redirects_within_allowed_servers_are_followed(client: httpx.Client) -> None:
    page = b"<html><title>Moved</title><p>Lay 270 mm of mineral wool.</p></html>"
    with serving({"/old": redirect("/new"), "/new": body(page)}) as public:
        raw = fetch_url(public.url("/old"), client, strict(f"127.0.0.1:{public.port}"))
    assert (raw.source, raw.kind, raw.data) == (public.url("/old"), "html", page)


def _same_port_on_two_loopback_addresses() -> int:
    for _ in range(20):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.2", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def test_dns_rebinding_connects_to_the_checked_address_and_resolves_once(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers first with an allowed address, then with the internal one: only the first is used."""
    port = _same_port_on_two_loopback_addresses()
    answers = ["127.0.0.2", "127.0.0.1", "127.0.0.1"]
    asked: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "docs.rebind.test":
            return real(host, *args, **kwargs)
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)  # the fetcher's and httpx's resolver alike
    page = b"<html><title>Public</title><p>Public page.</p></html>"
    with (
        serving({"/page": body(page)}, host="127.0.0.2", port=port) as allowed,
        serving({"/page": body(SECRET, "text/plain")}, port=port) as internal,
    ):
        raw = fetch_url(f"http://docs.rebind.test:{port}/page", client, strict("127.0.0.2/32"))
        assert internal.hits() == 0
    assert raw.data == page
    assert allowed.requests == [("/page", f"docs.rebind.test:{port}")]  # the IP, with the real Host header
    assert asked == ["docs.rebind.test"]


def test_https_hop_asks_tls_for_the_real_name(client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection goes to the checked IP, and the TLS server name (SNI and certificate check) is the
    URL's host, not the IP."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("stop here", request=request)

    monkeypatch.setattr(client, "send", record)
    policy = FetchPolicy(allow_private=False, allow=(AllowRule.parse("10.9.8.7/32"),))
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", 443))],
    )
    with pytest.raises(LoadError):
        fetch_url("https://wiki.corp.test/page", client, policy)
    (request,) = sent
    assert str(request.url) == "https://10.9.8.7/page"
    assert request.headers["host"] == "wiki.corp.test"
    assert request.extensions["sni_hostname"] == "wiki.corp.test"


@pytest.mark.parametrize("route", ["drip", "stall"])
def test_slow_server_is_cut_at_the_total_deadline(client: httpx.Client, route: str) -> None:
    """One byte a second keeps every read under the read timeout; the deadline still ends the fetch."""
    routes = {"/drip": drip(every_s=1.0), "/stall": drip(every_s=60.0, length=10)}
    with serving(routes) as slow:
        started = time.monotonic()
        reason = refusal(slow.url(f"/{route}"), client, strict(f"127.0.0.1:{slow.port}", deadline_s=2.5))
        took = time.monotonic() - started
    assert reason.startswith("stopped at the deadline of 2.5s")
    assert 2.4 <= took < 4.0


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = gzip_bomb()
    assert len(data) < 2 * MiB
    return data


def _refused_within_memory(url: str, client: httpx.Client, policy: FetchPolicy) -> tuple[str, int, int, int]:
    fetch_url(url.rsplit("/", 1)[0] + "/warm", client, policy)  # imports and pools warmed first
    gc.collect()
    before = rss_bytes()
    with RssPeak() as peak:
        reason = refusal(url, client, policy)
    gc.collect()
    after = rss_bytes()
    return reason, before, peak.peak, after


def test_gzip_bomb_is_refused_once_decompressed_and_memory_returns(bomb: bytes, client: httpx.Client) -> None:
    routes = {
        "/bomb": stream(pieces(bomb), {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        "/warm": body(b"<p>warm</p>"),
    }
    with serving(routes) as attacker:
        reason, before, peak, after = _refused_within_memory(
            attacker.url("/bomb"), client, strict(f"127.0.0.1:{attacker.port}")
        )
    assert "once decompressed" in reason and "DOCENT_FETCH_MAX_BYTES" in reason
    assert after - before < 50 * MiB, (before, peak, after)
    assert peak - before < 200 * MiB, (before, peak, after)


def test_300_mb_body_is_refused_on_the_wire_and_memory_returns(client: httpx.Client) -> None:
    routes = {
        "/huge": stream(zeros(300 * MiB), {"Content-Type": "text/plain"}),
        "/warm": body(b"<p>warm</p>"),
    }
    with serving(routes) as attacker:
        reason, before, peak, after = _refused_within_memory(
            attacker.url("/huge"), client, strict(f"127.0.0.1:{attacker.port}")
        )
    assert "on the wire" in reason and "DOCENT_FETCH_MAX_WIRE_BYTES" in reason
    assert after - before < 50 * MiB, (before, peak, after)


def test_declared_oversize_body_is_refused_before_reading(client: httpx.Client) -> None:
    with serving({"/big": body(bytes(2 * MiB), "text/plain")}) as attacker:
        reason = refusal(
            attacker.url("/big"), client, strict(f"127.0.0.1:{attacker.port}", max_wire_bytes=MiB)
        )
    assert "on the wire" in reason


def test_html_over_the_parser_cap_is_refused(client: httpx.Client) -> None:
    with serving({"/page": body(b"<p>" + b"a" * 5000 + b"</p>")}) as site:
        reason = refusal(site.url("/page"), client, strict(f"127.0.0.1:{site.port}", max_html_bytes=4096))
    assert "DOCENT_FETCH_MAX_HTML_BYTES" in reason


@pytest.mark.parametrize(
    ("entry", "host", "port", "allowed"),
    [
        ("wiki.corp", "wiki.corp", 443, True),
        ("wiki.corp:8080", "wiki.corp", 8080, True),
        ("wiki.corp:8080", "wiki.corp", 443, False),
        ("[fd00::1]:8080", "fd00::1", 8080, True),
        ("other.corp", "wiki.corp", 443, False),
    ],
)
def test_allow_list_host_entries_match_host_and_port(entry: str, host: str, port: int, allowed: bool) -> None:
    assert AllowRule.parse(entry).allows_host(host, port) is allowed


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "169.254.169.254", "224.0.0.1", "0.0.0.0", "240.0.0.1", "::1", "fe80::1",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fd00::1", "100.64.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(client: httpx.Client, address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert refusal(f"http://{host}:9/", client, strict()) == GENERIC_REFUSAL
