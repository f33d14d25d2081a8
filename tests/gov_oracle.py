"""A reference evaluation of docs/GOVERNANCE.md, "The rules, precisely", written from the doc alone.

It is slow and plain on purpose, so that a reader can check it against the doc line by line:

- every item's causal past is an explicit set (``past[x]``), built from its parents;
- the fold order, heights and readiness are computed by repeated passes, not incrementally;
- the co-op clock is read off the witness actions of each past directly (no merged lists);
- each action's verdict is computed against its own view with ``sees``, written as the doc's
  "Seen" paragraph;
- disputed decisions are settled by a plain fixed-point iteration: fold everything with a set of
  *pins* (proposal -> the deciding tally that decides it), compute the winner of every disputed
  proposal over the whole set, and fold again from scratch with those pins until nothing changes.

It shares nothing with ``protocol/governance.py`` or ``protocol/causal.py`` but the ``Item``
record (a plain tuple of an action's fields) and the charter's names. Where the doc leaves a
question open, the choice made here is marked ``DOC GAP`` with the reading taken; the report of
branch gov-tests lists them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol import codec
from protocol.causal import EQUIVOCATION, Item
from protocol.charter import APPLY, DEFAULT_CHARTER, GENESIS, LEAVE, OPEN, SEEN, SPONSOR, TALLY, VOTE
from protocol.governance import CLOCK_WITNESSES

MINUTE = 60_000
DAY = 86_400_000
GOVERNANCE_PERMS = ("propose", "vote", "tally", "sponsor")


@dataclass(frozen=True)
class Version:
    member: bytes
    status: str  # applicant | member | left | expelled
    roles: frozenset[str]
    since: bytes  # the action (or proof, or tally) that made this version
    sponsors: tuple[tuple[bytes, int], ...] = ()
    needed: int = 0  # > 0: an admission by sponsorship that needed this many sponsors


@dataclass
class Sanction:
    id: bytes
    member: bytes
    kind: str  # suspend | expel | warning
    until: int | None
    clause: str
    evidence: tuple[bytes, ...]
    imposed_by: bytes
    bound: int
    lifted_by: bytes | None = None
    pending_days: int | None = None  # an equivocation suspension waiting for the member's next action
    lifts: list[bytes] = field(default_factory=list)  # every lift, fold order
    started_by: bytes | None = None  # the member's action whose co-op time started an equivocation suspension


@dataclass
class Proposal:
    id: bytes
    author: bytes
    seq: int
    type: str
    payload: Any
    electorate: frozenset[bytes]
    quorum: int
    threshold: str
    closes: int
    status: str = "open"
    decided_by: bytes | None = None


@dataclass
class Evaluation:
    """One fold of the whole set with given pins: everything the doc defines, per item and in the state."""

    pins: dict[bytes, bytes]
    clock: dict[bytes, int] = field(default_factory=dict)
    witness: dict[bytes, bool] = field(default_factory=dict)
    verdict: dict[bytes, str | None] = field(default_factory=dict)
    versions: dict[bytes, list[Version]] = field(default_factory=dict)  # member -> versions in fold order
    sanctions: dict[bytes, Sanction] = field(default_factory=dict)
    proposals: dict[bytes, Proposal] = field(default_factory=dict)
    votes: dict[bytes, list[tuple[bytes, int, str, bytes]]] = field(default_factory=dict)  # proposal -> (voter, seq, choice, id)
    deciding: dict[bytes, list[bytes]] = field(default_factory=dict)  # proposal -> valid deciding tallies, fold order
    counted: dict[bytes, frozenset[tuple[bytes, int]]] = field(default_factory=dict)  # deciding tally -> votes counted
    rank: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    charters: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)  # (put in force by, charter), fold order
    federations: dict[bytes, tuple[Any, bytes]] = field(default_factory=dict)
    fed_log: list[tuple[bytes, bytes, bool]] = field(default_factory=list)  # (coop, deciding tally, federated after it)


# Readings the doc leaves open or states in a way the fold does not follow; each is reported.
READINGS = {
    # "the votes A would count (as a tally, ignoring closure) are exactly those T counted": the doc
    # literally compares A's count, passing over votes A knows were bound, with T's count, and
    # "sees T" includes a concurrent tally with the same claim. The fold compares the votes on p in
    # A's past with those in T's past, bindings ignored, and needs T in A's past. The literal reading
    # lets a sanction's own binding make the tally that imposed it acknowledged (two fixed points).
    "acks_in_view": "acknowledgement compares the votes in view, bindings ignored, T in A's past",
}


class Oracle:
    """The doc's rules over one co-op's items: ``Oracle(genesis, items, ghosts)``."""

    def __init__(
        self,
        genesis: Item,
        items: Iterable[Item],
        ghosts: Iterable[bytes] = (),
        *,
        max_rounds: int = 40,
        readings: Iterable[str] = (),
    ) -> None:
        """``readings``: where the doc and the fold differ and the doc is the one in doubt, the
        fold's reading instead of the doc's literal one (see ``READINGS``)."""
        self.readings = set(readings)
        assert self.readings <= set(READINGS), self.readings - set(READINGS)
        self.coop = genesis.id
        self.items: dict[bytes, Item] = {genesis.id: genesis}
        for it in items:
            self.items.setdefault(it.id, it)
        self.ghosts = set(ghosts) & set(self.items)
        self._readiness()
        self.rounds = 0
        pins: dict[bytes, bytes] = {}
        seen_pins: list[dict[bytes, bytes]] = []
        while True:
            self.rounds += 1
            ev = self._evaluate(pins)
            new = self._winners(ev)
            if new == pins:
                break
            if new in seen_pins or self.rounds >= max_rounds:
                raise OracleCycle(f"the pins do not settle after {self.rounds} rounds: {len(new)} disputed")
            seen_pins.append(pins)
            pins = new
        self.ev = ev
        self.pins = pins
        self._finish()

    # ---- the graph ---------------------------------------------------------------------------

    def parents(self, it: Item) -> tuple[bytes, ...]:
        if it.id == self.coop:
            return ()
        ps = (*it.deps, it.prev) if it.prev is not None else tuple(it.deps)
        # DOC GAP: an action with neither prev nor deps has no parent; the doc gives the genesis
        # height 0 and says the genesis is in every causal past, so such an action is read as
        # built on the genesis (height 1), never as sorting beside or before it.
        return ps or (self.coop,)

    def _readiness(self) -> None:
        height: dict[bytes, int] = {self.coop: 0}
        progress = True
        while progress:
            progress = False
            for x, it in self.items.items():
                if x in height:
                    continue
                ps = self.parents(it)
                if all(p in height for p in ps):
                    height[x] = 1 + max(height[p] for p in ps)
                    progress = True
        self.height = height
        self.ready = set(height)
        self.deferred = len(self.items) - len(height)
        self.order = sorted(height, key=self.key)
        self.pos = {x: i for i, x in enumerate(self.order)}
        self.past: dict[bytes, frozenset[bytes]] = {}
        for x in self.order:
            acc = {x}
            for p in self.parents(self.items[x]):
                acc |= self.past[p]
            self.past[x] = frozenset(acc)
        # kept chains: actions (not proofs, not ghosts) by author and seq
        self.chain: dict[bytes, dict[int, bytes]] = {}
        for x in self.order:
            it = self.items[x]
            if self.kept(x):
                self.chain.setdefault(it.author, {})[it.seq] = x

    def key(self, x: bytes) -> tuple[int, int, bytes]:
        return (self.height[x], 0 if self.items[x].kind == EQUIVOCATION else 1, x)

    def kept(self, x: bytes) -> bool:
        return self.items[x].kind != EQUIVOCATION and x not in self.ghosts

    # ---- one fold with pins --------------------------------------------------------------------

    def _evaluate(self, pins: dict[bytes, bytes]) -> Evaluation:
        ev = Evaluation(dict(pins))
        self._ev = ev
        g = self.items[self.coop]
        body = g.body if isinstance(g.body, dict) else {}
        ev.charters.append((self.coop, body.get("charter") or codec.decode(codec.encode(DEFAULT_CHARTER))))
        for x in self.order:
            it = self.items[x]
            ev.clock[x] = self._clock(ev, x)
            if x in self.ghosts:
                ev.verdict[x], ev.witness[x] = None, False  # DOC GAP: ghosts are not judged and not witnesses
                continue
            if it.kind == GENESIS:
                ev.verdict[x] = self._genesis(ev, it)
                ev.witness[x] = ev.verdict[x] is None
                continue
            if it.kind == EQUIVOCATION:
                ev.verdict[x] = self._proof(ev, it)
                ev.witness[x] = False
                continue
            self._start_pending(ev, it)
            reason = self._judge(ev, it)
            ev.verdict[x] = reason
            ev.witness[x] = reason is None and self._good_after(ev, it)
        return ev

    def _clock(self, ev: Evaluation, x: bytes) -> int:
        it = self.items[x]
        if x == self.coop:
            return it.ts
        ps = self.parents(it)
        base = max(ev.clock[p] for p in ps)
        latest: dict[bytes, int] = {}
        for y in self.past[x] - {x}:
            if ev.witness.get(y):
                a, t = self.items[y].author, self.items[y].ts
                latest[a] = max(latest.get(a, t), t)
        if not latest:
            return base
        w = sorted(((t, a) for a, t in latest.items()), reverse=True)
        return max(base, w[min(CLOCK_WITNESSES, len(w)) - 1][0])

    # ---- views ---------------------------------------------------------------------------------

    def sees(self, x: bytes, e: bytes | None) -> bool:
        """The doc's "Seen": whether item ``x`` sees ``e``."""
        if e is None:
            return False
        if e == self.coop or e == x:
            return True
        if e not in self.pos:
            return False
        it = self.items[e]
        if it.kind == EQUIVOCATION:
            return self.pos[e] < self.pos[x]
        if e in self.ghosts:
            return False
        if e in self.past[x]:
            return True
        if it.kind == TALLY:
            pid, claim = it.body["proposal"], it.body["outcome"]
            return any(t != e and self.items[t].body["outcome"] == claim and t in self.past[x] for t in self._ev.deciding.get(pid, ()))
        return False

    def charter_of(self, x: bytes) -> dict[str, Any]:
        for by, c in reversed(self._ev.charters):
            if self.sees(x, by):
                return c
        raise AssertionError("the genesis charter is seen by everything")

    def bound(self, who: bytes, seq: int, knower: bytes | None) -> Sanction | None:
        """A sanction binding ``who``'s kept action at ``seq`` (an expulsion first), as far as
        ``knower`` knows (None: every sanction in the state)."""
        y = self.chain.get(who, {}).get(seq)
        if y is None:
            return None
        found: list[Sanction] = []
        for s in self._ev.sanctions.values():
            if s.member != who or s.kind not in ("suspend", "expel") or seq <= s.bound:
                continue
            if knower is not None and not self.sees(knower, s.imposed_by):
                continue
            if any(self.sees(y, lift) for lift in s.lifts):
                continue
            if s.kind == "expel" or s.until is None or self._ev.clock[y] < s.until:
                found.append(s)
        found.sort(key=lambda s: s.kind != "expel")
        return found[0] if found else None

    def _voided(self, v: Version, knower: bytes | None) -> bool:
        if not v.needed:
            return False
        good = sum(1 for s, q in v.sponsors if not self.void_sponsorship(s, q, knower))
        return good < v.needed

    def void_sponsorship(self, who: bytes, seq: int, knower: bytes | None) -> bool:
        """Bound, or made on a membership that is void as far as ``knower`` knows: the version of
        the sponsor that the sponsorship saw rests on void sponsorships or a bound application."""
        if self.bound(who, seq, knower) is not None:
            return True
        y = self.chain.get(who, {}).get(seq)
        if y is None:
            return False
        for v in reversed(self._ev.versions.get(who, [])):
            if self.sees(y, v.since):
                return self._voided(v, knower) or self._void_apply(v, knower)
        return False

    def _void_apply(self, v: Version, knower: bytes | None) -> bool:
        """The doc: an application beyond a sanction's bound is rejected and its effects never happen."""
        it = self.items.get(v.since)
        return it is not None and it.kind == APPLY and it.author == v.member and self.bound(v.member, it.seq, knower) is not None

    def member_seen(self, who: bytes, x: bytes, state_voids: bool = False) -> Version | None:
        knower = None if state_voids else x
        for v in reversed(self._ev.versions.get(who, [])):
            if self.sees(x, v.since) and not self._voided(v, knower) and not self._void_apply(v, knower):
                return v
        return None

    def suspended(self, who: bytes, x: bytes, t: int) -> bool:
        for s in self._ev.sanctions.values():
            if s.member != who or s.kind != "suspend" or not self.sees(x, s.imposed_by):
                continue
            if any(self.sees(x, lift) for lift in s.lifts):
                continue
            # an equivocation suspension whose start x has not seen is in force
            if s.until is None or t < s.until or not self.sees(x, s.started_by or s.imposed_by):
                return True
        return False

    def standing(self, who: bytes, x: bytes, t: int, state_voids: bool = False) -> str:
        v = self.member_seen(who, x, state_voids)
        if v is None:
            return "none"
        if v.status != "member":
            return v.status
        return "suspended" if self.suspended(who, x, t) else "member"

    def perms(self, v: Version | None, charter: dict[str, Any]) -> set[str]:
        return {p for r in (v.roles if v else ()) for p in charter["roles"].get(r, ())}

    # ---- state changes -------------------------------------------------------------------------

    def _become(self, ev: Evaluation, who: bytes, status: str, roles: Iterable[str], since: bytes, **kw: Any) -> None:
        ev.versions.setdefault(who, []).append(Version(who, status, frozenset(roles), since, **kw))

    def latest(self, who: bytes) -> Version | None:
        vs = self._ev.versions.get(who)
        return vs[-1] if vs else None

    def _genesis(self, ev: Evaluation, it: Item) -> str | None:
        if it.id != self.coop:
            return "second_genesis"
        body = it.body if isinstance(it.body, dict) else {}
        for f in {it.author, *body.get("founders", ())}:
            self._become(ev, f, "member", ("member", "founder"), it.id)
        return None

    def _proof(self, ev: Evaluation, it: Item) -> str | None:
        if self.latest(it.author) is None:
            return "status_none"
        # DOC GAP: "the charter's equivocation sanction": the charter in force in the state at the
        # proof's place in the fold order (a proof has no view of its own).
        rule = ev.charters[-1][1]["equivocation"]
        mine = [s for s in ev.sanctions.values() if s.member == it.author and s.clause == "equivocation"]
        # "unless its two actions have different prevs (the branches parted lower down: the proof
        # where they part counts) or an equivocation sanction of theirs with bound = s already
        # exists (one fork, one answer)"
        if it.body.get("parted") or any(s.bound == it.seq for s in mine):
            return None
        if rule["sanction"] == "none":
            return None
        before = len(mine)
        kind = "warning" if before < rule.get("forgive", 0) else rule["sanction"]
        ev.sanctions[it.id] = Sanction(
            it.id,
            it.author,
            kind,
            None,
            "equivocation",
            (it.body["a"], it.body["b"]),
            it.id,
            it.seq,
            pending_days=rule["days"] if kind == "suspend" else None,
        )
        if kind == "expel":
            self._become(ev, it.author, "expelled", (), it.id)
        return None

    def _start_pending(self, ev: Evaluation, it: Item) -> None:
        for s in ev.sanctions.values():
            if s.member == it.author and s.pending_days is not None and it.seq > s.bound:
                s.until, s.pending_days, s.started_by = ev.clock[it.id] + s.pending_days * DAY, None, it.id

    def _good_after(self, ev: Evaluation, it: Item) -> bool:
        """A witness: just after it, its author is a member not suspended in its own view."""
        v = self.member_seen(it.author, it.id)
        return v is not None and v.status == "member" and not self.suspended(it.author, it.id, ev.clock[it.id])

    # ---- verdicts ------------------------------------------------------------------------------

    def _judge(self, ev: Evaluation, it: Item) -> str | None:
        x, t, kind = it.id, ev.clock[it.id], it.kind
        me = self.member_seen(it.author, x)
        status = me.status if me else "none"
        charter = self.charter_of(x)
        if kind == APPLY:
            if status not in ("none", "left"):
                return f"status_{status}"
            if charter["membership"]["policy"] == "open":
                self._become(ev, it.author, "member", ("member",), x)
            else:
                self._become(ev, it.author, "applicant", (), x)
            return None
        if kind in (LEAVE, SEEN):
            if status not in ("member", "applicant"):
                return f"status_{status}"
            if kind == LEAVE:
                self._become(ev, it.author, "left", (), x)
            return None
        if kind == OPEN:
            return self._open(ev, it, me, charter)
        # the rest need a member in good standing with a permission
        if status != "member":
            return f"status_{status}"
        if self.suspended(it.author, x, t):
            return "suspended"
        perms = self.perms(me, charter)
        if kind == SPONSOR:
            if "sponsor" not in perms:
                return "no_permission"
            return self._sponsor(ev, it, charter)
        if kind in (VOTE, TALLY):
            if ("vote" if kind == VOTE else "tally") not in perms:
                return "no_permission"
            return self._vote_or_tally(ev, it)
        patterns = [p for p in perms if p not in GOVERNANCE_PERMS]
        if not any(p == "*" or p == kind or (p.endswith(".*") and kind.startswith(p[:-1])) for p in patterns):
            return "no_permission"
        return None

    def _sponsor(self, ev: Evaluation, it: Item, charter: dict[str, Any]) -> str | None:
        target = it.body["member"]
        v = self.member_seen(target, it.id)
        if v is None or v.status != "applicant":
            return "not_an_applicant"
        cur = self.latest(target)
        assert cur is not None
        # DOC GAP: "sponsor recorded" on the member's latest version, once per sponsor, only while
        # it is still an applicant there (an admission the sponsor had not seen makes it a no-op).
        if cur.status != "applicant" or any(s == it.author for s, _ in cur.sponsors):
            return None
        sponsors = (*cur.sponsors, (it.author, it.seq))
        ms = charter["membership"]
        if ms["policy"] == "sponsored" and len(sponsors) >= ms["sponsors"]:
            self._become(ev, target, "member", ("member",), it.id, sponsors=sponsors, needed=ms["sponsors"])
        else:
            self._become(ev, target, "applicant", cur.roles, it.id, sponsors=sponsors)
        return None

    def _open(self, ev: Evaluation, it: Item, me: Version | None, charter: dict[str, Any]) -> str | None:
        x, t = it.id, ev.clock[it.id]
        b = it.body
        ptype, payload = b["type"], b["payload"]
        target_sanction: Sanction | None = None
        if ptype == "lift":
            s = ev.sanctions.get(payload["sanction"])
            if s is not None and self.sees(x, s.imposed_by) and not any(self.sees(x, lift) for lift in s.lifts):
                target_sanction = s
        appeal = target_sanction is not None and target_sanction.member == it.author
        standing = self.standing(it.author, x, t)
        if not appeal:
            if standing != "member":
                return "suspended" if standing == "suspended" else f"status_{standing}"
            # DOC GAP: the table says an opening needs "propose"; an appeal is read as needing no
            # permission ("it is the one proposal they may always open").
            if "propose" not in self.perms(me, charter):
                return "no_permission"
        if ptype == "admit":
            v = self.member_seen(payload["member"], x)
            if v is None or v.status != "applicant":
                return "not_an_applicant"
        if ptype == "sanction":
            if payload["clause"] not in charter["offences"]:
                return "unknown_clause"
            v = self.member_seen(payload["member"], x)
            if v is None or v.status != "member":
                return "not_a_member"
        if ptype == "lift" and target_sanction is None:
            return "unknown_sanction"
        if ptype == "role" and payload["role"] not in charter["roles"]:
            return "unknown_role"
        if ptype == "federate" and payload["coop"] == self.coop:
            return "self_federation"
        if ptype == "unfederate":
            # "an agreement exists" in the opening's view: the latest federation decision about the
            # co-op that it has seen federated it.
            seen = [present for coop, by, present in ev.fed_log if coop == payload["coop"] and self.sees(x, by)]
            if not seen or not seen[-1]:
                return "not_federated"
        rule = charter["decisions"].get(ptype, charter["decisions"]["default"])
        electorate = frozenset(k for k in ev.versions if self.standing(k, x, t) == "member")
        closes = max(t, it.ts) + rule.get("minutes", 10_080) * MINUTE
        ev.proposals[x] = Proposal(x, it.author, it.seq, ptype, payload, electorate, rule["quorum"], rule["threshold"], closes)
        return None

    def is_appeal(self, p: Proposal) -> bool:
        if p.type != "lift":
            return False
        s = self._ev.sanctions.get(p.payload["sanction"])
        return s is not None and s.member == p.author

    def _vote_or_tally(self, ev: Evaluation, it: Item) -> str | None:
        x, t = it.id, ev.clock[it.id]
        pid = it.body["proposal"]
        p = ev.proposals.get(pid)
        if pid in self.pos and not self.sees(x, pid):
            return "proposal_not_in_deps"  # wherever the opening sorts
        if p is None:
            return "unknown_proposal"
        if self.bound(p.author, p.seq, x) is not None and not self.is_appeal(p):
            return "proposal_void"
        if any(self.sees(x, d) for d in ev.deciding.get(pid, ())):
            return "proposal_closed"
        if it.kind == VOTE:
            if max(t, it.ts) >= p.closes:
                return "voting_closed"
            if it.author not in p.electorate:
                return "not_in_electorate"
            ev.votes.setdefault(pid, []).append((it.author, it.seq, it.body["choice"], x))
            return None
        counted = self.count(p, x)
        result = self.outcome(p, counted, t >= p.closes)
        if result != it.body["outcome"]:
            return f"wrong_outcome:{result}"
        if result == "open":
            return None
        ev.deciding.setdefault(pid, []).append(x)
        ev.counted[x] = frozenset((v[0], v[1]) for v in counted)
        ev.rank[x] = (len(counted), sum(v[1] for v in counted))
        pin = ev.pins.get(pid)
        if (pin == x) if pin is not None else p.status == "open":
            p.status, p.decided_by = result, x
            if result == "passed":
                self._effect(ev, p, it)
        elif pin is None and p.status == result == "passed" and p.type == "sanction":
            # another tally passing the same sanction: the lower bound, the later end
            s = ev.sanctions.get(pid)
            if s is not None and s.imposed_by == p.decided_by:
                s.bound = min(
                    s.bound, max((self.items[y].seq for y in self.past[x] if self.kept(y) and self.items[y].author == s.member), default=0)
                )
                offence = self.charter_of(x)["offences"].get(s.clause)
                if s.kind == "suspend" and s.until is not None and offence is not None:
                    s.until = max(s.until, t + offence["days"] * DAY)
        return None

    def count(self, p: Proposal, x: bytes, *, binding: bool = True) -> list[tuple[bytes, int, str, bytes]]:
        """Each elector's latest applied vote on ``p`` in the past of ``x``, passing over the votes
        ``x`` knows were bound (``binding``)."""
        out = []
        for e in sorted(p.electorate):
            mine = [
                v
                for v in self._ev.votes.get(p.id, ())
                if v[0] == e and v[3] in self.past[x] and not (binding and self.bound(e, v[1], x) is not None)
            ]
            if mine:
                out.append(max(mine, key=lambda v: v[1]))
        return out

    @staticmethod
    def outcome(p: Proposal, counted: list[tuple[bytes, int, str, bytes]], closed: bool) -> str:
        n = {c: sum(1 for v in counted if v[2] == c) for c in ("yes", "no", "abstain", "block")}
        voted, e = len(counted), len(p.electorate)
        if not closed and voted < e:
            return "open"
        if e == 0 or voted == 0 or 100 * voted < p.quorum * e:
            return "rejected" if closed else "open"
        yes, no, block = n["yes"], n["no"], n["block"]
        if p.threshold == "majority":
            ok = yes > no + block
        elif p.threshold == "two_thirds":
            ok = yes > 0 and 3 * yes >= 2 * (yes + no + block)
        else:
            ok = yes > 0 and block == 0
        return "passed" if ok else "rejected"

    def _effect(self, ev: Evaluation, p: Proposal, tally: Item) -> None:
        t = tally.id
        pay = p.payload
        if p.type == "admit":
            v = self.latest(pay["member"])
            if v is not None and v.status == "applicant":
                self._become(ev, pay["member"], "member", ("member",), t)
        elif p.type == "amend":
            ev.charters.append((t, pay["charter"]))
        elif p.type == "sanction":
            offence = self.charter_of(t)["offences"].get(pay["clause"])
            if offence is None:
                return
            who = pay["member"]
            bound = max((self.items[y].seq for y in self.past[t] if self.kept(y) and self.items[y].author == who), default=0)
            kind = offence["sanction"]
            until = ev.clock[t] + offence["days"] * DAY if kind == "suspend" else None
            ev.sanctions[p.id] = Sanction(p.id, who, kind, until, pay["clause"], tuple(pay["evidence"]), t, bound)
            if kind == "expel":
                self._become(ev, who, "expelled", (), t)
        elif p.type == "lift":
            s = ev.sanctions.get(pay["sanction"])
            if s is None:
                return
            s.lifts.append(t)
            if s.lifted_by is not None:
                return
            s.lifted_by = t
            v = self.latest(s.member)
            others = any(o.member == s.member and o.kind == "expel" and o.lifted_by is None for o in ev.sanctions.values())
            if s.kind == "expel" and v is not None and v.status == "expelled" and not others:
                self._become(ev, s.member, "member", ("member",), t)
        elif p.type == "federate":
            ev.federations[pay["coop"]] = (pay["terms"], t)
            ev.fed_log.append((pay["coop"], t, True))
        elif p.type == "unfederate":
            ev.federations.pop(pay["coop"], None)
            ev.fed_log.append((pay["coop"], t, False))
        elif p.type == "role":
            v = self.latest(pay["member"])
            if v is not None:
                roles = v.roles | {pay["role"]} if pay["grant"] else v.roles - {pay["role"]}
                self._become(ev, pay["member"], v.status, roles, t, sponsors=v.sponsors)

    # ---- settling disputes ----------------------------------------------------------------------

    def acks(self, p: Proposal, deciders: list[bytes]) -> dict[bytes, int]:
        """Electors acknowledging each deciding tally: their first chain action that sees any of them
        sees it, and would count a vote of exactly the electors it counted (a re-vote it did not count
        does not spoil it); the best such by (rank, fold order)."""
        out: dict[bytes, int] = {}
        for e in sorted(p.electorate):
            first = next(
                (a for _, a in sorted(self.chain.get(e, {}).items()) if any(d in self.past[a] for d in deciders)),
                None,
            )
            if first is None:
                continue
            if "acks_in_view" in self.readings:
                mine = frozenset(v[0] for v in self.count(p, first, binding=False))
                complete = [
                    d for d in deciders if d in self.past[first] and frozenset(v[0] for v in self.count(p, d, binding=False)) == mine
                ]
            else:
                mine = frozenset(v[0] for v in self.count(p, first))
                complete = [d for d in deciders if self.sees(first, d) and frozenset(e for e, _ in self._ev.counted[d]) == mine]
            if complete:
                best = max(complete, key=lambda d: (self._ev.rank[d], -self.pos[d]))
                out[best] = out.get(best, 0) + 1
        return out

    def consistent(self, pins: dict[bytes, bytes]) -> bool:
        """Whether folding with ``pins`` gives back the same winners: a fixed point of the doc's
        "the winner over the whole set"."""
        saved = self._ev
        try:
            return self._winners(self._evaluate(pins)) == pins
        finally:
            self._ev = saved

    def needed(self, p: Proposal) -> int:
        return max(1, -(-p.quorum * len(p.electorate) // 100))

    def _winners(self, ev: Evaluation) -> dict[bytes, bytes]:
        self._ev = ev
        pins: dict[bytes, bytes] = {}
        for pid, ds in ev.deciding.items():
            if len({self.items[d].body["outcome"] for d in ds}) > 1:
                p = ev.proposals[pid]
                acks, need = self.acks(p, ds), self.needed(p)
                pins[pid] = max(ds, key=lambda d: (acks.get(d, 0) >= need, ev.rank[d], -self.pos[d]))
        return pins

    # ---- the state -----------------------------------------------------------------------------

    def _finish(self) -> None:
        ev = self._ev = self.ev
        res = dict(ev.verdict)
        for y in self.order:
            it = self.items[y]
            if res[y] is not None or not self.kept(y) or it.kind in (LEAVE, TALLY, GENESIS):
                continue
            if it.kind == OPEN and self._appeal_item(it):
                continue
            s = self.bound(it.author, it.seq, None)
            if s is not None:
                res[y] = "status_expelled" if s.kind == "expel" else "suspended"
                continue
            # an admission that rests on bound sponsorships falls: judge the author's standing again
            v_view, v_state = self.member_seen(it.author, y), self.member_seen(it.author, y, state_voids=True)
            if v_view is not v_state:
                # DOC GAP: "rejected with the status that remains": the rule table's standing
                # requirement, applied to the version that remains (tallies stay exempt, as from binding).
                left = self.standing(it.author, y, ev.clock[y], state_voids=True)
                reason = self._standing_reason(it, left)
                if reason is not None:
                    res[y] = reason
        self.results = res
        self.members: dict[bytes, tuple[str, tuple[str, ...], tuple[bytes, ...]]] = {}
        for who, vs in ev.versions.items():
            for v in reversed(vs):
                if not self._voided(v, None) and not self._void_apply(v, None):
                    sponsors = tuple(sorted(s for s, q in v.sponsors if not self.void_sponsorship(s, q, None)))
                    self.members[who] = (v.status, tuple(sorted(v.roles)), sponsors)
                    break

    def _appeal_item(self, it: Item) -> bool:
        if it.body["type"] != "lift":
            return False
        s = self._ev.sanctions.get(it.body["payload"]["sanction"])
        return s is not None and s.member == it.author

    @staticmethod
    def _standing_reason(it: Item, standing: str) -> str | None:
        if it.kind in (LEAVE, SEEN):
            return None if standing in ("member", "suspended", "applicant") else f"status_{standing}"
        if it.kind == APPLY:
            return None if standing in ("none", "left") else f"status_{'member' if standing == 'suspended' else standing}"
        if standing == "member":
            return None
        return "suspended" if standing == "suspended" else f"status_{standing}"

    # ---- what the tests compare ----------------------------------------------------------------

    def result(self, x: bytes) -> tuple[str, str | None]:
        if x not in self.pos:
            return ("deferred", None) if x in self.items else ("unknown", None)
        if x in self.ghosts:
            return ("forked", None)
        r = self.results[x]
        return ("applied", None) if r is None else ("rejected", r)

    def proposals(self) -> dict[bytes, tuple[Any, ...]]:
        return {k: (p.type, p.status, p.decided_by, p.electorate, p.quorum, p.threshold, p.closes) for k, p in self.ev.proposals.items()}

    def sanctions(self) -> dict[bytes, tuple[Any, ...]]:
        return {
            k: (s.member, s.kind, s.until, s.clause, s.evidence, s.imposed_by, s.lifted_by, s.bound) for k, s in self.ev.sanctions.items()
        }

    def charter(self) -> dict[str, Any]:
        return self.ev.charters[-1][1]

    def counted_items(self) -> list[bytes]:
        return [x for x in self.order if x not in self.ghosts and self.ev.verdict[x] != "status_none"]

    def state_hash(self) -> bytes:
        """The doc's state hash. DOC GAP: the doc names the fields of ``members`` and ``sanctions``
        but not that roles and sponsors are sorted, nor the fields of ``proposals`` and
        ``federations``; those follow ``Fold.canonical``."""
        h = hashlib.sha256(b"coopnet/v2/results\x00")
        counted = rejected = 0
        for x in self.counted_items():
            r = self.results[x]
            counted += 1
            rejected += r is not None
            h.update(x + (r or "").encode() + b"\x00")
        value = {
            "charter": self.charter(),
            "coop": self.coop,
            "counted": counted,
            "federations": [[c, terms, by] for c, (terms, by) in sorted(self.ev.federations.items())],
            "members": [[k, st, list(roles), list(sp)] for k, (st, roles, sp) in sorted(self.members.items())],
            "proposals": [[k, p.type, p.status, p.decided_by] for k, p in sorted(self.ev.proposals.items())],
            "rejected": rejected,
            "results": h.digest(),
            "sanctions": [
                [k, s.member, s.kind, s.until, s.clause, s.imposed_by, s.lifted_by, s.bound] for k, s in sorted(self.ev.sanctions.items())
            ],
        }
        return hashlib.sha256(b"coopnet/v2/state\x00" + codec.encode(value)).digest()


class OracleCycle(AssertionError):
    """The fixed-point iteration over disputed decisions did not settle: the doc does not say
    which decision stands (reported, with the history, as a doc gap)."""
