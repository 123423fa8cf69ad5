"""Is the machine quiet while a speed figure is taken? CPU time used by other processes (everything
outside this cell's session) and stolen by the hypervisor, and the load average, over the measurement.
A llama.cpp decode on a 2-core machine fell from about 140 to 2.2 tok/s while another job ran: such a
figure is flagged, not trusted. Linux /proc only; elsewhere the watch reports nothing."""
from __future__ import annotations

import os
import time

# a speed figure is flagged when others used this share of one core on average, or this much was stolen
MAX_OTHER_CORES = 0.25
MAX_STEAL_PCT = 5.0
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_line() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def _session_ticks() -> int:
    """utime + stime of every process in this session (the cell and any workers it started)."""
    sid, total = os.getsid(0), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after "(comm)": state ppid pgrp session ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total


def _loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


class CpuWatch:
    def __enter__(self) -> "CpuWatch":
        self.t0, self.cpu0, self.own0, self.load0 = time.time(), _cpu_line(), _session_ticks(), _loadavg()
        self.result: dict = {}
        return self

    def __exit__(self, *exc) -> None:
        cpu1, own1, wall = _cpu_line(), _session_ticks(), time.time() - self.t0
        if not self.cpu0 or not cpu1 or wall <= 0:
            return
        d = [b - a for a, b in zip(self.cpu0, cpu1)]
        # user nice system idle iowait irq softirq steal
        busy = sum(d[i] for i in (0, 1, 2, 5, 6) if i < len(d))
        total = sum(d[:8]) or 1
        steal = d[7] if len(d) > 7 else 0
        other = max(0.0, (busy - (own1 - self.own0)) / _TICK / wall)
        self.result = {
            "other_cores": round(other, 3),
            "steal_pct": round(100.0 * steal / total, 2),
            "loadavg_before": self.load0, "loadavg_after": _loadavg(),
            "seconds": round(wall, 2),
            "contended": other > MAX_OTHER_CORES or 100.0 * steal / total > MAX_STEAL_PCT,
        }
