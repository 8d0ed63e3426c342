"""Structured logs: one JSON object per line on stderr. Messages never carry tokens or
patient data; the code logs ids and counts, not payloads. As a second line of defence the
formatter blanks anything shaped like a JWT or a bearer credential (say, in a library's
exception text).

aiohttp logs a request its parser refuses (a bad request line, header, URL or body framing)
as "Error handling request" with a traceback that quotes the offending bytes. `setup()` puts
`AiohttpClientErrors` on that logger: such a record becomes one line of a ClientErrorLog
(kind "bad_http", no traceback, at most one per 10 s per address); everything else passes as
before."""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from rpc.client_errors import LOGGER as CLIENT_ERRORS
from rpc.client_errors import ClientErrorLog

AIOHTTP_SERVER_LOGGER = "aiohttp.server"
CLIENT_ERRORS_LOGGER = CLIENT_ERRORS

# A JWS compact serialisation: base64url header (always '{"' -> "eyJ"), payload, signature.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _BEARER.sub(r"\1" + REDACTED, _JWT.sub(REDACTED, text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class AiohttpClientErrors(logging.Filter):
    """A filter for the "aiohttp.server" logger: a record of a request aiohttp refused as
    malformed (its exception an HttpProcessingError) is reported to `errors` and dropped;
    any other record passes when it is at least `level`.

    The logger itself is set to DEBUG, because aiohttp logs the commonest case, bytes that
    are not HTTP at all on a connection's first request, at DEBUG, and `/metrics` counts
    every one; `level` then does the logger's usual job for everything else."""

    def __init__(self, errors: ClientErrorLog, level: int = logging.INFO) -> None:
        super().__init__()
        self.errors = errors
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # The class name is one of aiohttp's few; exc's text would quote the request.
            self.errors.report("bad_http", _peer(record), f"malformed HTTP ({type(exc).__name__})")
            return False
        return record.levelno >= self.level


def _peer(record: logging.LogRecord) -> str:
    """The address in aiohttp's "Error handling request from %s" (request.remote)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], str) and args[0]:
        return args[0]
    return "unknown"


def install_client_error_filter(level: int = logging.INFO) -> AiohttpClientErrors:
    """Put a fresh AiohttpClientErrors on the aiohttp.server logger (replacing one already
    there) with a ClientErrorLog of its own, which counts nowhere until
    `route_client_errors` hands it the server's."""
    server_log = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    for old in [f for f in server_log.filters if isinstance(f, AiohttpClientErrors)]:
        server_log.removeFilter(old)
    installed = AiohttpClientErrors(ClientErrorLog(logging.getLogger(CLIENT_ERRORS_LOGGER)), level)
    server_log.addFilter(installed)
    server_log.setLevel(logging.DEBUG)
    return installed


def route_client_errors(errors: ClientErrorLog) -> bool:
    """Report aiohttp's malformed requests to `errors` from now on: the composition root
    passes the server's own, whose `count` feeds its Metrics. False when `setup()` (or
    `install_client_error_filter`) has not run, so there is nothing to route."""
    routed = False
    for found in logging.getLogger(AIOHTTP_SERVER_LOGGER).filters:
        if isinstance(found, AiohttpClientErrors):
            found.errors = errors
            routed = True
    return routed


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    install_client_error_filter(root.level)
