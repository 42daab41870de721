"""URL canonicalisation, so that one page is one source however a link or a user spells its address.

The canonical form: scheme and host lower-cased, the default port dropped, no fragment, dot segments
resolved, no trailing slash (but the root's), tracking parameters (utm_*, fbclid, gclid, ...) removed and the
other parameters sorted by name (the values of one name keep their order). Servers answer both spellings of a
trailing slash with the same page (one redirects to the other), so the form without is fetched and followed.
"""

from __future__ import annotations

import posixpath
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMETERS = frozenset(
    {
        *("fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid"),
        *("igshid", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "_ga", "_gl", "vero_id", "oly_anon_id"),
        *("oly_enc_id", "rb_clickid", "s_cid", "wickedid", "srsltid"),
    }
)


def canonical_url(url: str) -> str:
    """The one spelling of an http(s) URL's address (see the module's docstring); other URLs are unchanged."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:  # not a URL ("http://[::1"): left as it is, for the fetch to refuse with its reason
        return url
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not host:
        return url
    return urlunsplit((scheme, _netloc(parts, scheme), _path(parts.path), _query(parts.query), ""))


def _netloc(parts: SplitResult, scheme: str) -> str:
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host.rstrip(".")
    try:
        port = parts.port
    except ValueError:  # not a number: keep the address as written, the fetch will refuse it
        return parts.netloc.lower()
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return netloc if port in (None, DEFAULT_PORTS[scheme]) else f"{netloc}:{port}"


def _path(path: str) -> str:
    if not path or path == "/":
        return "/"
    resolved = posixpath.normpath(path)  # "/a/./b/../c" -> "/a/c"; also drops the trailing slash
    return "/" + resolved.lstrip("/") if resolved not in (".", "/") else "/"


def _query(query: str) -> str:
    kept = [
        part for part in query.split("&") if part and not is_tracking(unquote_plus(part.partition("=")[0]))
    ]
    return "&".join(sorted(kept, key=lambda part: unquote_plus(part.partition("=")[0])))


def is_tracking(name: str) -> bool:
    """A query parameter that says where a visitor came from, not which page they want."""
    lowered = name.lower()
    return lowered.startswith(TRACKING_PREFIXES) or lowered in TRACKING_PARAMETERS


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port alike (after canonicalisation)."""
    first, second = urlsplit(canonical_url(a)), urlsplit(canonical_url(b))
    return (first.scheme, first.netloc) == (second.scheme, second.netloc)
