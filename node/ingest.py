"""The one path by which actions enter a node, from members (client API) and peers alike.

bytes → intrinsic validation (inline, or in worker processes for large batches) → store (group
commit) → results. Both HTTP layers call ``submit``; the store's commit listeners then propagate
what was newly stored.

Why worker *processes*: threads looked enough (libsodium drops the GIL while it verifies), but
each verify thread must take the GIL back between signatures, and with the event loop and the
decoder busy in Python it waits a whole switch interval each time: measured here, threads ran
no faster than one core. Small submissions are validated inline, which is cheaper than a round
trip to a worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from protocol import Action, ProtocolError
from protocol.action import decode_many
from protocol.limits import DEFAULT_ACTION_LIMITS, ActionLimits

from .config import Limits
from .metrics import Metrics
from .store import IngestResult, Store

log = logging.getLogger("coopnet.ingest")

INLINE_VALIDATION_MAX = 32  # smaller submissions are validated in the event loop
WORKER_PART = 250  # actions sent to a verify worker at a time


def validate_chunk(raws: Sequence[bytes], limits: ActionLimits | None) -> list[Action | ProtocolError]:
    """``None`` means the protocol defaults (their identity would not survive a pickle)."""
    return decode_many(tuple(raws), limits)


@dataclass
class IngestStats:
    accepted: int = 0
    known: int = 0
    pending: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def count(self, results: Sequence[IngestResult]) -> None:
        by_status = Counter(r.status for r in results)
        self.accepted += by_status["accepted"]
        self.known += by_status["known"]
        self.pending += by_status["pending"]
        if by_status["rejected"]:
            self.rejected.update(r.code.value for r in results if r.code is not None)


class Ingestor:
    def __init__(self, store: Store, limits: Limits, metrics: Metrics) -> None:
        self.store = store
        self.limits = limits
        self.metrics = metrics
        # The default object itself when unchanged: protocol keeps its derived limits precomputed.
        self.action_limits = (
            DEFAULT_ACTION_LIMITS
            if limits.max_action_bytes == DEFAULT_ACTION_LIMITS.max_action_bytes
            else ActionLimits(max_action_bytes=limits.max_action_bytes)
        )
        self.stats = IngestStats()
        self._pool: ProcessPoolExecutor | None = None

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Not fork: this process has SQLite and aiohttp threads that must not be cloned. A fork
            # server that has imported only the protocol forks the workers: each starts fast and
            # small (spawn would re-run the whole coopnet command, CLI and all, in every worker).
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["protocol"])
            # Workers ignore SIGINT: Ctrl-C on a terminal reaches the whole foreground process
            # group, and the node, not each worker, decides how to stop (it shuts the pool down).
            self._pool = ProcessPoolExecutor(
                self.limits.verify_workers, mp_context=ctx, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)
            )
        return self._pool

    def warm(self) -> None:
        """Start the verify workers now, not on the first large batch: a node that starts behind
        its peers would otherwise pay for their start in the middle of its first fetch."""
        if self.limits.verify_workers > 0:
            pool = self._workers()
            for _ in range(self.limits.verify_workers):
                pool.submit(decode_many, ())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def validate(self, raws: Sequence[bytes]) -> list[Action | ProtocolError]:
        n = self.limits.verify_workers
        if len(raws) < INLINE_VALIDATION_MAX or n == 0:
            return validate_chunk(raws, self.action_limits)
        loop = asyncio.get_running_loop()
        # Parts of at most WORKER_PART actions: each worker's memory follows the part it holds.
        size = min(-(-len(raws) // n), WORKER_PART)
        pool = self._workers()
        limits = None if self.action_limits is DEFAULT_ACTION_LIMITS else self.action_limits
        try:
            parts = await asyncio.gather(
                *(loop.run_in_executor(pool, decode_many, tuple(raws[i : i + size]), limits) for i in range(0, len(raws), size))
            )
        except BrokenProcessPool:
            # A worker died (OOM killer, a signal): start a fresh pool next time, do this one here.
            log.error("validation worker died; restarting the pool")
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return validate_chunk(raws, self.action_limits)
        return [x for part in parts for x in part]

    async def submit(self, raws: Sequence[bytes], *, origin: bytes | None = None, source: str = "client") -> list[IngestResult]:
        """Validate and store; one result per input, in order, each after its commit."""
        checked = await self.validate(raws)
        valid = [x for x in checked if isinstance(x, Action)]
        stored = iter(await self.store.ingest(valid, origin=origin))
        results: list[IngestResult] = []
        for x in checked:
            if isinstance(x, Action):
                results.append(next(stored))
            else:
                results.append(IngestResult(b"", "rejected", x.code, x.message))
        self.stats.count(results)
        accepted = sum(1 for r in results if r.status == "accepted")
        if accepted:
            self.metrics.actions_stored.labels(source).inc(accepted)
        for r in results:
            if r.status == "rejected":
                assert r.code is not None
                self.metrics.actions_rejected.labels(r.code.value, source).inc()
        return results
