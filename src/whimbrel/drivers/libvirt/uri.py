"""libvirt connection URIs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


def with_pkipath(uri: str, pki_dir: Path | str | None) -> str:
    """Point a TLS URI at a credentials directory unless it names its own."""
    parts = urlsplit(uri)
    if not pki_dir or "+tls" not in parts.scheme:
        return uri
    query = parse_qs(parts.query)
    if "pkipath" in query:
        return uri
    query["pkipath"] = [str(pki_dir)]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
