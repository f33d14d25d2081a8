"""Co-op governance as a deterministic fold over signed actions.

Theory of operation. A co-op's state (charter, members and their roles, proposals and their
votes and outcomes, sanctions, federation decisions) is ``fold(actions)``: every node that holds
the same actions and proofs computes the same state, byte for byte, whatever order they arrived
in. Three ideas make that true:

1. **A total order that respects causality.** An action is *ready* once its ``prev`` and all its
   ``deps`` are ready; its height is one more than the highest of theirs (the genesis: 0). Ready
   actions are applied in (height, id) order (proof events first at their height). Late arrivals that sort before the tip make the fold
   resume from the last snapshot at or before them, not from scratch.
2. **Rules are data.** ``RULES`` maps each kind to who may do it (member status and role
   permission) and what it changes. An intrinsically valid action that breaks a rule is kept (it
   is a signed fact) and marked rejected with a reason, identically everywhere.
3. **Decisions read only their causal past.** A tally counts exactly the votes in its deps
   closure (each voter's latest such vote), among the electorate fixed when the proposal opened,
   under the decision rule of the charter then in force. Every node recomputes the outcome and
   rejects a tally that claims another. A late or backdated vote is outside the closure of any
   tally made before it was seen, so it can never change that tally's outcome.

Time. An author's claimed ``ts`` cannot be trusted to end their own suspension, so rules use the
action's *causal time*: the largest ``ts`` among the actions of *other* authors in its past (its
deps, transitively). A suspended member must depend on others' later actions to prove that time
has passed.

Equivocation. A proof (two signed actions at one seq) is an input like an action: it becomes
ready right after its canonical action (the smaller id, which every node keeps in the chain) and
sanctions the author as the charter says.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .action import Action
from .chain import EquivocationProof
from .charter import (
    APPLY,
    DEFAULT_CHARTER,
    GENESIS,
    LEAVE,
    OPEN,
    SPONSOR,
    TALLY,
    VOTE,
    permits,
)

EQUIVOCATION = "~equivocation"  # the kind of a proof event inside the fold (never on the wire)
DAY_MS = 86_400_000
SNAPSHOT_EVERY = 2000
RECENT_EVERY = 256  # how stale the snapshot kept at the tip may get
FRONTIER_CACHE = 64
STATE_HASH_TAG = b"coopnet/v1/state\x00"
RESULTS_TAG = b"coopnet/v1/results\x00"

APPLICANT, MEMBER, LEFT, EXPELLED = "applicant", "member", "left", "expelled"
NONE = "none"  # not known to the co-op


@dataclass(frozen=True, slots=True)
class Item:
    """What the fold needs of an action (or of a proof event)."""

    id: bytes
    author: bytes
    seq: int
    prev: bytes | None
    deps: tuple[bytes, ...]
    ts: int
    kind: str
    body: Any

    @classmethod
    def of(cls, a: Action) -> Item:
        return cls(a.id, a.author, a.seq, a.prev, a.env.deps, a.env.ts, a.kind, a.body_value())

    @classmethod
    def of_proof(cls, p: EquivocationProof) -> Item:
        # Ready right after the canonical (smaller-id) fork, which every node keeps.
        return cls(p.id, p.author, p.seq, None, (p.a.id,), p.a.env.ts, EQUIVOCATION, {"a": p.a.id, "b": p.b.id})

    @property
    def parents(self) -> tuple[bytes, ...]:
        return (*self.deps, self.prev) if self.prev is not None else self.deps


# ---- state ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Member:
    status: str
    roles: set[str]
    since: bytes  # the action that made it this status
    sponsors: set[bytes] = field(default_factory=set)

    def copy(self) -> Member:
        return Member(self.status, set(self.roles), self.since, set(self.sponsors))


@dataclass(slots=True)
class Sanction:
    id: bytes
    member: bytes
    kind: str  # suspend | expel
    until: int | None  # causal time (ms) a suspension ends; None: until lifted
    clause: str
    evidence: tuple[bytes, ...]
    imposed_by: bytes  # the deciding tally, or the proof
    lifted_by: bytes | None = None

    def active(self, t: int) -> bool:
        return self.lifted_by is None and (self.until is None or t < self.until)


@dataclass(slots=True)
class Proposal:
    id: bytes
    author: bytes
    type: str
    title: str
    payload: Any
    electorate: frozenset[bytes]
    quorum: int
    threshold: str
    status: str = "open"  # open | passed | rejected
    decided_by: bytes | None = None
    votes: dict[bytes, list[tuple[int, str]]] = field(default_factory=dict)  # member -> [(seq, choice)] in seq order

    def copy(self) -> Proposal:
        if self.status != "open":
            return self  # closed proposals never change again: share them between snapshots
        p = Proposal(
            self.id,
            self.author,
            self.type,
            self.title,
            self.payload,
            self.electorate,
            self.quorum,
            self.threshold,
            self.status,
            self.decided_by,
        )
        p.votes = {m: list(v) for m, v in self.votes.items()}
        return p


@dataclass(slots=True)
class State:
    coop: bytes
    charter: dict[str, Any]
    members: dict[bytes, Member] = field(default_factory=dict)
    proposals: dict[bytes, Proposal] = field(default_factory=dict)
    sanctions: dict[bytes, Sanction] = field(default_factory=dict)
    federations: dict[bytes, tuple[Any, bytes]] = field(default_factory=dict)  # coop -> (terms, deciding tally)
    sanctioned: dict[bytes, list[bytes]] = field(default_factory=dict)  # member -> sanction ids (an index)
    applied: int = 0
    rejected: int = 0
    clock: int = 0  # the latest causal time among the items applied so far
    results_hash: bytes = RESULTS_TAG

    def copy(self) -> State:
        s = State(self.coop, self.charter)
        s.members = {k: m.copy() for k, m in self.members.items()}
        s.proposals = {k: p.copy() for k, p in self.proposals.items()}
        s.sanctions = {k: Sanction(**{f: getattr(x, f) for f in x.__slots__}) for k, x in self.sanctions.items()}  # type: ignore[attr-defined]
        s.federations = dict(self.federations)
        s.sanctioned = {k: list(v) for k, v in self.sanctioned.items()}
        s.applied, s.rejected, s.results_hash, s.clock = self.applied, self.rejected, self.results_hash, self.clock
        return s

    def status(self, who: bytes) -> str:
        m = self.members.get(who)
        return m.status if m is not None else NONE

    def suspended(self, who: bytes, t: int) -> bool:
        return any((x := self.sanctions[i]).kind == "suspend" and x.active(t) for i in self.sanctioned.get(who, ()))

    def in_good_standing(self, who: bytes, t: int) -> bool:
        return self.status(who) == MEMBER and not self.suspended(who, t)

    def permissions(self, who: bytes) -> set[str]:
        m = self.members.get(who)
        roles = self.charter["roles"]
        return {p for r in (m.roles if m else ()) for p in roles.get(r, ())}

    def electorate(self, t: int) -> frozenset[bytes]:
        return frozenset(k for k in self.members if self.in_good_standing(k, t))

    def canonical(self) -> dict[str, Any]:
        """Everything the state hash covers, as a canonical value."""
        return {
            "applied": self.applied,
            "charter": self.charter,
            "coop": self.coop,
            "federations": [[c, terms, by] for c, (terms, by) in sorted(self.federations.items())],
            "members": [[k, m.status, sorted(m.roles), sorted(m.sponsors)] for k, m in sorted(self.members.items())],
            "proposals": [[k, p.type, p.status, p.decided_by] for k, p in sorted(self.proposals.items())],
            "rejected": self.rejected,
            "results": self.results_hash,
            "sanctions": [[k, x.member, x.kind, x.until, x.clause, x.imposed_by, x.lifted_by] for k, x in sorted(self.sanctions.items())],
        }

    def hash(self) -> bytes:
        return hashlib.sha256(STATE_HASH_TAG + codec.encode(self.canonical())).digest()


# ---- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ctx:
    """What an effect may look at besides the state: the item, its causal time, the fold."""

    item: Item
    time: int
    fold: Fold


@dataclass(frozen=True, slots=True)
class Rule:
    who: frozenset[str]  # member statuses allowed (good standing is checked for MEMBER)
    permission: str | None  # role permission needed; "kind": the action's own kind
    effect: Callable[[State, Ctx], str | None]  # None when applied, else the reject reason


def _apply(s: State, c: Ctx) -> str | None:
    a = c.item.author
    policy = s.charter["membership"]["policy"]
    s.members[a] = Member(MEMBER if policy == "open" else APPLICANT, {"member"} if policy == "open" else set(), c.item.id)
    return None


def _sponsor(s: State, c: Ctx) -> str | None:
    target = c.item.body["member"]
    m = s.members.get(target)
    if m is None or m.status != APPLICANT:
        return "not_an_applicant"
    m.sponsors.add(c.item.author)
    ms = s.charter["membership"]
    if ms["policy"] == "sponsored" and len(m.sponsors) >= ms["sponsors"]:
        s.members[target] = Member(MEMBER, {"member"}, c.item.id)
    return None


def _leave(s: State, c: Ctx) -> str | None:
    s.members[c.item.author] = Member(LEFT, set(), c.item.id)
    return None


def _open(s: State, c: Ctx) -> str | None:
    b = c.item.body
    ptype, payload = b["type"], b["payload"]
    author = c.item.author
    appeal = ptype == "lift" and (x := s.sanctions.get(payload["sanction"])) is not None and x.member == author
    if not s.in_good_standing(author, c.time):
        if not appeal:
            return "suspended" if s.status(author) == MEMBER else f"status_{s.status(author)}"
    elif "propose" not in s.permissions(author) and not appeal:
        return "no_permission"
    if ptype == "admit" and s.status(payload["member"]) != APPLICANT:
        return "not_an_applicant"
    if ptype == "sanction":
        if payload["clause"] not in s.charter["offences"]:
            return "unknown_clause"
        if s.status(payload["member"]) != MEMBER:
            return "not_a_member"
    if ptype == "lift":
        x = s.sanctions.get(payload["sanction"])
        if x is None or x.lifted_by is not None:
            return "unknown_sanction"
    if ptype == "role" and payload["role"] not in s.charter["roles"]:
        return "unknown_role"
    if ptype == "federate" and payload["coop"] == s.coop:
        return "self_federation"
    if ptype == "unfederate" and payload["coop"] not in s.federations:
        return "not_federated"
    rule = s.charter["decisions"].get(ptype, s.charter["decisions"]["default"])
    s.proposals[c.item.id] = Proposal(
        c.item.id, author, ptype, b["title"], payload, s.electorate(c.time), rule["quorum"], rule["threshold"]
    )
    return None


def _vote(s: State, c: Ctx) -> str | None:
    p = s.proposals.get(c.item.body["proposal"])
    if p is None:
        return "unknown_proposal"
    if p.status != "open":
        return "proposal_closed"
    if c.item.author not in p.electorate:
        return "not_in_electorate"
    p.votes.setdefault(c.item.author, []).append((c.item.seq, c.item.body["choice"]))
    return None


def outcome(p: Proposal, frontier: dict[bytes, int]) -> tuple[str, dict[str, int]]:
    """The outcome of ``p`` counting, for each elector, their latest vote within ``frontier``."""
    counts = {"yes": 0, "no": 0, "abstain": 0, "block": 0}
    for member, votes in p.votes.items():
        limit = frontier.get(member, 0)
        i = bisect.bisect_right(votes, (limit, "\U0010ffff"))
        if i:
            counts[votes[i - 1][1]] += 1
    voted = sum(counts.values())
    eligible = len(p.electorate)
    if eligible == 0 or 100 * voted < p.quorum * eligible or voted == 0:
        return "open", counts
    yes, no, block = counts["yes"], counts["no"], counts["block"]
    if p.threshold == "majority":
        passed = yes > no + block
    elif p.threshold == "two_thirds":
        passed = yes > 0 and 3 * yes >= 2 * (yes + no + block)
    else:  # consent
        passed = yes > 0 and block == 0
    return ("passed" if passed else "rejected"), counts


def _tally(s: State, c: Ctx) -> str | None:
    b = c.item.body
    p = s.proposals.get(b["proposal"])
    if p is None:
        return "unknown_proposal"
    frontier = c.fold.frontier_since(c.item.id, c.fold.height[p.id])
    opened = c.fold.items[p.id]
    if frontier.get(opened.author, 0) < opened.seq:
        return "proposal_not_in_deps"
    if p.status != "open":
        return "proposal_closed"
    result, _ = outcome(p, frontier)
    if result != b["outcome"]:
        return f"wrong_outcome:{result}"
    if result == "open":
        return None
    p.status, p.decided_by = result, c.item.id
    if result == "passed":
        _EFFECTS[p.type](s, p, c)
    return None


def _pass_admit(s: State, p: Proposal, c: Ctx) -> None:
    target = p.payload["member"]
    if s.status(target) == APPLICANT:
        s.members[target] = Member(MEMBER, {"member"}, c.item.id)


def _pass_amend(s: State, p: Proposal, c: Ctx) -> None:
    s.charter = p.payload["charter"]


def _pass_sanction(s: State, p: Proposal, c: Ctx) -> None:
    clause = p.payload["clause"]
    offence = s.charter["offences"].get(clause)
    if offence is None:  # the charter was amended since the proposal opened
        return
    _sanction(s, p.id, p.payload["member"], offence["sanction"], offence["days"], clause, p.payload["evidence"], c.item.id, c.time)


def _sanction(s: State, sid: bytes, who: bytes, kind: str, days: int, clause: str, evidence: tuple[bytes, ...], by: bytes, t: int) -> None:
    s.sanctions[sid] = Sanction(sid, who, kind, t + days * DAY_MS if kind == "suspend" else None, clause, tuple(evidence), by)
    s.sanctioned.setdefault(who, []).append(sid)
    if kind == "expel":
        s.members[who] = Member(EXPELLED, set(), by)  # an outsider too: they may not join later


def _pass_lift(s: State, p: Proposal, c: Ctx) -> None:
    x = s.sanctions.get(p.payload["sanction"])
    if x is None or x.lifted_by is not None:
        return
    x.lifted_by = c.item.id
    still_expelled = any(s.sanctions[i].kind == "expel" and s.sanctions[i].lifted_by is None for i in s.sanctioned.get(x.member, ()))
    if x.kind == "expel" and s.status(x.member) == EXPELLED and not still_expelled:
        s.members[x.member] = Member(MEMBER, {"member"}, c.item.id)


def _pass_federate(s: State, p: Proposal, c: Ctx) -> None:
    s.federations[p.payload["coop"]] = (p.payload["terms"], c.item.id)


def _pass_unfederate(s: State, p: Proposal, c: Ctx) -> None:
    s.federations.pop(p.payload["coop"], None)


def _pass_role(s: State, p: Proposal, c: Ctx) -> None:
    m = s.members.get(p.payload["member"])
    if m is not None:
        (m.roles.add if p.payload["grant"] else m.roles.discard)(p.payload["role"])


def _pass_text(s: State, p: Proposal, c: Ctx) -> None:
    return None


_EFFECTS: dict[str, Callable[[State, Proposal, Ctx], None]] = {
    "admit": _pass_admit,
    "amend": _pass_amend,
    "sanction": _pass_sanction,
    "lift": _pass_lift,
    "federate": _pass_federate,
    "unfederate": _pass_unfederate,
    "role": _pass_role,
    "text": _pass_text,
}


def _equivocation(s: State, c: Ctx) -> str | None:
    rule = s.charter["equivocation"]
    body = c.item.body
    if rule["sanction"] != "none" and c.item.id not in s.sanctions:
        # The fork's own causal time is the equivocator's choice (stale deps): start the
        # suspension no earlier than the co-op's clock where the proof sits in the fold.
        start = max(c.time, s.clock)
        _sanction(s, c.item.id, c.item.author, rule["sanction"], rule["days"], "equivocation", (body["a"], body["b"]), c.item.id, start)
    return None


def _app(s: State, c: Ctx) -> str | None:
    return None


_ANYONE_NEW = frozenset({NONE, LEFT})
_MEMBERS = frozenset({MEMBER})

# The one table of what each kind needs and does. "who": statuses that may act (MEMBER implies
# good standing: no active suspension at the action's causal time). "permission": a role
# permission from the charter ("kind": the application kind itself, matched against patterns).
RULES: dict[str, Rule] = {
    APPLY: Rule(_ANYONE_NEW, None, _apply),
    SPONSOR: Rule(_MEMBERS, "sponsor", _sponsor),
    LEAVE: Rule(frozenset({MEMBER, APPLICANT}), None, _leave),
    OPEN: Rule(frozenset({MEMBER, EXPELLED, LEFT, APPLICANT, NONE}), None, _open),  # _open: standing, permission, appeals
    VOTE: Rule(_MEMBERS, "vote", _vote),
    TALLY: Rule(_MEMBERS, "tally", _tally),
    EQUIVOCATION: Rule(frozenset({NONE, APPLICANT, MEMBER, LEFT, EXPELLED}), None, _equivocation),
}
APP_RULE = Rule(_MEMBERS, "kind", _app)


def rule_for(kind: str) -> Rule:
    return RULES.get(kind, APP_RULE)


# ---- the fold ------------------------------------------------------------------------------------


def _top_two(stamps: list[tuple[int, bytes]]) -> tuple[tuple[int, bytes], ...]:
    """The latest stamp, and the latest by a different author (ties broken by author bytes)."""
    best: dict[bytes, int] = {}
    for t, a in stamps:
        if t > best.get(a, -1):
            best[a] = t
    return tuple(sorted(((t, a) for a, t in best.items()), reverse=True)[:2])


class Fold:
    """One co-op's governance, folded incrementally. ``add`` actions and proofs in any order."""

    def __init__(self, genesis: Action, *, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        if not genesis.is_genesis:
            raise ValueError("a fold starts from a genesis action")
        self.coop = genesis.id
        self.snapshot_every = snapshot_every
        self.items: dict[bytes, Item] = {}
        self.height: dict[bytes, int] = {}
        self.ctime: dict[bytes, int] = {}
        self.tops: dict[bytes, tuple[tuple[int, bytes], ...]] = {}  # two latest (ts, author), distinct authors
        self.waiting: dict[bytes, list[bytes]] = {}  # missing parent -> items waiting for it
        self.order: list[tuple[int, int, bytes]] = []  # ready items in fold order: (height, rank, id)
        self.chain: dict[bytes, dict[int, bytes]] = {}  # author -> seq -> id (ready actions)
        self.results: dict[bytes, str | None] = {}  # id -> None (applied) or reject reason
        self.refolded = 0  # actions re-applied because of late arrivals (for benchmarks)
        self._frontiers: OrderedDict[bytes, dict[bytes, int]] = OrderedDict()
        body = genesis.body_value()
        self.state = self._initial(genesis, body if isinstance(body, dict) else {})
        self._snapshots: list[tuple[int, State]] = [(0, self.state.copy())]
        self._recent: tuple[int, State] | None = None  # one snapshot close to the tip
        self.add([genesis])

    def _initial(self, genesis: Action, body: dict[str, Any]) -> State:
        charter = body.get("charter") or codec.decode(codec.encode(DEFAULT_CHARTER))
        return State(genesis.id, charter)

    # ---- input -------------------------------------------------------------------------------

    def add(self, actions: Iterable[Action] = (), proofs: Iterable[EquivocationProof] = ()) -> None:
        items = [Item.of(a) for a in actions if a.coop == self.coop and a.id not in self.items]
        items += [Item.of_proof(p) for p in proofs if p.coop == self.coop and p.id not in self.items]
        self.add_items(items)

    def add_items(self, items: list[Item]) -> None:
        ready: list[Item] = []
        for it in items:
            if it.id in self.items:
                continue
            self.items[it.id] = it
            missing = [p for p in it.parents if p not in self.height]
            if missing and not (it.kind == GENESIS and it.id == self.coop):
                for p in missing:
                    self.waiting.setdefault(p, []).append(it.id)
            else:
                ready.append(it)
        newly: list[tuple[int, int, bytes]] = []
        while ready:
            it = ready.pop()
            if it.id in self.height:
                continue
            parents = it.parents
            self.height[it.id] = 1 + max((self.height[p] for p in parents), default=-1)
            # Causal time: the latest ts of *another* author in the past. Each item keeps the two
            # latest timestamps of two different authors in its past (itself included), so any
            # one author's own claims can be left out however deep they hide.
            tops = [(it.ts, it.author)]
            for p in parents:
                tops.extend(self.tops[p])
            self.tops[it.id] = _top_two(tops)
            if it.kind == GENESIS:
                self.ctime[it.id] = it.ts
            else:
                self.ctime[it.id] = max((t for p in parents for t, a in self.tops[p] if a != it.author), default=0)
            if it.kind != EQUIVOCATION:
                self.chain.setdefault(it.author, {})[it.seq] = it.id
            # A proof sorts before the actions at its height, so its sanction is in force for the
            # equivocator's next action whatever the ids.
            newly.append((self.height[it.id], 0 if it.kind == EQUIVOCATION else 1, it.id))
            for w in self.waiting.pop(it.id, ()):
                if w not in self.height and all(p in self.height for p in self.items[w].parents):
                    ready.append(self.items[w])
        if not newly:
            return
        newly.sort()
        applied = self.state.applied
        first = newly[0]
        if self.order and first < self.order[-1] and bisect.bisect_left(self.order, first) < applied:
            self._rewind(bisect.bisect_left(self.order, first))
        if self.order and first < self.order[-1]:
            for key in newly:
                bisect.insort(self.order, key)
        else:
            self.order.extend(newly)
        self._run()

    # ---- applying ----------------------------------------------------------------------------

    def _rewind(self, position: int) -> None:
        """Go back to the last snapshot taken at or before ``position`` in the fold order."""
        while self._snapshots[-1][0] > position:
            self._snapshots.pop()
        at, snap = self._snapshots[-1]
        if self._recent is not None and at < self._recent[0] <= position:
            at, snap = self._recent  # a concurrent arrival near the tip: go back a little only
        self.refolded += self.state.applied - at
        self.state = snap.copy()
        self._recent = None if self._recent is None or self._recent[0] > at else self._recent
        # Cached frontiers stay: an item's causal past never changes once it is in the fold.

    def _run(self) -> None:
        s = self.state
        while s.applied < len(self.order):
            _, _, item_id = self.order[s.applied]
            self._apply(self.items[item_id])
            if s.applied % self.snapshot_every == 0 and s.applied > self._snapshots[-1][0]:
                self._snapshots.append((s.applied, s.copy()))
        # At the tip, keep one snapshot at most RECENT_EVERY items old: actions that arrive
        # concurrently usually sort just before the tip, and should not send the fold back to
        # the last regular snapshot (up to snapshot_every items).
        recent_at = self._recent[0] if self._recent is not None else -1
        if s.applied - max(recent_at, self._snapshots[-1][0]) >= RECENT_EVERY:
            self._recent = (s.applied, s.copy())

    def _apply(self, it: Item) -> None:
        s = self.state
        if it.kind == GENESIS:
            reason = self._genesis(it)
        else:
            reason = self._check(s, it)
        s.applied += 1
        s.clock = max(s.clock, self.ctime[it.id])
        if reason is not None:
            s.rejected += 1
        self.results[it.id] = reason
        s.results_hash = hashlib.sha256(s.results_hash + it.id + (reason or "").encode()).digest()

    def _genesis(self, it: Item) -> str | None:
        if it.id != self.coop:
            return "second_genesis"
        s = self.state
        founders = {it.author, *it.body.get("founders", ())}
        for f in sorted(founders):
            s.members[f] = Member(MEMBER, {"member", "founder"}, it.id)
        return None

    def _check(self, s: State, it: Item) -> str | None:
        rule = rule_for(it.kind)
        t = self.ctime[it.id]
        status = s.status(it.author)
        if status not in rule.who:
            return f"status_{status}"
        if status == MEMBER and rule.who == _MEMBERS and s.suspended(it.author, t):
            return "suspended"
        if rule.permission == "kind":
            if not permits(tuple(p for p in s.permissions(it.author) if p not in ("propose", "vote", "tally", "sponsor")), it.kind):
                return "no_permission"
        elif rule.permission is not None and rule.permission not in s.permissions(it.author):
            return "no_permission"
        return rule.effect(s, Ctx(it, t, self))

    # ---- causal closure ----------------------------------------------------------------------

    def frontier(self, item_id: bytes) -> dict[bytes, int]:
        """For each author, the highest seq of theirs in the causal past of ``item_id`` (inclusive).

        Chains are downward closed (prev), so this describes the closure exactly. Recent tallies'
        frontiers are cached; a closure that contains one reuses it instead of walking past it.
        """
        cached = self._frontiers.get(item_id)
        if cached is not None:
            self._frontiers.move_to_end(item_id)
            return cached
        e: dict[bytes, int] = {}
        stack = [item_id]
        items, chain = self.items, self.chain
        while stack:
            x = stack.pop()
            it = items[x]
            if it.kind == EQUIVOCATION:
                stack.extend(it.deps)
                continue
            lo = e.get(it.author, 0)
            if lo >= it.seq:
                continue
            e[it.author] = it.seq
            own = chain[it.author]
            for q in range(lo + 1, it.seq + 1):
                y = own.get(q)
                if y is None:
                    continue
                known = self._frontiers.get(y) if y != item_id else None
                if known is not None:
                    for a, top in known.items():
                        if e.get(a, 0) < top:
                            e[a] = top
                    continue
                stack.extend(items[y].deps)
        self._frontiers[item_id] = e
        if len(self._frontiers) > FRONTIER_CACHE:
            self._frontiers.popitem(last=False)
        return e

    def frontier_since(self, item_id: bytes, min_height: int) -> dict[bytes, int]:
        """``frontier(item_id)`` restricted to the part of its causal past at or above
        ``min_height``: for each author met there, their highest seq.

        Exact for what a tally needs: a proposal at ``min_height`` and votes above it are in the
        past of ``item_id`` iff this walk meets them, since every path down to one of them only
        crosses items higher than it. The walk stays between the proposal and the tally, so its
        cost does not grow with the history before the proposal.
        """
        e: dict[bytes, int] = {}
        seen: set[bytes] = set()
        stack = [item_id]
        items, height = self.items, self.height
        while stack:
            x = stack.pop()
            if x in seen or height[x] < min_height:
                continue
            seen.add(x)
            it = items[x]
            if it.kind != EQUIVOCATION and e.get(it.author, 0) < it.seq:
                e[it.author] = it.seq
            stack.extend(it.parents)
        return e

    # ---- reading -----------------------------------------------------------------------------

    def result(self, action_id: bytes) -> tuple[str, str | None]:
        """("applied", None), ("rejected", reason), or ("deferred", None) while not yet ready."""
        if action_id in self.results:
            reason = self.results[action_id]
            return ("applied", None) if reason is None else ("rejected", reason)
        return ("deferred", None) if action_id in self.items else ("unknown", None)

    @property
    def deferred(self) -> int:
        return len(self.items) - len(self.height)

    def state_hash(self) -> bytes:
        return self.state.hash()
