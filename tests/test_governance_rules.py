"""protocol/governance.py, rule by rule, against docs/GOVERNANCE.md: who may do what, and time.

Every expected value here is written from the doc ("The rules, precisely", the tables of
statuses, proposal types and reject reasons), never read from the fold's own tables:

* the rule table: every kind (``member.seen`` included) by the author's standing (none, applicant,
  member, suspended member, left, expelled) and by holding the permission or not;
* contextual rejections, each reason of the doc's table;
* the decision arithmetic (thresholds, quorum, windows: ``closed``);
* co-op time (witnesses, the second latest stamp), voting windows and late votes;
* amendments, admission, leaving, roles, federation, member.seen; tips, previews, deferred actions.

Decisions, sanctions, equivocation and signed actions are in test_governance_decisions.py; the
simulator-level properties and the reference implementation in test_governance.py. Histories are
built from ``Item`` values (signing is slow). A strict xfail marks each place where the fold and
the doc differ and the difference is reported, not fixed here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from protocol.charter import APPLY, LEAVE, OPEN, SEEN, SPONSOR, TALLY, VOTE
from protocol.governance import (
    APPLICANT,
    DAY_MS,
    EQUIVOCATION,
    EXPELLED,
    LEFT,
    MEMBER,
    RULES,
    Item,
    Proposal,
    count_votes,
    decide,
    outcome,
)
from tests.gov_helpers import (
    ALL_PERMS,
    HOUR_MS,
    OFFENCES,
    RIDE,
    TS0,
    WEEK_MIN,
    Hist,
    canon,
    charter,
    closure,
    fold_in,
    make_id,
    rule,
    summary,
)

WEEK = WEEK_MIN * 60_000


# ---- the rules, as a table -----------------------------------------------------------------------

STANDINGS = ("none", "applicant", "member", "suspended", "left", "expelled")
KINDS = (APPLY, SPONSOR, LEAVE, SEEN, OPEN, VOTE, TALLY, EQUIVOCATION, RIDE)
NEEDS: dict[str, str | None] = {APPLY: None, SPONSOR: "sponsor", LEAVE: None, SEEN: None, OPEN: "propose", VOTE: "vote"}
NEEDS.update({TALLY: "tally", EQUIVOCATION: None, RIDE: "*"})


def expected_view(kind: str, standing: str, permitted: bool) -> str | None:
    """The doc's "Verdict in a view" table: None (applied) or the reason."""
    status = MEMBER if standing == "suspended" else standing
    if kind == EQUIVOCATION:  # a proof about an author the co-op does not know changes nothing
        return "status_none" if standing == "none" else None
    if kind == APPLY:  # not known, or left
        return None if status in ("none", LEFT) else f"status_{status}"
    if kind in (LEAVE, SEEN):  # member or applicant, even suspended
        return None if status in (MEMBER, APPLICANT) else f"status_{status}"
    if status != MEMBER:
        return f"status_{status}"
    if standing == "suspended":
        return "suspended"
    return None if permitted else "no_permission"


def expected_result(kind: str, standing: str, permitted: bool) -> str | None:
    """The doc's "Results in the state": a suspended member's applied action beyond the sanction's
    bound is rejected, unless it is a leave, a tally or an appeal (member.seen is not exempt)."""
    if standing == "suspended" and kind == SEEN:
        return "suspended"
    return expected_view(kind, standing, permitted)


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
        assert h.fold.suspended(who, h.time())
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
    if kind == SEEN:
        return h.seen(who)
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
    assert set(RULES) | {RIDE, EQUIVOCATION} == set(KINDS)


@pytest.mark.parametrize("permitted", [True, False], ids=["with_permission", "without_permission"])
@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_rule_table(kind: str, standing: str, permitted: bool) -> None:
    h = Hist(charter_=table_charter(kind, permitted))
    x = h.person("x")
    put_in_standing(h, x, standing)
    before = h.fold.state.members.get(x)
    it = do(h, x, kind)
    assert h.fold.view[it.id] == expected_view(kind, standing, permitted)
    assert h.reason(it) == expected_result(kind, standing, permitted)
    if h.reason(it) is not None and kind != EQUIVOCATION:
        assert h.fold.state.members.get(x) is before  # a rejected action changes nothing about its author


@pytest.mark.parametrize("permitted", [True, False], ids=["with_propose", "without_propose"])
@pytest.mark.parametrize("standing", ["member", "suspended", "expelled", "left"])
def test_appeal_table(standing: str, permitted: bool) -> None:
    """A lift of one's own sanction is the one proposal a sanctioned member may always open; a lift
    of someone else's needs good standing and the propose permission."""
    h = Hist(charter_=table_charter(OPEN, permitted))
    x, y = h.person("x"), h.person("y")
    put_in_standing(h, x, "member")
    put_in_standing(h, y, "member")
    theirs, _ = h.decide("sanction", {"member": y, "clause": "misconduct", "evidence": []})
    own, _ = h.decide("sanction", {"member": x, "clause": "fraud" if standing == "expelled" else "misconduct", "evidence": []})
    if standing == "member":  # the 30-day suspension has run out: still a sanction one may appeal
        h.advance(31 * DAY_MS)
        assert h.fold.in_good_standing(x, h.time())
    if standing == "left":
        assert h.reason(h.leave(x)) is None
    appeal = h.open(x, "lift", {"sanction": own.id})
    assert h.reason(appeal) is None
    other = h.open(x, "lift", {"sanction": theirs.id})
    want = {"member": None if permitted else "no_permission", "suspended": "suspended"}.get(standing, f"status_{standing}")
    assert h.reason(other) == want


def stale_opening_by_expelled(h: Hist) -> tuple[bytes, Item]:
    """x is expelled; x then opens a proposal whose deps leave the expulsion out."""
    x = h.person("x")
    join = h.apply(x)
    h.decide("sanction", {"member": x, "clause": "fraud", "evidence": []}, voters=h.founders)
    op = h.open(x, "text", {}, deps=[join.id])
    return x, op


def closed_window(h: Hist) -> Item:
    op = h.open(h.founders[0], "text", {})
    h.close()
    return op


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
    ("vote_on_a_rejected_opening", lambda h, x: h.vote(x, h.open(x, "admit", {"member": make_id("n")}), "yes"), "unknown_proposal"),
    ("sponsor_a_member", lambda h, x: h.sponsor(x, h.founders[1]), "not_an_applicant"),
    ("sponsor_a_stranger", lambda h, x: h.sponsor(x, h.person("nobody")), "not_an_applicant"),
    ("claim_a_wrong_outcome", lambda h, x: h.tally(x, h.open(x, "text", {}), "passed"), "wrong_outcome:open"),
    ("claim_open_once_closed", lambda h, x: h.tally(x, closed_window(h), "open"), "wrong_outcome:rejected"),
    ("vote_after_the_window", lambda h, x: h.vote(x, closed_window(h), "yes"), "voting_closed"),
    ("vote_on_a_bound_opening", lambda h, x: h.vote(x, stale_opening_by_expelled(h)[1], "yes"), "proposal_void"),
    ("tally_a_bound_opening", lambda h, x: h.tally(x, stale_opening_by_expelled(h)[1], "open"), "proposal_void"),
    ("second_genesis", lambda h, x: h.act(h.person("z"), "coop.genesis", {"name": "Second"}, seq=1, prev=None), "second_genesis"),
]


@pytest.mark.parametrize(("build", "reason"), [pytest.param(b, r, id=name) for name, b, r in REJECTIONS])
def test_contextual_rejections(build: Callable[[Hist, bytes], Item], reason: str) -> None:
    h = Hist(
        charter_=charter(
            offences={
                "misconduct": {"sanction": "suspend", "days": 30, "text": "x"},
                "fraud": {"sanction": "expel", "days": 0, "text": "f"},
            }
        )
    )
    it = build(h, h.founders[0])
    assert h.reason(it) == reason
    if it.kind == OPEN:
        assert it.id not in h.fold.state.proposals


def test_proposal_not_in_deps_and_closed() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.make(f0, OPEN, {"type": "text", "title": "t", "payload": {}}, deps=[h.genesis.id])
    side = h.make(f1, RIDE, {"n": 1}, deps=[h.genesis.id])
    h.add(p, side)
    blind_tally = h.make(f2, TALLY, {"proposal": p.id, "outcome": "open"}, deps=[side.id])  # sorts after p, does not see it
    blind_vote = h.make(f1, VOTE, {"proposal": p.id, "choice": "yes"}, deps=[side.id])
    h.add(blind_tally, blind_vote)
    assert h.reason(blind_tally) == h.reason(blind_vote) == "proposal_not_in_deps"
    h.tip = p.id
    for f in h.founders:
        h.vote(f, p, "yes")
    assert h.reason(h.tally(f0, p, "open")) == "wrong_outcome:passed"  # the whole electorate voted: decided early
    t = h.tally(f0, p, "passed")
    assert h.reason(t) is None
    assert h.reason(h.tally(f1, p, "passed")) == "proposal_closed"
    assert h.reason(h.vote(f1, p, "no")) == "proposal_closed"


def test_a_vote_naming_an_opening_it_sorts_before() -> None:
    """The opening exists and is applied, but sorts after the vote (which does not see it). The doc's
    reason table: unknown_proposal is "not in the state (never opened, or its opening was
    rejected)"; this one is in the state, and the vote had not seen it: proposal_not_in_deps."""
    h = Hist()
    f0, f1, _ = h.founders
    chain = [h.act(f0, RIDE, {"n": i}) for i in range(3)]
    op = h.make(f0, OPEN, {"type": "text", "title": "t", "payload": {}}, deps=[chain[-1].id])
    early = h.make(f1, VOTE, {"proposal": op.id, "choice": "yes"}, deps=[h.genesis.id])  # height 1 < the opening's
    h.add(op, early)
    assert h.reason(op) is None
    assert h.fold.height[early.id] < h.fold.height[op.id]
    assert h.reason(early) == "proposal_not_in_deps"


# ---- decision arithmetic -------------------------------------------------------------------------


def proposal(electorate: int, quorum: int, threshold: str, votes: list[str]) -> tuple[Proposal, dict[bytes, int]]:
    voters = [make_id("voter", i) for i in range(electorate)]
    p = Proposal(make_id("p"), make_id("author"), 1, "text", "t", {}, frozenset(voters), quorum, threshold, TS0 + WEEK)
    for v, choice in zip(voters, votes, strict=False):
        p.votes[v] = [(3, choice)]
    return p, dict.fromkeys(voters, 10)


def written_rule(quorum: int, threshold: str, electorate: int, counts: dict[str, int], closed: bool) -> str:
    """The doc's "Counting" paragraph, again."""
    voted = sum(counts.values())
    if not closed and voted < electorate:
        return "open"
    if electorate == 0 or voted == 0 or 100 * voted < quorum * electorate:
        return "rejected" if closed else "open"
    yes, no, block = counts["yes"], counts["no"], counts["block"]
    ok = {
        "majority": yes > no + block,
        "two_thirds": yes > 0 and 3 * yes >= 2 * (yes + no + block),
        "consent": yes > 0 and block == 0,
    }[threshold]
    return "passed" if ok else "rejected"


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
    assert outcome(p, frontier)[0] == result  # closed by default
    assert outcome(p, frontier, closed=False)[0] == result  # the whole electorate voted: decided early


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
        (5, 0, 0, False),  # nobody voted: rejected once closed
        (1, 100, 1, True),
        (7, 60, 4, False),  # 57% < 60%
        (7, 60, 5, True),
    ],
)
def test_quorum(electorate: int, quorum: int, voted: int, quorate: bool) -> None:
    p, frontier = proposal(electorate, quorum, "majority", ["yes"] * voted)
    assert outcome(p, frontier, closed=True)[0] == ("passed" if quorate else "rejected")  # short of the quorum: rejected
    # while the window is open only the whole electorate decides
    assert outcome(p, frontier, closed=False)[0] == ("passed" if voted == electorate else "open")


def test_an_empty_electorate() -> None:
    p, _ = proposal(0, 0, "majority", [])
    assert outcome(p, {}, closed=True)[0] == "rejected"
    assert outcome(p, {}, closed=False)[0] == "open"


def test_each_voters_latest_vote_within_the_frontier_counts() -> None:
    p, _ = proposal(2, 100, "majority", [])
    a, b = sorted(p.electorate)
    p.votes[a] = [(2, "no"), (5, "yes"), (9, "block")]
    p.votes[b] = [(4, "yes")]
    none = {"yes": 0, "no": 0, "abstain": 0, "block": 0}
    assert outcome(p, {a: 1, b: 4}) == ("rejected", {**none, "yes": 1})  # 1 of 2 < 100%
    assert outcome(p, {a: 4, b: 4}) == ("rejected", {**none, "yes": 1, "no": 1})
    assert outcome(p, {a: 8, b: 4})[0] == "passed"
    assert outcome(p, {a: 9, b: 4})[0] == "rejected"
    assert outcome(p, {a: 9, b: 3})[0] == "rejected"
    counts, counted = count_votes(p, {a: 8, b: 4}, keep=lambda m, q: not (m == a and q == 5))  # a's latest is passed over
    assert (counts["no"], sorted(counted)) == (1, sorted([(a, 2), (b, 4)]))


@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("threshold", ["majority", "two_thirds", "consent"])
@pytest.mark.parametrize("quorum", [0, 34, 50, 100])
def test_outcome_matches_the_written_rule(closed: bool, threshold: str, quorum: int) -> None:
    rng = random.Random(f"{closed}{threshold}{quorum}")
    for _ in range(60):
        electorate = rng.randint(0, 9)
        votes = [rng.choice(["yes", "no", "abstain", "block"]) for _ in range(rng.randint(0, electorate))]
        p, frontier = proposal(electorate, quorum, threshold, votes)
        counts = {c: votes.count(c) for c in ("yes", "no", "abstain", "block")}
        assert decide(p, counts, closed) == written_rule(quorum, threshold, electorate, counts, closed)
        assert outcome(p, frontier, closed=closed) == (written_rule(quorum, threshold, electorate, counts, closed), counts)


# ---- co-op time ----------------------------------------------------------------------------------


def line(h: Hist, stamps: list[tuple[bytes, int]]) -> list[Item]:
    return [h.seen(who, ts=ts) for who, ts in stamps]


def test_the_co_op_clock_is_the_second_latest_stamp_of_distinct_members() -> None:
    h = Hist(founders=3)
    f0, f1, f2, f3 = h.founders
    assert h.time() == TS0  # the genesis: its own stamp
    line(h, [(f1, TS0 + 10 * DAY_MS), (f2, TS0 + 5 * DAY_MS), (f3, TS0 + 1 * DAY_MS)])
    it = h.seen(f0, ts=TS0)
    assert h.time(it) == TS0 + 5 * DAY_MS  # 10, 5, 1, (0): the second latest
    it = h.seen(f1, ts=TS0 + 20 * DAY_MS)
    assert h.time(it) == TS0 + 5 * DAY_MS  # f0's TS0 entered, f1 still counts once: 10, 5, 1, 0 -> 5 days
    it = h.seen(f2, ts=TS0 + 12 * DAY_MS)
    assert h.time(it) == TS0 + 5 * DAY_MS  # f1 at 20 counts once (its latest): 20, 5, 1, 0
    it = h.seen(f0, ts=TS0 + 2 * DAY_MS)
    assert h.time(it) == TS0 + 12 * DAY_MS  # f1 at 20, f2 at 12, f3 at 1, f0 at 0


def test_the_clock_uses_the_parents_only_and_never_goes_back() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    a, b, c = line(h, [(f0, TS0 + 3 * DAY_MS), (f1, TS0 + 3 * DAY_MS), (f2, TS0 + 3 * DAY_MS)])
    assert h.time(a) == TS0  # its own stamp does not count for itself: the genesis alone
    assert h.time(b) == TS0 + 3 * DAY_MS  # one witness (f0 at 3 days): its stamp
    d = h.seen(f0, ts=TS0 + DAY_MS)
    assert h.time(d) == TS0 + 3 * DAY_MS
    stale = h.seen(f1, ts=TS0, deps=[c.id])  # f1's own chain holds its 3-day stamp
    assert h.time(stale) == TS0 + 3 * DAY_MS
    later = h.seen(f2, ts=TS0)
    assert h.time(later) >= h.time(stale)  # never earlier than what it builds on


def test_fewer_than_three_witnesses_give_the_oldest_of_them() -> None:
    h = Hist(founders=1)
    f0, f1 = h.founders
    it = h.seen(f1, ts=TS0 + 10 * DAY_MS)
    assert h.time(it) == TS0  # only f0's genesis in its past
    nxt = h.seen(f0, ts=TS0 + 20 * DAY_MS)
    assert h.time(nxt) == TS0  # f1 at 10 days, f0 at 0 (the genesis): the older
    nxt2 = h.seen(f1, ts=TS0 + 30 * DAY_MS)
    assert h.time(nxt2) == TS0 + 10 * DAY_MS  # f0 at 20, f1 at 10: the older


def test_one_far_future_stamp_does_not_move_the_clock() -> None:
    h = Hist(founders=3)
    f0, f1, f2, f3 = h.founders
    liar = h.seen(f3, ts=TS0 + 3650 * DAY_MS)
    honest = line(h, [(f0, TS0 + 1000), (f1, TS0 + 2000), (f2, TS0 + 3000)])
    after = h.seen(f0, ts=TS0 + 4000)
    assert h.time(after) == TS0 + 3000  # the liar, 3000, 2000, 1000: the liar only shifts it one place
    assert h.time(liar) == TS0 and all(h.time(x) < TS0 + DAY_MS for x in honest)


def test_a_suspended_members_action_on_stale_deps_is_a_witness_as_its_view_has_it() -> None:
    """ "Co-op time" counts an action applied in its own view: a suspended member's action on
    deps that leave out the suspension (applied in its view, rejected in the state) is a
    witness. Judging witnesses by the state would let a late sanction move the clock of actions
    already judged. Bounded: one key is one of the two witnesses it takes, and nodes refuse stamps beyond
    the skew; here two others stamp as far ahead, and the three move it."""
    h = Hist()
    f0, f1, f2 = h.founders
    x = h.person("x")
    join = h.apply(x)
    h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    now, far = h.clock, h.clock + 10 * DAY_MS
    stale = h.app(x, deps=[join.id], ts=far)
    assert (h.fold.view[stale.id], h.reason(stale)) == (None, "suspended")
    line(h, [(f1, far), (f2, far)])  # f1's action names x's
    after = h.seen(f0, ts=now)
    assert h.time(after) == far  # x, f1 and f2 at far: the second latest


def test_strangers_rejected_actions_and_suspended_members_are_not_witnesses() -> None:
    h = Hist(charter_=charter(offences={"misconduct": {"sanction": "suspend", "days": 30, "text": "x"}}))
    f0, f1, f2 = h.founders
    x = h.person("x")
    h.apply(x)
    _, t = h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    now = h.time(t)
    far = now + 365 * DAY_MS
    stranger = h.person("stranger")
    h.act(stranger, RIDE, {"n": 1}, ts=far)  # status_none
    h.act(x, RIDE, {"n": 2}, ts=far)  # suspended
    h.vote(f1, make_id("nothing"), "yes", ts=far)  # rejected (unknown_proposal)
    h.seen(f0, ts=far)  # the one honest witness that far ahead
    it = h.seen(f2, ts=now)
    assert h.time(it) < now + DAY_MS


def test_a_suspension_ends_by_co_op_time_only() -> None:
    h = Hist(charter_=charter(offences={"misconduct": {"sanction": "suspend", "days": 2, "text": "x"}}))
    x = h.person("x")
    h.apply(x)
    op, t = h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    until = h.fold.state.sanctions[op.id].until
    assert until == h.time(t) + 2 * DAY_MS
    assert h.reason(h.app(x, ts=until + 10 * DAY_MS)) == "suspended"  # its own stamp cannot end it
    stranger = h.person("stranger")
    far = h.act(stranger, RIDE, {"n": 1}, ts=until + 3650 * DAY_MS)
    assert h.reason(h.app(x, deps=[far.id])) == "suspended"  # nor a stranger's far-future action
    line(h, [(f, until - 1) for f in h.witnesses])  # the witnesses stamp one ms short
    assert h.reason(h.app(x)) == "suspended"
    line(h, [(f, until) for f in h.witnesses])
    it = h.app(x)
    assert h.time(it) == until
    assert h.reason(it) is None
    assert h.fold.in_good_standing(x, until)


def test_an_equivocation_proof_has_its_canonical_actions_clock() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    a, _, proof = h.equivocate(x)
    assert h.fold.clock[proof.id] == h.fold.clock[a.id]


# ---- voting windows ------------------------------------------------------------------------------


def test_the_window_closes_minutes_of_co_op_time_after_the_opening() -> None:
    c = charter(decisions={"default": rule(50, "majority", minutes=1440), "text": rule(50, "majority")})
    h = Hist(charter_=c)
    f0, f1, _f2 = h.founders
    admit = h.open(f0, "federate", {"coop": make_id("other"), "terms": {}})
    text = h.open(f0, "text", {})
    props = h.fold.state.proposals
    assert props[admit.id].closes == max(h.time(admit), admit.ts) + 24 * HOUR_MS
    assert props[text.id].closes == max(h.time(text), text.ts) + WEEK  # no minutes: a week
    backdated = h.open(f1, "text", {}, ts=TS0 - 5 * DAY_MS)
    assert h.fold.state.proposals[backdated.id].closes == h.time(backdated) + WEEK  # the co-op time when later
    ahead = h.open(f1, "text", {}, ts=TS0 + 3 * DAY_MS)
    assert h.fold.state.proposals[ahead.id].closes == TS0 + 3 * DAY_MS + WEEK  # its own stamp when later


def test_late_votes_by_co_op_time_or_by_their_own_stamp() -> None:
    h = Hist(founders=3)
    f0, f1, f2, f3 = h.founders
    p = h.open(f0, "text", {})
    closes = h.fold.state.proposals[p.id].closes
    early = h.vote(f1, p, "yes", deps=[p.id], ts=closes - 1)
    assert h.reason(early) is None
    own_stamp = h.vote(f2, p, "yes", deps=[p.id], ts=closes)  # co-op time far earlier, but stamped at the close
    assert h.time(own_stamp) < closes and h.reason(own_stamp) == "voting_closed"
    h.close()
    late = h.vote(f2, p, "no", ts=TS0)  # backdated, but it sees three stamps past the close
    assert h.reason(late) == "voting_closed"
    backdated = h.vote(f3, p, "no", deps=[p.id], ts=TS0)  # backdated with stale deps: not late (not defended)
    assert h.reason(backdated) is None


def test_a_tally_decides_before_the_window_closes_only_on_the_whole_electorate() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    p = h.open(f0, "text", {})
    h.vote(f0, p, "yes")
    h.vote(f1, p, "yes")
    assert h.reason(h.tally(f0, p, "passed")) == "wrong_outcome:open"  # 2 of 3, window open
    assert h.reason(h.tally(f0, p, "open")) is None
    h.vote(f2, p, "no")
    assert h.reason(h.tally(f1, p, "open")) == "wrong_outcome:passed"
    t = h.tally(f1, p, "passed")
    assert h.reason(t) is None and h.fold.state.proposals[p.id].decided_by == t.id


def test_after_the_window_a_vote_short_of_the_quorum_is_rejected() -> None:
    h = Hist(founders=3)
    p = h.open(h.founders[0], "text", {})
    h.vote(h.founders[0], p, "yes")  # 1 of 4 < 50%
    h.close()
    assert h.reason(h.tally(h.founders[1], p, "passed")) == "wrong_outcome:rejected"
    t = h.tally(h.founders[1], p, "rejected")
    assert h.reason(t) is None and h.fold.state.proposals[p.id].status == "rejected"


# ---- charters and amendments ---------------------------------------------------------------------


def test_an_amendment_governs_what_sees_it_and_open_proposals_keep_their_rule() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    before = h.open(f0, "text", {})
    new = charter(policy="vote", decisions={"default": rule(100, "consent", minutes=60), "amend": rule(50, "two_thirds")})
    _, amended = h.decide("amend", {"charter": new}, minutes=None)
    assert h.fold.state.charter == new
    after = h.open(f0, "text", {})
    props = h.fold.state.proposals
    assert (props[before.id].quorum, props[before.id].threshold) == (50, "majority")
    assert props[before.id].closes - before.ts == WEEK
    assert (props[after.id].quorum, props[after.id].threshold) == (100, "consent")
    assert props[after.id].closes == max(h.time(after), after.ts) + HOUR_MS
    # an opening that did not see the amending tally is judged by the old charter
    stale = h.make(f1, OPEN, {"type": "text", "title": "t", "payload": {}}, deps=[before.id])
    h.add(stale)
    assert (h.fold.state.proposals[stale.id].quorum, h.fold.state.proposals[stale.id].threshold) == (50, "majority")
    for p in (before, after):
        h.vote(f0, p, "yes")
        h.vote(f1, p, "yes")
    h.vote(f2, before, "block")
    h.vote(f2, after, "block")
    assert h.reason(h.tally(f0, before, "passed")) is None  # majority: 2 > 0 + 1
    assert h.reason(h.tally(f0, after, "rejected")) is None  # consent: blocked
    # the new membership policy applies to applications that see the amendment
    x, y = h.person("x"), h.person("y")
    h.apply(x)
    assert h.fold.state.status(x) == APPLICANT
    h.act(y, APPLY, {}, deps=[h.genesis.id])  # does not see it: the open policy
    assert h.fold.state.status(y) == MEMBER
    assert amended.id in closure(h.items, h.heads[x][1])


def test_an_amendment_between_a_sanction_proposal_and_its_tally_drops_a_removed_clause() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    op = h.open(h.founders[0], "sanction", {"member": x, "clause": "misconduct", "evidence": []})
    h.decide("amend", {"charter": charter(offences={})}, voters=[*h.founders, x], minutes=None)
    for f in h.founders:
        h.vote(f, op, "yes")
    h.close()
    t = h.tally(h.founders[0], op, "passed")
    assert h.reason(t) is None
    assert h.fold.state.proposals[op.id].status == "passed"
    assert h.fold.state.sanctions == {}
    assert h.fold.in_good_standing(x, h.time())


def test_the_genesis_charter_and_founders() -> None:
    c = charter(policy="sponsored", sponsors=2)
    h = Hist(charter_=c, founders=3)
    s = h.fold.state
    assert s.charter == c
    assert sorted(s.members) == sorted(h.founders)
    assert all(m.status == MEMBER and m.roles == {"member", "founder"} for m in s.members.values())
    default = Hist(founders=0).fold.state.charter
    assert default["equivocation"] == {"days": 7, "forgive": 1, "sanction": "suspend"}  # a first fork: a warning
    assert default["membership"]["policy"] == "open"
    assert {k: (r["quorum"], r["threshold"], r.get("minutes", WEEK_MIN)) for k, r in default["decisions"].items()} == {
        "default": (50, "majority", WEEK_MIN),
        "amend": (50, "two_thirds", WEEK_MIN),
        "sanction": (50, "two_thirds", WEEK_MIN),
    }
    assert {k: (o["sanction"], o["days"]) for k, o in default["offences"].items()} == {"misconduct": ("suspend", 30)}


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
    assert h.reason(h.seen(x)) is None  # an applicant may say what they have seen
    assert h.reason(h.sponsor(f0, x)) is None
    assert h.reason(h.sponsor(f0, x)) is None  # the same sponsor twice counts once
    assert [s for s, _ in h.fold.state.members[x].sponsors] == [f0]
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
    assert [s for s, _ in h.fold.state.members[x].sponsors] == [h.founders[0]]
    _, t = h.decide("admit", {"member": x})
    assert h.fold.state.members[x].status == MEMBER
    assert h.fold.state.members[x].since == t.id
    op, _ = h.decide("admit", {"member": y}, choice="no", claim="rejected")
    assert h.fold.state.proposals[op.id].status == "rejected"
    assert h.fold.state.status(y) == APPLICANT
    assert h.reason(h.open(h.founders[0], "admit", {"member": x})) == "not_an_applicant"


def test_leave_and_reapply() -> None:
    h = Hist(charter_=charter(policy="vote", roles={"member": ALL_PERMS, "driver": ["ride.*"]}))
    x = h.person("x")
    h.apply(x)
    h.decide("admit", {"member": x})
    h.decide("role", {"member": x, "role": "driver", "grant": True})
    assert h.fold.state.members[x].roles == {"member", "driver"}
    assert h.reason(h.leave(x)) is None
    assert (h.fold.state.status(x), h.fold.state.members[x].roles) == (LEFT, frozenset())  # leaving clears roles
    assert h.reason(h.leave(x)) == "status_left"
    assert h.reason(h.seen(x)) == "status_left"
    assert h.reason(h.vote(x, h.open(h.founders[0], "text", {}), "yes")) == "status_left"
    assert h.reason(h.apply(x)) is None
    assert h.fold.state.status(x) == APPLICANT  # back through the front door
    assert h.reason(h.leave(x)) is None  # an applicant may withdraw
    assert h.fold.state.status(x) == LEFT


def test_a_member_who_leaves_while_suspended_is_still_suspended_on_return() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    h.decide("sanction", {"member": x, "clause": "misconduct", "evidence": []})
    assert h.reason(h.leave(x)) is None  # leaving stays open to a suspended member
    back = h.apply(x)
    assert (h.fold.view[back.id], h.reason(back)) == (None, "suspended")  # an application is bound too
    # sanctions belong to the person: the bound application never made x a member again
    assert h.reason(h.app(x)) == "status_left"
    assert [m[1] for m in h.fold.canonical()["members"] if m[0] == x] == [LEFT]


# ---- roles, federation -------------------------------------------------------------------------


def test_a_role_grant_enables_an_application_kind() -> None:
    c = charter(roles={"member": ["propose", "vote", "tally", "sponsor", "food.*"], "driver": ["ride.*"]})
    h = Hist(charter_=c)
    x = h.person("x")
    h.apply(x)
    assert h.reason(h.app(x, "food.order")) is None
    assert h.reason(h.app(x, "ride.offer")) == "no_permission"
    h.decide("role", {"member": x, "role": "driver", "grant": True}, voters=[*h.founders, x], minutes=None)
    assert h.fold.state.members[x].roles == {"member", "driver"}
    assert h.reason(h.app(x, "ride.offer")) is None
    assert h.reason(h.app(x, "ride.request")) is None
    assert h.reason(h.app(x, "rides.offer")) == "no_permission"  # "ride.*" is a dotted prefix
    stale = h.act(x, "ride.offer", {"n": 1}, deps=[h.genesis.id])  # x's own chain holds the grant
    assert h.reason(stale) is None
    h.decide("role", {"member": x, "role": "driver", "grant": False}, voters=[*h.founders, x], minutes=None)
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
    _, t = h.decide("federate", {"coop": other, "terms": terms}, minutes=None)
    assert h.fold.state.federations == {other: (terms, t.id)}
    new_terms = canon({"share": ["food"]})
    _, t2 = h.decide("federate", {"coop": other, "terms": new_terms}, minutes=None)
    assert h.fold.state.federations == {other: (new_terms, t2.id)}  # replaces earlier terms
    h.decide("unfederate", {"coop": other}, minutes=None)
    assert h.fold.state.federations == {}
    op, _ = h.decide("federate", {"coop": other, "terms": terms}, choice="no", claim="rejected", minutes=None)
    assert h.fold.state.proposals[op.id].status == "rejected"
    assert h.fold.state.federations == {}


def test_an_unfederate_opening_is_judged_by_the_agreements_it_saw() -> None:
    """f3 saw the agreement (t1) and opens an unfederate proposal. Concurrently (f3 never saw it)
    the co-op re-federated with new terms (t2); t2 arrives later and sorts before the opening.
    "Nothing that arrives late, however it sorts, changes what an action was judged on": the
    opening is judged by the latest federation decision it saw (t1), and stays applied."""
    h = Hist(founders=3)
    f0, f1, f2, f3 = h.founders
    y = h.person("y")
    h.apply(y)
    other = make_id("other coop")
    _, t1 = h.decide("federate", {"coop": other, "terms": {"v": 1}}, voters=[*h.founders, y], minutes=None)
    base = h.tip
    made: list[Item] = [h.make(f0, OPEN, {"type": "federate", "title": "t", "payload": {"coop": other, "terms": {"v": 2}}}, deps=[base])]
    p2 = made[0]
    for v in (f0, f1, f2):
        made.append(h.make(v, VOTE, {"proposal": p2.id, "choice": "yes"}, deps=[made[-1].id]))
    h.clock += 200 * HOUR_MS
    for v in (f0, f1, f2):
        made.append(h.make(v, SEEN, {}, deps=[made[-1].id], ts=h.clock))
    t2 = h.make(f0, TALLY, {"proposal": p2.id, "outcome": "passed"}, deps=[made[-1].id])
    side = [h.items[base]]
    for i in range(15):  # y's actions, so that the opening sorts after t2
        side.append(h.make(y, RIDE, {"n": i}, deps=[side[-1].id]))
    u = h.make(f3, OPEN, {"type": "unfederate", "title": "u", "payload": {"coop": other}}, deps=[side[-1].id])
    h.fold.add_items([*side[1:], u])
    assert h.reason(u) is None
    h.fold.add_items([*made, t2])
    assert h.reason(t2) is None and h.fold.graph.key(t2.id) < h.fold.graph.key(u.id)
    assert t1.id in closure(h.items, u.id) and t2.id not in closure(h.items, u.id)
    assert h.reason(u) is None


# ---- reading the fold: tips, deferred actions ---------------------------------------------------


def test_tips_are_applied_actions_nothing_else_builds_on() -> None:
    h = Hist()
    f0, f1, f2 = h.founders
    a = h.app(f0)
    b = h.make(f1, RIDE, {"n": 1}, deps=[a.id])
    c = h.make(f2, RIDE, {"n": 2}, deps=[a.id])
    stranger = h.make(h.person("stranger"), RIDE, {"n": 3}, deps=[a.id])
    rejected = h.make(f2, VOTE, {"proposal": make_id("none"), "choice": "yes"}, deps=[a.id], prev=c.id)
    h.add(b, c, stranger)
    h.add(rejected)
    assert set(h.fold.tips()) == {b.id, c.id}
    assert len(h.fold.tips(limit=1)) == 1


def test_a_deferred_action_says_what_it_waits_for() -> None:
    h = Hist()
    gone = make_id("never arrives")
    it = h.make(h.founders[1], RIDE, {"n": 1}, deps=[gone])
    nxt = h.make(h.founders[1], RIDE, {"n": 2})
    other = h.make(h.founders[2], RIDE, {"n": 3}, deps=[nxt.id])
    h.fold.add_items([it, nxt, other])
    assert [h.fold.result(x.id) for x in (it, nxt, other)] == [("deferred", None)] * 3
    assert h.fold.waits_for(other.id) == [gone]
    assert h.fold.deferred == 3
    assert h.fold.result(gone) == ("unknown", None)
    assert h.reason(h.app(h.founders[0])) is None  # the rest of the co-op goes on


def test_an_action_with_no_parents_sorts_after_the_genesis() -> None:
    """An action may name neither prev nor deps (seq 1, deps []): it is well-formed on the wire. The
    genesis is in every causal past, so it sorts after the genesis whatever its id; an
    application judged before the genesis could not read a charter."""
    h = Hist()
    low = Item(b"\x00" * 32, h.person("newcomer"), 1, None, (), TS0 + 5, APPLY, {})
    other = Item(b"\x00" * 31 + b"\x01", h.person("stranger"), 1, None, (), TS0 + 5, RIDE, {})
    h.add(low, other)
    assert h.fold.height[low.id] == h.fold.height[other.id] == 1
    assert h.fold.order[0][2] == h.genesis.id
    assert h.reason(low) is None and h.fold.state.status(low.author) == MEMBER
    assert h.reason(other) == "status_none"
    assert h.time(low) == TS0  # the genesis's co-op time, not zero
    assert summary(h.fold) == summary(fold_in(h.genesis, [[other], [low]]))


def test_a_tally_that_expels_its_own_author_is_not_a_clock_witness() -> None:
    """A witness action's author is, just after it, a member not suspended in its own view."""
    h = Hist(founders=3, charter_=charter(offences=OFFENCES))
    f0, f1, f2, f3 = h.founders
    op = h.open(f0, "sanction", {"member": f3, "clause": "fraud", "evidence": []})
    for f in (f0, f1, f2):
        h.vote(f, op, "yes")
    h.close(witnesses=[f0, f1, f2])
    t = h.tally(f3, op, "passed", ts=h.clock + 10 * DAY_MS)  # f3 counts its own expulsion, stamped far ahead
    assert h.reason(t) is None and h.fold.state.status(f3) == EXPELLED
    line(h, [(f0, h.clock + 5 * DAY_MS)])  # f1's and f2's latest: at the close
    after = h.seen(f2, ts=h.clock)
    assert h.time(after) == h.clock  # f0 at 5 days, f1 and f2 now; with f3's stamp it would be 5 days


# ---- member.seen ---------------------------------------------------------------------------------


def test_member_seen_records_what_its_author_saw_and_changes_nothing() -> None:
    h = Hist()
    x = h.person("x")
    h.apply(x)
    before = h.fold.canonical()
    s = h.seen(x)
    assert h.reason(s) is None
    after = h.fold.canonical()
    assert {k: v for k, v in after.items() if k not in ("counted", "results")} == {
        k: v for k, v in before.items() if k not in ("counted", "results")
    }
    assert after["counted"] == before["counted"] + 1
    assert h.reason(h.seen(h.person("stranger"))) == "status_none"


def test_a_tally_counts_an_electorate_of_ten_thousand() -> None:
    """Issue #9: a tally can count any electorate, at least 10,000 voters. 10,000 members join an
    open co-op, 6,001 vote yes and 3,999 no on a proposal they all see opened; a tally that has seen
    the last vote counts every one of them, and a wrong claim is refused."""
    h = Hist(charter_=charter(policy="open"))
    people = [h.person(i) for i in range(10_000)]
    for p in people:  # each seeing the one before, as members joining one after another
        h.apply(p)
    assert all(p in h.fold.state.members for p in people)
    op = h.open(h.founders[0], "text", {})
    electorate = h.fold.state.proposals[op.id].electorate
    assert len(electorate) == 10_000 + len(h.founders) and set(people) <= electorate
    for i, p in enumerate(people):
        h.vote(p, op, "yes" if i <= 6_000 else "no")
    p = h.fold.state.proposals[op.id]
    assert len(p.votes) == 10_000 and p.status == "open"  # the founders have not voted: the window decides
    h.close()
    wrong = h.tally(h.founders[0], op, "rejected")
    assert h.reason(wrong) == "wrong_outcome:passed"  # the claim that would have been right, named
    right = h.tally(h.founders[1], op, "passed")
    assert h.reason(right) is None
    p = h.fold.state.proposals[op.id]
    assert (p.status, p.decided_by) == ("passed", right.id)
    every_vote = {m: votes[-1][0] for m, votes in p.votes.items()}
    assert outcome(p, every_vote, closed=True) == ("passed", {"yes": 6_001, "no": 3_999, "abstain": 0, "block": 0})
    # One vote fewer on the yes side would still pass; the counts are the claim's, not a sample.
    assert count_votes(p, {m: s for m, s in every_vote.items() if m != people[0]})[0]["yes"] == 6_000
