"""The SQLite store: actions as received, chain heads, pending actions, equivocation proofs.

Theory of operation. One aiosqlite connection writes; another reads (WAL lets readers run beside
the writer). Every write goes through ``ingest``: callers hand in intrinsically valid actions and
await one result per action. A single writer task drains everything queued since its last
transaction into one *group*, decides each action's fate against the chain heads (protocol's
``place``), writes the whole group in one transaction and commits; only then are the callers'
futures resolved. So many concurrent one-action requests share one commit, and a caller is
never told ``accepted`` before its action is durable.

Each aiosqlite call costs a thread hop (~0.3 ms here), so a group costs a fixed handful of
statements whatever its size: known ids, chain heads, occupants and pending rows are fetched
with one set-based query each, and inserts go through ``executemany``.

Durability: WAL with ``synchronous=FULL`` (the default) fsyncs the WAL at every commit, so an
acknowledged action survives kill -9 and power loss. ``normal`` survives kill -9 of the node but
may lose the last commits on power loss or an OS crash; it is faster and documented as such.

Invariants kept by the writer, per (co-op, author) chain: ``actions`` holds seq 1..head without
holes; ``pending`` holds only seqs above head, and at head + 1 only an action whose prev is not
the head (a fork: it stays until its rival at that seq arrives, and the pair becomes a proof).
Appending promotes every linking pending successor in the same transaction, so the set of
stored actions and proofs does not depend on the order in which actions arrive.

Admission (``StorePolicy``; the node passes its ``[admission]`` and ``[limits]``, the defaults take
everything). It is decided here, in the group plan, because the plan already reads every chain
head the group touches: an author is *known* in a co-op when their chain there is stored (or was
started earlier in the same group), when they founded it or the genesis names them in
``founders``, or when the action starts their chain with ``member.apply``. Deciding it costs
nothing for a chain that exists, and the governance fold is never consulted. An action of an
unknown author is *held* in the ``quarantine`` table (bounded per author, per co-op and
node-wide; it expires), never served to peers, pushed or folded; when a chain starts, whatever
its author had held is run through the plan again (a *release*), so what a node stores does not
depend on whether an author's application arrived before or after their other actions. Byte
quotas are counted as actions are appended (``coops.bytes``, ``chains.bytes``); the pending area
is bounded per author, per co-op and node-wide, with a floor per co-op so that one co-op's
pending actions cannot deny another's. Blocked authors are refused before the store
(``node.ingest``); the store keeps the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiosqlite

from protocol import Action, EquivocationProof, ProtocolError, RejectCode, decode_action
from protocol.forkchoice import ChainPlan, Verdict
from protocol.messages import Head, Want
from protocol.reconcile import HeadSet

log = logging.getLogger("coopnet.store")

# Python's sqlite3 binds int, float and str directly but sends every bytes parameter through its
# adapter lookup, which fails twice (raising and clearing an AttributeError each time) before
# binding the bytes as they are. Ids, keys and raw actions are all bytes: measured under
# callgrind, that lookup cost more instructions than SQLite's own work for an insert. A
# registered adapter is found at the first step, and ``bytes.__bytes__`` returns the object itself.
sqlite3.register_adapter(bytes, bytes.__bytes__)

SCHEMA_VERSION = 4

# Each entry migrates from version i to i + 1; never edit a shipped entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE actions (
        pos         INTEGER PRIMARY KEY,      -- local arrival order, the pagination cursor
        id          BLOB NOT NULL UNIQUE,
        coop        BLOB NOT NULL,
        author      BLOB NOT NULL,
        seq         INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        raw         BLOB NOT NULL,            -- the exact bytes received
        received_at INTEGER NOT NULL,
        UNIQUE (coop, author, seq)
    );
    CREATE INDEX actions_by_coop ON actions (coop, pos);
    CREATE INDEX actions_by_kind ON actions (coop, kind, pos);
    CREATE TABLE chains (
        coop     BLOB NOT NULL,
        author   BLOB NOT NULL,
        head_seq INTEGER NOT NULL,
        head_id  BLOB NOT NULL,
        PRIMARY KEY (coop, author)
    ) WITHOUT ROWID;
    CREATE TABLE coops (
        id         BLOB PRIMARY KEY,
        name       TEXT NOT NULL,
        founder    BLOB NOT NULL,
        created_ts INTEGER NOT NULL,
        actions    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE pending (
        id          BLOB PRIMARY KEY,
        coop        BLOB NOT NULL,
        author      BLOB NOT NULL,
        seq         INTEGER NOT NULL,
        raw         BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        UNIQUE (coop, author, seq)
    );
    CREATE TABLE proofs (
        id          BLOB PRIMARY KEY,
        coop        BLOB NOT NULL,
        author      BLOB NOT NULL,
        seq         INTEGER NOT NULL,
        raw         BLOB NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX proofs_by_coop ON proofs (coop, author, seq);
    """,
    """
    CREATE TABLE forks (
        id          BLOB PRIMARY KEY,         -- an action displaced from its chain by an equivocation
        coop        BLOB NOT NULL,
        author      BLOB NOT NULL,
        seq         INTEGER NOT NULL,
        raw         BLOB NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX forks_by_chain ON forks (coop, author, seq);
    """,
    """
    ALTER TABLE coops ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE coops SET bytes = (SELECT COALESCE(SUM(length(raw)), 0) FROM actions WHERE actions.coop = coops.id);
    ALTER TABLE chains ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE chains SET bytes = (
        SELECT COALESCE(SUM(length(raw)), 0) FROM actions a WHERE a.coop = chains.coop AND a.author = chains.author
    );
    CREATE INDEX pending_by_age ON pending (received_at);
    CREATE TABLE quarantine (
        id          BLOB PRIMARY KEY,         -- an action of an author not known in its co-op
        coop        BLOB NOT NULL,
        author      BLOB NOT NULL,
        seq         INTEGER NOT NULL,
        raw         BLOB NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX quarantine_by_author ON quarantine (coop, author, seq);
    CREATE INDEX quarantine_by_age ON quarantine (received_at);
    CREATE TABLE blocked_authors (
        coop   BLOB NOT NULL,                 -- empty: every co-op
        author BLOB NOT NULL,
        reason TEXT NOT NULL,
        since  INTEGER NOT NULL,
        PRIMARY KEY (coop, author)
    ) WITHOUT ROWID;
    CREATE TABLE invites (
        hash    BLOB PRIMARY KEY,             -- SHA-256 of the token: the token itself is not kept
        note    TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,             -- 0: never
        used_by BLOB,                         -- the co-op founded with it
        used_at INTEGER
    );
    """,
    """
    CREATE TABLE blocked_nodes (
        node       BLOB PRIMARY KEY,          -- a peer node the operator refuses, in both directions
        reason     TEXT NOT NULL,
        blocked_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)

SYNCHRONOUS_MODES = ("full", "normal")
MAX_ASIDE_PER_AUTHOR = 64  # actions kept aside per chain after losing a fork (evidence, and ghosts to judge by)
APPLY_KIND = "member.apply"  # protocol.charter.APPLY: the action that makes a stranger known
ANY_COOP = b""  # blocked_authors.coop for a block in every co-op
MAX_OVER_QUOTA = 100_000  # chains remembered as refused for a quota (~10 MB at most)
HEAD_SETS_MAX_HEADS = 100_000  # chain heads kept for reconciliation between rounds, all co-ops together (~20 MB)


class StoreError(Exception):
    """The store cannot do its job (disk full, corrupt file, newer schema)."""


@dataclass(frozen=True, slots=True)
class StorePolicy:
    """What the store takes. The defaults take every valid action (bounded only by
    ``max_pending``); ``node.admission.store_policy`` builds the node's from its config."""

    hold_unknown: bool = False  # quarantine actions of authors not known in their co-op
    quarantine_per_author: int = 4
    quarantine_per_coop: int = 256
    max_quarantine: int = 1024
    quarantine_ms: int = 3_600_000
    max_pending_per_coop: int = 0  # 0: bounded by max_pending alone
    max_pending_per_author: int = 0
    pending_floor: int = 0  # a co-op holding fewer pending actions is never refused for max_pending
    pending_ms: int = 0  # 0: pending actions never expire
    quota_author_bytes: int = 0  # 0: no quota
    quota_coop_bytes: int = 0
    quota_node_bytes: int = 0

    @property
    def quotas(self) -> bool:
        return bool(self.quota_author_bytes or self.quota_coop_bytes or self.quota_node_bytes)


def hold_reason(policy: StorePolicy) -> str:
    return (
        "unknown author: waiting for their application (member.apply) in this co-op; held here for at most "
        f"{policy.quarantine_ms // 1000} s, not replicated"
    )


# One action's result: fork choice's verdict itself (the same fields; the store adds the status
# "held"), so that the one tuple built per action received is not copied into a second one.
IngestResult = Verdict


def _complete(raw: bytes) -> bool:
    """Whether stored bytes are an action a peer accepts as is (not an envelope known only from an
    equivocation proof, without the body its kind needs)."""
    try:
        decode_action(raw, check_signature=False)
    except ProtocolError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class StoredAction:
    pos: int | None  # None while pending
    raw: bytes
    status: str  # stored | pending | held (quarantine) | forked (displaced from its chain by an equivocation)
    received_at: int

    def action(self) -> Action:
        # Stored bytes were validated on the way in; skip the signature on the way out. An action
        # kept aside may be known only from an equivocation proof, which carries no bodies: a
        # displaced action is never judged, so its envelope is all the fold needs.
        return decode_action(self.raw, check_signature=False, in_proof=self.status == "forked")


@dataclass(frozen=True, slots=True)
class CoopRow:
    id: bytes
    name: str
    founder: bytes
    created_ts: int
    actions: int


@dataclass(frozen=True, slots=True)
class ChainRow:
    author: bytes
    head_seq: int
    head_id: bytes
    pending: int


@dataclass(frozen=True, slots=True)
class ProofRow:
    id: bytes
    coop: bytes
    author: bytes
    seq: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What readiness needs to know about the writer (``Store.health``)."""

    open: bool
    writer_alive: bool
    commit_running_s: float  # how long the group commit now running has taken; 0 between commits
    queued: int  # submissions waiting for the next group
    groups_committed: int


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: bytes
    coop: bytes
    author: bytes
    seq: int
    received_at: int
    reason: str  # why it waits: a gap below it, or a fork waiting for its rival


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    bytes: int
    schema: int
    actions: int
    integrity: str


@dataclass(frozen=True, slots=True)
class WaitingRow:
    """A held (quarantined) or pending action, with why it waits and until when."""

    id: bytes
    coop: bytes
    author: bytes
    seq: int
    kind: str
    size: int
    received_at: int
    expires_at: int | None  # None: never
    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class BlockRow:
    coop: bytes | None  # None: every co-op
    author: bytes
    reason: str
    since: int


@dataclass(frozen=True, slots=True)
class BlockOutcome:
    """What ``block_author`` did: a new block or a new reason, and the waiting actions it dropped."""

    added: bool  # False: the block was there already (its reason is replaced)
    reason_was: str | None  # the reason it replaced (None when added)
    held: int  # quarantined actions of the author dropped with it
    pending: int  # pending actions of the author dropped with it


@dataclass(frozen=True, slots=True)
class InviteRow:
    hash: bytes
    note: str
    created: int
    expires: int  # 0: never
    used_by: bytes | None
    used_at: int | None


@dataclass(frozen=True, slots=True)
class Usage:
    """What the store holds against its bounds (``/api/v1/node``, metrics, admin)."""

    bytes: int
    coop_bytes: Mapping[bytes, int]  # read-only views of copies
    held: int
    held_by_coop: Mapping[bytes, int]
    pending: int
    pending_by_coop: Mapping[bytes, int]
    blocked: int


@dataclass(slots=True)
class _Job:
    actions: Sequence[Action]
    proofs: Sequence[EquivocationProof]
    origin: bytes | None  # the peer node it came from, None for the client API
    future: asyncio.Future[Any]
    released: bool = False  # actions taken out of the quarantine: their authors became known
    invite: bytes | None = None  # a genesis in this job founds a co-op only with this invite (its hash)
    call: Callable[[aiosqlite.Connection], Awaitable[Any]] | None = None  # a write of its own (admin, expiry)


@dataclass(frozen=True, slots=True)
class Committed:
    """What one group commit added, for whoever propagates it (gossip)."""

    actions: list[tuple[Action, bytes | None]]  # newly stored, with the peer it came from
    proofs: list[tuple[bytes, bytes, bytes | None]]  # (coop, proof encoding, origin), newly stored
    displaced: frozenset[bytes] = frozenset()  # co-ops where a fork replaced stored actions


ChainKey = tuple[bytes, bytes]


class Store:
    """Open with ``await Store.open(path, ...)``; close with ``await store.close()``."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        *,
        clock_ms: Callable[[], int],
        max_pending: int,
        max_group: int,
        policy: StorePolicy | None = None,
    ) -> None:
        self.path = path
        self._w = writer
        self._r = reader
        self._clock_ms = clock_ms
        self.max_pending = max_pending
        self.max_group = max_group
        self.policy = policy or StorePolicy()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._coops: set[bytes] = set()
        self._pending_count = 0
        # Admission's counters, kept in memory so that the plan decides without reading them;
        # reloaded from the tables after every write that is not a group (admin, expiry).
        self._pending_by_coop: dict[bytes, int] = {}
        self._held_count = 0
        self._held_by_coop: dict[bytes, int] = {}
        self._coop_bytes: dict[bytes, int] = {}
        self._bytes_total = 0
        self._founders: dict[bytes, frozenset[bytes]] = {}  # co-op -> its genesis author and founders
        self.blocked: frozenset[tuple[bytes, bytes]] = frozenset()  # (co-op or ANY_COOP, author)
        # Chains whose next action was refused for a quota: gossip does not fetch their extensions
        # again (each would be signature-checked only to be refused, every round). Forgotten when
        # stored bytes are recounted (a fork may have freed some) and at restart (quotas may change).
        self._over_quota: set[ChainKey] = set()
        self.released_total = 0  # held actions run through the plan again once their author was known
        self._releases: set[asyncio.Future[Any]] = set()
        self._has_forks = False  # while the forks table is empty, nothing is looked up in it
        # Reconciliation reads every head of a co-op each round, on both sides: kept between
        # rounds until a commit moves one (the epoch), within HEAD_SETS_MAX_HEADS over all co-ops.
        self._heads_epoch: dict[bytes, int] = {}
        self._head_sets: OrderedDict[bytes, tuple[int, HeadSet]] = OrderedDict()
        self._head_sets_size = 0
        self._writer_task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[Committed], None]] = []
        self._closed = False
        self.groups_committed = 0
        self.actions_committed = 0
        self._group_started: float | None = None  # monotonic time the running group commit began

    # ---- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        synchronous: str = "full",
        clock_ms: Callable[[], int],
        max_pending: int = 10_000,
        max_group: int = 4096,
        policy: StorePolicy | None = None,
    ) -> Store:
        if synchronous not in SYNCHRONOUS_MODES:
            raise StoreError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _configure(writer, synchronous)
            await _migrate(writer, path)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await _configure(reader, synchronous)
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await writer.close()
            raise
        store = cls(path, writer, reader, clock_ms=clock_ms, max_pending=max_pending, max_group=max_group, policy=policy)
        async with writer.execute("SELECT id FROM coops") as cur:
            store._coops = {row[0] for row in await cur.fetchall()}
        await store._load_counters(writer)
        async with writer.execute("SELECT EXISTS (SELECT 1 FROM forks)") as cur:
            store._has_forks = bool((await cur.fetchone())[0])  # type: ignore[index]
        store._writer_task = asyncio.create_task(store._writer_loop(), name="store-writer")
        return store

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(StoreError("store closed"))
        await self._r.close()
        await self._w.close()

    # ---- writing -----------------------------------------------------------------------------

    async def ingest(self, actions: Sequence[Action], *, origin: bytes | None = None, invite: bytes | None = None) -> list[IngestResult]:
        """Store intrinsically valid actions; one result per action, after its commit. ``invite``:
        a genesis among them founds its co-op only if this invite (its hash) is unused and unexpired."""
        if not actions:
            return []
        job = _Job(actions, (), origin, asyncio.get_running_loop().create_future(), invite=invite)
        return (await self._submit(job))[0]  # type: ignore[no-any-return]

    async def ingest_proofs(self, proofs: Sequence[EquivocationProof], *, origin: bytes | None = None) -> list[bool]:
        """Store verified equivocation proofs; True for each one that was new here."""
        if not proofs:
            return []
        return (await self._submit(_Job((), proofs, origin, asyncio.get_running_loop().create_future())))[1]  # type: ignore[no-any-return]

    async def _submit(self, job: _Job) -> Any:
        if self._closed:
            raise StoreError("store closed")
        self._queue.put_nowait(job)
        return await job.future

    async def _write(self, call: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> Any:
        """Run ``call`` on the writer in a transaction of its own, between groups."""
        return await self._submit(_Job((), (), None, asyncio.get_running_loop().create_future(), call=call))

    async def _writer_loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            calls: list[_Job] = []
            if jobs[0].call is not None:
                calls, jobs = jobs, []
            size = sum(len(j.actions) + len(j.proofs) for j in jobs)
            while size < self.max_group and not self._queue.empty():
                job = self._queue.get_nowait()
                if job.call is not None:
                    calls.append(job)
                    continue
                jobs.append(job)
                size += len(job.actions) + len(job.proofs)
            self._group_started = time.monotonic()  # readiness: a group or call that never ends is a stuck writer
            try:
                if jobs:
                    await self._run_group(jobs)
                for job in calls:
                    await self._run_call(job)
            finally:
                self._group_started = None

    async def _run_group(self, jobs: list[_Job]) -> None:
        try:
            results, proof_flags, committed, started = await self._commit_group(jobs)
        except asyncio.CancelledError:
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(StoreError("store closed"))
            raise
        except Exception as e:  # the disk, not the input: fail this group, keep serving
            log.exception("group commit failed")
            with contextlib.suppress(Exception):
                await self._w.rollback()
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(StoreError(f"could not commit: {e}"))
            return
        if started and self._held_count:
            # Queued before the callers hear back: whoever waits for releases_done sees it.
            try:
                await self._release(started)
            except asyncio.CancelledError:
                _answer(jobs, results, proof_flags)  # committed: the callers hear so, whatever happens next
                raise
            except Exception:  # the disk: what was held stays held until it expires (a resend is taken)
                log.exception("could not read the quarantine to release it")
        _answer(jobs, results, proof_flags)
        if committed.actions or committed.proofs or committed.displaced:
            for listener in self.listeners:
                try:
                    listener(committed)
                except Exception:
                    log.exception("commit listener failed")

    async def _run_call(self, job: _Job) -> None:
        assert job.call is not None
        w = self._w
        try:
            await w.execute("BEGIN IMMEDIATE")
            try:
                out = await job.call(w)
                counters = await _read_counters(w)  # as the transaction leaves them: nothing awaits after the commit
                await w.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await w.execute("ROLLBACK")
                raise
            self._set_counters(counters)
        except asyncio.CancelledError:
            if not job.future.done():
                job.future.set_exception(StoreError("store closed"))
            raise
        except Exception as e:
            log.exception("store write failed")
            if not job.future.done():
                job.future.set_exception(StoreError(f"could not commit: {e}"))
            return
        if not job.future.done():
            job.future.set_result(out)

    async def _release(self, started: list[ChainKey]) -> None:
        """Chains just started: run what their authors had in the quarantine through the plan again."""
        rows = await _rows_in(self._w, "SELECT raw FROM quarantine WHERE (coop, author)", started)
        if not rows:
            return
        actions = [decode_action(raw, check_signature=False) for (raw,) in rows]  # validated on the way in
        self.released_total += len(actions)
        job = _Job(actions, (), None, asyncio.get_running_loop().create_future(), released=True)
        self._releases.add(job.future)
        job.future.add_done_callback(self._released)
        self._queue.put_nowait(job)

    def _released(self, f: asyncio.Future[Any]) -> None:
        self._releases.discard(f)
        if not f.cancelled() and f.exception() is not None:
            log.error("releasing held actions failed: %s", f.exception())

    async def releases_done(self) -> None:
        """Wait until every release under way (and any it led to) is committed."""
        for _ in range(1000):  # bounded: each round is one committed group
            if not self._releases:
                return
            await asyncio.gather(*list(self._releases), return_exceptions=True)

    async def _commit_group(self, jobs: list[_Job]) -> tuple[list[IngestResult], list[bool], Committed, list[ChainKey]]:
        now = self._clock_ms()
        w = self._w
        group = [a for job in jobs for a in job.actions]
        proofs = [(p, job.origin) for job in jobs for p in job.proofs]
        await w.execute("BEGIN IMMEDIATE")
        try:
            plan = await _GroupPlan.build(w, group, jobs, self, now)
            proof_flags = await plan.add_proofs(w, proofs)
            await plan.write(w, now)
            # Counted inside the transaction (it sees its own writes), kept only once committed:
            # nothing awaits between the commit and the answer.
            held = await _count_by_coop(w, "quarantine") if plan.new_held or plan.released else None
            coop_bytes = await _coop_bytes(w) if plan.resync_bytes else None
            await w.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await w.execute("ROLLBACK")
            raise
        self._coops.update(plan.new_coops)
        for g in plan.new_coops.values():
            self._founders[g.id] = _founders_of(g)
        self._pending_count = plan.pending_count
        for coop, n in plan.pending_delta().items():
            self._pending_by_coop[coop] = self._pending_by_coop.get(coop, 0) + n
        if held is not None:
            self._held_by_coop, self._held_count = held, sum(held.values())
        for coop, n in plan.coop_added.items():
            self._coop_bytes[coop] = self._coop_bytes.get(coop, 0) + n
            self._bytes_total += n
        if coop_bytes is not None:
            self._coop_bytes, self._bytes_total = coop_bytes, sum(coop_bytes.values())
            self._over_quota.clear()
        if len(self._over_quota) + len(plan.over_quota) > MAX_OVER_QUOTA:
            self._over_quota.clear()  # a bound on memory; the price is one more refusal each
        self._over_quota |= plan.over_quota
        self._has_forks = self._has_forks or bool(plan.demotions or plan.new_aside)
        for coop in {coop for coop, _author in plan.dirty_heads}:
            self._heads_epoch[coop] = self._heads_epoch.get(coop, 0) + 1
            self._forget_head_set(coop)
        self.groups_committed += 1
        self.actions_committed += len(plan.appends)
        origins = {a.id: job.origin for job in jobs for a in job.actions}
        unaside = set(plan.unaside)  # once, not once per append
        committed = Committed(
            [(a, origins.get(a.id)) for a in plan.appends],
            list(
                {
                    pid: (coop, raw, plan.proof_origins.get(pid)) for pid, coop, _a, _s, raw in plan.proofs if pid in plan.new_proof_ids
                }.values()
            ),
            # Co-ops whose chains changed under what was folded: a fork replaced stored actions, or
            # took some back from aside. Their folds are rebuilt from the store.
            frozenset(coop for coop, _author, _seq in plan.demotions)
            | ({a.coop for a in plan.appends if a.id in unaside} if unaside else set()),
        )
        return plan.results, proof_flags, committed, plan.started

    # ---- admission's counters ------------------------------------------------------------------

    async def _load_counters(self, conn: aiosqlite.Connection) -> None:
        self._set_counters(await _read_counters(conn))

    def _set_counters(self, counters: tuple[dict[bytes, int], dict[bytes, int], dict[bytes, int], frozenset[tuple[bytes, bytes]]]) -> None:
        pending, held, coop_bytes, blocked = counters
        self._pending_by_coop, self._pending_count = pending, sum(pending.values())
        self._held_by_coop, self._held_count = held, sum(held.values())
        self._coop_bytes, self._bytes_total = coop_bytes, sum(coop_bytes.values())
        self.blocked = blocked

    async def known_authors(self, keys: Iterable[ChainKey]) -> set[ChainKey]:
        """Which (co-op, author) pairs name an author known in that co-op here: a stored chain, or
        the co-op's founders (the same rule as the plan's, without an application to look at)."""
        asked = list(set(keys))
        out = {(c, a) for c, a in await _rows_in(self._r, "SELECT coop, author FROM chains WHERE (coop, author)", asked)}
        for coop, author in asked:
            if (coop, author) in out or coop not in self._coops:
                continue
            founders = self._founders.get(coop)
            if founders is None:
                rows = await self._all("SELECT raw FROM actions WHERE id = ?", (coop,))
                if not rows:
                    continue
                founders = self._founders[coop] = _founders_of(decode_action(rows[0][0], check_signature=False))
            if author in founders:
                out.add((coop, author))
        return out

    def hosts(self, coop: bytes) -> bool:
        """Whether ``coop``'s genesis is stored here."""
        return coop in self._coops

    def over_quota(self, coop: bytes, author: bytes) -> bool:
        """Whether this chain's next action was refused for a quota (see ``_over_quota``)."""
        return (coop, author) in self._over_quota

    def is_blocked(self, coop: bytes, author: bytes) -> bool:
        """On this node's block list, in ``coop`` or in every co-op (a set lookup: the ingest path
        asks it only while the list is not empty)."""
        return (ANY_COOP, author) in self.blocked or (coop, author) in self.blocked

    def usage(self) -> Usage:
        return Usage(
            self._bytes_total,
            MappingProxyType(dict(self._coop_bytes)),
            self._held_count,
            MappingProxyType(dict(self._held_by_coop)),
            self._pending_count,
            MappingProxyType(dict(self._pending_by_coop)),
            len(self.blocked),
        )

    @property
    def held_count(self) -> int:
        return self._held_count

    @property
    def pending_count(self) -> int:
        return self._pending_count

    @property
    def stored_bytes(self) -> int:
        return self._bytes_total

    # ---- admission: what an operator sees and does (the admin API calls these) ----------------

    async def held(self, coop: bytes | None = None, author: bytes | None = None, *, limit: int = 1000) -> list[WaitingRow]:
        """Quarantined actions (oldest first), each with why it is held and when it expires."""
        where, params = _scope_filter(coop, author)
        rows = await self._all(
            f"SELECT id, coop, author, seq, raw, received_at FROM quarantine {where} ORDER BY received_at, id LIMIT ?", [*params, limit]
        )
        reason = hold_reason(self.policy)
        out = []
        for i, c, au, q, raw, at in rows:
            out.append(
                WaitingRow(
                    i, c, au, q, decode_action(raw, check_signature=False).kind, len(raw), at, at + self.policy.quarantine_ms, reason, raw
                )
            )
        return out

    async def pending(self, coop: bytes | None = None, author: bytes | None = None, *, limit: int = 1000) -> list[WaitingRow]:
        """Pending actions (oldest first), each with the seq it waits for and when it expires."""
        where, params = _scope_filter(coop, author, "p.")
        rows = await self._all(
            "SELECT p.id, p.coop, p.author, p.seq, p.raw, p.received_at, COALESCE(c.head_seq, 0) FROM pending p "
            f"LEFT JOIN chains c ON c.coop = p.coop AND c.author = p.author {where} ORDER BY p.received_at, p.id LIMIT ?",
            [*params, limit],
        )
        ttl = self.policy.pending_ms
        out = []
        for i, c, au, q, raw, at, head in rows:
            reason = f"waiting for seq {head + 1} of its author's chain" if q > head + 1 else "a fork of its chain, waiting for its rival"
            out.append(
                WaitingRow(
                    i, c, au, q, decode_action(raw, check_signature=False).kind, len(raw), at, at + ttl if ttl else None, reason, raw
                )
            )
        return out

    async def purge_held(self, coop: bytes | None = None, author: bytes | None = None, *, ids: Sequence[bytes] | None = None) -> int:
        """Drop quarantined actions (all, or of one co-op and/or author, or these ids within that
        scope); returns how many."""
        where, params = _scope_filter(coop, author)
        if ids is None:
            return int(await self._write(lambda w: _rowcount(w, f"DELETE FROM quarantine {where}", params)))
        scope = "AND " + where.removeprefix("WHERE ") if where else ""

        async def purge(w: aiosqlite.Connection) -> int:
            n = 0
            for chunk in _chunks(list(ids)):
                n += await _rowcount(w, f"DELETE FROM quarantine WHERE id IN ({','.join('?' * len(chunk))}) {scope}", [*chunk, *params])
            return n

        return int(await self._write(purge))

    async def expire(self) -> tuple[int, int]:
        """Drop held and pending actions past their expiry; returns (held, pending) dropped."""
        now = self._clock_ms()
        p = self.policy

        async def call(w: aiosqlite.Connection) -> tuple[int, int]:
            held = await _rowcount(w, "DELETE FROM quarantine WHERE received_at < ?", (now - p.quarantine_ms,))
            pending = await _rowcount(w, "DELETE FROM pending WHERE received_at < ?", (now - p.pending_ms,)) if p.pending_ms else 0
            return held, pending

        out: tuple[int, int] = await self._write(call)
        if any(out):
            log.info("expired %d held and %d pending actions", *out)
        return out

    async def block_author(self, coop: bytes | None, author: bytes, reason: str = "") -> BlockOutcome:
        """Refuse ``author``'s actions (in ``coop``, or in every co-op) on this node from now on, and
        drop what they have held or pending here. What is stored stays: it is shared state."""
        at = self._clock_ms()
        c = ANY_COOP if coop is None else coop

        async def call(w: aiosqlite.Connection) -> BlockOutcome:
            async with w.execute("SELECT reason FROM blocked_authors WHERE coop = ? AND author = ?", (c, author)) as cur:
                row = await cur.fetchone()
            await w.execute(
                "INSERT INTO blocked_authors (coop, author, reason, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (coop, author) DO UPDATE SET reason = excluded.reason",
                (c, author, reason, at),
            )
            where, params = _scope_filter(coop, author)
            held = await _rowcount(w, f"DELETE FROM quarantine {where}", params)
            pending = await _rowcount(w, f"DELETE FROM pending {where}", params)
            return BlockOutcome(row is None, None if row is None else row[0], held, pending)

        out: BlockOutcome = await self._write(call)
        return out

    async def unblock_author(self, coop: bytes | None, author: bytes) -> bool:
        """Take a block off; False if there was none."""
        c = ANY_COOP if coop is None else coop
        return bool(await self._write(lambda w: _rowcount(w, "DELETE FROM blocked_authors WHERE coop = ? AND author = ?", (c, author))))

    async def blocked_authors(self) -> list[BlockRow]:
        rows = await self._all("SELECT coop, author, reason, since FROM blocked_authors ORDER BY since, author")
        return [BlockRow(c or None, a, r, t) for c, a, r, t in rows]

    async def top_authors(self, coops: Sequence[bytes], per_coop: int) -> dict[bytes, list[tuple[bytes, int]]]:
        """In each of ``coops``, the ``per_coop`` authors storing the most bytes, most first (what
        an operator compares with ``quota_author_bytes``). Reads the chains of those co-ops only."""
        out: dict[bytes, list[tuple[bytes, int]]] = {}
        if per_coop <= 0:
            return out
        for chunk in _chunks(list(coops)):
            marks = ",".join("?" * len(chunk))
            rows = await self._all(
                "SELECT coop, author, bytes FROM (SELECT coop, author, bytes, "
                "ROW_NUMBER() OVER (PARTITION BY coop ORDER BY bytes DESC, author) AS r "
                f"FROM chains WHERE coop IN ({marks})) WHERE r <= ? ORDER BY coop, r",
                [*chunk, per_coop],
            )
            for coop, author, size in rows:
                out.setdefault(coop, []).append((author, size))
        return out

    async def add_invite(self, token_hash: bytes, *, expires: int = 0, note: str = "") -> None:
        """Record an invite (the SHA-256 of its token): it lets one genesis found a co-op here
        while ``founding = "invite"``. ``expires``: ms since the epoch, 0 for never."""
        at = self._clock_ms()
        await self._write(
            lambda w: w.execute("INSERT INTO invites (hash, note, created, expires) VALUES (?, ?, ?, ?)", (token_hash, note, at, expires))
        )

    async def invites(self) -> list[InviteRow]:
        rows = await self._all("SELECT hash, note, created, expires, used_by, used_at FROM invites ORDER BY created, hash")
        return [InviteRow(*r) for r in rows]

    async def revoke_invite(self, token_hash: bytes) -> bool:
        return bool(await self._write(lambda w: _rowcount(w, "DELETE FROM invites WHERE hash = ? AND used_by IS NULL", (token_hash,))))

    # ---- reading -----------------------------------------------------------------------------

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self._r.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def get_action(self, action_id: bytes) -> StoredAction | None:
        rows = await self._all("SELECT pos, raw, received_at FROM actions WHERE id = ?", (action_id,))
        if rows:
            return StoredAction(rows[0][0], rows[0][1], "stored", rows[0][2])
        rows = await self._all("SELECT raw, received_at FROM pending WHERE id = ?", (action_id,))
        if rows:
            return StoredAction(None, rows[0][0], "pending", rows[0][1])
        rows = await self._all("SELECT raw, received_at FROM forks WHERE id = ?", (action_id,))
        if rows:
            return StoredAction(None, rows[0][0], "forked", rows[0][1])
        rows = await self._all("SELECT raw, received_at FROM quarantine WHERE id = ?", (action_id,))
        if rows:
            return StoredAction(None, rows[0][0], "held", rows[0][1])
        return None

    async def held_by_ids(self, coop: bytes, ids: Sequence[bytes]) -> list[Action]:
        """The actions of ``coop`` among ``ids`` held in quarantine (strangers' actions)."""
        out: list[Action] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), 250):
            marks = ",".join("?" * len(chunk))
            rows = await self._all(f"SELECT raw FROM quarantine WHERE coop = ? AND id IN ({marks})", [coop, *chunk])
            out.extend(decode_action(raw, check_signature=False) for (raw,) in rows)
        return out

    async def list_coops(self) -> list[CoopRow]:
        rows = await self._all("SELECT id, name, founder, created_ts, actions FROM coops ORDER BY created_ts, id")
        return [CoopRow(*r) for r in rows]

    async def get_coop(self, coop: bytes) -> CoopRow | None:
        rows = await self._all("SELECT id, name, founder, created_ts, actions FROM coops WHERE id = ?", (coop,))
        return CoopRow(*rows[0]) if rows else None

    async def list_actions(
        self, coop: bytes, *, author: bytes | None = None, kind: str | None = None, after: int = 0, limit: int = 100
    ) -> list[StoredAction]:
        """Actions of one co-op in local arrival order, strictly after position ``after``."""
        where, params = ["coop = ?", "pos > ?"], [coop, after]
        if author is not None:
            where.append("author = ?")
            params.append(author)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = f"SELECT pos, raw, received_at FROM actions WHERE {' AND '.join(where)} ORDER BY pos LIMIT ?"
        rows = await self._all(sql, [*params, limit])
        return [StoredAction(r[0], r[1], "stored", r[2]) for r in rows]

    async def chains(self, coop: bytes, author: bytes | None = None) -> list[ChainRow]:
        """Each author's chain head in ``coop`` (or just ``author``'s), with its pending count."""
        sql = """SELECT c.author, c.head_seq, c.head_id,
                        (SELECT COUNT(*) FROM pending p WHERE p.coop = c.coop AND p.author = c.author)
                 FROM chains c WHERE c.coop = ?"""
        params: list[bytes] = [coop]
        if author is not None:
            sql += " AND c.author = ?"
            params.append(author)
        rows = await self._all(sql + " ORDER BY c.author", params)
        return [ChainRow(*r) for r in rows]

    async def chain_count(self, coop: bytes) -> int:
        rows = await self._all("SELECT COUNT(*) FROM chains WHERE coop = ?", (coop,))
        return int(rows[0][0])

    async def head(self, coop: bytes, author: bytes) -> tuple[int, bytes | None]:
        rows = await self._all("SELECT head_seq, head_id FROM chains WHERE coop = ? AND author = ?", (coop, author))
        return (rows[0][0], rows[0][1]) if rows else (0, None)

    async def proofs(self, coop: bytes | None = None) -> list[ProofRow]:
        if coop is None:
            rows = await self._all("SELECT id, coop, author, seq, raw FROM proofs ORDER BY coop, author, seq, id")
        else:
            rows = await self._all("SELECT id, coop, author, seq, raw FROM proofs WHERE coop = ? ORDER BY author, seq, id", (coop,))
        return [ProofRow(*r) for r in rows]

    async def get_proof(self, proof_id: bytes) -> ProofRow | None:
        rows = await self._all("SELECT id, coop, author, seq, raw FROM proofs WHERE id = ?", (proof_id,))
        return ProofRow(*rows[0]) if rows else None

    async def counts(self) -> dict[str, int]:
        rows = await self._all(
            """SELECT (SELECT COALESCE(SUM(actions), 0) FROM coops), (SELECT COUNT(*) FROM coops),
                      (SELECT COUNT(*) FROM pending), (SELECT COUNT(*) FROM proofs), (SELECT COUNT(*) FROM chains)"""
        )
        actions, coops, pending, proofs, chains = rows[0]
        return {"actions": actions, "coops": coops, "pending": pending, "proofs": proofs, "chains": chains}

    # ---- replication ---------------------------------------------------------------------------

    async def heads(self, coop: bytes) -> list[Head]:
        """Every author's chain head in ``coop``, sorted by author: the reconciliation summary."""
        rows = await self._all("SELECT author, head_seq, head_id FROM chains WHERE coop = ? ORDER BY author", (coop,))
        return [Head(*r) for r in rows]

    async def head_set(self, coop: bytes) -> HeadSet:
        """``heads(coop)`` as reconciliation reads them, the same object while no commit has moved
        a head of ``coop``: an idle round then reads nothing and hashes nothing."""
        epoch = self._heads_epoch.get(coop, 0)  # before the read: a commit during it makes this stale
        hit = self._head_sets.get(coop)
        if hit is not None and hit[0] == epoch:
            self._head_sets.move_to_end(coop)
            return hit[1]
        found = HeadSet(await self.heads(coop))
        self._forget_head_set(coop)
        # Only co-ops stored here: a peer may ask about any id, and an unknown one has no heads
        # and no commit that would ever replace its entry.
        if coop in self._coops and len(found.heads) <= HEAD_SETS_MAX_HEADS:
            self._head_sets[coop] = (epoch, found)
            self._head_sets_size += len(found.heads)
            while self._head_sets_size > HEAD_SETS_MAX_HEADS:
                self._forget_head_set(next(iter(self._head_sets)))
        return found

    def _forget_head_set(self, coop: bytes) -> None:
        gone = self._head_sets.pop(coop, None)
        if gone is not None:
            self._head_sets_size -= len(gone[1].heads)

    async def ids_at(self, coop: bytes, keys: Sequence[tuple[bytes, int]]) -> dict[tuple[bytes, int], bytes]:
        """The stored action id at each (author, seq) asked for, where there is one."""
        out: dict[tuple[bytes, int], bytes] = {}
        for chunk in _chunks(list(keys), 300):
            values = ",".join("(?,?)" for _ in chunk)
            params = [coop] + [x for k in chunk for x in k]
            rows = await self._all(f"SELECT author, seq, id FROM actions WHERE coop = ? AND (author, seq) IN (VALUES {values})", params)
            out.update({(a, q): i for a, q, i in rows})
        return out

    async def segments(self, coop: bytes, wants: Sequence[Want], *, max_actions: int, max_bytes: int) -> tuple[list[bytes], bool]:
        """Stored actions for ``wants`` in order (the founder's chain first, so a genesis leads),
        cut at ``max_actions`` or ``max_bytes``; the flag says whether anything was cut."""
        row = await self._all("SELECT founder FROM coops WHERE id = ?", (coop,))
        founder = row[0][0] if row else None
        # Clip the wants to max_actions + 1 seqs in all, so no read can scan (and sort) more rows
        # than one reply holds, whatever ranges a peer asks for; clipping counts as a cut.
        ordered: list[Want] = []
        budget, clipped = max_actions + 1, False
        for w in sorted(wants, key=lambda w: (w.author != founder, w.author, w.first)):
            if budget <= 0:
                clipped = True
                break
            last = min(w.last, w.first + budget - 1)
            clipped |= last < w.last
            ordered.append(Want(w.author, w.first, last))
            budget -= max(0, last - w.first + 1)
        out: list[bytes] = []
        size = 0
        # A few set-based reads, not one per want: a catch-up fetch names a hundred chains or more
        # (a new co-op's first fetch, one action of each of a thousand).
        for start in range(0, len(ordered), 250):
            chunk = ordered[start : start + 250]
            values = ",".join("(?,?,?,?)" for _ in chunk)
            params: list[Any] = [x for k, w in enumerate(chunk) for x in (k, w.author, w.first, w.last)]
            rows = await self._all(
                f"WITH w(k, author, first, last) AS (VALUES {values}) "
                "SELECT a.raw FROM w JOIN actions a ON a.coop = ? AND a.author = w.author AND a.seq BETWEEN w.first AND w.last "
                "ORDER BY w.k, a.seq LIMIT ?",
                [*params, coop, max_actions - len(out) + 1],  # one more than fits: says whether anything was cut
            )
            for (raw,) in rows:
                if len(out) == max_actions or (size + len(raw) > max_bytes and out):
                    return out, True
                out.append(raw)
                size += len(raw)
        return out, clipped

    async def known_ids(self, ids: Sequence[bytes]) -> set[bytes]:
        """Which of ``ids`` this node holds (stored, pending or displaced by a fork)."""
        out: set[bytes] = set()
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for table in ("actions", "pending", "forks"):
                out.update(r[0] for r in await self._all(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk))
        return out

    async def forked(self, coop: bytes, known: set[bytes] | frozenset[bytes] = frozenset()) -> list[StoredAction]:
        """Actions of ``coop`` displaced from their chain by an equivocation, except ``known`` ids."""
        if not self._has_forks:
            return []
        rows = await self._all("SELECT id, raw, received_at FROM forks WHERE coop = ? ORDER BY author, seq, id", (coop,))
        return [StoredAction(None, r[1], "forked", r[2]) for r in rows if r[0] not in known]

    async def raw_by_ids(self, coop: bytes, ids: Sequence[bytes], *, max_bytes: int) -> list[bytes]:
        """The wire bytes of the actions of ``coop`` among ``ids`` this node holds, in its chains,
        kept aside by an equivocation or pending, at most ``max_bytes`` in all (at least one)."""
        out: list[bytes] = []
        size = 0
        for chunk in _chunks(list(dict.fromkeys(ids)), 250):
            marks = ",".join("?" * len(chunk))
            for table in ("actions", "forks", "pending"):
                for (raw,) in await self._all(f"SELECT raw FROM {table} WHERE coop = ? AND id IN ({marks})", [coop, *chunk]):
                    if table == "forks" and not _complete(raw):
                        continue  # known only from a proof: a peer would refuse it without its body
                    if out and size + len(raw) > max_bytes:
                        return out
                    out.append(raw)
                    size += len(raw)
        return out

    async def coops_of(self, ids: Sequence[bytes]) -> dict[bytes, bytes]:
        """The co-op of each of ``ids`` that this node holds (stored, pending or displaced)."""
        out: dict[bytes, bytes] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for table in ("actions", "pending", "forks"):
                out.update((r[0], r[1]) for r in await self._all(f"SELECT id, coop FROM {table} WHERE id IN ({marks})", chunk))
        return out

    async def coop_ids(self) -> list[bytes]:
        return [r[0] for r in await self._all("SELECT id FROM coops ORDER BY id")]

    async def proof_ids(self, coop: bytes) -> list[bytes]:
        return [r[0] for r in await self._all("SELECT id FROM proofs WHERE coop = ? ORDER BY id", (coop,))]

    async def proofs_by_id(self, coop: bytes, ids: Sequence[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            out += [r[0] for r in await self._all(f"SELECT raw FROM proofs WHERE coop = ? AND id IN ({marks})", [coop, *chunk])]
        return out

    # ---- operator ----------------------------------------------------------------------------

    async def backup(self, path: Path | str, *, overwrite: bool = False) -> BackupInfo:
        """An online backup of this store to ``path`` (see ``backup_database``), in a thread."""
        return await asyncio.to_thread(backup_database, self.path, Path(path), overwrite=overwrite)

    async def _exclusive(self, fn: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> Any:
        """Run ``fn`` on the writer connection in its own transaction, between group commits."""
        return await self._write(fn)

    async def pending_rows(self, *, coop: bytes | None = None, author: bytes | None = None, limit: int = 1000) -> list[PendingRow]:
        """Pending actions, by co-op, author and seq, each with the reason it waits."""
        where, params = [], []
        if coop is not None:
            where.append("p.coop = ?")
            params.append(coop)
        if author is not None:
            where.append("p.author = ?")
            params.append(author)
        sql = (
            "SELECT p.id, p.coop, p.author, p.seq, p.received_at, COALESCE(c.head_seq, 0) FROM pending p "
            "LEFT JOIN chains c ON c.coop = p.coop AND c.author = p.author"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY p.coop, p.author, p.seq LIMIT ?"
        )
        out = []
        for pid, c, a, seq, received_at, head_seq in await self._all(sql, [*params, limit]):
            if seq > head_seq + 1:
                reason = f"waiting for seq {head_seq + 1}"
            else:  # at head + 1 only a fork is held (see the invariants above)
                reason = f"fork: its prev is not this node's action at seq {seq - 1}; held until its rival at seq {seq} arrives"
            out.append(PendingRow(pid, c, a, seq, received_at, reason))
        return out

    async def purge_pending(self, coop: bytes | None = None, author: bytes | None = None, *, ids: Sequence[bytes] | None = None) -> int:
        """Delete pending actions: these ids, or all of a co-op, an author, or an author in a co-op.
        Nothing else moves: a pending action is above its chain's head, so no chain depends on it."""
        if ids is None and coop is None and author is None:
            raise ValueError("purge_pending needs ids, a co-op or an author")
        where, params = [], []
        if coop is not None:
            where.append("coop = ?")
            params.append(coop)
        if author is not None:
            where.append("author = ?")
            params.append(author)

        async def purge(w: aiosqlite.Connection) -> int:
            n = 0
            if ids is None:
                cur = await w.execute(f"DELETE FROM pending WHERE {' AND '.join(where)}", params)
                return cur.rowcount
            for chunk in _chunks(list(ids)):
                cond = " AND ".join([f"id IN ({','.join('?' * len(chunk))})", *where])
                cur = await w.execute(f"DELETE FROM pending WHERE {cond}", [*chunk, *params])
                n += cur.rowcount
            return n

        n: int = await self._exclusive(purge)  # the writer re-reads its counters after it
        return n

    async def blocked_nodes(self) -> dict[bytes, tuple[str, int]]:
        """The peer nodes the operator blocked: node id -> (reason, when)."""
        return {r[0]: (r[1], r[2]) for r in await self._all("SELECT node, reason, blocked_at FROM blocked_nodes ORDER BY node")}

    async def set_blocked(self, node: bytes, reason: str | None) -> bool:
        """Block ``node`` (with a reason) or unblock it (``None``); True if that changed anything."""
        now = self._clock_ms()

        async def write(w: aiosqlite.Connection) -> bool:
            if reason is None:
                cur = await w.execute("DELETE FROM blocked_nodes WHERE node = ?", (node,))
            else:
                cur = await w.execute(
                    "INSERT OR IGNORE INTO blocked_nodes (node, reason, blocked_at) VALUES (?, ?, ?)", (node, reason, now)
                )
            return cur.rowcount > 0

        changed: bool = await self._exclusive(write)
        return changed

    async def integrity_check(self) -> str:
        rows = await self._all("PRAGMA integrity_check")
        return "; ".join(r[0] for r in rows)

    def health(self) -> WriterHealth:
        """The writer's state, from memory: never touches a connection, so asking cannot get in
        the way of a commit (a probe transaction on the writer's connection did: 503s for posts)."""
        task = self._writer_task
        started = self._group_started
        return WriterHealth(
            open=not self._closed,
            writer_alive=task is not None and not task.done(),
            commit_running_s=time.monotonic() - started if started is not None else 0.0,
            queued=self._queue.qsize(),
            groups_committed=self.groups_committed,
        )

    async def writable(self) -> bool:
        """True if the store is open and its writer task is alive (see ``health``)."""
        h = self.health()
        return h.open and h.writer_alive


async def _configure(conn: aiosqlite.Connection, synchronous: str) -> None:
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    await conn.execute("PRAGMA busy_timeout = 5000")
    await conn.execute("PRAGMA foreign_keys = ON")


async def _migrate(conn: aiosqlite.Connection, path: Path) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        version = (await cur.fetchone())[0]  # type: ignore[index]
    if version > len(MIGRATIONS):
        raise StoreError(f"{path} has schema version {version}, newer than this coopnet ({len(MIGRATIONS)}); upgrade coopnet")
    if 0 < version < len(MIGRATIONS):
        # An upgrade: keep the store as the older coopnet left it, so a rollback is a file copy.
        copy = path.with_name(f"{path.name}.pre-v{len(MIGRATIONS)}")
        info = await asyncio.to_thread(backup_database, path, copy, overwrite=True)
        log.warning(
            "store %s is at schema v%d, this coopnet needs v%d: backed up to %s (%d actions) before migrating",
            path,
            version,
            len(MIGRATIONS),
            copy,
            info.actions,
        )
    for i in range(version, len(MIGRATIONS)):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _statements(MIGRATIONS[i]):
                await conn.execute(stmt)
            await conn.execute(f"PRAGMA user_version = {i + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        log.info("store %s migrated to schema %d", path, i + 1)


def backup_database(src: Path, dst: Path, *, overwrite: bool = False) -> BackupInfo:
    """Copy the store ``src`` to ``dst`` with SQLite's online backup API, safely while a node
    writes to it: the copy is made in one step, inside one read transaction, so it is the
    snapshot of one commit (WAL lets the node's writer go on meanwhile). The copy is written
    beside ``dst`` under another name, checked (``PRAGMA integrity_check``), switched to a
    rollback journal (one self-contained file), fsynced, and only then renamed to ``dst``."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise StoreError(f"{src}: no store there")
    if dst.exists() and not overwrite:
        raise StoreError(f"{dst} already exists; refusing to overwrite it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        # Read-only: never create an empty store where there was none, never change the source.
        source = sqlite3.connect(src.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            source.execute("PRAGMA busy_timeout = 5000")
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)  # pages=-1: the whole file in one step
                target.execute("PRAGMA journal_mode = DELETE")
                integrity = "; ".join(r[0] for r in target.execute("PRAGMA integrity_check"))
                schema = int(target.execute("PRAGMA user_version").fetchone()[0])
                actions = 0
                if target.execute("SELECT 1 FROM sqlite_master WHERE name = 'actions'").fetchone():
                    actions = int(target.execute("SELECT COUNT(*) FROM actions").fetchone()[0])
            finally:
                target.close()
        finally:
            source.close()
        if integrity != "ok":
            raise StoreError(f"the backup of {src} failed its integrity check: {integrity}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dst)
        fd = os.open(dst.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except sqlite3.Error as e:
        raise StoreError(f"could not back up {src}: {e}") from None
    except OSError as e:
        raise StoreError(f"could not back up {src} to {dst}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return BackupInfo(dst, dst.stat().st_size, schema, actions, integrity)


def _statements(script: str) -> list[str]:
    # Migrations hold no semicolons inside literals, so splitting is exact; comments are kept.
    return [s.strip() for s in script.split(";") if s.strip() and not all(line.strip().startswith("--") for line in s.strip().splitlines())]


async def _count_by_coop(conn: aiosqlite.Connection, table: str) -> dict[bytes, int]:
    async with conn.execute(f"SELECT coop, COUNT(*) FROM {table} GROUP BY coop") as cur:
        return {c: n for c, n in await cur.fetchall()}


async def _coop_bytes(conn: aiosqlite.Connection) -> dict[bytes, int]:
    async with conn.execute("SELECT id, bytes FROM coops") as cur:
        return {c: n for c, n in await cur.fetchall()}


async def _read_counters(
    conn: aiosqlite.Connection,
) -> tuple[dict[bytes, int], dict[bytes, int], dict[bytes, int], frozenset[tuple[bytes, bytes]]]:
    """Admission's counters as the tables hold them: pending and held per co-op, bytes per co-op, blocks."""
    pending, held, coop_bytes = await _count_by_coop(conn, "pending"), await _count_by_coop(conn, "quarantine"), await _coop_bytes(conn)
    async with conn.execute("SELECT coop, author FROM blocked_authors") as cur:
        blocked = frozenset((c, a) for c, a in await cur.fetchall())
    return pending, held, coop_bytes, blocked


def _answer(jobs: list[_Job], results: list[IngestResult], proof_flags: list[bool]) -> None:
    i = j = 0
    for job in jobs:
        n, m = len(job.actions), len(job.proofs)
        if not job.future.done():
            job.future.set_result((results[i : i + n], proof_flags[j : j + m]))
        i, j = i + n, j + m


def _scope_filter(coop: bytes | None, author: bytes | None, prefix: str = "") -> tuple[str, list[bytes]]:
    where, params = [], []
    if coop is not None:
        where.append(f"{prefix}coop = ?")
        params.append(coop)
    if author is not None:
        where.append(f"{prefix}author = ?")
        params.append(author)
    return ("WHERE " + " AND ".join(where) if where else ""), params


async def _rowcount(w: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> int:
    cur = await w.execute(sql, tuple(params))
    return int(cur.rowcount)


def _founders_of(genesis: Action) -> frozenset[bytes]:
    body = genesis.body_value()
    named = body.get("founders", ()) if isinstance(body, dict) else ()
    return frozenset((genesis.author, *(f for f in named if isinstance(f, bytes))))


def _chunks(seq: Sequence[Any], n: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


async def _rows_in(conn: aiosqlite.Connection, select: str, keys: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Rows of ``select ... WHERE (cols)`` completed with ``IN (VALUES ...)`` over ``keys`` (tuples of
    one width), a few hundred keys per statement to stay under SQLite's variable limit."""
    rows: list[Any] = []
    if not keys:
        return rows
    width = len(keys[0])
    placeholder = "(" + ",".join("?" * width) + ")"
    for chunk in _chunks(keys, 1200 // width):
        params = [x for k in chunk for x in k]
        async with conn.execute(f"{select} IN (VALUES {','.join(placeholder for _ in chunk)})", params) as cur:
            rows.extend(await cur.fetchall())
    return rows


_NO_HEAD: tuple[int, None] = (0, None)


def _no_chains() -> ChainPlan:
    """A plan's chains before ``build`` and after ``_collect``: an empty view, decided nothing."""
    return ChainPlan({}, {}, {}, set(), frozenset())


class _GroupPlan:
    """The decisions for one group, computed from a few set-based reads, then written at once."""

    def __init__(self, store: Store) -> None:
        self.results: list[IngestResult] = []
        self.appends: list[Action] = []
        self.new_coops: dict[bytes, Action] = {}
        self.heads: dict[ChainKey, tuple[int, bytes]] = {}
        self.dirty_heads: set[ChainKey] = set()
        self.new_pending: dict[bytes, Action] = {}
        self.unpended: list[bytes] = []  # rows to delete from pending: promoted or now in a proof
        self.demotions: list[tuple[bytes, bytes, int]] = []  # (coop, author, from seq) leaving the chain
        self.new_aside: dict[bytes, Action] = {}  # rows to add to forks (kept aside)
        self.unaside: list[bytes] = []  # forks rows taken back into a chain
        self.chains: ChainPlan = _no_chains()
        self.proofs: list[tuple[bytes, bytes, bytes, int, bytes]] = []
        self.proof_origins: dict[bytes, bytes | None] = {}
        self.new_proof_ids: set[bytes] = set()
        self.pending_count = store._pending_count
        # Admission (see the module's theory of operation).
        self.store = store
        self.policy = p = store.policy
        self.hold = p.hold_unknown
        self.quotas = p.quotas
        self.max_pending = store.max_pending
        self.started: list[ChainKey] = []  # chains appended at seq 1 here: their authors became known
        self.new_held: dict[bytes, Action] = {}
        self.held_ids: set[bytes] = set()  # of the group's unknown authors, already in the quarantine
        self.held_by_author: dict[ChainKey, int] = {}
        self.held_added: dict[bytes, int] = {}
        self.held_count = store._held_count
        self.released: set[bytes] = set()  # ids taken out of the quarantine by this group
        self.pending_added: dict[bytes, int] = {}  # per co-op, for the bounds (an upper bound)
        self.pending_removed: dict[bytes, int] = {}  # per co-op: stored pending rows removed
        self.chain_bytes: dict[ChainKey, int] = {}  # as stored before this group
        # Bytes appended so far in this group, kept while deciding only when a quota may be met
        # (see build); the write counts what was appended, whatever happened in between.
        self.chain_added: dict[ChainKey, int] = {}
        self.coop_added: dict[bytes, int] = {}
        self.bytes_added = 0
        self.over_quota: set[ChainKey] = set()  # chains whose next action a quota refused
        self.resync_bytes = False  # a fork displaced stored actions: recount the bytes
        self.invite_of: dict[bytes, bytes] = {}  # genesis id -> the invite its job carries
        self.usable_invites: set[bytes] = set()
        self.used_invites: list[tuple[bytes, bytes]] = []  # (invite hash, co-op founded)
        self.now = 0

    @classmethod
    async def build(cls, w: aiosqlite.Connection, group: list[Action], jobs: list[_Job], store: Store, now: int) -> _GroupPlan:
        plan = cls(store)
        plan.now = now
        coops, pending_count, has_forks = store._coops, store._pending_count, store._has_forks
        for job in jobs:
            if job.released:
                plan.released.update(a.id for a in job.actions)
            if job.invite is not None:
                plan.invite_of.update((a.id, job.invite) for a in job.actions if a.env.coop is None)
        if plan.invite_of:
            hashes = list(set(plan.invite_of.values()))
            marks = ",".join("?" * len(hashes))
            async with w.execute(
                f"SELECT hash FROM invites WHERE hash IN ({marks}) AND used_by IS NULL AND (expires = 0 OR expires > ?)", [*hashes, now]
            ) as cur:
                plan.usable_invites = {r[0] for r in await cur.fetchall()}
        # Each action's place (co-op, author, seq), read once: the properties behind it cost more
        # than the set and dict work below, done for thousands of actions per group.
        where = [(a.coop, a.env.author, a.env.seq) for a in group]
        heads = plan.heads
        chain_bytes = plan.chain_bytes
        for coop, author, head_seq, head_id, size in await _rows_in(
            w, "SELECT coop, author, head_seq, head_id, bytes FROM chains WHERE (coop, author)", list({k[:2] for k in where})
        ):
            heads[(coop, author)] = (head_seq, head_id)
            chain_bytes[(coop, author)] = size
        if plan.quotas:
            # Checked per action only if this whole group could meet a quota: almost never, so a
            # catch-up pays one sum per group, not three lookups per action.
            p, total = plan.policy, sum(len(a.raw) for a in group)
            plan.quotas = bool(
                (p.quota_node_bytes and store._bytes_total + total > p.quota_node_bytes)
                or (
                    p.quota_coop_bytes
                    and max((store._coop_bytes.get(c, 0) for c in {k[0] for k in where}), default=0) + total > p.quota_coop_bytes
                )
                or (p.quota_author_bytes and max(chain_bytes.values(), default=0) + total > p.quota_author_bytes)
            )

        # A chain's stored actions are exactly its seqs 1..head, so an action above its head is not
        # stored, and one at or below it is stored iff the id at its seq is its own: no lookup by
        # id for the actions a catch-up brings, all of which are above their heads.
        below = list({k for k in where if k[2] <= heads.get(k[:2], _NO_HEAD)[0]})
        held: dict[tuple[bytes, bytes, int], bytes] = {}
        for coop, author, seq, action_id in await _rows_in(w, "SELECT coop, author, seq, id FROM actions WHERE (coop, author, seq)", below):
            held[(coop, author, seq)] = action_id
        known = {a.id for a, k in zip(group, where, strict=True) if held.get(k) == a.id} if held else set()
        tables = [t for t, used in (("pending", pending_count > 0), ("forks", has_forks)) if used]
        elsewhere = [a.id for a in group if a.id not in known] if tables else []
        for table in tables:
            for chunk in _chunks(elsewhere):
                marks = ",".join("?" * len(chunk))
                async with w.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk) as cur:
                    known.update(r[0] for r in await cur.fetchall())

        if plan.hold:
            await plan._read_strangers(w, group, where)

        # A fresh action at or below its chain's head is an equivocation: fetch what occupies the seq.
        occupants: dict[tuple[bytes, bytes, int], Action] = {}
        rivals = list({k for a, k in zip(group, where, strict=True) if k in held and a.id not in known})
        for coop, author, seq, raw in await _rows_in(w, "SELECT coop, author, seq, raw FROM actions WHERE (coop, author, seq)", rivals):
            occupants[(coop, author, seq)] = decode_action(raw, check_signature=False)

        # Each touched chain's pool: what it holds of the author besides the chain (pending, and
        # kept aside by an equivocation), which fork choice may take into the chain.
        pool: dict[ChainKey, dict[bytes, Action]] = {}
        aside: set[bytes] = set()
        keys = list({k[:2] for a, k in zip(group, where, strict=True) if a.id not in known}) if pending_count or has_forks else []
        if pending_count:
            for coop, author, raw in await _rows_in(w, "SELECT coop, author, raw FROM pending WHERE (coop, author)", keys):
                x = decode_action(raw, check_signature=False)
                pool.setdefault((coop, author), {})[x.id] = x
        if has_forks:
            for coop, author, raw in await _rows_in(w, "SELECT coop, author, raw FROM forks WHERE (coop, author)", keys):
                # in_proof: a proof's losing half is kept aside by its envelope alone. It is never
                # taken back into the chain: its rival, with the same prev and a smaller id, stays.
                x = decode_action(raw, check_signature=False, in_proof=True)
                pool.setdefault((coop, author), {})[x.id] = x
                aside.add(x.id)
        plan.chains = ChainPlan(heads, occupants, pool, aside, coops, room=plan._room, keep_ghost=plan._keep_ghost)

        # Geneses first, then each chain in seq order, so a batch may carry a chain out of order
        # (the index last: equal places keep their arrival order).
        order = sorted((a.env.coop is not None, *k, i) for i, (a, k) in enumerate(zip(group, where, strict=True)))
        results: list[IngestResult | None] = [None] * len(group)
        seen: dict[bytes, IngestResult] = {}
        for _, coop, author, seq, i in order:
            a = group[i]
            action_id = a.id
            if action_id in known:
                results[i] = IngestResult(action_id, "known")
                continue
            first = seen.get(action_id)
            if first is not None:
                # The same action twice in one group: the first decides; a repeat of an accepted one is known.
                results[i] = IngestResult(action_id, "known") if first.status == "accepted" else first
                continue
            res = plan._decide(a, (coop, author, seq), coops)
            seen[action_id] = res
            results[i] = res
        plan.results = [r for r in results if r is not None]
        plan._collect()
        return plan

    async def _read_strangers(self, w: aiosqlite.Connection, group: list[Action], where: list[tuple[bytes, bytes, int]]) -> None:
        """For the chains not stored here (the only ones whose authors may be unknown): their
        co-ops' founders, and what their authors already hold in the quarantine."""
        heads = self.heads
        new = [(a, k) for a, k in zip(group, where, strict=True) if k[:2] not in heads and a.env.coop is not None]
        if not new:
            return
        founders = self.store._founders
        missing = list({k[0] for _, k in new if k[0] not in founders and k[0] in self.store._coops})
        for chunk in _chunks(missing):
            marks = ",".join("?" * len(chunk))
            async with w.execute(f"SELECT raw FROM actions WHERE id IN ({marks})", chunk) as cur:
                for (raw,) in await cur.fetchall():
                    g = decode_action(raw, check_signature=False)
                    founders[g.id] = _founders_of(g)
        if self.held_count:
            keys = list({k[:2] for _, k in new})
            for coop, author, action_id in await _rows_in(w, "SELECT coop, author, id FROM quarantine WHERE (coop, author)", keys):
                self.held_ids.add(action_id)
                self.held_by_author[(coop, author)] = self.held_by_author.get((coop, author), 0) + 1

    def _known(self, a: Action, coop: bytes, author: bytes, seq: int) -> bool:
        """Whether the author of ``a``, whose chain is not stored here, is known in ``coop``."""
        if seq == 1 and a.env.kind == APPLY_KIND:
            return True  # an application: how a stranger becomes known (rate-limited at the door)
        founders = self.store._founders.get(coop)
        if founders is None:
            g = self.chains.new_coops.get(coop)
            founders = _founders_of(g) if g is not None else frozenset()
        return author in founders

    def _hold(self, a: Action, key: ChainKey) -> IngestResult:
        reason = hold_reason(self.policy)
        if (a.id in self.held_ids and a.id not in self.released) or a.id in self.new_held:
            return IngestResult(a.id, "held", message=reason)
        p = self.policy
        coop = key[0]
        full = None
        if self.held_by_author.get(key, 0) >= p.quarantine_per_author:
            full = f"{p.quarantine_per_author} actions of this author"
        elif self.store._held_by_coop.get(coop, 0) + self.held_added.get(coop, 0) >= p.quarantine_per_coop:
            full = f"{p.quarantine_per_coop} actions in this co-op"
        elif self.held_count >= p.max_quarantine:
            full = f"{p.max_quarantine} actions"
        if full is not None:
            return IngestResult(
                a.id,
                "rejected",
                RejectCode.UNKNOWN_AUTHOR,
                f"unknown author: no application (member.apply) of theirs is stored in this co-op, and the quarantine holds {full} already",
            )
        self.new_held[a.id] = a
        self.held_by_author[key] = self.held_by_author.get(key, 0) + 1
        self.held_added[coop] = self.held_added.get(coop, 0) + 1
        self.held_count += 1
        return IngestResult(a.id, "held", message=reason)

    def _pending_refusal(self, coop: bytes, chain_pending: int, head_seq: int) -> str | None:
        p = self.policy
        in_coop = self.store._pending_by_coop.get(coop, 0) + self.pending_added.get(coop, 0) - self.pending_removed.get(coop, 0)
        if p.max_pending_per_author and chain_pending >= p.max_pending_per_author:
            return f"seq {head_seq + 1} is missing and this author already has {p.max_pending_per_author} actions pending in this co-op"
        if p.max_pending_per_coop and in_coop >= p.max_pending_per_coop:
            return f"seq {head_seq + 1} is missing and this co-op already has {p.max_pending_per_coop} actions pending"
        if self.store._pending_count + self.chains.pending_delta >= self.max_pending and in_coop >= p.pending_floor:
            return f"seq {head_seq + 1} is missing and the pending area is full ({self.max_pending})"
        return None

    def _over_quota(self, a: Action, key: ChainKey) -> IngestResult | None:
        p = self.policy
        size = len(a.raw)
        coop = key[0]
        what = None
        if p.quota_author_bytes and self.chain_bytes.get(key, 0) + self.chain_added.get(key, 0) + size > p.quota_author_bytes:
            what = f"this author's quota in this co-op ({p.quota_author_bytes} bytes)"
        elif p.quota_coop_bytes and self.store._coop_bytes.get(coop, 0) + self.coop_added.get(coop, 0) + size > p.quota_coop_bytes:
            what = f"this co-op's quota ({p.quota_coop_bytes} bytes)"
        elif p.quota_node_bytes and self.store._bytes_total + self.bytes_added + size > p.quota_node_bytes:
            what = f"this node's quota ({p.quota_node_bytes} bytes)"
        if what is None:
            return None
        self.over_quota.add(key)
        return IngestResult(a.id, "rejected", RejectCode.QUOTA_EXCEEDED, f"storing this action ({size} bytes) would exceed {what}")

    def pending_delta(self) -> dict[bytes, int]:
        """Per co-op, how many pending rows this group adds (negative: removes), exactly."""
        out = {c: -n for c, n in self.pending_removed.items()}
        for a in self.new_pending.values():
            out[a.coop] = out.get(a.coop, 0) + 1
        return out

    def _decide(self, a: Action, at: tuple[bytes, bytes, int], coops: set[bytes]) -> IngestResult:
        """Admission (unknown authors are held), invites, quotas; then fork choice places it
        (``protocol.forkchoice``: which action holds each seq is a function of the set held)."""
        coop, author, seq = at
        if coop not in coops and coop not in self.chains.new_coops:
            if not a.is_genesis:
                return IngestResult(a.id, "rejected", RejectCode.UNKNOWN_COOP, "no genesis for this co-op is stored here")
            if self.invite_of and a.id in self.invite_of:
                invite = self.invite_of[a.id]
                if invite not in self.usable_invites:
                    return IngestResult(
                        a.id, "rejected", RejectCode.FOUNDING_REFUSED, "this invite is unknown here, used already or expired"
                    )
                self.usable_invites.discard(invite)
                self.used_invites.append((invite, coop))
        key = (coop, author)
        if self.hold and key not in self.heads and not a.is_genesis and not self._known(a, coop, author, seq):
            return self._hold(a, key)
        head_seq, head_id = self.heads.get(key, _NO_HEAD)
        if self.released and a.id in self.released:
            taken = seq <= head_seq or any(x.seq == seq for x in self.chains.pool.get(key, {}).values())
            if taken or (seq == head_seq + 1 and a.prev != head_id):
                # Held while its author was unknown, and its place is taken now: whoever signed it
                # was told it was not accepted, so it proves nothing against them here; dropped.
                return IngestResult(
                    a.id, "rejected", RejectCode.CHAIN_CONFLICT, f"held while its author was unknown; seq {seq} is taken now"
                )
        if self.quotas and seq == head_seq + 1 and a.prev == head_id:
            over = self._over_quota(a, key)
            if over is not None:
                return over
        v = self.chains.decide(a, at)
        if self.quotas and v.status == "accepted":
            size = len(a.raw)
            self.chain_added[key] = self.chain_added.get(key, 0) + size
            self.coop_added[coop] = self.coop_added.get(coop, 0) + size
            self.bytes_added += size
        return v

    def _room(self, a: Action) -> str | None:
        """May ``a`` wait in pending? None if it may, else why not (it is refused ``chain_gap``)."""
        key = (a.coop, a.env.author)
        chain_pending = sum(1 for x in self.chains.pool.get(key, {}).values() if x.id not in self.chains.aside)
        refusal = self._pending_refusal(a.coop, chain_pending, self.heads.get(key, _NO_HEAD)[0])
        if refusal is None:
            self.pending_added[a.coop] = self.pending_added.get(a.coop, 0) + 1
        return refusal

    def _keep_ghost(self, a: Action) -> bool:
        """Keep a losing action aside (others may have built on it), at most MAX_ASIDE_PER_AUTHOR
        per author: a member forking on purpose cannot fill the disk with rivals."""
        pool = self.chains.pool.get((a.coop, a.env.author), {})
        return sum(1 for x in pool.values() if x.id in self.chains.aside) < MAX_ASIDE_PER_AUTHOR

    def _collect(self) -> None:
        """Take ChainPlan's decisions as this plan's writes."""
        cp = self.chains
        self.appends = cp.appends
        self.new_coops = cp.new_coops
        self.dirty_heads = cp.dirty_heads
        self.new_pending = cp.new_pending
        self.demotions = cp.demotions
        self.new_aside = cp.new_aside
        self.unaside = cp.unaside
        self.unpended = cp.unpended
        self.proofs = list(cp.proofs.values())
        self.pending_count = self.store._pending_count + cp.pending_delta
        self.started = [(a.coop, a.env.author) for a in cp.appends if a.env.seq == 1]
        coop_of = {x.id: x.coop for pool in cp.pool.values() for x in pool.values()}
        for i in self.unpended:
            c = coop_of.get(i)
            if c is not None:
                self.pending_removed[c] = self.pending_removed.get(c, 0) + 1
        # The ChainPlan calls back into this plan (room, keep_ghost): a cycle, which would keep the
        # group's decoded actions until the (tuned-down) cyclic collector ran. Its work is done.
        self.chains = _no_chains()

    async def add_proofs(self, w: aiosqlite.Connection, proofs: list[tuple[EquivocationProof, bytes | None]]) -> list[bool]:
        """Add received proofs to the plan; then find which of all the plan's proofs are new here."""
        flags_for: list[bytes] = []
        for p, origin in proofs:
            pid = p.id
            self.proofs.append((pid, p.coop, p.author, p.seq, p.encode()))
            self.proof_origins.setdefault(pid, origin)
            flags_for.append(pid)
        ids = list({p[0] for p in self.proofs})
        known: set[bytes] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            async with w.execute(f"SELECT id FROM proofs WHERE id IN ({marks})", chunk) as cur:
                known.update(r[0] for r in await cur.fetchall())
        flags, seen = [], set()
        for pid in flags_for:
            flags.append(pid not in known and pid not in seen)
            seen.add(pid)
        self.new_proof_ids = set(ids) - known
        # A received proof's larger half, when both share a prev, lost its seq for good: keep it
        # aside (its envelope: proofs carry no bodies) unless held, so that what others built on
        # it links to it here too, and goes aside in turn instead of being refused.
        losers = {p.b.id: p.b for p, _ in proofs if p.a.prev == p.b.prev and p.b.id not in self.new_aside}
        if losers:
            held: set[bytes] = set()
            for table in ("actions", "forks", "pending"):
                held |= {r[0] for r in await _rows_in(w, f"SELECT id FROM {table} WHERE (id)", [(i,) for i in losers])}
            lost = {i: a for i, a in losers.items() if i not in held}
            self.new_aside.update(lost)
            if lost:
                await self._cascade_pending(w, lost)
        return flags

    async def _cascade_pending(self, w: aiosqlite.Connection, lost: dict[bytes, Action]) -> None:
        """Pending actions built on a proof's losing half (they arrived before it, waiting for
        their prev) lost too: aside with it, where the fold finds them as ghosts, instead of
        waiting for a seq they can never take."""
        chains = list({(a.coop, a.author) for a in lost.values()})
        rows = await _rows_in(w, "SELECT coop, author, raw FROM pending WHERE (coop, author)", chains)
        waiting = [decode_action(raw, check_signature=False) for _c, _a, raw in rows]
        gone = set(lost)
        for _ in range(len(waiting)):  # bounded: each pass moves one at least, or stops
            moved = [x for x in waiting if x.prev in gone and x.id not in gone and x.id not in self.new_aside]
            if not moved:
                return
            for x in moved:
                gone.add(x.id)
                self.new_aside[x.id] = x
                self.unpended.append(x.id)
                self.pending_removed[x.coop] = self.pending_removed.get(x.coop, 0) + 1
                self.pending_count -= 1

    async def write(self, w: aiosqlite.Connection, now: int) -> None:
        if self.unpended:
            await w.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in self.unpended])
        for coop, author, seq in self.demotions:
            where = "coop = ? AND author = ? AND seq >= ?"
            await w.execute(
                f"INSERT OR IGNORE INTO forks SELECT id, coop, author, seq, raw, received_at FROM actions WHERE {where}",
                (coop, author, seq),
            )
            cur = await w.execute(f"DELETE FROM actions WHERE {where}", (coop, author, seq))
            await w.execute("UPDATE coops SET actions = actions - ? WHERE id = ?", (cur.rowcount, coop))
        if self.unaside:
            await w.executemany("DELETE FROM forks WHERE id = ?", [(i,) for i in self.unaside])
        if self.new_aside:
            await w.executemany(
                "INSERT OR IGNORE INTO forks (id, coop, author, seq, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(x.id, x.coop, x.author, x.seq, x.raw, now) for x in self.new_aside.values()],
            )
        for g in self.new_coops.values():
            body = g.body_value()
            name = body.get("name", "") if isinstance(body, dict) else ""
            await w.execute("INSERT INTO coops (id, name, founder, created_ts) VALUES (?, ?, ?, ?)", (g.id, name, g.author, g.env.ts))
        used = [(coop, now, h) for h, coop in self.used_invites if coop in self.new_coops]
        if used:
            await w.executemany("UPDATE invites SET used_by = ?, used_at = ? WHERE hash = ?", used)
        if self.appends:
            # One pass per appended action (rows and per-chain counts), then one per chain.
            rows = []
            per_chain: dict[ChainKey, int] = {}
            chain_added: dict[ChainKey, int] = {}
            for a in self.appends:
                env, raw = a.env, a.raw
                coop = a.coop
                rows.append((a.id, coop, env.author, env.seq, env.kind, env.ts, raw, now))
                key = (coop, env.author)
                per_chain[key] = per_chain.get(key, 0) + 1
                chain_added[key] = chain_added.get(key, 0) + len(raw)
            await w.executemany(
                "INSERT INTO actions (id, coop, author, seq, kind, ts, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            per_coop: dict[bytes, int] = {}
            coop_added: dict[bytes, int] = {}
            for key, n in per_chain.items():
                coop = key[0]
                per_coop[coop] = per_coop.get(coop, 0) + n
                coop_added[coop] = coop_added.get(coop, 0) + chain_added[key]
            self.coop_added, self.chain_added = coop_added, chain_added
            await w.executemany(
                "UPDATE coops SET actions = actions + ?, bytes = bytes + ? WHERE id = ?",
                [(n, coop_added[c], c) for c, n in per_coop.items()],
            )
        else:
            self.coop_added, self.chain_added = {}, {}
        if self.dirty_heads:
            base, added = self.chain_bytes, self.chain_added
            await w.executemany(
                "INSERT INTO chains (coop, author, head_seq, head_id, bytes) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (coop, author) DO UPDATE SET head_seq = excluded.head_seq, head_id = excluded.head_id, bytes = excluded.bytes",
                [(k[0], k[1], *self.heads[k], base.get(k, 0) + added.get(k, 0)) for k in self.dirty_heads],
            )
        if self.demotions or self.new_aside or self.unaside:
            # Rare (an equivocation displaced a fork): count the bytes of what is stored again.
            self.resync_bytes = True
            chains = {(c, au) for c, au, _ in self.demotions} | {(x.coop, x.author) for x in self.new_aside.values()}
            unaside = set(self.unaside)
            chains |= {(x.coop, x.author) for x in self.appends if x.id in unaside}
            await w.executemany(
                "UPDATE chains SET bytes = (SELECT COALESCE(SUM(length(raw)), 0) FROM actions a WHERE a.coop = ? AND a.author = ?) "
                "WHERE coop = ? AND author = ?",
                [(c, au, c, au) for c, au in chains],
            )
            await w.executemany(
                "UPDATE coops SET bytes = (SELECT COALESCE(SUM(length(raw)), 0) FROM actions WHERE coop = ?) WHERE id = ?",
                [(c, c) for c in {c for c, _ in chains}],
            )
        if self.released:
            await w.executemany("DELETE FROM quarantine WHERE id = ?", [(i,) for i in self.released])
        if self.new_held:
            await w.executemany(
                "INSERT OR IGNORE INTO quarantine (id, coop, author, seq, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(a.id, a.coop, a.author, a.seq, a.raw, now) for a in self.new_held.values()],
            )
        if self.new_pending:
            await w.executemany(
                "INSERT INTO pending (id, coop, author, seq, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(a.id, a.coop, a.author, a.seq, a.raw, now) for a in self.new_pending.values()],
            )
        if self.proofs:
            await w.executemany(
                "INSERT OR IGNORE INTO proofs (id, coop, author, seq, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(*p, now) for p in self.proofs],
            )
