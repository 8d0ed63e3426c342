"""One error vocabulary for every dialect and transport.

Numbers and HTTP statuses follow tRPC's table (CONTRACT 3c). The JSON-RPC dialect maps two
of them onto the specification's own codes: an unknown method is -32601 and invalid params are
-32602; the tRPC dialect sends NOT_FOUND and BAD_REQUEST for the same cases.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

log = logging.getLogger("alertwire.rpc")


class ErrorCode(Enum):
    """tRPC error name -> (JSON-RPC number, HTTP status)."""

    PARSE_ERROR = (-32700, 400)
    BAD_REQUEST = (-32600, 400)
    UNAUTHORIZED = (-32001, 401)
    FORBIDDEN = (-32003, 403)
    NOT_FOUND = (-32004, 404)
    METHOD_NOT_SUPPORTED = (-32005, 405)
    TIMEOUT = (-32008, 408)
    CONFLICT = (-32009, 409)
    PRECONDITION_FAILED = (-32012, 412)
    PAYLOAD_TOO_LARGE = (-32013, 413)
    UNSUPPORTED_MEDIA_TYPE = (-32015, 415)
    UNPROCESSABLE_CONTENT = (-32022, 422)
    TOO_MANY_REQUESTS = (-32029, 429)
    CLIENT_CLOSED_REQUEST = (-32099, 499)
    INTERNAL_SERVER_ERROR = (-32603, 500)
    SERVICE_UNAVAILABLE = (-32603, 503)

    @property
    def number(self) -> int:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]


# JSON-RPC 2.0's own numbers for the two cases where the specification names them.
JSONRPC_METHOD_NOT_FOUND = -32601
JSONRPC_INVALID_PARAMS = -32602

INTERNAL_MESSAGE = "Internal server error"


class RpcError(Exception):
    """The one error type procedures raise; everything else becomes INTERNAL_SERVER_ERROR.

    `message` and `data` reach the client, so they must never hold secrets, tokens,
    patient data or exception text from a library.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        data: dict[str, Any] | None = None,
        *,
        jsonrpc_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}
        # Set only for "method not found" and "invalid params", where JSON-RPC has its own codes.
        self.jsonrpc_number = jsonrpc_number

    def number(self, dialect: str) -> int:
        if dialect == "jsonrpc" and self.jsonrpc_number is not None:
            return self.jsonrpc_number
        return self.code.number

    def to_dict(self, dialect: str, path: str | None = None) -> dict[str, Any]:
        """The error object for either dialect: {code, message, data{code, httpStatus, ...}}."""
        data: dict[str, Any] = {"code": self.code.name, "httpStatus": self.code.http_status}
        data.update(self.data)
        if path is not None:
            data["path"] = path
        return {"code": self.number(dialect), "message": self.message, "data": data}

    def __repr__(self) -> str:
        return f"RpcError({self.code.name}, {self.message!r})"


def parse_error(message: str = "Parse error") -> RpcError:
    return RpcError(ErrorCode.PARSE_ERROR, message)


def invalid_request(message: str = "Invalid request") -> RpcError:
    return RpcError(ErrorCode.BAD_REQUEST, message)


def method_not_found(path: str, kind: str | None = None) -> RpcError:
    message = (
        f'No "{kind}"-procedure on path "{path}"'
        if kind
        else f'No procedure found on path "{path}"'
    )
    return RpcError(ErrorCode.NOT_FOUND, message, jsonrpc_number=JSONRPC_METHOD_NOT_FOUND)


def invalid_params(field_errors: dict[str, str], message: str = "Invalid params") -> RpcError:
    return RpcError(
        ErrorCode.BAD_REQUEST,
        message,
        {"fieldErrors": field_errors},
        jsonrpc_number=JSONRPC_INVALID_PARAMS,
    )


def to_rpc_error(exc: BaseException) -> RpcError:
    """Any exception -> RpcError. Unknown ones are logged with their traceback and hidden."""
    if isinstance(exc, RpcError):
        return exc
    log.error("unhandled error in procedure", exc_info=exc)
    return RpcError(ErrorCode.INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE)
