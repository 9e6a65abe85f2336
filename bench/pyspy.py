"""py-spy on the server during a scenario, and its top functions by self and inclusive time.

``Profiler.record(name)`` attaches ``py-spy record --rate 200 --format raw --nolineno`` to
the server (``--subprocesses`` for several workers) for the duration of a ``with`` block,
keeps DIR/<name>.raw (collapsed stacks: ``frame;frame;... count``, flamegraph.pl input)
and writes DIR/<name>.txt: the 25 functions with the most samples on top of the stack
(self) and anywhere in it (inclusive, once per sample however deep the recursion).
py-spy's idle detection misses threads parked in C (a thread pool's queue, a condition,
the event loop's poll): samples whose top frame is one of ``IDLE`` are counted apart, and
shares are of the remaining, working samples.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TOP = 25
IDLE = frozenset({
    "_worker (concurrent/futures/thread.py)",  # a pool thread waiting for work
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
    "Runner.run (asyncio/runners.py)",  # uvloop polling, in C under asyncio.run
    "Connection._recv (multiprocessing/connection.py)",  # uvicorn's supervisor
})  # fmt: skip


def py_spy() -> str:
    """The py-spy beside this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


def summarize(raw: Path, title: str) -> str:
    """The top-25 tables of a collapsed-stack file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        samples = int(count)
        if frames[-1] in IDLE:
            idle[frames[-1]] += samples
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    waiting = ", ".join(f"{frame} {n}" for frame, n in idle.most_common())
    lines = [
        f"{title}: {total} working samples at 200 Hz ({total / 200:.1f} s of threads working)",
        f"idle samples left out: {sum(idle.values())} ({waiting or 'none'})",
        "",
    ]
    for label, counter in (("self", own), ("inclusive", inclusive)):
        lines += [f"top {TOP} by {label} time", f"{'samples':>8} {'share':>6}  function (file)"]
        for frame, samples in counter.most_common(TOP):
            lines.append(f"{samples:>8} {samples / max(total, 1):>6.1%}  {frame}")
        lines.append("")
    return "\n".join(lines)


class Profiler:
    """Records the server while a scenario runs, into ``directory`` (None: does nothing).

    ``pid`` gives the server's current process (it is restarted after a scenario that hangs).
    """

    def __init__(
        self, directory: Path | None, pid: Callable[[], int], subprocesses: bool, prefix: list[str]
    ) -> None:
        self.directory = directory
        self.command = [*prefix, py_spy()] if directory else []
        self.pid, self.subprocesses = pid, subprocesses
        if directory:
            directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def record(self, name: str) -> Iterator[None]:
        """Profile the server for the ``with`` block into <name>.raw and <name>.txt."""
        if self.directory is None:
            yield
            return
        raw, pid = self.directory / f"{name}.raw", self.pid()
        command = [*self.command, "record", "--pid", str(pid), "--rate", "200",
                   "--format", "raw", "--nolineno", "-o", str(raw)]  # fmt: skip
        if self.subprocesses:
            command.append("--subprocesses")
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)  # attached before the load starts
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
            if spy.returncode or not raw.exists():
                raise SystemExit(f"py-spy failed on {name}: {err.decode()[-500:]}")
            text = summarize(raw, f"{name} (pid {pid})")
            (self.directory / f"{name}.txt").write_text(text)
