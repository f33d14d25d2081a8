"""Admission against real nodes (aiohttp on 127.0.0.1, SQLite files in tmp_path): what strangers
can make a node store, hold, replicate and spend, and what members keep doing meanwhile.

Nodes here run the default ``[admission]`` (quarantine, quotas, rate limits) unless a test says
otherwise; the other suites run ``OPEN_ADMISSION``. Rate-limit tests give the node a clock of
their own, so buckets refill only when a test moves it; clients are told apart by
``X-Forwarded-For`` from a trusted proxy (127.0.0.1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from node.config import Admission, PeerAddress
from node.ingest import invite_hash
from node.node import Node, init_data_dir
from node.store import StorePolicy
from protocol import Action, RejectCode, SigningKey, make_proof, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import PeerPush, encode_push, encode_submission
from tests.fed_helpers import (
    Cluster,
    action_ids,
    assert_honest_peers_unpunished,
    free_ports,
    get_text,
    heads,
    metric,
    node_key,
    node_text,
    peer_post,
    signed_headers,
    wait_converged,
    wait_until,
)

TS = 1_700_000_000_000
MSGPACK = "application/msgpack"
PUSH = "/peer/v1/push"
PROXY = ("127.0.0.1",)
FLOOD_BYTES = 200 * 1000 * 1000  # 200 MB
UNLIMITED = {"read_rate": 0.0, "write_rate": 0.0, "author_rate": 0.0, "join_rate": 0.0, "apply_rate": 0.0}


# ---- members, strangers and their actions ------------------------------------------------------


def key(label: str, n: int = 0) -> SigningKey:
    return SigningKey(hashlib.sha256(f"coopnet-test-admission:{label}:{n}".encode()).digest())


class Person:
    """A key that signs the next action of its chain in each co-op."""

    def __init__(self, k: SigningKey) -> None:
        self.key = k
        self.heads: dict[bytes, Action] = {}

    @property
    def id(self) -> bytes:
        return self.key.public_key

    def found(self, name: str, **body: Any) -> Action:
        g = sign_genesis(self.key, ts=TS, body={"name": name, **body})
        self.heads[g.id] = g
        return g

    def apply(self, coop: bytes) -> Action:
        return self.act(coop, kind="member.apply", body={"note": "let me in"})

    def act(self, coop: bytes, *, kind: str = "offer.produce", body: Any = None, size: int = 0) -> Action:
        prev = self.heads.get(coop)
        seq = prev.seq + 1 if prev is not None else 1
        if body is None:
            body = {"seq": seq, "blob": bytes(size)} if size else {"seq": seq}
        a = sign_action(self.key, coop=coop, seq=seq, prev=prev.id if prev else None, ts=TS + seq, kind=kind, body=body)
        self.heads[coop] = a
        return a

    def chain(self, coop: bytes, n: int, **kw: Any) -> list[Action]:
        return [self.act(coop, **kw) for _ in range(n)]


class Clock:
    """The node's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = TS

    def __call__(self) -> int:
        return self.now


@dataclasses.dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Client:
    """Posts and reads as one client address (``X-Forwarded-For`` through the trusted proxy)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, address: str = "198.51.100.1") -> None:
        self.http, self.url, self.address = http, url, address

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"X-Forwarded-For": self.address, "Accept": "application/json", **(extra or {})}

    async def post(self, actions: Sequence[Action], *, single: bool = False, headers: dict[str, str] | None = None) -> Answer:
        body = encode_submission([a.raw for a in actions], single=single)
        async with self.http.post(
            self.url + "/api/v1/actions", data=body, headers=self._headers({"Content-Type": MSGPACK, **(headers or {})})
        ) as r:
            return Answer(r.status, await r.json(content_type=None), dict(r.headers))

    async def get(self, path: str) -> Answer:
        async with self.http.get(self.url + path, headers=self._headers()) as r:
            return Answer(r.status, await r.json(content_type=None), dict(r.headers))

    async def ok(self, actions: Sequence[Action], *, single: bool = False) -> list[str]:
        got = await self.post(actions, single=single)
        assert got.status == 200, (got.status, got.body)
        return [r["status"] for r in got.body["results"]]


# ---- nodes -------------------------------------------------------------------------------------


NodeMaker = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeMaker]:
    """``await make_node(admission=..., clock=..., **limits)``: a node with the default admission
    (changed by the keywords given), inline validation, trusting 127.0.0.1 as a proxy."""
    nodes: list[Node] = []
    counter = itertools.count()

    async def make(
        *, clock: Clock | None = None, replicate: tuple[str, ...] | None = None, limits: dict[str, int] | None = None, **adm: Any
    ) -> Node:
        cfg = init_data_dir(tmp_path / f"n{next(counter)}", port=0)
        cfg = dataclasses.replace(
            cfg,
            limits=dataclasses.replace(cfg.limits, verify_workers=0, **(limits or {})),
            admission=dataclasses.replace(cfg.admission, trusted_proxies=PROXY, **adm),
            federation=dataclasses.replace(cfg.federation, replicate=replicate),
        )
        node = await Node.start(cfg, clock_ms=clock) if clock is not None else await Node.start(cfg)
        nodes.append(node)
        return node

    yield make
    for n in reversed(nodes):
        await n.stop()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path / "cluster")
    yield c
    await c.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def founded(client: Client, founder: Person, name: str = "Valley Food Hub", **body: Any) -> bytes:
    g = founder.found(name, **body)
    assert await client.ok([g]) == ["accepted"]
    return g.id


async def stored_ids(node: Node, coop: bytes) -> set[bytes]:
    return await action_ids(node, coop)


# ---- finding 9: a stranger's flood --------------------------------------------------------------


async def test_a_strangers_200_mb_flood_stores_only_a_bounded_quarantine_and_nothing_is_replicated(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """Finding 9: a stranger wrote 216 MB in 4.4 s, stored and replicated forever. Here a
    stranger posts 200 MB of actions to a co-op that is not theirs, as seq 1 and seq 5 of
    throwaway keys and as one long chain of their own, with no address limit to stop them before
    the store. The node keeps at most the quarantine's bounds of it, its peer gets none of it, and
    the co-op's members keep posting, accepted, all along."""
    adm = Admission(trusted_proxies=PROXY, write_rate=0.0)  # the flood reaches validation and the store
    a, b = cluster.add(2, admission=adm)
    cluster.mesh()
    await cluster.start_all()
    founder, member = Person(key("founder")), Person(key("member"))
    ca, cb = Client(http, a.url, "198.51.100.1"), Client(http, b.url, "198.51.100.1")
    coop = await founded(ca, founder)
    assert await ca.ok([member.apply(coop)]) == ["accepted"]
    stranger_client = Client(http, a.url, "203.0.113.66")
    own = Person(key("stranger-own"))
    throwaway = (Person(key("throwaway", i)) for i in itertools.count())
    sent = 0
    statuses: dict[str, int] = {}
    codes: dict[str, int] = {}
    expected = {coop, member.heads[coop].id}
    for round_ in range(250):  # bounded: ~1 MB a round
        if sent >= FLOOD_BYTES:
            break
        batch: list[Action] = []
        for i in range(21):
            kind = i % 3
            if kind == 0:
                batch.append(next(throwaway).act(coop, size=48_000))
            elif kind == 1:
                p = next(throwaway)
                p.chain(coop, 4, size=16)  # seq 1-4 never sent
                batch.append(p.act(coop, size=48_000))
            else:
                batch.append(own.act(coop, size=48_000))
        sent += sum(len(x.raw) for x in batch)
        got = await stranger_client.post(batch)
        assert got.status in (200, 429), (got.status, got.body)
        for r in got.body.get("results", []):
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            if "code" in r:
                codes[r["code"]] = codes.get(r["code"], 0) + 1
        if round_ % 20 == 0:  # members keep posting, and are never refused
            mine = member.chain(coop, 3)
            assert await ca.ok(mine) == ["accepted"] * 3
            expected |= {x.id for x in mine}
    assert sent >= FLOOD_BYTES
    assert set(statuses) <= {"held", "rejected"}, statuses
    assert set(codes) <= {"unknown_author", "rate_limited"}, codes

    policy = a.running.store.policy
    usage = a.running.store.usage()
    assert 0 < usage.held <= policy.quarantine_per_coop
    assert usage.bytes < 100_000  # the genesis and the members' small actions
    assert await stored_ids(a.running, coop) == expected
    held = await a.running.store.held(coop)
    assert len(held) == usage.held and all(r.reason.startswith("unknown author") for r in held)
    assert max(sum(1 for r in held if r.author == x.author) for x in held) <= policy.quarantine_per_author
    # The peer has the members' actions and nothing of the stranger's, not even in its quarantine.
    await wait_converged([a.running, b.running], [coop], within=30, what="the members' actions on both nodes")
    assert await stored_ids(b.running, coop) == expected
    assert b.running.store.usage().held == 0
    info = (await cb.get("/api/v1/node")).body
    assert info["admission"]["held"] == 0 and info["counts"]["actions"] == len(expected)
    text = await get_text(http, a.url + "/metrics")
    assert metric(text, "coopnet_quarantine_actions") == usage.held
    assert metric(text, "coopnet_actions_held_total", source="client") == statuses["held"]


# ---- finding 8: the pending area ----------------------------------------------------------------


async def test_a_strangers_own_coop_cannot_fill_the_pending_area_of_others_and_pending_expires(
    make_node: NodeMaker, http: aiohttp.ClientSession
) -> None:
    """Finding 8: a stranger filled the node-wide pending area (no expiry) through a co-op of their
    own, and a member's out-of-order action in another co-op was then refused ``chain_gap``. Here
    the stranger founds co-ops of their own (with throwaway founders) and sends out-of-order
    actions there until refused; a member's out-of-order action in another co-op is still
    pending, and every pending entry says what it waits for and expires."""
    clock = Clock()
    node = await make_node(
        clock=clock, limits={"max_pending": 40, "max_pending_per_coop": 15, "max_pending_per_author": 6, "pending_floor": 4}, **UNLIMITED
    )
    c = Client(http, node.url)
    member_coop = await founded(c, Person(key("founder")))
    member = Person(key("member"))
    assert await c.ok([member.apply(member_coop)]) == ["accepted"]

    stranger = Client(http, node.url, "203.0.113.8")
    refused = 0
    for n in range(6):  # more co-ops than the node-wide bound has room for
        throwaways = [Person(key(f"founder-{n}", i)) for i in range(8)]
        boss = Person(key("stranger", n))
        g = boss.found(f"Stranger {n}", founders=[p.id for p in throwaways])
        assert (await stranger.ok([g])) == ["accepted"]
        gapped = []
        for p in (boss, *throwaways):
            p.act(g.id)  # seq 2 (seq 1 of a throwaway) is never sent
            gapped += p.chain(g.id, 8)
        got = await stranger.post(gapped)
        assert got.status == 200
        verdicts = {r["status"] for r in got.body["results"]}
        assert verdicts <= {"pending", "rejected"} and {r.get("code") for r in got.body["results"]} <= {None, "chain_gap"}
        refused += got.body["rejected"]
    usage = node.store.usage()
    assert refused > 0 and usage.pending >= 40  # the stranger filled what the node-wide bound allows
    assert max(usage.pending_by_coop.values()) <= 15

    # The member's out-of-order action in their own co-op: pending, not chain_gap.
    member.act(member_coop)  # seq 2, not sent yet
    third = member.act(member_coop)
    got = await c.post([third], single=True)
    assert got.status == 200 and got.body["results"][0]["status"] == "pending", got.body
    assert got.body["results"][0]["message"] == "waiting for seq 2"

    rows = await node.store.pending(member_coop)
    assert [(r.id, r.seq, r.reason) for r in rows] == [(third.id, 3, "waiting for seq 2 of its author's chain")]
    assert rows[0].expires_at == clock.now + node.store.policy.pending_ms
    # A day later every pending entry has expired; the member's chain goes on from what it holds.
    clock.now += node.store.policy.pending_ms + 1
    assert (await node.store.expire())[1] == usage.pending + 1
    assert node.store.usage().pending == 0 and (await c.get("/api/v1/node")).body["counts"]["pending"] == 0
    assert await c.ok([third]) == ["pending"]  # sent again, it waits anew


async def test_a_fetch_reply_keeps_only_the_coop_it_was_asked_for(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    """Finding 8, second part: a fetch reply carrying actions of co-ops nobody asked for was stored
    (and passed on). The pipeline now tells the ingest path which co-op it asked for."""
    node = await make_node()
    c = Client(http, node.url)
    asked = await founded(c, Person(key("founder-asked")), "Asked")
    other_founder = Person(key("founder-other"))
    other = await founded(c, other_founder, "Other")
    sneaked = other_founder.act(other)
    peer = node_key(77)
    intake = await node.gossip.peer_api.prepare(peer.public_key, (sneaked.raw,), (), "fetch", skip_known=False, coop=asked)
    counts, _, _ = await node.gossip.peer_api.store_intake(intake)
    assert counts["rejected"] == 1 and counts["accepted"] == 0
    assert intake.refused[0][1].code is RejectCode.OUT_OF_SCOPE
    assert sneaked.id not in await stored_ids(node, other)


# ---- quarantine and release ---------------------------------------------------------------------


async def test_seq_2_from_a_peer_before_the_application_is_held_then_stored_like_in_order(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """An applicant's seq 2 and 3 arrive (pushed by a peer) before their application: held, not
    stored, not passed on; once the application arrives they are stored, and the node's chains
    equal those of a node that got the same actions in order."""
    relay = node_key(31)
    a, b = cluster.add(2, admission=Admission(trusted_proxies=PROXY))
    cluster.federate(a, peers=(PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(relay.public_key)),))
    await cluster.start_all()  # not federated with each other: B is the in-order reference
    founder, x = Person(key("founder")), Person(key("applicant"))
    ca, cb = Client(http, a.url), Client(http, b.url)
    g = founder.found("Release Co-op")
    assert await ca.ok([g]) == ["accepted"] and await cb.ok([g]) == ["accepted"]
    apply, two, three = x.apply(g.id), x.act(g.id), x.act(g.id)

    async def push(actions: Sequence[Action]) -> dict[str, int]:
        body = encode_push(PeerPush(tuple(y.raw for y in actions), ()))
        status, doc = await peer_post(http, a.url, PUSH, body, signed_headers(relay, a.node_id, PUSH, body))
        assert status == 200 and isinstance(doc, bytes), doc
        return dict(msgpack.unpackb(doc))

    assert await push([three, two]) == {"accepted": 0, "known": 0, "pending": 2, "rejected": 0}  # held counts as pending on the wire
    store = a.running.store
    assert store.usage().held == 2 and await stored_ids(a.running, g.id) == {g.id}
    assert (await ca.get(f"/api/v1/actions/{format_id(IdKind.ACTION, two.id)}")).body["status"] == "held"
    assert await push([apply]) == {"accepted": 1, "known": 0, "pending": 0, "rejected": 0}

    async def released() -> bool:
        return await store.head(g.id, x.id) == (3, three.id)

    await wait_until(released, within=10, what="the held actions to be released")
    assert store.usage().held == 0 and store.released_total == 2
    assert await cb.ok([apply, two, three]) == ["accepted"] * 3
    assert await heads(a.running, g.id) == await heads(b.running, g.id)
    assert await stored_ids(a.running, g.id) == await stored_ids(b.running, g.id)
    sa, sb = (
        (await ca.get(f"/api/v1/coops/{format_id(IdKind.COOP, g.id)}/state")).body,
        (await cb.get(f"/api/v1/coops/{format_id(IdKind.COOP, g.id)}/state")).body,
    )
    assert sa["state_hash"] == sb["state_hash"]
    assert_honest_peers_unpunished([a.running])
    assert a.running.book.peers[relay.public_key].offences == {}


async def test_proofs_about_strangers_are_not_kept(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Anyone can sign two actions at one seq: a peer's equivocation proof is kept only when it is
    about an author known here (a proof about anyone else proves nothing this node folds)."""
    relay = node_key(32)
    (a,) = cluster.add(1, admission=Admission(trusted_proxies=PROXY))
    cluster.federate(a, peers=(PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(relay.public_key)),))
    await cluster.start(a)
    c = Client(http, a.url)
    coop = await founded(c, Person(key("founder")))
    member = Person(key("member"))
    assert await c.ok([member.apply(coop)]) == ["accepted"]
    proofs = []
    for p in (member, Person(key("stranger"))):
        base = p.heads.get(coop)
        x, y = (
            sign_action(
                p.key, coop=coop, seq=(base.seq + 1) if base else 1, prev=base.id if base else None, ts=TS, kind="t.x", body={"n": n}
            )
            for n in (1, 2)
        )
        proofs.append(make_proof(x, y))
    body = encode_push(PeerPush((), tuple(pr.encode() for pr in proofs)))
    status, doc = await peer_post(http, a.url, PUSH, body, signed_headers(relay, a.node_id, PUSH, body))
    assert status == 200, doc
    assert [pr.id for pr in await a.running.store.proofs(coop)] == [proofs[0].id]
    assert a.running.book.peers[relay.public_key].offences == {}


async def test_a_client_is_told_its_action_is_held_and_why(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    node = await make_node()
    c = Client(http, node.url)
    coop = await founded(c, Person(key("founder")))
    x = Person(key("newcomer"))
    note = x.act(coop)  # seq 1, but not an application
    got = await c.post([note], single=True)
    assert got.status == 202, got.body
    (r,) = got.body["results"]
    assert r["status"] == "held" and r["message"].startswith("unknown author: waiting for their application (member.apply)")
    assert got.body["held"] == 1 and got.body["accepted"] == 0
    assert (await c.get(f"/api/v1/actions/{format_id(IdKind.ACTION, note.id)}")).body["status"] == "held"
    # Held twice is held once.
    assert await c.ok([note]) == ["held"]
    assert node.store.usage().held == 1
    # The newcomer then applies at seq 1 (their client saw no chain): the held seq-1 note conflicts
    # with it and is dropped without an equivocation proof: it was never accepted anywhere here.
    x.heads.pop(coop)
    apply = x.apply(coop)
    assert await c.ok([apply]) == ["accepted"]

    async def dropped() -> bool:
        return node.store.usage().held == 0

    await wait_until(dropped, within=10, what="the release")
    assert await node.store.proofs(coop) == []
    assert await node.store.head(coop, x.id) == (1, apply.id)


async def test_the_quarantine_is_bounded_per_author_and_co_op_and_expires(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    clock = Clock()
    node = await make_node(clock=clock, quarantine_per_author=2, quarantine_per_coop=5, max_quarantine=8, **UNLIMITED)
    c = Client(http, node.url)
    coops = [await founded(c, Person(key("founder", i)), f"Co-op {i}") for i in range(3)]
    s = Person(key("stranger"))
    got = await c.post(s.chain(coops[0], 3))
    assert [(r["status"], r.get("code")) for r in got.body["results"]] == [("held", None), ("held", None), ("rejected", "unknown_author")]
    assert "2 actions of this author" in got.body["results"][2]["message"]
    others = [Person(key("other", i)).act(coops[0]) for i in range(5)]
    codes = sorted(str(r.get("code")) for r in (await c.post(others)).body["results"])  # the plan decides by author, not by position
    assert codes == ["None"] * 3 + ["unknown_author"] * 2
    for coop in coops[1:]:
        await c.post([Person(key("third", i)).act(coop) for i in range(4)])
    assert node.store.usage().held == 8
    assert (await c.post([Person(key("late")).act(coops[2])])).body["results"][0]["code"] == "unknown_author"
    assert node.store.usage().held_by_coop == {coops[0]: 5, coops[1]: 3}
    rows = await node.store.held()
    assert all(r.expires_at == TS + 3600 * 1000 for r in rows)
    clock.now += 3600 * 1000 + 1
    assert (await node.store.expire())[0] == 8
    assert node.store.usage().held == 0
    assert await c.ok([Person(key("late")).act(coops[2])]) == ["held"]  # room again


# ---- scope and founding -------------------------------------------------------------------------


async def test_a_node_replicating_one_coop_refuses_another_coops_genesis_and_actions(
    make_node: NodeMaker, http: aiohttp.ClientSession
) -> None:
    """Before: a node configured with replicate = [A] accepted and listed a client-posted genesis
    of another co-op B."""
    a_founder, b_founder = Person(key("a")), Person(key("b"))
    ga, gb = a_founder.found("A"), b_founder.found("B")
    node = await make_node(replicate=(format_id(IdKind.COOP, ga.id),))
    c = Client(http, node.url)
    got = await c.post([gb], single=True)
    assert got.status == 422 and got.body["error"] == "out_of_scope", got.body
    assert "does not replicate" in got.body["message"] and "federation.replicate" in got.body["message"]
    assert (await c.post([b_founder.act(gb.id)], single=True)).body["error"] == "out_of_scope"
    assert await c.ok([ga]) == ["accepted"]
    listed = (await c.get("/api/v1/coops")).body["coops"]
    assert [x["id"] for x in listed] == [format_id(IdKind.COOP, ga.id)]


async def test_founding_by_invite_or_closed(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    node = await make_node(founding="invite")
    c = Client(http, node.url)
    g1 = Person(key("f1")).found("Invited")
    got = await c.post([g1], single=True)
    assert got.status == 403 and got.body["error"] == "founding_refused" and "Coopnet-Invite" in got.body["message"]
    assert (await c.post([g1], single=True, headers={"Coopnet-Invite": "not-issued"})).body["error"] == "founding_refused"
    await node.store.add_invite(invite_hash("s3cret"), note="for the valley")
    got = await c.post([g1], single=True, headers={"Coopnet-Invite": "s3cret"})
    assert got.status == 200 and got.body["accepted"] == 1
    (inv,) = await node.store.invites()
    assert inv.used_by == g1.id and inv.note == "for the valley"
    g2 = Person(key("f2")).found("Second")
    assert (await c.post([g2], single=True, headers={"Coopnet-Invite": "s3cret"})).body["error"] == "founding_refused"  # used up
    # A known genesis is known, invite or not; its founder posts on.
    assert await c.ok([g1]) == ["known"]

    listed = Person(key("f3")).found("Listed")
    closed = await make_node(founding="closed", replicate=(format_id(IdKind.COOP, listed.id), format_id(IdKind.COOP, g2.id)))
    cc = Client(http, closed.url)
    assert await cc.ok([listed]) == ["accepted"]
    got = await cc.post([g2], single=True)
    assert got.status == 200  # listed in federation.replicate: this node's operator asked for it
    stranger_genesis = Person(key("f4")).found("Not listed")
    open_scope = await make_node(founding="closed")
    got = await Client(http, open_scope.url).post([stranger_genesis], single=True)
    assert got.status == 403 and got.body["error"] == "founding_refused" and "closed" in got.body["message"]


async def test_a_closed_node_still_takes_coops_from_its_peers(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b = cluster.add(2, admission=Admission(trusted_proxies=PROXY))
    cluster.federate(b, peers=(a.address,))
    cluster.federate(a, peers=(b.address,))
    b.config = dataclasses.replace(b.config, admission=dataclasses.replace(b.config.admission, founding="closed"))
    await cluster.start_all()
    founder = Person(key("founder"))
    coop = await founded(Client(http, a.url), founder)
    await wait_converged([a.running, b.running], [coop], within=20, what="the co-op on the closed node")


# ---- rate limits --------------------------------------------------------------------------------


async def test_429_per_address_with_retry_after_while_members_are_served(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    clock = Clock()
    node = await make_node(clock=clock)
    member_client = Client(http, node.url, "198.51.100.20")
    coop = await founded(member_client, Person(key("founder")))
    member = Person(key("member"))
    assert await member_client.ok([member.apply(coop)]) == ["accepted"]
    stranger = Client(http, node.url, "203.0.113.9")
    strangers = (Person(key("throwaway", i)) for i in itertools.count())
    statuses = []
    for _ in range(5):  # 1000 actions a request against a burst of 2000
        got = await stranger.post([next(strangers).act(coop) for _ in range(1000)])
        statuses.append(got.status)
        if got.status == 429:
            assert got.body["error"] == "rate_limited" and set(got.body) == {"error", "message"}
            assert int(got.headers["Retry-After"]) >= 1
    assert statuses[:2] == [200, 200] and statuses[2:] == [429, 429, 429], statuses
    # Reads: a looser bucket, but a bucket.
    reads = [(await stranger.get("/api/v1/coops")).status for _ in range(205)]
    assert reads.count(429) >= 4 and 429 not in reads[:199]
    # The member, from their own address, posts and reads as usual, meanwhile.
    for _ in range(20):
        assert await member_client.ok([member.act(coop)]) == ["accepted"]
        assert (await member_client.get(f"/api/v1/coops/{format_id(IdKind.COOP, coop)}")).status == 200
    # Time heals: the Retry-After was honest.
    wait = int((await stranger.post([next(strangers).act(coop)])).headers["Retry-After"])
    clock.now += wait * 1000
    assert (await stranger.post([next(strangers).act(coop)])).status == 200


async def test_429_per_author_and_for_applications(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    clock = Clock()
    node = await make_node(clock=clock)
    c = Client(http, node.url)
    coop = await founded(c, Person(key("founder")))
    noisy, calm = Person(key("noisy")), Person(key("calm"))
    assert await Client(http, node.url, "198.51.100.30").ok([noisy.apply(coop)]) == ["accepted"]
    assert await Client(http, node.url, "198.51.100.31").ok([calm.apply(coop)]) == ["accepted"]
    # One author, whatever address they post from: their burst (300, the application included), then 429.
    got = [await Client(http, node.url, f"198.51.100.{40 + i}").post(noisy.chain(coop, 100)) for i in range(4)]
    assert [g.status for g in got] == [200, 200, 200, 429]
    assert "from this author" in got[-1].body["message"] and int(got[-1].headers["Retry-After"]) >= 1
    assert (await node.store.head(coop, noisy.id))[0] == 301  # nothing of the refused request was stored
    # Another member is not affected.
    assert await Client(http, node.url, "198.51.100.31").ok(calm.chain(coop, 50)) == ["accepted"] * 50
    # Applications, from one address: its burst of 20, then 429.
    one_address = Client(http, node.url, "203.0.113.50")
    results = [(await one_address.post([Person(key("applicant", i)).apply(coop)], single=True)).status for i in range(22)]
    assert results == [200] * 20 + [429, 429]
    # And to one co-op, from any number of addresses: 30 in all (2 + 20 above), then 429.
    spread = [
        (await Client(http, node.url, f"192.0.2.{i}").post([Person(key("spread", i)).apply(coop)], single=True)).status for i in range(12)
    ]
    assert spread == [200] * 8 + [429] * 4
    assert (await c.get("/api/v1/node")).body["admission"]["rate_limited_total"] == 1 + 2 + 4


# ---- quotas -------------------------------------------------------------------------------------


async def test_quotas_per_author_coop_and_node_with_clear_errors(make_node: NodeMaker, http: aiohttp.ClientSession) -> None:
    node = await make_node(quota_author_bytes=20_000, quota_coop_bytes=50_000, quota_node_bytes=80_000, **UNLIMITED)
    c = Client(http, node.url)
    f1, f2 = Person(key("f1")), Person(key("f2"))
    c1, c2 = await founded(c, f1, "One"), await founded(c, f2, "Two")
    results = [await c.post([f1.act(c1, size=4_000)], single=True) for _ in range(5)]
    codes = [r.body.get("error") for r in results]
    assert codes == [None] * 4 + ["quota_exceeded"], codes
    assert results[4].status == 507 and "this author's quota in this co-op (20000 bytes)" in results[4].body["message"]
    members = [Person(key("m", i)) for i in range(6)]
    for m in members:
        await c.ok([m.apply(c1)])
    over = None
    for m in members:
        got = await c.post([m.act(c1, size=4_000) for _ in range(4)])
        for r in got.body["results"]:
            if r.get("code") == "quota_exceeded":
                over = r["message"]
    assert over is not None and "this co-op's quota (50000 bytes)" in over
    usage = node.store.usage()
    assert usage.coop_bytes[c1] <= 50_000
    # The node-wide quota: co-op two fills what is left.
    over = None
    for m in members:
        await c.ok([m.apply(c2)])
        got = await c.post([m.act(c2, size=4_000) for _ in range(4)])
        over = over or next(
            (r["message"] for r in got.body["results"] if r.get("code") == "quota_exceeded" and "node" in r["message"]), None
        )
    assert over is not None and "this node's quota (80000 bytes)" in over
    assert node.store.usage().bytes <= 80_000
    info = (await c.get("/api/v1/node")).body["admission"]
    assert info["stored_bytes"] == node.store.usage().bytes and info["limits"]["quota_node_bytes"] == 80_000


async def test_a_peer_over_quota_is_refused_without_penalty(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    big = Admission(trusted_proxies=PROXY, **UNLIMITED)
    a, b = cluster.add(2, admission=big)
    b.config = dataclasses.replace(b.config, admission=dataclasses.replace(big, quota_coop_bytes=30_000))
    cluster.mesh()
    await cluster.start_all()
    founder = Person(key("founder"))
    ca = Client(http, a.url)
    coop = await founded(ca, founder)
    for _ in range(10):
        assert await ca.ok([founder.act(coop, size=4_000)]) == ["accepted"]
    await cluster.run_rounds()

    async def refused_some() -> bool:
        text = await get_text(http, b.url + "/metrics")
        return (metric(text, "coopnet_actions_rejected_total", code="quota_exceeded") or 0) > 0

    await wait_until(refused_some, within=20, what="B to refuse what passes its quota")
    assert b.running.store.usage().coop_bytes[coop] <= 30_000
    assert (await b.running.store.head(coop, founder.id))[0] < 11
    assert_honest_peers_unpunished([a.running, b.running])


# ---- the block list -----------------------------------------------------------------------------


async def test_a_blocked_author_is_refused_at_the_door_and_the_block_persists(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    cfg = init_data_dir(tmp_path / "n", port=0)
    cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, verify_workers=0), admission=Admission(trusted_proxies=PROXY))
    node = await Node.start(cfg)
    try:
        c = Client(http, node.url)
        coop = await founded(c, Person(key("founder")))
        troll, fine = Person(key("troll")), Person(key("fine"))
        assert await c.ok([troll.apply(coop), fine.apply(coop)]) == ["accepted", "accepted"]
        held_by_troll = Person(key("troll-2"))
        assert await c.ok([held_by_troll.act(coop)]) == ["held"]
        await node.store.block_author(None, troll.id, "spam")
        await node.store.block_author(coop, held_by_troll.id)
        assert node.store.usage().held == 0  # what they had held went with the block
        refused = troll.act(coop)
        got = await c.post([refused], single=True)
        assert got.status == 403 and got.body["error"] == "blocked"
        assert await c.ok([fine.act(coop)]) == ["accepted"]
    finally:
        await node.stop()
    node = await Node.start(cfg)
    try:
        c = Client(http, node.url)
        assert (await c.post([refused], single=True)).body["error"] == "blocked"
        rows = await node.store.blocked_authors()
        assert {(r.coop, r.author, r.reason) for r in rows} == {(None, troll.id, "spam"), (coop, held_by_troll.id, "")}
        assert await node.store.unblock_author(None, troll.id)
        assert await c.ok([refused]) == ["accepted"]
    finally:
        await node.stop()


# ---- state stays shared -------------------------------------------------------------------------


def test_the_store_takes_everything_unless_told_otherwise() -> None:
    assert StorePolicy().hold_unknown is False and not StorePolicy().quotas
    assert Admission().unknown_authors == "hold" and Admission().founding == "open"
