"""The stores' cache of alerts as last committed, by id: the write path reads it to stage a
change without a round trip to the database. Both stores keep one (store_sqlite.py,
store_postgres.py).

A cached copy may be stale only when another writer shares the database (a cluster, or a
second process on the SQLite file). That is safe for writes, whose version check at commit
refuses a change staged on a stale copy (the store then forgets it and runs the batch again),
and `heard` keeps it short for reads: an event of another node names the alert's new version,
and an older copy is dropped. Versions only move forward, so "older" is always decidable.
"""

from __future__ import annotations

from collections import OrderedDict

from services.store import AlertRecord

CACHE_SIZE = 20_000


class AlertCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._records: OrderedDict[str, AlertRecord] = OrderedDict()
        # Alerts whose copy an event made stale: a read older than this version that was
        # under way meanwhile is not kept.
        self._floors: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, alert_id: str) -> AlertRecord | None:
        return self._records.get(alert_id)

    def remember(self, record: AlertRecord) -> None:
        alert = record.alert
        floor = self._floors.get(alert.id)
        if floor is not None:
            if alert.version < floor:
                return  # read before a commit that an event has announced since
            del self._floors[alert.id]
        cached = self._records.get(alert.id)
        if cached is not None and cached.alert.version > alert.version:
            return  # a read that began before a commit finished after it: keep the newer
        self._records[alert.id] = record
        self._records.move_to_end(alert.id)
        while len(self._records) > self.size:
            self._records.popitem(last=False)

    def forget(self, alert_id: str) -> None:
        self._records.pop(alert_id, None)

    def heard(self, alert_id: str, version: int) -> None:
        """An alert's committed version, from an event of any writer: an older copy is
        dropped. Dropped, not replaced: an event carries the alert but not the store's
        bookkeeping (due and response times)."""
        cached = self._records.get(alert_id)
        if cached is not None and cached.alert.version >= version:
            return  # this writer's own commit, or one it has read already
        self._records.pop(alert_id, None)
        self._floors[alert_id] = max(version, self._floors.get(alert_id, 0))
        self._floors.move_to_end(alert_id)
        while len(self._floors) > self.size:
            self._floors.popitem(last=False)
