"""/docs and /redoc work on an offline install: every asset they load is served by Docent itself."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.helpers import docent_server, ingest_sample

_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def _referenced(html: str) -> list[str]:
    return [a or b for a, b in _URL.findall(html)]


def test_docs_pages_reference_no_external_host_and_their_assets_are_served(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ingest_sample(data_dir)
    with docent_server(data_dir, tmp_path / "server.log") as base:
        for page in ("/docs", "/redoc"):
            reply = httpx.get(f"{base}{page}", timeout=30)
            assert reply.status_code == 200, reply.text
            urls = _referenced(reply.text)
            assert urls, f"{page} references no assets at all"
            external = [u for u in urls if re.match(r"^(?:[a-z]+:)?//", u)]
            assert not external, f"{page} loads from other hosts: {external}"
            for url in urls:
                asset = httpx.get(f"{base}{url}", timeout=30)
                assert asset.status_code == 200, f"{page}: {url} → {asset.status_code}"
                assert asset.content
