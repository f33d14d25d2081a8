"""Co-op governance as a deterministic fold over signed actions.

Theory of operation. A co-op's state (charter, members and their roles, proposals and their
votes and outcomes, sanctions, federation decisions) is ``fold(actions)``: every node that holds
the same actions and proofs computes the same state, byte for byte, whatever order they arrived
in. Three ideas make that true:

1. **A total order that respects causality.** An action is *ready* once its ``prev`` and all its
   ``deps`` are ready; its height is one more than the highest of theirs (the genesis: 0). Ready
   actions are applied in (height, id) order (proof events first at their height). Late
   arrivals that sort before the tip make the fold resume from the last snapshot at or before
   them, not from scratch.
2. **Rules are data.** ``RULES`` maps each kind to who may do it (member status and role
   permission) and what it changes. An intrinsically valid action that breaks a rule is kept (it
   is a signed fact) and marked rejected with a reason, identically everywhere.
3. **Decisions read only their causal past.** Opening a proposal, voting and tallying are judged
   by what their author had seen (``Seen``): their standing, roles and the charter come from
   the state changes whose causes are in their deps closure, not from the fold's state where
   they sort. A proposal fixes its electorate and rule that way; a tally counts exactly the
   votes in its closure (each voter's latest such vote). Every node recomputes the outcome and
   rejects a tally that claims another. So a late or backdated action, of any kind, never
   changes a tally's result. Two concurrent tallies that disagree are both applied; the one that
   saw more of the vote decides (``Fold.supersede`` re-folds from the one it overturns).

Time. An author's claimed ``ts`` cannot be trusted to end their own suspension, so rules use the
action's *causal time*: the largest ``ts`` among the actions of *other* authors in its past (its
deps, transitively). A suspended member must depend on others' later actions to prove that time
has passed.

Equivocation. A proof (two signed actions at one seq) is an input like an action: it becomes
ready right after its canonical action (the smaller id, which every node keeps in the chain) and
sanctions the author as the charter says; a suspension's clock starts at their next action. A
proof is in no one's causal past: decisions that sort after it see it.
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
REACH_CACHE = 256
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
    prev: Member | None = None  # the version before ``since`` (never changed again)

    def copy(self) -> Member:
        return Member(self.status, set(self.roles), self.since, set(self.sponsors), self.prev)


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
    pending_days: int | None = None  # an equivocation suspension waiting for the author's next action


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
    frontier: dict[bytes, int] | None = None  # the opening action's causal past, while votes may come

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
        p.frontier = self.frontier
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
    charter_by: bytes = b""  # the tally that put ``charter`` in force (the genesis: the co-op id)
    charters: tuple[tuple[bytes, dict[str, Any]], ...] = ()  # earlier (by, charter), oldest first
    tallied: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)  # proposal -> applied deciding tallies

    def copy(self) -> State:
        s = State(self.coop, self.charter)
        s.members = {k: m.copy() for k, m in self.members.items()}
        s.proposals = {k: p.copy() for k, p in self.proposals.items()}
        s.sanctions = {k: Sanction(**{f: getattr(x, f) for f in x.__slots__}) for k, x in self.sanctions.items()}  # type: ignore[attr-defined]
        s.federations = dict(self.federations)
        s.sanctioned = {k: list(v) for k, v in self.sanctioned.items()}
        s.applied, s.rejected, s.results_hash, s.clock = self.applied, self.rejected, self.results_hash, self.clock
        s.charter_by, s.charters = self.charter_by, self.charters
        s.tallied = dict(self.tallied)
        return s

    def status(self, who: bytes) -> str:
        m = self.members.get(who)
        return m.status if m is not None else NONE

    def suspended(self, who: bytes, t: int, seen: Seen | None = None) -> bool:
        """Whether a suspension of ``who`` is in force at ``t``; with ``seen``, counting only the
        suspensions and lifts in that causal past."""
        for i in self.sanctioned.get(who, ()):
            x = self.sanctions[i]
            if x.kind != "suspend" or (seen is not None and not seen(x.imposed_by)):
                continue
            lifted = x.lifted_by is not None and (seen is None or seen(x.lifted_by))
            if not lifted and (x.until is None or t < x.until):
                return True
        return False

    def in_good_standing(self, who: bytes, t: int) -> bool:
        return self.status(who) == MEMBER and not self.suspended(who, t)

    def permissions(self, who: bytes) -> set[str]:
        return _role_permissions(self.members.get(who), self.charter)

    # ---- the same, as seen from one action's causal past ----------------------------------------

    def member_seen(self, who: bytes, seen: Seen) -> Member | None:
        """``who``'s latest version whose cause is in the causal past ``seen`` describes."""
        m = self.members.get(who)
        while m is not None and not seen(m.since):
            m = m.prev
        return m

    def standing_seen(self, who: bytes, seen: Seen, t: int) -> str:
        """MEMBER (in good standing), "suspended", or the status, from what ``seen`` covers."""
        m = self.member_seen(who, seen)
        if m is None:
            return NONE
        if m.status != MEMBER:
            return m.status
        return "suspended" if self.suspended(who, t, seen) else MEMBER

    def permissions_seen(self, who: bytes, seen: Seen, charter: dict[str, Any]) -> set[str]:
        return _role_permissions(self.member_seen(who, seen), charter)

    def charter_seen(self, seen: Seen) -> dict[str, Any]:
        if seen(self.charter_by):
            return self.charter
        for by, charter in reversed(self.charters):
            if seen(by):
                return charter
        raise AssertionError("the genesis charter is in every causal past")

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


def _role_permissions(m: Member | None, charter: dict[str, Any]) -> set[str]:
    roles = charter["roles"]
    return {p for r in (m.roles if m else ()) for p in roles.get(r, ())}


# ---- rules ---------------------------------------------------------------------------------------


class Seen:
    """Whether an action is in the causal past of one item (itself included), decided exactly and
    lazily: by the author's own chain, by an *anchor* in that past whose whole frontier is known
    (the proposal a vote or tally is about), or else by walking down from the item only as far
    as the height of the action asked about.

    Proof events have no place in anyone's causal past; they count as seen by everything that
    sorts after them (so a late proof is the one input that can still change a decision).
    """

    __slots__ = ("_anchor_frontier", "_base", "_walk", "_walk_min", "anchor", "fold", "item")

    def __init__(self, fold: Fold, item: Item, anchor: bytes | None = None, anchor_frontier: dict[bytes, int] | None = None) -> None:
        self.fold, self.item, self.anchor = fold, item, anchor
        self._anchor_frontier = anchor_frontier
        self._base: dict[bytes, int] | bool | None = False  # False: not worked out yet
        self._walk: dict[bytes, int] = {}
        self._walk_min = 1 << 62

    def since(self, min_height: int) -> dict[bytes, int]:
        """``Fold.frontier_since`` for this item, reusing a deeper walk already made."""
        if min_height < self._walk_min:
            self._walk = self.fold.frontier_since(self.item.id, min_height)
            self._walk_min = min_height
        return self._walk

    def _frontier(self) -> dict[bytes, int] | None:
        if self._base is False:
            a, f = self.anchor, self.fold
            if a is None or (a != self.item.id and not f.reaches(self.item.id, a)):
                self._base = None
            else:
                self._base = self._anchor_frontier if self._anchor_frontier is not None else f.frontier(a)
        return self._base  # type: ignore[return-value]

    def __call__(self, e: bytes) -> bool:
        f, me = self.fold, self.item
        if e == me.id or e == f.coop:
            return True
        it = f.items.get(e)
        if it is None or e not in f.height:
            return False
        if it.kind == EQUIVOCATION:
            return True
        if self._reaches(it):
            return True
        if it.kind == TALLY:
            # A decision is seen when any tally that reached it is: the better-informed tally
            # that decides in the end may be one this item never saw.
            claim = it.body["outcome"]
            items = f.items
            return any(
                x != e and items[x].body["outcome"] == claim and self._reaches(items[x])
                for x in f.state.tallied.get(it.body["proposal"], ())
            )
        return False

    def _reaches(self, it: Item) -> bool:
        f, me = self.fold, self.item
        if it.author == me.author and me.kind != EQUIVOCATION:
            return it.seq <= me.seq
        base = self._frontier()
        if base is not None and base.get(it.author, 0) >= it.seq:
            return True
        h = f.height[it.id]
        if h >= f.height[me.id]:
            return False
        return self.since(h).get(it.author, 0) >= it.seq


@dataclass(frozen=True, slots=True)
class Ctx:
    """What an effect may look at besides the state: the item, its causal time, the fold, and
    (for decisions: opening, voting, tallying) what is in the item's causal past."""

    item: Item
    time: int
    fold: Fold
    seen: Seen


@dataclass(frozen=True, slots=True)
class Rule:
    who: frozenset[str]  # member statuses allowed (good standing is checked for MEMBER)
    permission: str | None  # role permission needed; "kind": the action's own kind
    effect: Callable[[State, Ctx], str | None]  # None when applied, else the reject reason


def _become(s: State, who: bytes, status: str, roles: set[str], since: bytes) -> None:
    s.members[who] = Member(status, roles, since, prev=s.members.get(who))


def _apply(s: State, c: Ctx) -> str | None:
    policy = s.charter["membership"]["policy"]
    _become(s, c.item.author, MEMBER if policy == "open" else APPLICANT, {"member"} if policy == "open" else set(), c.item.id)
    return None


def _sponsor(s: State, c: Ctx) -> str | None:
    target = c.item.body["member"]
    m = s.members.get(target)
    if m is None or m.status != APPLICANT:
        return "not_an_applicant"
    m.sponsors.add(c.item.author)
    ms = s.charter["membership"]
    if ms["policy"] == "sponsored" and len(m.sponsors) >= ms["sponsors"]:
        _become(s, target, MEMBER, {"member"}, c.item.id)
    return None


def _leave(s: State, c: Ctx) -> str | None:
    _become(s, c.item.author, LEFT, set(), c.item.id)
    return None


def _status_seen(s: State, who: bytes, seen: Seen) -> str:
    m = s.member_seen(who, seen)
    return m.status if m is not None else NONE


def _open(s: State, c: Ctx) -> str | None:
    # Everything a proposal fixes (the electorate, the rule, whether its target qualifies) is read
    # from the opener's causal past, so nothing that arrives later can change it.
    b, seen = c.item.body, c.seen
    ptype, payload = b["type"], b["payload"]
    author = c.item.author
    charter = s.charter_seen(seen)
    x = s.sanctions.get(payload["sanction"]) if ptype == "lift" else None
    if x is not None and (not seen(x.imposed_by) or (x.lifted_by is not None and seen(x.lifted_by))):
        x = None
    appeal = x is not None and x.member == author
    standing = s.standing_seen(author, seen, c.time)
    if standing != MEMBER:
        if not appeal:
            return "suspended" if standing == "suspended" else f"status_{standing}"
    elif "propose" not in s.permissions_seen(author, seen, charter) and not appeal:
        return "no_permission"
    if ptype == "admit" and _status_seen(s, payload["member"], seen) != APPLICANT:
        return "not_an_applicant"
    if ptype == "sanction":
        if payload["clause"] not in charter["offences"]:
            return "unknown_clause"
        if _status_seen(s, payload["member"], seen) != MEMBER:
            return "not_a_member"
    if ptype == "lift" and x is None:
        return "unknown_sanction"
    if ptype == "role" and payload["role"] not in charter["roles"]:
        return "unknown_role"
    if ptype == "federate" and payload["coop"] == s.coop:
        return "self_federation"
    if ptype == "unfederate" and (payload["coop"] not in s.federations or not seen(s.federations[payload["coop"]][1])):
        return "not_federated"
    rule = charter["decisions"].get(ptype, charter["decisions"]["default"])
    electorate = frozenset(k for k in s.members if s.standing_seen(k, seen, c.time) == MEMBER)
    s.proposals[c.item.id] = Proposal(
        c.item.id, author, ptype, b["title"], payload, electorate, rule["quorum"], rule["threshold"], frontier=seen._frontier()
    )
    return None


def _vote(s: State, c: Ctx) -> str | None:
    p = s.proposals.get(c.item.body["proposal"])
    if p is None:
        return "unknown_proposal"
    if not c.seen(p.id):
        return "proposal_not_in_deps"
    if any(c.seen(x) for x in s.tallied.get(p.id, ())):
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
    if not c.seen(p.id):
        return "proposal_not_in_deps"
    prior = s.tallied.get(p.id, ())
    if any(c.seen(x) for x in prior):
        return "proposal_closed"
    frontier = c.seen.since(c.fold.height[p.id])
    result, _ = outcome(p, frontier)
    if result != b["outcome"]:
        return f"wrong_outcome:{result}"
    if result == "open":
        return None
    # Concurrent tallies (neither saw the other) are each right about their own past and stay
    # applied; the one that saw most of the vote decides, whatever order they arrive in.
    s.tallied[p.id] = (*prior, c.item.id)
    rank = c.fold.tally_rank(c.item.id, p, frontier)
    if p.status != "open":
        if result != p.status and rank > c.fold.tally_rank(p.decided_by, p, None):  # type: ignore[arg-type]
            c.fold.supersede(p.decided_by)  # type: ignore[arg-type]
        return None
    if c.item.id in c.fold.superseded:
        return None
    p.status, p.decided_by, p.frontier = result, c.item.id, None
    if result == "passed":
        _EFFECTS[p.type](s, p, c)
    return None


def _pass_admit(s: State, p: Proposal, c: Ctx) -> None:
    target = p.payload["member"]
    if s.status(target) == APPLICANT:
        _become(s, target, MEMBER, {"member"}, c.item.id)


def _pass_amend(s: State, p: Proposal, c: Ctx) -> None:
    s.charters = (*s.charters, (s.charter_by, s.charter))
    s.charter, s.charter_by = p.payload["charter"], c.item.id


def _pass_sanction(s: State, p: Proposal, c: Ctx) -> None:
    clause = p.payload["clause"]
    offence = s.charter_seen(c.seen)["offences"].get(clause)
    if offence is None:  # the charter was amended since the proposal opened
        return
    _sanction(s, p.id, p.payload["member"], offence["sanction"], offence["days"], clause, p.payload["evidence"], c.item.id, c.time)


def _sanction(
    s: State, sid: bytes, who: bytes, kind: str, days: int, clause: str, evidence: tuple[bytes, ...], by: bytes, t: int | None
) -> None:
    until = t + days * DAY_MS if kind == "suspend" and t is not None else None
    pending = days if kind == "suspend" and t is None else None
    s.sanctions[sid] = Sanction(sid, who, kind, until, clause, tuple(evidence), by, pending_days=pending)
    s.sanctioned.setdefault(who, []).append(sid)
    if kind == "expel":
        _become(s, who, EXPELLED, set(), by)  # an outsider too: they may not join later


def _pass_lift(s: State, p: Proposal, c: Ctx) -> None:
    x = s.sanctions.get(p.payload["sanction"])
    if x is None or x.lifted_by is not None:
        return
    x.lifted_by = c.item.id
    still_expelled = any(s.sanctions[i].kind == "expel" and s.sanctions[i].lifted_by is None for i in s.sanctioned.get(x.member, ()))
    if x.kind == "expel" and s.status(x.member) == EXPELLED and not still_expelled:
        _become(s, x.member, MEMBER, {"member"}, c.item.id)


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
        # The forks' causal time is the equivocator's choice (stale deps), so a suspension's
        # clock starts only at their next action (see Fold._start_pending).
        _sanction(s, c.item.id, c.item.author, rule["sanction"], rule["days"], "equivocation", (body["a"], body["b"]), c.item.id, None)
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
_DECISIONS = frozenset({OPEN, VOTE, TALLY})


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
        self._ranks: dict[bytes, tuple[int, int]] = {}
        self._reach: OrderedDict[bytes, set[bytes]] = OrderedDict()  # target -> items known to reach it
        self.superseded: set[bytes] = set()  # deciding tallies outranked by a concurrent one
        self._back_to: int | None = None
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
        while self.state.applied < len(self.order):
            s = self.state
            _, _, item_id = self.order[s.applied]
            self._apply(self.items[item_id])
            if self._back_to is not None:
                self._rewind(self._back_to)
                self._back_to = None
                continue
            if s.applied % self.snapshot_every == 0 and s.applied > self._snapshots[-1][0]:
                self._snapshots.append((s.applied, s.copy()))
        s = self.state
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
        s.charter_by = it.id
        for f in sorted(founders):
            _become(s, f, MEMBER, {"member", "founder"}, it.id)
        return None

    def _check(self, s: State, it: Item) -> str | None:
        rule = rule_for(it.kind)
        t = self.ctime[it.id]
        if it.author in s.sanctioned:
            self._start_pending(s, it.author, t)
        if it.kind in _DECISIONS:
            return self._check_decision(s, it, rule, t)
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
        return rule.effect(s, Ctx(it, t, self, Seen(self, it)))

    def _check_decision(self, s: State, it: Item, rule: Rule, t: int) -> str | None:
        """Opening, voting and tallying read the author's standing, roles and the charter from the
        action's causal past, not from the fold's state where it sorts: an action that arrives
        late and sorts before it, but that its author had not seen, changes nothing about it."""
        if it.kind == OPEN:
            seen = Seen(self, it, it.id)
        else:
            p = s.proposals.get(it.body["proposal"])
            seen = Seen(self, it, p.id, p.frontier) if p is not None else Seen(self, it)
        standing = s.standing_seen(it.author, seen, t)
        if rule.who == _MEMBERS:
            if standing == "suspended":
                return "suspended"
            if standing != MEMBER:
                return f"status_{standing}"
            if rule.permission is not None and rule.permission not in s.permissions_seen(it.author, seen, s.charter_seen(seen)):
                return "no_permission"
        return rule.effect(s, Ctx(it, t, self, seen))

    def _start_pending(self, s: State, who: bytes, t: int) -> None:
        # An equivocator's suspension runs from the causal time of their first action after the
        # proof, so forking on stale deps does not backdate it. (Only that action's own past
        # counts: the fold's clock where it sorts would let unrelated late arrivals move it.)
        for i in s.sanctioned[who]:
            x = s.sanctions[i]
            if x.pending_days is not None:
                x.until, x.pending_days = t + x.pending_days * DAY_MS, None

    # ---- concurrent tallies --------------------------------------------------------------------

    def tally_rank(self, tally_id: bytes, p: Proposal, frontier: dict[bytes, int] | None) -> tuple[int, int]:
        """How much of the vote a deciding tally saw: electors whose vote it counts, then the sum
        of the seqs of those votes (a changed vote counts as newer). A function of its past only."""
        r = self._ranks.get(tally_id)
        if r is None:
            if frontier is None:
                frontier = self.frontier_since(tally_id, self.height[p.id])
            counted = [v[i - 1][0] for m, v in p.votes.items() if (i := bisect.bisect_right(v, (frontier.get(m, 0), "\U0010ffff")))]
            r = self._ranks[tally_id] = (len(counted), sum(counted))
        return r

    def supersede(self, tally_id: bytes) -> None:
        """Undo a decision a better-informed concurrent tally outranks: fold again from before it."""
        self.superseded.add(tally_id)
        self._back_to = bisect.bisect_left(self.order, (self.height[tally_id], 1, tally_id))

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

    def reaches(self, item_id: bytes, target: bytes) -> bool:
        """Whether ``target`` is in the causal past of ``item_id``. A depth-first walk that stops
        at the first action of the target's author at or after its seq, or at an item already
        known to reach it: votes usually depend on earlier votes, so this takes a few steps."""
        known = self._reach.get(target)
        if known is None:
            known = self._reach[target] = set()
            if len(self._reach) > REACH_CACHE:
                self._reach.popitem(last=False)
        else:
            self._reach.move_to_end(target)
        if item_id in known or item_id == target:
            return True
        t = self.items[target]
        ht, author, seq = self.height[target], t.author, t.seq
        items, height = self.items, self.height
        visited = {item_id}
        stack = [item_id]
        while stack:
            # Look at all of an item's parents before going deeper: the target, or an item known
            # to reach it, is most often one step away.
            parents = items[stack.pop()].parents
            for q in parents:
                if q in known or q == target:
                    known.add(item_id)
                    return True
                it = items[q]
                if it.author == author and it.seq >= seq and it.kind != EQUIVOCATION:
                    known.add(item_id)
                    return True
            for q in parents:
                if q not in visited and height[q] > ht:
                    visited.add(q)
                    stack.append(q)
        return False

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
