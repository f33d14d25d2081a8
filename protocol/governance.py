"""Co-op governance as a deterministic fold over signed actions.

Theory of operation. A co-op's state (charter, members and their roles, proposals and their votes
and outcomes, sanctions, federation decisions) is ``fold(actions)``: every node that holds the same
actions and proofs computes the same state, byte for byte, whatever order they arrived in. The
rules are written against a member who picks their deps, stamps their timestamps and chooses which
node hears what first (docs/GOVERNANCE.md, "Threat model"). Five ideas carry them:

1. **Every action is judged by its own causal past** (its *view*, ``Seen``): its author's
   standing, roles and the charter come from the state changes whose causes it had seen, never
   from where it happens to sort. Decisions read their view too: an opening fixes its electorate
   and rule from it, a tally counts exactly the votes in it. So nothing that arrives late, however
   it sorts, changes what an action was judged on. Order (causal height, then id: ``causal.Graph``)
   only decides which of two concurrent state changes comes last.
2. **Sanctions bind whatever deps the sanctioned member names** (p2panda's strong remove). A
   sanction decided by a tally binds every action of the member beyond their highest seq in that
   tally's causal past: an everyday action, a sponsorship, an application, a vote or an opening
   made there is rejected in the state, on every node, whatever it depends on (only leaving and
   appealing stay open to them). Votes and tallies that *see* a sanction also ignore the sanctioned
   member's bound votes and proposals. Decisions themselves are judged by their views alone (a
   tally is never bound): that keeps the rules free of cycles (two concurrent sanctions on each
   other's tallier both hold, as in p2panda), and an honest tally sees every sanction decided
   before it.
3. **Time is the co-op's, not the signer's.** ``clock(X)`` is the second latest timestamp among
   distinct members in good standing whose applied actions are in X's causal past (one witness:
   its stamp), never lower than its parents' clocks. One key cannot move it; strangers and
   sanctioned members are not witnesses; stale deps only make it older. Two, not more: a co-op
   whose clock needed three active members would stop deciding whenever only two of its members
   act (a small co-op on holiday), and one key still cannot move it.
   Suspensions end, voting windows close and tallies decide by it. Where a signer's own stamp can
   only hurt the signer (a vote stamped after the window closes), the stamp counts too.
4. **Decisions stay decided.** A proposal has a voting window; a vote after it is late. A tally
   decides once the window has closed (or, earlier, once the whole electorate has voted). Two
   concurrent tallies that disagree are settled by the whole set, not by arrival: a decision that
   a quorum of the electorate has acknowledged (each elector's first action that saw a decision,
   provided it counted every vote that elector had seen) is *final* and outranks any that is not;
   otherwise, or between two final ones (only an electorate split into two quorums that never saw
   each other can make two), the tally that counted more of the vote decides. The fold re-folds
   from the decision it replaces (``Fold._settle``).
5. **Strangers change nothing.** An action whose author the co-op does not know (not a founder,
   never applied) is rejected and left out of the state hash, and so is a proof about one: a node
   may quarantine what strangers send without reporting another state than its peers.

Rules are data: ``RULES`` maps each kind to who may do it and what it changes. An intrinsically
valid action that breaks a rule is kept (it is a signed fact) and marked rejected with a reason.
Actions displaced from their chain by an equivocation (*ghosts*) take part in the causal graph so
that what was built on them is judged rather than deferred; they are never in the state.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from . import codec
from .action import Action
from .causal import EQUIVOCATION, ForkConflict, Graph, Item, OrderKey
from .chain import EquivocationProof
from .charter import (
    APPLY,
    DEFAULT_CHARTER,
    GENESIS,
    LEAVE,
    OPEN,
    SEEN,
    SPONSOR,
    TALLY,
    VOTE,
    permits,
    window_minutes,
)

__all__ = [
    "APPLICANT",
    "EQUIVOCATION",
    "EXPELLED",
    "LEFT",
    "MEMBER",
    "NONE",
    "Fold",
    "ForkConflict",
    "Item",
    "Proposal",
    "outcome",
]

DAY_MS = 86_400_000
MINUTE_MS = 60_000
CLOCK_WITNESSES = 2  # distinct members whose stamps it takes to move the co-op clock
WITNESS_LIST = CLOCK_WITNESSES + 1
SNAPSHOT_EVERY = 2000
RECENT_EVERY = 256  # how stale the snapshot kept at the tip may get
SETTLE_ROUNDS = 64  # bound on re-folds to settle disputed decisions after one input
STATE_HASH_TAG = b"coopnet/v2/state\x00"
RESULTS_TAG = b"coopnet/v2/results\x00"

APPLICANT, MEMBER, LEFT, EXPELLED = "applicant", "member", "left", "expelled"
NONE = "none"  # not known to the co-op
SUSPENDED = "suspended"
BINDING = ("suspend", "expel")  # sanction kinds that bind; a "warning" is recorded only


# ---- state ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One version of a member's standing; a change makes a new version pointing at this one."""

    status: str
    roles: frozenset[str]
    since: bytes  # the action that made this version
    sponsors: tuple[tuple[bytes, int], ...] = ()  # (sponsor, seq of their sponsorship), in order
    needed: int = 0  # sponsors an admission by sponsorship needed (0: this is not one)
    prev: Member | None = None


@dataclass(slots=True)
class Sanction:
    id: bytes
    member: bytes
    kind: str  # suspend | expel | warning
    until: int | None  # co-op time (ms) a suspension ends; None: not started yet, or until lifted
    clause: str
    evidence: tuple[bytes, ...]
    imposed_by: bytes  # the deciding tally, or the proof
    bound: int  # the member's actions with a higher seq are judged under this sanction
    lifted_by: bytes | None = None  # the first lift in fold order (what the state shows)
    pending_days: int | None = None  # an equivocation suspension waiting for the member's next action
    lifts: tuple[bytes, ...] = ()  # every lift, fold order: an action that saw any of them is not bound
    started_by: bytes | None = None  # the action whose co-op time started an equivocation suspension

    def lifted_in(self, seen: Callable[[bytes | None], bool]) -> bool:
        return any(seen(x) for x in self.lifts)

    def copy(self) -> Sanction:
        return replace(self)


@dataclass(slots=True)
class Proposal:
    id: bytes
    author: bytes
    seq: int  # the opening's seq in its author's chain
    type: str
    title: str
    payload: Any
    electorate: frozenset[bytes]
    quorum: int
    threshold: str
    closes: int  # co-op time (ms) the voting window closes
    status: str = "open"  # open | passed | rejected
    decided_by: bytes | None = None
    votes: dict[bytes, list[tuple[int, str]]] = field(default_factory=dict)  # elector -> [(seq, choice)] in seq order
    frontier: dict[bytes, int] | None = None  # the opening action's causal past, while votes may come
    owner: int = 0  # the State.epoch that may change it in place (copy-on-write: see State.own)

    def copy(self) -> Proposal:
        p = replace(self)
        p.votes = {m: list(v) for m, v in self.votes.items()}
        return p


@dataclass(slots=True)
class State:
    coop: bytes
    charter: dict[str, Any]
    members: dict[bytes, Member] = field(default_factory=dict)  # member -> latest version in fold order
    proposals: dict[bytes, Proposal] = field(default_factory=dict)
    sanctions: dict[bytes, Sanction] = field(default_factory=dict)
    federations: dict[bytes, tuple[Any, bytes]] = field(default_factory=dict)  # coop -> (terms, deciding tally)
    # coop -> every federation decision about it, fold order: (deciding tally, federated after it)
    fed_log: dict[bytes, tuple[tuple[bytes, bool], ...]] = field(default_factory=dict)
    sanctioned: dict[bytes, list[bytes]] = field(default_factory=dict)  # member -> sanction ids (an index)
    pos: int = 0  # items folded so far (the position in the fold order)
    clock: int = 0  # the latest co-op time among the items folded so far
    charter_by: bytes = b""  # the tally that put ``charter`` in force (the genesis: the co-op id)
    charters: tuple[tuple[bytes, dict[str, Any]], ...] = ()  # earlier (by, charter), oldest first
    tallied: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)  # proposal -> valid deciding tallies, fold order
    epoch: int = field(default_factory=lambda: next(_EPOCHS))

    def copy(self) -> State:
        """A snapshot. Proposals are shared copy-on-write (a co-op holds thousands of votes and a
        fold takes a snapshot every few thousand items): both this state and the copy take a new
        epoch, so neither changes a shared proposal in place (``own``)."""
        s = State(self.coop, self.charter)
        s.members = dict(self.members)  # versions are immutable: share them
        s.proposals = dict(self.proposals)
        self.epoch = next(_EPOCHS)
        s.sanctions = {k: x.copy() for k, x in self.sanctions.items()}
        s.federations = dict(self.federations)
        s.fed_log = dict(self.fed_log)
        s.sanctioned = {k: list(v) for k, v in self.sanctioned.items()}
        s.pos, s.clock, s.charter_by, s.charters = self.pos, self.clock, self.charter_by, self.charters
        s.tallied = dict(self.tallied)
        return s

    def status(self, who: bytes) -> str:
        m = self.members.get(who)
        return m.status if m is not None else NONE

    def own(self, pid: bytes) -> Proposal:
        """Proposal ``pid``, safe to change: copied first if a snapshot may share it."""
        p = self.proposals[pid]
        if p.owner != self.epoch:
            p = p.copy()
            p.owner = self.epoch
            self.proposals[pid] = p
        return p


_EPOCHS = itertools.count(1)


def _role_permissions(m: Member | None, charter: dict[str, Any]) -> set[str]:
    roles = charter["roles"]
    return {p for r in (m.roles if m else ()) for p in roles.get(r, ())}


# ---- views ---------------------------------------------------------------------------------------


class Seen:
    """Whether an action is in the causal past of one item (itself included), decided exactly and
    lazily: by the author's own chain, by an *anchor* in that past whose whole frontier is known
    (the proposal a vote or tally is about), or by ``Graph.reaches``.

    Proof events have no place in anyone's causal past; they count as seen by everything that
    sorts after them (so a late proof is the one input that can still change a view). Ghosts
    cause no state change, so asking whether one is seen never happens.
    """

    __slots__ = ("_anchor_frontier", "_base", "_walk", "_walk_min", "anchor", "fold", "item")

    def __init__(self, fold: Fold, item: Item, anchor: bytes | None = None, anchor_frontier: dict[bytes, int] | None = None) -> None:
        self.fold, self.item, self.anchor = fold, item, anchor
        self._anchor_frontier = anchor_frontier
        self._base: dict[bytes, int] | bool | None = False  # False: not worked out yet
        self._walk: dict[bytes, int] = {}
        self._walk_min = 1 << 62

    def since(self, min_height: int) -> dict[bytes, int]:
        """``Graph.frontier_since`` for this item, reusing a deeper walk already made."""
        if min_height < self._walk_min:
            self._walk = self.fold.graph.frontier_since(self.item.id, min_height)
            self._walk_min = min_height
        return self._walk

    def _frontier(self) -> dict[bytes, int] | None:
        if self._base is False:
            a, g = self.anchor, self.fold.graph
            if a is None or (a != self.item.id and not g.reaches(self.item.id, a)):
                self._base = None
            else:
                self._base = self._anchor_frontier if self._anchor_frontier is not None else g.frontier(a)
        return self._base  # type: ignore[return-value]

    def __call__(self, e: bytes | None) -> bool:
        if e is None:
            return False
        f, me = self.fold, self.item
        if e == me.id or e == f.coop:
            return True
        g = f.graph
        it = g.items.get(e)
        if it is None or e not in g.height:
            return False
        if it.kind == EQUIVOCATION:
            return g.key_of(it) < g.key_of(me)
        if e in g.ghosts:
            return False
        if self.reaches(it):
            return True
        if it.kind == TALLY:
            # A decision is seen when any tally with the same claim is: the tally that decides in
            # the end may be one this item never saw.
            claim = it.body["outcome"]
            items = g.items
            return any(
                x != e and items[x].body["outcome"] == claim and self.reaches(items[x])
                for x in f.state.tallied.get(it.body["proposal"], ())
            )
        return False

    def reaches(self, it: Item) -> bool:
        me, g = self.item, self.fold.graph
        if it.author == me.author and me.kind != EQUIVOCATION:
            return it.seq <= me.seq
        base = self._frontier()
        if base is not None and base.get(it.author, 0) >= it.seq:
            return True
        if g.height[it.id] >= g.height[me.id]:
            return False
        return g.reaches(me.id, it.id)


@dataclass(frozen=True, slots=True)
class Ctx:
    """What an effect may look at besides the state: the item, its co-op time, the fold, its view,
    and its author's standing as that view has it."""

    item: Item
    time: int
    fold: Fold
    seen: Seen
    me: Member | None


@dataclass(frozen=True, slots=True)
class Rule:
    who: frozenset[str]  # member statuses allowed (MEMBER also needs good standing when good is set)
    good: bool  # a MEMBER must be in good standing
    permission: str | None  # role permission needed; "kind": the action's own kind
    effect: Callable[[State, Ctx], str | None]  # None when applied, else the reject reason


# ---- rules ---------------------------------------------------------------------------------------


def _become(
    s: State,
    who: bytes,
    status: str,
    roles: Iterable[str],
    since: bytes,
    sponsors: tuple[tuple[bytes, int], ...] = (),
    needed: int = 0,
) -> None:
    s.members[who] = Member(status, frozenset(roles), since, sponsors, needed, s.members.get(who))


def _apply(s: State, c: Ctx) -> str | None:
    policy = c.fold.charter_seen(c.seen)["membership"]["policy"]
    if policy == "open":
        _become(s, c.item.author, MEMBER, {"member"}, c.item.id)
    else:
        _become(s, c.item.author, APPLICANT, (), c.item.id)
    return None


def _sponsor(s: State, c: Ctx) -> str | None:
    target = c.item.body["member"]
    seen_target = c.fold.member_seen(target, c.seen)
    if seen_target is None or seen_target.status != APPLICANT:
        return "not_an_applicant"
    cur = s.members.get(target)
    if cur is None or cur.status != APPLICANT or any(x == c.item.author for x, _ in cur.sponsors):
        return None  # admitted (or sponsored by this member) by something this sponsor had not seen
    sponsors = (*cur.sponsors, (c.item.author, c.item.seq))
    ms = c.fold.charter_seen(c.seen)["membership"]
    if ms["policy"] == "sponsored" and len(sponsors) >= ms["sponsors"]:
        _become(s, target, MEMBER, {"member"}, c.item.id, sponsors, ms["sponsors"])
    else:
        _become(s, target, APPLICANT, cur.roles, c.item.id, sponsors)
    return None


def _leave(s: State, c: Ctx) -> str | None:
    _become(s, c.item.author, LEFT, (), c.item.id)
    return None


def _seen_only(s: State, c: Ctx) -> str | None:
    return None


def _open(s: State, c: Ctx) -> str | None:
    # Everything a proposal fixes (the electorate, the rule, the window, whether its target
    # qualifies) is read from the opener's causal past, so nothing that arrives later changes it.
    f, b, seen, it = c.fold, c.item.body, c.seen, c.item
    ptype, payload, author = b["type"], b["payload"], it.author
    charter = f.charter_seen(seen)
    x = s.sanctions.get(payload["sanction"]) if ptype == "lift" else None
    if x is not None and (not seen(x.imposed_by) or x.lifted_in(seen)):
        x = None
    appeal = x is not None and x.member == author
    standing = f.standing_seen(author, seen, c.time)
    if standing != MEMBER:
        if not appeal:
            return SUSPENDED if standing == SUSPENDED else f"status_{standing}"
    elif "propose" not in _role_permissions(c.me, charter) and not appeal:
        return "no_permission"
    if ptype == "admit" and _status(f.member_seen(payload["member"], seen)) != APPLICANT:
        return "not_an_applicant"
    if ptype == "sanction":
        if payload["clause"] not in charter["offences"]:
            return "unknown_clause"
        if _status(f.member_seen(payload["member"], seen)) != MEMBER:
            return "not_a_member"
    if ptype == "lift" and x is None:
        return "unknown_sanction"
    if ptype == "role" and payload["role"] not in charter["roles"]:
        return "unknown_role"
    if ptype == "federate" and payload["coop"] == s.coop:
        return "self_federation"
    if ptype == "unfederate" and not _federated_seen(s, payload["coop"], seen):
        return "not_federated"
    rule = charter["decisions"].get(ptype, charter["decisions"]["default"])
    electorate = frozenset(k for k in s.members if f.standing_seen(k, seen, c.time) == MEMBER)
    # The window runs from the opening's co-op time, or its own stamp if later: a stamp can only
    # lengthen the opener's own window, and the co-op clock cannot be moved by one key.
    closes = max(c.time, it.ts) + window_minutes(rule) * MINUTE_MS
    s.proposals[it.id] = p = Proposal(
        it.id,
        author,
        it.seq,
        ptype,
        b["title"],
        payload,
        electorate,
        rule["quorum"],
        rule["threshold"],
        closes,
        frontier=seen._frontier(),
    )
    p.owner = s.epoch
    return None


def _federated_seen(s: State, coop: bytes, seen: Seen) -> bool:
    """Whether the latest federation decision about ``coop`` that ``seen`` covers federated it."""
    for by, present in reversed(s.fed_log.get(coop, ())):
        if seen(by):
            return present
    return False


def _status(m: Member | None) -> str:
    return m.status if m is not None else NONE


def _about(s: State, c: Ctx) -> tuple[Proposal | None, str | None]:
    """The proposal a vote or tally names, or the reason it cannot be acted on."""
    pid = c.item.body["proposal"]
    p = s.proposals.get(pid)
    if not c.seen(pid) and (p is not None or pid in c.fold.graph.height):
        return None, "proposal_not_in_deps"  # an opening it had not seen, wherever that sorts
    if p is None:
        return None, "unknown_proposal"
    if c.fold.bound_seen(p.author, p.seq, c.seen) and not _is_appeal(s, p.author, p.type, p.payload):
        return None, "proposal_void"
    if any(c.seen(x) for x in s.tallied.get(p.id, ())):
        return None, "proposal_closed"
    return p, None


def _vote(s: State, c: Ctx) -> str | None:
    p, why = _about(s, c)
    if p is None:
        return why
    if max(c.time, c.item.ts) >= p.closes:
        return "voting_closed"
    if c.item.author not in p.electorate:
        return "not_in_electorate"
    s.own(p.id).votes.setdefault(c.item.author, []).append((c.item.seq, c.item.body["choice"]))
    return None


def count_votes(
    p: Proposal, frontier: dict[bytes, int], keep: Callable[[bytes, int], bool] | None = None
) -> tuple[dict[str, int], list[tuple[bytes, int]]]:
    """Each elector's latest vote within ``frontier`` (and ``keep``): counts by choice, and the
    (elector, seq) of each vote counted."""
    counts = {"yes": 0, "no": 0, "abstain": 0, "block": 0}
    counted: list[tuple[bytes, int]] = []
    for member, votes in p.votes.items():
        i = bisect.bisect_right(votes, (frontier.get(member, 0), "\U0010ffff"))
        while i and keep is not None and not keep(member, votes[i - 1][0]):
            i -= 1
        if i:
            counts[votes[i - 1][1]] += 1
            counted.append((member, votes[i - 1][0]))
    return counts, counted


def decide(p: Proposal, counts: dict[str, int], closed: bool) -> str:
    """The outcome of ``p`` on these counts: before the window closes only a full electorate's
    vote decides; after it, a vote short of the quorum is rejected."""
    voted = sum(counts.values())
    eligible = len(p.electorate)
    if not closed and voted < eligible:
        return "open"
    if eligible == 0 or voted == 0 or 100 * voted < p.quorum * eligible:
        return "rejected" if closed else "open"
    yes, no, block = counts["yes"], counts["no"], counts["block"]
    if p.threshold == "majority":
        passed = yes > no + block
    elif p.threshold == "two_thirds":
        passed = yes > 0 and 3 * yes >= 2 * (yes + no + block)
    else:  # consent
        passed = yes > 0 and block == 0
    return "passed" if passed else "rejected"


def outcome(p: Proposal, frontier: dict[bytes, int], *, closed: bool = True) -> tuple[str, dict[str, int]]:
    """The outcome of ``p`` counting, for each elector, their latest vote within ``frontier``."""
    counts, _ = count_votes(p, frontier)
    return decide(p, counts, closed), counts


def _tally(s: State, c: Ctx) -> str | None:
    p, why = _about(s, c)
    if p is None:
        return why
    f = c.fold
    frontier = c.seen.since(f.graph.height[p.id])
    counts, counted = count_votes(p, frontier, f.vote_keeper(c.seen))
    result = decide(p, counts, c.time >= p.closes)
    if result != c.item.body["outcome"]:
        return f"wrong_outcome:{result}"
    if result == "open":
        return None
    f.ranks[c.item.id] = (len(counted), sum(q for _, q in counted))
    s.tallied[p.id] = (*s.tallied.get(p.id, ()), c.item.id)
    f.decide(s, p, c, result)
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
    offence = c.fold.charter_seen(c.seen)["offences"].get(clause)
    if offence is None:  # the charter was amended since the proposal opened
        return
    who = p.payload["member"]
    bound = c.fold.graph.frontier(c.item.id).get(who, 0)
    _sanction(s, p.id, who, offence["sanction"], offence["days"], clause, p.payload["evidence"], c.item.id, c.time, bound)


def _sanction(
    s: State,
    sid: bytes,
    who: bytes,
    kind: str,
    days: int,
    clause: str,
    evidence: tuple[bytes, ...],
    by: bytes,
    t: int | None,
    bound: int,
) -> None:
    until = t + days * DAY_MS if kind == "suspend" and t is not None else None
    pending = days if kind == "suspend" and t is None else None
    s.sanctions[sid] = Sanction(sid, who, kind, until, clause, tuple(evidence), by, bound, pending_days=pending)
    s.sanctioned[who] = [*s.sanctioned.get(who, ()), sid]
    if kind == "expel":
        _become(s, who, EXPELLED, (), by)  # an outsider too: they may not join later


def _pass_lift(s: State, p: Proposal, c: Ctx) -> None:
    x = s.sanctions.get(p.payload["sanction"])
    if x is None:
        return
    # Every lift is recorded: one the member's action saw frees it, whichever sorts first.
    x.lifts = (*x.lifts, c.item.id)
    if x.lifted_by is not None:
        return
    x.lifted_by = c.item.id
    still_expelled = any(s.sanctions[i].kind == "expel" and s.sanctions[i].lifted_by is None for i in s.sanctioned.get(x.member, ()))
    if x.kind == "expel" and s.status(x.member) == EXPELLED and not still_expelled:
        _become(s, x.member, MEMBER, {"member"}, c.item.id)


def _pass_federate(s: State, p: Proposal, c: Ctx) -> None:
    coop = p.payload["coop"]
    s.federations[coop] = (p.payload["terms"], c.item.id)
    s.fed_log[coop] = (*s.fed_log.get(coop, ()), (c.item.id, True))


def _pass_unfederate(s: State, p: Proposal, c: Ctx) -> None:
    coop = p.payload["coop"]
    s.federations.pop(coop, None)
    s.fed_log[coop] = (*s.fed_log.get(coop, ()), (c.item.id, False))


def _pass_role(s: State, p: Proposal, c: Ctx) -> None:
    m = s.members.get(p.payload["member"])
    if m is not None:
        roles = m.roles | {p.payload["role"]} if p.payload["grant"] else m.roles - {p.payload["role"]}
        _become(s, p.payload["member"], m.status, roles, c.item.id, m.sponsors)


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


def _app(s: State, c: Ctx) -> str | None:
    return None


def _is_appeal(s: State, author: bytes, ptype: str, payload: Any) -> bool:
    if ptype != "lift":
        return False
    x = s.sanctions.get(payload["sanction"])
    return x is not None and x.member == author


_ANYONE_NEW = frozenset({NONE, LEFT})
_MEMBERS = frozenset({MEMBER})

# The one table of what each kind needs and does. "who": statuses that may act; "good": a member
# must be in good standing (no suspension in force at the action's co-op time). "permission": a
# role permission from the charter ("kind": the application kind itself, matched against patterns).
# Proofs are not in the table: their rule is the charter's equivocation clause (Fold._equivocation).
RULES: dict[str, Rule] = {
    APPLY: Rule(_ANYONE_NEW, False, None, _apply),
    SPONSOR: Rule(_MEMBERS, True, "sponsor", _sponsor),
    LEAVE: Rule(frozenset({MEMBER, APPLICANT}), False, None, _leave),
    SEEN: Rule(frozenset({MEMBER, APPLICANT}), False, None, _seen_only),
    OPEN: Rule(frozenset({MEMBER, EXPELLED, LEFT, APPLICANT, NONE}), False, None, _open),  # _open: standing, permission, appeals
    VOTE: Rule(_MEMBERS, True, "vote", _vote),
    TALLY: Rule(_MEMBERS, True, "tally", _tally),
}
APP_RULE = Rule(_MEMBERS, True, "kind", _app)
_DECISIONS = frozenset({OPEN, VOTE, TALLY})
# Never bound by a sanction they do not see: leaving, and tallies (a count anyone can check; binding
# them would let two concurrent sanctions undo each other). An appeal is exempt too (see _exempt).
_UNBOUND = frozenset({LEAVE, TALLY, GENESIS, EQUIVOCATION})


def rule_for(kind: str) -> Rule:
    return RULES.get(kind, APP_RULE)


# ---- the fold ------------------------------------------------------------------------------------


def _merge_witnesses(
    lists: Iterable[tuple[tuple[int, bytes], ...]], extra: tuple[int, bytes] | None = None
) -> tuple[tuple[int, bytes], ...]:
    """The WITNESS_LIST latest stamps of distinct authors among ``lists`` (and ``extra``), latest
    first (ties by author). Exact: an author among the latest of the union is among the latest of
    the list whose past holds their latest stamp.

    Runs for every item folded: most items have parents whose lists are equal (they saw the same
    recent witnesses), so that case returns the first list itself without sorting anything."""
    first: tuple[tuple[int, bytes], ...] | None = None
    best: dict[bytes, int] | None = None
    for stamps in lists:
        if first is None:
            first = stamps
            continue
        if stamps is first or stamps == first:
            continue
        if best is None:
            best = {a: t for t, a in first}
        for t, a in stamps:
            if t > best.get(a, -1):
                best[a] = t
    if first is None:
        first = ()
    if extra is not None:
        t, a = extra
        if best is None:
            for ft, fa in first:
                if fa == a and ft >= t:
                    return first  # already there, as late or later
            best = {fa: ft for ft, fa in first}
        if t > best.get(a, -1):
            best[a] = t
    if best is None:
        return first
    merged = tuple(sorted(((t, a) for a, t in best.items()), reverse=True)[:WITNESS_LIST])
    return first if merged == first else merged


class Fold:
    """One co-op's governance, folded incrementally. ``add`` actions, proofs and ghosts in any order."""

    def __init__(self, genesis: Action, *, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        if not genesis.is_genesis:
            raise ValueError("a fold starts from a genesis action")
        self.coop = genesis.id
        self.snapshot_every = snapshot_every
        self.graph = Graph(genesis.id)
        self.clock: dict[bytes, int] = {}  # co-op time of each folded item (its judge time)
        self.witnesses: dict[bytes, tuple[tuple[int, bytes], ...]] = {}
        self.view: dict[bytes, str | None] = {}  # each folded item's verdict in its own view
        self.ranks: dict[bytes, tuple[int, int]] = {}  # deciding tally -> (electors counted, sum of their seqs)
        self.pins: dict[bytes, bytes] = {}  # disputed proposal -> the tally the whole set says decides it
        self.disputed: set[bytes] = set()
        self.refolded = 0  # items re-applied because of late arrivals (for benchmarks)
        self._back_to: int | None = None
        self._final: tuple[int, dict[bytes, str | None], bytes, int, int] | None = None  # cached final results
        self._tips: tuple[int, list[bytes]] | None = None
        body = genesis.body_value()
        body = body if isinstance(body, dict) else {}
        charter = body.get("charter") or codec.decode(codec.encode(DEFAULT_CHARTER))
        self.state = State(genesis.id, charter)
        self._snapshots: list[tuple[int, State]] = [(0, self.state.copy())]
        self._recent: tuple[int, State] | None = None  # one snapshot close to the tip
        self._version = 0
        self.add([genesis])

    # ---- compatibility views of the graph ----------------------------------------------------

    @property
    def items(self) -> dict[bytes, Item]:
        return self.graph.items

    @property
    def height(self) -> dict[bytes, int]:
        return self.graph.height

    @property
    def order(self) -> list[OrderKey]:
        return self.graph.order

    @property
    def chain(self) -> dict[bytes, dict[int, bytes]]:
        return self.graph.chain

    def frontier(self, item_id: bytes) -> dict[bytes, int]:
        return self.graph.frontier(item_id)

    def frontier_since(self, item_id: bytes, min_height: int) -> dict[bytes, int]:
        return self.graph.frontier_since(item_id, min_height)

    def reaches(self, item_id: bytes, target: bytes) -> bool:
        return self.graph.reaches(item_id, target)

    # ---- input -------------------------------------------------------------------------------

    def add(self, actions: Iterable[Action] = (), proofs: Iterable[EquivocationProof] = (), forked: Iterable[Action] = ()) -> None:
        """Actions of the co-op's chains, equivocation proofs, and ``forked``: actions displaced
        from their chain by an equivocation (ghosts). A proof whose two actions share their prev
        brings its larger-id half as a ghost; of a proof whose branches parted lower down, either
        half may be the kept one (fork choice keeps the smallest id whose prev is kept), so only
        ``forked`` says which is displaced."""
        items = [Item.of(a) for a in actions if a.coop == self.coop and a.id not in self.graph.items]
        ghosts = {a.id: Item.of(a) for a in forked if a.coop == self.coop and a.id not in self.graph.items}
        for p in proofs:
            if p.coop != self.coop or p.id in self.graph.items:
                continue
            items.append(Item.of_proof(p))
            if p.b.id not in self.graph.items and p.a.prev == p.b.prev:
                ghosts.setdefault(p.b.id, Item.of(p.b))
        kept = {it.id for it in items}
        ghost_items = [g for i, g in ghosts.items() if i not in kept]
        self.add_items(items + ghost_items, ghosts={g.id for g in ghost_items})

    def add_items(self, items: list[Item], ghosts: set[bytes] | frozenset[bytes] = frozenset()) -> None:
        newly = self.graph.insert(items, ghosts)
        if not newly:
            return
        self._version += 1
        at = bisect.bisect_left(self.graph.order, newly[0])
        if at < self.state.pos:
            self._rewind(at)
        self._run()

    # ---- applying ----------------------------------------------------------------------------

    def _rewind(self, position: int) -> None:
        """Go back to the last snapshot taken at or before ``position`` in the fold order."""
        while self._snapshots[-1][0] > position:
            self._snapshots.pop()
        at, snap = self._snapshots[-1]
        if self._recent is not None and at < self._recent[0] <= position:
            at, snap = self._recent  # a concurrent arrival near the tip: go back a little only
        self.refolded += self.state.pos - at
        self.state = snap.copy()
        self._recent = None if self._recent is None or self._recent[0] > at else self._recent

    def _run(self) -> None:
        for _ in range(SETTLE_ROUNDS):
            self._walk()
            if not self._settle():
                break
        s = self.state
        # At the tip, keep one snapshot at most RECENT_EVERY items old: actions that arrive
        # concurrently usually sort just before the tip, and should not send the fold back to
        # the last regular snapshot (up to snapshot_every items).
        recent_at = self._recent[0] if self._recent is not None else -1
        if s.pos - max(recent_at, self._snapshots[-1][0]) >= RECENT_EVERY:
            self._recent = (s.pos, s.copy())

    def _walk(self) -> None:
        order, items = self.graph.order, self.graph.items
        while self.state.pos < len(order):
            s = self.state
            self._apply(items[order[s.pos][2]])
            if self._back_to is not None:
                self._rewind(self._back_to)
                self._back_to = None
                continue
            if s.pos % self.snapshot_every == 0 and s.pos > self._snapshots[-1][0]:
                self._snapshots.append((s.pos, s.copy()))

    def _apply(self, it: Item) -> None:
        s, g = self.state, self.graph
        parents = it.parents or (self.coop,)  # the genesis is in every causal past
        if it.id == self.coop:
            t, merged = it.ts, ()
        else:
            merged = _merge_witnesses(self.witnesses[p] for p in parents)
            t = max((self.clock[p] for p in parents), default=0)
            if merged:
                t = max(t, merged[min(CLOCK_WITNESSES, len(merged)) - 1][0])
        self.clock[it.id] = t
        witness = False
        if it.id in g.ghosts:
            reason: str | None = None
        elif it.kind == GENESIS:
            reason = self._genesis(it)
            witness = reason is None
        elif it.kind == EQUIVOCATION:
            reason = self._equivocation(s, it)
        else:
            reason, witness = self._judge(s, it, t)
        self.witnesses[it.id] = _merge_witnesses((merged,), (it.ts, it.author)) if witness else merged
        self.view[it.id] = reason
        s.pos += 1
        if t > s.clock:
            s.clock = t

    def _genesis(self, it: Item) -> str | None:
        if it.id != self.coop:
            return "second_genesis"
        s = self.state
        s.charter_by = it.id
        for f in sorted({it.author, *it.body.get("founders", ())}):
            _become(s, f, MEMBER, {"member", "founder"}, it.id)
        return None

    def _judge(self, s: State, it: Item, t: int) -> tuple[str | None, bool]:
        """An action's verdict in its own view, and whether it is a witness of the co-op clock."""
        if it.author in s.sanctioned:
            self._start_pending(s, it, t)
        kind = it.kind
        if kind == OPEN:
            seen = Seen(self, it, it.id)
        elif kind in (VOTE, TALLY):
            p = s.proposals.get(it.body["proposal"])
            seen = Seen(self, it, p.id, p.frontier) if p is not None else Seen(self, it)
        else:
            seen = Seen(self, it)
        me = self.member_seen(it.author, seen)
        rule = rule_for(kind)
        if kind != OPEN:
            status = _status(me)
            if status not in rule.who:
                return f"status_{status}", False
            if status == MEMBER and rule.good and self.suspended_seen(it.author, seen, t):
                return SUSPENDED, False
            if rule.permission is not None:
                perms = _role_permissions(me, self.charter_seen(seen))
                if rule.permission == "kind":
                    if not permits(tuple(p for p in perms if p not in ("propose", "vote", "tally", "sponsor")), kind):
                        return "no_permission", False
                elif rule.permission not in perms:
                    return "no_permission", False
        reason = rule.effect(s, Ctx(it, t, self, seen, me))
        if reason is not None:
            return reason, False
        # A witness of the co-op clock: after it, its author is a member in good standing in its view.
        after = self.member_seen(it.author, seen) if kind in (APPLY, LEAVE, TALLY) else me
        return None, after is not None and after.status == MEMBER and not self.suspended_seen(it.author, seen, t)

    def _equivocation(self, s: State, it: Item) -> str | None:
        if s.status(it.author) == NONE:
            return "status_none"  # a proof about a stranger changes nothing
        rule = s.charter["equivocation"]
        body = it.body
        # One fork is one equivocation, however many proofs show it: a proof whose actions have
        # different prevs shows where two branches already parted (sanctioned at the seq where they
        # did), and a second proof at a seq already sanctioned adds nothing. So two devices that
        # each go on for a while are answered once, and which pairs a node happened to prove does
        # not change the state.
        mine = [s.sanctions[i] for i in s.sanctioned.get(it.author, ()) if s.sanctions[i].clause == "equivocation"]
        if body.get("parted") or any(x.bound == it.seq for x in mine):
            return None
        if rule["sanction"] != "none" and it.id not in s.sanctions:
            before = len(mine)
            kind = "warning" if before < rule.get("forgive", 0) else rule["sanction"]
            # The forks' co-op time is the equivocator's choice (stale deps), so a suspension's clock
            # starts only at their next action (see _start_pending).
            _sanction(s, it.id, it.author, kind, rule["days"], "equivocation", (body["a"], body["b"]), it.id, None, it.seq)
            if kind == "warning":
                s.sanctions[it.id].pending_days = None
        return None

    def _start_pending(self, s: State, it: Item, t: int) -> None:
        # An equivocator's suspension runs from the co-op time of their first action after the
        # fork, so forking on stale deps does not backdate it.
        for i in s.sanctioned[it.author]:
            x = s.sanctions[i]
            if x.pending_days is not None and it.seq > x.bound:
                x.until, x.pending_days, x.started_by = t + x.pending_days * DAY_MS, None, it.id

    # ---- reading a view ----------------------------------------------------------------------

    def member_seen(self, who: bytes, seen: Seen) -> Member | None:
        """``who``'s latest version whose cause the view has seen and that the view does not know
        to rest on sponsorships made under a sanction."""
        m = self.state.members.get(who)
        while m is not None and (not seen(m.since) or (m.needed and self._short_of_sponsors(m, seen)) or self._bound_apply(who, m, seen)):
            m = m.prev
        return m

    def _bound_apply(self, who: bytes, m: Member, seen: Seen | None) -> bool:
        """Whether version ``m`` was made by ``who``'s own application under a sanction binding it
        (as far as ``seen`` knows of sanctions; None: all of them): its effect never happens."""
        if who not in self.state.sanctioned:
            return False
        it = self.graph.items.get(m.since)
        return it is not None and it.author == who and it.kind == APPLY and self.bound_seen(who, it.seq, seen)

    def _short_of_sponsors(self, m: Member, seen: Seen | None) -> bool:
        if not self.state.sanctioned:
            return False
        good = sum(1 for x, q in m.sponsors if not self._void_sponsorship(x, q, seen))
        return good < m.needed

    def _void_sponsorship(self, who: bytes, seq: int, seen: Seen | None) -> bool:
        """Whether ``who``'s sponsorship at ``seq`` is void as far as ``seen`` knows (None: the
        state): bound by a sanction, or made on a membership that is itself void (an admission
        resting on void sponsorships, or a bound application), so that an expelled member cannot
        admit someone through a proxy they admitted. Admissions only rest on earlier ones: the
        recursion ends."""
        if self.bound_seen(who, seq, seen):
            return True
        y = self.graph.chain.get(who, {}).get(seq)
        if y is None:
            return False
        at = Seen(self, self.graph.items[y])
        v = self.state.members.get(who)
        while v is not None and not at(v.since):
            v = v.prev
        return v is not None and ((v.needed > 0 and self._short_of_sponsors(v, seen)) or self._bound_apply(who, v, seen))

    def standing_seen(self, who: bytes, seen: Seen, t: int) -> str:
        """MEMBER (in good standing), SUSPENDED, or the status, from what ``seen`` covers."""
        m = self.member_seen(who, seen)
        if m is None:
            return NONE
        if m.status != MEMBER:
            return m.status
        return SUSPENDED if self.suspended_seen(who, seen, t) else MEMBER

    def suspended_seen(self, who: bytes, seen: Seen, t: int) -> bool:
        s = self.state
        for i in s.sanctioned.get(who, ()):
            x = s.sanctions[i]
            if x.kind != "suspend" or not seen(x.imposed_by) or x.lifted_in(seen):
                continue
            # An equivocation suspension this view has not seen start is in force: the action that
            # started it may have arrived late and sort anywhere before.
            if x.until is None or t < x.until or not seen(x.started_by or x.imposed_by):
                return True
        return False

    def charter_seen(self, seen: Seen) -> dict[str, Any]:
        s = self.state
        if seen(s.charter_by):
            return s.charter
        for by, charter in reversed(s.charters):
            if seen(by):
                return charter
        raise AssertionError("the genesis charter is in every causal past")

    def bound_seen(self, who: bytes, seq: int, seen: Seen | None) -> bool:
        """Whether ``who``'s action at ``seq`` was made under a sanction binding it, as far as
        ``seen`` knows of sanctions (None: every sanction in the state)."""
        s = self.state
        ids = s.sanctioned.get(who)
        if not ids:
            return False
        x_id = self.graph.chain.get(who, {}).get(seq)
        if x_id is None:
            return False
        own: Seen | None = None
        for i in ids:
            x = s.sanctions[i]
            if x.kind not in BINDING or seq <= x.bound or (seen is not None and not seen(x.imposed_by)):
                continue
            if x.lifts:
                own = own or Seen(self, self.graph.items[x_id])
                if x.lifted_in(own):
                    continue
            if x.kind == "expel" or x.until is None or self.clock.get(x_id, 0) < x.until:
                return True
        return False

    def binding(self, action_id: bytes) -> Sanction | None:
        """The sanction of the state that binds this kept action, if one does."""
        g, s = self.graph, self.state
        it = g.items.get(action_id)
        if it is None or not g.kept(action_id) or it.author not in s.sanctioned or self._exempt(it):
            return None
        for i in s.sanctioned[it.author]:
            x = s.sanctions[i]
            if x.kind in BINDING and it.seq > x.bound and action_id in g.height:
                if x.lifts and x.lifted_in(Seen(self, it)):
                    continue
                if x.kind == "expel" or x.until is None or self.clock.get(action_id, 0) < x.until:
                    return x
        return None

    def counted(self, p: Proposal, vote_id: bytes) -> bool:
        """Whether the tally that decided ``p`` counted this vote."""
        if p.decided_by is None:
            return False
        v = self.graph.items[vote_id]
        frontier = self.graph.frontier_since(p.decided_by, self.graph.height[p.id])
        return (v.author, v.seq) in count_votes(p, frontier, self.vote_keeper_of(p.decided_by))[1]

    def vote_keeper_of(self, tally_id: bytes) -> Callable[[bytes, int], bool] | None:
        return self.vote_keeper(Seen(self, self.graph.items[tally_id]))

    def vote_keeper(self, seen: Seen) -> Callable[[bytes, int], bool] | None:
        """For a tally's count: drop votes the tally knows were made under a sanction."""
        if not self.state.sanctioned:
            return None
        return lambda member, seq: not self.bound_seen(member, seq, seen)

    # ---- decisions ---------------------------------------------------------------------------

    def decide(self, s: State, p: Proposal, c: Ctx, result: str) -> None:
        """A valid deciding tally was folded: it decides ``p`` unless another one does (the first in
        fold order, or the one the whole set pins when tallies disagree)."""
        pinned = self.pins.get(p.id)
        if pinned is not None and pinned != c.item.id:
            return
        if pinned is None and p.status != "open":
            if result != p.status:
                self.disputed.add(p.id)
            elif result == "passed" and p.type == "sanction":
                self._harden(s, p, c)
            return
        p = s.own(p.id)
        p.status, p.decided_by, p.frontier = result, c.item.id, None
        if result == "passed":
            _EFFECTS[p.type](s, p, c)

    def _harden(self, s: State, p: Proposal, c: Ctx) -> None:
        """A second tally that also passes a sanction: the sanction binds from the lower of the two
        bounds and a suspension ends at the later end. Otherwise the sanctioned member could tally
        their own sanction on stale deps (a valid count) and, sorting first, set its bound past
        actions they signed meanwhile, or its end earlier."""
        x = s.sanctions.get(p.id)
        if x is None or x.imposed_by != p.decided_by:
            return
        x.bound = min(x.bound, self.graph.frontier(c.item.id).get(x.member, 0))
        if x.kind == "suspend" and x.until is not None:
            offence = self.charter_seen(c.seen)["offences"].get(x.clause)
            if offence is not None:
                x.until = max(x.until, c.time + offence["days"] * DAY_MS)

    def _settle(self) -> bool:
        """At the tip: for each disputed proposal, the decision the whole set gives it. If that is
        not the one folded, pin it and fold again from the earlier of the two. True if it did."""
        s = self.state
        back: int | None = None
        for pid in sorted(self.disputed | set(self.pins)):
            p = s.proposals.get(pid)
            deciders = s.tallied.get(pid, ())
            if p is None or not deciders:
                self.pins.pop(pid, None)
                continue
            w = self.winner(p, deciders)
            if w == p.decided_by:
                continue
            self.pins[pid] = w
            positions = [self.graph.position(w)]
            if p.decided_by is not None:
                positions.append(self.graph.position(p.decided_by))
            back = min(positions) if back is None else min(back, *positions)
        if back is None:
            return False
        self._rewind(back)
        return True

    def winner(self, p: Proposal, deciders: tuple[bytes, ...]) -> bytes:
        claims = {self.graph.items[t].body["outcome"] for t in deciders}
        if len(claims) == 1:
            return deciders[0]
        acks = self.acks(p, deciders)
        need = self.acks_needed(p)
        return max(deciders, key=lambda t: (acks.get(t, 0) >= need, self.ranks.get(t, (0, 0)), -self.graph.position(t)))

    def acks_needed(self, p: Proposal) -> int:
        return max(1, -(-p.quorum * len(p.electorate) // 100))

    def acks(self, p: Proposal, deciders: tuple[bytes, ...]) -> dict[bytes, int]:
        """For each deciding tally, the electors who acknowledged it: an elector acknowledges the
        best decision among those their first action that saw any of them saw, provided it counted
        a vote of every elector whose vote that action had seen (a count that left out an elector
        its reader knew had voted is not acknowledged; a re-vote made around the decision, which it
        could not count, does not spoil it: otherwise one voter could flip an early decision by
        re-voting on stale deps before the others acknowledge it)."""
        g = self.graph
        hp = g.height[p.id]
        out: dict[bytes, int] = {}
        order_rank = {t: (self.ranks.get(t, (0, 0)), -g.position(t)) for t in deciders}
        tally_electors = {t: {m for m, _ in count_votes(p, g.frontier_since(t, hp))[1]} for t in deciders}
        for e in sorted(p.electorate):
            chain = g.chain.get(e)
            if not chain:
                continue
            seqs = sorted(chain)
            lo, hi = 0, len(seqs)
            while lo < hi:  # the first of e's actions that saw a decision (a chain's pasts only grow)
                mid = (lo + hi) // 2
                if any(g.reaches(chain[seqs[mid]], t) for t in deciders):
                    hi = mid
                else:
                    lo = mid + 1
            if lo == len(seqs):
                continue
            x = chain[seqs[lo]]
            fx = g.frontier_since(x, hp)
            mine = {m for m, _ in count_votes(p, fx)[1]}
            complete = [t for t in deciders if g.reaches(x, t) and tally_electors[t] == mine]
            if complete:
                best = max(complete, key=lambda t: order_rank[t])
                out[best] = out.get(best, 0) + 1
        return out

    # ---- the state, as the whole set of actions has it ----------------------------------------

    def _exempt(self, it: Item) -> bool:
        if it.kind in _UNBOUND or it.id in self.graph.ghosts:
            return True
        return it.kind == OPEN and _is_appeal(self.state, it.author, it.body["type"], it.body["payload"])

    def final(self) -> tuple[dict[bytes, str | None], bytes, int, int]:
        """Every folded item's result in the state, the hash of those results, how many items the
        state counts (strangers' actions and ghosts are not counted) and how many it rejects.

        A result is the item's verdict in its own view, unless a sanction decided anywhere binds
        it (it lies beyond the sanctioned member's actions in the deciding tally's causal past), or
        its author's membership rested on a sponsorship so bound."""
        if self._final is not None and self._final[0] == self._version:
            return self._final[1:]  # type: ignore[return-value]
        s, g = self.state, self.graph
        results = dict(self.view)
        for who, ids in s.sanctioned.items():
            if not any(s.sanctions[i].kind in BINDING for i in ids):
                continue
            for seq, x in g.chain.get(who, {}).items():
                it = g.items[x]
                if results.get(x, "") is None and not self._exempt(it) and self.bound_seen(who, seq, None):
                    results[x] = "status_expelled" if self._expels(ids, seq, x) else SUSPENDED
        for who in self._void_admissions():
            for x in g.chain.get(who, {}).values():
                it = g.items[x]
                if results.get(x, "") is None and it.kind not in _UNBOUND and it.kind != APPLY:
                    standing = self._standing_in_state(who, Seen(self, it), self.clock[x])
                    # an opening needs a member in good standing too, unless it is an appeal
                    members_only = rule_for(it.kind).who == _MEMBERS or (it.kind == OPEN and not self._exempt(it))
                    if standing != MEMBER and members_only:
                        results[x] = SUSPENDED if standing == SUSPENDED else f"status_{standing}"
        h = hashlib.sha256(RESULTS_TAG)
        counted = rejected = 0
        for _, _, x in g.order:
            r = results.get(x)
            if x in g.ghosts or self.view.get(x) == "status_none":
                continue
            counted += 1
            if r is not None:
                rejected += 1
            h.update(x)
            h.update((r or "").encode())
            h.update(b"\x00")
        self._final = (self._version, results, h.digest(), counted, rejected)
        return results, self._final[2], counted, rejected

    def _expels(self, ids: list[bytes], seq: int, x: bytes) -> bool:
        """Whether an expulsion among sanctions ``ids`` binds the action ``x`` at ``seq``: beyond its
        bound, and ``x`` has not seen its lift (a lifted expulsion does not bind what saw the lift)."""
        s, own = self.state, None
        for i in ids:
            e = s.sanctions[i]
            if e.kind != "expel" or seq <= e.bound:
                continue
            if e.lifts:
                own = own or Seen(self, self.graph.items[x])
                if e.lifted_in(own):
                    continue
            return True
        return False

    def _void_admissions(self) -> list[bytes]:
        """Members whose latest admission by sponsorship rests on sponsorships a sanction binds."""
        s = self.state
        if not s.sanctioned:
            return []
        out = []
        for who, m in s.members.items():
            v: Member | None = m
            while v is not None:
                if v.needed and self._short_of_sponsors(v, None):
                    out.append(who)
                    break
                v = v.prev
        return sorted(out)

    def _standing_in_state(self, who: bytes, seen: Seen, t: int) -> str:
        m = self.state.members.get(who)
        while m is not None and (not seen(m.since) or (m.needed and self._short_of_sponsors(m, None)) or self._bound_apply(who, m, None)):
            m = m.prev
        if m is None:
            return NONE
        if m.status != MEMBER:
            return m.status
        return SUSPENDED if self.suspended_seen(who, seen, t) else MEMBER

    def member_final(self, who: bytes) -> Member | None:
        """``who``'s latest version in the state, skipping admissions that rest on bound sponsorships."""
        m = self.state.members.get(who)
        while m is not None and ((m.needed and self._short_of_sponsors(m, None)) or self._bound_apply(who, m, None)):
            m = m.prev
        return m

    def sponsors_final(self, m: Member) -> list[bytes]:
        return [x for x, q in m.sponsors if not self._void_sponsorship(x, q, None)]

    def suspended(self, who: bytes, t: int) -> bool:
        """Whether a suspension of ``who`` in the state is in force at co-op time ``t``."""
        s = self.state
        for i in s.sanctioned.get(who, ()):
            x = s.sanctions[i]
            if x.kind == "suspend" and x.lifted_by is None and (x.until is None or t < x.until):
                return True
        return False

    def in_good_standing(self, who: bytes, t: int) -> bool:
        m = self.member_final(who)
        return m is not None and m.status == MEMBER and not self.suspended(who, t)

    def canonical(self) -> dict[str, Any]:
        """Everything the state hash covers, as a canonical value."""
        s = self.state
        _, results_hash, counted, rejected = self.final()
        members = []
        for k in sorted(s.members):
            m = self.member_final(k)
            if m is not None:
                members.append([k, m.status, sorted(m.roles), sorted(self.sponsors_final(m))])
        return {
            "charter": s.charter,
            "coop": s.coop,
            "counted": counted,
            "federations": [[c, terms, by] for c, (terms, by) in sorted(s.federations.items())],
            "members": members,
            "proposals": [[k, p.type, p.status, p.decided_by] for k, p in sorted(s.proposals.items())],
            "rejected": rejected,
            "results": results_hash,
            "sanctions": [
                [k, x.member, x.kind, x.until, x.clause, x.imposed_by, x.lifted_by, x.bound] for k, x in sorted(s.sanctions.items())
            ],
        }

    def state_hash(self) -> bytes:
        return hashlib.sha256(STATE_HASH_TAG + codec.encode(self.canonical())).digest()

    # ---- reading -----------------------------------------------------------------------------

    @property
    def results(self) -> dict[bytes, str | None]:
        """id -> None (applied) or the reason it is rejected in the state, for every folded item."""
        return self.final()[0]

    def result(self, action_id: bytes) -> tuple[str, str | None]:
        """("applied", None), ("rejected", reason), ("forked", None) for a ghost, ("deferred", None)
        while not yet ready, or ("unknown", None)."""
        g = self.graph
        if action_id in g.height:
            if action_id in g.ghosts:
                return ("forked", None)
            reason = self.results[action_id]
            return ("applied", None) if reason is None else ("rejected", reason)
        return ("deferred", None) if action_id in g.items else ("unknown", None)

    def waits_for(self, action_id: bytes) -> list[bytes]:
        """For a deferred action: the actions it waits for that this fold does not hold."""
        return self.graph.absent_below(action_id)

    def absent(self, limit: int = 256) -> list[bytes]:
        """Ids that deferred items wait for and that this fold does not hold at all, sorted."""
        g = self.graph
        return sorted(x for x in g.waiting if x not in g.items)[:limit]

    @property
    def deferred(self) -> int:
        return len(self.graph.items) - len(self.graph.height)

    def is_final(self, p: Proposal) -> tuple[int, int]:
        """(electors who acknowledged the decision, electors needed for it to be final)."""
        deciders = self.state.tallied.get(p.id, ())
        if p.decided_by is None or not deciders:
            return 0, self.acks_needed(p)
        return self.acks(p, deciders).get(p.decided_by, 0), self.acks_needed(p)

    def now(self) -> int:
        """The co-op's time as far as this fold has seen: the latest co-op time of any item."""
        return self.state.clock

    def tips(self, limit: int = 31) -> list[bytes]:
        """Applied actions no other applied action builds on, latest first: what a member who has
        seen everything here names as deps. Actions of strangers, of sanctioned members, ghosts
        and rejected actions are never offered."""
        if self._tips is None or self._tips[0] != self._version:
            results = self.results
            g = self.graph
            referenced: set[bytes] = set()
            tips: list[bytes] = []
            for _, _, x in reversed(g.order):
                if x in g.ghosts or results.get(x, "") is not None or g.items[x].kind == EQUIVOCATION:
                    continue
                if x not in referenced:
                    tips.append(x)
                referenced.update(g.items[x].parents)
            self._tips = (self._version, tips)
        return self._tips[1][:limit]

    def preview(self, proposal_id: bytes, parents: Iterable[bytes]) -> tuple[str, dict[str, int], bool]:
        """What a tally of ``proposal_id`` with these parents (all folded) would have to claim:
        (outcome, counts, whether its window has closed by that tally's co-op time)."""
        g = self.graph
        p = self.state.proposals[proposal_id]
        ps = tuple(sorted(set(parents)))
        # A stand-in for the tally, never folded: its author is nobody, so only ``parents`` (the
        # tallier's own head among them) say what it has seen.
        probe = Item(hashlib.sha256(b"coopnet/preview\x00" + b"".join(ps)).digest(), b"\x00" * 32, 1, None, ps, 0, TALLY, None)
        merged = _merge_witnesses(self.witnesses[x] for x in ps)
        t = max((self.clock[x] for x in ps), default=0)
        if merged:
            t = max(t, merged[min(CLOCK_WITNESSES, len(merged)) - 1][0])
        g.items[probe.id] = probe
        g.height[probe.id] = 1 + max((g.height[x] for x in ps), default=0)
        try:
            seen = Seen(self, probe, p.id, p.frontier)
            frontier = g.frontier_since(probe.id, g.height[p.id])
            counts, _ = count_votes(p, frontier, self.vote_keeper(seen))
        finally:
            del g.items[probe.id]
            del g.height[probe.id]
        closed = t >= p.closes
        return decide(p, counts, closed), counts, closed
