"""Gossip: eager push of new actions, periodic anti-entropy, catch-up, peer announcements.

Theory of operation. Three loops, each bounded and independent of any one peer's health:

- **Push.** Every commit hands its newly stored actions and proofs to ``on_commit``. The pusher
  batches them (a few ms, up to ``PUSH_BATCH``), picks ``fanout`` random reachable peers that
  replicate the co-op, never the peer an action came from, and posts them. A peer that already
  has them answers ``known`` cheaply and does not forward them again, so a flood dies out.
- **Anti-entropy.** On a jittered interval, for each co-op in scope, one random ready peer is
  reconciled (protocol.reconcile): an idle round is one fingerprint exchange. Differences turn
  into chain segments to fetch, fetched in bounded batches and stored through the same ingest
  path as everything else (validation included). At most a few replies are in hand at once
  (one storing, two verifying, one fetched ahead): that is the backpressure, and since what is
  missing is computed from the store, a restart resumes where it stopped.
- **Announce.** Each node periodically sends its signed node record to its peers and learns
  theirs and the records they know, within what the federation allows. A record from anyone but
  the node itself is an introduction: a *probe* (an announce sent to the introduced node's URL,
  answered with its own signed record for that URL) must prove it before it takes a slot
  (peers.py, "who gets a slot"). Learned peers unreachable for ``forget_after`` are dropped.

Claims are checked lazily and cost only the claimer. A co-op that a peer's list names and this
node does not hold is tried with that peer alone (at most ``max_claims`` per round), never with
the others; if that peer then serves no action of it, the claim was false and it loses standing
(``bogus_claim``). A fetch reply keeps only what was asked (the co-op, the
wants, the proof ids); anything else is dropped and costs its sender (``unasked``). Every request
to a peer waits for this node's own budget for that peer (``request_rate``, peers.py ``Pacer``),
so however many co-ops it replicates, it stays under its peers' rate limits.

Peers that fail are backed off (peers.py); peers that send invalid data are penalised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from protocol import ProtocolError, SigningKey
from protocol.ids import IdKind, parse_id
from protocol.messages import (
    MAX_FETCH_IDS,
    PUSH_MAX_ACTIONS,
    Announce,
    FetchReply,
    FetchRequest,
    PeerPush,
    Want,
    decode_announce,
    decode_coop_list,
    decode_fetch_reply,
    decode_reconcile_reply,
    encode_announce,
    encode_fetch_request,
    encode_push,
    encode_reconcile_request,
    keep_asked,
)
from protocol.peer import BadRecordSignature, decode_node_record, sign_node_record
from protocol.reconcile import HeadSet, Reconciliation, resolve_probes

from .config import Federation, Limits
from .metrics import Metrics
from .peer_api import PeerApi
from .peers import Candidate, Peer, PeerBook, PeerClient, PeerError
from .store import Committed, Store

log = logging.getLogger("coopnet.gossip")

PUSH_BATCH = PUSH_MAX_ACTIONS
PUSH_MAX_BYTES = 4 * 1024 * 1024  # below the default request cap of every receiver
PUSH_BACKLOG = 5000  # entries waiting for one peer; beyond that, anti-entropy delivers them
PROOFS_PER_FETCH = 512  # proofs are up to ~8 KiB each: keep a reply well inside its byte cap
WALK_BACK_MAX = 20  # doublings when looking for where a peer's fork starts
PUSH_LINGER_S = 0.01
PUSH_QUEUE_MAX = 100_000  # actions and proofs waiting for the pusher

PushItem = tuple[bytes, bytes, bytes | None, bool]  # (coop, raw, origin, is_proof)

ANNOUNCE_INTERVAL_S = 30.0
PROGRESS_LOG_INTERVAL_MS = 2000
PROBE_CONCURRENCY = 8  # candidates contacted at once


class Scope:
    """The co-ops this node replicates: a configured list, or all (``configured`` None), plus its
    co-ops' federation *partners*, which follow governance, not config, and need both sides.

    A co-op's data goes to another co-op's nodes only by both co-ops' decisions. This node asks for
    a partner P only while one of its configured co-ops C has decided to federate with P and P has
    not shown (in its own fold, once held here) that it does not federate with C; and it serves a
    co-op X to a peer whose record does not list X only if X has decided to federate with a co-op
    that peer lists (``consents``, from X's fold here). Either side ending the agreement stops both.
    """

    def __init__(self, replicate: tuple[str, ...] | None) -> None:
        self.configured: frozenset[bytes] | None = None if replicate is None else frozenset(parse_id(IdKind.COOP, c) for c in replicate)
        self._named: dict[bytes, frozenset[bytes]] = {}  # configured co-op -> the co-ops it federates with
        self._consent: dict[bytes, frozenset[bytes]] = {}  # any folded co-op -> the co-ops it federates with
        self.partners: frozenset[bytes] = frozenset()

    @property
    def coops(self) -> frozenset[bytes] | None:
        return None if self.configured is None else self.configured | self.partners

    def set_partners(self, coop: bytes, partners: set[bytes]) -> None:
        """What ``coop``'s governance currently federates with (as folded here)."""
        self._consent[coop] = frozenset(partners)
        if self.configured is not None and coop in self.configured:
            self._named[coop] = frozenset(partners)
        self._recompute()

    def consents(self, coop: bytes) -> frozenset[bytes] | None:
        """The co-ops ``coop`` has decided to federate with, as folded here (None: not folded)."""
        return self._consent.get(coop)

    def _recompute(self) -> None:
        if self.configured is None:
            return
        now: set[bytes] = set()
        for c, named in self._named.items():
            for p in named:
                theirs = self._consent.get(p)
                if p not in self.configured and (theirs is None or c in theirs):
                    now.add(p)
        frozen = frozenset(now)
        for c in frozen - self.partners:
            log.info("replicating co-op %s: a federation agreement names it", c.hex()[:16])
        for c in self.partners - frozen:
            log.info("no longer replicating co-op %s: its federation agreement ended (or was never made on its side)", c.hex()[:16])
        self.partners = frozen

    def __call__(self, coop: bytes) -> bool:
        return self.configured is None or coop in self.configured or coop in self.partners


@dataclass(slots=True)
class _LookAhead:
    """A fetch sent before the replies before it were stored, and the state it assumed."""

    basis: dict[bytes, Want]  # the wants as they will be if every earlier reply fills its batch
    batch: tuple[Want, ...]
    asked_proofs: list[bytes]
    rest: list[bytes]
    call: asyncio.Future[FetchReply]


@dataclass(slots=True)
class _Stage:
    """A reply on its way to the store, with the batch it answered."""

    batch: tuple[Want, ...]
    more: bool  # the reply was cut short
    got_proofs: bool
    guessed: bool  # the batch was worked out from a guess
    expect: dict[bytes, Want] | None  # the wants once stored, as guessed when it arrived (None: no guess)
    task: asyncio.Future[Any]  # verifying (PeerApi.prepare), then storing (PeerApi.store_intake)


class _Pipeline:
    """Fetched replies, oldest first: some being verified, one being stored. Replies are stored in
    the order they were fetched, and each is settled (its wants advanced) once stored."""

    def __init__(self, gossip: Gossip, remaining: dict[bytes, Want]) -> None:
        self.gossip, self.remaining = gossip, remaining
        self.back: dict[bytes, int] = {}  # per author: how far down we look for where the peer's fork starts
        self.verifying: deque[_Stage] = deque()
        self.storing: _Stage | None = None
        self.fetched = 0
        self.moved = True

    async def step(self) -> bool:
        """Store the oldest verified reply (after settling the one stored before it). False when
        that one did not fill its wants as guessed."""
        st = self.verifying.popleft()
        intake = await st.task
        held = await self._settle()
        st.task = asyncio.ensure_future(self.gossip.peer_api.store_intake(intake))
        self.storing = st
        return held

    async def _settle(self) -> bool:
        st, self.storing = self.storing, None
        if st is None:
            return True
        n, moved = await self.gossip._settle(st, self.remaining, self.back)
        self.fetched += n
        self.moved = self.moved and moved
        return st.expect is not None and self.remaining == st.expect

    async def drain(self) -> bool:
        """Everything fetched stored and settled. False if a reply moved no want (and was asked
        from what was held, not on a guess): the peer is not making progress."""
        self.moved = True
        while self.verifying:
            await self.step()
        await self._settle()
        return self.moved

    def abandon(self) -> None:
        """Left by an error or a cancellation: let what is under way finish on its own."""
        for st in (*self.verifying, *((self.storing,) if self.storing else ())):
            st.task.add_done_callback(lambda f: f.cancelled() or f.exception())


def _advance(wants: dict[bytes, Want], batch: tuple[Want, ...]) -> dict[bytes, Want]:
    """``wants`` as they will be once ``batch`` has been filled."""
    out = dict(wants)
    for asked in batch:
        w = out.get(asked.author)
        if w is None:
            continue
        if asked.last >= w.last:
            del out[asked.author]
        else:
            out[asked.author] = Want(asked.author, max(w.first, asked.last + 1), w.last)
    return out


def _discard(ahead: _LookAhead | None) -> None:
    if ahead is None:
        return
    ahead.call.cancel()
    # Retrieve its outcome so a failure of a request nobody waits for is not logged as lost.
    ahead.call.add_done_callback(lambda f: f.cancelled() or f.exception())


def node_record(key: SigningKey, url: str, federation: Federation, scope: Scope, ts: int) -> bytes:
    # The record lists the co-ops this node replicates by its operator's choice; partners are not
    # listed: a peer serves a partner co-op to this node by that co-op's own decision (Scope).
    coops = sorted(scope.configured) if scope.configured is not None else []
    return sign_node_record(key, url=url, federation=federation.name, coops=coops, all_coops=scope.configured is None, ts=ts).encode()


@dataclass
class Progress:
    """Catch-up progress: actions known to be missing, and fetched so far."""

    total: int = 0
    done: int = 0
    started_ms: int = 0
    active: bool = False
    last_log_ms: int = 0

    def rate(self, now: int) -> float:
        elapsed = (now - self.started_ms) / 1000
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: int) -> float | None:
        r = self.rate(now)
        return (self.total - self.done) / r if r > 0 else None

    def view(self, now: int) -> dict[str, object]:
        eta = self.eta_s(now)
        return {
            "active": self.active,
            "total": self.total,
            "done": self.done,
            "rate": round(self.rate(now), 1) if self.active else 0.0,
            "eta_s": round(eta, 1) if eta is not None and self.active else None,
        }


class Gossip:
    def __init__(
        self,
        *,
        record: Callable[[], bytes],
        scope: Scope,
        store: Store,
        peer_api: PeerApi,
        book: PeerBook,
        client: PeerClient,
        federation: Federation,
        limits: Limits,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        rng: random.Random,
    ) -> None:
        self.record = record
        self.scope = scope
        self.store = store
        self.peer_api = peer_api
        self.book = book
        self.client = client
        self.federation = federation
        self.limits = limits
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.rng = rng
        self.progress = Progress()
        # One entry per commit, not per action: a catch-up commits thousands of actions a second,
        # and queueing each one separately cost the event loop more than deciding where it goes.
        self._push_queue: asyncio.Queue[list[PushItem]] = asyncio.Queue()
        self._push_queued = 0  # items in _push_queue, bounded by PUSH_QUEUE_MAX
        self._tasks: list[asyncio.Task[None]] = []
        self._pushing: set[bytes] = set()  # peers with a push in flight
        self._backlog: dict[bytes, deque[tuple[bytes, bool]]] = {}  # per peer: (raw, is_proof) waiting
        self._push_tasks: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()  # set to run an anti-entropy round now (tests, new peers)
        self._probe_wake = asyncio.Event()  # set when a candidate is introduced
        self._probe_gate = asyncio.Semaphore(PROBE_CONCURRENCY)
        self._probe_tasks: set[asyncio.Task[None]] = set()
        self._claims: dict[bytes, tuple[bytes, bool]] = {}  # co-op being checked -> (claimer, served anything of it)
        self._listed_at: dict[bytes, int] = {}  # peer -> when its co-op list was last asked for
        # The deps a co-op's governance fold waits for that no chain segment brings (an action kept
        # aside by an equivocation that this node never received): asked for by id after a sync.
        # Set by the node once governance exists; None: nothing is asked by id.
        self.missing_deps: Callable[[bytes, bytes], Awaitable[list[bytes]]] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.store.listeners.append(self.on_commit)
        self.book.on_candidate = self._probe_wake.set
        if self.book.candidates:  # introduced between the server's start and this one
            self._probe_wake.set()
        self._tasks = [
            asyncio.create_task(self._pusher(), name="gossip-push"),
            asyncio.create_task(self._anti_entropy(), name="gossip-anti-entropy"),
            asyncio.create_task(self._announcer(), name="gossip-announce"),
            asyncio.create_task(self._prober(), name="gossip-probe"),
        ]
        self.wake.set()  # the first round at once: a node that starts behind catches up without waiting

    async def stop(self) -> None:
        for t in [*self._tasks, *self._push_tasks, *self._probe_tasks]:
            t.cancel()
        for t in [*self._tasks, *self._push_tasks, *self._probe_tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        await self.client.close()

    # ---- push --------------------------------------------------------------------------------

    def on_commit(self, committed: Committed) -> None:
        if not self.book.peers:
            return
        items = [(action.coop, action.raw, origin, False) for action, origin in committed.actions]
        items += [(coop, raw, origin, True) for coop, raw, origin in committed.proofs]
        # Beyond the bound, anti-entropy delivers the rest later; the push is only the fast path.
        room = PUSH_QUEUE_MAX - self._push_queued
        if room > 0 and items:
            del items[room:]
            self._push_queued += len(items)
            self._push_queue.put_nowait(items)

    async def _pusher(self) -> None:
        while True:
            items = await self._push_queue.get()
            await asyncio.sleep(PUSH_LINGER_S)
            while len(items) < PUSH_BATCH and not self._push_queue.empty():
                items.extend(self._push_queue.get_nowait())
            self._push_queued -= len(items)
            by_coop: dict[bytes, list[tuple[bytes, bytes | None, bool]]] = {}
            for coop, raw, origin, is_proof in items:
                by_coop.setdefault(coop, []).append((raw, origin, is_proof))
            for coop, entries in by_coop.items():
                candidates = [p for p in self.book.ready() if p.url and p.replicates(coop)]
                self.rng.shuffle(candidates)
                for peer in candidates[: self.federation.fanout]:
                    mine = [(raw, is_proof) for raw, origin, is_proof in entries if origin != peer.node_id]
                    if mine:
                        self._queue_push(peer, mine)

    def _queue_push(self, peer: Peer, entries: list[tuple[bytes, bool]]) -> None:
        """Send now, or after the push already in flight to this peer: a hung peer holds back only
        its own backlog (bounded; beyond it, anti-entropy delivers), never pushes to the others."""
        backlog = self._backlog.setdefault(peer.node_id, deque())
        room = PUSH_BACKLOG - len(backlog)
        backlog.extend(entries[: max(room, 0)])
        if peer.node_id not in self._pushing:
            self._pushing.add(peer.node_id)
            task = asyncio.create_task(self._drain(peer))
            self._push_tasks.add(task)
            task.add_done_callback(self._push_tasks.discard)

    async def _drain(self, peer: Peer) -> None:
        try:
            backlog = self._backlog.get(peer.node_id, deque())
            while backlog:
                chunk, size = [], 0
                while backlog and len(chunk) < PUSH_BATCH and size < PUSH_MAX_BYTES:
                    entry = backlog.popleft()
                    chunk.append(entry)
                    size += len(entry[0])
                msg = PeerPush(tuple(r for r, p in chunk if not p), tuple(r for r, p in chunk if p))
                try:
                    await self.client.call(peer, "/peer/v1/push", encode_push(msg), "push")
                    self.book.success(peer)
                except PeerError as e:
                    self.book.failure(peer, str(e))
                    backlog.clear()  # anti-entropy will deliver; do not hammer a failing peer
        finally:
            self._pushing.discard(peer.node_id)

    # ---- anti-entropy ------------------------------------------------------------------------

    async def _anti_entropy(self) -> None:
        while True:
            delay = self.federation.anti_entropy_interval * self.rng.uniform(0.5, 1.5)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the wait completes, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("anti-entropy round failed")

    async def round(self) -> int:
        """One anti-entropy round over every co-op in scope; returns actions fetched."""
        self._forget()
        ready = [p for p in self.book.ready() if p.url]
        if not ready:
            return 0
        claims: list[bytes] = []
        if self.scope.coops is None:
            coops = set(await self.store.coop_ids())
            # Replicating everything: learn the co-ops a peer holds that this node has never seen.
            # They are its claims: checked with it alone, a few a round (see the module docstring).
            # Peers are asked in turn (least recently asked first), so every peer's claims are
            # checked, and a liar's soon, however many honest peers there are.
            peer = min(ready, key=lambda p: (self._listed_at.get(p.node_id, 0), self.rng.random()))
            self._listed_at[peer.node_id] = self.clock_ms()
            if len(self._listed_at) > 2 * self.federation.max_peers:
                self._listed_at = {k: v for k, v in self._listed_at.items() if k in self.book.peers}
            try:
                listed = decode_coop_list(await self.client.call(peer, "/peer/v1/coops", b"", "coops"))
                self.book.success(peer)
                new = sorted(set(listed) - coops)
                claims = self.rng.sample(new, min(len(new), self.federation.max_claims))
            except (PeerError, ProtocolError) as e:
                self.book.failure(peer, str(e))
        else:
            coops = set(self.scope.coops)
        fetched = 0
        for coop in sorted(coops):
            candidates = [p for p in self.book.ready() if p.url and p.replicates(coop)]
            if candidates:
                fetched += await self.sync_coop(self.rng.choice(candidates), coop)
        for coop in claims:
            if self.book.refused(peer.node_id) or peer not in self.book.ready():
                break
            fetched += await self.check_claim(peer, coop)
        return fetched

    async def check_claim(self, peer: Peer, coop: bytes) -> int:
        """Fetch a co-op this node does not hold from the peer whose list named it. If the exchange
        went through and the peer served no action of it (it listed no heads, or sent nothing of
        what it listed), the claim was false: it costs that peer, never the others (whom this node
        did not even ask). An honest holder always serves something: every chain it lists has a
        seq 1, and the first fetch asks for exactly that."""
        self._claims[coop] = (peer.node_id, False)
        try:
            fetched, completed = await self._sync_coop(peer, coop)
        finally:
            _, served = self._claims.pop(coop, (b"", False))
        if completed and not served and await self.store.get_coop(coop) is None:
            self.book.penalize(peer.node_id, "bogus_claim")
            log.info("peer %s listed co-op %s but served nothing of it", peer.text_id, coop.hex()[:16])
        return fetched

    async def sync_coop(self, peer: Peer, coop: bytes) -> int:
        """Reconcile ``coop`` with ``peer`` and fetch what it has that this node lacks."""
        return (await self._sync_coop(peer, coop))[0]

    async def _sync_coop(self, peer: Peer, coop: bytes) -> tuple[int, bool]:
        """``sync_coop``, and whether the exchange went through (no failure, no invalid reply; an
        ``out_of_scope`` answer counts as not through, and is no fault of either side)."""
        try:
            rec = Reconciliation(coop, await self.store.head_set(coop), await self.store.proof_ids(coop))
            request = rec.next_request()
            while request is not None:
                reply = await self.client.call(peer, "/peer/v1/reconcile", encode_reconcile_request(request), "reconcile")
                self.metrics.reconcile_rounds.inc()
                rec.receive(decode_reconcile_reply(reply))
                request = rec.next_request()
            wants = list(rec.wants.values())
            if self.store.policy.quotas:
                wants = [w for w in (self._within_quota(coop, rec.mine, w) for w in wants) if w is not None]
            if rec.probes:
                mine = await self.store.ids_at(coop, [(p.author, p.seq) for p in rec.probes])
                wants += resolve_probes(rec.probes, mine)
            if self.store.blocked:
                # A blocked author's actions would be fetched and signature-checked only to be
                # refused at the door, every round for as long as the block lasts.
                wants = [w for w in wants if not self.store.is_blocked(coop, w.author)]
            peer.ahead = rec.missing
            peer.behind = rec.peer_lacks
            peer.reconciled_ms = self.clock_ms()
            self.metrics.reconciliations.labels("in_sync" if not wants and not rec.proof_wants else "differ").inc()
            fetched = await self._fetch(peer, coop, wants, rec.proof_wants, rec.missing) if wants or rec.proof_wants else 0
            if self.missing_deps is not None:
                fetched += await self._fetch_missing(peer, coop)
            self.book.success(peer)
            return fetched, True
        except PeerError as e:
            self.metrics.reconciliations.labels("failed").inc()
            if e.code == "out_of_scope":
                return 0, False
            self.book.failure(peer, str(e))
        except ProtocolError as e:
            self.metrics.reconciliations.labels("failed").inc()
            self.book.penalize(peer.node_id, "bad_message")
            self.book.failure(peer, f"invalid reply: {e}")
        return 0, False

    def _within_quota(self, coop: bytes, mine: HeadSet, want: Want) -> Want | None:
        """``want``, or what of it is worth fetching when a quota refused the chain's next action
        here: its extensions would be signature-checked only to be refused, every round; the action
        at this node's own head is still compared (a fork there is evidence, whatever the quota)."""
        if not self.store.over_quota(coop, want.author):
            return want
        head = mine.range(want.author, want.author + b"\x00")
        if head and head[0].seq >= want.first:
            return Want(want.author, want.first, want.first)
        return None

    async def _fetch(self, peer: Peer, coop: bytes, wants: list[Want], proof_wants: list[bytes], missing: int | None = None) -> int:
        """Fetch the wanted chain segments and proofs in bounded batches, as a pipeline: while one
        reply is stored, the next two are verified and the one after them is on the way. The
        batches sent ahead assume each reply fills what it was asked; when one does not (a fork,
        a chain that ends early, a reply cut short), what was sent ahead is dropped and the next
        batch is worked out again from what is actually held."""
        self._progress_start(sum(w.last - w.first + 1 for w in wants) if missing is None else missing)
        remaining = {w.author: w for w in wants}
        proofs = list(proof_wants)
        pipe = _Pipeline(self, remaining)
        # A co-op new to this node: its genesis must be stored before anything else of it is
        # accepted. The first request asks for one action of every chain; the responder sends the
        # founder's chain first, so the genesis leads that reply.
        first_of_each = await self.store.get_coop(coop) is None
        ahead: _LookAhead | None = None
        try:
            for _ in range(100_000):  # bounded: a round trip that makes no progress ends the loop
                if ahead is None:  # nothing sent ahead: work from what is actually held
                    if not await pipe.drain():
                        break  # no progress (a confused or hostile peer): stop rather than loop
                    if not remaining and not proofs:
                        break
                    if first_of_each:
                        batch = tuple(Want(w.author, w.first, w.first) for w in sorted(remaining.values(), key=lambda w: w.author)[:1024])
                    else:
                        batch = self._fetch_batch(remaining)
                    asked_proofs, proofs = proofs[:PROOFS_PER_FETCH], proofs[PROOFS_PER_FETCH:]
                    basis, guessed = dict(remaining), False
                    call = asyncio.ensure_future(self._fetch_call(peer, coop, batch, asked_proofs))
                else:
                    batch, asked_proofs, proofs, call = ahead.batch, ahead.asked_proofs, ahead.rest, ahead.call
                    basis, guessed = ahead.basis, True
                ahead = None
                reply = await call
                if reply.more and len(reply.proofs) < len(asked_proofs):
                    proofs = asked_proofs[len(reply.proofs) :] + proofs
                if not reply.actions and not reply.proofs:
                    await pipe.drain()
                    for asked in batch:  # the peer holds none of these (any more): drop them, go on
                        remaining.pop(asked.author, None)
                    if not batch and not asked_proofs:
                        break
                    continue
                expect = None
                if not first_of_each and not reply.more:
                    expect = _advance(basis, batch)
                    if expect or proofs:
                        nxt = self._fetch_batch(expect)
                        ask, rest = proofs[:PROOFS_PER_FETCH], proofs[PROOFS_PER_FETCH:]
                        ahead = _LookAhead(expect, nxt, ask, rest, asyncio.ensure_future(self._fetch_call(peer, coop, nxt, ask)))
                first_of_each = False
                prepare = asyncio.ensure_future(
                    self.peer_api.prepare(peer.node_id, reply.actions, reply.proofs, "fetch", skip_known=False, coop=coop)
                )
                pipe.verifying.append(_Stage(batch, reply.more, bool(reply.proofs), guessed, expect, prepare))
                if len(pipe.verifying) > 1 and not await pipe.step():
                    _discard(ahead)  # a stored reply did not fill its wants: what was sent ahead rests on a wrong guess
                    ahead = None
            await pipe.drain()
        finally:
            _discard(ahead)
            pipe.abandon()
            self._progress_end()
        return pipe.fetched

    async def _settle(self, st: _Stage, remaining: dict[bytes, Want], back: dict[bytes, int]) -> tuple[int, bool]:
        """Wait for a reply to be stored, then advance each want past what arrived (a segment the
        peer could not fill is done). Returns the actions accepted and whether anything moved."""
        counts, last_seen, forks = await st.task
        self._progress_add(counts["accepted"] + counts["pending"])
        before = dict(remaining)
        for asked in st.batch:
            w = remaining.get(asked.author)
            if w is None:  # asked on a guess that turned out wrong: already done with
                continue
            top = last_seen.get(asked.author)
            if asked.author in forks:
                # Its actions do not link to ours: the fork is further down. Look twice as far
                # each time; the first differing seq yields a proof and the smaller-id rule then
                # decides which branch both nodes keep.
                k = back[asked.author] = 2 * back.get(asked.author, 1)
                if k > 2**WALK_BACK_MAX:
                    del remaining[asked.author]
                else:
                    remaining[asked.author] = Want(asked.author, max(1, forks[asked.author] - k), w.last)
            elif top is not None and top >= w.last:
                del remaining[asked.author]
            elif top is not None and (top >= asked.last or st.more):
                remaining[asked.author] = Want(asked.author, max(w.first, top + 1), w.last)  # trimmed or cut: go on
            elif not st.more and not st.guessed:
                del remaining[asked.author]  # the peer holds no more of this chain
        return counts["accepted"], remaining != before or st.got_proofs or st.guessed

    async def _fetch_missing(self, peer: Peer, coop: bytes) -> int:
        """Ask ``peer`` by id for the deps ``coop``'s fold waits for, once; store what comes."""
        assert self.missing_deps is not None
        ids = (await self.missing_deps(coop, peer.node_id))[:MAX_FETCH_IDS]
        if not ids:
            return 0
        reply = await self._fetch_call(peer, coop, (), [], tuple(ids))
        if not reply.actions:
            return 0
        counts, _, _ = await self.peer_api.store_intake(
            await self.peer_api.prepare(peer.node_id, reply.actions, (), "fetch", skip_known=True, coop=coop)
        )
        return counts["accepted"]

    async def _fetch_call(
        self, peer: Peer, coop: bytes, batch: tuple[Want, ...], proofs: list[bytes], ids: tuple[bytes, ...] = ()
    ) -> FetchReply:
        body = encode_fetch_request(FetchRequest(coop, batch, tuple(proofs), ids))
        reply = decode_fetch_reply(await self.client.call(peer, "/peer/v1/fetch", body, "fetch"))
        kept, dropped = keep_asked(reply, coop, batch, proofs, ids)
        if dropped:
            # An honest responder sends only what it was asked (10.5): the rest is neither stored nor
            # passed on, and costs the sender.
            self.book.penalize(peer.node_id, "unasked", dropped)
            self.metrics.actions_rejected.labels("unasked", "fetch").inc(dropped)
            log.warning("fetch reply from %s carried %d items not asked for: dropped", peer.text_id, dropped)
        if kept.actions and self._claims.get(coop, (b"", True))[0] == peer.node_id:
            self._claims[coop] = (peer.node_id, True)
        return kept

    def _fetch_batch(self, remaining: dict[bytes, Want]) -> tuple[Want, ...]:
        """At most ``fetch_batch`` actions' worth of wants (and 1024 wants), in author order: the
        next fetch is sent only once these are stored, which is the catch-up's backpressure."""
        budget = self.federation.fetch_batch
        out: list[Want] = []
        for w in sorted(remaining.values(), key=lambda w: w.author):
            if budget <= 0 or len(out) >= 1024:
                break
            last = min(w.last, w.first + budget - 1)
            out.append(Want(w.author, w.first, last))
            budget -= last - w.first + 1
        return tuple(out)

    def _progress_start(self, total: int) -> None:
        p = self.progress
        now = self.clock_ms()
        if not p.active:
            p.total, p.done, p.started_ms, p.active, p.last_log_ms = 0, 0, now, True, now
        p.total += total
        self.metrics.catchup_lag.set(p.total - p.done)

    def _progress_add(self, n: int) -> None:
        p = self.progress
        p.done = min(p.total, p.done + n)
        now = self.clock_ms()
        self.metrics.catchup_lag.set(p.total - p.done)
        if now - p.last_log_ms >= PROGRESS_LOG_INTERVAL_MS and p.total >= 1000:
            p.last_log_ms = now
            eta = p.eta_s(now)
            log.info(
                "catch-up: %d/%d actions (%.0f%%), %.0f/s, %s left",
                p.done,
                p.total,
                100 * p.done / max(p.total, 1),
                p.rate(now),
                f"~{eta:.0f} s" if eta is not None else "?",
            )

    def _progress_end(self) -> None:
        p = self.progress
        if p.active and p.total >= 1000:
            log.info("catch-up done: %d actions in %.1f s", p.done, (self.clock_ms() - p.started_ms) / 1000)
        p.active = False
        self.metrics.catchup_lag.set(0)

    # ---- announce ----------------------------------------------------------------------------

    async def _announcer(self) -> None:
        while True:
            await self.announce()
            await asyncio.sleep(ANNOUNCE_INTERVAL_S * self.rng.uniform(0.8, 1.2))

    def _announce_body(self) -> bytes:
        return encode_announce(Announce(self.record(), self.peer_api.known_records()))

    def _forget(self) -> None:
        for node_id in self.book.forget_dead():
            if node_id not in self._pushing:
                self._backlog.pop(node_id, None)
        if len(self._backlog) > 2 * self.federation.max_peers:  # peers dropped to make room
            for node_id in [k for k in self._backlog if k not in self.book.peers and k not in self._pushing]:
                del self._backlog[node_id]

    async def announce(self) -> None:
        self._forget()
        body = self._announce_body()
        peers = [p for p in self.book.ready() if p.url]
        results = await asyncio.gather(*(self.client.call(p, "/peer/v1/announce", body, "announce") for p in peers), return_exceptions=True)
        learned = False
        for peer, result in zip(peers, results, strict=True):
            if isinstance(result, BaseException):
                self.book.failure(peer, str(result))
                continue
            self.book.success(peer)
            try:
                reply = decode_announce(result)
                record = decode_node_record(reply.record)
            except (ProtocolError, BadRecordSignature) as e:
                self.book.penalize(peer.node_id, "bad_message")
                log.warning("invalid announce reply from %s: %s", peer.text_id, e)
                continue
            except ValueError as e:  # its record is against the rules: not learned, not an offence
                log.info("announce reply from %s: record not learned: %s", peer.text_id, e)
                continue
            if record.node == peer.node_id:
                learned |= self.book.introduce(record, peer.node_id)
            learned |= self._introductions(peer.node_id, reply.peers)
        if learned:
            self.wake.set()

    def _introductions(self, introducer: bytes, records: tuple[bytes, ...]) -> bool:
        learned = False
        for data in records:
            try:
                learned |= self.book.introduce(decode_node_record(data), introducer)
            except BadRecordSignature:
                self.book.penalize(introducer, "bad_message")  # honest nodes verify what they pass on
            except ValueError:
                pass  # against the rules here (another version, another federation's habits): not learned
        return learned

    # ---- probing candidates ------------------------------------------------------------------

    async def _prober(self) -> None:
        """Each candidate is probed as soon as it is introduced, ``PROBE_CONCURRENCY`` at a time: a
        candidate that hangs holds one place until its request times out, never the ones after it."""
        while True:
            await self._probe_wake.wait()
            self._probe_wake.clear()
            for c in self.book.take_candidates():
                task = asyncio.create_task(self._probe_gated(c))
                self._probe_tasks.add(task)
                task.add_done_callback(self._probe_tasks.discard)

    async def _probe_gated(self, c: Candidate) -> None:
        async with self._probe_gate:
            await self.probe(c)

    async def probe(self, c: Candidate) -> bool:
        """Contact a candidate at its URL with an announce: it proves its key by answering with its
        own record, for that URL, signed by that key. Only then does it take a slot."""
        node = c.record.node
        stand_in = Peer(node, c.record.url, "candidate")
        try:
            result = await self.client.call(stand_in, "/peer/v1/announce", self._announce_body(), "probe")
            reply = decode_announce(result)
            record = decode_node_record(reply.record)
            if record.node != node or record.url != c.record.url:
                raise ValueError("the answer is not the candidate's own record for the URL it was reached at")
        except (PeerError, ValueError) as e:  # ProtocolError is a ValueError
            self.book.probe_failed(node, c.record.ts)
            log.debug("candidate %s at %s not proven: %s", stand_in.text_id, c.record.url, e)
            return False
        except Exception:
            self.book.probe_failed(node, c.record.ts)
            log.exception("probing candidate %s failed", stand_in.text_id)
            return False
        if not self.book.learn(record, introducer=c.introducer):
            self.book.probe_failed(node, record.ts)  # proven, but no slot for it: not probed again soon
            return False
        peer = self.book.peers.get(node)
        if peer is not None:
            self.book.success(peer)
            self._introductions(node, reply.peers)
        self.wake.set()
        return True

    def status(self) -> dict[str, object]:
        return {
            "peers_reachable": self.book.reachable(),
            "peers_known": len(self.book.peers),
            "peer_candidates": len(self.book.candidates),  # introduced, not yet proved
            "catchup": self.progress.view(self.clock_ms()),
            "federation": self.federation.name,
        }
