"""How many threads a decode step should use: the cores other processes leave free.

The decode kernel and the torch decoder split each step over a team of threads that meet at a barrier
many times a step. When another process holds one of the two cores, the thread scheduled behind it
arrives late at every barrier and a step costs several times more than on one thread (measured:
docs/bench.md, "A busy machine"). So before a step the engine asks `FreeCores.threads()`: the usable
cores minus the CPU other processes used over the last interval, read from /proc/stat (the whole
machine) and /proc/self/stat (this process), at most every `interval_s`. Where /proc is missing it
answers the usable cores. SHIREN_DECODE_THREADS=N pins the count (N=0: adaptive, the default).

Work inside this process can hold a core too: a feedback round in the bot trains beside the poem
requests. A thread that runs such work inside `background_thread()` has its CPU counted as another
process's (read from /proc/self/task/<tid>/stat), so the decoder leaves its core to it instead of
meeting it at every barrier.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Another process counts as holding a core once it used this share of one over the interval.
BUSY_SHARE = 0.5


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _machine_busy_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            parts = f.readline().split()
    except OSError:
        return None
    vals = [int(x) for x in parts[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals) - idle, sum(vals)


_background: set[int] = set()  # native ids of this process's threads doing background work
_background_lock = threading.Lock()


# While background work shares the interpreter, the GIL is handed over this often instead of every
# 5 ms: a poem's decode loop takes the GIL back ~30 times (once a step), and each time it would wait up
# to the whole interval behind the round's Python code (measured: docs/bench.md, "A feedback round").
BACKGROUND_SWITCH_INTERVAL_S = 2e-4
_saved_switch: list[float] = []


@contextlib.contextmanager
def background_thread() -> Iterator[None]:
    """Count the CPU this thread uses meanwhile as another process's, and hand the GIL over more
    often while it runs (see the module doc)."""
    tid = threading.get_native_id()
    with _background_lock:
        if not _background:
            _saved_switch.append(sys.getswitchinterval())
            sys.setswitchinterval(min(BACKGROUND_SWITCH_INTERVAL_S, _saved_switch[-1]))
        _background.add(tid)
    try:
        yield
    finally:
        with _background_lock:
            _background.discard(tid)
            if not _background and _saved_switch:
                sys.setswitchinterval(_saved_switch.pop())


def _stat_ticks(path: str) -> int | None:
    """utime + stime from a /proc stat file, in jiffies (None: gone or no /proc)."""
    try:
        with open(path, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _thread_ticks(tid: int) -> int | None:
    """CPU of one of this process's threads."""
    return _stat_ticks(f"/proc/self/task/{tid}/stat")


def _background_ticks() -> dict[int, int]:
    with _background_lock:
        tids = list(_background)
    return {tid: t for tid in tids if (t := _thread_ticks(tid)) is not None}


def _own_ticks() -> int | None:
    """utime + stime of this process (all its threads), in jiffies."""
    return _stat_ticks("/proc/self/stat")


@dataclass
class FreeCores:
    """The thread count for the next steps, from the CPU other processes used lately."""

    max_threads: int = 0  # 0: the usable cores
    interval_s: float = 0.1

    pinned: int = -1  # > 0: always this many (-1: SHIREN_DECODE_THREADS, else adaptive)

    def __post_init__(self) -> None:
        self.max_threads = self.max_threads or usable_cores()
        if self.pinned < 0:
            env = os.environ.get("SHIREN_DECODE_THREADS", "").strip()
            self.pinned = int(env) if env.isdigit() else 0
        self._last: tuple[int, int, int] | None = None
        self._last_bg: dict[int, int] = {}
        self._threads = self.pinned or self.max_threads
        self.others_busy()  # the first reading: the next one, an interval on, compares against it
        self._last_t = time.monotonic()

    def others_busy(self) -> float | None:
        """Cores' worth of CPU that other processes used since the last reading (None: unknown yet)."""
        m, own = _machine_busy_ticks(), _own_ticks()
        if m is None or own is None:
            return None
        busy, total = m
        bg = _background_ticks()
        prev, self._last = self._last, (busy, total, own)
        prev_bg, self._last_bg = self._last_bg, bg
        if prev is None or total <= prev[1]:
            return None
        # Background threads' CPU since the last reading (a thread registered since counts from the next).
        bg_delta = sum(t - prev_bg[tid] for tid, t in bg.items() if tid in prev_bg)
        n_cpu = os.cpu_count() or 1
        wall_ticks = (total - prev[1]) / n_cpu  # jiffies of one CPU over the interval
        return max(0.0, ((busy - prev[0]) - (own - prev[2]) + bg_delta) / wall_ticks)

    def threads(self) -> int:
        """Usable cores minus those other processes hold, at least 1; re-read at most every interval."""
        if self.pinned:
            return self.pinned
        if self.max_threads <= 1:
            return 1
        now = time.monotonic()
        if now - self._last_t >= self.interval_s:
            self._last_t = now
            others = self.others_busy()
            if others is not None:
                held = int(others + (1 - BUSY_SHARE))  # a core counts as held from BUSY_SHARE of it
                self._threads = max(1, min(self.max_threads, self.max_threads - held))
        return self._threads
