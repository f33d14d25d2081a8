"""Builders for the governance tests: hand-written histories and an adversarial simulated co-op.

``Hist`` builds a history one ``Item`` at a time and folds it as it goes (by default each item
depends on the previous one, so the history is a line and the fold order is the build order). The
co-op clock moves only when two members in good standing stamp later actions (``advance``), and
``decide`` closes a proposal's voting window that way before it tallies.

``simulate`` runs a small co-op of members acting on their own lagging views, plus adversaries
(docs/GOVERNANCE.md, "Threat model"): members who choose stale deps, a liar who stamps far-future
or backdated times, strangers who flood the co-op (far-future stamps, forks, deps that never
arrive), forks whose losing side other members build on (ghosts), sanctioned members acting on
stale deps, backdated votes, concurrent conflicting tallies (disputes) and mutual concurrent
sanctions. It returns the items in generation order, which is a causal order (every item after
its causal past; a proof right after its canonical action).

The simulator picks *plausible* actions with help from a fold fed in generation order, but the
tests judge the fold with independent code (``tests/gov_oracle.py``, closures recomputed here).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol import codec, domain
from protocol.action import Action, sign_genesis
from protocol.charter import (
    APPLY,
    CHOICES,
    DEFAULT_CHARTER,
    LEAVE,
    OPEN,
    SEEN,
    SPONSOR,
    TALLY,
    VOTE,
    check_charter,
    check_governance_body,
)
from protocol.governance import DAY_MS, EQUIVOCATION, MEMBER, MINUTE_MS, Fold, Item
from protocol.keys import SigningKey

TS0 = 1_700_000_000_000
FOUNDER_KEY = SigningKey(hashlib.sha256(b"coopnet-test-governance-founder").digest())
ALL_PERMS = ("propose", "vote", "tally", "sponsor", "*")
RIDE = "ride.offer"
HOUR_MS = 60 * MINUTE_MS
WEEK_MIN = 10_080  # the window of a rule that does not say, in minutes

# ---- values --------------------------------------------------------------------------------------


def canon(value: Any) -> Any:
    """``value`` as a decoded action body holds it (maps sorted, arrays as tuples)."""
    return codec.decode(codec.encode(value))


def make_id(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def charter(
    *,
    policy: str = "open",
    sponsors: int = 1,
    decisions: dict[str, Any] | None = None,
    roles: dict[str, Sequence[str]] | None = None,
    offences: dict[str, Any] | None = None,
    equivocation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid charter, in decoded form, from the defaults and the given parts."""
    c = {
        "membership": {"policy": policy, "sponsors": sponsors},
        "decisions": decisions if decisions is not None else DEFAULT_CHARTER["decisions"],
        "roles": {k: list(v) for k, v in (roles if roles is not None else {"member": ALL_PERMS}).items()},
        "offences": offences if offences is not None else DEFAULT_CHARTER["offences"],
        "equivocation": equivocation if equivocation is not None else DEFAULT_CHARTER["equivocation"],
    }
    out = canon(c)
    check_charter(out)
    return out  # type: ignore[no-any-return]


OFFENCES = {  # a suspension and an expulsion, for charters that sanction
    "misconduct": {"sanction": "suspend", "days": 30, "text": "Acting against the charter"},
    "fraud": {"sanction": "expel", "days": 0, "text": "Fraud"},
}


def rule(quorum: int, threshold: str, minutes: int | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"quorum": quorum, "threshold": threshold}
    if minutes is not None:
        r["minutes"] = minutes
    return r


def genesis(
    *, charter_: dict[str, Any] | None = None, founders: Iterable[bytes] = (), ts: int = TS0, key: SigningKey = FOUNDER_KEY
) -> Action:
    body: dict[str, Any] = {"name": "Ride Co-op"}
    if charter_ is not None:
        body["charter"] = charter_
    founders = tuple(founders)
    if founders:
        body["founders"] = list(founders)
    return sign_genesis(key, ts=ts, body=body)


def proof_item(a: Item, b: Item) -> Item:
    """The fold's view of an equivocation proof over ``a`` and ``b`` (``a`` the smaller id)."""
    assert a.id < b.id and a.author == b.author and a.seq == b.seq
    body = {"a": a.id, "b": b.id, "parted": a.prev != b.prev}
    return Item(domain.proof_id(a.id, b.id), a.author, a.seq, None, (a.id,), a.ts, EQUIVOCATION, body)


# ---- a hand-written history ------------------------------------------------------------------------


class Hist:
    """A history of Items folded as it is built; by default each item depends on the last one.

    ``founders`` members besides the genesis author (so three members by default, enough witnesses
    for the co-op clock). ``self.clock`` is the stamp the next item gets unless told otherwise
    (1 s later each time); the co-op clock follows it only as far as two members stamp it.
    """

    def __init__(
        self,
        *,
        charter_: dict[str, Any] | None = None,
        founders: int = 2,
        ts: int = TS0,
        snapshot_every: int = 2000,
    ) -> None:
        self.founder_ids = [make_id("founder", i) for i in range(founders)]
        self.genesis = genesis(charter_=charter_, founders=self.founder_ids, ts=ts)
        self.fold = Fold(self.genesis, snapshot_every=snapshot_every)
        self.founders = [FOUNDER_KEY.public_key, *self.founder_ids]
        self.witnesses = list(self.founders[:3])
        self.coop = self.genesis.id
        self.heads: dict[bytes, tuple[int, bytes | None]] = {FOUNDER_KEY.public_key: (1, self.genesis.id)}
        self.items: dict[bytes, Item] = {self.genesis.id: Item.of(self.genesis)}
        self.ghosts: set[bytes] = set()
        self.tip = self.genesis.id
        self.clock = ts
        self._n = 0

    def person(self, label: object) -> bytes:
        return make_id("person", label)

    def make(
        self,
        who: bytes,
        kind: str,
        body: Any,
        *,
        deps: Iterable[bytes] | None = None,
        ts: int | None = None,
        seq: int | None = None,
        prev: bytes | str | None = "head",
    ) -> Item:
        """Build (but do not fold) ``who``'s next item; advances ``who``'s chain head."""
        self._n += 1
        head_seq, head_id = self.heads.get(who, (0, None))
        seq = head_seq + 1 if seq is None else seq
        p = head_id if prev == "head" else prev
        assert p is None or isinstance(p, bytes)
        d = tuple(sorted(set((self.tip,) if deps is None else deps)))
        if ts is None:
            self.clock += 1000
            ts = self.clock
        body = canon(body)
        check_governance_body(kind, body)
        it = Item(make_id("item", self._n, kind), who, seq, p, d, ts, kind, body)
        self.heads[who] = (seq, it.id)
        self.items[it.id] = it
        return it

    def add(self, *items: Item, ghosts: Iterable[bytes] = ()) -> None:
        g = set(ghosts)
        self.ghosts |= g
        self.fold.add_items(list(items), ghosts=g)
        for it in items:
            if it.kind != EQUIVOCATION and it.id not in g:
                self.tip = it.id

    def act(self, who: bytes, kind: str, body: Any, **kw: Any) -> Item:
        it = self.make(who, kind, body, **kw)
        self.add(it)
        return it

    def reason(self, it: Item) -> str | None:
        kind, reason = self.fold.result(it.id)
        assert kind in ("applied", "rejected"), f"{it.kind} is {kind}"
        return reason

    def time(self, it: Item | None = None) -> int:
        """The co-op clock at ``it``; by default, the co-op time of an action built on the tip (the
        tip's own stamp counts then)."""
        if it is not None:
            return self.fold.clock[it.id]
        w = self.fold.witnesses[self.tip]
        return max(self.fold.clock[self.tip], w[min(3, len(w)) - 1][0] if w else 0)

    # governance shorthands

    def apply(self, who: bytes, **kw: Any) -> Item:
        return self.act(who, APPLY, {}, **kw)

    def sponsor(self, who: bytes, target: bytes, **kw: Any) -> Item:
        return self.act(who, SPONSOR, {"member": target}, **kw)

    def leave(self, who: bytes, **kw: Any) -> Item:
        return self.act(who, LEAVE, {}, **kw)

    def seen(self, who: bytes, **kw: Any) -> Item:
        return self.act(who, SEEN, {}, **kw)

    def open(self, who: bytes, ptype: str, payload: Any, **kw: Any) -> Item:
        return self.act(who, OPEN, {"type": ptype, "title": f"{ptype} proposal", "payload": payload}, **kw)

    def vote(self, who: bytes, proposal: Item | bytes, choice: str, **kw: Any) -> Item:
        pid = proposal.id if isinstance(proposal, Item) else proposal
        return self.act(who, VOTE, {"proposal": pid, "choice": choice}, **kw)

    def tally(self, who: bytes, proposal: Item | bytes, claim: str, **kw: Any) -> Item:
        pid = proposal.id if isinstance(proposal, Item) else proposal
        return self.act(who, TALLY, {"proposal": pid, "outcome": claim}, **kw)

    def app(self, who: bytes, kind: str = RIDE, **kw: Any) -> Item:
        return self.act(who, kind, {"from": "Ghent", "seats": 3}, **kw)

    def advance(self, ms: int, witnesses: Sequence[bytes] | None = None) -> list[Item]:
        """Move the co-op clock ``ms`` on: three members in good standing (two would do) post ``member.seen``
        stamped that much later, one after the other; what follows sees the new time."""
        self.clock += ms
        return [self.act(w, SEEN, {}, ts=self.clock) for w in (self.witnesses if witnesses is None else witnesses)]

    def close(self, minutes: int = WEEK_MIN, witnesses: Sequence[bytes] | None = None) -> list[Item]:
        """Let a window of ``minutes`` opened just now close."""
        return self.advance(minutes * MINUTE_MS + 1000, witnesses)

    def decide(
        self,
        ptype: str,
        payload: Any,
        *,
        voters: Sequence[bytes] | None = None,
        choice: str = "yes",
        claim: str = "passed",
        minutes: int | None = WEEK_MIN,
        opener: bytes | None = None,
        tallier: bytes | None = None,
    ) -> tuple[Item, Item]:
        """Open a proposal (by ``opener``, default the first voter), everyone in ``voters`` votes,
        the window of ``minutes`` closes (None: do not wait, the whole electorate voted) and a tally
        claims ``claim``, which the caller works out from the docs. Both must apply."""
        voters = list(self.founders if voters is None else voters)
        op = self.open(opener or voters[0], ptype, payload)
        assert self.reason(op) is None, self.reason(op)
        for v in voters:
            assert self.reason(self.vote(v, op, choice)) is None
        if minutes is not None:
            self.close(minutes)
        t = self.tally(tallier or voters[0], op, claim)
        assert self.reason(t) is None, self.reason(t)
        return op, t

    def equivocate(
        self, who: bytes, kind: str = RIDE, *, deps: Iterable[bytes] | None = None, ghost: bool = True
    ) -> tuple[Item, Item, Item]:
        """Two items at ``who``'s next seq; fold the canonical one, the proof and (``ghost``) the
        displaced one as a ghost. Returns (canonical, displaced, proof)."""
        head = self.heads.get(who, (0, None))
        x = self.make(who, kind, {"fork": 1}, deps=deps)
        self.heads[who] = head
        y = self.make(who, kind, {"fork": 2}, deps=deps)
        a, b = sorted((x, y), key=lambda i: i.id)
        self.heads[who] = (a.seq, a.id)
        self.add(a)
        p = proof_item(a, b)
        if ghost:
            self.add(b, p, ghosts={b.id})
        else:
            del self.items[b.id]
            self.add(p)
        return a, b, p


# ---- independent graph helpers -------------------------------------------------------------------


def closure(items: dict[bytes, Item], start: bytes) -> set[bytes]:
    """Every id in the causal past of ``start`` (inclusive), by plain graph search."""
    seen = {start}
    stack = [start]
    while stack:
        for p in items[stack.pop()].parents:
            if p not in seen and p in items:
                seen.add(p)
                stack.append(p)
    return seen


def frontier_of(items: dict[bytes, Item], ids: Iterable[bytes], ghosts: Iterable[bytes] = ()) -> dict[bytes, int]:
    g = set(ghosts)
    f: dict[bytes, int] = {}
    for x in ids:
        it = items[x]
        if it.kind != EQUIVOCATION and x not in g and f.get(it.author, 0) < it.seq:
            f[it.author] = it.seq
    return f


# ---- the simulator ---------------------------------------------------------------------------------

PTYPES = ("admit", "amend", "sanction", "lift", "federate", "unfederate", "role", "text")
OTHER_COOPS = tuple(make_id("coop", i) for i in range(3))
APP_KINDS = ("ride.offer", "ride.request", "food.order")
MOVES = ("stale", "liar", "strangers", "ghosts", "missing", "sanctioned", "backdate", "disputes", "mutual", "campaign")


def random_charter(rng: random.Random) -> dict[str, Any]:
    thresholds = ("majority", "two_thirds", "consent")
    minutes = (15, 360, 720, 1440, 2880, 2880, None)
    decisions: dict[str, Any] = {"default": rule(rng.choice((0, 25, 50, 50, 60)), rng.choice(thresholds), rng.choice(minutes))}
    for t in rng.sample(PTYPES, rng.randint(0, 3)):
        decisions[t] = rule(rng.choice((0, 34, 50, 75)), rng.choice(thresholds), rng.choice(minutes))
    member = ["propose", "vote", "tally", "sponsor", "*"]
    if rng.random() < 0.2:
        member.remove(rng.choice(member))  # a member role without some permission
    if rng.random() < 0.3:
        member = [p for p in member if p != "*"] + [rng.choice(("food.*", "food.order"))]
    roles: dict[str, list[str]] = {"member": member}
    if rng.random() < 0.7:
        roles["driver"] = ["ride.*"]
    if rng.random() < 0.5:
        roles["steward"] = ["propose", "vote", "tally", "sponsor"]
    offences = {
        "misconduct": {"sanction": "suspend", "days": rng.choice((0, 1, 2, 30)), "text": "Acting against the charter"},
    }
    if rng.random() < 0.6:
        offences["fraud"] = {"sanction": "expel", "days": 0, "text": "Fraud"}
    if rng.random() < 0.4:
        offences["noise"] = {"sanction": "suspend", "days": 1, "text": "Noise"}
    equivocation: dict[str, Any] = {"sanction": rng.choice(("suspend", "suspend", "expel", "none")), "days": rng.choice((0, 1, 3))}
    if rng.random() < 0.7:
        equivocation["forgive"] = rng.choice((0, 1, 1, 2))
    return charter(
        policy=rng.choice(("open", "open", "sponsored", "vote")),
        sponsors=rng.randint(1, 3),
        decisions=decisions,
        roles=roles,
        offences=offences,
        equivocation=equivocation,
    )


@dataclass
class Agent:
    id: bytes
    head: tuple[int, bytes | None]
    horizon: int = 1  # sees items[:horizon] of the global list, plus its own
    own: list[int] = field(default_factory=list)
    stranger: bool = False  # never applies
    frozen: bool = False  # its chain waits on a dep that never arrives
    rival: Item | None = None  # a ghost at the seq of its next kept action: the two make a parted proof


@dataclass
class History:
    genesis: Action
    items: list[Item]  # generation order (a causal order); the genesis is not in it
    ghosts: frozenset[bytes]
    founders: list[bytes]
    agents: list[bytes]
    strangers: frozenset[bytes]
    liar: bytes | None
    missing: frozenset[bytes]  # ids named as deps that never arrive
    wrong_claims: set[bytes]
    moves: Counter[str]
    # tally id -> (claimed, what the simulator's fold previewed, the fold's verdict then)
    claims: dict[bytes, tuple[str, str, str | None]] = field(default_factory=dict)

    @property
    def by_id(self) -> dict[bytes, Item]:
        d = {it.id: it for it in self.items}
        d[self.genesis.id] = Item.of(self.genesis)
        return d

    def without(self, authors: Iterable[bytes]) -> list[Item]:
        drop = set(authors)
        return [it for it in self.items if it.author not in drop]


class Simulator:
    def __init__(
        self,
        seed: int,
        *,
        founders: int,
        outsiders: int,
        custom_charter: bool,
        moves: Iterable[str] = MOVES,
        strangers: int = 2,
        equivocations: bool = True,
    ) -> None:
        self.rng = rng = random.Random(seed)
        self.seed = seed
        self.moves = set(moves)
        self.equivocations = equivocations
        self.charter = random_charter(rng) if custom_charter else None
        founder_ids = [make_id("sim-founder", seed, i) for i in range(founders)]
        self.genesis = genesis(charter_=self.charter, founders=founder_ids, ts=TS0)
        g = Item.of(self.genesis)
        self.global_: list[Item] = [g]
        self.index: dict[bytes, int] = {g.id: 0}
        self.by_id: dict[bytes, Item] = {g.id: g}
        self.ghosts: set[bytes] = set()
        self.fold = Fold(self.genesis, snapshot_every=8)
        self.agents = [Agent(FOUNDER_KEY.public_key, (1, g.id), own=[0])]
        self.agents += [Agent(f, (0, None)) for f in founder_ids]
        self.agents += [Agent(make_id("sim-outsider", seed, i), (0, None)) for i in range(outsiders)]
        n_strangers = strangers if "strangers" in self.moves else 0
        self.strangers = [Agent(make_id("sim-stranger", seed, i), (0, None), stranger=True) for i in range(n_strangers)]
        self.founders = [FOUNDER_KEY.public_key, *founder_ids]
        members = self.agents[: 1 + founders]
        self.liar = rng.choice(members).id if "liar" in self.moves else None
        self.clock = TS0
        self.missing: set[bytes] = set()
        self.wrong_claims: set[bytes] = set()
        self.claims: dict[bytes, tuple[str, str, str | None]] = {}
        self.votes_on: dict[bytes, list[bytes]] = {}
        self.stats: Counter[str] = Counter()
        self._n = 0

    # ---- plumbing ----

    def sees(self, a: Agent, x: bytes) -> bool:
        i = self.index.get(x)
        return i is not None and (i < a.horizon or i in a.own)

    def see(self, a: Agent, x: bytes) -> None:
        """Let ``a`` catch up far enough to have seen ``x``."""
        i = self.index[x]
        if i >= a.horizon and i not in a.own:
            a.horizon = i + 1

    def usable(self, x: Item, a: Agent) -> bool:
        """What an honest client could name: folded, not a proof, not a stranger's, not its own."""
        return x.kind != EQUIVOCATION and x.author != a.id and x.id in self.fold.height and x.author not in self.stranger_ids

    @property
    def stranger_ids(self) -> set[bytes]:
        return {s.id for s in self.strangers}

    def recent(self, a: Agent, upto: int | None = None) -> list[bytes]:
        top = a.horizon if upto is None else upto
        k = self.rng.choice((1, 1, 2, 3, 5, 8, 32))
        cand = [self.global_[i].id for i in range(max(0, top - 40), top) if self.usable(self.global_[i], a)]
        return cand[-k:] if self.rng.random() < 0.7 else self.rng.sample(cand, min(k, len(cand)))

    def stamp(self, a: Agent) -> int:
        ts = max(0, self.clock + self.rng.randint(-3_600_000, 3_600_000))
        if a.id == self.liar and self.rng.random() < 0.5:
            ts = self.clock + self.rng.choice((1, -1, 3, 10)) * self.rng.randint(1, 5) * DAY_MS
        elif a.stranger and self.rng.random() < 0.6:
            ts = self.clock + self.rng.randint(2, 3650) * DAY_MS
        return max(0, ts)

    def make(
        self,
        a: Agent,
        kind: str,
        body: Any,
        extra: Sequence[bytes] = (),
        *,
        commit: bool = True,
        deps: Sequence[bytes] | None = None,
        ts: int | None = None,
    ) -> Item:
        self._n += 1
        seq, prev = a.head
        if deps is None:
            deps = list(dict.fromkeys([*extra, *self.recent(a)]))
        deps = [d for d in dict.fromkeys(deps) if d != prev][:32]
        if not deps and prev is None:
            deps = [self.genesis.id]
        body = canon(body)
        check_governance_body(kind, body)
        iid = hashlib.sha256(b"sim-item|%d|%d" % (self.seed, self._n)).digest()
        it = Item(iid, a.id, seq + 1, prev, tuple(sorted(deps)), self.stamp(a) if ts is None else ts, kind, body)
        if commit:
            self.commit(a, it)
        return it

    def commit(self, a: Agent, it: Item, *, ghost: bool = False) -> None:
        if not ghost:
            a.head = (it.seq, it.id)
        self.index[it.id] = len(self.global_)
        a.own.append(len(self.global_))
        self.global_.append(it)
        self.by_id[it.id] = it
        if ghost:
            self.ghosts.add(it.id)
        self.fold.add_items([it], ghosts={it.id} if ghost else set())
        if not ghost and a.rival is not None and a.rival.seq == it.seq:
            # the kept side's next action and the displaced device's: a proof whose prevs differ
            self.push_proof(proof_item(*sorted((it, a.rival), key=lambda i: i.id)))
            a.rival = None

    def push_proof(self, p: Item) -> None:
        self.index[p.id] = len(self.global_)
        self.global_.append(p)
        self.by_id[p.id] = p
        self.fold.add_items([p])

    def status(self, who: bytes) -> str:
        return self.fold.state.status(who)

    def good(self, who: bytes) -> bool:
        return self.fold.in_good_standing(who, self.fold.now())

    def members_in_good_standing(self) -> list[Agent]:
        return [a for a in self.agents if not a.frozen and self.good(a.id)]

    def items_of_kind(self, a: Agent, kind: str) -> list[Item]:
        return [self.global_[i] for i in range(a.horizon) if self.global_[i].kind == kind]

    # ---- one step ----

    def step(self) -> None:
        rng = self.rng
        self.clock += rng.randint(0, HOUR_MS)
        r = rng.random()
        specials = [
            ("disputes", 0.12, self.dispute),
            ("mutual", 0.01, self.mutual),
            ("strangers", 0.06, self.stranger_move),
            ("missing", 0.01, self.missing_dep),
            ("sanctioned", 0.1, self.sanctioned_move),
            ("backdate", 0.03, self.backdated_vote),
            ("ghosts", 0.012, self.fork_with_ghost),
            ("stale", 0.05, self.stale_move),
            ("campaign", 0.05, self.campaign),
        ]
        for name, p, fn in specials:
            if name in self.moves:
                if r < p:
                    if fn():
                        self.stats[name] += 1
                    return
                r -= p
        if r < 0.04:
            self.witness_round()
            return
        self.agent_step(rng.choice([a for a in self.agents if not a.frozen]))

    def agent_step(self, a: Agent) -> None:
        rng = self.rng
        a.horizon = len(self.global_) if rng.random() < 0.4 else rng.randint(a.horizon, len(self.global_))
        status = self.status(a.id)
        r = rng.random()
        if status in ("none", "left"):
            if r < 0.6:
                self.make(a, APPLY, {"note": "hello"} if rng.random() < 0.5 else {})
                return
        elif status == "applicant":
            if r < 0.08:
                self.make(a, LEAVE, {})
                return
            if r < 0.7:
                return  # waiting to be admitted
        elif status == "member" and r < 0.015:
            self.make(a, LEAVE, {})
            return
        r = rng.random()
        if self.equivocations and r < 0.006 and status != "none":
            self.equivocate(a)
        elif r < 0.12:
            self.open_proposal(a)
        elif r < 0.52:
            self.vote(a)
        elif r < 0.7:
            self.tally(a)
        elif r < 0.78:
            self.sponsor(a)
        elif r < 0.95:
            self.make(a, rng.choice(APP_KINDS), {"n": self._n})
        elif r < 0.97:
            self.make(a, SEEN, {})
        else:
            self.make(a, APPLY, {})

    def witness_round(self) -> None:
        """Three members in good standing stamp the current time (the co-op clock catches up)."""
        good = self.members_in_good_standing()
        for a in self.rng.sample(good, min(3, len(good))):
            a.horizon = len(self.global_)
            self.make(a, SEEN, {}, ts=self.clock)

    # ---- ordinary moves ----

    def fork_bodies(self, a: Agent) -> tuple[str, Any, Any]:
        """What the two sides of a fork say: an everyday action, a member.seen, or two votes (or two
        tallies) on one proposal that say different things."""
        r = self.rng.random()
        p = self.pick_proposal(a) if r < 0.4 else None
        if p is not None and r < 0.25:
            return VOTE, {"proposal": p.id, "choice": "yes"}, {"proposal": p.id, "choice": "no"}
        if p is not None:
            return TALLY, {"proposal": p.id, "outcome": "passed"}, {"proposal": p.id, "outcome": "rejected"}
        if r < 0.5:
            return SEEN, {}, {}
        kind = self.rng.choice(APP_KINDS)
        return kind, {"fork": 1}, {"fork": 2}

    def equivocate(self, a: Agent, *, ghost: bool = False) -> tuple[Item, Item]:
        """Two actions at ``a``'s next seq; keep the smaller id, publish the proof (and, ``ghost``,
        the displaced one, which others may then build on, and which its author may even extend once
        before going back to the kept side). Returns (kept, displaced)."""
        head = a.head
        kind, one, two = self.fork_bodies(a)
        x = self.make(a, kind, one, [one["proposal"]] if "proposal" in one else (), commit=False)
        y = self.make(a, kind, two, [two["proposal"]] if "proposal" in two else (), commit=False)
        assert a.head == head
        c, other = sorted((x, y), key=lambda i: i.id)
        self.commit(a, c)
        if ghost:
            self.commit(a, other, ghost=True)
            if self.rng.random() < 0.3:  # the displaced device goes on once: a ghost too
                kept_head, a.head = a.head, (other.seq, other.id)
                a.rival = self.make(a, SEEN, {}, commit=False)
                self.commit(a, a.rival, ghost=True)
                a.head = kept_head
        self.push_proof(proof_item(c, other))
        return c, other

    def open_proposal(
        self, a: Agent, *, ptype: str | None = None, target: bytes | None = None, deps: Sequence[bytes] | None = None
    ) -> Item:
        rng = self.rng
        s = self.fold.state
        ptype = ptype or rng.choice(PTYPES)
        extra: list[bytes] = []
        mine = [x for x in s.sanctions.values() if x.member == a.id and x.lifted_by is None and self.sees(a, x.imposed_by)]
        if mine and rng.random() < 0.3:
            ptype = "lift"
        members = [k for k, m in s.members.items() if m.status == MEMBER]
        if ptype == "admit":
            applicants = [k for k, m in s.members.items() if m.status == "applicant"]
            target = rng.choice(applicants) if applicants and rng.random() < 0.9 else rng.choice(self.agents).id
            if target in s.members and deps is None:
                extra.append(s.members[target].since)
            payload: dict[str, Any] = {"member": target}
        elif ptype == "amend":
            payload = {"charter": random_charter(rng)}
        elif ptype == "sanction":
            target = target or (rng.choice(members) if members else a.id)
            clauses = sorted(s.charter["offences"])
            clause = rng.choice(clauses) if clauses and rng.random() < 0.95 else "unknown_offence"
            own = [self.global_[i].id for i in range(a.horizon) if self.global_[i].author == target]
            evidence = own[len(own) - rng.randint(0, min(3, len(own))) :]
            payload = {"member": target, "clause": clause, "evidence": evidence}
        elif ptype == "lift":
            live = [x for x in s.sanctions.values() if x.lifted_by is None]
            x = rng.choice(mine) if mine and rng.random() < 0.7 else (rng.choice(live) if live else None)
            sid = x.id if x is not None else make_id("no-sanction", self._n)
            if x is not None and x.imposed_by in self.index and deps is None:
                extra.append(x.imposed_by)
            payload = {"sanction": sid}
        elif ptype == "federate":
            coop = self.genesis.id if rng.random() < 0.05 else rng.choice(OTHER_COOPS)
            payload = {"coop": coop, "terms": {"share": rng.choice(("rides", "food"))}}
        elif ptype == "unfederate":
            feds = sorted(s.federations)
            if feds and deps is None:
                extra.append(s.federations[feds[0]][1])
            payload = {"coop": feds[0] if feds and rng.random() < 0.8 else rng.choice(OTHER_COOPS)}
        elif ptype == "role":
            roles = sorted(s.charter["roles"])
            role = rng.choice(roles) if rng.random() < 0.9 else "pilot"
            target = rng.choice(members) if members else a.id
            payload = {"member": target, "role": role, "grant": rng.random() < 0.8}
        else:
            payload = {}
        for x in extra:
            self.see(a, x)
        body = {"type": ptype, "title": f"{ptype} #{self._n}", "payload": payload}
        return self.make(a, OPEN, body, extra, deps=deps)

    def pick_proposal(self, a: Agent) -> Item | None:
        s = self.fold.state
        opens = [it for it in self.items_of_kind(a, OPEN) if it.id in s.proposals]
        if not opens:
            return None
        live = [it for it in opens if s.proposals[it.id].status == "open"]
        pool = live if live and self.rng.random() < 0.9 else opens
        return self.rng.choice(pool[-3:] if self.rng.random() < 0.75 else pool)

    def vote(self, a: Agent, p: Item | None = None, **kw: Any) -> Item | None:
        p = p or self.pick_proposal(a)
        if p is None:
            return None
        ptype = p.body["type"]
        weights = (6, 2, 1, 1) if ptype in ("sanction", "lift", "admit", "role") else (5, 3, 1, 1)
        choice = self.rng.choices(CHOICES, weights)[0]
        it = self.make(a, VOTE, {"proposal": p.id, "choice": choice}, [p.id], **kw)
        if not a.stranger:  # what members name as deps; nobody builds on a stranger's actions
            self.votes_on.setdefault(p.id, []).append(it.id)
        return it

    def tally(self, a: Agent, p: Item | None = None, deps: Sequence[bytes] | None = None) -> Item | None:
        p = p or self.pick_proposal(a)
        if p is None:
            return None
        if deps is None:
            seen_votes = [v for v in self.votes_on.get(p.id, []) if self.sees(a, v)]
            deps = list(dict.fromkeys([p.id, *seen_votes[-24:], *self.recent(a)]))
        it = self.make(a, TALLY, {"proposal": p.id, "outcome": "open"}, deps=deps, commit=False)
        prop = self.fold.state.proposals.get(p.id)
        ready = prop is not None and all(x in self.fold.height for x in it.parents)
        computed = self.fold.preview(p.id, it.parents)[0] if ready else "open"
        claim = computed
        if self.rng.random() < 0.1:
            claim = self.rng.choice([o for o in ("passed", "rejected", "open") if o != claim])
            self.wrong_claims.add(it.id)
        it = Item(it.id, it.author, it.seq, it.prev, it.deps, it.ts, it.kind, canon({"proposal": p.id, "outcome": claim}))
        self.commit(a, it)
        self.claims[it.id] = (claim, computed, self.fold.results.get(it.id))
        return it

    def sponsor(self, a: Agent, **kw: Any) -> Item:
        s = self.fold.state
        applicants = [k for k, m in s.members.items() if m.status == "applicant"]
        target = self.rng.choice(applicants) if applicants and self.rng.random() < 0.9 else self.rng.choice(self.agents).id
        extra = [s.members[target].since] if target in s.members and "deps" not in kw else []
        for x in extra:
            self.see(a, x)
        return self.make(a, SPONSOR, {"member": target}, extra, **kw)

    # ---- adversarial moves (each returns whether it did something) ----

    def stale_move(self) -> bool:
        """A member names only old actions as deps (their own chain still says what they saw)."""
        a = self.rng.choice([a for a in self.agents if not a.frozen])
        upto = self.rng.randint(1, max(1, len(self.global_) // 2))
        deps = self.recent(a, upto) or [self.genesis.id]
        kind = self.rng.choice(("app", VOTE, OPEN, SPONSOR, TALLY, SEEN))
        return self._act_with(a, kind, deps)

    def _act_with(self, a: Agent, kind: str, deps: list[bytes]) -> bool:
        if kind == "app":
            self.make(a, self.rng.choice(APP_KINDS), {"n": self._n}, deps=deps)
        elif kind == VOTE:
            p = self.pick_proposal(a)
            if p is None:
                return False
            # sometimes without the proposal among the deps: it may not even be in the past
            self.vote(a, p, deps=[p.id, *deps] if self.rng.random() < 0.8 else deps)
        elif kind == OPEN:
            self.open_proposal(a, deps=deps)
        elif kind == SPONSOR:
            self.sponsor(a, deps=deps)
        elif kind == TALLY:
            p = self.pick_proposal(a)
            if p is None:
                return False
            self.tally(a, p, deps=[p.id, *deps])
        else:
            self.make(a, kind, {} if kind in (SEEN, LEAVE) else {"note": "again"}, deps=deps)
        return True

    def sanctioned_move(self) -> bool:
        """A sanctioned member acts, mostly with deps from before the decision that sanctioned them."""
        s = self.fold.state
        live = [x for x in s.sanctions.values() if x.kind in ("suspend", "expel") and x.imposed_by in self.index]
        if not live:
            return False
        x = self.rng.choice(live)
        a = next((a for a in self.agents if a.id == x.member and not a.frozen), None)
        if a is None:
            return False
        upto = self.index[x.imposed_by] if self.rng.random() < 0.8 else len(self.global_)
        deps = self.recent(a, upto) or [self.genesis.id]
        kind = self.rng.choice(("app", "app", VOTE, OPEN, SPONSOR, TALLY, SEEN, APPLY, LEAVE))
        return self._act_with(a, kind, deps)

    def backdated_vote(self) -> bool:
        """A vote stamped well before now, with stale deps (the proposal and little else)."""
        a = self.rng.choice([a for a in self.agents if not a.frozen])
        p = self.pick_proposal(a)
        if p is None:
            return False
        ts = max(0, self.clock - self.rng.randint(1, 72) * HOUR_MS)
        self.vote(a, p, deps=[p.id], ts=ts)
        return True

    def fork_with_ghost(self) -> bool:
        """A member forks their chain and others build on the displaced side (a ghost)."""
        cands = [a for a in self.agents if not a.frozen and self.status(a.id) != "none"]
        if not cands:
            return False
        a = self.rng.choice(cands)
        _, other = self.equivocate(a, ghost=True)
        for b in self.rng.sample(self.agents, min(len(self.agents), self.rng.randint(1, 3))):
            if b is not a and not b.frozen:
                kind = self.rng.choice((*APP_KINDS, SEEN))
                self.make(b, kind, {} if kind == SEEN else {"n": self._n}, deps=[other.id])
        return True

    def stranger_move(self) -> bool:
        """A key the co-op does not know acts: any kind, far-future stamps, sometimes a fork."""
        if not self.strangers:
            return False
        a = self.rng.choice(self.strangers)
        if a.frozen:
            return False
        a.horizon = len(self.global_)
        r = self.rng.random()
        if r < 0.15:
            self.equivocate(a, ghost=self.rng.random() < 0.5)
        elif r < 0.3:
            p = self.pick_proposal(a)
            if p is not None:
                self.vote(a, p)
        elif r < 0.4:
            p = self.pick_proposal(a)
            if p is not None:
                self.make(a, TALLY, {"proposal": p.id, "outcome": self.rng.choice(("passed", "rejected"))}, [p.id])
        elif r < 0.5:
            self.open_proposal(a, ptype="text")
        elif r < 0.6:
            self.make(a, SEEN, {})
        elif r < 0.65:
            self.missing_dep(a)
        else:
            self.make(a, self.rng.choice(APP_KINDS), {"n": self._n})
        return True

    def missing_dep(self, a: Agent | None = None) -> bool:
        """An action naming an action that never arrives (another co-op's, or made up): it and its
        author's later actions wait for good."""
        if a is None:
            live = [a for a in self.agents if not a.frozen]
            if len(live) < 4:
                return False
            a = self.rng.choice(live)
        gone = make_id("never arrives", self.seed, self._n)
        self.missing.add(gone)
        self.make(a, self.rng.choice(APP_KINDS), {"n": self._n}, [gone])
        a.frozen = True
        return True

    def dispute(self) -> bool:
        """A proposal gets a burst of votes; three witnesses who saw only the proposal let its window
        close; then two members tally it concurrently, one counting every vote and one a part of the
        vote chosen so that it decides the other way (when such a part exists)."""
        s = self.fold.state
        good = self.members_in_good_standing()
        live = [pid for pid, p in s.proposals.items() if p.status == "open" and p.closes > self.clock]
        if not live or len(good) < 2:
            return False
        pid = self.rng.choice(live)
        p = s.proposals[pid]
        electors = [a for a in good if a.id in p.electorate]
        for a in [a for a in electors if self.rng.random() < 0.8]:
            a.horizon = max(a.horizon, self.index[pid] + 1)
            choice = self.rng.choice(("yes", "yes", "yes", "yes", "no", "block", "abstain"))
            v = self.make(a, VOTE, {"proposal": pid, "choice": choice}, [pid], ts=min(self.clock, p.closes - 1))
            self.votes_on.setdefault(pid, []).append(v.id)
        self.clock = max(self.clock, p.closes + HOUR_MS)
        witnesses = [self.make(w, SEEN, {}, deps=[pid], ts=self.clock).id for w in self.rng.sample(good, min(3, len(good)))]
        votes = [v for v in self.votes_on.get(pid, []) if v in self.fold.height]
        t1, t2 = self.rng.sample(good, 2)
        first = self.tally(t1, self.by_id[pid], deps=[pid, *witnesses, *votes[-29:]])
        assert first is not None
        claim, part = first.body["outcome"], votes
        for k in (0, 1, 2, *(self.rng.randint(0, max(0, len(votes) - 1)) for _ in range(5))):
            part = self.rng.sample(votes, min(k, max(0, len(votes) - 1)))[:29]
            head = [t2.head[1]] if t2.head[1] is not None else []
            other = self.fold.preview(pid, [pid, *witnesses, *part, *head])[0]
            if other != claim and other != "open":
                break
        self.tally(t2, self.by_id[pid], deps=[pid, *witnesses, *part])
        return True

    def campaign(self) -> bool:
        """The electors of an open proposal turn out and mostly vote yes; once its window has
        closed one of them tallies everything (so that proposals of every type get decided)."""
        s = self.fold.state
        live = [pid for pid, p in s.proposals.items() if p.status == "open" and p.closes > self.clock]
        if not live:
            return False
        pid = self.rng.choice(live)
        p = s.proposals[pid]
        voters = [a for a in self.members_in_good_standing() if a.id in p.electorate]
        if not voters:
            return False
        for a in voters:
            a.horizon = max(a.horizon, self.index[pid] + 1)
            choice = self.rng.choice(("yes", "yes", "yes", "yes", "no", "abstain"))
            v = self.make(a, VOTE, {"proposal": pid, "choice": choice}, [pid], ts=min(self.clock, p.closes - 1))
            self.votes_on.setdefault(pid, []).append(v.id)
        self.clock = max(self.clock, p.closes + HOUR_MS)
        good = self.members_in_good_standing()
        witnesses = []
        for w in self.rng.sample(good, min(3, len(good))):
            w.horizon = len(self.global_)
            witnesses.append(self.make(w, SEEN, {}, ts=self.clock).id)
        votes = [v for v in self.votes_on.get(pid, []) if v in self.fold.height]
        self.tally(self.rng.choice(good), self.by_id[pid], deps=[pid, *witnesses, *votes[-28:]])
        return True

    def mutual(self) -> bool:
        """Two members open sanctions on each other at the same moment."""
        good = self.members_in_good_standing()
        if len(good) < 2:
            return False
        a, b = self.rng.sample(good, 2)
        deps = self.recent(a) or [self.genesis.id]
        self.open_proposal(a, ptype="sanction", target=b.id, deps=deps)
        self.open_proposal(b, ptype="sanction", target=a.id, deps=deps)
        return True

    def run(self, n: int) -> History:
        while len(self.global_) - 1 < n:
            self.step()
        return History(
            self.genesis,
            self.global_[1:],
            frozenset(self.ghosts),
            self.founders,
            [a.id for a in self.agents],
            frozenset(self.stranger_ids),
            self.liar,
            frozenset(self.missing),
            self.wrong_claims,
            self.stats,
            self.claims,
        )


def simulate(
    seed: int,
    n: int,
    *,
    founders: int = 3,
    outsiders: int = 6,
    custom_charter: bool = True,
    moves: Iterable[str] = MOVES,
    strangers: int = 2,
    equivocations: bool = True,
) -> History:
    sim = Simulator(
        seed,
        founders=founders,
        outsiders=outsiders,
        custom_charter=custom_charter,
        moves=moves,
        strangers=strangers,
        equivocations=equivocations,
    )
    return sim.run(n)


# ---- delivery orders -------------------------------------------------------------------------------


def causal_shuffle(items: Sequence[Item], rng: random.Random, *, glue_proofs: bool = False) -> list[Item]:
    """A random order in which every item comes after its parents (those in ``items``).

    ``glue_proofs``: each equivocation proof comes right after its canonical action, as when the
    node that sees the fork gossips the proof with it.
    """
    proofs = {it.deps[0]: it for it in items if it.kind == EQUIVOCATION} if glue_proofs else {}
    glued = {p.id for p in proofs.values()}
    items = [it for it in items if it.id not in glued]
    ids = {it.id for it in items}
    waiting: dict[bytes, int] = {}
    children: dict[bytes, list[Item]] = {}
    ready: list[Item] = []
    for it in items:
        ps = [p for p in set(it.parents) if p in ids]
        waiting[it.id] = len(ps)
        for p in ps:
            children.setdefault(p, []).append(it)
        if not ps:
            ready.append(it)
    out: list[Item] = []
    while ready:
        it = ready.pop(rng.randrange(len(ready)))
        out.append(it)
        if it.id in proofs:
            out.append(proofs[it.id])
        for c in children.get(it.id, ()):
            waiting[c.id] -= 1
            if waiting[c.id] == 0:
                ready.append(c)
    # items waiting on something that never arrives, in their given order
    out += [it for it in items if waiting[it.id] > 0]
    assert len(out) == len(items) + len(glued)
    return out


def batches(items: Sequence[Item], rng: random.Random) -> list[list[Item]]:
    out: list[list[Item]] = []
    i = 0
    while i < len(items):
        k = rng.choice((1, 1, 2, 3, 5, 8, 20))
        out.append(list(items[i : i + k]))
        i += k
    return out


def fold_in(genesis: Action, deliveries: Iterable[Sequence[Item]], ghosts: Iterable[bytes] = (), *, snapshot_every: int = 2000) -> Fold:
    g = frozenset(ghosts)
    f = Fold(genesis, snapshot_every=snapshot_every)
    for batch in deliveries:
        f.add_items(list(batch), ghosts={it.id for it in batch if it.id in g})
    return f


def summary(f: Fold) -> tuple[bytes, dict[bytes, str | None], int]:
    return f.state_hash(), dict(f.results), f.deferred
