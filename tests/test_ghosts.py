"""Actions built on the losing side of a fork are judged on every node, never deferred for ever.

A member forks their chain; another member builds on the losing branch (two actions deep, so no
equivocation proof carries it). Node A holds everything. Node B joins afterwards: its catch-up
brings the kept chains and the proof, not the losing branch; its fold waits for that dep, asks a
peer for it by id (``/peer/v1/fetch`` ``ids``), keeps it aside, and judges what was built on it.
Both nodes end with the same governance state. Real nodes on 127.0.0.1, real SQLite.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp

from protocol import SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from tests.fed_helpers import Cluster, get_json, post, wait_until

TS = 1_700_000_000_000


def key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"ghosts:" + label.encode()).digest())


async def test_a_dep_on_a_deep_losing_branch_is_fetched_by_id_and_judged(tmp_path: Path) -> None:
    founder, forker, builder = key("founder"), key("forker"), key("builder")
    g = sign_genesis(founder, ts=TS, body={"name": "Ghost Co-op"})
    coop = g.id

    def act(k: SigningKey, seq: int, prev: bytes | None, deps: list[bytes], kind: str, body: object, ts: int) -> object:
        return sign_action(k, coop=coop, seq=seq, prev=prev, deps=deps, ts=ts, kind=kind, body=body)

    f_apply = act(forker, 1, None, [g.id], "member.apply", {}, TS + 1)
    b_apply = act(builder, 1, None, [g.id], "member.apply", {}, TS + 2)
    x = act(forker, 2, f_apply.id, [g.id], "ride.offer", {"to": "Lyon"}, TS + 3)  # type: ignore[attr-defined]
    y = act(forker, 2, f_apply.id, [g.id], "ride.offer", {"to": "Grenoble"}, TS + 3)  # type: ignore[attr-defined]
    win, lose = sorted((x, y), key=lambda a: a.id)  # type: ignore[attr-defined]
    deep = act(forker, 3, lose.id, [], "ride.offer", {"to": "Annecy"}, TS + 4)  # type: ignore[attr-defined]
    built = act(builder, 2, b_apply.id, [deep.id], "ride.request", {"seat": 1}, TS + 5)  # type: ignore[attr-defined]
    after = act(builder, 3, built.id, [win.id], "ride.request", {"seat": 2}, TS + 6)  # type: ignore[attr-defined]

    cl = Cluster(tmp_path)
    a, b = cl.add(2)
    cl.mesh()
    try:
        node_a = await cl.start(a)
        async with aiohttp.ClientSession() as http:
            await post(http, a.url, [g, f_apply, b_apply, lose, deep])  # type: ignore[list-item]
            # The winner arrives second here: the losing branch (two deep) goes aside.
            doc = await post_any(http, a.url, [win, built, after])  # type: ignore[list-item]
            assert [r["status"] for r in doc["results"]] == ["accepted", "accepted", "accepted"], doc
            text = format_id(IdKind.COOP, coop)

            async def judged(url: str, action: object) -> tuple[str, str | None]:
                status, r = await get_json(http, f"{url}/api/v1/coops/{text}/results/{format_id(IdKind.ACTION, action.id)}")  # type: ignore[attr-defined]
                return (r["result"], r["reason"]) if status == 200 else ("unknown", None)

            assert (await judged(a.url, built))[0] in ("applied", "rejected")
            assert (await judged(a.url, deep))[0] == "forked"
            node_b = await cl.start(b)

            async def caught_up() -> bool:
                await cl.run_rounds()
                return (await judged(b.url, after))[0] in ("applied", "rejected")

            await wait_until(caught_up, within=30, what="node B judges what was built on the losing branch")
            assert await judged(b.url, built) == await judged(a.url, built)
            assert await judged(b.url, after) == await judged(a.url, after)
            sa = (await get_json(http, f"{a.url}/api/v1/coops/{text}/state"))[1]
            sb = (await get_json(http, f"{b.url}/api/v1/coops/{text}/state"))[1]
            assert sa["state_hash"] == sb["state_hash"] and sb["deferred"] == 0
            forked = await node_b.store.get_action(deep.id)  # type: ignore[attr-defined]
            assert forked is not None and forked.status == "forked"  # it came by id, and went aside
            assert node_a.store is not None
    finally:
        await cl.close()


async def post_any(http: aiohttp.ClientSession, url: str, actions: list[object]) -> dict[str, object]:
    from protocol.messages import encode_submission

    body = encode_submission([x.raw for x in actions])  # type: ignore[attr-defined]
    async with http.post(url + "/api/v1/actions", data=body, headers={"Content-Type": "application/msgpack"}) as r:
        return dict(await r.json())
