"""Where requests go: gRPC host:port and OTLP/HTTP URLs, read as the OTLP
exporter specification says (default ports, schemes, /v1/<signal> paths)."""
from __future__ import annotations

import re

DEFAULT_PORT = 4317  # the OTLP/gRPC port, used when an endpoint names none


DEFAULT_HTTP_PORT = 4318  # the OTLP/HTTP port, for an endpoint with neither port nor scheme

# What an unset endpoint means, per protocol (the OTLP exporter specification's defaults).
DEFAULT_ENDPOINTS: dict[str, str] = {"grpc": "localhost:4317", "http/protobuf": "http://localhost:4318"}

SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)\Z", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?\Z")


def split_endpoint(text: str) -> tuple[str, str | None]:
    """("host:port", scheme or None) from "host:port", "host", "[::1]:4317" or
    a URL such as "https://api.honeycomb.io:443" (a path is ignored: gRPC
    has none). A missing port is 4317. Raises ValueError saying what is wrong."""
    text = text.strip()
    if text.startswith("unix:"):
        return text, None  # a gRPC unix-socket target, passed through
    scheme = None
    match = SCHEME.match(text)
    if match is not None:
        scheme = match.group(1).lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"the scheme must be http:// or https://, not {scheme}://")
        text = re.split(r"[/?#]", match.group(2), maxsplit=1)[0]
    elif "/" in text:
        raise ValueError("a path needs a scheme, as in https://host:port")
    host, port = _split_host_port(text)
    return f"{host}:{port}", scheme


def http_url(signal: str, own: str | None, base: str | None, insecure: bool) -> tuple[str, bool]:
    """(URL, plaintext?) that `signal`'s requests are POSTed to, as the OTLP
    exporter specification says: a per-signal endpoint is used as given (the
    root path when it has none); a base endpoint gets /v1/<signal> appended to
    its path. Without a scheme, `insecure` picks http:// over https://, and a
    missing port is 4318; with one, the scheme's own port (80, 443) applies."""
    text = (own or base or DEFAULT_ENDPOINTS["http/protobuf"]).strip()
    match = SCHEME.match(text)
    if match is not None:
        scheme, rest = match.group(1).lower(), match.group(2)
    else:
        scheme, rest = ("http" if insecure else "https"), text
    split = re.search(r"[/?#]", rest)
    authority, path = (rest[:split.start()], rest[split.start():]) if split else (rest, "")
    path = path.split("#", 1)[0]
    host, port = _split_host_port(authority, None if match is not None else DEFAULT_HTTP_PORT)
    netloc = host if port is None else f"{host}:{port}"
    if own:
        path = path if path.startswith("/") else "/" + path
    else:
        query = ""
        if "?" in path:
            path, query = path.split("?", 1)
            query = "?" + query
        path = path.rstrip("/") + f"/v1/{signal}" + query
    return f"{scheme}://{netloc}{path}", scheme == "http"


def _split_host_port(text: str, default_port: int | None = DEFAULT_PORT) -> tuple[str, int | None]:
    if text.startswith("["):  # IPv6 literal
        end = text.find("]")
        if end < 0:
            raise ValueError("an IPv6 address needs a closing ]")
        host, rest = text[: end + 1], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError("expected :port after the IPv6 address")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        raise ValueError("an IPv6 address must be in brackets, as in [::1]:4317")
    else:
        host, _, port_text = text.partition(":")
        if not host:
            raise ValueError("the host is missing")
        if not _HOST.match(host):
            raise ValueError(f"{host!r} is not a host name or address")
        if ":" in text and not port_text:
            raise ValueError("the port after ':' is missing")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def endpoint_problem(text: str) -> str | None:
    try:
        split_endpoint(text)
    except ValueError as exc:
        return str(exc)
    return None

