"""A bounded queue in front of the model and request batching.

Every ``POST /predict`` request becomes a :class:`Job` (its files). One worker thread
takes the waiting jobs, up to ``max_batch_files`` files in all, and scores them in ONE
call of the scoring function (``Predictor.predict``, which packs the windows of all its
inputs into shared forward passes), then hands each job its own results, in order.
With ``max_batch_files=1`` each request is scored alone (one at a time).

Why a thread and not one process per request: the model is loaded once and the forward
passes of a batch share its weights; on a CPU the batch is what pays (one forward pass
of 32 windows costs far less than 32 of one window).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from ser_lightning.serving.limits import RequestRejected

log = logging.getLogger("ser_lightning.serving")


@dataclass
class Job:
    """One request's inputs, the future its results arrive on, and whether it was given up."""

    items: list
    future: Future = field(default_factory=Future)
    abandoned: bool = False


class BatchQueue:
    """Jobs in, results out; a bounded queue and one worker thread.

    Args:
        score: ``items -> results``, one result per item in order (e.g.
            ``Predictor.predict``); called from the worker thread only.
        max_batch_files: items per call of ``score`` across jobs (a single job larger
            than this is still scored whole, alone).
        max_queue: jobs waiting at once; :meth:`submit` refuses one more (503).
        batch_wait_seconds: wait up to this long for more jobs to fill a batch (0: none),
            only while requests come concurrently (the previous batch held more than
            one job): a lone client is never kept waiting.
    """

    def __init__(self, score: Callable[[list], list], max_batch_files: int = 32, max_queue: int = 64,
                 batch_wait_seconds: float = 0.0):
        self.score, self.max_batch_files, self.max_queue = score, int(max_batch_files), int(max_queue)
        self.batch_wait_seconds = float(batch_wait_seconds)
        self._jobs: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._last_jobs = 0  # jobs in the previous batch
        #: Calls of ``score`` and items scored (for /health and the benchmark).
        self.batches = self.items_scored = 0
        #: CPU time of the worker thread so far, seconds (``time.thread_time`` after each
        #: batch): the serial part of serving that one worker bounds (bench/serve_load.py).
        self.worker_cpu_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="ser-serve-model", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    def close(self) -> None:
        """Stop the worker after the batch in progress; jobs still waiting get 503."""
        with self._cond:
            self._closed = True
            left = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in left:
            _settle(job.future, exception=RequestRejected(503, "the server is shutting down"))
        self._thread.join(timeout=30)

    async def submit(self, items: list, timeout: float) -> list:
        """Queue ``items`` as one job and wait for their results.

        Raises:
            RequestRejected: 503 (the queue is full or the server is stopping), 504
                (no answer within ``timeout`` seconds; a job not yet started is dropped).
        """
        job = Job(list(items))
        with self._cond:
            if self._closed:
                raise RequestRejected(503, "the server is shutting down")
            if len(self._jobs) >= self.max_queue:
                raise RequestRejected(503, f"the server is busy ({self.max_queue} requests waiting): try again shortly")
            self._jobs.append(job)
            self._cond.notify()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            job.abandoned = True
            raise RequestRejected(504, f"no answer within the per-request timeout of {timeout:g} s (the server is overloaded "
                                       f"or the audio too long)") from None

    def _take(self) -> list[Job] | None:
        """The next batch of jobs (blocks); ``None`` once closed."""
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            batch, n = [], 0
            deadline = time.monotonic() + (self.batch_wait_seconds if self._last_jobs > 1 else 0.0)
            while True:
                while self._jobs and (not batch or n + len(self._jobs[0].items) <= self.max_batch_files):
                    job = self._jobs.popleft()
                    if job.abandoned:
                        continue
                    batch.append(job)
                    n += len(job.items)
                left = deadline - time.monotonic()
                if n >= self.max_batch_files or self._jobs or left <= 0 or self._closed:
                    self._last_jobs = len(batch)
                    return batch
                self._cond.wait(left)

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            jobs = [j for j in jobs if not j.abandoned]
            if not jobs:
                continue
            items = [item for job in jobs for item in job.items]
            try:
                results = self.score(items)
                if len(results) != len(items):
                    raise RuntimeError(f"the scorer returned {len(results)} results for {len(items)} inputs")
            except BaseException as exc:  # noqa: BLE001 - handed to each waiting request (answered as 500, logged)
                log.exception("scoring a batch of %d inputs failed", len(items))
                for job in jobs:
                    _settle(job.future, exception=exc)
                continue
            self.batches += 1
            self.items_scored += len(items)
            start = 0
            for job in jobs:
                part = results[start:start + len(job.items)]
                start += len(job.items)
                _settle(job.future, result=part)
            self.worker_cpu_seconds = time.thread_time()


def _settle(future: Future, result=None, exception: BaseException | None = None) -> None:
    """Set ``future``'s outcome unless its request gave up (timed out: cancelled) meanwhile."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled by asyncio.wait_for in the request's thread
        pass
