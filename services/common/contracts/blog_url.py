"""Blog URL normalisation: one canonical spelling per blog, used as the cache key."""

import ipaddress
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PARAMS = frozenset({"fbclid", "gclid"})
# Characters left as they are in a path; everything else is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered.startswith("utm_") or lowered in _TRACKING_PARAMS


def _normalize_host(host: str, url: str) -> str:
    host = host.rstrip(".")
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"URL host {host!r} is not a valid domain name: {url!r}") from exc


def normalize_blog_url(url: str) -> str:
    """Return the canonical form of an absolute http(s) blog URL, or raise ValueError."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("URL is empty")
    raw = url.strip()
    if any(ch.isspace() for ch in raw):
        raise ValueError(f"URL contains whitespace: {raw!r}")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"URL must be absolute and use http or https: {raw!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"URL must not contain credentials: {raw!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {raw!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL has an invalid port: {raw!r}") from exc
    netloc = _normalize_host(parts.hostname, raw)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"

    path = quote(parts.path, safe=_PATH_SAFE).rstrip("/") or "/"
    query_pairs = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(key)
    ]
    query = urlencode(sorted(query_pairs))
    return urlunsplit((scheme, netloc, path, query, ""))
