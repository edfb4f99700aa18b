"""What a transport error usually means, in the words a person reads next to it."""
from __future__ import annotations

# What an error usually means, for the line a person reads: (needles, hint).
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("WRONG_VERSION_NUMBER", "wrong version number", "packet length too long"),
     "TLS handshake failed: the endpoint may be plaintext; use --insecure (otlp.insecure: true)"),
    (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "unable to get local issuer"),
     "the endpoint's TLS certificate is not trusted: set otlp.tls.ca_file to its CA"),
    (("Connection refused", "connection refused", "Couldn't connect", "Failed to connect"),
     "nothing accepts connections there: check the endpoint's host and port"),
    (("Received message larger than max", "message larger than max"),
     "a request is over the receiver's size limit: lower sending.max_message_bytes"),
)


def explain(message: str) -> str:
    """A plain-words reading of a transport error (``""`` when none fits)."""
    for needles, hint in _HINTS:
        if any(needle in message for needle in needles):
            return hint
    return ""
