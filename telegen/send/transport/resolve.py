"""Endpoint host names checked once before a run: a name the resolver says
does not exist is a typo in the config, and the run would only retry it for
its whole duration. A resolver that cannot answer now (EAI_AGAIN: DNS down,
no network yet) is left to the carriers, which retry it."""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from ...errors import ConfigError

# The resolver's "no such name" answers; anything else may pass.
_NO_SUCH_NAME = {code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
                 if code is not None}


def endpoint_host(endpoint: str) -> str | None:
    """The host name in a gRPC `host:port` (or `dns:///host:port`) or an
    OTLP/HTTP URL; None for an address, a Unix socket or what cannot be read."""
    if endpoint.startswith(("unix:", "unix-abstract:")):
        return None
    if endpoint.startswith("dns:"):
        endpoint = endpoint.split(":", 1)[1].lstrip("/")
    try:
        host = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        return host


def check_endpoints_resolve(endpoints: Iterable[tuple[str, str]]) -> None:
    """(what, endpoint) pairs, e.g. ("traces", "collector:4317"): ConfigError
    naming the first whose host the resolver says does not exist."""
    looked_up: set[str] = set()
    for what, endpoint in endpoints:
        host = endpoint_host(endpoint)
        if host is None or host in looked_up:
            continue
        looked_up.add(host)
        try:
            socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                raise ConfigError(f"the {what} endpoint {endpoint}: the host name {host!r} does not resolve "
                                  f"({exc.strerror}); check otlp.endpoint") from None
