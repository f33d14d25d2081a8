"""Anti-entropy: find which chain segments a peer holds that this node lacks. Sans-IO.

Theory of operation. A co-op's replicated state is summarised by its *heads*: one
(author, seq, head id) per author chain, sorted by author. Two nodes holding the same actions
hold the same heads, so comparing heads is enough to find every difference.

Comparison is range-based set reconciliation (in the spirit of negentropy), driven by the
initiator. A range of authors ``[lo, hi)`` is summarised by a 16-byte fingerprint and a count.
The initiator sends its fingerprint of the whole author space; the responder compares with its
own. Equal: done, and that is the whole cost of an idle round whatever the history length: one
fingerprint per co-op. Different: the responder either lists its heads in the range (when it
holds few there, or when the initiator holds none) or splits the range into ``SPLIT`` parts of
equal size by its own heads and returns their fingerprints; the initiator compares each part
with its own and asks again about the parts that differ. Rounds are ~log16(authors / 32).

From a listing the initiator derives *wants*, chain segments to fetch:

- the peer's chain is longer: fetch from my own head seq (one action of overlap, so that a fork
  at my head shows up as a second action at that seq) to the peer's head;
- same seq, different head: a fork at that seq; fetch the peer's action there;
- mine is longer: the peer is behind (it will pull), unless the peer's head is not my action at
  that seq: a fork. Only the store knows my action at an old seq, so these come out as *probes*
  that the caller resolves with ``resolve_probes``.

Equivocation proofs are compared once per reconciliation by a fingerprint of proof ids; when the
sets differ the responder lists its ids and the initiator asks for those it lacks.

Nothing here trusts the peer: replies are bounded by the message codecs, the number of rounds is
capped, and whatever is fetched goes through full validation before it is stored.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .messages import MAX_LIST, MAX_PROOF_IDS, MAX_RANGES, Head, Listing, Range, ReconcileReply, ReconcileRequest, Want

RECONCILE_FP = b"coopnet/v1/heads-fp\x00"
PROOFS_FP = b"coopnet/v1/proofs-fp\x00"
SPLIT = 16
LIST_THRESHOLD = 32
MAX_ROUNDS = 64

_ALL = (b"", None)


def fingerprint(heads: Iterable[Head]) -> bytes:
    h = hashlib.sha256(RECONCILE_FP)
    for x in heads:
        h.update(x.author + x.seq.to_bytes(8, "big") + x.head)
    return h.digest()[:16]


def proofs_fingerprint(ids: Iterable[bytes]) -> bytes:
    h = hashlib.sha256(PROOFS_FP)
    for i in ids:
        h.update(i)
    return h.digest()[:16]


def _slice(heads: Sequence[Head], authors: Sequence[bytes], lo: bytes, hi: bytes | None) -> Sequence[Head]:
    start = bisect_left(authors, lo)
    end = len(heads) if hi is None else bisect_left(authors, hi)
    return heads[start:end]


class HeadSet:
    """A co-op's heads sorted by author, with the index that range slicing needs. Not changed
    after it is built, so a node may keep one between rounds while its heads stay the same; the
    whole range's fingerprint, which every round starts with, is computed once."""

    def __init__(self, heads: Iterable[Head]) -> None:
        self.heads: list[Head] = sorted(heads, key=lambda h: h.author)
        self.authors = [h.author for h in self.heads]
        self._whole: bytes | None = None

    def range(self, lo: bytes, hi: bytes | None) -> Sequence[Head]:
        return _slice(self.heads, self.authors, lo, hi)

    def fingerprint(self, lo: bytes, hi: bytes | None, part: Sequence[Head] | None = None) -> bytes:
        """The fingerprint of ``range(lo, hi)`` (``part``, when the caller has sliced it already)."""
        if (lo, hi) != _ALL:
            return fingerprint(self.range(lo, hi) if part is None else part)
        if self._whole is None:
            self._whole = fingerprint(self.heads)
        return self._whole

    def summary(self, lo: bytes, hi: bytes | None) -> Range:
        if (lo, hi) == _ALL:
            return Range(lo, hi, self.fingerprint(lo, hi), len(self.heads))
        part = self.range(lo, hi)
        return Range(lo, hi, fingerprint(part), len(part))


def respond(request: ReconcileRequest, mine: HeadSet, proof_ids: Sequence[bytes]) -> ReconcileReply:
    """The responder's whole job: stateless, one reply per request."""
    ranges: list[Range] = []
    listings: list[Listing] = []
    budget = MAX_LIST
    examined = 0
    for r in request.ranges:
        if len(ranges) + SPLIT + 1 > MAX_RANGES or budget == 0:
            break  # out of room in this reply: ``examined`` tells the initiator to ask again
        examined += 1
        part = mine.range(r.lo, r.hi)
        if len(part) == r.n and mine.fingerprint(r.lo, r.hi, part) == r.fp:
            continue
        if len(part) <= LIST_THRESHOLD or r.n == 0:
            listed = part[:budget]
            budget -= len(listed)
            if len(listed) == len(part):
                listings.append(Listing(r.lo, r.hi, tuple(listed)))
            else:
                cut = part[len(listed)].author
                listings.append(Listing(r.lo, cut, tuple(listed)))
                ranges.append(mine.summary(cut, r.hi))
            continue
        size = -(-len(part) // SPLIT)
        bounds = [r.lo] + [part[k].author for k in range(size, len(part), size)] + [r.hi]
        ranges.extend(mine.summary(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1))
    proofs: tuple[bytes, ...] | None = None
    if request.proofs_fp is not None:
        ids = sorted(proof_ids)
        if len(ids) != request.proofs_n or proofs_fingerprint(ids) != request.proofs_fp:
            proofs = tuple(ids[:MAX_PROOF_IDS])  # a co-op with more proofs than that is documented as a limit
    return ReconcileReply(examined, tuple(ranges), tuple(listings), proofs)


@dataclass(frozen=True, slots=True)
class Probe:
    """The peer's chain for ``author`` ends at ``seq`` with ``head``, below my head: is that mine?"""

    author: bytes
    seq: int
    head: bytes


@dataclass
class Reconciliation:
    """One reconciliation of one co-op with one peer, from the initiator's side.

    Loop: ``request = r.next_request()``; while it is not None, send it, feed the reply to
    ``r.receive(reply)`` and ask again. Then fetch ``r.wants`` (after ``resolve_probes``) and
    ``r.proof_wants``.
    """

    coop: bytes
    mine: HeadSet
    proof_ids: Sequence[bytes]
    rounds: int = 0
    wants: dict[bytes, Want] = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)
    proof_wants: list[bytes] = field(default_factory=list)
    peer_lacks: int = 0  # actions this node holds beyond the peer's heads, in the ranges compared
    missing: int = 0  # actions the peer holds beyond this node's heads (wants also re-ask one overlap)
    _queue: list[Range] = field(default_factory=list)
    _asked: tuple[Range, ...] = ()
    _started: bool = False

    def next_request(self) -> ReconcileRequest | None:
        if not self._started:
            self._started = True
            ids = sorted(self.proof_ids)
            self._asked = (self.mine.summary(*_ALL),)
            return ReconcileRequest(self.coop, self._asked, proofs_fingerprint(ids), len(ids))
        if not self._queue or self.rounds >= MAX_ROUNDS:
            return None
        batch, self._queue = self._queue[:MAX_RANGES], self._queue[MAX_RANGES:]
        self._asked = tuple(batch)
        return ReconcileRequest(self.coop, self._asked, None, 0)

    @property
    def converged(self) -> bool:
        """True when nothing differs: no range left to examine and nothing to fetch."""
        return self._started and not self._queue and not self.wants and not self.probes and not self.proof_wants

    def receive(self, reply: ReconcileReply) -> None:
        self.rounds += 1
        if reply.examined == 0 and self._asked:
            # A reply that answers nothing would loop forever: stop here (MAX_ROUNDS also bounds it).
            self.rounds = MAX_ROUNDS
        self._queue[:0] = self._asked[reply.examined :]
        for listing in reply.listings:
            self._compare(listing)
        for r in reply.ranges:
            own = self.mine.summary(r.lo, r.hi)
            if own.n != r.n or own.fp != r.fp:
                self._queue.append(own)
        if reply.proof_ids is not None:
            have = set(self.proof_ids)
            self.proof_wants = [i for i in reply.proof_ids if i not in have]

    def _compare(self, listing: Listing) -> None:
        own = {h.author: h for h in self.mine.range(listing.lo, listing.hi)}
        listed = {h.author for h in listing.heads}
        self.peer_lacks += sum(h.seq for a, h in own.items() if a not in listed)
        for theirs in listing.heads:
            mine = own.get(theirs.author)
            if mine is None:
                self._want(theirs.author, 1, theirs.seq)
                self.missing += theirs.seq
            elif mine.seq < theirs.seq:
                self._want(theirs.author, mine.seq, theirs.seq)
                self.missing += theirs.seq - mine.seq
            elif mine.seq == theirs.seq:
                if mine.head != theirs.head:
                    self._want(theirs.author, theirs.seq, theirs.seq)
            else:
                self.peer_lacks += mine.seq - theirs.seq
                self.probes.append(Probe(theirs.author, theirs.seq, theirs.head))

    def _want(self, author: bytes, first: int, last: int) -> None:
        self.wants[author] = Want(author, first, last)


def resolve_probes(probes: Sequence[Probe], my_ids: dict[tuple[bytes, int], bytes]) -> list[Want]:
    """Probes whose head is not my action at that seq are forks: fetch the peer's action there."""
    return [Want(p.author, p.seq, p.seq) for p in probes if my_ids.get((p.author, p.seq)) != p.head]
