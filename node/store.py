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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite

from protocol import Action, EquivocationProof, Placement, RejectCode, decode_action, make_proof, place
from protocol.messages import Head, Want
from protocol.reconcile import HeadSet

log = logging.getLogger("coopnet.store")

# Python's sqlite3 binds int, float and str directly but sends every bytes parameter through its
# adapter lookup, which fails twice (raising and clearing an AttributeError each time) before
# binding the bytes as they are. Ids, keys and raw actions are all bytes: measured under
# callgrind, that lookup cost more instructions than SQLite's own work for an insert. A
# registered adapter is found at the first step, and ``bytes.__bytes__`` returns the object itself.
sqlite3.register_adapter(bytes, bytes.__bytes__)

SCHEMA_VERSION = 2

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
)

SYNCHRONOUS_MODES = ("full", "normal")
HEAD_SETS_MAX_HEADS = 100_000  # chain heads kept for reconciliation between rounds, all co-ops together (~20 MB)


class StoreError(Exception):
    """The store cannot do its job (disk full, corrupt file, newer schema)."""


class IngestResult(NamedTuple):
    # A named tuple rather than a frozen dataclass: one is built for every action a node
    # receives, and a tuple is built in a third of the time.
    id: bytes
    status: str  # accepted | known | pending | rejected
    code: RejectCode | None = None
    message: str | None = None
    proof: bytes | None = None  # the equivocation proof this action produced, if any
    fork_below: bool = False  # its prev is not this node's action below it: the chains part further down


@dataclass(frozen=True, slots=True)
class StoredAction:
    pos: int | None  # None while pending
    raw: bytes
    status: str  # stored | pending | forked (displaced from its chain by an equivocation)
    received_at: int

    def action(self) -> Action:
        # Stored bytes were validated on the way in; skip the signature on the way out.
        return decode_action(self.raw, check_signature=False)


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


@dataclass(slots=True)
class _Job:
    actions: Sequence[Action]
    proofs: Sequence[EquivocationProof]
    origin: bytes | None  # the peer node it came from, None for the client API
    future: asyncio.Future[tuple[list[IngestResult], list[bool]]]


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
    ) -> None:
        self.path = path
        self._w = writer
        self._r = reader
        self._clock_ms = clock_ms
        self.max_pending = max_pending
        self.max_group = max_group
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._coops: set[bytes] = set()
        self._pending_count = 0
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
        store = cls(path, writer, reader, clock_ms=clock_ms, max_pending=max_pending, max_group=max_group)
        async with writer.execute("SELECT id FROM coops") as cur:
            store._coops = {row[0] for row in await cur.fetchall()}
        async with writer.execute("SELECT COUNT(*) FROM pending") as cur:
            store._pending_count = (await cur.fetchone())[0]  # type: ignore[index]
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

    async def ingest(self, actions: Sequence[Action], *, origin: bytes | None = None) -> list[IngestResult]:
        """Store intrinsically valid actions; one result per action, after its commit."""
        if not actions:
            return []
        return (await self._submit(_Job(actions, (), origin, asyncio.get_running_loop().create_future())))[0]

    async def ingest_proofs(self, proofs: Sequence[EquivocationProof], *, origin: bytes | None = None) -> list[bool]:
        """Store verified equivocation proofs; True for each one that was new here."""
        if not proofs:
            return []
        return (await self._submit(_Job((), proofs, origin, asyncio.get_running_loop().create_future())))[1]

    async def _submit(self, job: _Job) -> tuple[list[IngestResult], list[bool]]:
        if self._closed:
            raise StoreError("store closed")
        self._queue.put_nowait(job)
        return await job.future

    async def _writer_loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].actions) + len(jobs[0].proofs)
            while size < self.max_group and not self._queue.empty():
                job = self._queue.get_nowait()
                jobs.append(job)
                size += len(job.actions) + len(job.proofs)
            self._group_started = time.monotonic()
            try:
                results, proof_flags, committed = await self._commit_group(jobs)
            except asyncio.CancelledError:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(StoreError("store closed"))
                raise
            except Exception as e:  # the disk, not the input: fail this group, keep serving
                self._group_started = None
                log.exception("group commit failed")
                with contextlib.suppress(Exception):
                    await self._w.rollback()
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(StoreError(f"could not commit: {e}"))
                continue
            self._group_started = None
            i = j = 0
            for job in jobs:
                n, m = len(job.actions), len(job.proofs)
                if not job.future.done():
                    job.future.set_result((results[i : i + n], proof_flags[j : j + m]))
                i, j = i + n, j + m
            if committed.actions or committed.proofs or committed.displaced:
                for listener in self.listeners:
                    try:
                        listener(committed)
                    except Exception:
                        log.exception("commit listener failed")

    async def _commit_group(self, jobs: list[_Job]) -> tuple[list[IngestResult], list[bool], Committed]:
        now = self._clock_ms()
        w = self._w
        group = [a for job in jobs for a in job.actions]
        proofs = [(p, job.origin) for job in jobs for p in job.proofs]
        await w.execute("BEGIN IMMEDIATE")
        try:
            plan = await _GroupPlan.build(w, group, self._coops, self._pending_count, self.max_pending, self._has_forks)
            proof_flags = await plan.add_proofs(w, proofs)
            await plan.write(w, now)
            await w.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await w.execute("ROLLBACK")
            raise
        self._coops.update(plan.new_coops)
        self._pending_count = plan.pending_count
        self._has_forks = self._has_forks or bool(plan.demotions or plan.forked_inline)
        for coop in {coop for coop, _author in plan.dirty_heads}:
            self._heads_epoch[coop] = self._heads_epoch.get(coop, 0) + 1
            self._forget_head_set(coop)
        self.groups_committed += 1
        self.actions_committed += len(plan.appends)
        origins = {a.id: job.origin for job in jobs for a in job.actions}
        committed = Committed(
            [(a, origins.get(a.id)) for a in plan.appends],
            list(
                {
                    pid: (coop, raw, plan.proof_origins.get(pid)) for pid, coop, _a, _s, raw in plan.proofs if pid in plan.new_proof_ids
                }.values()
            ),
            frozenset(coop for coop, _author, _seq in plan.demotions),
        )
        return plan.results, proof_flags, committed

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
        return None

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


def _statements(script: str) -> list[str]:
    # Migrations hold no semicolons inside literals, so splitting is exact; comments are kept.
    return [s.strip() for s in script.split(";") if s.strip() and not all(line.strip().startswith("--") for line in s.strip().splitlines())]


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


class _GroupPlan:
    """The decisions for one group, computed from a few set-based reads, then written at once."""

    def __init__(self, pending_count: int) -> None:
        self.results: list[IngestResult] = []
        self.appends: list[Action] = []
        self.new_coops: dict[bytes, Action] = {}
        self.heads: dict[ChainKey, tuple[int, bytes]] = {}
        self.dirty_heads: set[ChainKey] = set()
        self.new_pending: dict[bytes, Action] = {}
        self.unpended: list[bytes] = []  # rows to delete from pending: promoted or now in a proof
        self.demotions: list[tuple[bytes, bytes, int]] = []  # (coop, author, from seq) leaving the chain
        self.forked_inline: list[Action] = []  # displaced actions that never reached the actions table
        self.proofs: list[tuple[bytes, bytes, bytes, int, bytes]] = []
        self.proof_origins: dict[bytes, bytes | None] = {}
        self.new_proof_ids: set[bytes] = set()
        self.pending_count = pending_count

    @classmethod
    async def build(
        cls, w: aiosqlite.Connection, group: list[Action], coops: set[bytes], pending_count: int, max_pending: int, has_forks: bool
    ) -> _GroupPlan:
        plan = cls(pending_count)
        # Each action's place (co-op, author, seq), read once: the properties behind it cost more
        # than the set and dict work below, done for thousands of actions per group.
        where = [(a.coop, a.env.author, a.env.seq) for a in group]
        heads = plan.heads
        for coop, author, head_seq, head_id in await _rows_in(
            w, "SELECT coop, author, head_seq, head_id FROM chains WHERE (coop, author)", list({k[:2] for k in where})
        ):
            heads[(coop, author)] = (head_seq, head_id)

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

        # A fresh action at or below its chain's head is an equivocation: fetch what occupies the seq.
        occupants: dict[tuple[bytes, bytes, int], Action] = {}
        rivals = list({k for a, k in zip(group, where, strict=True) if k in held and a.id not in known})
        for coop, author, seq, raw in await _rows_in(w, "SELECT coop, author, seq, raw FROM actions WHERE (coop, author, seq)", rivals):
            occupants[(coop, author, seq)] = decode_action(raw, check_signature=False)

        pending: dict[ChainKey, dict[int, Action]] = {}
        if pending_count:
            keys = list({k[:2] for a, k in zip(group, where, strict=True) if a.id not in known})
            for coop, author, seq, raw in await _rows_in(w, "SELECT coop, author, seq, raw FROM pending WHERE (coop, author)", keys):
                pending.setdefault((coop, author), {})[seq] = decode_action(raw, check_signature=False)

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
            res = plan._decide(a, (coop, author, seq), coops, occupants, pending, max_pending)
            seen[action_id] = res
            results[i] = res
        plan.results = [r for r in results if r is not None]
        return plan

    def _decide(
        self,
        a: Action,
        at: tuple[bytes, bytes, int],  # (a.coop, a.author, a.seq)
        coops: set[bytes],
        occupants: dict[tuple[bytes, bytes, int], Action],
        pending: dict[ChainKey, dict[int, Action]],
        max_pending: int,
    ) -> IngestResult:
        coop, author, seq = at
        if coop not in coops and coop not in self.new_coops and not a.is_genesis:
            return IngestResult(a.id, "rejected", RejectCode.UNKNOWN_COOP, "no genesis for this co-op is stored here")
        key = (coop, author)
        head_seq, head_id = self.heads.get(key, _NO_HEAD)
        chain_pending = pending.get(key)
        if chain_pending is None:
            chain_pending = pending[key] = {}
        occupant = occupants.get(at)
        waiting = chain_pending.get(seq)  # a pending action already holding this seq
        if occupant is None and a.seq > head_seq + 1:
            occupant = waiting
        where = place(a, head_seq, head_id, occupant)
        if where is Placement.EQUIVOCATION:
            assert occupant is not None
            proof = self._prove(a, occupant)
            if a.id < occupant.id and a.prev == occupant.prev and not occupant.is_genesis:
                # Every node keeps the fork with the smaller id, so chains converge whichever
                # fork each node saw first. The displaced action and its successors are kept
                # aside (forks table), not lost.
                if a.seq > head_seq:
                    del chain_pending[a.seq]
                    self._unpend(occupant)
                    self.forked_inline.append(occupant)
                    chain_pending[a.seq] = a
                    self.new_pending[a.id] = a
                    self.pending_count += 1
                    return IngestResult(a.id, "pending", message="replaces a pending fork with a larger id", proof=proof)
                self._demote(key, a.seq, a.prev, occupants)
                self._append(a, at, occupants)
                self._promote(key, chain_pending, occupants)
                return IngestResult(a.id, "accepted", message="replaces the fork with the larger id", proof=proof)
            return IngestResult(
                a.id,
                "rejected",
                RejectCode.CHAIN_CONFLICT,
                f"seq {a.seq} of this author is already taken: equivocation proven",
                proof,
                fork_below=a.prev != occupant.prev,
            )
        # At head + 1 a pending action can only be one whose prev did not link (see _promote): a
        # fork waiting for its rival. This action is that rival, so the fork is proven either way.
        proof = self._prove(a, waiting) if waiting is not None else None
        if where is Placement.FORK:
            return IngestResult(
                a.id,
                "rejected",
                RejectCode.CHAIN_CONFLICT,
                f"prev does not match this author's action at seq {a.seq - 1}",
                proof,
                fork_below=True,
            )
        if where is Placement.PENDING:
            if self.pending_count >= max_pending:
                return IngestResult(
                    a.id, "rejected", RejectCode.CHAIN_GAP, f"seq {head_seq + 1} is missing and the pending area is full ({max_pending})"
                )
            chain_pending[a.seq] = a
            self.new_pending[a.id] = a
            self.pending_count += 1
            return IngestResult(a.id, "pending", message=f"waiting for seq {head_seq + 1}")
        if waiting is not None:
            del chain_pending[a.seq]
            self._unpend(waiting)  # it lives on in the proof
        self._append(a, at, occupants)
        if chain_pending:
            self._promote(key, chain_pending, occupants)
        return IngestResult(a.id, "accepted", proof=proof)

    def _demote(self, key: ChainKey, seq: int, new_prev: bytes | None, occupants: dict[tuple[bytes, bytes, int], Action]) -> None:
        """Move ``key``'s chain from ``seq`` up out of the chain: stored rows in SQL (write), and
        any appended earlier in this group right here."""
        coop, author = key
        kept = []
        for x in self.appends:
            if x.coop == coop and x.author == author and x.seq >= seq:
                self.forked_inline.append(x)
            else:
                kept.append(x)
        self.appends = kept
        self.demotions.append((coop, author, seq))
        for q in [q for (c, au, q) in occupants if c == coop and au == author and q >= seq]:
            del occupants[(coop, author, q)]
        self.heads[key] = (seq - 1, new_prev)  # type: ignore[assignment]
        self.dirty_heads.add(key)

    def _prove(self, a: Action, other: Action) -> bytes:
        proof = make_proof(a, other)
        self.proofs.append((proof.id, proof.coop, proof.author, proof.seq, proof.encode()))
        return proof.id

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
        return flags

    def _promote(self, key: ChainKey, chain_pending: dict[int, Action], occupants: dict[tuple[bytes, bytes, int], Action]) -> None:
        """The gap below pending successors may just have closed: append them in order."""
        while True:
            head_seq, head_id = self.heads[key]
            nxt = chain_pending.get(head_seq + 1)
            if nxt is None or nxt.prev != head_id:
                # A successor that does not link stays pending: it forks the chain, and is proven
                # the moment its rival at the same seq arrives, whichever of the two came first.
                return
            del chain_pending[head_seq + 1]
            self._unpend(nxt)
            self._append(nxt, (*key, head_seq + 1), occupants)

    def _append(self, a: Action, at: tuple[bytes, bytes, int], occupants: dict[tuple[bytes, bytes, int], Action]) -> None:
        key = at[:2]
        self.appends.append(a)
        self.heads[key] = (at[2], a.id)
        self.dirty_heads.add(key)
        occupants[at] = a
        if a.env.coop is None:
            self.new_coops[a.id] = a

    def _unpend(self, a: Action) -> None:
        self.pending_count -= 1
        if self.new_pending.pop(a.id, None) is None:
            self.unpended.append(a.id)

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
        if self.forked_inline:
            await w.executemany(
                "INSERT OR IGNORE INTO forks (id, coop, author, seq, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(x.id, x.coop, x.author, x.seq, x.raw, now) for x in self.forked_inline],
            )
        for g in self.new_coops.values():
            body = g.body_value()
            name = body.get("name", "") if isinstance(body, dict) else ""
            await w.execute("INSERT INTO coops (id, name, founder, created_ts) VALUES (?, ?, ?, ?)", (g.id, name, g.author, g.env.ts))
        if self.appends:
            await w.executemany(
                "INSERT INTO actions (id, coop, author, seq, kind, ts, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(a.id, a.coop, a.author, a.seq, a.kind, a.env.ts, a.raw, now) for a in self.appends],
            )
            per_coop: dict[bytes, int] = {}
            for a in self.appends:
                per_coop[a.coop] = per_coop.get(a.coop, 0) + 1
            await w.executemany("UPDATE coops SET actions = actions + ? WHERE id = ?", [(n, c) for c, n in per_coop.items()])
        if self.dirty_heads:
            await w.executemany(
                "INSERT INTO chains (coop, author, head_seq, head_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (coop, author) DO UPDATE SET head_seq = excluded.head_seq, head_id = excluded.head_id",
                [(k[0], k[1], *self.heads[k]) for k in self.dirty_heads],
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
