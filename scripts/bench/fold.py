#!/usr/bin/env python3
"""Governance fold benchmark: how fast a co-op's state is folded from its actions.

What it does, in order:

1. Measures, single-threaded in this process, the raw Ed25519 verification rate of libsodium
   (``nacl.bindings.crypto_sign_open``): the cost of admitting an action in the first place, the
   figure the fold rate is compared with.
2. Generates a realistic governance history, deterministically (``--seed``): a genesis with a
   charter and founders; members joining under an open policy, then by admission vote once an
   amendment switches the policy; proposals of every type (text, role, federate, unfederate, amend,
   sanction, lift, admit) with votes from part of the electorate (some members change their vote),
   tallies that claim "open" until the votes are decisive and then the exact outcome; equivocation
   proofs (automatic suspensions) and appeals; application actions (ride.*, order.*, delivery.*,
   message.post, stock.adjust for coordinators); and a trickle of actions the co-op's rules reject
   (non-members, suspended members, missing permissions, votes on closed proposals, wrong tally
   claims). Actions are built as ``protocol.governance.Item`` objects with random 32-byte ids and
   authors: signatures are not what this measures. The history is built in causal layers: each
   action depends on one action of the layer before and on a few unreferenced recent ones (at most
   4 deps besides the proposal a vote or tally names); actions of one layer are concurrent. Tally
   claims are computed by an oracle fold fed one action at a time in fold order, so every claim is
   the one every node must compute.
3. (a) Folds all items from scratch with one ``Fold.add_items`` call (the node's catch-up path).
4. (c) Adds a late action whose deps put it ~1,000 / 10,000 / 50,000 actions before the tip, and
   reports the time and the ``Fold.refolded`` delta beside the snapshot interval.
5. (b) Folds all but the last ``--incremental`` items, then adds those one at a time: in arrival
   order (concurrent actions arrive in any order) and in fold order (every add is an append).
6. (d) Measures peak memory with tracemalloc on a separate fold of all items (the fold's own
   structures, and the items it holds), beside the process's peak RSS.
7. Profiles (cProfile) a fresh fold of the first ``--profile-actions`` items and lists the
   functions that dominate.

Usage (from the repository root)::

    python scripts/bench/fold.py                              # 100,000 actions, ~4 minutes
    python scripts/bench/fold.py --actions 20000 --no-memory  # quick
    python scripts/bench/fold.py --snapshot-every 500 --json

Pure computation in one process: no network, nothing written. (b) in arrival order stops after
``--incremental-budget`` seconds when each add re-folds a lot; the report says how many it did.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import dataclasses
import gc
import hashlib
import io
import json
import os
import pickle
import platform
import pstats
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair  # noqa: E402

from protocol import Action, SigningKey, codec, sign_genesis  # noqa: E402
from protocol.charter import APPLY, LEAVE, OPEN, OUTCOMES, SPONSOR, TALLY, VOTE, check_governance_body  # noqa: E402
from protocol.governance import APPLICANT, EQUIVOCATION, MEMBER, SNAPSHOT_EVERY, Fold, Item  # noqa: E402

TS0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, fixed so every run builds the same history
LAYER_MS = 20 * 60 * 1000  # causal layers are ~20 minutes apart: 100,000 actions span ~8 months
WINDOW_MIN = 24 * 60  # every proposal's voting window: a day of co-op time, 72 layers
WINDOW_LAYERS = WINDOW_MIN * 60_000 // LAYER_MS
MAX_LAYERS = 10_000_000  # bound on the generator's main loop
FOUNDERS = 40  # the genesis author and 39 more (a genesis names at most 64)
RESERVED = 8  # founders who never act during the history: authors of the late actions in (c)
MAX_INFLIGHT = 2  # proposals being voted on at once (admissions have their own allowance)
MAX_ADMITS = 2
VOTES_PER_LAYER = 0.8  # how fast one proposal's voters turn up
REVOTE_SHARE = 0.08  # voters who change their vote later
MISBEHAVE_SHARE = 0.004  # spontaneous actions the co-op's rules reject
LATE_BACK = (1_000, 10_000, 50_000)
TARGET_FRESH_S = 10.0  # issue #9: 100,000 actions folded from scratch in under 10 s
PROFILE_TOP = 14

APP_KINDS = ("ride.offer", "ride.request", "ride.confirm", "order.place", "order.cancel", "delivery.slot", "message.post")
APP_WEIGHTS = (18, 14, 10, 22, 3, 15, 18)
CITIES = ("Lyon", "Villeurbanne", "Vénissieux", "Bron", "Caluire", "Oullins", "Écully", "Meyzieu")
PRODUCE = ("apples", "carrots", "eggs", "goat cheese", "bread", "honey", "leeks", "milk", "lentils", "pears")
TITLES = (
    "Open the hub on Saturday mornings",
    "Buy a cold room",
    "Share the delivery van with the bakery",
    "Pay pickers a fair hourly rate",
    "Move the weekly meeting to Thursday",
    "Adopt a zero-waste packaging policy",
    "Donate unsold produce to the food bank",
    "Add a second pickup point in Bron",
    "Raise the membership fee by two euros",
    "Trial an evening delivery slot",
)


def canonical(value: object) -> Any:
    """``value`` as the decoder would give it (maps sorted, arrays as tuples)."""
    return codec.decode(codec.encode(value))


def charter(policy: str, text_threshold: str) -> dict[str, Any]:
    member_perms = ["propose", "vote", "tally", "sponsor", "ride.*", "order.*", "delivery.*", "message.*"]
    return canonical(
        {
            "membership": {"policy": policy, "sponsors": 2},
            "decisions": {
                "default": {"minutes": WINDOW_MIN, "quorum": 20, "threshold": "majority"},
                "admit": {"minutes": WINDOW_MIN, "quorum": 5, "threshold": "majority"},
                "amend": {"minutes": WINDOW_MIN, "quorum": 30, "threshold": "two_thirds"},
                "sanction": {"minutes": WINDOW_MIN, "quorum": 20, "threshold": "two_thirds"},
                "lift": {"minutes": WINDOW_MIN, "quorum": 15, "threshold": "majority"},
                "federate": {"minutes": WINDOW_MIN, "quorum": 25, "threshold": "majority"},
                "text": {"minutes": WINDOW_MIN, "quorum": 10, "threshold": text_threshold},
            },
            "roles": {"member": member_perms, "coordinator": ["tally", "stock.*", "delivery.*"]},
            "offences": {
                "no_show": {"sanction": "suspend", "days": 14, "text": "Missed a booked delivery or ride without notice"},
                "double_booking": {"sanction": "suspend", "days": 30, "text": "Booked one delivery slot twice"},
                "fraud": {"sanction": "expel", "days": 0, "text": "Took payment for produce never delivered"},
            },
            "equivocation": {"sanction": "suspend", "days": 30},
        }
    )


def say(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)


# ---- machine limit -------------------------------------------------------------------------------


def ed25519_rate(seconds: float) -> tuple[float, float]:
    """Single-core libsodium verifications per second over ~``seconds``: per wall second and per
    CPU second of this process (the second is what the machine can do when others compete)."""
    batch: list[tuple[bytes, bytes]] = []
    for i in range(64):
        pk, sk = crypto_sign_seed_keypair(hashlib.sha256(b"fold bench key %d" % i).digest())
        msg = hashlib.sha512(b"envelope %d" % i).digest() * 3  # ~190 bytes, like an action envelope
        batch.append((crypto_sign(msg, sk), pk))
    for signed, pk in batch[:8]:
        crypto_sign_open(signed, pk)
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    for _ in range(10_000_000 // len(batch) + 1):
        for signed, pk in batch:
            crypto_sign_open(signed, pk)
        n += len(batch)
        if time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


# ---- the history ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """A proposal being voted on: how many more final tallies it gets if votes fall short."""

    retries: int = 3
    admit: bool = False


@dataclass(slots=True)
class Event:
    kind: str  # vote | tally | appeal
    pid: bytes = b""
    who: bytes = b""
    choice: str = ""
    final: bool = False


@dataclass
class History:
    n: int
    members: int
    seed: int
    max_width: int
    items: list[Item] = field(default_factory=list)  # arrival order: layer by layer, shuffled within a layer
    layers: int = 0
    results: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    tallies: Counter[str] = field(default_factory=Counter)  # claimed outcomes of applied tallies
    proposals: Counter[str] = field(default_factory=Counter)  # types of applied proposals
    genesis: Action | None = None
    reserved: list[bytes] = field(default_factory=list)
    state_hash: bytes = b""
    seconds: float = 0.0


class Generator:
    """Builds a History. The oracle fold sees every item in fold order, one at a time, so tally
    claims and the generator's view of who may act are exactly what every node computes."""

    def __init__(self, n: int, members: int, seed: int, max_width: int) -> None:
        self.h = History(n, members, seed, max_width)
        self.rng = random.Random(seed)
        key = SigningKey.from_seed(hashlib.sha256(b"coopnet fold bench genesis %d" % seed).digest())
        others = [self.rng.randbytes(32) for _ in range(FOUNDERS - 1)]
        body = {
            "name": "Croix-Rousse Food Hub",
            "purpose": "Short food chains between the farms of the Monts du Lyonnais and the city",
            "charter": charter("open", "consent"),
            "founders": others,
        }
        genesis = sign_genesis(key, ts=TS0, body=body)
        check_governance_body("coop.genesis", genesis.body_value())
        self.h.genesis = genesis
        self.h.reserved = others[:RESERVED]
        self.oracle = Fold(genesis, snapshot_every=1 << 60)  # it never rewinds: no snapshots needed
        self.heads: dict[bytes, tuple[int, bytes]] = {key.public_key: (1, genesis.id)}
        self.pool: list[bytes] = [key.public_key, *others[RESERVED:]]  # everyone who ever joined
        self.joined = len(self.pool) + RESERVED
        self.first_joiner = len(self.pool)  # pool[first_joiner:] joined after the genesis
        self.prev_layer: list[bytes] = [genesis.id]
        self.tips: list[bytes] = []
        self.due: dict[int, list[Event]] = {}
        self.backlog: list[Event] = []
        self.plans: dict[bytes, Plan] = {}
        self.partners = [self.rng.randbytes(32) for _ in range(3)]
        self.recent_closed: list[bytes] = []
        self.admitting: set[bytes] = set()  # applicants with an admit proposal under way
        self.story = sorted(
            [
                (0.03, "text"),
                (0.08, "text"),
                (0.12, "role"),
                (0.18, "federate"),
                (0.30, "amend_vote"),
                (0.45, "sanction"),
                (0.55, "role"),
                (0.62, "federate"),
                (0.70, "fraud"),
                (0.80, "unfederate"),
                (0.86, "amend_majority"),
            ]
        )
        self.proofs_at = [0.22, 0.40, 0.58, 0.77, 0.93]

    # ---- small helpers -------------------------------------------------------------------------

    def good(self, who: bytes, t: int) -> bool:
        return self.oracle.in_good_standing(who, t)

    def permissions(self, who: bytes) -> set[str]:
        m = self.oracle.member_final(who)
        roles = self.oracle.state.charter["roles"]
        return {p for r in (m.roles if m else ()) for p in roles.get(r, ())}

    def pick_member(self, used: set[bytes], t: int, *, perm: str | None = None) -> bytes | None:
        """A member in good standing not yet acting in this layer; early joiners act more."""
        for _ in range(40):
            who = self.pool[int(len(self.pool) * self.rng.random() ** 1.6)]
            if who in used or not self.oracle.in_good_standing(who, t):
                continue
            if perm is not None and perm not in self.permissions(who):
                continue
            return who
        return None

    def deps(self, extra: Sequence[bytes] = ()) -> tuple[bytes, ...]:
        d = {self.rng.choice(self.prev_layer), *extra}
        for _ in range(self.rng.randint(1, 3)):
            if not self.tips:
                break
            i = self.rng.randrange(len(self.tips))
            self.tips[i], self.tips[-1] = self.tips[-1], self.tips[i]
            d.add(self.tips.pop())
        return tuple(sorted(d))

    def item(self, who: bytes, t: int, kind: str, body: Any, extra: Sequence[bytes] = ()) -> Item:
        seq, prev = self.heads.get(who, (0, None))
        it = Item(self.rng.randbytes(32), who, seq + 1, prev, self.deps(extra), t + self.rng.randrange(600_000), kind, body)
        self.heads[who] = (seq + 1, it.id)
        return it

    def app_body(self, kind: str, t: int) -> dict[str, Any]:
        r = self.rng
        if kind.startswith("ride."):
            return {"from": r.choice(CITIES), "to": r.choice(CITIES), "seats": r.randint(1, 4), "at": t + r.randint(1, 96) * 900_000}
        if kind.startswith("order."):
            return {"items": [[r.choice(PRODUCE), r.randint(1, 12)] for _ in range(r.randint(1, 4))], "pickup": r.choice(CITIES)}
        if kind == "delivery.slot":
            return {"slot": r.randint(0, 500), "at": t + r.randint(1, 14) * 86_400_000}
        if kind == "stock.adjust":
            return {"item": r.choice(PRODUCE), "delta": r.randint(-40, 40)}
        return {"text": r.choice(TITLES).lower() + "? " + r.choice(PRODUCE)}

    # ---- proposals -----------------------------------------------------------------------------

    def proposal_body(self, what: str, t: int) -> tuple[str, str, Any] | None:
        """(type, title, payload) for a story beat or a random proposal, or None if it cannot be made."""
        r, s = self.rng, self.oracle.state
        members = [m for m in self.pool[-400:] if self.oracle.in_good_standing(m, t)]
        if what in ("text", "random"):
            if what == "random" and r.random() < 0.35:
                kind = r.choice(("role", "sanction", "text"))
                if kind != "text":
                    return self.proposal_body(kind, t)
            return "text", r.choice(TITLES), {}
        if what == "role" and members:
            return "role", "Make a member coordinator of the cold room", {"member": r.choice(members), "role": "coordinator", "grant": True}
        if what in ("sanction", "fraud") and members:
            who = r.choice(members)
            clause = "fraud" if what == "fraud" else r.choice(("no_show", "double_booking"))
            evidence = [self.heads[who][1]] if who in self.heads else []
            return "sanction", f"Sanction under {clause}", {"member": who, "clause": clause, "evidence": evidence}
        if what == "federate":
            partner = self.partners[0 if not s.federations else 1]
            return (
                "federate",
                "Federate with the Vaise food co-op",
                {"coop": partner, "terms": {"share": ["rides", "orders"], "reciprocity": 1}},
            )
        if what == "unfederate" and s.federations:
            return "unfederate", "End the federation with the Vaise co-op", {"coop": sorted(s.federations)[-1]}
        if what == "amend_vote":
            return "amend", "Admit new members by vote", {"charter": charter("vote", "consent")}
        if what == "amend_majority":
            return "amend", "Decide text proposals by majority", {"charter": charter("vote", "majority")}
        return None

    def plan(self, pid: bytes, layer: int) -> None:
        """Schedule the votes and tallies of a proposal the oracle has just applied."""
        r = self.rng
        p = self.oracle.state.proposals[pid]
        electorate = sorted(set(p.electorate) - set(self.h.reserved))
        if not electorate:
            return
        size = len(p.electorate)
        need = -(-p.quorum * size // 100)
        spread = size * (6 if p.type == "admit" else 18) // 100 + 2
        k = min(len(electorate), need + r.randint(1, spread))
        window = min(max(12, int(k / VOTES_PER_LAYER)), WINDOW_LAYERS - 2)  # votes come while the window is open
        if p.type in ("amend", "federate", "unfederate", "role", "lift"):
            p_yes = 0.8
        elif p.type == "admit":
            p_yes = 0.9
        else:
            p_yes = r.uniform(0.35, 0.9)
        for who in r.sample(electorate, k):
            at = layer + 1 + r.randrange(window)
            choice = self.choice(p_yes, p.threshold)
            self.due.setdefault(at, []).append(Event("vote", pid, who, choice))
            if r.random() < REVOTE_SHARE:
                again = at + 1 + r.randrange(window // 2 + 1)
                other = r.choice([c for c in ("yes", "no", "abstain") if c != choice])
                self.due.setdefault(again, []).append(Event("vote", pid, who, other))
        for share in (0.5, 0.8):  # progress reports: "open" until the window closes or everybody voted
            self.due.setdefault(layer + 1 + int(window * share), []).append(Event("tally", pid))
        self.due.setdefault(layer + WINDOW_LAYERS + 4, []).append(Event("tally", pid, final=True))
        self.plans[pid] = Plan(admit=p.type == "admit")

    def choice(self, p_yes: float, threshold: str) -> str:
        x = self.rng.random()
        if x < p_yes:
            return "yes"
        if threshold == "consent" and x > 0.985:
            return "block"
        return "abstain" if x > 0.9 else "no"

    # ---- one layer -----------------------------------------------------------------------------

    def layer(self, h: int) -> list[Item]:
        r = self.rng
        t = TS0 + h * LAYER_MS
        f = len(self.h.items) / self.h.n
        remaining = self.h.n - len(self.h.items)
        width = min(remaining, r.randint(1, self.h.max_width) + min(len(self.backlog) // 4, self.h.max_width))
        used: set[bytes] = set()
        built: list[Item] = []
        wrong: set[bytes] = set()  # tallies that deliberately claim a wrong outcome
        tallied: set[bytes] = set()

        # An equivocation proof for an action of the layer before: its author is suspended.
        if self.proofs_at and f >= self.proofs_at[0] and width > 1:
            for aid in r.sample(self.prev_layer, len(self.prev_layer)):
                a = self.oracle.items[aid]
                if a.author in self.pool[self.first_joiner :] and self.good(a.author, t):
                    self.proofs_at.pop(0)
                    proof = Item(r.randbytes(32), a.author, a.seq, None, (a.id,), a.ts, EQUIVOCATION, {"a": a.id, "b": r.randbytes(32)})
                    built.append(proof)
                    used.add(a.author)
                    self.due.setdefault(h + r.randint(20, 120), []).append(Event("appeal", proof.id, a.author))
                    break

        events = self.backlog + self.due.pop(h, [])
        self.backlog = []
        for ev in events:
            if len(built) >= width:
                self.backlog.append(ev)
                continue
            it = self.event_item(ev, h, t, used, tallied, wrong)
            if it is not None:
                built.append(it)

        for _ in range(width - len(built)):
            it = self.spontaneous(f, t, used, wrong)
            if it is not None:
                built.append(it)
        if not any(it.kind != EQUIVOCATION for it in built):  # a layer needs an action for the next to depend on
            who = self.pick_member(used, t)
            if who is None:
                return []
            kind = r.choices(APP_KINDS, APP_WEIGHTS)[0]
            built.append(self.item(who, t, kind, self.app_body(kind, t)))

        folded = self.fold_layer(built, wrong)
        self.after_layer(h, folded)
        r.shuffle(folded)
        return folded

    def event_item(self, ev: Event, h: int, t: int, used: set[bytes], tallied: set[bytes], wrong: set[bytes]) -> Item | None:
        r, s = self.rng, self.oracle.state
        if ev.kind == "appeal":
            x = s.sanctions.get(ev.pid)
            if ev.who in used or x is None or x.lifted_by is not None:
                return None
            used.add(ev.who)
            title = "Appeal: my phone sent the slot booking twice"
            return self.item(ev.who, t, OPEN, {"type": "lift", "title": title, "payload": {"sanction": ev.pid}})
        p = s.proposals.get(ev.pid)
        if p is None:
            return None
        if ev.kind == "vote":
            if ev.who in used:
                self.backlog.append(ev)
                return None
            if not self.good(ev.who, t) or (p.status != "open" and r.random() < 0.97):
                return None  # suspended since, or the proposal closed: most voters notice
            used.add(ev.who)
            return self.item(ev.who, t, VOTE, {"proposal": ev.pid, "choice": ev.choice}, (ev.pid,))
        # tally
        plan = self.plans.get(ev.pid)
        if p.status != "open" or plan is None:
            self.plans.pop(ev.pid, None)
            return None
        if ev.pid in tallied:
            self.backlog.append(ev)
            return None
        who = self.pick_member(used, t, perm="tally")
        if who is None:
            self.backlog.append(ev)
            return None
        used.add(who)
        tallied.add(ev.pid)
        it = self.item(who, t, TALLY, {"proposal": ev.pid, "outcome": "open"}, (ev.pid,))
        if ev.final:
            plan.retries -= 1
            if plan.retries > 0:
                self.due.setdefault(h + 10, []).append(Event("tally", ev.pid, final=True))
            else:
                self.plans.pop(ev.pid, None)
        return it

    def spontaneous(self, f: float, t: int, used: set[bytes], wrong: set[bytes]) -> Item | None:
        r, s = self.rng, self.oracle.state
        # 94 % join in the first 30 % of the history (open policy); the rest trickle in after the
        # amendment that admits by vote, each needing an admit proposal.
        settled = self.h.members * 0.94
        if f < 0.3:
            joined_target = FOUNDERS + (settled - FOUNDERS) * f / 0.3
        else:
            joined_target = min(self.h.members, settled + (self.h.members - settled) * (f - 0.3) / 0.6)
        if self.joined < joined_target:
            who = r.randbytes(32)
            self.pool.append(who)
            self.joined += 1
            used.add(who)
            return self.item(who, t, APPLY, {"note": "I shop at the Saturday market"} if r.random() < 0.3 else {})
        if r.random() < MISBEHAVE_SHARE:
            return self.misbehave(t, used, wrong)
        admits = sum(1 for p in self.plans.values() if p.admit)
        if admits < MAX_ADMITS:
            for who in self.pool[-60:]:
                if s.status(who) == APPLICANT and who not in self.admitting:
                    author = self.pick_member(used, t, perm="propose")
                    if author is None:
                        break
                    used.add(author)
                    if (
                        len(s.members[who].sponsors) < 2 and r.random() < 0.5
                    ):  # a sponsor vouches first (it admits only in sponsored co-ops)
                        return self.item(author, t, SPONSOR, {"member": who})
                    self.admitting.add(who)
                    return self.item(author, t, OPEN, {"type": "admit", "title": "Admit a new member", "payload": {"member": who}})
        if len(self.plans) - admits < MAX_INFLIGHT and r.random() < 0.05:
            what = "random"
            if self.story and f >= self.story[0][0]:
                what = self.story.pop(0)[1]
            made = self.proposal_body(what, t)
            author = self.pick_member(used, t, perm="propose")
            if made is not None and author is not None:
                used.add(author)
                ptype, title, payload = made
                return self.item(author, t, OPEN, {"type": ptype, "title": title, "payload": payload})
        who = self.pick_member(used, t)
        if who is None:
            return None
        used.add(who)
        if r.random() < 0.0006:
            return self.item(who, t, LEAVE, {})
        if "stock.*" in self.permissions(who) and r.random() < 0.3:
            return self.item(who, t, "stock.adjust", self.app_body("stock.adjust", t))
        kind = r.choices(APP_KINDS, APP_WEIGHTS)[0]
        return self.item(who, t, kind, self.app_body(kind, t))

    def misbehave(self, t: int, used: set[bytes], wrong: set[bytes]) -> Item | None:
        """One action the co-op's rules reject, of a random sort."""
        r, s = self.rng, self.oracle.state
        sort = r.randrange(8)
        if sort == 0:  # someone who never joined posts an offer
            who = r.randbytes(32)
            used.add(who)
            return self.item(who, t, "ride.offer", self.app_body("ride.offer", t))
        if sort == 1:  # a suspended, expelled or departed member keeps acting
            for who in self.pool[self.first_joiner :]:
                if who not in used and (s.status(who) not in (MEMBER, APPLICANT) or self.oracle.suspended(who, t)):
                    used.add(who)
                    return self.item(who, t, "order.place", self.app_body("order.place", t))
            return None
        who = self.pick_member(used, t)
        if who is None:
            return None
        used.add(who)
        if sort == 2:  # only coordinators may adjust stock
            return self.item(who, t, "stock.adjust", self.app_body("stock.adjust", t))
        if sort == 3 and self.recent_closed:  # a vote after the decision
            pid = r.choice(self.recent_closed)
            return self.item(who, t, VOTE, {"proposal": pid, "choice": "no"}, (pid,))
        if sort == 4:  # a sanction under a clause the charter does not have
            payload = {"member": r.choice(self.pool[:200]), "clause": "littering", "evidence": []}
            return self.item(who, t, OPEN, {"type": "sanction", "title": "Litter at the hub", "payload": payload})
        if sort == 5 and self.plans:  # a tally claiming the wrong outcome
            pid = sorted(self.plans)[r.randrange(len(self.plans))]
            it = self.item(who, t, TALLY, {"proposal": pid, "outcome": "open"}, (pid,))
            wrong.add(it.id)
            return it
        if sort == 6:  # a vote by a newcomer on a proposal opened before they joined
            for pid in sorted(self.plans):
                p = s.proposals[pid]
                if p.status == "open" and who not in p.electorate:
                    return self.item(who, t, VOTE, {"proposal": pid, "choice": "yes"}, (pid,))
        return self.item(who, t, SPONSOR, {"member": r.randbytes(32)})  # sponsoring someone who never applied

    # ---- folding the layer into the oracle -----------------------------------------------------

    def fold_layer(self, built: list[Item], wrong: set[bytes]) -> list[Item]:
        """Feed the oracle in fold order (proofs first, then by id), settling each tally's claim on
        the state and causal past it will be applied with."""
        out: list[Item] = []
        for it in sorted(built, key=lambda x: (x.kind != EQUIVOCATION, x.id)):
            if it.kind == TALLY:
                it = dataclasses.replace(it, body={"proposal": it.body["proposal"], "outcome": self.claim(it, it.id in wrong)})
            self.oracle.add_items([it])
            reason = self.oracle.view[it.id]  # its verdict in its own view (no sanction binds in these histories)
            self.h.results["applied" if reason is None else reason.split(":")[0]] += 1
            self.h.kinds[it.kind] += 1
            if it.kind == TALLY and reason is not None and it.id not in wrong and reason.startswith("wrong_outcome"):
                raise AssertionError(f"the generator claimed a wrong outcome: {reason}")
            if it.kind == TALLY and reason is None:
                self.h.tallies[it.body["outcome"]] += 1
            out.append(it)
        return out

    def claim(self, it: Item, wrong: bool) -> str:
        p = self.oracle.state.proposals.get(it.body["proposal"])
        if p is None:
            return "open"
        # What every node will compute for a tally with exactly these parents (its prev and deps).
        result = self.oracle.preview(p.id, it.parents)[0]
        if wrong:
            return self.rng.choice([x for x in OUTCOMES if x != result])
        return result

    def after_layer(self, h: int, folded: list[Item]) -> None:
        for it in folded:
            if self.oracle.view[it.id] is not None:
                if it.kind == OPEN and it.body["type"] == "admit":
                    self.admitting.discard(it.body["payload"]["member"])  # someone may propose it again
                continue
            if it.kind == OPEN:
                self.h.proposals[it.body["type"]] += 1
                self.plan(it.id, h)
            elif it.kind == TALLY and it.body["outcome"] != "open":
                self.plans.pop(it.body["proposal"], None)
                self.recent_closed = [*self.recent_closed[-15:], it.body["proposal"]]
        self.tips.extend(it.id for it in folded if it.kind != EQUIVOCATION)
        if len(self.tips) > 512:
            del self.tips[:-256]
        self.prev_layer = [it.id for it in folded if it.kind != EQUIVOCATION]

    def run(self) -> History:
        start = time.perf_counter()
        for h in range(1, MAX_LAYERS):
            if len(self.h.items) >= self.h.n:
                break
            self.h.items.extend(self.layer(h))
            self.h.layers = h
        self.h.state_hash = self.oracle.state_hash()
        self.h.seconds = time.perf_counter() - start
        return self.h


# ---- measurements --------------------------------------------------------------------------------


def fold_key(fold: Fold, item_id: bytes) -> tuple[int, int, bytes]:
    return (fold.height[item_id], 0 if fold.items[item_id].kind == EQUIVOCATION else 1, item_id)


@dataclass(slots=True)
class Clock:
    """Wall and CPU seconds since construction (CPU: this process, so other load does not count)."""

    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=time.process_time)

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0


def fresh(history: History, items: Sequence[Item], snapshot_every: int) -> tuple[Fold, float, float]:
    """A new fold of ``items`` in one add_items call: (fold, wall s, cpu s)."""
    assert history.genesis is not None
    fold = Fold(history.genesis, snapshot_every=snapshot_every)
    batch = list(items)
    clock = Clock()
    fold.add_items(batch)
    return (fold, *clock.read())


def late(fold: Fold, history: History, back: int, author: bytes, rng: random.Random) -> dict[str, Any]:
    """Add an action whose deps put it ``back`` actions before the tip; time it and count the re-fold."""
    order = fold.order
    at = max(1, len(order) - back)
    for _ in range(len(order)):  # a proof is not an action: depend on the nearest action before it
        if fold.items[order[at][2]].kind != EQUIVOCATION:
            break
        at -= 1
    target = fold.items[order[at][2]]
    it = Item(rng.randbytes(32), author, 1, None, (target.id,), target.ts + 60_000, "delivery.slot", {"slot": 7, "at": target.ts})
    before, length = fold.refolded, len(order)
    clock = Clock()
    fold.add_items([it])
    seconds, cpu = clock.read()
    position = bisect.bisect_left(fold.order, fold_key(fold, it.id))
    after = length - position  # actions that sort after it: each one must be re-applied
    refolded = fold.refolded - before
    replayed = fold.order[max(0, position - (refolded - after)) :]
    tallies = sum(1 for _, _, x in replayed if fold.items[x].kind == TALLY)
    return {
        "back_asked": back,
        "landed_back": after,
        "seconds": seconds,
        "cpu_s": cpu,
        "refolded": refolded,
        "beyond_the_late_part": refolded - after,  # re-applied between the snapshot and the insertion point
        "tallies_refolded": tallies,
        "result": fold.results[it.id] or "applied",
    }


def incremental(history: History, count: int, snapshot_every: int, final: Fold, budget_s: float) -> dict[str, Any]:
    """Fold all but the last ``count`` items, then add those one at a time: in arrival order
    (stopping after ``budget_s`` wall seconds if that is slow) and in fold order."""
    out: dict[str, Any] = {"count": count, "budget_s": budget_s}
    head, tail = history.items[: len(history.items) - count], history.items[len(history.items) - count :]
    for label, seq in (("arrival_order", tail), ("fold_order", sorted(tail, key=lambda it: fold_key(final, it.id)))):
        fold, prefix_s, _ = fresh(history, head, snapshot_every)
        before = fold.refolded
        rewinds = done = 0
        clock = Clock()
        for it in seq:
            r0 = fold.refolded
            fold.add_items([it])
            rewinds += fold.refolded != r0
            done += 1
            if label == "arrival_order" and clock.read()[0] > budget_s:
                break
        seconds, cpu = clock.read()
        out[label] = {
            "added": done,
            "seconds": seconds,
            "cpu_s": cpu,
            "actions_per_s": done / seconds,
            "actions_per_cpu_s": done / cpu,
            "refolded": fold.refolded - before,
            "rewinds": rewinds,
            "prefix_fold_s": prefix_s,
            "state_hash_matches": fold.state_hash() == history.state_hash if done == count else None,
        }
        del fold
        gc.collect()
    return out


def memory(history: History, snapshot_every: int) -> dict[str, Any]:
    """tracemalloc: the items' own footprint (a private copy, as a node decodes them), then the
    peak of what a fresh fold allocates on top of them."""
    gc.collect()
    tracemalloc.start()
    copy = pickle.loads(pickle.dumps(history.items, protocol=pickle.HIGHEST_PROTOCOL))
    items_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    fold, seconds, _ = fresh(history, copy, snapshot_every)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ok = fold.state_hash() == history.state_hash
    snapshots = len(fold._snapshots)
    del fold, copy
    gc.collect()
    return {
        "items_mb": items_bytes / 2**20,
        "fold_retained_mb": (current - base) / 2**20,
        "fold_peak_mb": (peak - base) / 2**20,
        "snapshots": snapshots,
        "traced_fold_s": seconds,
        "state_hash_matches": ok,
    }


def profile(history: History, count: int, snapshot_every: int) -> dict[str, Any]:
    """cProfile of a fresh fold of the first ``count`` items (a causally closed prefix)."""
    assert history.genesis is not None
    items = history.items[:count]
    fold = Fold(history.genesis, snapshot_every=snapshot_every)
    batch = list(items)
    prof = cProfile.Profile()
    prof.enable()
    fold.add_items(batch)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        rows.append({"function": name, "where": where, "calls": ncalls, "tottime_s": tottime, "cumtime_s": cumtime})
    by_self = sorted(rows, key=lambda r: -r["tottime_s"])[:PROFILE_TOP]
    by_cum = sorted(rows, key=lambda r: -r["cumtime_s"])[:PROFILE_TOP]
    tallies = sum(1 for it in items if it.kind == TALLY)
    walk = sum(r["cumtime_s"] for r in rows if r["function"] == "frontier" and r["where"].startswith("protocol/governance.py"))
    return {
        "actions": len(items),
        "tallies": tallies,
        "total_s": total,
        "frontier_share": walk / total if total else 0.0,
        "by_self": by_self,
        "by_cumulative": by_cum,
    }


# ---- report --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def _rate(x: float) -> str:
    return f"{x:,.1f}" if x < 10 else f"{x:,.0f}"


def _source() -> dict[str, Any]:
    """Which fold was measured: the commit, and a digest of governance.py as it is on disk."""
    head, dirty = "", ""
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "protocol/"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256((ROOT / "protocol" / "governance.py").read_bytes()).hexdigest()[:16]
    return {"commit": head, "protocol_modified": bool(dirty), "governance_py_sha256": digest}


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def report(fig: dict[str, Any], out: TextIO) -> None:
    m, h, a = fig["machine"], fig["history"], fig["fresh"]
    ed, ed_cpu = fig["ed25519_verify_per_s"], fig["ed25519_verify_per_cpu_s"]
    snap = fig["snapshot_every"]
    say(out)
    src = fig["source"]
    say(
        out,
        f"fold measured: commit {src['commit'] or '?'}{' + uncommitted changes in protocol/' if src['protocol_modified'] else ''},"
        f" governance.py sha256 {src['governance_py_sha256']}",
    )
    say(
        out,
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average {fig['load_start']} at start, {fig['load_end']} at end",
    )
    if max([*fig["load_start"], *fig["load_end"], 0.0]) > (m["cores"] or 1):
        say(out, "  (the machine was busy: wall times include waiting for a core; CPU times are this process's own)")
    say(out, f"history: {h['items']:,} items in {h['layers']:,} causal layers, seed {h['seed']}, generated in {h['generate_s']:.1f} s")
    say(out, "  kinds:     " + ", ".join(f"{k} {v:,}" for k, v in sorted(h["kinds"].items(), key=lambda kv: -kv[1])))
    say(out, "  proposals: " + ", ".join(f"{k} {v}" for k, v in sorted(h["proposals"].items(), key=lambda kv: -kv[1])))
    say(out, "  tallies:   " + ", ".join(f"{k} {v}" for k, v in sorted(h["tallies"].items())))
    say(out, "  results:   " + ", ".join(f"{k} {v:,}" for k, v in sorted(h["results"].items(), key=lambda kv: -kv[1])))
    say(out, f"  members at the end: {h['members_end']:,}; state hash {h['state_hash'][:16]}…")
    say(out)
    rows: list[tuple[str, str, str, str]] = [
        (
            "Ed25519 verify (libsodium, 1 core)",
            f"{ed:,.0f} /s",
            f"{ed_cpu:,.0f} /s",
            "the cost of admitting each action in the first place",
        ),
        (
            f"(a) fresh fold of {h['items']:,} items",
            f"{a['seconds']:.1f} s = {a['actions_per_s']:,.0f} /s",
            f"{a['cpu_s']:.1f} s = {a['actions_per_cpu_s']:,.0f} /s",
            f"{a['actions_per_cpu_s'] / ed_cpu:.2f}x the verify rate (CPU)",
        ),
    ]
    inc = fig.get("incremental")
    if inc:
        for label in ("arrival_order", "fold_order"):
            x = inc[label]
            partial = f" (first {x['added']:,}: {inc['budget_s']:.0f} s budget)" if x["added"] < inc["count"] else ""
            rows.append(
                (
                    f"(b) last {inc['count']:,} one at a time, {label.replace('_', ' ')}",
                    f"{_rate(x['actions_per_s'])} /s",
                    f"{_rate(x['actions_per_cpu_s'])} /s",
                    f"{x['rewinds']:,} rewinds, {x['refolded']:,} re-applied = {x['refolded'] / max(x['added'], 1):,.0f} per add{partial}",
                )
            )
    for x in fig.get("late", []):
        rows.append(
            (
                f"(c) late action {x['back_asked']:,} back",
                f"{x['seconds'] * 1000:,.0f} ms",
                f"{x['cpu_s'] * 1000:,.0f} ms",
                f"re-folded {x['refolded']:,} = {x['landed_back']:,} after it + {x['beyond_the_late_part']:,} before it"
                f" (snapshots every {snap:,}), {x['tallies_refolded']} tallies among them",
            )
        )
    mem = fig.get("memory")
    if mem:
        rows.append(
            (
                "(d) fold peak memory (tracemalloc)",
                f"{mem['fold_peak_mb']:,.0f} MB",
                "",
                f"beside {mem['items_mb']:,.0f} MB of items it holds; {mem['fold_retained_mb']:,.0f} MB retained, {mem['snapshots']} snapshots",
            )
        )
    rows.append(("    process peak RSS", f"{fig['maxrss_mb']:,.0f} MB", "", "everything: generator, oracle fold and the folds above"))
    widths = [max(len(r[i]) for r in [*rows, ("figure", "wall", "CPU", "")]) for i in range(3)]
    say(out, f"{'figure':<{widths[0]}}  {'wall':<{widths[1]}}  {'CPU':<{widths[2]}}  note")
    say(out, "  ".join("-" * w for w in widths) + "  " + "-" * 40)
    for r in rows:
        say(out, f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    say(out)
    t = fig["targets"]
    say(
        out,
        f"target 1, a fresh fold of {h['items']:,} actions in under {TARGET_FRESH_S:.0f} s: {'holds' if t['fresh_under_minute'] else 'MISSED'}"
        f" ({a['seconds']:.1f} s wall, {a['cpu_s']:.1f} s CPU)",
    )
    worst = max((x["beyond_the_late_part"] for x in fig.get("late", [])), default=0)
    say(
        out,
        f"target 2, a late action costs at most one snapshot interval of re-folding: {'holds' if t['late_within_one_snapshot'] else 'MISSED'}"
        f" beyond the actions that sort after it (at most {worst:,} < {snap:,} here). A late action N back re-folds N + up to"
        f" {snap:,}: every action after it is re-applied, and those between the last snapshot and it.",
    )
    prof = fig.get("profile")
    if prof:
        say(out)
        say(
            out,
            f"profile: fresh fold of the first {prof['actions']:,} items ({prof['tallies']} tallies), {prof['total_s']:.2f} s under cProfile",
        )
        say(out, f"  {'self s':>7}  {'cum s':>7}  {'calls':>10}  function")
        for r in prof["by_self"]:
            say(out, f"  {r['tottime_s']:7.3f}  {r['cumtime_s']:7.3f}  {r['calls']:>10,}  {r['function']} ({r['where']})")
        say(
            out,
            f"  the causal-past walk of tallies (Fold.frontier) takes {prof['frontier_share']:.0%} of the profiled fold;"
            " the rest is add_items (heights, causal time, ordering) and the rules applied to each action",
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Governance fold benchmark (pure computation, one process).")
    p.add_argument("--actions", type=int, default=100_000, help="items in the history, genesis excluded (default 100000)")
    p.add_argument("--members", type=int, default=1000, help="members who join over the history (default 1000)")
    p.add_argument("--snapshot-every", type=int, default=SNAPSHOT_EVERY, help=f"the fold's snapshot interval (default {SNAPSHOT_EVERY})")
    p.add_argument("--seed", type=int, default=1, help="history seed (default 1)")
    p.add_argument("--width", type=int, default=10, help="most concurrent actions in one causal layer (default 10)")
    p.add_argument("--incremental", type=int, default=5000, help="items added one at a time in (b) (default 5000; 0: skip)")
    p.add_argument(
        "--incremental-budget", type=float, default=60.0, help="wall seconds for (b) in arrival order before it stops early (default 60)"
    )
    p.add_argument("--profile-actions", type=int, default=20_000, help="items in the profiled fold (default 20000; 0: no profile)")
    p.add_argument("--rate-seconds", type=float, default=2.0, help="seconds for the Ed25519 rate (default 2)")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass (d)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    args = p.parse_args(argv)
    if args.actions < 1000 or args.members < FOUNDERS + 10 or args.snapshot_every < 1 or args.width < 1:
        p.error(f"need --actions >= 1000, --members >= {FOUNDERS + 10}, --snapshot-every >= 1, --width >= 1")
    if not 0 <= args.incremental < args.actions:
        p.error("--incremental must be below --actions")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    fig: dict[str, Any] = {"machine": machine(), "source": _source(), "snapshot_every": args.snapshot_every, "load_start": _load()}

    say(out, f"Ed25519: single-core libsodium verification rate over {args.rate_seconds:.0f} s …")
    fig["ed25519_verify_per_s"], fig["ed25519_verify_per_cpu_s"] = ed25519_rate(args.rate_seconds)

    say(out, f"generating {args.actions:,} items from {args.members:,} members (seed {args.seed}) …")
    history = Generator(args.actions, args.members, args.seed, args.width).run()
    assert history.genesis is not None
    fig["history"] = {
        "items": len(history.items),
        "layers": history.layers,
        "seed": args.seed,
        "generate_s": history.seconds,
        "kinds": dict(history.kinds),
        "proposals": dict(history.proposals),
        "tallies": dict(history.tallies),
        "results": dict(history.results),
        "state_hash": history.state_hash.hex(),
        "history_digest": hashlib.sha256(b"".join(it.id for it in history.items)).hexdigest(),
    }
    gc.collect()

    say(out, "(a) fresh fold …")
    fold, seconds, cpu = fresh(history, history.items, args.snapshot_every)
    if fold.state_hash() != history.state_hash or fold.deferred:
        raise AssertionError("the fresh fold disagrees with the oracle")
    n = len(history.items)
    fig["history"]["members_end"] = sum(1 for m in fold.state.members.values() if m.status == MEMBER)
    fig["fresh"] = {"seconds": seconds, "cpu_s": cpu, "actions_per_s": n / seconds, "actions_per_cpu_s": n / cpu, "refolded": fold.refolded}

    say(out, "(c) late actions …")
    rng = random.Random(args.seed + 1)
    fig["late"] = []
    for i, back in enumerate(b for b in LATE_BACK if b < n):
        fig["late"].append(late(fold, history, back, history.reserved[i % RESERVED], rng))
    del fold
    gc.collect()

    if args.incremental:
        say(out, f"(b) the last {args.incremental:,} one at a time …")
        final, _, _ = fresh(history, history.items, 1 << 60)
        fig["incremental"] = incremental(history, args.incremental, args.snapshot_every, final, args.incremental_budget)
        del final
        gc.collect()

    if not args.no_memory:
        say(out, "(d) memory (tracemalloc, slower) …")
        fig["memory"] = memory(history, args.snapshot_every)

    if args.profile_actions:
        say(out, f"profiling a fold of {min(args.profile_actions, n):,} items …")
        fig["profile"] = profile(history, min(args.profile_actions, n), args.snapshot_every)

    fig["load_end"] = _load()
    fig["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fig["targets"] = {
        "fresh_under_minute": fig["fresh"]["seconds"] < TARGET_FRESH_S,
        "late_within_one_snapshot": all(0 <= x["beyond_the_late_part"] < args.snapshot_every for x in fig["late"]),
    }
    report(fig, out)
    if args.json:
        print(json.dumps(fig, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
