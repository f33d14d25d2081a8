"""protocol/governance.py against docs/GOVERNANCE.md: decisions and their consequences.

Expected values are written from the doc, never read from the fold's tables:

* sanctions and binding (stale deps, sponsorships, applications, votes, openings), appeals, lifts;
* tallies: what they count, proposal_closed, previews; concurrent tallies that disagree
  (acknowledgement, rank, fold order, finality, and a sanction that cannot validate itself);
* equivocation (warnings, ``forgive``, suspensions from the next action, parted proofs), ghosts,
  both forks in one fold;
* signed actions and proofs through ``Fold.add``, ``forked``, redaction.

A strict xfail marks each place where the fold and the doc differ and the difference is reported,
not fixed here (see the branch's report).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from protocol import codec, make_proof, sign_action
from protocol.charter import APPLY, OPEN, SEEN, SPONSOR, TALLY, VOTE
from protocol.governance import (
    APPLICANT,
    DAY_MS,
    EXPELLED,
    MEMBER,
    Fold,
    Item,
)
from protocol.keys import SigningKey
from tests.gov_helpers import (
    HOUR_MS,
    OFFENCES,
    RIDE,
    TS0,
    WEEK_MIN,
    Hist,
    charter,
    closure,
    fold_in,
    genesis,
    make_id,
    proof_item,
    rule,
    summary,
)

WEEK = WEEK_MIN * 60_000


# ---- sanctions, binding, appeals -----------------------------------------------------------------


def test_a_passed_sanction_binds_from_the_tallys_view_of_the_member() -> None:
    h = Hist(charter_=charter(offences=OFFENCES))
    x = h.person("x")
    join = h.apply(x)
    op = h.open(h.founders[0], "sanction", {"member": x, "clause": "misconduct", "evidence": [join.id]})
    before = h.app(x)  # x's seq 2, in the tally's past
    for f in h.founders:
        h.vote(f, op, "yes")
    h.close()
    t = h.tally(h.founders[0], op, "passed")
    s = h.fold.state.sanctions[op.id]
    assert (s.member, s.kind, s.clause, s.evidence, s.imposed_by, s.bound) == (x, "suspend", "misconduct", (join.id,), t.id, 2)
    assert s.until == h.time(t) + 30 * DAY_MS
    assert h.reason(before) is None
    # everything x signs beyond seq 2 is judged under the sanction, whatever it depends on
    stale = [h.app(x, deps=[join.id]), h.sponsor(x, h.person("nobody"), deps=[join.id]), h.seen(x, deps=[join.id])]
    assert [h.fold.view[i.id] for i in stale] == [None, "not_an_applicant", None]
    assert [h.reason(i) for i in stale] == ["suspended", "not_an_applicant", "suspended"]
    assert h.reason(h.app(x)) == "suspended"
    assert h.reason(h.leave(x, deps=[join.id])) is None  # leaving stays open


def test_a_bound_vote_and_a_bound_opening_are_ignored_by_those_who_see_the_sanction() -> None:
    h = Hist(charter_=charter(offences=OFFENCES, decisions={"default": rule(50, "majority"), "sanction": rule(50, "majority", minutes=60)}))
    f0, f1, f2 = h.founders
    x = h.person("x")
    join = h.apply(x)
    p = h.open(f0, "text", {})
    h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []}, voters=h.founders, minutes=60)
    assert h.fold.state.status(x) == EXPELLED
    v = h.make(x, VOTE, {"proposal": p.id, "choice": "block"}, deps=[p.id])  # stale deps: x a member in its view
    h.add(v)
    assert (h.fold.view[v.id], h.reason(v)) == (None, "status_expelled")
    for f in h.founders:
        h.vote(f, p, "yes")
    h.close()
    # a tally that sees the sanction passes over x's vote: 3 yes of 4 electors (x among them)
    t = h.tally(f1, p, "passed")
    assert h.reason(t) is None
    assert h.fold.ranks[t.id][0] == 3
    stale_open = h.make(x, OPEN, {"type": "text", "title": "t", "payload": {}}, deps=[join.id])
    h.add(stale_open)
    assert (h.fold.view[stale_open.id], h.reason(stale_open)) == (None, "status_expelled")
    assert h.reason(h.vote(f2, stale_open, "yes")) == "proposal_void"


def test_an_expelled_sponsor_admits_nobody() -> None:
    h = Hist(charter_=charter(policy="sponsored", sponsors=1, offences=OFFENCES))
    x = h.person("x")
    join = h.apply(x)
    y = h.person("y")
    h.sponsor(h.founders[0], x)
    assert h.fold.state.status(x) == MEMBER
    y_join = h.apply(y)
    h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []}, voters=h.founders)
    s = h.make(x, SPONSOR, {"member": y}, deps=[y_join.id, join.id])  # x's stale view: a member, y an applicant
    h.add(s)
    assert h.fold.view[s.id] is None and h.reason(s) == "status_expelled"
    assert h.fold.state.members[y].status == MEMBER  # the version the bound sponsorship made ...
    assert h.fold.member_final(y).status == APPLICANT  # ... is voided in the state
    assert [m for m in h.fold.canonical()["members"] if m[0] == y] == [[y, APPLICANT, [], []]]
    y_act = h.app(y, deps=[s.id])  # y acts on the admission
    assert h.fold.view[y_act.id] is None and h.reason(y_act) == "status_applicant"
    v = h.vote(y, h.open(h.founders[1], "text", {}), "yes")  # whoever sees the sanction sees y as an applicant
    assert h.reason(v) == "status_applicant"


def test_an_expelled_sponsor_admits_nobody_through_a_proxy() -> None:
    """x, expelled, sponsors y on stale deps (void); y, a member in its own view, sponsors z. z's
    admission rests on y's sponsorship, made on a void membership: void too, in the state and in
    every view that sees the expulsion. Otherwise x admits z through y."""
    h = Hist(charter_=charter(policy="sponsored", sponsors=1, offences=OFFENCES))
    x, y, z = h.person("x"), h.person("y"), h.person("z")
    join = h.apply(x)
    h.sponsor(h.founders[0], x)
    y_join, z_join = h.apply(y), h.apply(z)
    h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []}, voters=h.founders)
    by_x = h.make(x, SPONSOR, {"member": y}, deps=[y_join.id, join.id])
    by_y = h.make(y, SPONSOR, {"member": z}, deps=[by_x.id, z_join.id])
    z_act = h.make(z, RIDE, {"n": 1}, deps=[by_y.id])
    h.add(by_x, by_y, z_act)
    assert [h.fold.view[i.id] for i in (by_x, by_y, z_act)] == [None, None, None]  # each valid as it saw things
    assert [h.reason(i) for i in (by_x, by_y, z_act)] == ["status_expelled", "status_applicant", "status_applicant"]
    assert h.fold.state.members[z].status == MEMBER and h.fold.member_final(z).status == APPLICANT
    assert [m for m in h.fold.canonical()["members"] if m[0] in (y, z)] == sorted([[y, APPLICANT, [], []], [z, APPLICANT, [], []]])
    v = h.vote(z, h.open(h.founders[1], "text", {}), "yes")  # whoever sees the expulsion sees z as an applicant
    assert h.reason(v) == "status_applicant"


def test_a_sanctioned_member_who_tallies_their_own_sanction_on_stale_deps_moves_neither_bound_nor_end() -> None:
    """The suspension passes; f0's tally, five days after the close, has seen x's application
    only. x, who never showed having seen it, signs three actions on its own chain and then a
    tally of its own sanction that also passes (a valid count), on deps low enough to sort first:
    it decides, with x's whole chain in its past and the close's co-op time. The later tally
    passing the same sanction keeps the lower bound and the later end, so x's stale actions are
    bound and the suspension is not shortened."""
    h = Hist(charter_=charter(offences=OFFENCES))
    x = h.person("x")
    join = h.apply(x)
    op = h.open(h.founders[0], "sanction", {"member": x, "clause": "misconduct", "evidence": []})
    for f in h.founders:
        h.vote(f, op, "yes")
    h.close()
    base = h.tip
    h.advance(5 * DAY_MS)
    honest = h.tally(h.founders[0], op, "passed")
    stale = [h.make(x, RIDE, {"n": 0}, deps=[join.id])]
    for i in (1, 2):
        stale.append(h.make(x, RIDE, {"n": i}, deps=[stale[-1].id]))
    own = h.make(x, TALLY, {"proposal": op.id, "outcome": "passed"}, deps=[base, stale[-1].id])
    h.add(*stale, own)
    assert h.fold.view[own.id] is None and h.reason(honest) is None
    assert h.fold.graph.key(own.id) < h.fold.graph.key(honest.id) and h.time(own) < h.time(honest)
    sanction = h.fold.state.sanctions[op.id]
    assert sanction.imposed_by == own.id  # the first in fold order decides ...
    assert sanction.bound == join.seq  # ... but binds from the lower bound ...
    assert sanction.until == h.time(honest) + 30 * DAY_MS  # ... and ends at the later end
    assert [h.reason(i) for i in stale] == ["suspended"] * 3


def test_what_a_member_admitted_by_a_bound_sponsorship_does_is_judged_by_the_status_that_remains() -> None:
    """Doc, "Results in the state": an applied action whose author's membership rests on an
    admission voided by bound sponsorships is rejected with the status that remains. y was
    admitted by an expelled sponsor's stale sponsorship: y's opening and everyday action fall back
    to what an applicant may do (rejected), y's member.seen and leave stay applied, and a tally
    (never bound) stands."""
    h = Hist(charter_=charter(policy="sponsored", sponsors=1, offences=OFFENCES))
    x, y = h.person("x"), h.person("y")
    join = h.apply(x)
    h.sponsor(h.founders[0], x)
    y_join = h.apply(y)
    h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []}, voters=h.founders)
    s = h.make(x, SPONSOR, {"member": y}, deps=[y_join.id, join.id])
    h.add(s)
    op = h.act(y, OPEN, {"type": "text", "title": "t", "payload": {}}, deps=[s.id])
    ride = h.app(y, deps=[op.id])
    t = h.tally(y, op, "open", deps=[ride.id])
    seen = h.seen(y, deps=[t.id])
    assert [h.fold.view[i.id] for i in (op, ride, t, seen)] == [None] * 4  # y a member in its own view
    assert [h.reason(i) for i in (op, ride, t, seen)] == ["status_applicant", "status_applicant", None, None]
    assert h.reason(h.leave(y)) is None


def test_an_expelled_member_who_had_left_cannot_rejoin_with_stale_deps() -> None:
    """Applications beyond the bound are rejected and "the effects they would have had never
    happen"; "an expelled member cannot apply again". x leaves, is expelled by a sanction opened
    while a member, then applies with deps that leave out the expulsion (a long side chain, so that
    the application sorts after the expelling tally): the membership it would make is void, in
    the state and in every view that sees the expulsion."""
    h = Hist(charter_=charter(offences=OFFENCES))
    x, y = h.person("x"), h.person("y")
    h.apply(y)
    h.apply(x)
    op = h.open(h.founders[0], "sanction", {"member": x, "clause": "fraud", "evidence": []})
    gone = h.leave(x)
    side = gone
    for i in range(40):  # y's actions, concurrent with the whole decision
        side = h.make(y, RIDE, {"n": i}, deps=[side.id])
        h.fold.add_items([side])
    for f in h.founders:
        h.vote(f, op, "yes")
    h.close()
    t = h.tally(h.founders[0], op, "passed")
    assert h.fold.state.status(x) == EXPELLED
    back = h.make(x, APPLY, {}, deps=[side.id])
    h.add(back)
    assert h.fold.graph.key(back.id) > h.fold.graph.key(t.id)
    assert h.fold.view[back.id] is None  # left, in its own view
    assert h.reason(back) == "status_expelled"
    assert [m[1] for m in h.fold.canonical()["members"] if m[0] == x] == [EXPELLED]
    op2 = h.open(h.founders[1], "text", {}, deps=[t.id, back.id])
    assert x not in h.fold.state.proposals[op2.id].electorate


def test_expel_then_lift_by_appeal() -> None:
    h = Hist(charter_=charter(offences=OFFENCES))
    x = h.person("x")
    h.apply(x)
    op, t = h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []})
    s = h.fold.state
    assert s.status(x) == EXPELLED and s.members[x].since == t.id
    assert (s.sanctions[op.id].kind, s.sanctions[op.id].until, s.sanctions[op.id].imposed_by) == ("expel", None, t.id)
    assert h.reason(h.apply(x)) == "status_expelled"
    assert h.reason(h.app(x)) == "status_expelled"
    assert h.reason(h.seen(x)) == "status_expelled"
    appeal = h.open(x, "lift", {"sanction": op.id})
    assert h.reason(appeal) is None
    assert x not in h.fold.state.proposals[appeal.id].electorate
    assert h.reason(h.vote(x, appeal, "yes")) == "status_expelled"
    for f in h.founders:
        h.vote(f, appeal, "yes")
    h.close()
    lift = h.tally(h.founders[0], appeal, "passed")
    assert h.reason(lift) is None
    s = h.fold.state
    assert s.sanctions[op.id].lifted_by == lift.id
    assert (s.status(x), s.members[x].roles) == (MEMBER, {"member"})
    assert h.reason(h.app(x)) is None
    assert h.reason(h.open(x, "lift", {"sanction": op.id})) == "unknown_sanction"  # already lifted


def test_lifting_a_suspension_ends_it_for_what_sees_the_lift() -> None:
    h = Hist()
    x = h.person("x")
    join = h.apply(x)
    op, _ = h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    appeal = h.open(x, "lift", {"sanction": op.id})
    assert h.reason(appeal) is None
    for f in h.founders:
        h.vote(f, appeal, "yes")
    h.close()
    before = h.app(x)
    h.tally(h.founders[0], appeal, "passed")
    assert h.reason(before) == "suspended"
    assert h.reason(h.app(x)) is None
    # the lift applies to x's actions that have seen it, even if bound by seq
    assert h.reason(h.app(x, deps=[join.id])) is None  # x's own chain holds the lift


def test_a_lift_applies_to_what_saw_it_whatever_concurrent_lift_sorts_first() -> None:
    """Doc: "A lift applies to the member's actions that have seen it." Two groups lift x's
    suspension concurrently (lift 1 by founders 0-3, lift 2 by founders 4-7); x acts after seeing
    lift 2, and is applied. Lift 1 arrives later and sorts first: the state shows it as the lift,
    and x's action, which saw only lift 2, stays applied (every lift is recorded)."""
    h = Hist(founders=7, charter_=charter(decisions={"default": rule(50, "majority", 60), "sanction": rule(50, "two_thirds")}))
    fs = h.founders
    x = h.person("x")
    h.apply(x)
    s, _ = h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []}, voters=fs)
    base = h.tip

    def lift_line(group: list[bytes], longer: int) -> tuple[list[Item], Item]:
        made = [h.make(group[0], OPEN, {"type": "lift", "title": "lift", "payload": {"sanction": s.id}}, deps=[base])]
        for v in group:
            made.append(h.make(v, VOTE, {"proposal": made[0].id, "choice": "yes"}, deps=[made[-1].id]))
        ts = h.clock + 2 * HOUR_MS
        for v in [*group[:3], *[group[3]] * longer]:  # the window closes; `longer` makes the line taller
            made.append(h.make(v, SEEN, {}, deps=[made[-1].id], ts=ts))
        made.append(h.make(group[3], TALLY, {"proposal": made[0].id, "outcome": "passed"}, deps=[made[-1].id]))
        return made, made[-1]

    one, lift1 = lift_line(fs[0:4], 0)
    two, lift2 = lift_line(fs[4:8], 2)
    h.fold.add_items(two)
    y = h.make(x, RIDE, {"n": 1}, deps=[lift2.id])
    h.fold.add_items([y])
    assert h.reason(y) is None
    h.fold.add_items(one)
    assert h.reason(lift1) is None and h.fold.graph.key(lift1.id) < h.fold.graph.key(lift2.id)
    assert h.reason(y) is None


def test_a_member_expelled_twice_stays_expelled_until_both_are_lifted() -> None:
    h = Hist(charter_=charter(offences=OFFENCES))
    x = h.person("x")
    h.apply(x)
    first = h.open(h.founders[0], "sanction", {"member": x, "clause": "fraud", "evidence": []})
    second = h.open(h.founders[1], "sanction", {"member": x, "clause": "fraud", "evidence": []})
    for p in (first, second):
        for f in h.founders:
            h.vote(f, p, "yes")
    h.close()
    for p in (first, second):
        assert h.reason(h.tally(h.founders[0], p, "passed")) is None
    assert h.fold.state.status(x) == EXPELLED
    h.decide("lift", {"sanction": first.id})
    live = [s for s in h.fold.state.sanctions.values() if s.lifted_by is None]
    assert [s.id for s in live] == [second.id]
    assert h.fold.state.status(x) == EXPELLED
    assert h.reason(h.app(x)) == "status_expelled"
    h.decide("lift", {"sanction": second.id})
    assert h.fold.state.status(x) == MEMBER


def test_a_suspension_after_a_lifted_expulsion_rejects_as_suspended() -> None:
    """ "status_expelled if an expulsion binds it, else suspended": a lifted expulsion whose lift the
    action has seen does not bind it."""
    h = Hist(charter_=charter(offences=OFFENCES))
    x = h.person("x")
    h.apply(x)
    expel, _ = h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []})
    h.decide("lift", {"sanction": expel.id})
    assert h.fold.state.status(x) == MEMBER
    back = h.app(x)  # x's first action after the lift
    assert h.reason(back) is None
    h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    stale = h.app(x, deps=[h.genesis.id])  # sees the lift (its own chain), not the suspension
    assert h.fold.view[stale.id] is None
    assert h.reason(stale) == "suspended"
    assert h.reason(h.app(x)) == "suspended"


# ---- tallies -----------------------------------------------------------------------------------


def test_a_tally_counts_each_voters_latest_vote_in_its_causal_past() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.open(f0, "text", {})
    h.vote(f0, p, "yes")
    no = h.vote(f1, p, "no")
    h.vote(f2, p, "no")
    yes = h.vote(f1, p, "yes")  # f1 changes their mind: 2 yes, 1 no, the whole electorate
    assert h.reason(h.tally(f2, p, "rejected")) == "wrong_outcome:passed"
    # a tally that saw only f1's first vote (it depends on `no`, concurrent with the change)
    early = h.make(f0, TALLY, {"proposal": p.id, "outcome": "open"}, deps=[no.id, p.id])
    h.add(early)
    assert yes.id not in closure(h.items, early.id)
    assert h.reason(early) is None  # f0 yes, f1 no: 2 of 3 voted, window open
    assert h.fold.state.proposals[p.id].status == "open"


def test_a_late_concurrent_vote_never_flips_a_tally() -> None:
    h = Hist(founders=3)
    f0, f1, _f2, f3 = h.founders
    p = h.open(f0, "text", {})
    v0 = h.vote(f0, p, "yes")
    v1 = h.vote(f1, p, "yes")
    h.close()
    t = h.make(f0, TALLY, {"proposal": p.id, "outcome": "passed"}, deps=[h.tip])  # 2 of 4, both yes
    late = h.make(f3, VOTE, {"proposal": p.id, "choice": "block"}, deps=[p.id], ts=TS0)  # backdated, stale
    h.add(t)
    assert h.reason(t) is None
    h.add(late)
    assert (h.fold.height[late.id], late.id) < (h.fold.height[t.id], t.id)
    assert h.reason(late) is None  # applied (not late by its view) ...
    assert h.reason(t) is None  # ... but outside t's past: t still passes
    assert h.fold.state.proposals[p.id].decided_by == t.id
    ordered = [h.items[i] for i in h.fold.graph.items if i != h.genesis.id]
    assert summary(h.fold) == summary(fold_in(h.genesis, [ordered]))
    after = h.vote(f1, p, "no", deps=[t.id])
    assert h.reason(after) == "proposal_closed"
    assert v0.id in closure(h.items, t.id) and v1.id in closure(h.items, t.id)


def test_an_open_claim_leaves_the_proposal_open() -> None:
    h = Hist()
    p = h.open(h.founders[0], "text", {})
    h.vote(h.founders[0], p, "yes")
    t = h.tally(h.founders[1], p, "open")
    assert h.reason(t) is None
    assert (h.fold.state.proposals[p.id].status, h.fold.state.proposals[p.id].decided_by) == ("open", None)
    assert t.id not in h.fold.state.tallied.get(p.id, ())


def test_not_in_electorate() -> None:
    h = Hist()
    p = h.open(h.founders[0], "text", {})
    x = h.person("x")
    h.apply(x)
    assert h.fold.state.status(x) == MEMBER
    assert h.reason(h.vote(x, p, "yes")) == "not_in_electorate"
    assert x in h.fold.state.proposals[h.open(h.founders[0], "text", {}).id].electorate


def test_the_electorate_is_the_openers_view() -> None:
    h = Hist()
    f0, f1, _ = h.founders
    x = h.person("x")
    join = h.make(x, APPLY, {}, deps=[h.genesis.id])
    h.add(join)
    blind = h.open(f0, "text", {}, deps=[h.genesis.id])
    assert x not in h.fold.state.proposals[blind.id].electorate
    seeing = h.open(f1, "text", {}, deps=[join.id])
    assert x in h.fold.state.proposals[seeing.id].electorate


def test_preview_says_what_a_tally_must_claim() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.open(f0, "text", {})
    v0 = h.vote(f0, p, "yes")
    v1 = h.vote(f1, p, "no")
    assert h.fold.preview(p.id, [v0.id]) == ("open", {"yes": 1, "no": 0, "abstain": 0, "block": 0}, False)
    shut = h.close()
    assert h.fold.preview(p.id, [v1.id]) == ("open", {"yes": 1, "no": 1, "abstain": 0, "block": 0}, False)
    assert h.fold.preview(p.id, [shut[-1].id])[0::2] == ("rejected", True)  # 1 yes 1 no: a tie fails
    assert h.reason(h.tally(f2, p, "rejected")) is None


# ---- concurrent tallies that disagree --------------------------------------------------------------


def dispute(quorum: int = 50) -> tuple[Hist, Item, Item, Item, list[Item]]:
    """Six electors (three need to acknowledge a decision for it to be final); F, f1 and f2 vote
    yes, yes, no; f3, f4 and f5, who saw only the proposal, let its one-hour window close. Tally
    `few` (by f5) counted F's vote alone: rejected, short of the quorum; tally `more` (by f4)
    counted all three: passed. Neither saw the other. Returns (h, p, few, more, the witnesses)."""
    h = Hist(founders=5, charter_=charter(decisions={"default": rule(quorum, "majority", minutes=60)}))
    f0, f1, f2, f3, f4, f5 = h.founders
    p = h.open(f0, "text", {})
    v = [h.vote(f, p, c, deps=[p.id]) for f, c in ((f0, "yes"), (f1, "yes"), (f2, "no"))]
    h.clock += 2 * HOUR_MS
    w = [h.seen(f, deps=[p.id], ts=h.clock) for f in (f3, f4, f5)]
    few = h.make(f5, TALLY, {"proposal": p.id, "outcome": "rejected"}, deps=[*(x.id for x in w), v[0].id])
    more = h.make(f4, TALLY, {"proposal": p.id, "outcome": "passed"}, deps=[*(x.id for x in w), *(x.id for x in v)])
    return h, p, few, more, w


def test_two_concurrent_tallies_that_agree_decide_once() -> None:
    h, p, _, more, _ = dispute()
    other = h.make(h.founders[1], TALLY, {"proposal": p.id, "outcome": "passed"}, deps=list(more.deps))
    h.add(more, other)
    assert (h.reason(more), h.reason(other)) == (None, None)
    first = min((more, other), key=lambda t: (h.fold.height[t.id], t.id))
    assert h.fold.state.proposals[p.id].decided_by == first.id
    seeing_other = h.vote(h.founders[3], p, "yes", deps=[other.id])
    assert h.reason(seeing_other) == "proposal_closed"  # seeing a tally with the same claim is seeing the decision


def test_the_tally_that_counted_more_of_the_vote_decides_when_neither_is_final() -> None:
    h, p, few, more, _ = dispute()
    h.add(few)
    assert h.fold.state.proposals[p.id].status == "rejected"
    h.add(more)
    assert (h.reason(few), h.reason(more)) == (None, None)  # both valid in their own views
    assert h.fold.ranks[more.id][0] == 3 > h.fold.ranks[few.id][0] == 1
    assert (h.fold.state.proposals[p.id].status, h.fold.state.proposals[p.id].decided_by) == ("passed", more.id)
    both = [h.items[i] for i in h.items if i != h.genesis.id]
    assert summary(fold_in(h.genesis, [both])) == summary(h.fold)
    assert summary(fold_in(h.genesis, [[x] for x in reversed(both)])) == summary(h.fold)


def test_a_final_decision_beats_a_better_informed_one() -> None:
    """`few` is acknowledged by three of six electors (its author, f3 and F: final); `more` counted
    more votes but only its author acknowledged it: `few` stands, and one more acknowledgement of
    `more` does not change that."""
    h, p, few, more, _ = dispute()
    f0, f1, f2, f3, _f4, _f5 = h.founders
    h.add(few)
    h.add(h.make(f3, RIDE, {"n": 1}, deps=[few.id]))  # f3's first action that sees a decision
    assert h.fold.is_final(h.fold.state.proposals[p.id]) == (2, 3)
    h.add(more)
    assert h.fold.state.proposals[p.id].decided_by == more.id  # neither final: the better count wins
    ack0 = h.make(f0, RIDE, {"n": 2}, deps=[few.id])
    h.add(ack0)
    prop = h.fold.state.proposals[p.id]
    assert (prop.status, prop.decided_by) == ("rejected", few.id)
    assert h.fold.is_final(prop) == (3, 3)
    h.add(h.make(f1, RIDE, {"n": 3}, deps=[more.id]))
    assert h.fold.state.proposals[p.id].decided_by == few.id
    # an elector whose first look at a decision saw votes it left out does not acknowledge it
    assert h.fold.acks(prop, h.fold.state.tallied[p.id]) == {few.id: 3, more.id: 2}
    late = h.make(f2, RIDE, {"n": 4}, deps=[few.id])  # f2's chain holds f2's vote, which `few` did not count
    h.add(late)
    assert h.fold.acks(prop, h.fold.state.tallied[p.id]) == {few.id: 3, more.id: 2}


def two_counts(votes1: dict[int, list[str]], sees1: dict[int, int], sees2: dict[int, int]) -> tuple[Hist, Item, Item, Item]:
    """Seven electors (quorum 25%: two votes, and two acknowledgements for finality); founders
    1..2 vote the choices given, each vote on the last; founders 3..5 close the one-hour window
    having seen only the proposal; T1 (by founder 6) and T2 (by F) see, of each voter, the vote
    at the index given. Returns (h, p, T1, T2), folded."""
    h = Hist(founders=6, charter_=charter(decisions={"default": rule(25, "majority", 60)}))
    fs = h.founders
    p = h.open(fs[0], "text", {})
    cast: dict[int, list[Item]] = {i: [] for i in votes1}
    for i, choices in votes1.items():
        for c in choices:
            cast[i].append(h.act(fs[i], VOTE, {"proposal": p.id, "choice": c}, deps=[p.id]))
    h.clock += 2 * HOUR_MS
    w = [h.seen(fs[i], deps=[p.id], ts=h.clock).id for i in (3, 4, 5)]

    def claim(sees: dict[int, int]) -> str:  # majority over the votes seen (quorum met: two of seven)
        chosen = [votes1[i][k] for i, k in sees.items()]
        return "passed" if chosen.count("yes") > chosen.count("no") else "rejected"

    t1 = h.make(fs[6], TALLY, {"proposal": p.id, "outcome": claim(sees1)}, deps=[*w, *(cast[i][k].id for i, k in sees1.items())])
    t2 = h.make(fs[0], TALLY, {"proposal": p.id, "outcome": claim(sees2)}, deps=[*w, *(cast[i][k].id for i, k in sees2.items())])
    h.add(t1, t2)
    assert (h.reason(t1), h.reason(t2)) == (None, None)
    return h, p, t1, t2


def test_between_equal_counts_the_one_that_counted_more_recent_votes_decides() -> None:
    """Rank: (electors counted, sum of the seqs of the votes counted). f1 voted yes then no; both
    tallies count two electors; T2 saw f1's later vote."""
    h, p, t1, t2 = two_counts({1: ["yes", "no"], 2: ["yes"]}, {1: 0, 2: 0}, {1: 1, 2: 0})
    assert (t1.body["outcome"], t2.body["outcome"]) == ("passed", "rejected")  # 2 yes; 1 yes 1 no
    assert h.fold.ranks[t1.id][0] == h.fold.ranks[t2.id][0] == 2
    assert h.fold.ranks[t2.id][1] == h.fold.ranks[t1.id][1] + 1
    assert h.fold.is_final(h.fold.state.proposals[p.id]) == (1, 2)
    assert h.fold.state.proposals[p.id].decided_by == t2.id


def test_between_equal_ranks_the_tally_that_sorts_first_decides() -> None:
    """f1 voted yes then no, f2 no then yes: T1 counted f1's no and f2's no, T2 f1's yes and f2's
    yes; both rank (2, 3)."""
    h, p, t1, t2 = two_counts({1: ["yes", "no"], 2: ["no", "yes"]}, {1: 1, 2: 0}, {1: 0, 2: 1})
    assert h.fold.ranks[t1.id] == h.fold.ranks[t2.id]
    assert {t1.body["outcome"], t2.body["outcome"]} == {"passed", "rejected"}
    first = min((t1, t2), key=lambda t: h.fold.graph.key(t.id))
    assert h.fold.state.proposals[p.id].decided_by == first.id
    both = [h.items[i] for i in h.items if i != h.genesis.id]
    assert summary(fold_in(h.genesis, [[x] for x in reversed(both)])) == summary(h.fold)


def test_a_re_vote_around_an_early_decision_does_not_stop_its_acknowledgement() -> None:
    """All five electors vote (3 yes, 2 no) and f0's tally decides at once. f1, who voted yes,
    re-votes no on deps that leave the tally out (the window is still open) and tallies its own
    count: rejected, as many electors and a later vote, so it outranks. f2, f3 and f4 name both
    the decision and the re-vote (honest clients name the tips): the decision counted a vote of
    every elector they knew had voted, so they acknowledge it; with f0 that is a quorum, and it
    stands. (Were a count of the re-vote needed, one voter could flip any early decision by
    re-voting before the others acknowledge it.)"""
    h = Hist(founders=4, charter_=charter(decisions={"default": rule(50, "majority", 60)}))
    f0, f1, f2, f3, f4 = h.founders
    p = h.open(f0, "text", {})
    votes = [h.vote(f, p, c, deps=[p.id]) for f, c in ((f0, "yes"), (f1, "yes"), (f2, "yes"), (f3, "no"), (f4, "no"))]
    decided = h.tally(f0, p, "passed", deps=[x.id for x in votes])
    flip = h.make(f1, VOTE, {"proposal": p.id, "choice": "no"}, deps=[x.id for x in votes])
    h.add(flip)
    acks = [h.make(f, RIDE, {"n": 1}, deps=[decided.id, flip.id]) for f in (f2, f3, f4)]
    h.add(*acks)
    overturn = h.make(f1, TALLY, {"proposal": p.id, "outcome": "rejected"}, deps=[flip.id])
    h.add(overturn)
    assert [h.reason(x) for x in (decided, flip, overturn)] == [None, None, None]
    assert h.fold.ranks[overturn.id] > h.fold.ranks[decided.id]
    prop = h.fold.state.proposals[p.id]
    assert (prop.status, prop.decided_by) == ("passed", decided.id)
    assert h.fold.is_final(prop) == (4, 3)
    every = [h.items[i] for i in h.items if i != h.genesis.id]
    assert summary(fold_in(h.genesis, [[x] for x in reversed(every)])) == summary(h.fold)


def test_finality_needs_at_least_one_acknowledgement() -> None:
    """max(1, ceil(quorum x E / 100)): a quorum of 0 still needs one elector."""
    h = Hist(charter_=charter(decisions={"default": rule(0, "majority", 60)}))
    p = h.open(h.founders[0], "text", {})
    h.vote(h.founders[1], p, "yes")
    h.close(60)
    t = h.tally(h.founders[2], p, "passed")
    assert h.fold.is_final(h.fold.state.proposals[p.id]) == (1, 1)  # its author's own tally
    assert h.fold.acks(h.fold.state.proposals[p.id], (t.id,)) == {t.id: 1}


def test_a_sanction_cannot_validate_itself_through_acknowledgements() -> None:
    """V votes "block" on their own expulsion (consent). Tally T1 did not see that vote and says
    passed; T2 saw it and says rejected; then every elector sees both and V's vote. The electors
    saw the block: they acknowledge T2, and V is not expelled.

    Doc, "Deciding": an elector acknowledges T if "the votes A would count (as a tally, ignoring
    closure) are exactly those T counted" -- and a tally passes over votes it knows were bound. Read
    that way, once T1 decides, V's vote (beyond T1's view of V) is bound by T1's own expulsion, the
    electors' counts match T1, and T1 is final: T1 and T2 are both consistent outcomes. The fold
    compares the votes in view, bindings ignored (the reading the doc should state)."""
    rules = {"default": rule(50, "majority"), "sanction": rule(50, "consent", minutes=60)}
    h = Hist(founders=4, charter_=charter(decisions=rules, offences=OFFENCES))
    f0, f1, f2, f3, v = h.founders
    s = h.open(f0, "sanction", {"member": v, "clause": "fraud", "evidence": []})
    yes = [h.vote(f, s, "yes", deps=[s.id]) for f in (f0, f1, f2)]
    block = h.vote(v, s, "block", deps=[s.id])
    h.clock += 2 * HOUR_MS
    w = [h.seen(f, deps=[s.id], ts=h.clock) for f in (f0, f1, f2)]
    t1 = h.make(f3, TALLY, {"proposal": s.id, "outcome": "passed"}, deps=[x.id for x in w])
    t2 = h.make(f0, TALLY, {"proposal": s.id, "outcome": "rejected"}, deps=[*(x.id for x in w), block.id])
    h.add(t1, t2)
    for f in (f1, f2, v):
        h.add(h.make(f, RIDE, {"n": 1}, deps=[t1.id, t2.id, block.id]))
    prop = h.fold.state.proposals[s.id]
    assert h.fold.acks(prop, (t1.id, t2.id)) == {t1.id: 1, t2.id: 4}
    assert (prop.status, prop.decided_by) == ("rejected", t2.id)
    assert h.fold.state.sanctions == {}
    assert all(x.id in closure(h.items, t1.id) for x in yes)


def test_a_member_cannot_unsee_a_decision_their_own_chain_has_seen() -> None:
    """Threat model: "part of the electorate tallies with stale deps, leaving out the decision": a
    member's knowledge is their whole chain's past. f1 acted after seeing the decision; f1's later
    tally and vote that name only old deps still see it."""
    h = Hist()
    f1 = h.founders[1]
    p, t = h.decide("text", {}, minutes=None)
    h.seen(f1)  # f1 has seen the decision
    stale_tally = h.tally(f1, p, "rejected", deps=[p.id])
    stale_vote = h.vote(f1, p, "no", deps=[p.id])
    assert (h.reason(stale_tally), h.reason(stale_vote)) == ("proposal_closed", "proposal_closed")
    assert h.fold.state.proposals[p.id].decided_by == t.id


def test_a_sanctioned_members_stale_tally_still_counts_what_it_saw() -> None:
    """Not defended, by design: tallies are never bound; a sanctioned member's tally that did not
    see their sanction is judged by its own view and may decide."""
    h = Hist(founders=3)
    f0, f1, f2, f3 = h.founders
    p = h.open(f0, "text", {})
    for f in h.founders:
        h.vote(f, p, "yes")
    before = h.tip
    h.decide("sanction", {"member": f3, "clause": "misconduct", "evidence": []}, voters=[f0, f1, f2])
    assert h.fold.suspended(f3, h.time())
    t = h.tally(f3, p, "passed", deps=[before])  # f3's chain holds only its vote: it never saw the sanction
    assert h.fold.view[t.id] is None and h.reason(t) is None
    assert h.fold.state.proposals[p.id].decided_by == t.id


def test_a_suspended_member_stays_a_member_and_may_be_sanctioned_again() -> None:
    h = Hist(charter_=charter(offences=OFFENCES))
    x = h.person("x")
    h.apply(x)
    first, _ = h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    assert h.fold.state.status(x) == MEMBER and not h.fold.in_good_standing(x, h.time())
    op = h.open(h.founders[0], "sanction", {"member": x, "clause": "fraud", "evidence": []})
    assert h.reason(op) is None
    assert x not in h.fold.state.proposals[op.id].electorate  # not in good standing when it opened
    appeal = h.open(x, "lift", {"sanction": first.id})
    assert h.reason(appeal) is None and x not in h.fold.state.proposals[appeal.id].electorate


# ---- equivocation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sanction", "days", "forgive"), [("suspend", 1, 0), ("expel", 0, 0), ("none", 0, 0), ("suspend", 0, 0), ("suspend", 1, 1)]
)
def test_equivocation_is_answered_as_the_charter_says(sanction: str, days: int, forgive: int) -> None:
    h = Hist(charter_=charter(equivocation={"sanction": sanction, "days": days, "forgive": forgive}))
    x = h.person("x")
    h.apply(x)
    a, b, proof = h.equivocate(x)
    assert h.reason(a) is None and h.reason(proof) is None
    assert h.fold.result(b.id) == ("forked", None)
    assert (h.fold.height[proof.id], h.fold.graph.key(proof.id)[1]) == (h.fold.height[a.id] + 1, 0)
    s = h.fold.state
    if sanction == "none":
        assert s.sanctions == {}
        assert h.reason(h.app(x)) is None
        return
    x_s = s.sanctions[proof.id]
    kind = "warning" if forgive else sanction
    assert (x_s.member, x_s.kind, x_s.clause, x_s.evidence, x_s.imposed_by, x_s.bound) == (
        x,
        kind,
        "equivocation",
        (a.id, b.id),
        proof.id,
        a.seq,
    )
    nxt = h.app(x)
    if kind == "expel":
        assert h.reason(nxt) == "status_expelled"
    elif kind == "warning" or days == 0:
        assert h.reason(nxt) is None
    else:
        assert h.fold.state.sanctions[proof.id].until == h.time(nxt) + DAY_MS  # from the next action's co-op time
        assert h.reason(nxt) == "suspended"
        h.advance(DAY_MS)
        assert h.reason(h.app(x)) is None


def test_forgive_counts_equivocations_and_a_repeat_is_sanctioned() -> None:
    h = Hist(charter_=charter(equivocation={"sanction": "suspend", "days": 3, "forgive": 2}))
    x = h.person("x")
    h.apply(x)
    kinds = []
    for _ in range(3):
        *_, proof = h.equivocate(x)
        kinds.append(h.fold.state.sanctions[proof.id].kind)
        h.advance(4 * DAY_MS)
    assert kinds == ["warning", "warning", "suspend"]


def test_the_default_charter_warns_on_a_first_equivocation() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    *_, first = h.equivocate(x)
    assert h.fold.state.sanctions[first.id].kind == "warning"
    assert h.reason(h.app(x)) is None
    *_, second = h.equivocate(x)
    assert h.fold.state.sanctions[second.id].kind == "suspend"
    nxt = h.app(x)
    assert h.reason(nxt) == "suspended"
    assert h.fold.state.sanctions[second.id].until == h.time(nxt) + 7 * DAY_MS


def test_the_proof_sorts_before_the_equivocators_next_action_whatever_the_ids() -> None:
    h = Hist(charter_=charter(equivocation={"sanction": "suspend", "days": 3}))
    x = h.person("x")
    h.apply(x)
    a, _, proof = h.equivocate(x)
    nxt = h.make(x, RIDE, {"n": 1}, deps=[a.id])  # same height as the proof
    h.add(nxt)
    assert h.fold.height[nxt.id] == h.fold.height[proof.id]
    assert h.reason(nxt) == "suspended"


def test_an_equivocation_proof_waits_for_its_canonical_action() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    a, b, proof = h.equivocate(x)
    f = Fold(h.genesis)
    rest = [h.items[i] for i in h.items if i not in (a.id, b.id, h.genesis.id)]
    f.add_items([*rest, proof])
    assert f.result(proof.id) == ("deferred", None)
    assert f.waits_for(proof.id) == [a.id]
    assert f.deferred == 1
    f.add_items([a])
    f.add_items([b], ghosts={b.id})
    assert f.deferred == 0
    assert summary(f) == summary(h.fold)


def test_an_equivocation_suspension_cannot_be_backdated_with_stale_deps() -> None:
    h = Hist(charter_=charter(equivocation={"sanction": "suspend", "days": 90}))
    x = h.person("x")
    join = h.apply(x)
    h.advance(100 * DAY_MS)  # the co-op lives on for 100 days
    a, _, proof = h.equivocate(x, deps=[join.id])  # both forks name only x's application, 100 days old
    assert h.time(a) < TS0 + DAY_MS
    nxt = h.app(x)  # x's very next action, on current deps
    assert h.fold.state.sanctions[proof.id].until == h.time(nxt) + 90 * DAY_MS
    assert h.reason(nxt) == "suspended"


def test_an_equivocators_stale_next_action_starts_the_suspension_early_a_documented_limit() -> None:
    """A documented limit (docs/GOVERNANCE.md, "What the rules do not prevent"): a suspension
    counts from the co-op time of the member's next action after the fork, and that action's deps
    are its author's choice. x forks on month-old deps and names only the kept fork as the next
    action's deps: the 7-day suspension runs from that month-old time, so x's first action on
    current deps a day later is applied. What bounds it: the stale action itself is suspended, and
    the fork is still answered (recorded, with the proof as evidence, and counted by forgive)."""
    h = Hist(charter_=charter(equivocation={"sanction": "suspend", "days": 7, "forgive": 0}))
    x = h.person("x")
    join = h.apply(x)
    h.advance(30 * DAY_MS)
    a, _, proof = h.equivocate(x, deps=[join.id])
    stale = h.act(x, RIDE, {"n": 1}, deps=[a.id])
    assert h.reason(stale) == "suspended"
    assert h.fold.state.sanctions[proof.id].until == h.time(stale) + 7 * DAY_MS
    assert h.fold.state.sanctions[proof.id].started_by == stale.id
    now = h.advance(DAY_MS)[-1]
    later = h.act(x, RIDE, {"n": 2}, deps=[now.id])
    assert h.time(later) > h.fold.state.sanctions[proof.id].until
    assert h.reason(later) is None


def test_a_withheld_action_of_an_equivocator_does_not_undo_a_decision() -> None:
    """Doc: "nothing that arrives late, however it sorts, changes what an action was judged on"
    (only a late proof may). e forks (1-day suspension, no end until e's next action); three days
    later F opens a proposal (e suspended, not an elector) and the whole electorate passes it. e
    then publishes its next action, made on stale deps: it sorts before the opening and sets the
    suspension's end in the past, but the opening never saw that action, so in its view the
    suspension had not started: e stays out of the electorate and the decision stands."""
    h = Hist(founders=3, charter_=charter(equivocation={"sanction": "suspend", "days": 1, "forgive": 0}))
    f0, f1, f2, e = h.founders
    first = h.seen(e)
    a, _, _ = h.equivocate(e, deps=[first.id])
    held = h.make(e, RIDE, {"n": 1}, deps=[a.id])  # e's next action, withheld
    h.advance(3 * DAY_MS, witnesses=[f0, f1, f2])
    p = h.open(f0, "text", {})
    assert e not in h.fold.state.proposals[p.id].electorate
    for v in (f0, f1, f2):
        h.vote(v, p, "yes")
    t = h.tally(f0, p, "passed")
    assert h.reason(t) is None
    h.fold.add_items([held])
    assert h.fold.graph.key(held.id) < h.fold.graph.key(p.id)
    assert e not in h.fold.state.proposals[p.id].electorate
    assert h.reason(t) is None


def test_a_proof_about_a_stranger_changes_nothing_and_is_not_counted() -> None:
    h = Hist(charter_=charter(equivocation={"sanction": "expel", "days": 0}))
    x = h.person("x")
    before = h.fold.state_hash()
    a, _, proof = h.equivocate(x)
    assert h.reason(a) == "status_none" and h.reason(proof) == "status_none"
    assert h.fold.state.sanctions == {}
    assert h.fold.state_hash() == before  # strangers are outside the state hash
    assert h.reason(h.apply(x)) is None  # nothing was imposed on them


def test_actions_built_on_the_losing_fork_are_judged() -> None:
    """Others built on the displaced fork (a ghost): their actions are judged, not deferred; the
    ghost is never in the state, and what passes through it is still in their causal past."""
    h = Hist()
    f0, f1, _f2 = h.founders
    x = h.person("x")
    h.apply(x)
    p = h.open(f0, "text", {})
    _a, b, proof = h.equivocate(x)
    on_ghost = h.vote(f1, p, "yes", deps=[b.id])
    assert h.reason(on_ghost) is None
    assert h.fold.deferred == 0
    assert p.id in closure(h.items, on_ghost.id)
    before = h.fold.state_hash()
    f = Fold(h.genesis)
    f.add_items([proof, *(it for i, it in h.items.items() if i not in (h.genesis.id, b.id))])  # without the ghost
    assert f.result(on_ghost.id) == ("deferred", None)
    assert f.waits_for(on_ghost.id) == [b.id]
    f.add_items([b], ghosts={b.id})
    assert f.result(on_ghost.id) == ("applied", None)
    assert f.state_hash() == before
    assert b.id not in f.tips()


def test_a_fold_given_both_forks_is_still_order_independent() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.open(f0, "text", {})
    v0 = h.vote(f0, p, "yes")
    v1 = h.make(f1, VOTE, {"proposal": p.id, "choice": "yes"}, deps=[p.id])
    head = h.heads.get(f2, (0, None))
    plain = h.make(f2, RIDE, {"fork": 1}, deps=[v0.id])
    h.heads[f2] = head
    seeing = h.make(f2, RIDE, {"fork": 2}, deps=[v0.id, v1.id])
    kept, ghost = sorted((plain, seeing), key=lambda i: i.id)
    t = h.make(f0, TALLY, {"proposal": p.id, "outcome": "open"}, deps=[plain.id])  # 1 of 3 voted in its past
    assert v1.id not in closure(h.items, t.id)
    base = [h.items[i] for i in (p.id, v0.id, v1.id)]
    proof = proof_item(kept, ghost)
    one = fold_in(h.genesis, [base, [plain], [seeing], [proof], [t]], ghosts={ghost.id})
    two = fold_in(h.genesis, [base, [seeing], [t], [proof], [plain]], ghosts={ghost.id})
    assert one.results[t.id] is None
    assert two.results[t.id] is None
    assert summary(one) == summary(two)


# ---- signed actions -------------------------------------------------------------------------------


def signed_coop() -> tuple[list[SigningKey], Any, list[Any], Any]:
    """A small co-op of real signed actions ending in two equivocations by one member:
    (keys, genesis, actions, proofs)."""
    keys = [SigningKey(make_id("signed member", i)) for i in range(4)]
    k0, k1, k2, k3 = keys
    g = genesis(
        charter_=charter(equivocation={"sanction": "suspend", "days": 3, "forgive": 1}), founders=[k1.public_key, k3.public_key], key=k0
    )
    out: list[Any] = []
    heads: dict[bytes, Any] = {k0.public_key: g}

    def act(k: SigningKey, kind: str, body: Any, deps: list[bytes], ts: int = TS0, commit: bool = True) -> Any:
        prev = heads.get(k.public_key)
        a = sign_action(
            k, coop=g.id, seq=prev.seq + 1 if prev else 1, prev=prev.id if prev else None, deps=deps, ts=ts, kind=kind, body=body
        )
        if commit:
            heads[k.public_key] = a
            out.append(a)
        return a

    join = act(k2, APPLY, {"note": "hi"}, [g.id])
    p = act(k0, OPEN, {"type": "text", "title": "Sunday rides", "payload": {}}, [join.id])
    v0 = act(k0, VOTE, {"proposal": p.id, "choice": "yes"}, [join.id])
    v2 = act(k2, VOTE, {"proposal": p.id, "choice": "no"}, [p.id])
    v1 = act(k1, VOTE, {"proposal": p.id, "choice": "yes"}, [v0.id, v2.id])
    v3 = act(k3, VOTE, {"proposal": p.id, "choice": "yes"}, [v1.id])
    act(k1, TALLY, {"proposal": p.id, "outcome": "passed"}, [v0.id, v1.id, v2.id, v3.id])  # the whole electorate
    proofs = []
    for n in range(2):
        x = act(k2, RIDE, {"from": "Ghent", "n": n}, [v2.id], commit=False)
        y = act(k2, RIDE, {"from": "Bruges", "n": n}, [v2.id], commit=False)
        proofs.append(make_proof(x, y))
        canonical = x if x.id < y.id else y
        heads[k2.public_key] = canonical
        out.append(canonical)
    act(k2, RIDE, {"from": "Lier"}, [out[-1].id])  # suspended: the second proof sorts before it
    return keys, g, out, proofs


def test_signed_actions_and_proofs_through_fold_add() -> None:
    keys, g, actions, proofs = signed_coop()
    f = Fold(g, snapshot_every=2)
    f.add(actions, proofs)
    for a in actions:
        it = f.items[a.id]
        assert it == Item.of(a)
        envelope = (a.author, a.seq, a.prev, a.env.deps, a.env.ts, a.kind, codec.decode(a.body))
        assert (it.author, it.seq, it.prev, it.deps, it.ts, it.kind, it.body) == envelope
    for proof in proofs:
        assert f.items[proof.id] == Item.of_proof(proof) == proof_item(Item.of(proof.a), Item.of(proof.b))
        assert f.result(proof.id) == ("applied", None)
        assert f.result(proof.b.id) == ("forked", None)  # a proof brings its larger-id half as a ghost
    assert [f.result(a.id) for a in actions] == [("applied", None)] * (len(actions) - 1) + [("rejected", "suspended")]
    p = next(iter(f.state.proposals.values()))
    assert (p.status, p.title) == ("passed", "Sunday rides")
    assert [f.state.sanctions[pr.id].kind for pr in proofs] == ["warning", "suspend"]
    # every delivery order, proofs included, gives the same state
    rng = random.Random(7)
    for _ in range(6):
        shuffled: list[Any] = [*actions, *proofs]
        rng.shuffle(shuffled)
        h = Fold(g, snapshot_every=rng.choice((1, 3)))
        for x in shuffled:
            h.add(*(([], [x]) if x in proofs else ([x], [])))
        assert summary(h) == summary(f)
    # duplicates, a proof twice, the ghost again, and another co-op's actions change nothing
    stranger = genesis(key=keys[1], ts=TS0 + 5)
    alien = sign_action(keys[2], coop=stranger.id, seq=1, prev=None, ts=TS0, kind=APPLY, body={})
    before = summary(f)
    f.add([*actions, stranger, alien], [*proofs, *proofs], forked=[proofs[0].b])
    assert summary(f) == before
    assert f.result(alien.id) == ("unknown", None)


def test_a_parted_proof_folded_before_its_actions_does_not_displace_the_kept_one() -> None:
    """Two devices go on after a fork: a, b at seq 2 (a the smaller id, kept), then a2 on a and b2
    on b. Fork choice keeps a2 (its prev is kept) even when b2 has the smaller id, so the proof
    (b2, a2) has its larger-id half kept. Fold.add must not take that half for a ghost when the
    proof comes first (a node folds proofs it stored, or was sent, before the actions): the state
    would depend on the order of arrival."""
    k0, k2 = SigningKey(make_id("parted k0")), SigningKey(make_id("parted k2"))
    g = genesis(key=k0)
    join = sign_action(k2, coop=g.id, seq=1, prev=None, deps=[g.id], ts=TS0, kind=APPLY, body={})

    def act(prev: Any, n: int, tag: str) -> Any:
        return sign_action(k2, coop=g.id, seq=prev.seq + 1, prev=prev.id, deps=[g.id], ts=TS0 + n, kind=RIDE, body={"t": tag, "n": n})

    for n in range(100):  # ids are hashes: find a history where the losing branch has the smaller id
        a, b = sorted((act(join, n, "x"), act(join, n, "y")), key=lambda v: v.id)
        a2, b2 = act(a, n, "a2"), act(b, n, "b2")
        if b2.id < a2.id:
            break
    p1, p2 = make_proof(a, b), make_proof(a2, b2)
    assert (p2.a.id, p2.b.id) == (b2.id, a2.id)
    whole = Fold(g)
    whole.add([join, a, a2], [p1, p2], forked=[b, b2])
    proofs_first = Fold(g)
    proofs_first.add([join, a], [p1, p2], forked=[b, b2])
    proofs_first.add([a2])
    assert whole.result(a2.id) == proofs_first.result(a2.id) == ("applied", None)
    assert summary(proofs_first) == summary(whole)
    assert whole.state.sanctions[p1.id].bound == 2 and p2.id not in whole.state.sanctions  # one fork, one answer


def test_forked_actions_through_fold_add() -> None:
    _, g, actions, proofs = signed_coop()
    f = Fold(g)
    ghost = proofs[0].b
    f.add(actions, forked=[ghost])
    assert f.result(ghost.id) == ("forked", None)
    f.add(proofs=proofs)
    whole = Fold(g)
    whole.add(actions, proofs)
    assert summary(f) == summary(whole)


def test_a_redacted_application_body_changes_nothing() -> None:
    _, g, actions, proofs = signed_coop()
    full = Fold(g)
    full.add(actions, proofs)
    redacted = Fold(g)
    redacted.add([a.without_body() if a.kind == RIDE else a for a in actions], proofs)
    assert any(a.kind == RIDE for a in actions)
    assert summary(redacted) == summary(full)


def test_a_fold_starts_from_a_genesis() -> None:
    _, g, actions, _ = signed_coop()
    with pytest.raises(ValueError):
        Fold(actions[0])
    f = Fold(g)
    assert f.state.coop == g.id and f.result(g.id) == ("applied", None) and f.deferred == 0
