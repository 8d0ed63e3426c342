"""Open-file budget: every connection holds a socket, so the connection caps must fit under the
process's file limit, or accept() fails with EMFILE and the event loop spends its time logging
the failures instead of serving. At start-up the soft limit is raised to the hard one; the
HTTP and unauthenticated pools (MAX_HTTP_CONNECTIONS, MAX_UNAUTHENTICATED_CONNECTIONS) keep
their sizes, and MAX_CONNECTIONS is lowered (with a warning) to what fits beside them, keeping
FD_RESERVE descriptors for the database, the listener and connections being refused."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from rpc.limits import Limits

log = logging.getLogger("alertwire.server")

FD_RESERVE = 256

GetLimit = Callable[[], tuple[int, int]]
SetLimit = Callable[[tuple[int, int]], None]


def _getrlimit() -> tuple[int, int]:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _setrlimit(limits: tuple[int, int]) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def fit_to_file_limit(
    limits: Limits, get: GetLimit = _getrlimit, set_: SetLimit = _setrlimit
) -> Limits:
    try:
        soft, hard = get()
    except (ImportError, OSError):  # no such limit on this platform
        return limits
    infinite = -1  # resource.RLIM_INFINITY
    if soft != hard:
        try:
            set_((hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == infinite or not limits.max_connections:
        return limits
    pools = limits.max_http_connections + limits.max_unauthenticated_connections
    usable = max(1, soft - FD_RESERVE - pools)
    if limits.max_connections <= usable:
        return limits
    log.warning(
        "MAX_CONNECTIONS %d does not fit the open-file limit %d beside %d HTTP and "
        "unauthenticated connections; serving at most %d",
        limits.max_connections,
        soft,
        pools,
        usable,
    )
    return replace(limits, max_connections=usable)
