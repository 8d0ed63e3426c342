"""One live subscription on a connection, and the envelope its dialect wraps events in.

Hot path: a push source calls `Subscription.event(id, payload)` synchronously with a payload
encoded once for every subscriber. The envelope hands back the whole frame, built once per event
for every subscription with the same head (rpc.stream.SharedFrames), and the transport queues
those same bytes: per subscriber, a lookup and an append.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from rpc.errors import RpcError, to_rpc_error
from rpc.stream import PushStream, RawJSON, Tracked

if TYPE_CHECKING:
    from rpc.router import Procedure
    from rpc.session import Session


class Envelope(Protocol):
    def started(self) -> bytes:
        """The frame that announces the subscription (reply or `started`)."""

    def event(self, event_id: str | None, payload: bytes) -> bytes: ...

    def ended(self, error: RpcError | None) -> list[bytes]:
        """Frames for a subscription the server ends (finished, failed, access lost)."""


class Subscription:
    __slots__ = (
        "_by_kind",
        "_frame",
        "_send",
        "_task",
        "done",
        "envelope",
        "key",
        "params",
        "proc",
        "session",
        "source",
    )

    def __init__(
        self,
        session: Session,
        key: tuple[str, Any],
        proc: Procedure,
        params: BaseModel | None,
        source: AsyncIterator[Any],
        envelope: Envelope,
    ) -> None:
        self.session = session
        self.key = key
        self.proc = proc
        self.params = params
        self.source = source
        self.envelope = envelope
        self.done = False
        self._task: asyncio.Task[None] | None = None
        # Looked up once: event() runs per subscriber.
        self._send: Callable[[bytes], None] = session.transport.send
        self._frame: Callable[[str | None, bytes], bytes] = envelope.event
        # Both gauges go up here and down once, in _release.
        self._by_kind = session.metrics.subscriptions.child(session.transport_name, proc.path)
        self._by_kind.inc()
        session.metrics.subscriptions_open.inc()

    async def run(self) -> None:
        """Start delivery; call after the subscription was announced."""
        if self.done:
            return
        if isinstance(self.source, PushStream):
            try:
                await self.source.start(self)
            except Exception as exc:
                self.finish(to_rpc_error(exc))
        else:
            self._task = asyncio.create_task(self._drive(), name=f"sub-{self.proc.path}")

    # EventSink -----------------------------------------------------------------------------

    def event(self, event_id: str | None, payload: bytes) -> None:
        if not self.done:
            self._send(self._frame(event_id, payload))

    def end(self, error: RpcError | None = None) -> None:
        self.finish(error)

    # ending -------------------------------------------------------------------------------

    def finish(self, error: RpcError | None) -> None:
        """The server ends it: tell the client, release the source."""
        if self.done:
            return
        self.done = True
        self._release()
        self.session.subscription_ended(self)
        for frame in self.envelope.ended(error):
            self.session.transport.send(frame)

    def cancel(self) -> None:
        """The client stopped it, or the connection is gone: release quietly."""
        if self.done:
            return
        self.done = True
        self._release()

    def _release(self) -> None:
        """Called exactly once (finish and cancel set `done` first)."""
        self.session.metrics.subscriptions_open.dec()
        self._by_kind.dec()
        if isinstance(self.source, PushStream):
            self.source.close()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _drive(self) -> None:
        source = self.source
        try:
            async for item in source:
                if self.done:
                    break
                if isinstance(item, Tracked):
                    event_id: str | None = item.id
                    data = item.data
                else:
                    event_id, data = None, item
                payload = data.json if isinstance(data, RawJSON) else self.proc.dump_event(data)
                self.event(event_id, payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.finish(to_rpc_error(exc))
        else:
            self.finish(None)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
