"""CPU time and memory of a process, from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    cpu_s: float  # user + system
    rss_kib: int
    peak_rss_kib: int


def sample(pid: int) -> Sample:
    with open(f"/proc/{pid}/stat") as handle:
        # The command name may hold spaces; the fields after it are fixed.
        fields = handle.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss = peak = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return Sample(cpu, rss, peak)
