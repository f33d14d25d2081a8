"""Peers: who they are, how they behave, and an authenticated HTTP client to reach them.

Each peer carries its own failure state, so a dead or slow peer never holds up the others:
a failed request schedules its next attempt with exponential backoff and jitter, and callers
only pick peers whose next attempt is due. Misbehaviour (invalid actions, forged signatures,
floods) lowers a peer's score; at ``REFUSE_SCORE`` the peer is refused for ``refuse_seconds``,
in both directions, and everything about it is visible in ``GET /api/v1/peers`` and metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from protocol import SigningKey
from protocol.ids import IdKind, format_id, parse_id
from protocol.peer import NodeRecord, sign_request

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
}


class PeerError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
        for p in federation.peers:
            node_id = parse_id(IdKind.NODE, p.node_id)
            self.listed.add(node_id)
            if node_id != my_id:
                self.peers[node_id] = Peer(node_id, p.url, "config")

    def allowed(self, node_id: bytes) -> bool:
        """May this node talk to us at all? Listed nodes always; others when the federation is open."""
        return node_id != self.my_id and (self.federation.open or node_id in self.listed)

    def block(self, node_id: bytes) -> None:
        """The operator blocks ``node_id``: forget its entry, refuse it, never learn it again."""
        self.blocked.add(node_id)
        self.peers.pop(node_id, None)

    def unblock(self, node_id: bytes) -> None:
        self.blocked.discard(node_id)
        for p in self.federation.peers:  # a configured peer comes back as configured
            if parse_id(IdKind.NODE, p.node_id) == node_id and node_id not in self.peers:
                self.peers[node_id] = Peer(node_id, p.url, "config")

    def learn(self, record: NodeRecord) -> bool:
        """Take a verified node record; True if it taught us something."""
        if record.federation != self.federation.name or not self.allowed(record.node) or record.node in self.blocked:
            return False
        peer = self.peers.get(record.node)
        if peer is None:
            if len(self.peers) >= self.federation.max_peers and not self._evict_inbound():
                return False
            self.peers[record.node] = peer = Peer(record.node, record.url, "learned")
            log.info("learned peer %s at %s", peer.text_id, record.url)
        elif peer.record is not None and peer.record.ts >= record.ts:
            return False
        elif peer.origin == "inbound":
            peer.origin = "learned"
        peer.record = record
        peer.url = record.url
        return True

    def seen_inbound(self, node_id: bytes) -> None:
        """An admitted node called us: give it an entry (without a URL until its record arrives)
        so that it can be scored and refused like any other peer."""
        peer = self.peers.get(node_id)
        if peer is None:
            if node_id == self.my_id or node_id in self.blocked or len(self.peers) >= self.federation.max_peers:
                return
            self.peers[node_id] = peer = Peer(node_id, "", "inbound")
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
                "replicates": None
                if p.record is None
                else ("all" if p.record.all_coops else [format_id(IdKind.COOP, c) for c in p.record.coops]),
            }
            for p in sorted(self.peers.values(), key=lambda p: p.node_id)
        ]


class TokenBucket:
    """Per-peer request rate limit: ``rate`` per second, bursts up to twice that."""

    def __init__(self, rate: float, clock_ms: Callable[[], int]) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self.clock_ms = clock_ms
        self._buckets: dict[bytes, tuple[float, int]] = {}

    def take(self, key: bytes) -> bool:
        now = self.clock_ms()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) / 1000 * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True


class PeerClient:
    """Signed requests to peers. Raises ``PeerError`` for every failure, with the peer's code."""

    def __init__(self, key: SigningKey, clock_ms: Callable[[], int], metrics: Metrics, timeout: float) -> None:
        self.key = key
        self.clock_ms = clock_ms
        self.metrics = metrics
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self.blocked: set[bytes] = set()  # fault hook: peers this node pretends it cannot reach

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, peer: Peer, path: str, body: bytes, kind: str, *, max_reply: int = 64 * 1024 * 1024) -> bytes:
        if peer.node_id in self.blocked:
            raise PeerError("partitioned (fault hook)")
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
                    self.metrics.gossip_requests.labels(label, "out", kind, str(resp.status)).inc()
                    raise PeerError(f"{kind}: HTTP {resp.status} {code or ''}".strip(), status=resp.status, code=code)
                self.metrics.gossip_requests.labels(label, "out", kind, "ok").inc()
                return reply
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self.metrics.gossip_requests.labels(label, "out", kind, "error").inc()
            raise PeerError(f"{kind}: {type(e).__name__}: {e}") from None
