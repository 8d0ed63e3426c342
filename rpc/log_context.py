"""What every log line of a request or call says about where it comes from: the request id
(`X-Request-Id`, or one generated), the connection, the user (`sub`) and the procedure.

A ContextVar, so it follows the work instead of being passed along: the transport binds the
request id for the whole handling of an HTTP request or WebSocket (and the tasks it starts copy
it), the session binds the connection and user, the dispatcher the procedure for one call.
server.logs reads it when it formats a line. Never a token, an input or anything a patient
could be recognised by: ids only.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace

# A client's own request id is kept when it is short and plain (it goes into every log line
# and back in the response header); anything else is replaced by one of ours.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True, slots=True)
class LogContext:
    request_id: str | None = None
    connection_id: str | None = None
    user_id: str | None = None
    procedure: str | None = None


EMPTY = LogContext()
_current: ContextVar[LogContext] = ContextVar("alertwire_log_context", default=EMPTY)


def current() -> LogContext:
    return _current.get()


def bind(**fields: str | None) -> Token[LogContext]:
    """Add fields for the rest of this task (and tasks it starts); `reset` undoes it."""
    return _current.set(replace(_current.get(), **fields))


def reset(token: Token[LogContext]) -> None:
    _current.reset(token)


def request_id(offered: str | None) -> str:
    """The client's X-Request-Id if it is acceptable, else a new one."""
    if offered is not None and REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex
