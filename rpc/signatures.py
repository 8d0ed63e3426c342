"""Webhook signatures, one format both ways (CONTRACT 9), in the style Stripe made familiar:

    X-Alertwire-Signature: t=1700000000,v1=<hex HMAC-SHA256 of "1700000000." + body>

The HMAC key is the secret's UTF-8 bytes. A receiver refuses a timestamp more than
`TOLERANCE_S` away from its clock in either direction (a captured request cannot be replayed
later, nor one stamped ahead of time kept for later), and accepts the request when any of the
`v1` values matches (a sender rotating secrets may sign with both). Comparisons are constant
time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Alertwire-Signature"
TOLERANCE_S = 300
MAX_HEADER_LENGTH = 2048  # a few v1 values; more is not a signature


def digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, now: float) -> str | None:
    """None when `header` signs `body` with `secret` within the tolerance; else why not (a
    fixed phrase, safe to send back: it never echoes the header)."""
    if not header:
        return "The X-Alertwire-Signature header is required for this key"
    if len(header) > MAX_HEADER_LENGTH:
        return "The X-Alertwire-Signature header is malformed"
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return "The X-Alertwire-Signature header is malformed"
    if abs(now - timestamp) > TOLERANCE_S:
        return "The signature's timestamp is outside the 300 s tolerance"
    expected = digest(secret, timestamp, body).encode()
    matched = False
    for candidate in candidates:  # every one compared: the time taken says nothing
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return None if matched else "The signature does not match the body"
