"""protocol/governance.py: the co-op's governance as a deterministic fold over signed actions.

Four layers:

* the rules as a table: every kind of RULES (and an application kind), by the author's standing
  (none, applicant, member, suspended member, left, expelled), by holding the permission or not,
  with the exact reject reason written out here from the charter docs, not read from RULES;
* unit tests of the arithmetic (thresholds, quorum), causal time, amendments, admission, leaving,
  sanctions and appeals, roles, federation, tallies and equivocation;
* Hypothesis properties over simulated histories (tests/gov_helpers.py: members acting on their
  own lagging views, with concurrent votes, sanctions, amendments and equivocations): every
  delivery order gives the same state; incremental = from scratch = batched; a tally's result never
  changes once folded, and only a better-informed concurrent tally changes a decision; sanctions
  bite; rejected actions never reach the state (checked by code that recomputes outcomes itself);
* ``frontier`` against a brute-force closure on random DAGs.

Most histories are built from ``Item`` values directly (signing is slow); a few tests use real
signed actions and proofs to cover ``Item.of`` and ``Fold.add``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, make_proof, sign_action
from protocol.charter import APPLY, LEAVE, OPEN, SPONSOR, TALLY, VOTE
from protocol.governance import (
    APPLICANT,
    DAY_MS,
    EQUIVOCATION,
    EXPELLED,
    LEFT,
    MEMBER,
    NONE,
    RULES,
    Fold,
    Item,
    Proposal,
    outcome,
)
from protocol.keys import SigningKey
from tests.gov_helpers import (
    ALL_PERMS,
    APP_KINDS,
    FOUNDER_KEY,
    RIDE,
    TS0,
    Hist,
    History,
    batches,
    canon,
    causal_shuffle,
    charter,
    closure,
    count_outcome,
    fold_in,
    frontier_of,
    genesis,
    heights,
    make_id,
    proof_item,
    rule,
    simulate,
    summary,
)

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- the rules, as a table -----------------------------------------------------------------------

STANDINGS = ("none", "applicant", "member", "suspended", "left", "expelled")
KINDS = (APPLY, SPONSOR, LEAVE, OPEN, VOTE, TALLY, EQUIVOCATION, RIDE)
NEEDS: dict[str, str | None] = {APPLY: None, SPONSOR: "sponsor", LEAVE: None, OPEN: "propose", VOTE: "vote", TALLY: "tally"}
NEEDS.update({EQUIVOCATION: None, RIDE: "*"})


def expected(kind: str, standing: str, permitted: bool) -> str | None:
    """What the charter docs say should happen: None (applied) or the reject reason."""
    status = MEMBER if standing == "suspended" else standing
    if kind == EQUIVOCATION:
        return None  # a proof is evidence: it always applies, whoever the author is
    if kind == APPLY:
        return None if status in (NONE, LEFT) else f"status_{status}"
    if kind == LEAVE:
        return None if status in (MEMBER, APPLICANT) else f"status_{status}"
    if standing == "suspended":
        return "suspended"
    if status != MEMBER:
        return f"status_{status}"
    return None if permitted else "no_permission"


def table_charter(kind: str, permitted: bool) -> dict[str, Any]:
    """Membership by vote; founders hold every permission; the member role lacks ``kind``'s when not permitted."""
    need = NEEDS[kind]
    member = list(ALL_PERMS) if permitted else [p for p in ALL_PERMS if p != need and need is not None]
    return charter(
        policy="vote",
        roles={"member": member, "founder": ALL_PERMS},
        offences={
            "misconduct": {"sanction": "suspend", "days": 30, "text": "Acting against the charter"},
            "fraud": {"sanction": "expel", "days": 0, "text": "Fraud"},
        },
    )


def put_in_standing(h: Hist, who: bytes, standing: str) -> None:
    if standing == "none":
        return
    assert h.reason(h.apply(who)) is None
    if standing == "applicant":
        return
    h.decide("admit", {"member": who})
    if standing == "suspended":
        h.decide("sanction", {"member": who, "clause": "misconduct", "evidence": []})
        assert h.fold.state.suspended(who, h.clock)
    elif standing == "left":
        assert h.reason(h.leave(who)) is None
    elif standing == "expelled":
        h.decide("sanction", {"member": who, "clause": "fraud", "evidence": []})
    want = {"suspended": MEMBER}.get(standing, standing)
    assert h.fold.state.status(who) == want


def do(h: Hist, who: bytes, kind: str) -> Item:
    """``who`` does ``kind`` in a context where only standing and permission can stop it."""
    founder = h.founders[0]
    if kind == APPLY:
        return h.apply(who)
    if kind == SPONSOR:
        other = h.person("applicant")
        assert h.reason(h.apply(other)) is None
        return h.sponsor(who, other)
    if kind == LEAVE:
        return h.leave(who)
    if kind == OPEN:
        return h.open(who, "text", {})
    if kind in (VOTE, TALLY):
        p = h.open(founder, "text", {})
        assert h.reason(p) is None
        return h.vote(who, p, "yes") if kind == VOTE else h.tally(who, p, "open")
    if kind == EQUIVOCATION:
        return h.equivocate(who)[2]
    return h.app(who, kind)


def test_the_table_covers_every_rule() -> None:
    assert set(RULES) | {RIDE} == set(KINDS)


@pytest.mark.parametrize("permitted", [True, False], ids=["with_permission", "without_permission"])
@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_rule_table(kind: str, standing: str, permitted: bool) -> None:
    h = Hist(charter_=table_charter(kind, permitted))
    x = h.person("x")
    put_in_standing(h, x, standing)
    before = h.fold.state.status(x)
    it = do(h, x, kind)
    assert h.reason(it) == expected(kind, standing, permitted)
    if h.reason(it) is not None:
        assert h.fold.state.status(x) == before  # a rejected action changes nothing about its author


@pytest.mark.parametrize("permitted", [True, False], ids=["with_propose", "without_propose"])
@pytest.mark.parametrize("standing", ["member", "suspended", "expelled", "left"])
def test_appeal_table(standing: str, permitted: bool) -> None:
    h = Hist(charter_=table_charter(OPEN, permitted))
    x, y = h.person("x"), h.person("y")
    put_in_standing(h, x, "member")
    put_in_standing(h, y, "member")
    theirs, _ = h.decide("sanction", {"member": y, "clause": "misconduct", "evidence": []})
    own, _ = h.decide("sanction", {"member": x, "clause": "fraud" if standing == "expelled" else "misconduct", "evidence": []})
    if standing == "member":  # the 30-day suspension has run out: still a sanction one may appeal
        h.clock += 31 * DAY_MS
        h.app(h.founders[1], ts=h.clock)
        assert h.fold.state.in_good_standing(x, h.clock)
    if standing == "left":
        assert h.reason(h.leave(x)) is None
    appeal = h.open(x, "lift", {"sanction": own.id})
    assert h.reason(appeal) is None
    other = h.open(x, "lift", {"sanction": theirs.id})
    want = {"member": None if permitted else "no_permission", "suspended": "suspended"}.get(standing, f"status_{standing}")
    assert h.reason(other) == want


REJECTIONS: list[tuple[str, Callable[[Hist, bytes], Item], str]] = [
    ("admit_a_non_applicant", lambda h, x: h.open(x, "admit", {"member": h.person("nobody")}), "not_an_applicant"),
    (
        "sanction_unknown_clause",
        lambda h, x: h.open(x, "sanction", {"member": h.founders[1], "clause": "gossip", "evidence": []}),
        "unknown_clause",
    ),
    (
        "sanction_a_non_member",
        lambda h, x: h.open(x, "sanction", {"member": h.person("nobody"), "clause": "misconduct", "evidence": []}),
        "not_a_member",
    ),
    ("lift_unknown_sanction", lambda h, x: h.open(x, "lift", {"sanction": make_id("no sanction")}), "unknown_sanction"),
    ("grant_unknown_role", lambda h, x: h.open(x, "role", {"member": h.founders[1], "role": "pilot", "grant": True}), "unknown_role"),
    ("federate_with_itself", lambda h, x: h.open(x, "federate", {"coop": h.coop, "terms": {}}), "self_federation"),
    ("unfederate_a_stranger", lambda h, x: h.open(x, "unfederate", {"coop": make_id("other coop")}), "not_federated"),
    ("vote_on_nothing", lambda h, x: h.vote(x, make_id("no proposal"), "yes"), "unknown_proposal"),
    ("tally_nothing", lambda h, x: h.tally(x, make_id("no proposal"), "open"), "unknown_proposal"),
    ("sponsor_a_member", lambda h, x: h.sponsor(x, h.founders[1]), "not_an_applicant"),
    ("sponsor_a_stranger", lambda h, x: h.sponsor(x, h.person("nobody")), "not_an_applicant"),
    ("claim_a_wrong_outcome", lambda h, x: h.tally(x, h.open(x, "text", {}), "passed"), "wrong_outcome:open"),
    ("second_genesis", lambda h, x: h.act(x, "coop.genesis", {"name": "Second"}, seq=1, prev=None), "second_genesis"),
]


@pytest.mark.parametrize(("build", "reason"), [pytest.param(b, r, id=name) for name, b, r in REJECTIONS])
def test_contextual_rejections(build: Callable[[Hist, bytes], Item], reason: str) -> None:
    h = Hist()
    it = build(h, h.founders[0])
    assert h.reason(it) == reason
    if it.kind == OPEN:
        assert it.id not in h.fold.state.proposals


# ---- decision arithmetic -------------------------------------------------------------------------


def proposal(electorate: int, quorum: int, threshold: str, votes: list[str]) -> tuple[Proposal, dict[bytes, int]]:
    voters = [make_id("voter", i) for i in range(electorate)]
    p = Proposal(make_id("p"), make_id("author"), "text", "t", {}, frozenset(voters), quorum, threshold)
    for v, choice in zip(voters, votes, strict=False):
        p.votes[v] = [(3, choice)]
    return p, dict.fromkeys(voters, 10)


@pytest.mark.parametrize(
    ("threshold", "votes", "result"),
    [
        ("majority", ["yes", "no"], "rejected"),  # a tie fails
        ("majority", ["yes", "yes", "no"], "passed"),
        ("majority", ["yes", "yes", "no", "block"], "rejected"),  # block counts against
        ("majority", ["yes", "abstain", "abstain"], "passed"),  # abstain counts for quorum only
        ("majority", ["abstain", "abstain"], "rejected"),
        ("two_thirds", ["yes", "yes", "no"], "passed"),  # exactly 2/3
        ("two_thirds", ["yes", "yes", "no", "no"], "rejected"),
        ("two_thirds", ["yes", "yes", "block"], "passed"),
        ("two_thirds", ["yes", "yes", "yes", "yes", "no", "no", "no"], "rejected"),  # 4/7 < 2/3
        ("two_thirds", ["abstain"], "rejected"),  # yes > 0 needed
        ("two_thirds", ["yes", "abstain", "abstain", "abstain"], "passed"),
        ("consent", ["yes", "no", "no"], "passed"),  # no is not a block
        ("consent", ["yes", "yes", "block"], "rejected"),
        ("consent", ["abstain", "abstain"], "rejected"),
        ("consent", ["yes"], "passed"),
    ],
)
def test_thresholds(threshold: str, votes: list[str], result: str) -> None:
    p, frontier = proposal(len(votes), 0, threshold, votes)
    assert outcome(p, frontier)[0] == result


@pytest.mark.parametrize(
    ("electorate", "quorum", "voted", "quorate"),
    [
        (4, 50, 2, True),  # exactly half
        (4, 50, 1, False),
        (3, 50, 2, True),
        (3, 50, 1, False),  # 33% < 50%
        (3, 34, 1, False),  # 33.3% < 34%
        (3, 33, 1, True),
        (10, 100, 9, False),
        (10, 100, 10, True),
        (5, 0, 1, True),
        (5, 0, 0, False),  # nobody voted: always open
        (1, 100, 1, True),
        (7, 60, 4, False),  # 57% < 60%
        (7, 60, 5, True),
    ],
)
def test_quorum(electorate: int, quorum: int, voted: int, quorate: bool) -> None:
    p, frontier = proposal(electorate, quorum, "majority", ["yes"] * voted)
    assert outcome(p, frontier)[0] == ("passed" if quorate else "open")
    assert count_outcome(quorum, "majority", electorate, {"yes": voted, "no": 0, "abstain": 0, "block": 0}) == outcome(p, frontier)[0]


def test_empty_electorate_is_always_open() -> None:
    p, _ = proposal(0, 0, "majority", [])
    assert outcome(p, {})[0] == "open"


def test_each_voters_latest_vote_within_the_frontier_counts() -> None:
    p, _ = proposal(2, 100, "majority", [])
    a, b = sorted(p.electorate)
    p.votes[a] = [(2, "no"), (5, "yes"), (9, "block")]
    p.votes[b] = [(4, "yes")]
    assert outcome(p, {a: 1, b: 4}) == ("open", {"yes": 1, "no": 0, "abstain": 0, "block": 0})
    assert outcome(p, {a: 4, b: 4}) == ("rejected", {"yes": 1, "no": 1, "abstain": 0, "block": 0})
    assert outcome(p, {a: 8, b: 4})[0] == "passed"
    assert outcome(p, {a: 9, b: 4})[0] == "rejected"
    assert outcome(p, {a: 9, b: 3})[0] == "open"


@given(
    st.integers(1, 12),
    st.integers(0, 100),
    st.sampled_from(["majority", "two_thirds", "consent"]),
    st.lists(st.sampled_from(["yes", "no", "abstain", "block"]), max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_outcome_matches_the_written_rule(electorate: int, quorum: int, threshold: str, votes: list[str]) -> None:
    votes = votes[:electorate]
    p, frontier = proposal(electorate, quorum, threshold, votes)
    counts = {c: votes.count(c) for c in ("yes", "no", "abstain", "block")}
    assert outcome(p, frontier) == (count_outcome(quorum, threshold, electorate, counts), counts)


# ---- causal time ---------------------------------------------------------------------------------


def suspended_member(days: int = 2) -> tuple[Hist, bytes, int]:
    """A co-op where member x has just been suspended for ``days``; returns the suspension's end."""
    h = Hist(charter_=charter(offences={"misconduct": {"sanction": "suspend", "days": days, "text": "x"}}))
    x = h.person("x")
    h.apply(x)
    op, t = h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    until = h.fold.state.sanctions[op.id].until
    assert until == h.fold.ctime[t.id] + days * DAY_MS
    return h, x, until


def test_a_suspended_member_cannot_end_the_suspension_by_claiming_a_later_ts() -> None:
    h, x, until = suspended_member()
    it = h.app(x, ts=until + 10 * DAY_MS)
    assert h.reason(it) == "suspended"
    assert h.fold.ctime[it.id] < until
    v = h.open(x, "text", {}, ts=until + 10 * DAY_MS)
    assert h.reason(v) == "suspended"


def test_depending_on_another_members_later_action_ends_the_suspension() -> None:
    h, x, until = suspended_member()
    assert h.reason(h.app(h.founders[1], ts=until - 1)) is None
    assert h.reason(h.app(x)) == "suspended"  # causal time until - 1: one ms short
    assert h.reason(h.app(h.founders[2], ts=until)) is None
    it = h.app(x)
    assert h.fold.ctime[it.id] == until
    assert h.reason(it) is None
    assert h.fold.state.in_good_standing(x, until)


def test_causal_time_ignores_the_authors_own_ts_even_when_relayed() -> None:
    h, x, until = suspended_member()
    liar = h.app(x, ts=until + 10 * DAY_MS)  # rejected (suspended) but stored: a signed fact
    assert h.reason(liar) == "suspended"
    relay = h.app(h.founders[1], ts=until - DAY_MS)  # an honest member who saw it (deps = [liar])
    assert relay.deps == (liar.id,)
    it = h.app(x)  # depends on relay only: the other authors' largest ts in its past is until - 1 day
    others = max(h.items[i].ts for i in closure(h.items, it.id) if h.items[i].author != x)
    assert others < until
    assert h.fold.ctime[it.id] == others  # actual: until + 10 days, x's own claim
    assert h.reason(it) == "suspended"  # actual: applied


# ---- charters and amendments ---------------------------------------------------------------------


def test_an_amendment_governs_proposals_opened_after_the_amending_tally() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    before = h.open(f0, "text", {})
    new = charter(policy="vote", decisions={"default": rule(100, "consent"), "amend": rule(50, "two_thirds")})
    h.decide("amend", {"charter": new})
    assert h.fold.state.charter == new
    after = h.open(f0, "text", {})
    props = h.fold.state.proposals
    assert (props[before.id].quorum, props[before.id].threshold) == (50, "majority")
    assert (props[after.id].quorum, props[after.id].threshold) == (100, "consent")
    for p in (before, after):
        h.vote(f0, p, "yes")
        h.vote(f1, p, "yes")
    assert h.reason(h.tally(f0, after, "open")) is None  # 2 of 3: below a 100% quorum
    h.vote(f2, before, "block")
    h.vote(f2, after, "block")
    assert h.reason(h.tally(f0, before, "passed")) is None  # majority: 2 > 0 + 1
    assert h.reason(h.tally(f0, after, "rejected")) is None  # consent: blocked
    # the new membership policy applies to applications after the amendment
    x = h.person("x")
    h.apply(x)
    assert h.fold.state.status(x) == APPLICANT


def test_an_amendment_between_a_sanction_proposal_and_its_tally_drops_a_removed_clause() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    op = h.open(h.founders[0], "sanction", {"member": x, "clause": "misconduct", "evidence": []})
    h.decide("amend", {"charter": charter(offences={})})
    for f in h.founders:
        h.vote(f, op, "yes")
    t = h.tally(h.founders[0], op, "passed")
    assert h.reason(t) is None
    assert h.fold.state.proposals[op.id].status == "passed"
    assert h.fold.state.sanctions == {}
    assert h.fold.state.in_good_standing(x, h.clock)


def test_the_genesis_charter_and_founders() -> None:
    c = charter(policy="sponsored", sponsors=2)
    h = Hist(charter_=c, founders=3)
    s = h.fold.state
    assert s.charter == c
    assert sorted(s.members) == sorted(h.founders)
    assert all(m.status == MEMBER and m.roles == {"member", "founder"} for m in s.members.values())
    assert Hist(founders=0).fold.state.charter == canon(charter())


# ---- admission, leaving ------------------------------------------------------------------------


def test_admission_under_an_open_policy() -> None:
    h = Hist()
    x = h.person("x")
    a = h.apply(x)
    m = h.fold.state.members[x]
    assert (m.status, m.roles, m.since) == (MEMBER, {"member"}, a.id)
    assert h.reason(h.apply(x)) == "status_member"


def test_admission_by_sponsors() -> None:
    h = Hist(charter_=charter(policy="sponsored", sponsors=2))
    f0, f1, _ = h.founders
    x = h.person("x")
    h.apply(x)
    assert h.fold.state.status(x) == APPLICANT
    assert h.reason(h.vote(x, h.open(f0, "text", {}), "yes")) == "status_applicant"
    assert h.reason(h.sponsor(f0, x)) is None
    assert h.reason(h.sponsor(f0, x)) is None  # the same sponsor twice counts once
    assert h.fold.state.members[x].sponsors == {f0}
    assert h.fold.state.status(x) == APPLICANT
    s = h.sponsor(f1, x)
    assert h.fold.state.members[x].status == MEMBER
    assert h.fold.state.members[x].since == s.id
    assert h.reason(h.sponsor(f0, x)) == "not_an_applicant"


def test_admission_by_vote() -> None:
    h = Hist(charter_=charter(policy="vote"))
    x, y = h.person("x"), h.person("y")
    h.apply(x)
    h.apply(y)
    h.sponsor(h.founders[0], x)  # sponsors are recorded but do not admit under a vote policy
    assert h.fold.state.status(x) == APPLICANT
    _, t = h.decide("admit", {"member": x})
    assert h.fold.state.members[x].status == MEMBER
    assert h.fold.state.members[x].since == t.id
    op, _ = h.decide("admit", {"member": y}, choice="no")
    assert h.fold.state.proposals[op.id].status == "rejected"
    assert h.fold.state.status(y) == APPLICANT
    assert h.reason(h.open(h.founders[0], "admit", {"member": x})) == "not_an_applicant"


def test_leave_and_reapply() -> None:
    h = Hist(charter_=charter(policy="vote"))
    x = h.person("x")
    h.apply(x)
    h.decide("admit", {"member": x})
    assert h.reason(h.leave(x)) is None
    assert h.fold.state.status(x) == LEFT
    assert h.reason(h.leave(x)) == "status_left"
    assert h.reason(h.vote(x, h.open(h.founders[0], "text", {}), "yes")) == "status_left"
    assert h.reason(h.apply(x)) is None
    assert h.fold.state.status(x) == APPLICANT  # back through the front door
    assert h.reason(h.leave(x)) is None  # an applicant may withdraw
    assert h.fold.state.status(x) == LEFT


def test_a_member_who_leaves_while_suspended_is_still_suspended_on_return() -> None:
    h, x, _ = suspended_member(days=30)
    assert h.reason(h.leave(x)) is None
    assert h.reason(h.apply(x)) is None
    assert h.fold.state.status(x) == MEMBER
    assert h.reason(h.app(x)) == "suspended"


# ---- sanctions, appeals ------------------------------------------------------------------------


EXPEL_CHARTER = {"fraud": {"sanction": "expel", "days": 0, "text": "Fraud"}}


def test_expel_then_lift_by_appeal() -> None:
    h = Hist(charter_=charter(offences=EXPEL_CHARTER))
    x = h.person("x")
    h.apply(x)
    op, t = h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []})
    s = h.fold.state
    assert s.status(x) == EXPELLED and s.members[x].since == t.id
    assert (s.sanctions[op.id].kind, s.sanctions[op.id].until, s.sanctions[op.id].imposed_by) == ("expel", None, t.id)
    assert h.reason(h.apply(x)) == "status_expelled"
    assert h.reason(h.app(x)) == "status_expelled"
    appeal = h.open(x, "lift", {"sanction": op.id})
    assert h.reason(appeal) is None
    assert x not in h.fold.state.proposals[appeal.id].electorate
    assert h.reason(h.vote(x, appeal, "yes")) == "status_expelled"
    for f in h.founders:
        h.vote(f, appeal, "yes")
    lift = h.tally(h.founders[0], appeal, "passed")
    assert h.reason(lift) is None
    s = h.fold.state
    assert s.sanctions[op.id].lifted_by == lift.id
    assert (s.status(x), s.members[x].roles) == (MEMBER, {"member"})
    assert h.reason(h.app(x)) is None
    assert h.reason(h.open(x, "lift", {"sanction": op.id})) == "unknown_sanction"  # already lifted


def test_lifting_a_suspension_ends_it_at_once() -> None:
    h, x, _ = suspended_member(days=30)
    sid = next(iter(h.fold.state.sanctions))
    appeal = h.open(x, "lift", {"sanction": sid})
    assert h.reason(appeal) is None
    for f in h.founders:
        h.vote(f, appeal, "yes")
    h.tally(h.founders[0], appeal, "passed")
    assert h.reason(h.app(x)) is None


def test_a_member_expelled_twice_stays_expelled_until_both_are_lifted() -> None:
    h = Hist(charter_=charter(offences=EXPEL_CHARTER))
    x = h.person("x")
    h.apply(x)
    first = h.open(h.founders[0], "sanction", {"member": x, "clause": "fraud", "evidence": []})
    second = h.open(h.founders[1], "sanction", {"member": x, "clause": "fraud", "evidence": []})
    for p in (first, second):
        for f in h.founders:
            h.vote(f, p, "yes")
        assert h.reason(h.tally(h.founders[0], p, "passed")) is None
    assert h.fold.state.status(x) == EXPELLED
    h.decide("lift", {"sanction": first.id})
    live = [s for s in h.fold.state.sanctions.values() if s.lifted_by is None]
    assert [s.id for s in live] == [second.id]  # the second expulsion still stands
    assert h.fold.state.status(x) == EXPELLED  # actual: member
    assert h.reason(h.app(x)) == "status_expelled"  # actual: applied


# ---- roles, federation -------------------------------------------------------------------------


def test_a_role_grant_enables_an_application_kind() -> None:
    c = charter(roles={"member": ["propose", "vote", "tally", "sponsor", "food.*"], "driver": ["ride.*"]})
    h = Hist(charter_=c)
    x = h.person("x")
    h.apply(x)
    assert h.reason(h.app(x, "food.order")) is None
    assert h.reason(h.app(x, "ride.offer")) == "no_permission"
    h.decide("role", {"member": x, "role": "driver", "grant": True})
    assert h.fold.state.members[x].roles == {"member", "driver"}
    assert h.reason(h.app(x, "ride.offer")) is None
    assert h.reason(h.app(x, "ride.request")) is None
    assert h.reason(h.app(x, "rides.offer")) == "no_permission"  # "ride.*" is a dotted prefix
    h.decide("role", {"member": x, "role": "driver", "grant": False})
    assert h.reason(h.app(x, "ride.offer")) == "no_permission"


def test_governance_permissions_do_not_grant_application_kinds() -> None:
    h = Hist(charter_=charter(roles={"member": ["propose", "vote", "tally", "sponsor"], "founder": ALL_PERMS}))
    x = h.person("x")
    h.apply(x)
    assert h.reason(h.app(x, "vote")) == "no_permission"
    assert h.reason(h.app(x, "propose.thing")) == "no_permission"


def test_federate_and_unfederate() -> None:
    h = Hist()
    other = make_id("other coop")
    terms = canon({"share": ["rides"], "until": 2030})
    assert h.reason(h.open(h.founders[0], "unfederate", {"coop": other})) == "not_federated"
    _, t = h.decide("federate", {"coop": other, "terms": terms})
    assert h.fold.state.federations == {other: (terms, t.id)}
    h.decide("unfederate", {"coop": other})
    assert h.fold.state.federations == {}
    op, _ = h.decide("federate", {"coop": other, "terms": terms}, choice="no")
    assert h.fold.state.proposals[op.id].status == "rejected"
    assert h.fold.state.federations == {}


# ---- tallies -----------------------------------------------------------------------------------


def test_a_tally_counts_each_voters_latest_vote_in_its_causal_past() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.open(f0, "text", {})
    h.vote(f0, p, "yes")
    no = h.vote(f1, p, "no")
    h.vote(f2, p, "no")
    yes = h.vote(f1, p, "yes")  # f1 changes their mind: 2 yes, 1 no
    wrong = h.tally(f2, p, "rejected")
    assert h.reason(wrong) == "wrong_outcome:passed"
    # a tally that saw only f1's first vote (it depends on `no`, concurrent with the change)
    early = h.make(f0, TALLY, {"proposal": p.id, "outcome": "rejected"}, deps=[no.id, p.id])
    h.add(early)
    assert yes.id not in closure(h.items, early.id)
    assert h.reason(early) is None  # f0 yes, f1 no: 1 yes vs 1 no + quorum met
    assert h.fold.state.proposals[p.id].decided_by == early.id


def test_a_late_concurrent_vote_never_flips_a_tally() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.open(f0, "text", {})
    v0 = h.vote(f0, p, "yes")
    v1 = h.vote(f1, p, "yes")
    t = h.make(f0, TALLY, {"proposal": p.id, "outcome": "passed"}, deps=[v1.id])
    late = h.make(f2, VOTE, {"proposal": p.id, "choice": "block"}, deps=[p.id])  # sorts before t
    h.add(t)
    assert h.reason(t) is None
    h.add(late)
    assert (h.fold.height[late.id], late.id) < (h.fold.height[t.id], t.id)
    assert h.reason(late) is None  # applied (the proposal was open at its place) ...
    assert h.reason(t) is None  # ... but outside t's past: t still passes
    assert h.fold.state.proposals[p.id].decided_by == t.id
    assert h.fold.refolded > 0
    assert summary(h.fold) == summary(fold_in(h.genesis, [[p, v0, v1, late, t]]))
    after = h.vote(f1, p, "no", deps=[t.id])
    assert h.reason(after) == "proposal_closed"


def test_tally_rejections() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.make(f0, OPEN, {"type": "text", "title": "t", "payload": {}}, deps=[h.genesis.id])
    side = h.make(f1, RIDE, {"n": 1}, deps=[h.genesis.id])
    h.add(p, side)
    blind = h.make(f2, TALLY, {"proposal": p.id, "outcome": "open"}, deps=[side.id])  # sorts after p, does not see it
    h.add(blind)
    assert h.reason(blind) == "proposal_not_in_deps"
    h.tip = p.id
    for f in h.founders:
        h.vote(f, p, "yes")
    assert h.reason(h.tally(f0, p, "open")) == "wrong_outcome:passed"
    assert h.reason(h.tally(f0, p, "passed")) is None
    assert h.reason(h.tally(f1, p, "passed")) == "proposal_closed"
    assert h.reason(h.vote(f1, p, "no")) == "proposal_closed"


def test_not_in_electorate() -> None:
    h = Hist()
    p = h.open(h.founders[0], "text", {})
    x = h.person("x")
    h.apply(x)
    assert h.fold.state.status(x) == MEMBER
    assert h.reason(h.vote(x, p, "yes")) == "not_in_electorate"
    assert x in h.fold.state.proposals[h.open(h.founders[0], "text", {}).id].electorate


def test_an_open_claim_leaves_the_proposal_open() -> None:
    h = Hist()
    p = h.open(h.founders[0], "text", {})
    h.vote(h.founders[0], p, "yes")
    t = h.tally(h.founders[1], p, "open")
    assert h.reason(t) is None
    assert (h.fold.state.proposals[p.id].status, h.fold.state.proposals[p.id].decided_by) == ("open", None)


# ---- equivocation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sanction", "days"), [("suspend", 1), ("expel", 0), ("none", 0), ("suspend", 0)])
def test_equivocation_is_sanctioned_as_the_charter_says(sanction: str, days: int) -> None:
    h = Hist(charter_=charter(equivocation={"sanction": sanction, "days": days}))
    x = h.person("x")
    h.apply(x)
    a, b, proof = h.equivocate(x)
    assert h.reason(a) is None and h.reason(proof) is None
    assert (h.fold.height[proof.id], h.fold.height[a.id]) == (h.fold.height[a.id] + 1, h.fold.height[a.id])
    s = h.fold.state
    if sanction == "none":
        assert s.sanctions == {}
        assert h.reason(h.app(x)) is None
        return
    x_sanction = s.sanctions[proof.id]
    assert (x_sanction.member, x_sanction.kind, x_sanction.clause, x_sanction.evidence) == (x, sanction, "equivocation", (a.id, b.id))
    assert x_sanction.imposed_by == proof.id
    nxt = h.app(x)
    if sanction == "expel":
        assert h.reason(nxt) == "status_expelled"
    elif days == 0:
        assert h.reason(nxt) is None
    else:
        assert x_sanction.until == h.fold.ctime[a.id] + DAY_MS
        assert h.reason(nxt) == "suspended"
        h.app(h.founders[1], ts=x_sanction.until)
        assert h.reason(h.app(x)) is None


def test_the_proof_sorts_before_the_equivocators_next_action_whatever_the_ids() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    a, _, proof = h.equivocate(x)
    nxt = h.make(x, RIDE, {"n": 1}, deps=[a.id])  # same height as the proof
    h.fold.add_items([nxt])
    assert h.fold.height[nxt.id] == h.fold.height[proof.id]
    assert h.reason(nxt) == "suspended"


def test_an_equivocation_proof_waits_for_its_canonical_action() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    a, _, proof = h.equivocate(x)
    f = Fold(h.genesis)
    f.add_items([h.items[i] for i in h.items if i not in (a.id, h.genesis.id)] + [proof])
    assert f.result(proof.id) == ("deferred", None)
    assert f.deferred == 1
    f.add_items([a])
    assert f.deferred == 0
    assert summary(f) == summary(h.fold)


def test_an_equivocation_suspension_cannot_be_backdated_with_stale_deps() -> None:
    h = Hist(charter_=charter(equivocation={"sanction": "suspend", "days": 90}))
    x = h.person("x")
    h.apply(x)
    h.app(h.founders[1], ts=TS0 + 100 * DAY_MS)  # the co-op lives on for 100 days
    a, _, proof = h.equivocate(x, deps=[])  # both forks name only prev: x's application, 100 days old
    assert h.fold.ctime[a.id] < TS0 + DAY_MS
    now = h.app(h.founders[2], ts=TS0 + 100 * DAY_MS + 1000)
    nxt = h.act(x, RIDE, {"n": 1}, deps=[now.id])  # x's very next action, on current deps
    assert h.fold.state.sanctions[proof.id].until > h.fold.ctime[nxt.id]  # actual: until = day 90, now = day 100
    assert h.reason(nxt) == "suspended"  # actual: applied


def test_an_outsider_expelled_for_equivocation_cannot_join() -> None:
    h = Hist(charter_=charter(equivocation={"sanction": "expel", "days": 0}))
    x = h.person("x")
    a, _, proof = h.equivocate(x)
    assert h.reason(a) == "status_none" and h.reason(proof) is None
    assert h.fold.state.sanctions[proof.id].kind == "expel"
    assert h.reason(h.apply(x)) == "status_expelled"  # actual: applied, x becomes a member in good standing


# ---- late concurrent governance actions ----------------------------------------------------------
#
# Opening, voting and tallying read everything (standing, roles, charter, electorate, whether the
# proposal is closed) from the action's causal past, so a concurrent action that arrives late and
# sorts earlier changes nothing about them. Two concurrent tallies that disagree are both applied;
# the one that saw more of the vote decides.


def test_a_late_concurrent_tally_does_not_flip_a_decided_proposal() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    other = make_id("other coop")
    p = h.open(f0, "federate", {"coop": other, "terms": {}})
    h.vote(f1, p, "no")
    n2 = h.vote(f2, p, "no")
    early = h.make(f1, TALLY, {"proposal": p.id, "outcome": "rejected"}, deps=[n2.id])  # saw two no votes
    y0 = h.make(f0, VOTE, {"proposal": p.id, "choice": "yes"}, deps=[n2.id])
    y2 = h.make(f2, VOTE, {"proposal": p.id, "choice": "yes"}, deps=[y0.id])  # f2 changes their mind
    late = h.make(f0, TALLY, {"proposal": p.id, "outcome": "passed"}, deps=[y2.id])  # saw 2 yes, 1 no
    assert early.id not in closure(h.items, late.id) and late.id not in closure(h.items, early.id)
    h.add(y0, y2, late)
    assert (h.reason(late), h.fold.state.proposals[p.id].status) == (None, "passed")
    assert other in h.fold.state.federations
    h.add(early)  # arrives last; lower height, so it sorts before `late`
    assert h.reason(late) is None  # actual: proposal_closed
    assert h.fold.state.proposals[p.id].status == "passed"  # actual: rejected
    assert other in h.fold.state.federations  # actual: the federation is gone again


def test_a_late_concurrent_application_does_not_reopen_a_decided_proposal() -> None:
    h = Hist(founders=1)
    f0, f1 = h.founders
    x = h.person("x")
    join = h.make(x, APPLY, {}, deps=[h.genesis.id])  # height 1
    side = h.make(f1, RIDE, {"n": 1}, deps=[h.genesis.id])
    other = make_id("other coop")
    p = h.make(f0, OPEN, {"type": "federate", "title": "t", "payload": {"coop": other, "terms": {}}}, deps=[side.id])
    v = h.make(f0, VOTE, {"proposal": p.id, "choice": "yes"}, deps=[p.id])
    t = h.make(f0, TALLY, {"proposal": p.id, "outcome": "passed"}, deps=[v.id])  # 1 of 2 voted: quorate
    assert join.id not in closure(h.items, t.id)
    h.add(side, p, v, t)
    assert (h.reason(t), h.fold.state.proposals[p.id].status) == (None, "passed")
    h.add(join)
    assert h.fold.state.proposals[p.id].electorate == {f0, f1}  # actual: x joined the electorate
    assert h.reason(t) is None  # actual: wrong_outcome:open
    assert other in h.fold.state.federations  # actual: the federation is undone


def test_a_late_concurrent_sanction_does_not_reopen_a_decided_proposal() -> None:
    h = Hist(founders=3)
    f0, f1, f2, f3 = h.founders
    x = h.person("x")
    h.apply(x)
    s = h.open(f0, "sanction", {"member": x, "clause": "misconduct", "evidence": []})
    p = h.open(f0, "text", {})
    for f in (f0, f1, f2):
        h.vote(f, s, "yes")
    sanction = h.make(f3, TALLY, {"proposal": s.id, "outcome": "passed"}, deps=[h.tip])
    for f in (f0, f1, f2):
        h.vote(f, p, "yes")  # these do not depend on `sanction`
    t = h.tally(x, p, "passed")
    assert sanction.id not in closure(h.items, t.id)
    assert h.reason(t) is None and h.fold.state.proposals[p.id].status == "passed"
    h.add(sanction)
    assert h.fold.state.suspended(x, h.clock)
    assert h.reason(t) is None  # actual: suspended
    assert h.fold.state.proposals[p.id].status == "passed"  # actual: open


# ---- both forks in one fold ----------------------------------------------------------------------


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
    t = h.make(f0, TALLY, {"proposal": p.id, "outcome": "open"}, deps=[plain.id])  # 1 of 3 voted in its past
    assert v1.id not in closure(h.items, t.id)
    base = [h.items[i] for i in (p.id, v0.id, v1.id)]
    one = fold_in(h.genesis, [base, [plain], [seeing], [t]])
    two = fold_in(h.genesis, [base, [seeing], [plain], [t]])
    assert one.results[t.id] is None  # actual: wrong_outcome:passed (the frontier followed the other fork)
    assert two.results[t.id] is None
    assert one.state_hash() == two.state_hash()


# ---- real signed actions -------------------------------------------------------------------------


def signed_coop() -> tuple[list[SigningKey], Any, list[Any], Any]:
    """A small co-op of real signed actions ending in an equivocation: (keys, genesis, actions, proof)."""
    keys = [SigningKey(make_id("signed member", i)) for i in range(3)]
    k0, k1, k2 = keys
    g = genesis(charter_=charter(equivocation={"sanction": "suspend", "days": 3}), founders=[k1.public_key], key=k0)
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
    act(k1, TALLY, {"proposal": p.id, "outcome": "passed"}, [v0.id, v1.id, v2.id])
    x = act(k2, RIDE, {"from": "Ghent"}, [v2.id], commit=False)
    y = act(k2, RIDE, {"from": "Bruges"}, [v2.id], commit=False)
    proof = make_proof(x, y)
    canonical = x if x.id < y.id else y
    heads[k2.public_key] = canonical
    out.append(canonical)
    act(k2, RIDE, {"from": "Lier"}, [canonical.id])  # suspended: the proof sorts before it
    return keys, g, out, proof


def test_signed_actions_and_proofs_through_fold_add() -> None:
    keys, g, actions, proof = signed_coop()
    f = Fold(g, snapshot_every=2)
    f.add(actions, [proof])
    for a in actions:
        it = f.items[a.id]
        assert it == Item.of(a)
        envelope = (a.author, a.seq, a.prev, a.env.deps, a.env.ts, a.kind, codec.decode(a.body))
        assert (it.author, it.seq, it.prev, it.deps, it.ts, it.kind, it.body) == envelope
    assert f.items[proof.id] == Item.of_proof(proof) == proof_item(Item.of(proof.a), Item.of(proof.b))
    assert f.items[proof.id].deps == (proof.a.id,)
    assert [f.result(a.id) for a in actions] == [("applied", None)] * (len(actions) - 1) + [("rejected", "suspended")]
    assert f.result(proof.id) == ("applied", None)
    p = next(iter(f.state.proposals.values()))
    assert (p.status, p.title) == ("passed", "Sunday rides")
    assert f.state.sanctions[proof.id].member == keys[2].public_key
    # every delivery order, proofs included, gives the same state
    rng = random.Random(7)
    for _ in range(6):
        shuffled: list[Any] = [*actions, proof]
        rng.shuffle(shuffled)
        h = Fold(g, snapshot_every=rng.choice((1, 3)))
        for x in shuffled:
            h.add(*(([], [x]) if x is proof else ([x], [])))
        assert summary(h) == summary(f)
    # duplicates, a proof twice, and another co-op's actions change nothing
    stranger = genesis(key=keys[1], ts=TS0 + 5)
    alien = sign_action(keys[2], coop=stranger.id, seq=1, prev=None, ts=TS0, kind=APPLY, body={})
    before = summary(f)
    f.add([*actions, stranger, alien], [proof, proof])
    assert summary(f) == before
    assert f.result(alien.id) == ("unknown", None)


def test_a_redacted_application_body_changes_nothing() -> None:
    _, g, actions, proof = signed_coop()
    full = Fold(g)
    full.add(actions, [proof])
    redacted = Fold(g)
    redacted.add([a.without_body() if a.kind == RIDE else a for a in actions], [proof])
    assert any(a.kind == RIDE for a in actions)
    assert summary(redacted) == summary(full)


def test_a_fold_starts_from_a_genesis() -> None:
    _, g, actions, _ = signed_coop()
    with pytest.raises(ValueError):
        Fold(actions[0])
    f = Fold(g)
    assert f.state.coop == g.id and f.result(g.id) == ("applied", None) and f.deferred == 0


# ---- properties over simulated histories ---------------------------------------------------------


def fold_key(f: Fold, i: bytes) -> tuple[int, int, bytes]:
    return (f.height[i], 0 if f.items[i].kind == EQUIVOCATION else 1, i)


def sim(seed: int, n: int, shape: int, *, sequential: bool = False) -> History:
    """Histories of four shapes: default charter or a random one, few or many members."""
    founders, outsiders = ((0, 3), (3, 6), (2, 10), (5, 4))[shape]
    return simulate(seed, n, founders=founders, outsiders=outsiders, custom_charter=shape != 0, sequential=sequential)


seeds = st.integers(0, 2**32 - 1)
shapes = st.integers(0, 3)


@settings(PROPERTY, max_examples=40)
@given(seeds, st.integers(30, 250), shapes, seeds)
def test_every_delivery_order_gives_the_same_state(seed: int, n: int, shape: int, order_seed: int) -> None:
    h = sim(seed, n, shape)
    rng = random.Random(order_seed)
    withheld = {it.id for it in rng.sample(h.items, rng.choice((0, 0, 1, 2)))}
    items = [it for it in h.items if it.id not in withheld]
    ref = fold_in(h.genesis, [items])
    expect = summary(ref)
    shuffled = list(items)
    rng.shuffle(shuffled)
    deliveries: dict[str, list[list[Item]]] = {
        "one at a time, shuffled": [[x] for x in shuffled],
        "batches, shuffled": batches(shuffled, rng),
        "reversed": [[x] for x in reversed(items)],
        "causal order": [[x] for x in causal_shuffle(items, rng)],
    }
    for name, d in deliveries.items():
        f = fold_in(h.genesis, d, snapshot_every=rng.choice((1, 2, 3, 5, 16)))
        assert summary(f) == expect, name
        assert f.canonical() == ref.canonical(), name
    # the fold order is (causal height, proofs first, id), heights as an independent search finds them
    by_id = {it.id: it for it in items} | {h.genesis.id: Item.of(h.genesis)}
    hs = heights(by_id, h.genesis.id)
    assert ref.height == hs
    assert ref.order == sorted(fold_key(ref, i) for i in hs)
    assert ref.deferred == len(by_id) - len(hs)
    assert set(ref.results) == set(hs)


@settings(PROPERTY, max_examples=30)
@given(seeds, st.integers(30, 200), shapes, seeds)
def test_incremental_equals_from_scratch_equals_batched(seed: int, n: int, shape: int, order_seed: int) -> None:
    h = sim(seed, n, shape)
    rng = random.Random(order_seed)
    order = causal_shuffle(h.items, rng)
    scratch = fold_in(h.genesis, [order])
    batched = fold_in(h.genesis, batches(order, rng), snapshot_every=rng.choice((1, 4, 2000)))
    incremental = Fold(h.genesis, snapshot_every=rng.choice((1, 3, 7)))
    checkpoints = set(rng.sample(range(len(order)), min(4, len(order))))
    for i, it in enumerate(order):
        incremental.add_items([it])
        if i in checkpoints:  # every prefix folds to the same state, incrementally or from scratch
            assert summary(incremental) == summary(fold_in(h.genesis, [order[: i + 1]]))
    assert summary(incremental) == summary(scratch) == summary(batched)
    assert summary(scratch) == summary(fold_in(h.genesis, [h.items]))


def tally_view(f: Fold, tid: bytes) -> tuple[str | None, str | None]:
    """A tally's result and, if it decided its proposal, the decision."""
    p = f.state.proposals.get(f.items[tid].body["proposal"])
    return f.results.get(tid), (p.status if p is not None and p.decided_by == tid else None)


@settings(PROPERTY, max_examples=30)
@given(seeds, st.integers(30, 200), shapes, seeds)
def test_a_tally_never_changes_when_governance_is_causally_ordered(seed: int, n: int, shape: int, order_seed: int) -> None:
    """Governance actions form one causal line (votes and application actions still race): then no
    applied tally's result or decision changes as anything else arrives, in any causal order."""
    h = sim(seed, n, shape, sequential=True)
    rng = random.Random(order_seed)
    f = Fold(h.genesis, snapshot_every=rng.choice((1, 4, 16)))
    seen: dict[bytes, tuple[str | None, str | None]] = {}
    for it in causal_shuffle(h.items, rng, glue_proofs=True):
        f.add_items([it])
        for tid, was in seen.items():
            assert tally_view(f, tid) == was, f"tally {tid.hex()[:8]} changed when {it.kind} arrived"
        if it.kind == TALLY:
            seen[it.id] = tally_view(f, it.id)
    assert summary(f) == summary(fold_in(h.genesis, [h.items]))


@settings(PROPERTY, max_examples=40)
@given(seeds, st.integers(30, 200), shapes, seeds)
def test_a_tallys_result_never_changes_and_only_a_better_informed_tally_changes_a_decision(
    seed: int, n: int, shape: int, order_seed: int
) -> None:
    """Any causal order of any history, proofs glued to their canonical action as nodes deliver
    them: once a tally is folded its result never changes, whatever arrives later; a vote or an
    application action never changes the result of anything already folded; a decision changes
    only when a concurrent tally that saw more of the vote arrives, and then to that tally."""
    h = sim(seed, n, shape)
    rng = random.Random(order_seed)
    f = Fold(h.genesis, snapshot_every=rng.choice((1, 4, 16)))
    tallies: dict[bytes, tuple[str | None, str | None]] = {}
    inert = (VOTE, *APP_KINDS)
    for it in causal_shuffle(h.items, rng, glue_proofs=True):
        before = dict(f.results)
        f.add_items([it])
        if it.kind in inert:
            assert {k: f.results[k] for k in before} == before
        for tid, was in tallies.items():
            now = tally_view(f, tid)
            if now != was:
                assert now[0] == was[0], f"tally {tid.hex()[:8]}: {was} -> {now} when {it.kind} arrived"
                assert it.kind == TALLY and was[1] is not None and now[1] is None
                p = f.state.proposals[f.items[tid].body["proposal"]]
                assert p.decided_by == it.id or p.decided_by in f.superseded or p.decided_by not in tallies
                tallies[tid] = now
        if it.kind == TALLY:
            tallies[it.id] = tally_view(f, it.id)


def check_rejected_actions_stay_out(h: History, f: Fold) -> None:
    items = h.by_id
    s = f.state
    res = f.results
    applied = {i for i, r in res.items() if r is None}
    of_kind: dict[str, list[Item]] = {}
    for it in h.items:
        if it.id in res:
            of_kind.setdefault(it.kind, []).append(it)
    # proposals: exactly the applied opens
    assert set(s.proposals) == {it.id for it in of_kind.get(OPEN, ()) if res[it.id] is None}
    # members: founders and the authors of applied applications, each put in its status by an applied action
    assert set(s.members) == set(h.founders) | {it.author for it in of_kind.get(APPLY, ()) if res[it.id] is None}
    for k, m in s.members.items():
        assert m.since in applied
        assert m.sponsors <= {it.author for it in of_kind.get(SPONSOR, ()) if res[it.id] is None and it.body["member"] == k}
    # sanctions come from an applied proof or a passed sanction proposal; lifts from applied tallies
    for x in s.sanctions.values():
        assert x.imposed_by in applied and (x.lifted_by is None or x.lifted_by in applied)
        if items[x.id].kind == EQUIVOCATION:
            assert x.imposed_by == x.id
        else:
            p = s.proposals[x.id]
            assert (p.type, p.status, p.decided_by) == ("sanction", "passed", x.imposed_by)
    for c, (_, by) in s.federations.items():
        p = s.proposals[items[by].body["proposal"]]
        assert (by in applied, p.type, p.status, p.payload["coop"]) == (True, "federate", "passed", c)
    # every applied vote is an elector's vote on a known proposal
    votes: dict[bytes, list[Item]] = {}
    for v in of_kind.get(VOTE, ()):
        if res[v.id] is None:
            p = s.proposals[v.body["proposal"]]
            assert v.author in p.electorate
            votes.setdefault(p.id, []).append(v)
    # each tally's outcome, recomputed from the applied votes in its causal past only
    for t in of_kind.get(TALLY, ()):
        r = res[t.id]
        pid, claim = t.body["proposal"], t.body["outcome"]
        if r is not None and not r.startswith("wrong_outcome:"):
            continue
        p = s.proposals[pid]
        past = closure(items, t.id)
        latest: dict[bytes, Item] = {}
        for v in votes.get(pid, ()):
            if v.id in past and (v.author not in latest or latest[v.author].seq < v.seq):
                latest[v.author] = v
        counts = {c: sum(1 for v in latest.values() if v.body["choice"] == c) for c in ("yes", "no", "abstain", "block")}
        mine = count_outcome(p.quorum, p.threshold, len(p.electorate), counts)
        if r is None:
            assert claim == mine
            if claim != "open" and p.decided_by != t.id:
                # applied without deciding: a concurrent tally decided, one this tally never saw
                d = p.decided_by
                assert d is not None and d not in past and t.id not in closure(items, d)
                assert claim == p.status or t.id in f.superseded
        else:
            assert (r, claim != mine) == (f"wrong_outcome:{mine}", True)
    for p in s.proposals.values():
        if p.status == "open":
            assert p.decided_by is None
        else:
            assert p.decided_by in applied and items[p.decided_by].body == {"outcome": p.status, "proposal": p.id}
    # the simulator's claims, judged when they were made
    for tid, (claim, computed, verdict) in h.claims.items():
        if verdict is None:
            assert claim == computed
        elif verdict.startswith("wrong_outcome:"):
            assert verdict == f"wrong_outcome:{computed}" and claim != computed
        if tid in h.wrong_claims:
            assert verdict is not None


def check_sanctions_bite(h: History, f: Fold) -> int:
    """Every action of a sanctioned member that sorts after the sanction (and before its lift) is rejected."""
    s = f.state
    mine: dict[bytes, list[Item]] = {}
    for it in h.items:
        if it.id in f.results and it.kind != EQUIVOCATION:
            mine.setdefault(it.author, []).append(it)
    expel_lifts: dict[bytes, list[tuple[int, int, bytes]]] = {}
    for x in s.sanctions.values():
        if x.kind == "expel" and x.lifted_by is not None:
            expel_lifts.setdefault(x.member, []).append(fold_key(f, x.lifted_by))
    passing: dict[bytes, list[bytes]] = {}  # proposal -> applied tallies claiming "passed"
    for it in h.items:
        if it.kind == TALLY and f.results.get(it.id, "") is None and it.body["outcome"] == "passed":
            passing.setdefault(it.body["proposal"], []).append(it.id)

    def seen(decision: bytes, it: Item, past: set[bytes]) -> bool:
        # a proof is seen by all that sorts after it; a decision, when a tally reaching it is
        d = h.by_id[decision]
        if d.kind == EQUIVOCATION:
            return fold_key(f, decision) < fold_key(f, it.id)
        return any(t in past for t in passing.get(d.body["proposal"], ()))

    checked = 0
    for x in s.sanctions.values():
        start = fold_key(f, x.imposed_by)
        ends = [fold_key(f, x.lifted_by)] if x.lifted_by is not None else []
        if x.kind == "expel":  # lifting any expulsion readmits (see the test about two expulsions)
            ends += [k for k in expel_lifts.get(x.member, ()) if k > start]
        end = min(ends, default=None)
        for it in mine.get(x.member, ()):
            k = fold_key(f, it.id)
            if it.kind in (OPEN, VOTE, TALLY):
                # decisions go by their causal past, not by where they sort
                past = set(closure(h.by_id, it.id)) - {it.id}
                if not seen(x.imposed_by, it, past) or (x.lifted_by is not None and seen(x.lifted_by, it, past)):
                    continue
                if x.kind == "expel" and any(seen(k[2], it, past) for k in expel_lifts.get(x.member, ())):
                    continue
            elif k <= start or (end is not None and k >= end):
                continue
            if it.kind == OPEN and it.body["type"] == "lift":
                target = s.sanctions.get(it.body["payload"]["sanction"])
                if target is not None and target.member == it.author:
                    continue  # an appeal
            r = f.results[it.id]
            if x.kind == "expel":
                assert r == "status_expelled", (
                    it.kind,
                    r,
                    it.id.hex()[:8],
                    x.id.hex()[:8],
                    x.kind,
                    h.by_id[x.imposed_by].kind,
                    x.lifted_by,
                    x.until,
                    f.ctime[it.id],
                )
            elif f.ctime[it.id] < x.until and it.kind not in (LEAVE, APPLY):  # type: ignore[operator]
                assert r is not None and (r == "suspended" or r.startswith("status_")), (it.kind, r)
            else:
                continue
            checked += 1
    return checked


@settings(PROPERTY, max_examples=50)
@given(seeds, st.integers(30, 300), shapes)
def test_sanctions_bite_and_rejected_actions_never_reach_the_state(seed: int, n: int, shape: int) -> None:
    h = sim(seed, n, shape)
    f = fold_in(h.genesis, [h.items])
    check_rejected_actions_stay_out(h, f)
    check_sanctions_bite(h, f)


def test_the_simulator_exercises_the_rules() -> None:
    """The properties mean something only if the histories reach these outcomes."""
    seen: set[tuple[str, str | None]] = set()
    decided: set[tuple[str, str]] = set()
    bites = 0
    for seed in range(12):
        h = sim(seed, 250, seed % 4)
        f = fold_in(h.genesis, [h.items])
        for it in h.items:
            r = f.results[it.id]
            kind = "app" if it.kind in APP_KINDS else it.kind
            seen.add((kind, r.split(":")[0] if r else r))
        decided |= {(p.type, p.status) for p in f.state.proposals.values()}
        bites += check_sanctions_bite(h, f)
        check_rejected_actions_stay_out(h, f)
    wanted = {
        (APPLY, None),
        (APPLY, "status_member"),
        (APPLY, "status_expelled"),
        (SPONSOR, None),
        (LEAVE, None),
        (VOTE, None),
        (VOTE, "suspended"),
        (VOTE, "status_expelled"),
        (VOTE, "not_in_electorate"),
        (VOTE, "proposal_closed"),
        (VOTE, "no_permission"),
        (TALLY, None),
        (TALLY, "wrong_outcome"),
        (TALLY, "proposal_closed"),
        (OPEN, None),
        (OPEN, "unknown_sanction"),
        (OPEN, "not_federated"),
        ("app", None),
        ("app", "no_permission"),
        ("app", "suspended"),
        (EQUIVOCATION, None),
    }
    assert wanted <= seen, wanted - seen
    assert {(t, "passed") for t in ("admit", "amend", "sanction", "lift", "federate", "role", "text")} <= decided
    assert bites > 50


# ---- frontier ------------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=60)
@given(seeds, st.integers(1, 6), st.integers(1, 150))
def test_frontier_is_the_causal_closure(seed: int, authors: int, n: int) -> None:
    rng = random.Random(seed)
    g = genesis(founders=())
    items: dict[bytes, Item] = {g.id: Item.of(g)}
    people = [FOUNDER_KEY.public_key, *(make_id("dag author", i) for i in range(authors))]
    heads: dict[bytes, tuple[int, bytes | None]] = {people[0]: (1, g.id)}
    for i in range(n):
        a = rng.choice(people)
        seq, prev = heads.get(a, (0, None))
        pool = list(items)
        deps = set(rng.sample(pool[-10:], min(len(pool[-10:]), rng.randint(0, 3))) + rng.sample(pool, min(len(pool), rng.randint(0, 2))))
        if prev is None and not deps:
            deps = {g.id}
        it = Item(make_id("dag", seed, i), a, seq + 1, prev, tuple(sorted(deps)), TS0 + i, RIDE, {})
        items[it.id] = it
        heads[a] = (it.seq, it.id)
    rest = [it for i, it in items.items() if i != g.id]
    rng.shuffle(rest)
    f = fold_in(g, batches(rest, rng), snapshot_every=rng.choice((1, 5)))
    assert f.deferred == 0
    ids = list(items)
    asked = ids + rng.sample(ids, len(ids))  # in creation order (the cache helps), then at random
    for x in asked:
        assert f.frontier(x) == frontier_of(items, closure(items, x))
