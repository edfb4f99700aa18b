"""`KIND=URL` as the command line gives a backend to verify against, and the
reader each kind opens."""
from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import TelegenError
from .backend import Backend
from .honeycomb import Honeycomb
from .jaeger import Jaeger
from .prometheus import Prometheus
from .victorialogs import VictoriaLogs

KINDS: dict[str, Callable[[str], Backend]] = {
    "jaeger": Jaeger,
    "prometheus": Prometheus,
    "victorialogs": VictoriaLogs,
    "honeycomb": Honeycomb,
}


@dataclass(frozen=True)
class Target:
    kind: str
    url: str


def parse_target(text: str) -> Target:
    """`jaeger=http://127.0.0.1:16686` -> Target; ValueError saying what is wrong."""
    kind, equals, url = text.partition("=")
    kind = kind.strip().lower()
    if not equals or not url.strip():
        raise ValueError(f"{text!r} is not KIND=URL, e.g. prometheus=http://127.0.0.1:9090")
    if kind not in KINDS:
        raise ValueError(f"unknown KIND {kind!r}: expected {', '.join(KINDS)}")
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL of {kind}'s query API")
    return Target(kind, url)


def open_backends(targets: Sequence[Target]) -> list[Backend]:
    """A reader per target; each signal verified at one backend only."""
    backends = [KINDS[target.kind](target.url) for target in targets]
    claimed: dict[str, str] = {}
    for backend in backends:
        for signal in backend.signals:
            if signal in claimed:
                raise TelegenError(f"--verify: {signal} would be verified at both {claimed[signal]} and "
                                   f"{backend.kind}: give one backend per signal")
            claimed[signal] = backend.kind
    return backends
