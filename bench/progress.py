"""Shared memory between the benchmark's processes: the publish command and delivery progress.

"As fast as taken" means the publisher never gets more than `window` alerts ahead of the
slowest subscriber, so no server's send queue overflows and every server is measured at the
rate its subscribers actually receive. Each load-generator process writes the smallest count
of distinct events any of its live subscribers has received; any publisher (the mutation
client, or a loop inside the server process for --mode service) reads them.

Layout, int64 slots: command, events, rate (milli-alerts/s, 0 = saturate), window, published,
publisher done, publisher errors, start time (us), then one progress slot per worker.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time

COMMAND, EVENTS, RATE_MILLI, WINDOW, PUBLISHED, DONE, ERRORS, STARTED_US = range(8)
HEADER = 8
CMD_WAIT, CMD_START, CMD_STOP = 0, 1, 2
# tmpfs: the block never touches a disk. The file is created by mkstemp (0600, unique name).
SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108


class Progress:
    """A small file mapped into every process (tmpfs where there is one). A plain mapped file
    rather than multiprocessing.shared_memory: the server process is no multiprocessing child,
    and Python 3.11's resource tracker would unlink a block it merely attached to."""

    def __init__(self, path: str, workers: int, owner: bool) -> None:
        self.path = path
        self.workers = workers
        self._owner = owner
        size = 8 * (HEADER + max(workers, 1))
        with open(path, "r+b") as handle:
            self._map = mmap.mmap(handle.fileno(), size)
        self.slots = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, workers: int) -> Progress:
        fd, path = tempfile.mkstemp(prefix="alertwire-bench-", dir=SHM_DIR)
        with os.fdopen(fd, "wb") as handle:
            handle.write(bytes(8 * (HEADER + max(workers, 1))))
        return cls(path, workers, owner=True)

    @classmethod
    def attach(cls, path: str, workers: int) -> Progress:
        return cls(path, workers, owner=False)

    @property
    def name(self) -> str:
        return self.path

    def set_worker(self, index: int, delivered: int) -> None:
        self.slots[HEADER + index] = delivered

    def slowest(self) -> int:
        """Events received by the slowest subscriber (of all workers); huge when none."""
        if self.workers == 0:
            return 1 << 62
        return min(self.slots[HEADER + i] for i in range(self.workers))

    def start(self, events: int, rate: float, window: int) -> None:
        self.slots[EVENTS] = events
        self.slots[RATE_MILLI] = round(rate * 1000)
        self.slots[WINDOW] = window
        self.slots[PUBLISHED] = 0
        self.slots[DONE] = 0
        self.slots[ERRORS] = 0
        self.slots[STARTED_US] = int(time.time() * 1e6)
        self.slots[COMMAND] = CMD_START

    def close(self) -> None:
        self.slots.release()
        self._map.close()
        if self._owner:
            os.unlink(self.path)


class Pacer:
    """When the next alert may go: at a fixed rate, and never more than `window` ahead of
    the slowest subscriber. `stalled` tells when the subscribers stopped taking events."""

    def __init__(self, progress: Progress | None, rate: float, window: int, stall_s: float) -> None:
        self.progress = progress
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.window = window
        self.stall_s = stall_s
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self._last_slowest = -1
        self._last_change = self.t0
        self._blocked = False

    def delay(self, published: int) -> float:
        """Seconds to wait before publishing alert number `published` (0 = now)."""
        now = time.monotonic()
        wait = 0.0
        if self.interval:
            wait = self.t0 + published * self.interval - now
        if self.progress is not None:
            slowest = self.progress.slowest()
            if slowest != self._last_slowest:
                self._last_slowest = slowest
                self._last_change = now
            self._blocked = published - slowest >= self.window
            if self._blocked:
                wait = max(wait, 0.0005)
        return wait

    def scheduled(self, published: int) -> float:
        """The wall-clock time alert number `published` is due: latency counts from here, so
        a publisher that falls behind its schedule is charged for it. When saturating (no
        schedule), now."""
        if not self.interval:
            return time.time()
        return self.wall0 + published * self.interval

    def stalled(self) -> bool:
        """Held back by the window, and no subscriber progress for `stall_s`."""
        return self._blocked and time.monotonic() - self._last_change > self.stall_s
