"""node/api.py against a real aiohttp server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack
import pytest

from node.node import Node
from node.views import value_to_json
from protocol import Action, SigningKey, codec, decode_proof, sign_action
from protocol.ids import IdKind, format_id, parse_id
from tests.conftest import (
    JSON,
    MSGPACK,
    TEST_LIMITS,
    NodeClient,
    NodeFactory,
    Reply,
    act_id,
    bad_body,
    bad_signature,
    coop_id,
    fresh_keys,
    make_chain,
    make_genesis,
    mem_id,
    member_key,
    next_action,
)

ERROR_KEYS = {"error", "message"}
SUBMISSION_KEYS = {"results", "accepted", "known", "pending", "held", "rejected"}
SAME_IN_BOTH_FORMS = (
    "id",
    "coop",
    "author",
    "seq",
    "prev",
    "deps",
    "ts",
    "kind",
    "body_present",
    "body_size",
    "status",
    "pos",
    "received_at",
)


@dataclass
class World:
    """A node with one co-op founded by ``founder``."""

    node: Node
    client: NodeClient
    founder: SigningKey
    genesis: Action
    others: Iterator[SigningKey]

    @property
    def coop(self) -> bytes:
        return self.genesis.id

    @property
    def coop_text(self) -> str:
        return coop_id(self.genesis)

    def newcomer_action(self, **kw: Any) -> Action:
        """Seq 1 of a member never seen before."""
        return next_action(next(self.others), self.coop, None, **kw)

    async def assert_still_serving(self) -> None:
        """The node answers the next good request normally."""
        a = self.newcomer_action()
        reply = await self.client.post([a], single=True)
        assert reply.status == 200, reply.data
        assert reply.json["results"] == [{"id": act_id(a), "status": "accepted"}]
        assert await self.client.status_of(a) == "stored"


@pytest.fixture
async def world(node: Node, client: NodeClient) -> World:
    founder = member_key(1)
    genesis = make_genesis(founder, name="Valley Food Hub", purpose="short supply chains")
    reply = await client.post([genesis], single=True)
    assert reply.status == 200, reply.data
    return World(node, client, founder, genesis, fresh_keys())


def assert_error_body(reply: Reply, status: int, code: str, *, submission: bool = False) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.data)
    body = reply.json
    assert isinstance(body, dict)
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) == (ERROR_KEYS | SUBMISSION_KEYS if submission else ERROR_KEYS), body
    return body


async def assert_rejected_cleanly(
    w: World, reply: Reply, status: int, code: str, before: dict[str, int], absent: Sequence[Action] = (), *, submission: bool = False
) -> dict[str, Any]:
    """The error is the specific one, nothing was stored, and the node keeps serving."""
    body = assert_error_body(reply, status, code, submission=submission)
    assert await w.client.counts() == before
    for a in absent:
        assert await w.client.status_of(a) is None
    await w.assert_still_serving()
    return body


# ---- happy path ------------------------------------------------------------------------------


async def test_genesis_is_listed_with_its_name(world: World) -> None:
    reply = await world.client.get("/api/v1/coops")
    assert reply.status == 200
    assert reply.json == {
        "coops": [
            {
                "id": world.coop_text,
                "name": "Valley Food Hub",
                "founder": mem_id(world.founder),
                "created_ts": world.genesis.env.ts,
                "actions": 1,
            }
        ]
    }


async def test_get_coop_includes_genesis(world: World) -> None:
    reply = await world.client.get(f"/api/v1/coops/{world.coop_text}")
    assert reply.status == 200
    coop = reply.json
    assert coop["id"] == world.coop_text
    assert coop["name"] == "Valley Food Hub"
    assert coop["chains"] == 1
    g = coop["genesis"]
    assert g["id"] == act_id(world.genesis)
    assert g["coop"] == world.coop_text
    assert g["kind"] == "coop.genesis"
    assert g["seq"] == 1 and g["prev"] is None
    assert g["body"] == {"name": "Valley Food Hub", "purpose": "short supply chains"}
    assert base64.b64decode(g["raw"]) == world.genesis.raw


async def test_get_action_json_and_msgpack_agree(world: World) -> None:
    a = next_action(world.founder, world.coop, world.genesis, kind="offer.produce", body={"item": "leeks", "kg": 4, "photo": b"\x00\xff"})
    b = next_action(world.founder, world.coop, a, deps=(world.genesis.id,))
    reply = await world.client.post([a, b])
    assert reply.status == 200 and reply.json["accepted"] == 2
    for x in (a, b):
        as_json = (await world.client.get(f"/api/v1/actions/{act_id(x)}")).json
        binary_reply = await world.client.get(f"/api/v1/actions/{act_id(x)}", binary=True)
        assert binary_reply.status == 200
        as_msgpack = binary_reply.msgpack
        assert set(as_json) == set(as_msgpack)
        assert base64.b64decode(as_json["raw"]) == as_msgpack["raw"] == x.raw
        assert bytes.fromhex(as_json["sig"]) == as_msgpack["sig"] == x.sig
        assert bytes.fromhex(as_json["body_hash"]) == as_msgpack["body_hash"] == x.env.body_hash
        assert as_json["body"] == value_to_json(as_msgpack["body"])
        for field in SAME_IN_BOTH_FORMS:
            assert as_json[field] == as_msgpack[field], field
        assert as_json["id"] == act_id(x)
        assert as_json["author"] == mem_id(world.founder)
        assert as_json["status"] == "stored"
    b_json = (await world.client.get(f"/api/v1/actions/{act_id(b)}")).json
    assert b_json["prev"] == act_id(a)
    assert b_json["deps"] == [act_id(world.genesis)]
    a_bin = (await world.client.get(f"/api/v1/actions/{act_id(a)}", binary=True)).msgpack
    assert a_bin["body"] == {"item": "leeks", "kg": 4, "photo": b"\x00\xff"}


async def collect_pages(client: NodeClient, path: str, *, limit: int, after: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Walk a paginated listing to its end (bounded), checking each page's shape."""
    out: list[dict[str, Any]] = []
    for _ in range(1000):
        reply = await client.get(path, limit=limit, after=after, **params)
        assert reply.status == 200, reply.data
        page = reply.json
        assert len(page["actions"]) <= limit
        out.extend(page["actions"])
        after = page["next"]
        if after is None:
            return out
        assert page["actions"], "a page with a next cursor must not be empty"
    raise AssertionError("pagination did not end")


async def test_list_actions_filters_and_pagination(world: World) -> None:
    members = [world.founder, member_key(2), member_key(3)]
    heads: dict[bytes, Action | None] = {m.public_key: None for m in members}
    heads[world.founder.public_key] = world.genesis
    retyped: list[Action] = []  # nine actions per member, interleaved; every fourth is an offer.ride
    for i in range(27):
        key = members[i % 3]
        a = next_action(key, world.coop, heads[key.public_key], kind="offer.ride" if i % 4 == 0 else "test.note", body={"i": i})
        heads[key.public_key] = a
        retyped.append(a)
    for i in range(0, len(retyped), 4):
        reply = await world.client.post(retyped[i : i + 4])
        assert reply.status == 200 and reply.json["accepted"] == len(retyped[i : i + 4])

    path = f"/api/v1/coops/{world.coop_text}/actions"
    everything = (await world.client.get(path, limit=50)).json
    assert everything["next"] is None
    all_ids = [x["id"] for x in everything["actions"]]
    # Arrival order: batch by batch (inside one batch the store orders by chain, then seq).
    assert all_ids[0] == act_id(world.genesis)
    for i in range(0, len(retyped), 4):
        assert set(all_ids[1 + i : 5 + i]) == {act_id(a) for a in retyped[i : i + 4]}
    for m in members:
        seqs = [x["seq"] for x in everything["actions"] if x["author"] == mem_id(m)]
        assert seqs == list(range(1, len(seqs) + 1))
    positions = [x["pos"] for x in everything["actions"]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)

    for limit in (1, 4, 7, 28, 50):
        paged = await collect_pages(world.client, path, limit=limit)
        assert [x["id"] for x in paged] == all_ids, limit

    alice = member_key(2)
    by_author = await collect_pages(world.client, path, limit=4, author=mem_id(alice))
    assert [x["seq"] for x in by_author] == list(range(1, 10))
    assert {x["author"] for x in by_author} == {mem_id(alice)}

    rides = await collect_pages(world.client, path, limit=2, kind="offer.ride")
    assert [x["id"] for x in rides] == [x["id"] for x in everything["actions"] if x["kind"] == "offer.ride"]
    assert len(rides) == sum(1 for a in retyped if a.kind == "offer.ride") == 7
    both = await collect_pages(world.client, path, limit=3, kind="offer.ride", author=mem_id(alice))
    assert [x["id"] for x in both] == [x["id"] for x in rides if x["author"] == mem_id(alice)]
    assert len(both) == sum(1 for a in retyped if a.kind == "offer.ride" and a.author == alice.public_key) > 0

    # after= continues strictly after a position.
    middle = positions[10]
    rest = await collect_pages(world.client, path, limit=7, after=str(middle))
    assert [x["pos"] for x in rest] == positions[11:]
    assert (await world.client.get(path, after=positions[-1])).json == {"actions": [], "next": None}


async def test_chains_report_heads(world: World) -> None:
    alice = member_key(2)
    founder_chain = make_chain(world.founder, world.coop, 3, after=world.genesis)
    alice_chain = make_chain(alice, world.coop, 2)
    assert (await world.client.post([*founder_chain, *alice_chain])).json["accepted"] == 5
    reply = await world.client.get(f"/api/v1/coops/{world.coop_text}/chains")
    assert reply.status == 200
    chains = {c["author"]: c for c in reply.json["chains"]}
    assert reply.json["coop"] == world.coop_text
    assert chains == {
        mem_id(world.founder): {"author": mem_id(world.founder), "seq": 4, "head": act_id(founder_chain[-1]), "pending": 0},
        mem_id(alice): {"author": mem_id(alice), "seq": 2, "head": act_id(alice_chain[-1]), "pending": 0},
    }
    only = (await world.client.get(f"/api/v1/coops/{world.coop_text}/chains", author=mem_id(alice))).json
    assert only["chains"] == [chains[mem_id(alice)]]
    nobody = (await world.client.get(f"/api/v1/coops/{world.coop_text}/chains", author=mem_id(member_key(99)))).json
    assert nobody["chains"] == []


async def test_node_info_counts_and_healthz(world: World) -> None:
    chain = make_chain(member_key(2), world.coop, 3)
    await world.client.post(chain)
    await world.client.post([chain[0]])  # known
    info = (await world.client.get("/api/v1/node")).json
    assert info["node_id"] == format_id(IdKind.NODE, world.node.node_id)
    assert info["counts"] == {"actions": 4, "coops": 1, "pending": 0, "proofs": 0, "chains": 2}
    assert info["submitted"] == {"accepted": 4, "known": 1, "pending": 0, "rejected": {}}
    assert info["limits"]["max_batch_actions"] == TEST_LIMITS["max_batch_actions"]
    assert info["limits"]["max_request_bytes"] == TEST_LIMITS["max_request_bytes"]
    health = await world.client.get("/healthz")
    assert health.status == 200 and health.json == {"ok": True, "status": "alive", "peers_reachable": 0}
    ready = await world.client.get("/readyz")
    assert ready.status == 200 and ready.json["ready"] is True and ready.json["reasons"] == []


# ---- results per action ----------------------------------------------------------------------


async def test_accepted_then_known(world: World) -> None:
    a = world.newcomer_action()
    first = await world.client.post([a])
    assert first.status == 200
    assert first.json == {
        "results": [{"id": act_id(a), "status": "accepted"}],
        "accepted": 1,
        "known": 0,
        "pending": 0,
        "held": 0,
        "rejected": 0,
    }
    before = await world.client.counts()
    again = await world.client.post([a], fmt="json")
    assert again.status == 200
    assert again.json["results"] == [{"id": act_id(a), "status": "known"}]
    assert await world.client.counts() == before
    single = await world.client.post([world.genesis], single=True)
    assert single.status == 200 and single.json["results"][0]["status"] == "known"


async def test_json_and_msgpack_submissions_are_equivalent(world: World) -> None:
    chain = make_chain(member_key(2), world.coop, 3)
    reply = await world.client.post(chain, fmt="json")
    assert reply.status == 200
    assert [r["status"] for r in reply.json["results"]] == ["accepted"] * 3
    again = await world.client.post(chain, fmt="msgpack")
    assert [r["status"] for r in again.json["results"]] == ["known"] * 3
    # Answers in msgpack on request.
    more = make_chain(member_key(2), world.coop, 1, after=chain[-1])
    r = await world.client.http.post(
        world.client.url + "/api/v1/actions",
        data=msgpack.packb({"actions": [more[0].raw]}),
        headers={"Content-Type": MSGPACK, "Accept": MSGPACK},
    )
    assert r.status == 200 and r.content_type == MSGPACK
    assert msgpack.unpackb(await r.read())["results"] == [{"id": act_id(more[0]), "status": "accepted"}]


async def test_pending_then_promoted_when_the_gap_closes(world: World) -> None:
    alice = member_key(2)
    a1, a2, a3 = make_chain(alice, world.coop, 3)
    assert (await world.client.post([a1])).json["accepted"] == 1
    gapped = await world.client.post([a3], single=True)
    assert gapped.status == 200
    assert gapped.json["results"] == [{"id": act_id(a3), "status": "pending", "message": "waiting for seq 2"}]
    got = (await world.client.get(f"/api/v1/actions/{act_id(a3)}")).json
    assert got["status"] == "pending" and got["pos"] is None
    chains = (await world.client.get(f"/api/v1/coops/{world.coop_text}/chains", author=mem_id(alice))).json["chains"]
    assert chains == [{"author": mem_id(alice), "seq": 1, "head": act_id(a1), "pending": 1}]
    assert (await world.client.counts())["pending"] == 1
    # Re-posting a pending action is known, not a second pending copy.
    assert (await world.client.post([a3])).json["results"][0]["status"] == "known"

    closing = await world.client.post([a2], single=True)
    assert closing.status == 200
    assert closing.json["results"] == [{"id": act_id(a2), "status": "accepted"}]
    got = (await world.client.get(f"/api/v1/actions/{act_id(a3)}")).json
    assert got["status"] == "stored" and isinstance(got["pos"], int)
    chains = (await world.client.get(f"/api/v1/coops/{world.coop_text}/chains", author=mem_id(alice))).json["chains"]
    assert chains == [{"author": mem_id(alice), "seq": 3, "head": act_id(a3), "pending": 0}]
    counts = await world.client.counts()
    assert counts["pending"] == 0 and counts["actions"] == 4


async def test_batch_mixing_good_and_bad_stores_exactly_the_good(world: World) -> None:
    alice, bob = member_key(2), member_key(3)
    good = make_chain(alice, world.coop, 2)
    bad_sig_victim = next_action(bob, world.coop, None)
    stranger_coop = next_action(bob, b"\x07" * 32, None)
    body_victim = next_action(member_key(4), world.coop, None)
    founder_next = next_action(world.founder, world.coop, world.genesis)
    batch: list[Action | bytes] = [
        good[1],  # out of order inside the batch: still accepted
        bad_signature(bad_sig_victim),
        b"\xc1",
        stranger_coop,
        good[0],
        bad_body(body_victim),
        founder_next,
        good[0],  # twice in one batch
    ]
    before = await world.client.counts()
    reply = await world.client.post(batch)
    assert reply.status == 200
    results = reply.json["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("accepted", None),
        ("rejected", "bad_signature"),
        ("rejected", "malformed"),
        ("rejected", "unknown_coop"),
        ("accepted", None),
        ("rejected", "bad_body"),
        ("accepted", None),
        ("known", None),
    ]
    assert results[1]["id"] is None and results[2]["id"] is None and results[5]["id"] is None
    assert results[3]["id"] == act_id(stranger_coop)
    assert {k: reply.json[k] for k in ("accepted", "known", "pending", "rejected")} == {
        "accepted": 3,
        "known": 1,
        "pending": 0,
        "rejected": 4,
    }
    after = await world.client.counts()
    assert after == {**before, "actions": before["actions"] + 3, "chains": before["chains"] + 1}
    for a in (*good, founder_next):
        assert await world.client.status_of(a) == "stored"
    for a in (bad_sig_victim, stranger_coop, body_victim):
        assert await world.client.status_of(a) is None
    info = (await world.client.get("/api/v1/node")).json
    assert info["submitted"]["rejected"] == {"bad_signature": 1, "malformed": 1, "unknown_coop": 1, "bad_body": 1}


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
async def test_single_rejection_uses_the_codes_status_and_batch_uses_200(world: World, fmt: str) -> None:
    a = world.newcomer_action()
    bad = bad_signature(a)
    single = await world.client.post([bad], single=True, fmt=fmt)
    body = assert_error_body(single, 422, "bad_signature", submission=True)
    assert body["results"] == [{"id": None, "status": "rejected", "code": "bad_signature", "message": body["message"]}]
    batch = await world.client.post([bad], fmt=fmt)
    assert batch.status == 200
    assert batch.json["results"][0]["code"] == "bad_signature"
    assert batch.json["rejected"] == 1


# ---- bad input: a specific error, nothing stored, still serving -------------------------------


async def test_malformed_msgpack_body(world: World) -> None:
    a = world.newcomer_action()
    before = await world.client.counts()
    truncated = codec.encode({"actions": [a.raw]})[:-5]
    for body in (b"\xc1", truncated, b"\x81\xa7actions"):
        reply = await world.client.post_raw(body, MSGPACK)
        await assert_rejected_cleanly(world, reply, 400, "malformed", before, [a])
        before = await world.client.counts()


async def test_malformed_json_body(world: World) -> None:
    a = world.newcomer_action()
    before = await world.client.counts()
    for body in (b'{"actions": [', b"\xff\xfe", b'{"actions": ["not base64!"]}'):
        reply = await world.client.post_raw(body, JSON)
        await assert_rejected_cleanly(world, reply, 400, "malformed", before, [a])
        before = await world.client.counts()


async def test_empty_body_is_malformed(world: World) -> None:
    before = await world.client.counts()
    reply = await world.client.post_raw(b"", MSGPACK)
    await assert_rejected_cleanly(world, reply, 400, "malformed", before)


async def test_non_canonical_msgpack_body(world: World) -> None:
    a = world.newcomer_action()
    canonical = codec.encode({"actions": [a.raw]})
    # The same value with a non-minimal array header (array16 for one item).
    array16 = b"\x81\xa7actions\xdc\x00\x01" + msgpack.packb(a.raw, use_bin_type=True)
    assert msgpack.unpackb(array16) == msgpack.unpackb(canonical)
    before = await world.client.counts()
    reply = await world.client.post_raw(array16, MSGPACK)
    await assert_rejected_cleanly(world, reply, 400, "not_canonical", before, [a])
    # An action whose own bytes are not canonical, inside a canonical submission: a per-action verdict.
    before = await world.client.counts()
    assert a.raw[:7] == b"\x83\xa4body\xc4"  # map, "body", bin8
    inner = a.raw[:6] + b"\xc5" + len(a.body).to_bytes(2, "big") + a.raw[8:]  # bin16 where bin8 fits
    assert inner != a.raw and msgpack.unpackb(inner) == msgpack.unpackb(a.raw)  # same value, other bytes
    reply = await world.client.post([inner])
    assert reply.status == 200
    verdict = reply.json["results"][0]
    assert (verdict["id"], verdict["status"], verdict["code"]) == (None, "rejected", "not_canonical")
    assert await world.client.counts() == before
    assert await world.client.status_of(a) is None


async def test_body_over_max_request_bytes(world: World) -> None:
    limit = TEST_LIMITS["max_request_bytes"]
    chain = make_chain(member_key(2), world.coop, 1)
    padding = base64.b64encode(b"\x00" * limit).decode()
    body = json.dumps({"actions": [base64.b64encode(chain[0].raw).decode()], "pad": padding}).encode()
    assert len(body) > limit
    before = await world.client.counts()
    reply = await world.client.post_raw(body, JSON)
    await assert_rejected_cleanly(world, reply, 413, "too_large", before, chain)


async def test_chunked_body_over_max_request_bytes(world: World) -> None:
    limit = TEST_LIMITS["max_request_bytes"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 8192 + 2):
            yield b"\x00" * 8192

    before = await world.client.counts()
    reply = await world.client.post_raw(chunks(), MSGPACK)  # no Content-Length: Transfer-Encoding chunked
    await assert_rejected_cleanly(world, reply, 413, "too_large", before)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
async def test_too_many_actions_in_a_batch(world: World, fmt: str) -> None:
    n = TEST_LIMITS["max_batch_actions"]
    keys = [member_key(100 + i) for i in range(n + 1)]
    batch = [next_action(k, world.coop, None) for k in keys]
    before = await world.client.counts()
    reply = await world.client.post(batch, fmt=fmt)
    await assert_rejected_cleanly(world, reply, 413, "too_large", before, batch[:3])
    # Exactly the limit is fine.
    ok = await world.client.post(batch[:n], fmt=fmt)
    assert ok.status == 200 and ok.json["accepted"] == n


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type(world: World, content_type: str | None) -> None:
    a = world.newcomer_action()
    before = await world.client.counts()
    reply = await world.client.post_raw(codec.encode({"actions": [a.raw]}), content_type)
    await assert_rejected_cleanly(world, reply, 415, "unsupported_media_type", before, [a])


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (JSON, b'{"actions": [1]}'),
        (JSON, b'{"action": 1}'),
        (JSON, b'{"actions": []}'),
        (JSON, b'{"actions": {"a": "AAAA"}}'),
        (JSON, b'{"actions": "AAAA"}'),
        (JSON, b"[]"),
        (JSON, b"null"),
        (JSON, b'{"things": ["AAAA"]}'),
        (JSON, b'{"action": "AAAA", "actions": ["AAAA"]}'),
        (MSGPACK, codec.encode({"actions": 5})),
        (MSGPACK, codec.encode({"actions": ["text, not bin"]})),
        (MSGPACK, codec.encode({"action": [b"x"]})),
        (MSGPACK, codec.encode([b"x"])),
        (MSGPACK, codec.encode({"stuff": [b"x"]})),
    ],
)
async def test_wrong_types_in_the_body(world: World, content_type: str, body: bytes) -> None:
    before = await world.client.counts()
    reply = await world.client.post_raw(body, content_type)
    await assert_rejected_cleanly(world, reply, 422, "bad_schema", before)


async def test_actions_as_a_string_is_bad_schema(world: World) -> None:
    before = await world.client.counts()
    reply = await world.client.post_raw(b'{"actions": "x"}', JSON)
    await assert_rejected_cleanly(world, reply, 422, "bad_schema", before)


async def test_bad_signature(world: World) -> None:
    a = world.newcomer_action()
    before = await world.client.counts()
    reply = await world.client.post([bad_signature(a)], single=True)
    body = await assert_rejected_cleanly(world, reply, 422, "bad_signature", before, [a], submission=True)
    assert body["rejected"] == 1


async def test_bad_body(world: World) -> None:
    a = world.newcomer_action()
    before = await world.client.counts()
    reply = await world.client.post([bad_body(a)], single=True, fmt="json")
    await assert_rejected_cleanly(world, reply, 422, "bad_body", before, [a], submission=True)


async def test_unknown_coop(world: World) -> None:
    a = next_action(member_key(2), b"\x42" * 32, None)
    before = await world.client.counts()
    reply = await world.client.post([a], single=True)
    body = await assert_rejected_cleanly(world, reply, 422, "unknown_coop", before, [a], submission=True)
    assert body["results"][0]["id"] == act_id(a)


async def test_chain_conflict_yields_a_proof(world: World) -> None:
    alice = member_key(2)
    # Every node keeps the fork with the smaller id; the larger one arriving second is refused.
    a1, a1_other = sorted((next_action(alice, world.coop, None, body={"v": v}) for v in ("first", "second")), key=lambda a: a.id)
    assert (await world.client.post([a1])).json["accepted"] == 1
    before = await world.client.counts()
    reply = await world.client.post([a1_other], single=True)
    body = assert_error_body(reply, 409, "chain_conflict", submission=True)
    proof_text = body["results"][0]["proof"]
    proof_raw_id = parse_id(IdKind.PROOF, proof_text)
    # The proof was stored; the losing action is kept aside (status forked), never in the chain.
    assert await world.client.counts() == {**before, "proofs": before["proofs"] + 1}
    assert await world.client.status_of(a1_other) == "forked"
    assert await world.client.status_of(a1) == "stored"

    listed = (await world.client.get(f"/api/v1/coops/{world.coop_text}/proofs")).json["proofs"]
    assert [p["id"] for p in listed] == [proof_text]
    one = await world.client.get(f"/api/v1/proofs/{proof_text}")
    assert one.status == 200
    assert one.json["author"] == mem_id(alice) and one.json["seq"] == 1 and one.json["coop"] == world.coop_text
    proof = decode_proof(base64.b64decode(one.json["raw"]))
    assert proof.id == proof_raw_id
    assert {proof.a.id, proof.b.id} == {a1.id, a1_other.id}
    binary = (await world.client.get(f"/api/v1/proofs/{proof_text}", binary=True)).msgpack
    assert decode_proof(binary["raw"]).id == proof_raw_id

    # The same conflict again: the loser is held aside already (known), nothing new.
    again = await world.client.post([a1_other])
    assert again.status == 200 and again.json["results"][0]["status"] == "known"
    assert (await world.client.counts())["proofs"] == before["proofs"] + 1
    await world.assert_still_serving()


async def test_the_smaller_fork_replaces_the_larger_everywhere(world: World) -> None:
    """Whichever fork a node saw first, it ends up holding the one with the smaller id, so
    nodes converge; the displaced action and its successors are kept aside as "forked"."""
    alice = member_key(2)
    a1 = next_action(alice, world.coop, None)
    small, large = sorted((next_action(alice, world.coop, a1, body={"v": v}) for v in ("x", "y")), key=lambda a: a.id)
    after_large = next_action(alice, world.coop, large)
    assert (await world.client.post([a1, large, after_large])).json["accepted"] == 3
    before = await world.client.counts()
    reply = await world.client.post([small], single=True)
    assert reply.status == 200
    [result] = reply.json["results"]
    assert result["status"] == "accepted" and "proof" in result
    assert await world.client.status_of(small) == "stored"
    assert await world.client.status_of(large) == "forked"
    assert await world.client.status_of(after_large) == "forked"
    chains = (await world.client.get(f"/api/v1/coops/{world.coop_text}/chains", author=mem_id(alice))).json["chains"]
    assert chains[0]["seq"] == 2 and chains[0]["head"] == format_id(IdKind.ACTION, small.id)
    assert await world.client.counts() == {**before, "actions": before["actions"] - 1, "proofs": before["proofs"] + 1}
    # Re-sending the displaced actions changes nothing.
    again = await world.client.post([large, after_large])
    assert [r["status"] for r in again.json["results"]] == ["known", "known"]
    await world.assert_still_serving()


async def test_fork_with_wrong_prev(world: World) -> None:
    alice = member_key(2)
    a1 = next_action(alice, world.coop, None)
    assert (await world.client.post([a1])).json["accepted"] == 1
    forked = sign_action(alice, coop=world.coop, seq=2, prev=b"\x99" * 32, ts=1, kind="test.note", body={})
    before = await world.client.counts()
    reply = await world.client.post([forked], single=True)
    body = await assert_rejected_cleanly(world, reply, 409, "chain_conflict", before, [forked], submission=True)
    assert "proof" not in body["results"][0]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/actions/nope",
        "/api/v1/actions/coop_" + "a" * 52,  # a co-op prefix where an action id belongs
        "/api/v1/actions/act_" + "A" * 52,
        "/api/v1/actions/act_" + "a" * 51,
        "/api/v1/actions/act_" + "a" * 51 + "b",  # non-zero trailing bits
        "/api/v1/coops/act_" + "a" * 52,
        "/api/v1/coops/xyz/actions",
        "/api/v1/coops/xyz/chains",
        "/api/v1/proofs/act_" + "a" * 52,
    ],
)
async def test_bad_id_in_url(world: World, path: str) -> None:
    before = await world.client.counts()
    reply = await world.client.get(path)
    await assert_rejected_cleanly(world, reply, 400, "bad_id", before)


async def test_unknown_ids_are_404(world: World) -> None:
    missing = world.newcomer_action()
    before = await world.client.counts()
    reply = await world.client.get(f"/api/v1/actions/{act_id(missing)}")
    await assert_rejected_cleanly(world, reply, 404, "not_found", before)
    reply = await world.client.get(f"/api/v1/proofs/{format_id(IdKind.PROOF, missing.id)}")
    assert_error_body(reply, 404, "not_found")
    for suffix in ("", "/actions", "/chains", "/proofs"):
        reply = await world.client.get(f"/api/v1/coops/{coop_id(missing)}{suffix}")
        assert_error_body(reply, 404, "unknown_coop")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": str(TEST_LIMITS["max_page"] + 1)},
        {"limit": "1.5"},
        {"after": "-1"},
        {"after": "x"},
        {"after": str(2**63)},
        {"after": "%EF%BC%91"},  # a full-width digit one
    ],
)
async def test_bad_query_params(world: World, params: dict[str, str]) -> None:
    before = await world.client.counts()
    reply = await world.client.get(f"/api/v1/coops/{world.coop_text}/actions", **params)
    await assert_rejected_cleanly(world, reply, 400, "bad_request", before)


async def test_bad_author_filter_is_bad_id(world: World) -> None:
    before = await world.client.counts()
    reply = await world.client.get(f"/api/v1/coops/{world.coop_text}/actions", author="mem_nope")
    await assert_rejected_cleanly(world, reply, 400, "bad_id", before)


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("GET", "/api/v2/node"), ("POST", "/api/v1/coops/x/y/z")])
async def test_unknown_route(world: World, method: str, path: str) -> None:
    before = await world.client.counts()
    async with world.client.http.request(method, world.client.url + path) as resp:
        reply = Reply(resp.status, resp.content_type, await resp.read())
    await assert_rejected_cleanly(world, reply, 404, "not_found", before)


async def test_wrong_method(world: World) -> None:
    async with world.client.http.delete(world.client.url + "/api/v1/actions") as resp:
        reply = Reply(resp.status, resp.content_type, await resp.read())
    assert_error_body(reply, 405, "method_not_allowed")


# ---- concurrency -----------------------------------------------------------------------------


async def test_concurrent_single_posts_share_commits(world: World) -> None:
    n = 200
    actions = [next_action(member_key(1000 + i), world.coop, None) for i in range(n)]
    store = world.node.store
    groups_before = store.groups_committed
    replies = await asyncio.gather(*(world.client.post([a], single=True) for a in actions))
    groups = store.groups_committed - groups_before
    assert [r.status for r in replies] == [200] * n
    assert all(r.json["results"] == [{"id": act_id(a), "status": "accepted"}] for r, a in zip(replies, actions, strict=True))
    # Group commit: 200 requests in flight at once share far fewer transactions.
    assert 1 <= groups <= n // 4, groups
    counts = await world.client.counts()
    assert counts["actions"] == n + 1 and counts["chains"] == n + 1
    statuses = await asyncio.gather(*(world.client.status_of(a) for a in actions))
    assert statuses == ["stored"] * n


# ---- pending area ----------------------------------------------------------------------------


async def test_pending_limit_rejects_with_chain_gap_and_drops_nothing(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(max_pending=3)
    client = NodeClient(http, node.url)
    founder = member_key(1)
    genesis = make_genesis(founder)
    assert (await client.post([genesis])).json["accepted"] == 1
    gapped = [make_chain(member_key(2 + i), genesis.id, 2)[1] for i in range(4)]  # seq 2 of four chains
    for a in gapped[:3]:
        reply = await client.post([a], single=True)
        assert reply.status == 200 and reply.json["results"][0]["status"] == "pending"
    fourth = await client.post([gapped[3]], single=True)
    body = assert_error_body(fourth, 409, "chain_gap", submission=True)
    assert body["results"][0]["id"] == act_id(gapped[3])
    assert [await client.status_of(a) for a in gapped] == ["pending", "pending", "pending", None]
    assert (await client.counts())["pending"] == 3
    # Gapped actions in one batch beyond the limit: each gets its own verdict.
    batch = await client.post([make_chain(member_key(20 + i), genesis.id, 2)[1] for i in range(2)])
    assert [r.get("code") for r in batch.json["results"]] == ["chain_gap", "chain_gap"]
    # Closing one gap frees a slot: the fourth can now wait.
    first_of_0 = make_chain(member_key(2), genesis.id, 1)[0]
    assert (await client.post([first_of_0])).json["accepted"] == 1
    assert await client.status_of(gapped[0]) == "stored"
    assert (await client.post([gapped[3]])).json["results"][0]["status"] == "pending"
    assert (await client.counts())["pending"] == 3


async def test_equivocation_between_two_pending_actions(world: World) -> None:
    alice = member_key(2)
    a1, a2 = make_chain(alice, world.coop, 2)
    a3, a3_other = sorted((next_action(alice, world.coop, a2, body={"v": v}) for v in ("left", "right")), key=lambda a: a.id)
    assert (await world.client.post([a3])).json["results"][0]["status"] == "pending"
    reply = await world.client.post([a3_other], single=True)
    body = assert_error_body(reply, 409, "chain_conflict", submission=True)
    proof_text = body["results"][0]["proof"]
    listed = (await world.client.get(f"/api/v1/coops/{world.coop_text}/proofs")).json["proofs"]
    assert [p["id"] for p in listed] == [proof_text]
    proof = decode_proof(base64.b64decode(listed[0]["raw"]))
    assert {proof.a.id, proof.b.id} == {a3.id, a3_other.id} and proof.seq == 3
    assert await world.client.status_of(a3) == "pending"
    assert await world.client.status_of(a3_other) == "forked"  # it lost to a smaller id with the same prev
    # Both in one batch, above a gap, is the same proof.
    bob = member_key(3)
    b1, b2_first = make_chain(bob, world.coop, 2)
    b2, b2_other = sorted((b2_first, next_action(bob, world.coop, b1, body={"v": "other"})), key=lambda a: a.id)
    batch = await world.client.post([b2, b2_other])
    assert [r["status"] for r in batch.json["results"]] == ["pending", "rejected"]
    assert batch.json["results"][1]["code"] == "chain_conflict" and "proof" in batch.json["results"][1]
    # Closing the gaps promotes the pending ones.
    assert (await world.client.post([a1, a2, b1])).json["accepted"] == 3
    assert await world.client.status_of(a3) == "stored"
    assert await world.client.status_of(b2) == "stored"


# ---- validation in worker processes ----------------------------------------------------------


async def test_large_batch_through_worker_processes_matches_inline(
    start_node: NodeFactory, node_workers: Node, http: aiohttp.ClientSession
) -> None:
    inline = NodeClient(http, (await start_node()).url)
    workers = NodeClient(http, node_workers.url)
    genesis = make_genesis(member_key(1))
    batch: list[Action | bytes] = []
    for i in range(48):
        a = next_action(member_key(500 + i), genesis.id, None)
        batch.append(bad_signature(a) if i % 7 == 3 else bad_body(a) if i % 11 == 5 else b"\x93\x01" if i == 20 else a)
    batch.append(next_action(member_key(600), b"\x01" * 32, None))
    assert len(batch) > 32 and node_workers.config.limits.verify_workers == 2
    answers = []
    for c in (inline, workers):
        assert (await c.post([genesis])).json["accepted"] == 1
        reply = await c.post(batch)
        assert reply.status == 200
        answers.append(reply.json)
        again = await c.post(batch)
        answers.append(again.json)
    assert answers[0] == answers[2]
    assert answers[1] == answers[3]
    codes = [r.get("code") for r in answers[0]["results"]]
    assert {"bad_signature", "bad_body", "malformed", "unknown_coop", None} >= set(codes)
    assert "bad_signature" in codes and "bad_body" in codes and "unknown_coop" in codes
    assert answers[0]["accepted"] == sum(1 for x in batch if isinstance(x, Action) and x.env.coop == genesis.id)
    assert await inline.counts() == await workers.counts()


async def test_action_over_max_action_bytes_is_too_large(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(max_action_bytes=400)
    client = NodeClient(http, node.url)
    genesis = make_genesis(member_key(1))
    assert (await client.post([genesis])).json["accepted"] == 1
    big = next_action(member_key(2), genesis.id, None, body={"blob": b"\x00" * 500})
    small = next_action(member_key(3), genesis.id, None)
    other = next_action(member_key(4), genesis.id, None)
    assert len(big.raw) > 400 >= len(small.raw)
    before = await client.counts()
    # Each action is judged on its own, in msgpack and in JSON alike: one oversized action does
    # not sink the batch.
    for fmt, good in (("msgpack", small), ("json", other)):
        batch = await client.post([good, big], fmt=fmt)
        assert batch.status == 200, fmt
        assert [(r["status"], r.get("code")) for r in batch.json["results"]] == [("accepted", None), ("rejected", "too_large")]
        assert_error_body(await client.post([big], single=True, fmt=fmt), 413, "too_large", submission=True)
    assert await client.counts() == {**before, "actions": before["actions"] + 2, "chains": before["chains"] + 2}
    assert await client.status_of(big) is None
