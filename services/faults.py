"""Fault injection for tests; inert unless the start script arms it from its environment.

`ALERTWIRE_TEST_EXIT_AFTER_COMMIT=<marker>`: the process ends at once (`os._exit`, as abrupt as
SIGKILL: no reply, no publish, no clean-up) right after a PostgreSQL write batch holding an
event whose payload contains `<marker>` (an alert title, say) has committed, before this node
publishes or answers anything. That is the commit-then-die window cross-node delivery must
survive (tests/integration/test_cluster.py). Only scripts/start_websocket_server.py reads the
variable; nothing in the services does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from services.store import StoredEvent

EXIT_AFTER_COMMIT = "ALERTWIRE_TEST_EXIT_AFTER_COMMIT"
EXIT_CODE = 86

_exit_marker: bytes | None = None


def arm(env: Mapping[str, str]) -> None:
    global _exit_marker
    marker = env.get(EXIT_AFTER_COMMIT)
    _exit_marker = marker.encode() if marker else None


def after_commit(events: Sequence[StoredEvent]) -> None:
    """Called by the store between a commit and its publish."""
    if _exit_marker is not None and any(_exit_marker in event.payload for event in events):
        os._exit(EXIT_CODE)
