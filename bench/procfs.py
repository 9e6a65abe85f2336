"""A server's process tree from /proc (Linux): resident memory and CPU time."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers under its supervisor)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.extend(process_tree(int(child)))
    return found


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def resident_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM summed over the process tree, in MB, and how many processes."""
    pids = process_tree(pid)
    return {
        "rss": sum(status_kb(p, "VmRSS") for p in pids) / 1024,
        "hwm": sum(status_kb(p, "VmHWM") for p in pids) / 1024,
        "processes": len(pids),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far."""
    total = 0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS
