"""Governance across three real nodes (aiohttp servers on 127.0.0.1, SQLite files in tmp_path).

A whole co-op life through the HTTP API: found, apply, admit by vote, propose, vote from different
nodes, tally, sanction, appeal, federate two co-ops; then a partition during which both sides act,
and an equivocation posted through two nodes. After each step every node must report the same
state hash. Waits are conditions with deadlines, never fixed sleeps. Proposals decide here because
the whole electorate votes (their windows stay open); tests/test_governance_attacks.py moves the
co-op clock past windows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from protocol import Action, sign_action
from protocol.charter import DEFAULT_CHARTER
from protocol.ids import IdKind, format_id

from .attack_helpers import Member, Net, three_nodes
from .fed_helpers import wait_until

DEADLINE_S = 30.0


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with three_nodes(tmp_path) as n:
        yield n


async def _result(net: Net, i: int, coop: bytes, action: Action) -> tuple[str, str | None]:
    r = await net.result(i, coop, action)
    return r["result"], r["reason"]


def _charter(policy: str = "vote") -> dict[str, Any]:
    c = {**DEFAULT_CHARTER, "membership": {"policy": policy, "sponsors": 1}}
    c["decisions"] = {"default": {"quorum": 50, "threshold": "majority"}, "sanction": {"quorum": 50, "threshold": "majority"}}
    c["equivocation"] = {"days": 30, "sanction": "suspend"}
    return c


async def _vote_and_tally(
    net: Net, coop: bytes, proposal: Action, voters: list[tuple[Member, str, int]], tallier: Member, at: int, outcome: str
) -> Action:
    votes = []
    for m, choice, node in voters:
        v = m.act(coop, "vote.cast", {"choice": choice, "proposal": proposal.id}, [proposal])
        await net.post(node, v)
        votes.append(v)
    await net.everywhere(*votes)
    tally = tallier.act(coop, "proposal.tally", {"outcome": outcome, "proposal": proposal.id}, [proposal, *votes])
    await net.post(at, tally)
    await net.everywhere(tally)
    return tally


async def test_a_coops_whole_life_across_three_nodes(net: Net) -> None:
    f0, f1, x, y, g0 = (Member(n) for n in ("f0", "f1", "x", "y", "g0"))
    genesis = f0.found("Valley Food Hub", _charter("vote"), [f1])
    coop = genesis.id
    await net.post(0, genesis)
    await net.everywhere(genesis)

    # x applies through node 1; the co-op admits by vote: proposal on node 0, votes on nodes 0 and 2, tally on node 1.
    apply = x.act(coop, "member.apply", {"note": "I grow leeks"}, [genesis])
    await net.post(1, apply)
    await net.everywhere(apply)
    admit = f0.act(coop, "proposal.open", {"payload": {"member": x.key.public_key}, "title": "Admit x", "type": "admit"}, [apply])
    await net.post(0, admit)
    await net.everywhere(admit)
    admitted = await _vote_and_tally(net, coop, admit, [(f0, "yes", 0), (f1, "yes", 2)], f1, 1, "passed")
    members = (await net.get(2, f"/api/v1/coops/{format_id(IdKind.COOP, coop)}/members"))["members"]
    assert {m["member"]: m["status"] for m in members}[x.id] == "member"
    await net.same_state(coop)

    # A proposal with a vote against, and a tally claiming the wrong outcome is rejected everywhere.
    room = x.act(coop, "proposal.open", {"payload": {}, "title": "Buy a cold room", "type": "text"}, [admitted])
    await net.post(2, room)
    await net.everywhere(room)
    wrong = f0.act(coop, "proposal.tally", {"outcome": "passed", "proposal": room.id}, [room])
    await net.post(0, wrong)
    await net.everywhere(wrong)
    assert [await _result(net, i, coop, wrong) for i in range(3)] == [("rejected", "wrong_outcome:open")] * 3
    room_passed = await _vote_and_tally(net, coop, room, [(f0, "yes", 0), (f1, "no", 1), (x, "yes", 2)], x, 2, "passed")

    # Sanction x under the charter's misconduct clause; x's next action is rejected on every node.
    offer = x.act(coop, "ride.offer", {"seats": 2}, [room_passed])
    await net.post(2, offer)
    sanction = f0.act(
        coop,
        "proposal.open",
        {
            "payload": {"clause": "misconduct", "evidence": [offer.id], "member": x.key.public_key},
            "title": "Sanction x",
            "type": "sanction",
        },
        [offer],
    )
    await net.post(0, sanction)
    await net.everywhere(sanction)
    # The whole electorate votes (x against), so the sanction is decided while its window is open.
    decided = await _vote_and_tally(net, coop, sanction, [(f0, "yes", 0), (f1, "yes", 1), (x, "no", 2)], f1, 1, "passed")
    blocked = x.act(coop, "ride.offer", {"seats": 1}, [decided])
    await net.post(1, blocked)
    await net.everywhere(blocked)
    assert [await _result(net, i, coop, blocked) for i in range(3)] == [("rejected", "suspended")] * 3
    sanctions = (await net.get(0, f"/api/v1/coops/{format_id(IdKind.COOP, coop)}/sanctions"))["sanctions"]
    [s] = sanctions
    assert s["member"] == x.id and s["clause"] == "misconduct" and s["clause_text"] and s["active"]
    assert s["evidence"] == [format_id(IdKind.ACTION, offer.id)]

    # Appeal: x may open a lift proposal while suspended; it passes; x acts again.
    appeal = x.act(
        coop, "proposal.open", {"payload": {"sanction": sanction.id}, "title": "I was wrongly accused", "type": "lift"}, [decided]
    )
    await net.post(2, appeal)
    await net.everywhere(appeal)
    assert [await _result(net, i, coop, appeal) for i in range(3)] == [("applied", None)] * 3
    lifted = await _vote_and_tally(net, coop, appeal, [(f0, "yes", 0), (f1, "yes", 2)], f0, 0, "passed")
    again = x.act(coop, "ride.offer", {"seats": 3}, [lifted])
    await net.post(0, again)
    await net.everywhere(again)
    assert [await _result(net, i, coop, again) for i in range(3)] == [("applied", None)] * 3
    hash_a = await net.same_state(coop)

    # Federate with a second co-op founded on node 2: both sides pass the proposal.
    other = g0.found("Hill Riders", _charter("open"), [y])
    await net.post(2, other)
    await net.everywhere(other)
    fed_a = f0.act(
        coop,
        "proposal.open",
        {"payload": {"coop": other.id, "terms": {"share": "rides"}}, "title": "Federate", "type": "federate"},
        [again],
    )
    await net.post(0, fed_a)
    await net.everywhere(fed_a)
    await _vote_and_tally(net, coop, fed_a, [(f0, "yes", 0), (f1, "yes", 1), (x, "yes", 2)], f0, 0, "passed")
    fed_b = g0.act(
        other.id,
        "proposal.open",
        {"payload": {"coop": coop, "terms": {"share": "produce"}}, "title": "Federate", "type": "federate"},
        [other],
    )
    await net.post(2, fed_b)
    await net.everywhere(fed_b)
    await _vote_and_tally(net, other.id, fed_b, [(g0, "yes", 2), (y, "yes", 1)], y, 1, "passed")
    feds = (await net.get(1, f"/api/v1/coops/{format_id(IdKind.COOP, coop)}/federations"))["federations"]
    assert feds == [
        {"coop": format_id(IdKind.COOP, other.id), "terms": {"share": "rides"}, "decided_by": feds[0]["decided_by"], "mutual": True}
    ]
    assert await net.same_state(coop) != hash_a
    await net.same_state(other.id)

    # A partition: node 0 | nodes 1, 2. Both sides act; after the heal all three agree.
    await net.partition([{0}, {1, 2}])
    left = f0.act(coop, "ride.offer", {"seats": 4}, [again])
    await net.post(0, left)
    plan = x.act(coop, "proposal.open", {"payload": {}, "title": "Summer market", "type": "text"}, [again])
    await net.post(2, plan)
    await net.everywhere(plan, nodes=(1, 2))
    await _vote_during_partition(net, coop, plan, f1, x)
    assert await net.status_of(0, plan) is None and await net.status_of(1, left) is None
    await net.partition([{0, 1, 2}])
    final = await net.same_state(coop)
    assert final == await net.same_state(coop)
    state = await net.get(0, f"/api/v1/coops/{format_id(IdKind.COOP, coop)}/state")
    assert state["state_hash"] == final and state["deferred"] == 0


async def _vote_during_partition(net: Net, coop: bytes, plan: Action, f1: Member, x: Member) -> None:
    v1 = f1.act(coop, "vote.cast", {"choice": "yes", "proposal": plan.id}, [plan])
    v2 = x.act(coop, "vote.cast", {"choice": "yes", "proposal": plan.id}, [plan])
    await net.post(1, v1)
    await net.post(2, v2)
    await net.everywhere(v1, v2, nodes=(1, 2))
    # f0, on the other side, has not voted and the window is open: the right claim is "open".
    tally = x.act(coop, "proposal.tally", {"outcome": "open", "proposal": plan.id}, [plan, v1, v2])
    await net.post(2, tally)
    await net.everywhere(tally, nodes=(1, 2))
    assert await _result(net, 1, coop, tally) == ("applied", None)


async def test_an_equivocating_member_is_sanctioned_on_every_node(net: Net) -> None:
    f0, x = Member("f0"), Member("x")
    genesis = f0.found("Brakes and Bells", _charter("open"), [])
    coop = genesis.id
    await net.post(0, genesis)
    await net.everywhere(genesis)
    joined = x.act(coop, "member.apply", {}, [genesis])
    await net.post(0, joined)
    await net.everywhere(joined)
    # x signs two different actions at the same place in their chain and posts them through two nodes.
    seq, prev = x.heads[coop]
    one = sign_action(x.key, coop=coop, seq=seq + 1, prev=prev, deps=[joined.id], ts=3_000, kind="ride.offer", body={"slot": "Tue 9:00"})
    two = sign_action(
        x.key, coop=coop, seq=seq + 1, prev=prev, deps=[joined.id], ts=3_000, kind="ride.offer", body={"slot": "Tue 9:00", "again": True}
    )
    await asyncio.gather(net.post(0, one), net.post(2, two))
    text = format_id(IdKind.COOP, coop)

    async def proven_everywhere() -> bool:
        return all([len((await net.get(i, f"/api/v1/coops/{text}/proofs"))["proofs"]) == 1 for i in range(3)])

    await wait_until(proven_everywhere, within=DEADLINE_S, what="the equivocation proof on every node")
    await net.same_state(coop)
    for i in range(3):
        sanctions = (await net.get(i, f"/api/v1/coops/{text}/sanctions"))["sanctions"]
        assert [(s["member"], s["kind"], s["clause"]) for s in sanctions] == [(x.id, "suspend", "equivocation")]
    # x's next action, on top of the fork every node kept, is rejected everywhere.
    keep = min(one, two, key=lambda a: a.id)
    later = sign_action(x.key, coop=coop, seq=seq + 2, prev=keep.id, deps=[keep.id], ts=4_000, kind="ride.offer", body={})
    await net.post(1, later)
    await net.everywhere(later)
    assert [await _result(net, i, coop, later) for i in range(3)] == [("rejected", "suspended")] * 3
    await net.same_state(coop)
