"""JSON over HTTP to a backend's query API (the standard library's client:
a handful of queries per second at most), with every failure one line:
BackendError, never a traceback."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from .._version import __version__

USER_AGENT = f"telegen/{__version__} (verify)"
TIMEOUT = 30.0  # seconds per query


class BackendError(Exception):
    """A backend's query API did not answer as expected; the message is one
    line naming the URL (never a header: API keys travel in headers)."""


class RateLimited(BackendError):
    """HTTP 429: ask again later."""


def fetch(url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None,
          method: str | None = None, timeout: float = TIMEOUT, missing_ok: bool = False) -> bytes | None:
    """The response body; None for a 404 when `missing_ok`."""
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"User-Agent": USER_AGENT, **(headers or {})})
    where = _without_query(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and missing_ok:
            return None
        detail = _snippet(exc.read())
        error = RateLimited if exc.code == 429 else BackendError
        raise error(f"{where} answered HTTP {exc.code}{': ' + detail if detail else ''}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        raise BackendError(f"cannot reach {where}: {reason}") from None
    except TimeoutError:
        raise BackendError(f"{where} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise BackendError(f"cannot reach {where}: {exc.strerror or exc}") from None


def get_json(url: str, params: Mapping[str, object] | None = None, *, headers: Mapping[str, str] | None = None,
             missing_ok: bool = False) -> object | None:
    body = fetch(_with_params(url, params), headers=headers, missing_ok=missing_ok)
    return None if body is None else _decode(url, body)


def post_json(url: str, payload: object, *, headers: Mapping[str, str] | None = None) -> object:
    body = fetch(url, data=json.dumps(payload).encode(), method="POST",
                 headers={"Content-Type": "application/json", **(headers or {})})
    return _decode(url, body or b"")


def post_form(url: str, fields: Mapping[str, object]) -> bytes:
    """A form POST (LogsQL queries go this way); the raw body."""
    body = fetch(url, data=urllib.parse.urlencode({k: str(v) for k, v in fields.items()}).encode(), method="POST",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    return body or b""


def _decode(url: str, body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise BackendError(f"{_without_query(url)} answered something other than JSON: {_snippet(body)}") from None


def _with_params(url: str, params: Mapping[str, object] | None) -> str:
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode({k: str(v) for k, v in params.items()})}"


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _snippet(body: bytes, limit: int = 200) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[:limit] + "..."


def join(base: str, path: str) -> str:
    """`base` (a URL that may end in /) and an absolute `path`."""
    return base.rstrip("/") + path
