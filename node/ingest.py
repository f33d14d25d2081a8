"""The one path by which actions enter a node, from members (client API) and peers alike.

Theory of operation. Two steps, each a method, so that a caller may overlap them (the catch-up
pipeline verifies one fetch reply while the one before it is stored):

1. ``check(raws, source)``: skip what is held already (peers' pushes only: gossip delivers most
   actions several times, and a lookup costs less than a signature), validate the rest (inline, or
   in worker processes for large batches), then the door: the co-op must be in this node's scope
   (and, for a fetch reply, the co-op that was asked for), the author not blocked here, and a
   client's genesis allowed by the founding policy. The verdicts say what was refused and why,
   and count what no honest node sends (forged and invalid actions) for the peer layer's
   penalties.
2. ``store(checked)``: the store's group commit decides the rest (chains, pending, quarantine,
   quotas: ``node.store``), then the counts and metrics, then a peer's equivocation proofs.

``submit`` is both in one call. What each source's HTTP layer does with the verdicts (peer
penalties, client rate limits and statuses) stays in that layer: ``node.peer_api``, ``node.api``.

Why worker *processes*: threads looked enough (libsodium drops the GIL while it verifies), but
each verify thread must take the GIL back between signatures, and with the event loop and the
decoder busy in Python it waits a whole switch interval each time: measured here, threads ran
no faster than one core. Small submissions are validated inline, which is cheaper than a round
trip to a worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from protocol import Action, ProtocolError, RejectCode, ValidationError, decode_proof
from protocol.action import decode_many, peek
from protocol.ids import IdKind, format_id
from protocol.limits import DEFAULT_ACTION_LIMITS, ActionLimits

from .config import Admission, Limits
from .metrics import Metrics
from .store import IngestResult, Store

log = logging.getLogger("coopnet.ingest")

INLINE_VALIDATION_MAX = 32  # smaller submissions are validated in the event loop
WORKER_PART = 250  # actions sent to a verify worker at a time

# What no honest node sends (it validates before it forwards): the peer layer penalises these.
# Not unsupported_version: an honest node of a later protocol version forwards what it validated.
INTRINSIC = frozenset(
    {
        RejectCode.MALFORMED,
        RejectCode.NOT_CANONICAL,
        RejectCode.TOO_LARGE,
        RejectCode.BAD_SCHEMA,
        RejectCode.BAD_BODY,
        RejectCode.BAD_ID,
    }
)
FORGED = frozenset({RejectCode.BAD_SIGNATURE, RejectCode.BAD_KEY})
STATUSES = ("accepted", "known", "pending", "held", "rejected")


def validate_chunk(raws: Sequence[bytes], limits: ActionLimits | None) -> list[Action | ProtocolError]:
    """``None`` means the protocol defaults (their identity would not survive a pickle)."""
    return decode_many(tuple(raws), limits)


def invite_hash(token: str) -> bytes:
    """What the store keeps of an invite token (never the token itself)."""
    return hashlib.sha256(b"coopnet/invite\x00" + token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Source:
    """Where actions come from: a client (by address) or a peer node (by id). ``label`` names the
    way in, in metrics: ``client``, ``push`` or ``fetch``."""

    label: str
    peer: bytes | None = None
    address: str | None = None
    invite: bytes | None = None  # the hash of the invite token a client sent with a genesis

    @classmethod
    def client(cls, address: str, invite_token: str | None = None) -> Source:
        return cls("client", None, address, invite_hash(invite_token) if invite_token else None)

    @classmethod
    def from_peer(cls, node_id: bytes, label: str) -> Source:
        return cls(label, node_id)


@dataclass(slots=True)
class Checked:
    """Step one's verdicts: what was refused at the door (by input position), and the valid
    actions that wait for the store (with their input positions)."""

    source: Source
    size: int  # inputs
    actions: list[Action]
    positions: list[int]
    refused: list[tuple[int, IngestResult]]
    proofs: tuple[bytes, ...] = ()
    known: int = 0  # skipped before validation: held here already (peers' pushes)
    top: dict[bytes, int] = field(default_factory=dict)  # per author, the highest seq skipped as held
    forged: int = 0  # bad signatures or keys
    invalid: int = 0  # otherwise intrinsically invalid


@dataclass(slots=True)
class Outcome:
    """Step two's: one result per stored-or-refused action, counts by status, and for peers the
    progress of each chain (``top``: per author, the highest seq now held among those sent;
    ``forks``: per author, the lowest seq refused because its prev is not this node's action below
    it, so the peer holds another fork that starts further down)."""

    results: list[IngestResult]  # aligned with Checked.actions
    counts: dict[str, int]
    top: dict[bytes, int]
    forks: dict[bytes, int]
    bogus_proofs: int = 0

    def in_order(self, checked: Checked) -> list[IngestResult]:
        """Every input's result in input order (a client's answer; nothing was skipped)."""
        out: list[IngestResult] = [IngestResult(b"", "known")] * checked.size
        for i, r in checked.refused:
            out[i] = r
        for i, r in zip(checked.positions, self.results, strict=True):
            out[i] = r
        return out


@dataclass
class IngestStats:
    accepted: int = 0
    known: int = 0
    pending: int = 0
    held: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, counts: dict[str, int], rejected: Counter[str]) -> None:
        self.accepted += counts["accepted"]
        self.known += counts["known"]
        self.pending += counts["pending"]
        self.held += counts["held"]
        self.rejected.update(rejected)


class Ingestor:
    def __init__(
        self,
        store: Store,
        limits: Limits,
        metrics: Metrics,
        *,
        admission: Admission | None = None,
        in_scope: Callable[[bytes], bool] | None = None,
        configured: Callable[[], frozenset[bytes] | None] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.clock_ms = clock_ms  # None: no clock-skew check (pure store tests)
        self.admission = admission or Admission()
        self.in_scope = in_scope or (lambda coop: True)
        self.configured = configured or (lambda: None)  # the co-ops federation.replicate lists (None: all)
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
        """Decode and verify; then refuse what is stamped too far ahead of this node's clock: the
        co-op clock is read off members' stamps, so nobody may bank a stamp from the future (a peer
        relaying one is not at fault: its clock may run ahead; the action is taken when it is due)."""
        checked = await self._validate(raws)
        if self.clock_ms is not None:
            skew = self.limits.max_clock_skew_ms
            horizon = self.clock_ms() + skew
            for i, x in enumerate(checked):
                if isinstance(x, Action) and x.env.ts > horizon:
                    ahead = x.env.ts - horizon + skew
                    checked[i] = ValidationError(
                        RejectCode.FROM_THE_FUTURE,
                        f"stamped {ahead} ms ahead of this node's clock (at most {skew} ms allowed); send it again when it is due",
                    )
        return checked

    async def foreign_deps(self, actions: Sequence[Action]) -> dict[bytes, bytes]:
        """Actions naming as a dep an action this node holds in another co-op: id -> that dep."""
        deps = {d for a in actions for d in a.env.deps}
        if not deps:
            return {}
        coops = await self.store.coops_of(list(deps))
        out: dict[bytes, bytes] = {}
        for a in actions:
            for d in a.env.deps:
                if coops.get(d, a.coop) != a.coop:
                    out[a.id] = d
                    break
        return out

    async def _validate(self, raws: Sequence[bytes]) -> list[Action | ProtocolError]:
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

    # ---- the one path ------------------------------------------------------------------------

    async def submit(self, raws: Sequence[bytes], source: Source) -> list[IngestResult]:
        """Both steps: one result per input, in order, each after its commit."""
        checked = await self.check(raws, source)
        return (await self.store_checked(checked)).in_order(checked)

    async def check(
        self,
        raws: Sequence[bytes],
        source: Source,
        *,
        proofs: tuple[bytes, ...] = (),
        skip_known: bool = False,
        coop: bytes | None = None,
    ) -> Checked:
        """Step one: skip what is held (``skip_known``), validate, and judge at the door. ``coop``:
        the co-op a fetch asked for; actions of any other are refused."""
        top: dict[bytes, int] = {}
        known = 0
        fresh: Sequence[bytes] = raws
        where: list[int] | None = None  # input position of each fresh raw (None: the same)
        if skip_known and raws:
            # An id is only peeked from the bytes; whatever is new is fully checked.
            peeked = [peek(raw) for raw in raws]
            held = await self.store.known_ids([p[0] for p in peeked if p is not None])
            fresh, where = [], []
            for i, (raw, p) in enumerate(zip(raws, peeked, strict=True)):
                if p is not None and p[0] in held:
                    top[p[1]] = max(p[2], top.get(p[1], 0))  # held already, so validated before
                else:
                    fresh.append(raw)
                    where.append(i)
            known = len(raws) - len(fresh)
        checked = await self.validate(fresh) if fresh else []
        out = Checked(source, len(raws), [], [], [], proofs, known, top)
        actions, positions, refused = out.actions, out.positions, out.refused
        in_scope = self.in_scope
        store = self.store
        client = source.label == "client"  # an operator's import founds what its archive holds
        scope: dict[bytes, bool] = {}  # in_scope per co-op, asked once per call (a batch is mostly one co-op)
        for j, x in enumerate(checked):
            i = j if where is None else where[j]
            if isinstance(x, ProtocolError):
                refused.append((i, IngestResult(b"", "rejected", x.code, x.message)))
                if x.code in FORGED:
                    out.forged += 1
                elif x.code in INTRINSIC:
                    out.invalid += 1
                continue
            c = x.coop
            ok = scope.get(c)
            if ok is None:
                ok = scope[c] = in_scope(c)
            if coop is not None and c != coop:
                refused.append((i, _refuse(x, RejectCode.OUT_OF_SCOPE, "not of the co-op this fetch asked for")))
            elif not ok:
                refused.append((i, _refuse(x, RejectCode.OUT_OF_SCOPE, _out_of_scope_message(c))))
            elif store.blocked and store.is_blocked(c, x.env.author):
                refused.append((i, _refuse(x, RejectCode.BLOCKED, "this node refuses this author's actions (its operator's block list)")))
            elif client and x.env.coop is None and (why := self._founding(x, source)) is not None:
                refused.append((i, _refuse(x, RejectCode.FOUNDING_REFUSED, why)))
            else:
                actions.append(x)
                positions.append(i)
        if client and actions:
            # A dep of another co-op can never be in this co-op's causal past: the action would
            # wait for ever, and so would everything built on it. Refused at the door, never stored.
            # (Clients only: a catch-up would pay a lookup per dep; an honest peer refused it already.)
            foreign = await self.foreign_deps(actions)
            if foreign:
                kept = [(a, i) for a, i in zip(actions, positions, strict=True) if a.id not in foreign]
                for a, i in zip(actions, positions, strict=True):
                    if a.id in foreign:
                        why = f"dep {format_id(IdKind.ACTION, foreign[a.id])} is an action of another co-op, not of this one"
                        refused.append((i, _refuse(a, RejectCode.FOREIGN_DEP, why)))
                actions[:] = [a for a, _ in kept]
                positions[:] = [i for _, i in kept]
        return out

    def _founding(self, genesis: Action, source: Source) -> str | None:
        """Why this node founds no co-op from this client's genesis, or None if it may."""
        policy = self.admission.founding
        if policy == "open" or self.store.hosts(genesis.id):  # a co-op here already: the store says known
            return None
        if policy == "closed":
            listed = self.configured()
            if listed is not None and genesis.id in listed:
                return None
            return "this node founds no new co-ops for clients (admission.founding = closed): found it on another node, or ask this node's operator to list its id in federation.replicate"
        if source.invite is None:
            return "this node founds new co-ops only with an invite (admission.founding = invite): send the token its operator gave you in the Coopnet-Invite header"
        return None  # the store checks the invite and uses it up, in the same transaction

    async def store_checked(self, checked: Checked) -> Outcome:
        """Step two: store what passed the door, count, and store a peer's proofs."""
        source = checked.source
        actions = checked.actions
        invite = source.invite if self.admission.founding == "invite" else None
        results = await self.store.ingest(actions, origin=source.peer, invite=invite) if actions else []
        counts = dict.fromkeys(STATUSES, 0)
        counts["known"] = checked.known
        rejected: Counter[str] = Counter()
        top = checked.top
        forks: dict[bytes, int] = {}
        if source.peer is not None:
            met: list[bytes] = []  # authors whose fork point itself was met: nothing further down
            for a, r in zip(actions, results, strict=True):
                status = r.status
                counts[status] += 1
                author = a.env.author
                if status == "rejected":
                    if r.code is not None:
                        rejected[r.code.value] += 1
                    if r.fork_below:
                        seq = a.env.seq
                        forks[author] = min(seq, forks.get(author, seq))
                    elif r.proof is not None:
                        met.append(author)
                elif status != "held":  # progress is what is held in a chain, not merely what was sent
                    seq = a.env.seq
                    if seq > top.get(author, 0):
                        top[author] = seq
                    if r.proof is not None:
                        met.append(author)
            for author in met:
                forks.pop(author, None)
        else:
            for r in results:
                counts[r.status] += 1
                if r.code is not None and r.status == "rejected":
                    rejected[r.code.value] += 1
        for _, r in checked.refused:
            counts["rejected"] += 1
            assert r.code is not None
            rejected[r.code.value] += 1
        self.stats.add(counts, rejected)
        label = source.label
        if counts["accepted"]:
            self.metrics.actions_stored.labels(label).inc(counts["accepted"])
        if counts["held"]:
            self.metrics.actions_held.labels(label).inc(counts["held"])
        for code, n in rejected.items():
            self.metrics.actions_rejected.labels(code, label).inc(n)
        out = Outcome(results, counts, top, forks)
        if checked.proofs:
            out.bogus_proofs = await self._store_proofs(checked)
        return out

    async def _store_proofs(self, checked: Checked) -> int:
        """A peer's equivocation proofs: verified, kept if in scope. Returns how many were bogus."""
        new_proofs = []
        bogus = 0
        for data in checked.proofs:
            try:
                proof = decode_proof(data)
            except ProtocolError:
                bogus += 1
                continue
            if self.in_scope(proof.coop):
                new_proofs.append(proof)
        if new_proofs and self.store.policy.hold_unknown:
            # A proof about an author not known here proves nothing this node folds, and anyone
            # can sign two actions: kept only about known authors (a later round brings the rest).
            known = await self.store.known_authors((p.coop, p.author) for p in new_proofs)
            new_proofs = [p for p in new_proofs if (p.coop, p.author) in known]
        if new_proofs:
            flags = await self.store.ingest_proofs(new_proofs, origin=checked.source.peer)
            self.metrics.proofs_stored.inc(sum(flags))
        return bogus


def _refuse(a: Action, code: RejectCode, message: str) -> IngestResult:
    return IngestResult(a.id, "rejected", code, message)


def _out_of_scope_message(coop: bytes) -> str:
    return f"this node does not replicate co-op {format_id(IdKind.COOP, coop)} (its operator lists the co-ops it keeps in federation.replicate)"
