"""The JSON-RPC 2.0 dialect (CONTRACT 3a), strictly to jsonrpc.org/specification.

jsonrpcserver guards the request edge: its JSON schema decides what is a valid Request object
and its `create_request` reads method, params and id (NOID for notifications). Dispatch,
subscriptions and errors are ours, so events never pass through it. The schema is only
consulted for a request that `plainly_valid` cannot vouch for: that check accepts a subset of
what the schema accepts, at a fraction of the cost of evaluating it for every call.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from jsonrpcserver.dispatcher import create_request
from jsonrpcserver.main import default_validator
from jsonrpcserver.sentinels import NOID
from pydantic import ValidationError

from rpc import trpc
from rpc.errors import (
    JSONRPC_METHOD_NOT_FOUND,
    ErrorCode,
    RpcError,
    invalid_params,
    invalid_request,
    to_rpc_error,
)
from rpc.identity import identity_of
from rpc.limits import id_too_long
from rpc.openrpc import discover
from rpc.router import Kind, Procedure, field_errors
from rpc.stream import UNTRACKED_TAIL, FrameTail, SharedFrames
from schemas.system import AuthenticateInput

if TYPE_CHECKING:
    from rpc.session import Session
    from rpc.subscription import Subscription

DIALECT = "jsonrpc"


def _id_bytes(request_id: Any) -> bytes:
    return orjson.dumps(request_id)


def success(request_id: Any, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","result":' + result + b',"id":' + _id_bytes(request_id) + b"}"


def failure(request_id: Any, error: RpcError, path: str | None = None) -> bytes:
    body = orjson.dumps(error.to_dict(DIALECT, path))
    return b'{"jsonrpc":"2.0","error":' + body + b',"id":' + _id_bytes(request_id) + b"}"


def _usable_id(message: Any) -> Any:
    """The id to echo on an invalid request: only when it could be read (else null)."""
    if isinstance(message, dict):
        value = message.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return value
    return None


_TRACKED_TAIL = FrameTail(lambda eid, payload: b',"id":' + eid + b',"data":' + payload + b"}}")
_TRACKED_FRAMES = SharedFrames(_TRACKED_TAIL)
_UNTRACKED_FRAMES = SharedFrames(UNTRACKED_TAIL)


class JsonRpcEnvelope:
    """Frames of one JSON-RPC subscription; the constant parts are built once."""

    __slots__ = ("_head", "_reply", "sid")

    def __init__(self, sid: str, request_id: Any) -> None:
        self.sid = sid
        sid_json = orjson.dumps(sid)
        self._reply = success(request_id, b'{"subscription":' + sid_json + b"}")
        self._head = (
            b'{"jsonrpc":"2.0","method":"subscription","params":{"subscription":' + sid_json
        )

    def started(self) -> bytes:
        return self._reply

    def event(self, event_id: str | None, payload: bytes) -> bytes:
        """The event's frame: the same bytes for every subscription with this one's id."""
        if event_id is None:
            return _UNTRACKED_FRAMES.get(self._head, "", payload)
        return _TRACKED_FRAMES.get(self._head, event_id, payload)

    def ended(self, error: RpcError | None) -> list[bytes]:
        params: dict[str, Any] = {"subscription": self.sid}
        if error is not None:
            params["error"] = error.to_dict(DIALECT)
        return [orjson.dumps({"jsonrpc": "2.0", "method": "subscription.end", "params": params})]


async def handle(session: Session, message: Any) -> None:
    """One parsed frame or HTTP body: a request, a notification or a batch."""
    if isinstance(message, list):
        await _handle_batch(session, message)
        return
    reply, pending = await _handle_one(session, message, in_batch=False)
    if reply is not None:
        session.reply(reply)
    if pending is not None:
        await pending.run()


async def _handle_batch(session: Session, batch: list[Any]) -> None:
    if not batch:
        session.reply(failure(None, invalid_request()))
        return
    # The session refused batches over Limits.max_batch before they got here.
    if all(plain_call(session, element) for element in batch):
        # The specification lets a batch run as concurrent tasks: mutations then share a
        # commit. Anything else (auth, subscriptions, stops) keeps the batch in order.
        results = await asyncio.gather(
            *(_handle_one(session, element, in_batch=True) for element in batch)
        )
    else:
        results = [await _handle_one(session, element, in_batch=True) for element in batch]
    replies: list[bytes] = []
    pending: list[Subscription] = []
    for reply, sub in results:
        if reply is not None:
            replies.append(reply)
        if sub is not None:
            pending.append(sub)
    if replies:  # a batch of only notifications gets nothing back
        session.reply(b"[" + b",".join(replies) + b"]")
    for sub in pending:  # events only after the reply that announces them
        await sub.run()


_REQUEST_KEYS = frozenset({"jsonrpc", "method", "id", "params"})
_ID_TYPES = (str, int, float, type(None))  # exact types: a bool is not a number here
_PARAMS_TYPES = (list, dict)


def plainly_valid(message: Any) -> bool:
    """True only for a Request object the schema accepts (a subset of them): an object with
    `"jsonrpc": "2.0"`, a string method, an optional string/number/null id, optional
    array/object params, and nothing else."""
    return (
        type(message) is dict
        and message.get("jsonrpc") == "2.0"
        and type(message["jsonrpc"]) is str
        and type(message.get("method")) is str
        and message.keys() <= _REQUEST_KEYS
        and ("id" not in message or type(message["id"]) in _ID_TYPES)
        and ("params" not in message or type(message["params"]) in _PARAMS_TYPES)
    )


def plain_call(session: Session, message: Any) -> bool:
    """A request for a query or a mutation of the router."""
    method = message.get("method") if isinstance(message, dict) else None
    proc = session.dispatcher.router.get(method) if isinstance(method, str) else None
    return proc is not None and proc.kind is not Kind.SUBSCRIPTION


async def _handle_one(
    session: Session, message: Any, *, in_batch: bool
) -> tuple[bytes | None, Subscription | None]:
    if in_batch and trpc.is_trpc_message(message):
        return failure(
            None, invalid_request("tRPC messages cannot be part of a JSON-RPC batch")
        ), None
    if not plainly_valid(message):
        try:
            default_validator(message)
        except Exception:
            return failure(_usable_id(message), invalid_request()), None
    request = create_request(message)
    if id_too_long(request.id, session.limits):
        session.metrics.bad_frames.inc("bad_id")
        session.refused("bad_frame", "request id too long or of the wrong type")
        limit = session.limits.max_id_chars
        return failure(
            None, invalid_request(f"Request id too long (at most {limit} characters)")
        ), None
    notification = request.id is NOID
    request_id = None if notification else request.id
    known = (
        isinstance(request.method, str) and request.method in session.dispatcher.router.procedures
    )
    path = request.method if known else None
    try:
        session.take_rate_token()
        result, sub = await _dispatch(session, request.method, request.params, request_id)
    except Exception as exc:
        if notification:
            return None, None
        return failure(request_id, to_rpc_error(exc), path), None
    if notification:
        if sub is not None:
            sub.cancel()
        return None, None
    if sub is not None:
        return sub.envelope.started(), sub
    assert result is not None
    return success(request_id, result), None


def _named_params(params: Any, proc: Procedure | None = None) -> Any:
    """By-position params map onto the input model's fields in declaration order."""
    if not isinstance(params, list):
        return params
    if not params:
        return None
    if proc is None or proc.input_model is None:
        raise invalid_params({"": "params must be an object (by-name)"})
    fields = proc.input_model.model_fields
    names = [info.alias or name for name, info in fields.items()]
    if len(params) > len(names):
        raise invalid_params({"": f"at most {len(names)} positional params"})
    return dict(zip(names, params, strict=False))


async def _dispatch(
    session: Session, method: str, params: Any, request_id: Any
) -> tuple[bytes | None, Subscription | None]:
    if method == "rpc.discover":
        if session.auth is not None and session.auth.discovery_needs_token:
            session.dispatcher.require_principal(session.context(request_id))
        return discover(session.dispatcher.router), None
    if method == "auth.authenticate":
        return _authenticate(session, _named_params(params)), None
    if method == "subscription.stop":
        return _stop(session, _named_params(params)), None
    dispatcher = session.dispatcher
    proc = dispatcher.lookup(method)
    if proc.kind is Kind.SUBSCRIPTION:
        if session.http or request_id is None:
            raise RpcError(
                ErrorCode.NOT_FOUND,
                "Subscriptions need a WebSocket (JSON-RPC or tRPC) or SSE (tRPC "
                "httpSubscriptionLink); they cannot be made over HTTP POST or as a notification",
                jsonrpc_number=JSONRPC_METHOD_NOT_FOUND,
            )
        sid = session.new_subscription_id()
        envelope = JsonRpcEnvelope(sid, request_id)
        sub = await session.open_subscription(
            (DIALECT, sid), method, _named_params(params, proc), envelope
        )
        return None, sub
    ctx = session.context(request_id)
    return await dispatcher.run(ctx, proc, _named_params(params, proc)), None


def _authenticate(session: Session, params: Any) -> bytes:
    token = params.get("token") if isinstance(params, dict) else None
    if params is None or (isinstance(params, dict) and token in (None, "")):
        # No credentials is an authentication failure, as on every other path.
        session.authenticate(None)
    try:
        checked = AuthenticateInput.model_validate(params if params is not None else {})
    except ValidationError as exc:
        raise invalid_params(field_errors(exc)) from None
    principal = session.authenticate(checked.token)
    return identity_of(principal).model_dump_json(by_alias=True).encode()


def _stop(session: Session, params: Any) -> bytes:
    sid = params.get("subscription") if isinstance(params, dict) else None
    if not isinstance(sid, str) or set(params) != {"subscription"}:
        raise invalid_params({"subscription": "a subscription id (string) is required"})
    return b"true" if session.stop_subscription((DIALECT, sid)) else b"false"
