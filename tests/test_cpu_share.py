"""Decode threads follow the cores other processes leave free (core.cpu_share)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core import cpu_share
from core.cpu_share import FreeCores


def test_pinned_by_argument_or_environment(monkeypatch):
    assert FreeCores(pinned=1, max_threads=2).threads() == 1
    monkeypatch.setenv("SHIREN_DECODE_THREADS", "2")
    assert FreeCores(max_threads=2).threads() == 2
    monkeypatch.setenv("SHIREN_DECODE_THREADS", "0")
    assert FreeCores(max_threads=1).threads() == 1


def test_threads_drop_when_another_process_holds_a_core(monkeypatch):
    """Fake /proc readings: another process used a whole core over the interval → one thread; then it
    stops → both threads again."""
    ticks = iter([(0, 0), (100, 200), (100, 400)])  # (busy, total) jiffies of 2 CPUs
    monkeypatch.setattr(cpu_share, "_machine_busy_ticks", lambda: next(ticks))
    monkeypatch.setattr(cpu_share, "_own_ticks", lambda: 0)
    monkeypatch.setattr(cpu_share.os, "cpu_count", lambda: 2)
    fc = FreeCores(max_threads=2, interval_s=0.0)  # the first reading, at construction
    assert fc.threads() == 1  # 100 busy jiffies of 100 per CPU: one core held
    assert fc.threads() == 2  # idle again


def test_own_work_is_not_counted_as_another_process(monkeypatch):
    ticks = iter([(0, 0), (180, 200)])
    own = iter([0, 180])
    monkeypatch.setattr(cpu_share, "_machine_busy_ticks", lambda: next(ticks))
    monkeypatch.setattr(cpu_share, "_own_ticks", lambda: next(own))
    monkeypatch.setattr(cpu_share.os, "cpu_count", lambda: 2)
    fc = FreeCores(max_threads=2, interval_s=0.0)
    assert fc.threads() == 2


def test_a_background_thread_of_this_process_counts_as_another_process(monkeypatch):
    """Fake readings: this process used 180 of 200 jiffies, 90 of them in a background thread (a
    feedback round): that thread holds a core, so one decode thread."""
    ticks = iter([(0, 0), (180, 200)])
    own = iter([0, 180])
    bg = iter([{7: 10}, {7: 100}])
    monkeypatch.setattr(cpu_share, "_machine_busy_ticks", lambda: next(ticks))
    monkeypatch.setattr(cpu_share, "_own_ticks", lambda: next(own))
    monkeypatch.setattr(cpu_share, "_background_ticks", lambda: next(bg))
    monkeypatch.setattr(cpu_share.os, "cpu_count", lambda: 2)
    fc = FreeCores(max_threads=2, interval_s=0.0)
    assert fc.threads() == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_background_thread_registers_and_reads_the_threads_own_cpu():
    import threading

    seen: dict[str, object] = {}
    stop = threading.Event()

    before = sys.getswitchinterval()

    def work():
        with cpu_share.background_thread():
            seen["switch"] = sys.getswitchinterval()
            seen["tid"] = threading.get_native_id()
            seen["inside"] = dict(cpu_share._background_ticks())
            t0 = time.thread_time()
            while time.thread_time() - t0 < 0.3:  # a real 0.3 s of this thread's CPU
                pass
            seen["after"] = dict(cpu_share._background_ticks())
        stop.set()

    th = threading.Thread(target=work)
    th.start()
    th.join(10)
    tid = seen["tid"]
    assert tid in seen["inside"] and seen["after"][tid] - seen["inside"][tid] >= 0.2 * cpu_share.CLK_TCK
    assert cpu_share._background_ticks() == {}  # unregistered on the way out
    assert seen["switch"] == pytest.approx(cpu_share.BACKGROUND_SWITCH_INTERVAL_S) and sys.getswitchinterval() == before


@pytest.mark.skipif(not sys.platform.startswith("linux") or cpu_share.usable_cores() < 2, reason="needs /proc and 2 cores")
def test_a_real_busy_process_is_seen():
    fc = FreeCores(interval_s=0.0)
    fc.others_busy()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.6)
        seen = fc.others_busy()
    finally:
        hog.kill()
        hog.wait()
    assert seen is not None and seen >= 0.5  # at least the hog's core (other work may add to it)


def test_engine_follows_the_policy():
    from core.testing import tiny_poet
    from core.types import PoemRequest

    poet = tiny_poet(seed=0)
    try:
        eng = poet.engine
        eng.cores = FreeCores(pinned=1)
        a = [p.text for p in poet.write(PoemRequest(form="七绝", seed=3, n=2))]
        assert eng.threads == 1
        eng.cores, eng.threads = FreeCores(pinned=2), 0
        b = [p.text for p in poet.write(PoemRequest(form="七绝", seed=3, n=2))]
        assert eng.threads == 2
        assert a == b  # the thread count never changes the poems
    finally:
        poet.close()
