"""Safe fetching of URLs someone else chose: the address check, redirects hop by hop, caps and a deadline.

httpx does the HTTP. What it lacks, and this module adds: an address check on every resolved address of every
hop, a connection pinned to the address that was checked (the request goes to the IP literally, with the real
Host header and TLS server name), a wall-clock deadline across connect, redirects and body, and decompression
with a bounded output per input chunk (httpx inflates a whole network chunk at once: 64 KiB of gzip can become
64 MiB before anyone counts it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from core.settings import Settings

log = logging.getLogger(__name__)

GENERIC_REFUSAL = "could not fetch this URL (refused, unreachable or not allowed)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_INFLATE_STEP = 64 * 1024  # most bytes one decompress call may produce
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]


class FetchError(Exception):
    """A fetch that did not give a usable response.

    `reason` is specific and always logged. `limit` marks a cap or the deadline: its reason is shown even
    under a strict policy (it says which setting to raise); every other reason a strict policy replaces by
    GENERIC_REFUSAL, so a caller cannot tell a refused address from a closed port.
    """

    def __init__(self, reason: str, *, limit: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.limit = limit
        self.status = status  # the HTTP status of an error response (a crawl tells a gone page by it)


@dataclass(frozen=True)
class AllowRule:
    """One DOCENT_FETCH_ALLOW entry: a host name (any port), a host and port, or a network of addresses."""

    host: str | None = None
    port: int | None = None
    network: IPNetwork | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowRule:
        """`intranet.example`, `intranet.example:8080`, `[fd00::1]:8080`, `10.0.0.0/8` or `10.1.2.3`."""
        text = entry.strip().lower()
        try:
            return cls(network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            pass
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
            if rest and port is None:
                raise ValueError(f"bad DOCENT_FETCH_ALLOW entry {entry!r}: expected [address]:port")
        elif text.count(":") == 1:
            host, _, digits = text.partition(":")
            if not digits.isdigit():
                raise ValueError(f"bad DOCENT_FETCH_ALLOW entry {entry!r}: the port must be a number")
            port = int(digits)
        if not host or any(c in host for c in "/@ "):
            raise ValueError(f"bad DOCENT_FETCH_ALLOW entry {entry!r}: expected host, host:port or a CIDR")
        return cls(host=host, port=port)

    def allows_host(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host and self.port in (None, port)


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may reach and how much it may read; the caller picks one per run.

    `strict` (POST /ingest) refuses non-public addresses outside the allow-list and hides why a fetch failed;
    `operator` (`docent ingest`, in-process callers) may reach private addresses and reports every reason.
    """

    allow_private: bool
    allow: tuple[AllowRule, ...] = ()
    detailed_errors: bool = True
    max_wire_bytes: int = 50_000_000
    max_bytes: int = 50_000_000
    max_html_bytes: int = 10_000_000
    deadline_s: float = 60.0
    timeout_s: float = 20.0
    max_redirects: int = 10

    @classmethod
    def strict(cls, settings: Settings) -> FetchPolicy:
        """For URLs given over HTTP: public addresses and the allow-list only; one generic error text."""
        return cls._from(settings, allow_private=False, detailed_errors=False)

    @classmethod
    def operator(cls, settings: Settings, *, allow_private: bool = True) -> FetchPolicy:
        """For the operator's own runs: private addresses as chosen, specific errors, the same caps."""
        return cls._from(settings, allow_private=allow_private, detailed_errors=True)

    @classmethod
    def _from(cls, settings: Settings, *, allow_private: bool, detailed_errors: bool) -> FetchPolicy:
        return cls(
            allow_private=allow_private,
            allow=tuple(AllowRule.parse(entry) for entry in settings.fetch_allow),
            detailed_errors=detailed_errors,
            max_wire_bytes=settings.fetch_max_wire_bytes,
            max_bytes=settings.fetch_max_bytes,
            max_html_bytes=settings.fetch_max_html_bytes,
            deadline_s=settings.fetch_deadline_s,
            timeout_s=settings.http_timeout_s,
        )

    def message(self, error: FetchError) -> str:
        """What the caller is told about a failed fetch."""
        return error.reason if self.detailed_errors or error.limit else GENERIC_REFUSAL


@dataclass(frozen=True)
class Fetched:
    """A fetched body (decoded) and what the last hop said about it."""

    url: str
    final_url: httpx.URL
    content_type: str
    charset: str | None
    data: bytes


def refusal_of(address: IPAddress) -> str | None:
    """Why an address is not public (loopback, private, ...), or None if it may be reached."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = refusal_of(mapped)
            return f"IPv4-mapped {inner}" if inner else None
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "not global"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (blocking: call from a worker thread)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def fetch(url: str, client: httpx.Client, policy: FetchPolicy, resolver: Resolver = resolve) -> Fetched:
    """GET a URL under a policy, following redirects hop by hop (each checked), within the caps."""
    import httpx

    deadline = time.monotonic() + policy.deadline_s
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL: {exc}") from exc
    for _hop in range(policy.max_redirects + 1):
        response, watchdog = _send(current, client, policy, resolver, deadline)
        try:
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                try:
                    current = current.join(response.headers["location"])
                except httpx.InvalidURL as exc:
                    raise FetchError(f"redirect to an invalid URL: {exc}") from exc
                continue
            if response.status_code >= 400:
                raise FetchError(
                    f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                    status=response.status_code,
                )
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            data = _read_body(response, policy, watchdog)
            return Fetched(url, current, content_type, response.charset_encoding, data)
        finally:
            watchdog.cancel()
            response.close()
    raise FetchError("too many redirects")


def _send(
    url: httpx.URL, client: httpx.Client, policy: FetchPolicy, resolver: Resolver, deadline: float
) -> tuple[httpx.Response, _Watchdog]:
    """One hop: check the target, connect to the checked address, and return the streamed response."""
    import httpx

    if url.scheme not in _DEFAULT_PORTS:
        raise FetchError(f"only http(s) URLs can be fetched, not {url.scheme or 'no'} scheme")
    if not url.host:
        raise FetchError("invalid URL: no host")
    target, extensions = url, dict[str, Any]()
    if not policy.allow_private:
        address = _checked_address(url, policy, resolver)
        target = url.copy_with(host=address)
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host  # TLS checks the certificate against the real name
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _past_deadline(policy)
    watchdog = _Watchdog(remaining)
    extensions["trace"] = watchdog.trace
    request = client.build_request(
        "GET",
        target,
        headers={"Host": _host_header(url), "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(min(policy.timeout_s, remaining)),
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True, follow_redirects=False)
    except httpx.InvalidURL as exc:
        watchdog.cancel()
        raise FetchError(f"invalid URL: {exc}") from exc
    except httpx.TimeoutException as exc:
        watchdog.cancel()
        if watchdog.fired:
            raise _past_deadline(policy) from exc
        raise FetchError(
            f"timed out after {policy.timeout_s:g}s fetching URL ({type(exc).__name__}); "
            "raise DOCENT_HTTP_TIMEOUT_S if the server is just slow"
        ) from exc
    except httpx.HTTPError as exc:
        watchdog.cancel()
        if watchdog.fired:
            raise _past_deadline(policy) from exc
        raise FetchError(f"cannot fetch URL: {exc}") from exc
    watchdog.watch(response)
    return response, watchdog


def _checked_address(url: httpx.URL, policy: FetchPolicy, resolver: Resolver) -> str:
    """The one address this hop connects to, after every resolved address passed the check."""
    port = url.port or _DEFAULT_PORTS[url.scheme]
    host = url.host.lower()
    by_name = any(rule.allows_host(host, port) for rule in policy.allow)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise FetchError(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses:
        raise FetchError(f"cannot resolve {host!r}: no address")
    if not by_name:
        networks = [rule.network for rule in policy.allow if rule.network is not None]
        for address in addresses:
            if any(address in network for network in networks):
                continue
            if (why := refusal_of(address)) is not None:
                raise FetchError(f"refused: {host} resolves to {address}, a {why} address")
    return str(addresses[0])


def _host_header(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return host if url.port in (None, _DEFAULT_PORTS[url.scheme]) else f"{host}:{url.port}"


class _Watchdog:
    """Shuts the hop's socket at the deadline, so a server that stalls or drips cannot hold the fetch."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._done = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: note the socket as soon as the connection is made."""
        if event == "connection.connect_tcp.complete":
            self._grab(info.get("return_value"))

    def watch(self, response: httpx.Response) -> None:
        """Watch the response's connection too (a reused one never traced a connect)."""
        self._grab(response.extensions.get("network_stream"))

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _grab(self, stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._socket = sock

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._socket is not None:
                with contextlib.suppress(OSError):  # already closed
                    self._socket.shutdown(socket.SHUT_RDWR)


def _read_body(response: httpx.Response, policy: FetchPolicy, watchdog: _Watchdog) -> bytes:
    """Stream the body, counting bytes on the wire and after decoding; stop as soon as a cap is passed."""
    import httpx

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_wire_bytes:
        raise _over_wire(policy)
    body = bytearray()
    inflate = _decoder(response.headers.get("content-encoding", ""))
    try:
        for raw in response.iter_raw(64 * 1024):
            if response.num_bytes_downloaded > policy.max_wire_bytes:
                raise _over_wire(policy)
            for piece in inflate(raw):
                body += piece
                if len(body) > policy.max_bytes:
                    raise FetchError(
                        f"response over {policy.max_bytes:,} bytes once decompressed; refused "
                        "(raise DOCENT_FETCH_MAX_BYTES if the source is trusted)",
                        limit=True,
                    )
        if watchdog.fired:  # a body read until the connection closed ends quietly when it is cut
            raise _past_deadline(policy)
    except httpx.HTTPError as exc:
        if watchdog.fired:
            raise _past_deadline(policy) from exc
        if isinstance(exc, httpx.TimeoutException):
            raise FetchError(
                f"timed out after {policy.timeout_s:g}s fetching URL ({type(exc).__name__}); "
                "raise DOCENT_HTTP_TIMEOUT_S if the server is just slow"
            ) from exc
        raise FetchError(f"cannot fetch URL: {exc}") from exc
    except FetchError:
        body.clear()  # free the partial body now, not when the traceback goes
        raise
    return bytes(body)


def _past_deadline(policy: FetchPolicy) -> FetchError:
    return FetchError(
        f"stopped at the deadline of {policy.deadline_s:g}s for the whole fetch "
        "(raise DOCENT_FETCH_DEADLINE_S if the source is trusted and slow)",
        limit=True,
    )


def _over_wire(policy: FetchPolicy) -> FetchError:
    return FetchError(
        f"response over {policy.max_wire_bytes:,} bytes on the wire; refused "
        "(raise DOCENT_FETCH_MAX_WIRE_BYTES if the source is trusted)",
        limit=True,
    )


def _decoder(content_encoding: str) -> Callable[[bytes], Iterator[bytes]]:
    """A bounded decoder for the one content coding we ask for (gzip or deflate), or identity."""
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return lambda data: iter((data,))
    if coding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(coding != "deflate").feed
    raise FetchError(f"unsupported content encoding {content_encoding!r} (Docent asks for gzip or deflate)")


class _Inflater:
    """zlib with `max_length`: each step yields at most _INFLATE_STEP bytes; a bomb is counted as it grows."""

    def __init__(self, gzip: bool) -> None:
        self._wbits = zlib.MAX_WBITS | 32 if gzip else zlib.MAX_WBITS  # 32: gzip or zlib header
        self._raw_fallback = not gzip  # some servers send raw deflate without the zlib header
        self._inflate = zlib.decompressobj(self._wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._inflate.decompress(data, _INFLATE_STEP)
            except zlib.error as exc:
                if not self._raw_fallback:
                    raise FetchError(f"corrupt {('gzip' if self._wbits & 32 else 'deflate')} body") from exc
                self._raw_fallback = False
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._raw_fallback = False
            if out:
                yield out
            if self._inflate.eof:  # concatenated gzip members: go on with the next one
                data = self._inflate.unused_data
                self._inflate = zlib.decompressobj(self._wbits)
                if not data:
                    return
            else:
                data = self._inflate.unconsumed_tail
                if not data and len(out) < _INFLATE_STEP:  # a full step may leave output inside zlib
                    return
