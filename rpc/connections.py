"""Live authenticated connections: who is online, for presence and `staffOnline`.

Transports call `add`/`update`/`remove`; readers ask `online_subjects(scope_id)`. Listeners are
called synchronously on every change (they must not block; schedule work instead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from rpc.context import Principal

Listener = Callable[[frozenset[str]], None]  # receives the hospitals whose presence changed

NON_STAFF_ROLES = frozenset({"service"})


class ConnectionRegistry:
    def __init__(self) -> None:
        self._by_conn: dict[str, Principal] = {}
        # (hospital, sub) -> number of live connections
        self._counts: Counter[tuple[str, str]] = Counter()
        self._per_user: Counter[str] = Counter()
        self._listeners: list[Listener] = []

    def __len__(self) -> int:
        return len(self._by_conn)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def add(self, conn_id: str, principal: Principal) -> None:
        self.remove(conn_id)
        self._by_conn[conn_id] = principal
        self._per_user[principal.sub] += 1
        if principal.role not in NON_STAFF_ROLES:
            for hospital in principal.hospitals:
                self._counts[(hospital, principal.sub)] += 1
        self._notify(principal.hospitals)

    update = add

    def remove(self, conn_id: str) -> None:
        principal = self._by_conn.pop(conn_id, None)
        if principal is None:
            return
        self._per_user[principal.sub] -= 1
        if self._per_user[principal.sub] <= 0:
            del self._per_user[principal.sub]
        if principal.role not in NON_STAFF_ROLES:
            for hospital in principal.hospitals:
                key = (hospital, principal.sub)
                self._counts[key] -= 1
                if self._counts[key] <= 0:
                    del self._counts[key]
        self._notify(principal.hospitals)

    def connections_of(self, sub: str) -> int:
        return self._per_user.get(sub, 0)

    def online_subjects(self, hospital_id: str) -> int:
        """Distinct staff (not service accounts) with a live connection that may see it."""
        return sum(1 for (hospital, _sub) in self._counts if hospital == hospital_id)

    def _notify(self, hospitals: frozenset[str]) -> None:
        for listener in list(self._listeners):
            listener(hospitals)
