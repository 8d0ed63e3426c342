"""The checks every call goes through, in the contract's order, for every dialect.

parse and request shape belong to the codecs; from there: method exists, authenticated,
params valid, allowed (role and hospital), then the procedure (CONTRACT 3c).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel

from rpc import log_context
from rpc.context import Context, Principal
from rpc.errors import ErrorCode, RpcError, method_not_found
from rpc.metrics import CallMetrics
from rpc.router import Kind, Procedure, Router

log = logging.getLogger("alertwire.calls")

# Outcomes that are the server's fault, logged at WARNING; every other call at DEBUG.
SERVER_FAULTS = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})


class Dispatcher:
    def __init__(self, router: Router, services: Any = None) -> None:
        self.router = router
        self.services = services
        # Set by the transport's state to its server's metrics; None counts nothing.
        self.calls: CallMetrics | None = None
        # Hears every authenticated call that passed the checks (presence: "away" is the
        # absence of calls); set by the server to the presence service's.
        self.on_call: Callable[[Principal], None] | None = None

    def lookup(self, path: Any, kind: Kind | None = None) -> Procedure:
        """The procedure at `path`; with `kind`, it must be of that kind (tRPC's methods)."""
        proc = self.router.get(path) if isinstance(path, str) else None
        if proc is None or (kind is not None and proc.kind is not kind):
            if self.calls is not None:  # the path is a label only if the router declares it
                self.calls.not_found(path if isinstance(path, str) else "")
            if proc is None:
                raise method_not_found(str(path)[:200] if isinstance(path, str) else "")
            raise method_not_found(path, kind.value if kind is not None else None)
        return proc

    @staticmethod
    def require_principal(ctx: Context) -> None:
        """The caller holds a valid, unexpired token, or UNAUTHORIZED (saying why a presented
        token was refused, when one was)."""
        if ctx.principal is None:
            raise ctx.auth_error or RpcError(ErrorCode.UNAUTHORIZED, "Authentication required")
        if ctx.principal.expired():
            raise RpcError(ErrorCode.UNAUTHORIZED, "Token expired")

    def prepare(self, ctx: Context, proc: Procedure, raw_input: Any) -> BaseModel | None:
        """Authenticated, params valid, allowed: raises RpcError at the first that fails."""
        if not proc.public:
            self.require_principal(ctx)
        params = proc.parse_input(raw_input)
        if proc.roles is not None and (
            ctx.principal is None or ctx.principal.role not in proc.roles
        ):
            allowed = ", ".join(sorted(proc.roles))
            raise RpcError(ErrorCode.FORBIDDEN, f"This procedure needs one of the roles: {allowed}")
        if ctx.principal is not None:
            proc.check_scopes(ctx, params)
            if self.on_call is not None:
                self.on_call(ctx.principal)
        return params

    async def run(self, ctx: Context, proc: Procedure, raw_input: Any) -> bytes:
        """`prepare`, then `call`: every query and mutation of every dialect and transport
        comes through here, so this is where it is timed and counted (by declared path and
        outcome, "ok" or the error's name) and logged (rpc.log_context: the call's lines say
        its procedure, connection and user)."""
        principal = ctx.principal
        bound = log_context.bind(
            connection_id=ctx.connection_id,
            user_id=principal.sub if principal is not None else None,
            procedure=proc.path,
        )
        start = time.perf_counter()
        outcome = "ok"
        try:
            return await self.call(ctx, proc, self.prepare(ctx, proc, raw_input))
        except Exception as exc:
            outcome = exc.code.name if isinstance(exc, RpcError) else "INTERNAL_SERVER_ERROR"
            raise
        finally:
            seconds = time.perf_counter() - start
            if self.calls is not None:
                self.calls.observe(proc.path, outcome, seconds)
            level = logging.WARNING if outcome in SERVER_FAULTS else logging.DEBUG
            if log.isEnabledFor(level):
                log.log(level, "call", extra={"duration_ms": seconds * 1000, "outcome": outcome})
            log_context.reset(bound)

    async def call(self, ctx: Context, proc: Procedure, params: BaseModel | None) -> bytes:
        """Run a query or mutation; returns the encoded output."""
        result = await (proc.func(ctx, params) if proc.input_model else proc.func(ctx))
        return proc.dump_output(result)

    async def open_subscription(
        self, ctx: Context, proc: Procedure, params: BaseModel | None
    ) -> AsyncIterator[Any]:
        """Call a subscription procedure: an async generator, or a coroutine that returns an
        async iterator (a PushStream is live from here)."""
        result = proc.func(ctx, params) if proc.input_model else proc.func(ctx)
        if inspect.isawaitable(result):
            result = await result
        if not hasattr(result, "__anext__"):
            raise TypeError(f"subscription {proc.path} did not return an async iterator")
        return result  # type: ignore[no-any-return]

    def new_context(self, **kwargs: Any) -> Context:
        return Context(services=self.services, **kwargs)
