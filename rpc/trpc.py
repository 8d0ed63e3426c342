"""The tRPC v11 WebSocket dialect (TRPC_PROTOCOL.md section 1).

Replies are one JSON object per frame; `jsonrpc` is echoed when the request had it. A
subscription answers `started`, then `data` frames (tracked: `result.id` and
`data: {id, data}`), then `stopped`; an error frame is followed by `stopped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from rpc.errors import ErrorCode, RpcError, parse_error, to_rpc_error
from rpc.limits import id_too_long
from rpc.router import Kind
from rpc.stream import UNTRACKED_TAIL, FrameTail, SharedFrames

if TYPE_CHECKING:
    from rpc.session import Session

DIALECT = "trpc"
METHODS = frozenset({"query", "mutation", "subscription", "subscription.stop", "connectionParams"})


def is_call(message: dict[str, Any]) -> bool:
    """A tRPC message (see `is_trpc_message`) that is a query or a mutation."""
    return message["method"] in ("query", "mutation")


def is_trpc_message(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("method") not in METHODS:
        return False
    # JSON-RPC's own stop names the subscription in params; tRPC's uses the request id.
    params = message.get("params")
    return not (
        message.get("method") == "subscription.stop"
        and isinstance(params, dict)
        and "subscription" in params
    )


def _head(request_id: Any, echo: bool) -> bytes:
    prefix = b'{"jsonrpc":"2.0","id":' if echo else b'{"id":'
    return prefix + orjson.dumps(request_id)


_TRACKED_TAIL = FrameTail(
    lambda eid, payload: b',"id":' + eid + b',"data":{"id":' + eid + b',"data":' + payload + b"}}}"
)
_TRACKED_FRAMES = SharedFrames(_TRACKED_TAIL)
_UNTRACKED_FRAMES = SharedFrames(UNTRACKED_TAIL)


class TrpcEnvelope:
    __slots__ = ("_data", "_error_head", "_head", "path")

    def __init__(self, request_id: Any, echo: bool, path: str) -> None:
        head = _head(request_id, echo)
        self._head = head
        self._data = head + b',"result":{"type":"data"'
        self._error_head = head + b',"error":'
        self.path = path

    def started(self) -> bytes:
        return self._head + b',"result":{"type":"started"}}'

    def stopped(self) -> bytes:
        return self._head + b',"result":{"type":"stopped"}}'

    def event(self, event_id: str | None, payload: bytes) -> bytes:
        """The event's frame: the same bytes for every subscription with this one's id."""
        if event_id is None:
            return _UNTRACKED_FRAMES.get(self._data, "", payload)
        return _TRACKED_FRAMES.get(self._data, event_id, payload)

    def error(self, error: RpcError) -> bytes:
        return self._error_head + orjson.dumps(error.to_dict(DIALECT, self.path)) + b"}"

    def ended(self, error: RpcError | None) -> list[bytes]:
        if error is None:
            return [self.stopped()]
        return [self.error(error), self.stopped()]


def reject_all(session: Session, messages: list[Any], error: RpcError) -> None:
    """Answer each request of an array with `error`, running none of them."""
    body = b',"error":' + orjson.dumps(error.to_dict(DIALECT)) + b"}"
    for message in messages:
        request_id = message.get("id")
        if message["method"] == "connectionParams" or message["method"] == "subscription.stop":
            continue  # not requests: nothing waits for a reply
        if _valid_id(request_id) and not id_too_long(request_id, session.limits):
            session.reply(_head(request_id, message.get("jsonrpc") == "2.0") + body)


def _valid_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _merge_last_event_id(raw_input: Any, last_event_id: Any) -> Any:
    """As the official server does: into an object input, or as the whole of a null input."""
    if last_event_id is None:
        return raw_input
    if isinstance(raw_input, dict):
        return {**raw_input, "lastEventId": last_event_id}
    if raw_input is None:
        return {"lastEventId": last_event_id}
    return raw_input


async def handle(session: Session, message: dict[str, Any]) -> None:
    method = message["method"]
    if method == "connectionParams":
        _connection_params(session, message.get("data"))
        return
    request_id = message.get("id")
    if not _valid_id(request_id):
        session.metrics.bad_frames.inc("bad_id")
        session.refused("bad_frame", "request id too long or of the wrong type")
        problem = "is required" if request_id is None else "must be an integer or a string"
        session.send_connection_error(parse_error(f"`id` {problem}"))
        return
    if id_too_long(request_id, session.limits):
        session.metrics.bad_frames.inc("bad_id")
        session.refused("bad_frame", "request id too long or of the wrong type")
        limit = session.limits.max_id_chars
        session.send_connection_error(
            RpcError(ErrorCode.BAD_REQUEST, f"Request id too long (at most {limit} characters)")
        )
        return
    if method == "subscription.stop":
        sub = session.subscriptions.get((DIALECT, request_id))
        if sub is not None and session.stop_subscription((DIALECT, request_id)):
            session.transport.send(sub.envelope.ended(None)[0])
        return
    params = message.get("params")
    path = params.get("path") if isinstance(params, dict) else None
    envelope = TrpcEnvelope(request_id, message.get("jsonrpc") == "2.0", str(path)[:200])
    try:
        session.take_rate_token()
        if not isinstance(params, dict) or not isinstance(path, str):
            raise RpcError(ErrorCode.BAD_REQUEST, "params.path must be a string")
        raw_input = _merge_last_event_id(params.get("input"), params.get("lastEventId"))
        if method == "subscription":
            sub = await session.open_subscription((DIALECT, request_id), path, raw_input, envelope)
            session.transport.send(envelope.started())
            await sub.run()
            return
        dispatcher = session.dispatcher
        proc = dispatcher.lookup(path, Kind(method))
        result = await dispatcher.run(session.context(request_id), proc, raw_input)
    except Exception as exc:
        session.reply(envelope.error(to_rpc_error(exc)))
        return
    session.reply(envelope.event(None, result))


def _connection_params(session: Session, data: Any) -> None:
    """`{"method":"connectionParams","data":{...}}`: null or an object of strings."""
    if data is not None and (
        not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())
    ):
        session.reject_connection(parse_error("Invalid connection params shape"))
        return
    token = data.get("token") if data else None
    if token is None:
        return
    try:
        session.authenticate(token)
    except RpcError as exc:
        session.reject_connection(exc)
