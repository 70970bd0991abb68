"""Shared batching: requests from many threads or asyncio tasks decode together in one engine.

One background thread owns the engine. Callers submit requests and get futures; between decode
steps the thread admits waiting jobs (any form, any length) into free cache rows, drops cancelled
or timed-out ones, and resolves the finished. The queue is bounded: a full queue is a BusyError at
once, not a pile-up.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from core.types import BusyError, PoemRequest

SWEEP_INTERVAL_S = 0.05  # how often queued (not yet decoding) jobs are checked for timeout/cancel


class Batcher:
    def __init__(self, poet, max_queue: int = 256, default_timeout: float = 120.0):
        self.poet = poet
        self.max_queue = max_queue
        self.default_timeout = default_timeout
        self._waiting: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stop = False
        self.stats = {"steps": 0, "max_rows_in_step": 0, "jobs": 0}
        self._next_sweep = 0.0  # when to look for expired or cancelled waiting jobs again
        # Finished jobs are ranked on another thread: the decode loop spends its time in the C kernel
        # with the GIL released, so the two overlap.
        self._finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shiren-rank")
        self._thread = threading.Thread(target=self._loop, name="shiren-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: PoemRequest, timeout: float | None = None) -> Future:
        """A future of the poems. Bad requests raise RequestError here; a full queue raises BusyError."""
        req, job = self.poet.make_job(request)  # validation and planning happen in the caller's thread
        fut: Future = Future()
        deadline = time.monotonic() + (timeout if timeout is not None else self.default_timeout)
        job.payload = (req, fut, deadline)
        with self._cv:
            if self._stop:
                raise BusyError("the poet is shutting down")
            if len(self._waiting) + len(self.poet.engine.jobs) >= self.max_queue:
                raise BusyError("the poet is busy; please try again in a moment")
            self._waiting.append(job)
            self._cv.notify()
        return fut

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=5)
        self._finisher.shutdown(wait=True)  # finished jobs still get their poems

    def _expired(self, job, now: float) -> bool:
        _, fut, deadline = job.payload
        if fut.cancelled():
            return True
        if now > deadline:
            fut.set_exception(BusyError("the poet took too long; please try again"))
            return True
        return False

    def _loop(self) -> None:
        engine = self.poet.engine
        while True:
            with self._cv:
                while not self._stop and not self._waiting and not engine.jobs:
                    self._cv.wait()
                if self._stop:
                    for job in list(self._waiting):
                        job.payload[1].cancel()
                    self._waiting.clear()
                    break
                now = time.monotonic()
                if now >= self._next_sweep:  # a scan of the whole queue: not at every 1 ms step
                    self._next_sweep = now + SWEEP_INTERVAL_S
                    for job in [j for j in self._waiting if self._expired(j, now)]:
                        self._waiting.remove(job)
                admit = []
                while self._waiting and len(engine.free) - sum(j.n_rows for j in admit) >= self._waiting[0].n_rows:
                    admit.append(self._waiting.popleft())
            with self.poet._lock:
                admit = [job for job in admit if job.payload[1].set_running_or_notify_cancel()]
                if admit:
                    engine.admit_many(admit)
                    self.stats["jobs"] += len(admit)
                now = time.monotonic()
                for job in list(engine.jobs):
                    if self._expired(job, now):
                        engine.release(job)
                if not engine.jobs:
                    continue
                self.stats["steps"] += 1
                self.stats["max_rows_in_step"] = max(self.stats["max_rows_in_step"], sum(j.n_rows for j in engine.jobs))
                try:
                    finished = engine.step()
                except Exception as e:  # noqa: BLE001 - fail the jobs in flight, keep serving
                    for job in list(engine.jobs):
                        engine.release(job)
                        job.payload[1].set_exception(e)
                    continue
            for job in finished:  # ranking (the 格律 analysis of each candidate) beside the decoding
                self._finisher.submit(self._finish, job)

    def _finish(self, job) -> None:
        req, fut, _ = job.payload
        try:
            fut.set_result(self.poet.finish_job(req, job))
        except Exception as e:  # noqa: BLE001
            fut.set_exception(e)
