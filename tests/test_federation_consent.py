"""Federation is by consent: a co-op's actions reach another co-op's nodes only while both co-ops
have decided to federate, and either ending it stops copying both ways.

Two real nodes on 127.0.0.1, each configured to replicate one co-op (``replicate = [A]`` and
``[B]``), peers of each other. Each co-op has one founder, so a proposal is decided as soon as the
founder votes (the whole electorate has voted).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp

from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from tests.fed_helpers import Cluster, get_json, get_text, metric, post, wait_until

TS = 1_700_000_000_000


class Founder:
    def __init__(self, label: str, name: str) -> None:
        self.key = SigningKey(hashlib.sha256(b"consent:" + label.encode()).digest())
        self.genesis = sign_genesis(self.key, ts=TS, body={"name": name})
        self.head: Action = self.genesis
        self.coop = self.genesis.id

    def act(self, kind: str, body: Any, deps: list[bytes] = ()) -> Action:  # type: ignore[assignment]
        a = sign_action(
            self.key, coop=self.coop, seq=self.head.seq + 1, prev=self.head.id, deps=list(deps), ts=TS + self.head.seq, kind=kind, body=body
        )
        self.head = a
        return a

    def decide(self, ptype: str, payload: Any) -> list[Action]:
        op = self.act("proposal.open", {"payload": payload, "title": ptype, "type": ptype})
        vote = self.act("vote.cast", {"choice": "yes", "proposal": op.id})
        tally = self.act("proposal.tally", {"outcome": "passed", "proposal": op.id})
        return [op, vote, tally]


async def _count(node_url: str, http: aiohttp.ClientSession, coop: bytes) -> int:
    status, doc = await get_json(http, f"{node_url}/api/v1/coops/{format_id(IdKind.COOP, coop)}")
    return int(doc["actions"]) if status == 200 else 0


async def test_copying_needs_both_decisions_and_stops_when_either_ends(tmp_path: Path) -> None:
    a, b = Founder("a", "Food Hub"), Founder("b", "Bike Riders")
    cl = Cluster(tmp_path)
    na, nb = cl.add(2)
    cl.federate(na, replicate=(format_id(IdKind.COOP, a.coop),))
    cl.federate(nb, replicate=(format_id(IdKind.COOP, b.coop),))
    cl.mesh()
    try:
        await cl.start_all()
        async with aiohttp.ClientSession() as http:
            await post(http, na.url, [a.genesis, a.act("ride.offer", {"seats": 2})])
            await post(http, nb.url, [b.genesis, b.act("ride.offer", {"seats": 3})])

            async def reconciled(url: str) -> float:
                return metric(await get_text(http, url + "/metrics"), "coopnet_reconciliations_total") or 0.0

            async def rounds(*askers: object, n: int = 4) -> None:
                """Let each of ``askers`` (the nodes that want another co-op) run ``n`` more
                reconciliations of it, whatever their outcome."""
                urls = [s.url for s in askers]  # type: ignore[attr-defined]
                start = [await reconciled(u) for u in urls]

                async def done() -> bool:
                    await cl.run_rounds()
                    now = [await reconciled(u) for u in urls]
                    return all(y >= x + n for x, y in zip(start, now, strict=True))

                await wait_until(done, within=30, what=f"{n} reconciliations on each asking node")

            # Only A decides: A's node asks for B, B's node refuses (B has not decided).
            decided_a = a.decide("federate", {"coop": b.coop, "terms": {"carry": "orders"}})
            await post(http, na.url, decided_a)
            await get_json(http, f"{na.url}/api/v1/coops/{format_id(IdKind.COOP, a.coop)}/state")  # fold it now
            await rounds(na)
            assert await _count(na.url, http, b.coop) == 0, "A's node copied B's actions before B decided"
            assert await _count(nb.url, http, a.coop) == 0

            # B decides too: both copy the other.
            decided_b = b.decide("federate", {"coop": a.coop, "terms": {"list": "riders"}})
            await post(http, nb.url, decided_b)
            await get_json(http, f"{nb.url}/api/v1/coops/{format_id(IdKind.COOP, b.coop)}/state")

            async def both() -> bool:
                await cl.run_rounds()
                return await _count(na.url, http, b.coop) == 5 and await _count(nb.url, http, a.coop) == 5

            await wait_until(both, within=20, what="both co-ops copied on both nodes")
            status, feds = await get_json(http, f"{na.url}/api/v1/coops/{format_id(IdKind.COOP, a.coop)}/federations")
            assert status == 200 and feds["federations"][0]["mutual"] is True

            # A ends it: from then on neither node receives the other co-op's new actions.
            await post(http, na.url, a.decide("unfederate", {"coop": b.coop}))
            await get_json(http, f"{na.url}/api/v1/coops/{format_id(IdKind.COOP, a.coop)}/state")

            await rounds(nb)  # B's node asks for A as before; A's node now refuses it
            a_before, b_before = await _count(nb.url, http, a.coop), await _count(na.url, http, b.coop)
            await post(http, na.url, [a.act("ride.offer", {"seats": 1})])
            await post(http, nb.url, [b.act("ride.offer", {"seats": 1})])
            await rounds(nb, n=6)  # B's node still asks for A (it has not folded A's end): A's node refuses
            assert await _count(nb.url, http, a.coop) == a_before, "B's node still receives A's actions after A ended it"
            assert await _count(na.url, http, b.coop) == b_before, "A's node still receives B's actions after A ended it"
    finally:
        await cl.close()
