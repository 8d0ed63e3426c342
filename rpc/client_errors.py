"""Malformed and refused requests in the log (CONTRACT 5a "Logs"): without a traceback, and
each kind at most once per window per client address, with a count of what was suppressed.

    errors = ClientErrorLog(logging.getLogger("alertwire.client_errors"),
                            count=metrics.client_errors.inc)
    errors.report("bad_frame", address, "invalid JSON")

Sans-I/O: the clock is injected and nothing runs between reports, so a key's suppressed count
is told on its first report after the window ("(N similar suppressed)"); a key that never
reports again keeps it untold, and `/metrics` (the `count` hook, called for every report,
logged or not) is where the full number is. Memory is bounded: keys are kept in least
recently reported order, quiet expired ones are dropped, and past `max_keys` the oldest go
(their untold counts with them).

`message` must be a fixed description chosen by the caller: never a request body, a token,
a header value or patient data. `kind` should be one of rpc.metrics.CLIENT_ERROR_KINDS (the
counter files anything else under "other"; the log line keeps it as given).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

LOGGER = "alertwire.client_errors"
MAX_ADDRESS_CHARS = 64  # an address from a proxy's header is the client's to choose


class _Window:
    __slots__ = ("opened", "suppressed")

    def __init__(self, opened: float) -> None:
        self.opened = opened
        self.suppressed = 0


class ClientErrorLog:
    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
        *,
        count: Callable[[str], None] | None = None,
    ) -> None:
        if window_s <= 0 or max_keys < 1:
            raise ValueError("window_s must be positive and max_keys at least 1")
        self.logger = logger
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        # Called with the kind for every report; settable later by whoever owns the metrics.
        self.count = count
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()

    def __len__(self) -> int:
        """Keys currently remembered."""
        return len(self._windows)

    def report(self, kind: str, address: str, message: str) -> None:
        if self.count is not None:
            self.count(kind)
        address = address[:MAX_ADDRESS_CHARS]
        key = (kind, address)
        now = self.clock()
        window = self._windows.get(key)
        if window is not None and now - window.opened < self.window_s:
            window.suppressed += 1
            self._windows.move_to_end(key)
            return
        untold = window.suppressed if window is not None else 0
        self._windows[key] = _Window(now)
        self._windows.move_to_end(key)
        self._forget(now)
        tail = f" ({untold} similar suppressed)" if untold else ""
        self.logger.info("%s from %s: %s%s", kind, address, message, tail)

    def _forget(self, now: float) -> None:
        windows = self._windows
        # The front is the least recently reported: while it is past its window with nothing
        # untold, remembering it changes nothing.
        while windows:
            oldest = next(iter(windows.values()))
            if oldest.suppressed or now - oldest.opened < self.window_s:
                break
            windows.popitem(last=False)
        while len(windows) > self.max_keys:
            windows.popitem(last=False)
