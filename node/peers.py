"""Peers: who they are, how they behave, and an authenticated HTTP client to reach them.

Each peer carries its own failure state, so a dead or slow peer never holds up the others:
a failed request schedules its next attempt with exponential backoff and jitter, and callers
only pick peers whose next attempt is due. Misbehaviour (invalid actions, forged signatures,
floods, false claims) lowers a peer's score; at ``REFUSE_SCORE`` the peer is refused for
``refuse_seconds``, in both directions, and everything about it is visible in
``GET /api/v1/peers`` and metrics.

Theory of operation: who gets a slot. In an open federation node keys cost nothing, so the book
is built so that no one sender can fill it (an *eclipse*):

- A record learned from someone else is only an *introduction*. Each introducer may introduce at
  most ``introductions`` new nodes per ``introduction_window`` (a node's own record, and a newer
  record of a peer at the URL it already proved, are free). An introduced node is a *candidate*
  (at most ``max_candidates``; when full, the oldest candidate of the introducer holding the
  most gives way) until gossip contacts it at its URL and it answers with its own record, signed
  by its key, for that URL (``learn``). Only then does it take a slot, and only then does this
  node send it anything else. A probe that fails is not retried within the window.
- Slots keep diversity: at most ``max_per_introducer`` learned peers introduced by one node and
  ``max_per_network`` in one network (``network_group``). When the table is full, a proven
  newcomer first takes the place of an inbound caller without a record, else of a learned peer of
  the most crowded group, if that group would still be more crowded than the newcomer's; so
  honest newcomers from elsewhere keep getting in, and one crowd cannot push out another's.
  Configured peers are never dropped and never counted.
- A learned peer unreachable for ``forget_after`` is dropped (and an inbound entry that has not
  called for as long); a configured one stays, shown as failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp

from protocol import SigningKey
from protocol.ids import IdKind, format_id, parse_id
from protocol.peer import NodeRecord, parse_origin, sign_request

from .config import Federation
from .metrics import Metrics

log = logging.getLogger("coopnet.peers")

REFUSE_SCORE = -100.0
SCORE_RECOVERY_PER_S = 1.0  # misbehaviour is forgiven slowly
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0

# Points lost per offence. A peer relaying someone else's invalid action is as suspect as its
# author: honest nodes validate before they forward, so they never relay one.
PENALTY = {
    "bad_signature": 25.0,
    "bad_key": 25.0,
    "invalid_action": 10.0,
    "bogus_proof": 25.0,
    "rate_limited": 5.0,
    "bad_message": 10.0,
    "bogus_claim": 10.0,  # a co-op it listed turned out to hold nothing
    "unasked": 10.0,  # each action or proof in a fetch reply that was not asked for
}

INTRODUCERS_PER_PEER_SLOT = 4  # introducers whose budgets are remembered at once: 4 x max_peers
FAILED_PROBES_PER_CANDIDATE = 4  # failed probes remembered at once: 4 x max_candidates
BUCKET_KEYS_MAX = 10_000  # senders whose token buckets are kept; full buckets are dropped beyond it


@functools.lru_cache(maxsize=4096)
def network_group(url: str) -> str:
    """Which network a node URL is in, for slot diversity: an IPv4 address's /24, an IPv6 address's
    /48, a DNS name's last two labels (one operator's domain, however many names it makes up).
    Grouping is by what the URL says: no name is resolved."""
    o = parse_origin(url)
    if o.is_ip:
        prefix = 24 if "." in o.host and ":" not in o.host else 48
        return str(ipaddress.ip_network(f"{o.host}/{prefix}", strict=False))
    return ".".join(o.host.lower().split(".")[-2:])


@functools.lru_cache(maxsize=4096)
def _is_origin(url: str) -> bool:
    try:
        parse_origin(url)
    except ValueError:
        return False
    return True


class PeerError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


@dataclass
class Peer:
    node_id: bytes
    url: str
    origin: str  # config | learned | inbound
    record: NodeRecord | None = None
    last_success_ms: int | None = None
    last_failure_ms: int | None = None
    last_error: str | None = None
    failures: int = 0  # consecutive
    next_attempt_ms: int = 0
    score: float = 0.0
    score_at_ms: int = 0
    refused_until_ms: int = 0
    refusals: int = 0
    offences: dict[str, int] = field(default_factory=dict)
    behind: int | None = None  # actions this node held that the peer lacked, at the last reconciliation
    ahead: int | None = None  # actions the peer held that this node lacked (then fetched)
    reconciled_ms: int | None = None
    last_inbound_ms: int = 0  # when it last called this node
    introducer: bytes | None = None  # learned peers: the node that introduced it (itself, if it announced itself)
    added_ms: int = 0

    @property
    def text_id(self) -> str:
        return format_id(IdKind.NODE, self.node_id)

    def replicates(self, coop: bytes) -> bool:
        # Until its record arrives, assume a peer replicates what we ask about; it refuses otherwise.
        return self.record is None or self.record.all_coops or coop in self.record.coops

    def state(self, now: int) -> str:
        if self.refused_until_ms > now:
            return "refused"
        if self.failures:
            return "backoff" if self.next_attempt_ms > now else "retrying"
        return "ok" if self.last_success_ms is not None else "new"


@dataclass(slots=True)
class Candidate:
    """An introduced node that has not yet proved, at its URL, that it holds its key."""

    record: NodeRecord
    introducer: bytes
    since_ms: int
    probing: bool = False


class PeerBook:
    def __init__(self, my_id: bytes, federation: Federation, clock_ms: Callable[[], int], rng: random.Random, metrics: Metrics) -> None:
        self.my_id = my_id
        self.federation = federation
        self.clock_ms = clock_ms
        self.rng = rng
        self.metrics = metrics
        self.peers: dict[bytes, Peer] = {}
        self.listed: set[bytes] = set()
        self.blocked: set[bytes] = set()  # by the operator (coopnet admin peers block): refused both ways, never called
        self.candidates: dict[bytes, Candidate] = {}  # oldest first
        self.on_candidate: Callable[[], None] = lambda: None  # gossip probes new candidates
        self._introduced: dict[bytes, deque[int]] = {}  # per introducer: when it introduced someone, within the window
        self._failed: dict[bytes, tuple[int, int]] = {}  # node -> (until when, record ts): a failed probe, not retried
        now = clock_ms()
        for p in federation.peers:
            node_id = parse_id(IdKind.NODE, p.node_id)
            self.listed.add(node_id)
            if node_id != my_id:
                self.peers[node_id] = Peer(node_id, p.url, "config", added_ms=now)

    def allowed(self, node_id: bytes) -> bool:
        """May this node talk to us at all? Listed nodes always; others when the federation is open."""
        return node_id != self.my_id and (self.federation.open or node_id in self.listed)

    def block(self, node_id: bytes) -> None:
        """The operator blocks ``node_id``: forget its entry, refuse it, never learn it again."""
        self.blocked.add(node_id)
        self.peers.pop(node_id, None)
        self.candidates.pop(node_id, None)

    def unblock(self, node_id: bytes) -> None:
        self.blocked.discard(node_id)
        for p in self.federation.peers:  # a configured peer comes back as configured
            if parse_id(IdKind.NODE, p.node_id) == node_id and node_id not in self.peers:
                self.peers[node_id] = Peer(node_id, p.url, "config", added_ms=self.clock_ms())

    # ---- introductions and slots (see the theory of operation above) -------------------------

    def introduce(self, record: NodeRecord, introducer: bytes) -> bool:
        """``introducer`` (an authenticated peer, or the node itself) passed on a verified record.
        True if it taught something: a newer record of a peer at its proven URL, or a candidate."""
        if record.federation != self.federation.name or not self.allowed(record.node) or record.node in self.blocked:
            return False
        now = self.clock_ms()
        peer = self.peers.get(record.node)
        if peer is not None:
            if peer.record is not None and record.ts <= peer.record.ts:
                return False
            if peer.url and record.url == peer.url:
                peer.record = record
                return True
        cand = self.candidates.get(record.node)
        if cand is not None:
            if record.ts <= cand.record.ts or cand.probing:
                return False
            cand.record = record
            return True
        until, failed_ts = self._failed.get(record.node, (0, 0))
        if until > now and record.ts <= failed_ts:  # a newer record (it moved, say) is tried at once
            return False
        # Only a node unknown here costs its introducer: its own record, or a URL change signed by a
        # peer itself, cannot be multiplied by anyone else.
        if peer is None and introducer != record.node and not self._spend(introducer, now):
            return False
        if len(self.candidates) >= self.federation.max_candidates:
            self._drop_candidate()
        self.candidates[record.node] = Candidate(record, introducer, now)
        self.on_candidate()
        return True

    def _spend(self, introducer: bytes, now: int) -> bool:
        horizon = now - int(self.federation.introduction_window * 1000)
        times = self._introduced.get(introducer)
        peer = self.peers.get(introducer)
        # Room for strangers' budgets is bounded; a peer with a URL always has its own.
        if times is None and not (peer is not None and peer.url):
            if len(self._introduced) >= INTRODUCERS_PER_PEER_SLOT * self.federation.max_peers:
                for k in [k for k, t in self._introduced.items() if not t or t[-1] <= horizon]:
                    del self._introduced[k]
                if len(self._introduced) >= INTRODUCERS_PER_PEER_SLOT * self.federation.max_peers:
                    return False
        if times is None:
            times = self._introduced[introducer] = deque()
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.federation.introductions:
            return False
        times.append(now)
        return True

    def _drop_candidate(self) -> None:
        per: dict[bytes, int] = {}
        for c in self.candidates.values():
            per[c.introducer] = per.get(c.introducer, 0) + 1
        crowd = max(per.values())
        # dicts keep insertion order: the first one met of the largest introducer is its oldest
        gone = next(n for n, c in self.candidates.items() if per[c.introducer] == crowd)
        del self.candidates[gone]

    def take_candidates(self) -> list[Candidate]:
        """The candidates not yet being probed, oldest first; they are marked as being probed."""
        out = [c for c in self.candidates.values() if not c.probing]
        for c in out:
            c.probing = True
        return out

    def probe_failed(self, node_id: bytes, ts: int) -> None:
        """Its probe (of its record stamped ``ts``) did not prove it, or it found no slot: drop it,
        and do not probe it again within the window unless a newer record of it arrives."""
        self.candidates.pop(node_id, None)
        self._failed.pop(node_id, None)
        self._failed[node_id] = (self.clock_ms() + int(self.federation.introduction_window * 1000), ts)
        while len(self._failed) > FAILED_PROBES_PER_CANDIDATE * self.federation.max_candidates:
            del self._failed[next(iter(self._failed))]

    def learn(self, record: NodeRecord, introducer: bytes | None = None) -> bool:
        """Take a record that was *proved*: fetched from its own URL, signed by its node (or, in
        unit tests, given directly). The node takes a slot if the slot rules allow; True if the book
        changed."""
        cand = self.candidates.pop(record.node, None)
        if introducer is None and cand is not None:
            introducer = cand.introducer
        if record.federation != self.federation.name or not self.allowed(record.node) or record.node in self.blocked:
            return False
        peer = self.peers.get(record.node)
        if peer is None:
            if not self._room_for(record.url, introducer):
                return False
            self.peers[record.node] = peer = Peer(record.node, record.url, "learned", introducer=introducer, added_ms=self.clock_ms())
            log.info("learned peer %s at %s", peer.text_id, record.url)
        elif peer.record is not None and peer.record.ts >= record.ts:
            return False
        elif peer.origin == "inbound":
            if not self._within_caps(record.url, introducer):
                return False
            peer.origin, peer.introducer = "learned", introducer
            log.info("learned peer %s at %s", peer.text_id, record.url)
        peer.record = record
        peer.url = record.url
        return True

    def _crowds(self) -> tuple[dict[bytes | None, int], dict[str, int]]:
        by_introducer: dict[bytes | None, int] = {}
        by_network: dict[str, int] = {}
        for p in self.peers.values():
            if p.origin == "learned":
                if p.introducer is not None:
                    by_introducer[p.introducer] = by_introducer.get(p.introducer, 0) + 1
                g = network_group(p.url)
                by_network[g] = by_network.get(g, 0) + 1
        return by_introducer, by_network

    def _within_caps(self, url: str, introducer: bytes | None) -> bool:
        by_introducer, by_network = self._crowds()
        if introducer is not None and by_introducer.get(introducer, 0) >= self.federation.max_per_introducer:
            return False
        return by_network.get(network_group(url), 0) < self.federation.max_per_network

    def _room_for(self, url: str, introducer: bytes | None) -> bool:
        if not self._within_caps(url, introducer):
            return False
        if len(self.peers) < self.federation.max_peers or self._evict_inbound():
            return True
        by_introducer, by_network = self._crowds()

        def crowd(p: Peer) -> int:
            return max(by_introducer.get(p.introducer, 0) if p.introducer is not None else 0, by_network[network_group(p.url)])

        mine = 1 + max(by_introducer.get(introducer, 0) if introducer is not None else 0, by_network.get(network_group(url), 0))
        learned = [p for p in self.peers.values() if p.origin == "learned"]
        if not learned:
            return False
        # The most crowded group gives way, its least recently useful member first; never to make
        # a group as crowded as the one it takes from.
        gone = max(learned, key=lambda p: (crowd(p), -(p.last_success_ms or 0), p.added_ms))
        if crowd(gone) <= mine:
            return False
        del self.peers[gone.node_id]
        log.info("dropped peer %s (%d peers share its introducer or network) to make room", gone.text_id, crowd(gone))
        return True

    def forget_dead(self) -> list[bytes]:
        """Drop learned peers unreachable for ``forget_after``, and inbound entries that have not
        called for as long. Configured peers stay (shown as failing). Returns the ids dropped."""
        now = self.clock_ms()
        limit = int(self.federation.forget_after * 1000)
        gone = []
        for p in self.peers.values():
            if p.origin == "learned" and p.failures and now - max(p.last_success_ms or 0, p.added_ms) >= limit:
                gone.append(p.node_id)
            elif p.origin == "inbound" and now - max(p.last_inbound_ms, p.added_ms) >= limit:
                gone.append(p.node_id)
        for node_id in gone:
            p = self.peers.pop(node_id)
            log.info("forgot peer %s (%s): nothing from it for %.0f s", p.text_id, p.origin, self.federation.forget_after)
        if gone:
            self.metrics.peers_reachable.set(self.reachable())
        return gone

    def seen_inbound(self, node_id: bytes) -> None:
        """An admitted node called us: give it an entry (without a URL until its record arrives)
        so that it can be scored and refused like any other peer."""
        peer = self.peers.get(node_id)
        if peer is None:
            if node_id == self.my_id or node_id in self.blocked or len(self.peers) >= self.federation.max_peers:
                return
            self.peers[node_id] = peer = Peer(node_id, "", "inbound", added_ms=self.clock_ms())
        peer.last_inbound_ms = self.clock_ms()

    def _evict_inbound(self) -> bool:
        """Make room for a peer with a signed record by dropping the inbound entry (no record, no
        URL: nothing this node can call) that called least recently. In an open federation node
        keys cost nothing, so without this, callers that never announce would fill the table
        and keep out every peer learned later."""
        idle = [p for p in self.peers.values() if p.origin == "inbound" and p.record is None]
        if not idle:
            return False
        now = self.clock_ms()
        # A refused one goes last: dropped, it would be served again as a stranger.
        gone = min(idle, key=lambda p: (p.refused_until_ms > now, p.last_inbound_ms))
        del self.peers[gone.node_id]
        log.info("dropped inbound peer %s (no record; last called %d ms ago) to make room", gone.text_id, now - gone.last_inbound_ms)
        return True

    # ---- health ------------------------------------------------------------------------------

    def ready(self, now: int | None = None) -> list[Peer]:
        now = self.clock_ms() if now is None else now
        return [p for p in self.peers.values() if p.refused_until_ms <= now and p.next_attempt_ms <= now]

    def reachable(self) -> int:
        now = self.clock_ms()
        return sum(1 for p in self.peers.values() if p.failures == 0 and p.last_success_ms is not None and p.refused_until_ms <= now)

    def success(self, peer: Peer) -> None:
        peer.last_success_ms = self.clock_ms()
        peer.failures = 0
        peer.next_attempt_ms = 0
        peer.last_error = None
        self.metrics.peers_reachable.set(self.reachable())

    def failure(self, peer: Peer, error: str) -> None:
        now = self.clock_ms()
        peer.failures += 1
        peer.last_failure_ms = now
        peer.last_error = error
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(peer.failures - 1, 16)) * self.rng.uniform(0.5, 1.5)
        peer.next_attempt_ms = now + int(delay * 1000)
        if peer.failures in (1, 5) or peer.failures % 20 == 0:
            log.warning("peer %s at %s failing (%d in a row): %s; next try in %.1f s", peer.text_id, peer.url, peer.failures, error, delay)
        self.metrics.peers_reachable.set(self.reachable())

    def _current_score(self, peer: Peer, now: int) -> float:
        recovered = (now - peer.score_at_ms) / 1000 * SCORE_RECOVERY_PER_S
        return min(0.0, peer.score + max(0.0, recovered))

    def penalize(self, node_id: bytes, offence: str, count: int = 1) -> None:
        peer = self.peers.get(node_id)
        if peer is None:
            return
        now = self.clock_ms()
        peer.score = self._current_score(peer, now) - PENALTY[offence] * count
        peer.score_at_ms = now
        peer.offences[offence] = peer.offences.get(offence, 0) + count
        self.metrics.peer_score.labels(peer.text_id).set(peer.score)
        if peer.score <= REFUSE_SCORE and peer.refused_until_ms <= now:
            peer.refused_until_ms = now + int(self.federation.refuse_seconds * 1000)
            peer.refusals += 1
            peer.score = REFUSE_SCORE / 2  # after the refusal it starts on probation
            log.warning("refusing peer %s for %.0f s: %s", peer.text_id, self.federation.refuse_seconds, peer.offences)

    def refused(self, node_id: bytes) -> bool:
        if node_id in self.blocked:
            return True
        peer = self.peers.get(node_id)
        return peer is not None and peer.refused_until_ms > self.clock_ms()

    def view(self) -> list[dict[str, Any]]:
        now = self.clock_ms()
        return [
            {
                "id": p.text_id,
                "url": p.url,
                "origin": p.origin,
                "state": p.state(now),
                "last_success_ms": p.last_success_ms,
                "last_error": p.last_error,
                "failures": p.failures,
                "score": round(self._current_score(p, now), 1),
                "offences": dict(p.offences),
                "refused_until_ms": p.refused_until_ms or None,
                "behind": p.behind,
                "ahead": p.ahead,
                "reconciled_ms": p.reconciled_ms,
                "introducer": format_id(IdKind.NODE, p.introducer) if p.introducer is not None else None,
                "replicates": None
                if p.record is None
                else ("all" if p.record.all_coops else [format_id(IdKind.COOP, c) for c in p.record.coops]),
            }
            for p in sorted(self.peers.values(), key=lambda p: p.node_id)
        ]


class RateVerdict(NamedTuple):
    ok: bool
    retry_after: float  # seconds until a request would be served (0 when ok)
    excessive: bool  # refused, and the sender went on sending well past being told to wait


class TokenBucket:
    """Per-peer request rate limit: ``rate`` per second, bursts up to twice that.

    A refused request still costs a token, so the bucket runs into debt (down to twice the burst)
    and ``retry_after`` says how long the sender must now wait. A sender that waits as told is
    never refused more than the few requests it already had in flight; one that runs the debt
    past a burst is ignoring the answers, and each further refusal is ``excessive`` (an offence)."""

    def __init__(self, rate: float, clock_ms: Callable[[], int]) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self.clock_ms = clock_ms
        self._buckets: dict[bytes, tuple[float, int]] = {}

    def check(self, key: bytes) -> RateVerdict:
        now = self.clock_ms()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) / 1000 * self.rate)
        if tokens >= 1:
            self._store(key, tokens - 1, now)
            return RateVerdict(True, 0.0, False)
        excessive = tokens <= -self.burst
        tokens = max(tokens - 1, -2 * self.burst)
        self._store(key, tokens, now)
        return RateVerdict(False, (1 - tokens) / self.rate, excessive)

    def take(self, key: bytes) -> bool:
        return self.check(key).ok

    def _store(self, key: bytes, tokens: float, now: int) -> None:
        if key not in self._buckets and len(self._buckets) >= BUCKET_KEYS_MAX:
            # A full bucket holds nothing worth keeping: forget those (as if they had never called).
            full = [k for k, (t, at) in self._buckets.items() if t + (now - at) / 1000 * self.rate >= self.burst]
            for k in full:
                del self._buckets[k]
        self._buckets[key] = (tokens, now)


class Pacer:
    """This node's own budget per peer: at most ``rate`` requests per second to one peer (bursts of
    twice that), so that an honest node stays under its peers' rate limits however much work it
    has (many co-ops, a catch-up, a burst of pushes), and waits when a peer says ``Retry-After``."""

    def __init__(self, rate: float, clock_ms: Callable[[], int]) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self.clock_ms = clock_ms
        self._buckets: dict[bytes, tuple[float, int]] = {}

    def _tokens(self, key: bytes, now: int) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) / 1000 * self.rate)

    def reserve(self, key: bytes) -> float:
        """Take the next slot to send to ``key``: the seconds to wait before sending."""
        now = self.clock_ms()
        tokens = self._tokens(key, now) - 1
        if key not in self._buckets and len(self._buckets) >= BUCKET_KEYS_MAX:
            for k in [k for k in self._buckets if self._tokens(k, now) >= self.burst]:
                del self._buckets[k]  # a full bucket is the same as none
        self._buckets[key] = (tokens, now)
        return max(0.0, -tokens / self.rate)

    def give_back(self, key: bytes) -> None:
        now = self.clock_ms()
        self._buckets[key] = (self._tokens(key, now) + 1, now)

    def hold(self, key: bytes, seconds: float) -> None:
        """The peer asked for ``seconds`` of quiet: no slot before then."""
        now = self.clock_ms()
        self._buckets[key] = (min(self._tokens(key, now), -seconds * self.rate), now)


class PeerClient:
    """Signed requests to peers. Raises ``PeerError`` for every failure, with the peer's code."""

    def __init__(self, key: SigningKey, clock_ms: Callable[[], int], metrics: Metrics, timeout: float, request_rate: float = 20.0) -> None:
        self.key = key
        self.clock_ms = clock_ms
        self.metrics = metrics
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self.max_wait = timeout  # longer than this for a slot to a peer: fail now, like a timeout
        self.pacer = Pacer(request_rate, clock_ms)
        self._session: aiohttp.ClientSession | None = None
        self.blocked: set[bytes] = set()  # fault hook: peers this node pretends it cannot reach

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, peer: Peer, path: str, body: bytes, kind: str, *, max_reply: int = 64 * 1024 * 1024) -> bytes:
        if peer.node_id in self.blocked:
            raise PeerError("partitioned (fault hook)")
        if not _is_origin(peer.url):  # never reached: config and records admit origins only
            raise PeerError(f"{kind}: {peer.url!r} is not an origin (scheme://host:port)")
        wait = self.pacer.reserve(peer.node_id)
        if wait > self.max_wait:
            self.pacer.give_back(peer.node_id)
            raise PeerError(f"{kind}: this node's budget for requests to this peer is spent for {wait:.1f} s", code="paced")
        if wait > 0:
            await asyncio.sleep(wait)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = sign_request(self.key, method="POST", path=path, body=body, ts=self.clock_ms(), receiver=peer.node_id)
        headers["Content-Type"] = "application/msgpack"
        label = peer.text_id
        try:
            async with self._session.post(peer.url + path, data=body, headers=headers) as resp:
                if resp.content_length is not None and resp.content_length > max_reply:
                    raise PeerError(f"reply of {resp.content_length} bytes is larger than {max_reply}")
                chunks: list[bytes] = []
                size = 0
                # Read the whole body (a single read returns only what has arrived so far), capped.
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > max_reply:
                        raise PeerError(f"reply larger than {max_reply} bytes")
                    chunks.append(chunk)
                reply = b"".join(chunks)
                self.metrics.gossip_bytes.labels(label, "out").inc(len(body))
                self.metrics.gossip_bytes.labels(label, "in").inc(len(reply))
                if resp.status != 200:
                    code = None
                    with contextlib.suppress(ValueError, AttributeError):
                        code = json.loads(reply).get("error")
                    retry_after = None
                    with contextlib.suppress(TypeError, ValueError):
                        retry_after = min(float(resp.headers.get("Retry-After", "")), 3600.0)
                    if retry_after is not None and retry_after > 0:
                        self.pacer.hold(peer.node_id, retry_after)  # as the peer asked: honest nodes wait
                    self.metrics.gossip_requests.labels(label, "out", kind, str(resp.status)).inc()
                    raise PeerError(
                        f"{kind}: HTTP {resp.status} {code or ''}".strip(), status=resp.status, code=code, retry_after=retry_after
                    )
                self.metrics.gossip_requests.labels(label, "out", kind, "ok").inc()
                return reply
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self.metrics.gossip_requests.labels(label, "out", kind, "error").inc()
            raise PeerError(f"{kind}: {type(e).__name__}: {e}") from None
