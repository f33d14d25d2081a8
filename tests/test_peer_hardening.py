"""Hostile peers against real nodes (issue #10, findings 5, 6, 7 and 8b, and the honest cases).

Every node is a real aiohttp server on 127.0.0.1 with its SQLite files in tmp_path (tests/fed_helpers.py).
A hostile peer is a ``FakePeer``: a small aiohttp app, also on 127.0.0.1, that signs its requests
and records like a node and answers whatever the test makes it answer; it logs every request it
receives, so a test can say where a node sent its requests. Waiting is always for a condition
with a deadline; every loop is bounded.

The same rules without a network (slot arithmetic, budgets, the start floor) are unit-tested in
tests/test_peer_book.py.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.config import PeerAddress
from node.node import Node, wall_clock_ms
from protocol import Action, codec, make_proof, sign_action
from protocol.ids import IdKind, format_id
from protocol.keys import SigningKey
from protocol.messages import (
    Announce,
    FetchReply,
    Head,
    Listing,
    PeerPush,
    Range,
    ReconcileReply,
    ReconcileRequest,
    decode_fetch_request,
    decode_reconcile_request,
    encode_announce,
    encode_coop_list,
    encode_fetch_reply,
    encode_push,
    encode_reconcile_reply,
    encode_reconcile_request,
)
from protocol.peer import HEADER_FROM, HEADER_TO, NODE_RECORD, sign_node_record
from protocol.reconcile import HeadSet, fingerprint, respond
from tests.conftest import member_key
from tests.fed_helpers import (
    FED_NAME,
    Cluster,
    Member,
    Slot,
    assert_honest_peers_unpunished,
    describe,
    free_ports,
    metric,
    node_key,
    node_text,
    peer_post,
    peer_view,
    post,
    signed_headers,
    wait_converged,
    wait_until,
)
from tests.test_federation import equivocate

MSGPACK = "application/msgpack"
ANNOUNCE = "/peer/v1/announce"
RECONCILE = "/peer/v1/reconcile"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    await c.close()


# ---- a peer that is not a node ------------------------------------------------------------------

Handler = Callable[[bytes, bytes, bytes], Awaitable[web.Response]]  # (to, from, body) -> answer


def raw_record(key: SigningKey, url: str, *, ts: int | None = None, federation: str = FED_NAME) -> bytes:
    """A node record signed as given: no check of its own (``sign_node_record`` would refuse a
    URL that is not an origin; an attacker signs whatever it likes)."""
    content = {
        "all_coops": True,
        "coops": [],
        "federation": federation,
        "node": key.public_key,
        "ts": wall_clock_ms() if ts is None else ts,
        "url": url,
    }
    return codec.encode({"record": content, "sig": key.sign(NODE_RECORD + codec.encode(content))})


class FakePeer:
    """An aiohttp app on 127.0.0.1 holding some node keys. It answers an announce addressed to one
    of its keys with that key's record (at its own URL), everything else from ``routes`` (path ->
    handler) or ``404 not_found``; it logs ``(path and query, addressee)`` of every request."""

    def __init__(self, keys: Iterable[SigningKey] = ()) -> None:
        self.keys = {k.public_key: k for k in keys}
        self.routes: dict[str, Handler] = {}
        self.log: list[tuple[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakePeer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def record(self, key: SigningKey) -> bytes:
        return sign_node_record(key, url=self.url, federation=FED_NAME, coops=[], all_coops=True, ts=wall_clock_ms()).encode()

    async def _serve(self, request: web.Request) -> web.Response:
        body = await request.read()
        to_text = request.headers.get(HEADER_TO, "")
        self.log.append((request.path_qs, to_text))
        to = next((k for k in self.keys if node_text(k) == to_text), b"")
        sender = request.headers.get(HEADER_FROM, "")
        handler = self.routes.get(request.path)
        if handler is not None:
            return await handler(to, sender.encode(), body)
        if request.path == ANNOUNCE and to:
            return web.Response(body=encode_announce(Announce(self.record(self.keys[to]), ())), content_type=MSGPACK)
        return web.json_response({"error": "not_found", "message": "a fake peer"}, status=404)

    async def send(self, http: aiohttp.ClientSession, key: SigningKey, slot: Slot, path: str, body: bytes) -> tuple[int, Any]:
        return await peer_post(http, slot.url, path, body, signed_headers(key, slot.node_id, path, body))


def msgpack_reply(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=MSGPACK)


async def start_fake(keys: Iterable[SigningKey] = ()) -> FakePeer:
    return await FakePeer(keys).start()


async def _started(cluster: Cluster, slot: Slot, *, skew_ms: int = 0) -> Node:
    """Start a node whose clock is ``skew_ms`` off the wall clock (0: the wall clock)."""
    assert slot.node is None
    slot.node = await Node.start(slot.config, clock_ms=lambda: wall_clock_ms() + skew_ms)
    return slot.node


def coop_of(g: Action) -> bytes:
    return g.id


def in_count(node: Node, text: str, sender: bytes) -> float:
    """Peer requests ``node`` received from ``sender`` so far (every kind and outcome)."""
    return metric(text, "coopnet_gossip_requests_total", peer=node_text(sender), direction="in") or 0.0


# ==== finding 5: one stranger's announce cannot eclipse a node ===================================


async def test_an_announce_of_255_throwaway_records_cannot_fill_the_table(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Open federation. A stranger announces 255 records of throwaway keys, three times: most for
    its own server (which proves every key asked about), some with a path, query, fragment or user
    pointing at a victim server. It gets at most its introducer's share of slots; an honest node
    that announces itself afterwards is learned and used; no request ever goes to a path or query."""
    (a,) = cluster.add(1, open=True)
    await cluster.start(a)
    fed = a.config.federation
    founder = Member(member_key(1))
    g = founder.found("Watched", ts=1_700_000_000_000)
    await post(http, a.url, [g], single=True)

    attacker = node_key(5000)
    throwaways = [node_key(5001 + i) for i in range(255)]
    farm = await start_fake([attacker, *throwaways])
    victim = await start_fake()
    try:
        host = victim.url.removeprefix("http://")
        bad_urls = [f"{victim.url}/admin?drop=1", f"{victim.url}/", f"http://user@{host}", f"{victim.url}#x", f"{victim.url}?q=1"]
        records = [raw_record(k, bad_urls[(i // 5) % 5] if i % 5 == 0 else farm.url) for i, k in enumerate(throwaways)]
        for _ in range(3):  # fresh signatures each time; the budget is per window, not per request
            body = encode_announce(Announce(farm.record(attacker), tuple(records)))
            status, _ = await farm.send(http, attacker, a, ANNOUNCE, body)
            assert status == 200

        book = a.running.book

        async def probed() -> bool:
            return not getattr(book, "candidates", {})  # (a book without candidates learns at once)

        await wait_until(probed, within=15, what="every introduced candidate to be probed")
        async with http.get(a.url + "/api/v1/node") as r:
            assert r.status == 200
            doc = await r.json()
        assert doc["peer_candidates"] == 0 and doc["peers_known"] == len(book.peers)  # shown to the operator
        hostile = {attacker.public_key} | {k.public_key for k in throwaways}
        held = hostile & set(book.peers)
        introduced_by_attacker = [
            p for p in book.peers.values() if p.introducer == attacker.public_key and p.node_id != attacker.public_key
        ]
        assert len(introduced_by_attacker) <= min(fed.introductions, fed.max_per_introducer), len(introduced_by_attacker)
        assert len(held) <= fed.introductions + 1, len(held)  # its share, and its own slot

        # An honest newcomer announces itself: it is learned, and then used (reconciled with).
        (n,) = cluster.add(1, open=True, peers=(a.address,))
        await cluster.start(n)

        async def newcomer_used() -> bool:
            p = book.peers.get(n.node_id)
            return p is not None and p.url == n.url and p.reconciled_ms is not None

        await wait_until(newcomer_used, within=20, what="the honest newcomer to be learned and reconciled with")
        view = peer_view(a.running, n.node_id)
        assert view["origin"] == "learned" and view["introducer"] == n.text_id and view["offences"] == {}

        # Where requests went: the victim never heard from the node; the farm only at its origin,
        # at the protocol's own paths, and only for the keys it was allowed to introduce.
        assert victim.log == []
        assert all(path.startswith("/peer/v1/") and "?" not in path for path, _ in farm.log), farm.log
        probed_keys = {to for _, to in farm.log}
        assert len(probed_keys) <= fed.introductions + 1, probed_keys
    finally:
        await farm.close()
        await victim.close()


# ==== finding 6: one lying peer does not get honest peers refused =================================


async def test_a_peer_listing_2000_fake_coops_loses_standing_and_honest_peers_never_refuse_each_other(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b = cluster.add(2)
    liar_key = node_key(6000)
    liar = await start_fake([liar_key])
    try:
        # Each honest node is told of its own 2,000 fake co-ops: a co-op of the first set reaching B
        # can only have come from A, and the other way round.
        fakes = {s.node_id: sorted(hashlib.sha256(b"fake coop %d:%d" % (s.index, i)).digest() for i in range(2000)) for s in (a, b)}

        async def coops(to: bytes, sender: bytes, body: bytes) -> web.Response:
            asker = next(s.node_id for s in (a, b) if s.text_id.encode() == sender)
            return msgpack_reply(encode_coop_list(fakes[asker]))

        async def reconcile(to: bytes, sender: bytes, body: bytes) -> web.Response:
            req = decode_reconcile_request(body)
            fake_head = Head(hashlib.sha256(b"fake author" + req.coop).digest(), 5, hashlib.sha256(b"fake head" + req.coop).digest())
            return msgpack_reply(encode_reconcile_reply(ReconcileReply(1, (), (Listing(b"", None, (fake_head,)),), None)))

        async def fetch(to: bytes, sender: bytes, body: bytes) -> web.Response:
            return msgpack_reply(encode_fetch_reply(FetchReply((), (), False)))  # it holds nothing it claimed

        liar.routes.update({"/peer/v1/coops": coops, RECONCILE: reconcile, "/peer/v1/fetch": fetch})
        cluster.mesh(extra=[PeerAddress(liar.url, node_text(liar_key.public_key))])
        asked: dict[bytes, set[bytes]] = {a.node_id: set(), b.node_id: set()}
        started = time.monotonic()
        await cluster.start_all()
        for s in (a, b):  # every co-op either node is asked to reconcile (as responder or initiator)
            store = s.running.store
            head_set = store.head_set

            async def spy(coop: bytes, _seen: set[bytes] = asked[s.node_id], _real: Any = head_set) -> Any:
                _seen.add(coop)
                return await _real(coop)

            store.head_set = spy  # type: ignore[method-assign]

        # Twenty real co-ops, so that A has plenty to reconcile with B every round.
        founders = [Member(member_key(100 + i)) for i in range(20)]
        geneses = [m.found(f"Real {i}", ts=1_700_000_000_000) for i, m in enumerate(founders)]
        await post(http, a.url, geneses)
        real = [coop_of(x) for x in geneses]
        await wait_converged([a.running, b.running], real, within=30, what="the real co-ops on both nodes")

        async def liar_refused() -> bool:
            return a.running.book.refused(liar_key.public_key) and b.running.book.refused(liar_key.public_key)

        async def views() -> str:
            return "\n".join(f"{s.url}: {s.running.book.view()}" for s in (a, b))

        await wait_until(liar_refused, within=45, what="both honest nodes to refuse the liar", explain=views)
        elapsed = time.monotonic() - started

        # The liar lost standing for its claims, and for nothing else.
        for s in (a, b):
            v = peer_view(s.running, liar_key.public_key)
            assert v["state"] == "refused" and set(v["offences"]) == {"bogus_claim"}, await views()
        # Honest peers: never refused, never penalised, and never asked about the other's fakes.
        assert_honest_peers_unpunished([a.running, b.running])
        assert not asked[b.node_id] & set(fakes[a.node_id]), "A reconciled a co-op only the liar named with B"
        assert not asked[a.node_id] & set(fakes[b.node_id]), "B reconciled a co-op only the liar named with A"
        # Each node checked only a few claims a round, with the liar alone (those checked before
        # the spy was in place, as the nodes started, are not counted here).
        checked = len(asked[a.node_id] & set(fakes[a.node_id]))
        assert checked <= a.config.federation.max_claims * 20, checked
        # A's requests to B stay within its budget for B, whatever it has to do: twenty co-ops every
        # 0.3 s is far more than 20 requests/s, so the budget binds while this is watched.
        rate = a.config.federation.request_rate

        async def sent_to_b() -> float:
            async with http.get(b.url + "/metrics") as r:
                return in_count(b.running, await r.text(), a.node_id)

        async def busy() -> bool:
            return await sent_to_b() >= 4 * rate

        await wait_until(busy, within=30, what="A to send B a few seconds' worth of requests", explain=views)
        sent, elapsed = await sent_to_b(), time.monotonic() - started
        assert sent <= rate * elapsed + 2 * rate + 1, (sent, elapsed)

        # And they keep working together.
        late = Member(member_key(99)).act(real[0], 3)
        await post(http, b.url, late)
        await wait_converged([a.running, b.running], real, within=15, what="a later action to cross")
        assert_honest_peers_unpunished([a.running, b.running])
    finally:
        await liar.close()


async def test_a_peer_that_slows_an_honest_node_down_with_429_never_penalises_it(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """B allows 2 requests/s; A has twenty co-ops to reconcile every 0.3 s. B answers 429 with
    Retry-After; A waits as told and is never penalised nor refused; the two converge."""
    a, b = cluster.add(2)
    cluster.federate(b, rate_limit=2.0)
    cluster.mesh()
    await cluster.start_all()
    founders = [Member(member_key(200 + i)) for i in range(20)]
    geneses = [m.found(f"Busy {i}", ts=1_700_000_000_000) for i, m in enumerate(founders)]
    await post(http, a.url, geneses)
    real = [coop_of(x) for x in geneses]

    async def told_to_wait() -> bool:
        async with http.get(b.url + "/metrics") as r:
            text = await r.text()
        refused = metric(text, "coopnet_gossip_requests_total", peer=a.text_id, direction="in", outcome="rate_limited") or 0
        return refused >= 5

    await wait_until(told_to_wait, within=20, what="B to answer A's requests with 429")
    await wait_converged([a.running, b.running], real, within=30, what="the co-ops to reach B despite its rate limit")
    assert_honest_peers_unpunished([a.running, b.running])


async def test_429_says_when_to_retry(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    k = node_key(6200)
    (a,) = cluster.add(1, rate_limit=1.0)  # bursts of 2
    cluster.federate(a, peers=(PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(k.public_key)),))
    await cluster.start(a)
    body = encode_push(PeerPush((), ()))
    t0 = wall_clock_ms()
    got = []
    for i in range(4):
        h = signed_headers(k, a.node_id, "/peer/v1/push", body, ts=t0 + i)
        async with http.post(a.url + "/peer/v1/push", data=body, headers=h) as r:
            got.append((r.status, r.headers.get("Retry-After"), (await r.json(content_type=None)) if r.status != 200 else None))
    assert [s for s, _, _ in got[:2]] == [200, 200]
    for status, retry_after, doc in got[2:]:
        assert status == 429 and doc["error"] == "rate_limited" and retry_after is not None and int(retry_after) >= 1
    assert peer_view(a.running, k.public_key)["offences"] == {}  # told to wait; not yet an offence


# ==== finding 7: a signed request captured before a restart is stale after it ======================


async def test_a_request_captured_before_a_restart_cannot_be_replayed_after_it(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    listed = node_key(7000)
    a, b = cluster.add(2)
    cluster.mesh(extra=[PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(listed.public_key))])
    await cluster.start_all()
    founder = Member(member_key(1))
    g = founder.found("Restarted", ts=1_700_000_000_000)
    await post(http, a.url, [g, *founder.act(g.id, 3)])
    await wait_converged([a.running, b.running], [g.id], within=15)

    body = encode_reconcile_request(ReconcileRequest(g.id, (Range(b"", None, fingerprint([]), 0),), None, 0))
    captured = signed_headers(listed, b.node_id, RECONCILE, body)  # signed now, while B runs
    first = await peer_post(http, b.url, RECONCILE, body, captured)
    assert first[0] == 200 and isinstance(first[1], bytes), first
    again = await peer_post(http, b.url, RECONCILE, body, captured)
    assert again[0] == 401 and again[1]["error"] == "replayed", again  # type: ignore[index]

    await cluster.stop(b)
    await cluster.start(b)
    replay = await peer_post(http, b.url, RECONCILE, body, captured)
    assert replay[0] == 401 and isinstance(replay[1], dict), replay
    assert replay[1]["error"] == "stale_request" and "before this node started" in replay[1]["message"], replay
    # The same sender, signing anew, is served; and nobody was penalised for any of it.
    fresh = await peer_post(http, b.url, RECONCILE, body, signed_headers(listed, b.node_id, RECONCILE, body))
    assert fresh[0] == 200, fresh
    assert peer_view(b.running, listed.public_key)["offences"] == {}

    # Honest peers keep working across the restart, both ways.
    more = founder.act(g.id, 2)
    await post(http, a.url, more[:1])
    await post(http, b.url, more[1:])
    await wait_converged([a.running, b.running], [g.id], within=15, what="actions posted after the restart to cross")
    assert_honest_peers_unpunished([a.running, b.running])


# ==== finding 8b: a fetch reply keeps only what was asked ==========================================


async def test_a_fetch_reply_keeps_only_the_coop_and_the_wants_asked_for(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """A fake peer F holds co-op X and answers every fetch with what was asked plus actions of X
    outside the wants, actions of another co-op Y (by the same author, at the same seqs) and a
    proof of Y. A keeps only what it asked for: Y is neither stored nor passed on to B."""
    a, b = cluster.add(2)
    fk = node_key(8000)
    f = await start_fake([fk])
    try:
        m0, m1 = Member(member_key(1)), Member(member_key(2))
        gx = m0.found("X", ts=1_700_000_000_000)
        x_actions = [gx, *m0.act(gx.id, 3), *m1.act(gx.id, 2)]
        m0y = Member(member_key(1))
        gy = m0y.found("Y, never asked for", ts=1_700_000_000_001)
        y_actions = [gy, *m0y.act(gy.id, 3)]
        fork_1 = sign_action(m1.key, coop=gy.id, seq=1, prev=None, ts=1, kind="test.note", body={"n": 1})
        fork_2 = sign_action(m1.key, coop=gy.id, seq=1, prev=None, ts=2, kind="test.note", body={"n": 2})
        y_proof = make_proof(fork_1, fork_2).encode()
        heads = HeadSet([Head(m0.id, 4, x_actions[3].id), Head(m1.id, 2, x_actions[5].id)])
        by_key = {(x.author, x.seq): x for x in x_actions}
        served: list[int] = []

        async def coops(to: bytes, sender: bytes, body: bytes) -> web.Response:
            return msgpack_reply(encode_coop_list([gx.id]))

        async def reconcile(to: bytes, sender: bytes, body: bytes) -> web.Response:
            req = decode_reconcile_request(body)
            if req.coop != gx.id:
                return web.json_response({"error": "out_of_scope", "message": "only X"}, status=422)
            return msgpack_reply(encode_reconcile_reply(respond(req, heads, ())))

        async def fetch(to: bytes, sender: bytes, body: bytes) -> web.Response:
            req = decode_fetch_request(body)
            asked = [by_key[(w.author, s)] for w in req.wants for s in range(w.first, w.last + 1) if (w.author, s) in by_key]
            extra = [x for x in x_actions if x not in asked] + y_actions
            served.append(len(asked))
            return msgpack_reply(encode_fetch_reply(FetchReply(tuple(x.raw for x in asked + extra), (y_proof,), False)))

        f.routes.update({"/peer/v1/coops": coops, RECONCILE: reconcile, "/peer/v1/fetch": fetch})
        cluster.federate(a, peers=(PeerAddress(f.url, node_text(fk.public_key)), b.address))
        cluster.federate(b, peers=(a.address,))
        await cluster.start_all()

        async def x_everywhere() -> bool:
            return all([(await n.store.counts())["actions"] == len(x_actions) for n in (a.running, b.running)])

        await wait_until(
            x_everywhere, within=20, what="X to reach A from F, and B from A", explain=lambda: describe([a.running, b.running], [gx.id])
        )
        for node in (a.running, b.running):
            assert await node.store.get_coop(gy.id) is None
            for y in y_actions:
                assert await node.store.get_action(y.id) is None
            assert await node.store.proofs(gy.id) == []
        v = peer_view(a.running, fk.public_key)
        assert v["offences"].get("unasked", 0) >= len(y_actions) + 1, v
        assert set(v["offences"]) == {"unasked"}, v  # X's claim was true: no bogus_claim
        assert served and served[0] >= 1
    finally:
        await f.close()


# ==== the honest cases: nothing an honest node does costs it its standing ==========================


async def test_clock_skew_scope_and_a_restart_never_cost_honest_peers(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """B's clock is 20 s ahead, C's 3 s behind (both inside the 60 s window); C replicates one co-op
    only. A restarts: for about 3 s C's requests are signed before A's start and refused as stale,
    then C goes on. Nobody penalises anybody, and everything in scope converges."""
    a, b, c = cluster.add(3)
    cluster.mesh()
    founder = Member(member_key(1))
    gx = founder.found("Everyone's", ts=1_700_000_000_000)
    gy = founder.found("Not C's", ts=1_700_000_000_001)
    cluster.federate(c, replicate=(format_id(IdKind.COOP, gx.id),))
    await _started(cluster, a)
    await _started(cluster, b, skew_ms=20_000)
    await _started(cluster, c, skew_ms=-3_000)
    await post(http, a.url, [gx, gy])
    nodes = [a.running, b.running, c.running]

    async def x_everywhere() -> bool:
        return all([await n.store.get_coop(gx.id) is not None for n in nodes])

    await wait_until(x_everywhere, within=20, what="X's genesis on every node")
    await post(http, b.url, founder.act(gx.id, 2))
    await post(http, c.url, founder.act(gx.id, 2))
    await wait_converged(nodes, [gx.id], within=20, what="X everywhere")
    await wait_converged([a.running, b.running], [gy.id], within=20, what="Y on A and B")
    assert await c.running.store.get_coop(gy.id) is None

    await cluster.stop(a)
    await _started(cluster, a)
    await post(http, c.url, founder.act(gx.id, 1))
    await post(http, a.url, founder.act(gy.id, 1))
    nodes = [a.running, b.running, c.running]
    await wait_converged(nodes, [gx.id], within=20, what="X everywhere after A's restart")
    await wait_converged([a.running, b.running], [gy.id], within=20, what="Y on A and B after A's restart")
    assert_honest_peers_unpunished(nodes)


async def test_a_members_fork_costs_no_peer_its_standing(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """A member signs two seq-4 actions, each accepted by another node while they are cut apart.
    After the heal every node proves the equivocation and keeps the same fork; none holds the
    other fork's relay (chain_conflict, equivocation) against the peer it came from."""
    slots, coop, *_ = await equivocate(cluster, http)
    nodes = [s.running for s in slots]

    async def proven_everywhere() -> bool:
        return all([len(await n.store.proof_ids(coop)) == 1 for n in nodes])

    await wait_until(proven_everywhere, within=20, what="the equivocation proof on every node")
    await wait_converged(nodes, [coop], within=20, what="the same fork everywhere")
    assert_honest_peers_unpunished(nodes)


async def test_actions_of_a_later_protocol_version_are_refused_without_penalising_their_relayer(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A node of a later version validates its actions and forwards them: this node refuses them
    (``unsupported_version``) but does not hold that against the relayer. A forged v1 action in the
    same push still is an offence."""
    later = node_key(9000)
    (a,) = cluster.add(1)
    cluster.federate(a, peers=(PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(later.public_key)),))
    await cluster.start(a)
    m = Member(member_key(1))
    g = m.found("Versions", ts=1_700_000_000_000)
    await post(http, a.url, [g], single=True)
    (x,) = m.act(g.id, 1)
    env = dict(codec.decode(x.env_bytes))
    env["v"] = 2
    v2 = codec.encode({"body": x.body, "env": codec.encode(env), "sig": x.sig})
    body = encode_push(PeerPush((v2,), ()))
    status, reply = await peer_post(http, a.url, "/peer/v1/push", body, signed_headers(later, a.node_id, "/peer/v1/push", body))
    assert status == 200 and codec.decode(reply)["rejected"] == 1, (status, reply)  # type: ignore[arg-type]
    assert peer_view(a.running, later.public_key)["offences"] == {}
    assert await a.running.store.get_action(x.id) is None


# ==== dead peers are forgotten; configured ones stay =============================================


async def test_a_learned_peer_unreachable_for_forget_after_is_dropped_and_a_configured_one_stays(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, learned, configured = cluster.add(3, open=True)
    cluster.federate(a, peers=(configured.address,), forget_after=1.0)
    cluster.federate(learned, peers=(a.address,))
    cluster.federate(configured, peers=(a.address,))
    await cluster.start_all()
    book = a.running.book

    async def knows_learned() -> bool:
        await learned.running.gossip.announce()  # its start-up announce may have come before A listened
        p = book.peers.get(learned.node_id)
        return p is not None and p.url == learned.url

    await wait_until(knows_learned, within=15, what="A to learn the node that announced itself")
    await cluster.stop(learned)
    await cluster.stop(configured)

    async def forgotten() -> bool:
        await a.running.gossip.announce()  # the periodic announce (every ~30 s), now: it finds both down
        return learned.node_id not in book.peers

    await wait_until(forgotten, within=20, what="A to forget the learned peer that went away")
    view = peer_view(a.running, configured.node_id)
    assert view["origin"] == "config" and view["state"] in ("backoff", "retrying") and view["failures"] >= 1
