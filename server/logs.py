"""Structured logs: one JSON object per line on stderr (LOG_FORMAT=json, the default), or
readable lines for a terminal (LOG_FORMAT=text). Each line names the node, and the request id,
connection, user and procedure of the work it belongs to (rpc.log_context). Messages never
carry tokens, keys, notes or patient data; the code logs ids and counts, not payloads. As a
second line of defence the formatter blanks anything shaped like a JWT or a bearer credential
(say, in a library's exception text).

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

from rpc import log_context
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


# Fields a record may carry in `extra` (logger.info(..., extra={...})) that become fields of
# the line: measures and ids only. Anything else passed in `extra` is left out.
EXTRA_FIELDS = ("duration_ms", "outcome", "admin", "action", "target")
FORMATS = ("json", "text")


def _time(record: logging.LogRecord) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z"
    )


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The request context (rpc.log_context) and the record's known extras, without Nones."""
    ctx = log_context.current()
    fields: dict[str, object] = {
        "request_id": ctx.request_id,
        "connection_id": ctx.connection_id,
        "user_id": ctx.user_id,
        "procedure": ctx.procedure,
    }
    for name in EXTRA_FIELDS:
        value = getattr(record, name, None)
        if isinstance(value, float):
            value = round(value, 3)
        fields[name] = value if isinstance(value, int | float) else _short(value)
    return {k: v for k, v in fields.items() if v is not None}


def _short(value: object) -> str | None:
    return None if value is None else redact(str(value))[:256]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event (the message), node, then the
    request's ids, procedure, duration and outcome when there are any, and `exc`."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        if self.node is not None:
            entry["node"] = self.node
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """The same fields for a person at a terminal (LOG_FORMAT=text): one line each, then the
    traceback if any."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if self.node is not None:
            fields = {"node": self.node, **fields}
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{_time(record)} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        if tail:
            line += f"  [{tail}]"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


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


def formatter(fmt: str = "json", node: str | None = None) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return JsonFormatter(node) if fmt == "json" else TextFormatter(node)


def setup(level: str = "INFO", fmt: str = "json", node: str | None = None) -> None:
    """Log to stderr at `level` in `fmt` ("json": one object per line, the default for
    machines; "text": for a person at a terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosqlite's DEBUG lines quote each statement's arguments (an input's text among them).
    logging.getLogger("aiosqlite").setLevel(max(root.level, logging.INFO))
    install_client_error_filter(root.level)


def set_node(node: str) -> None:
    """Name this node in every line from now on (its NODE_ID is known once the configuration
    is read, after logging is set up)."""
    for handler in logging.getLogger().handlers:
        found = handler.formatter
        if isinstance(found, JsonFormatter | TextFormatter):
            found.node = node
