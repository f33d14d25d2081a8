"""Federation, in process: several real nodes (aiohttp on 127.0.0.1, SQLite files in tmp_path)
gossiping with each other over real sockets.

Every wait is for a condition with a deadline (``wait_until``); nothing sleeps a fixed time.
Tests whose docstring says "Regression" pin bugs that were found and fixed while this file was
written.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from click.testing import CliRunner

import node.gossip as gossip_module
from node.cli import main as cli_main
from node.config import PeerAddress, load_config, load_federation_file
from node.keyfile import read_key_file
from node.node import Node, init_data_dir
from node.store import Committed
from protocol import Action, sign_action
from protocol.ids import IdKind, format_id
from protocol.messages import PeerPush, Range, ReconcileRequest, encode_push, encode_reconcile_request
from protocol.reconcile import fingerprint as heads_fingerprint
from tests.conftest import bad_body, bad_signature, member_key
from tests.fed_helpers import (
    FED_NAME,
    Cluster,
    Member,
    Slot,
    action_ids,
    api_action_ids,
    assert_honest_peers_unpunished,
    free_ports,
    get_json,
    get_text,
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

PUSH = "/peer/v1/push"
RECONCILE = "/peer/v1/reconcile"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    await c.close()


def acked(doc: dict[str, Any]) -> set[str]:
    """The ids a node acknowledged in one answer (``post`` checked each was accepted or held pending)."""
    return {r["id"] for r in doc["results"]}


def ids_text(ids: set[bytes]) -> set[str]:
    return {format_id(IdKind.ACTION, i) for i in ids}


async def found_coop(http: aiohttp.ClientSession, slots: Sequence[Slot], founder: Member, name: str, *, at: int = 0) -> Action:
    """Found a co-op on one node and wait until every given node holds its genesis."""
    genesis = founder.found(name, ts=1_700_000_000_000)
    await post(http, slots[at].url, [genesis], single=True)

    async def everywhere() -> bool:
        return all([await s.running.store.get_coop(genesis.id) is not None for s in slots])

    await wait_until(everywhere, within=15, what=f"genesis of {name!r} on every node")
    return genesis


async def post_randomly(
    http: aiohttp.ClientSession, slots: Sequence[Slot], rng: random.Random, member: Member, coop: bytes, total: int
) -> set[str]:
    """``member`` posts ``total`` actions to random nodes, in batches of 2-40 and one at a time."""
    out: set[str] = set()
    left = total
    while left:
        n = min(left, rng.choice((1, 1, 1, 2, 5, 12, 40)))
        actions = member.act(coop, n)
        out |= acked(await post(http, rng.choice(slots).url, actions, single=n == 1))
        left -= n
    return out


async def assert_same_actions(http: aiohttp.ClientSession, slots: Sequence[Slot], coops: Sequence[bytes], expected: set[str]) -> None:
    """Every node lists exactly ``expected`` (through the paginated API), the store agrees."""
    for coop in coops:
        listed = [await api_action_ids(http, s.url, coop) for s in slots]
        for s, ids in zip(slots, listed, strict=True):
            assert len(ids) == len(set(ids)), f"{s.url} lists an action twice"
            assert set(ids) == set(listed[0]), f"{s.url} differs from {slots[0].url} in {format_id(IdKind.COOP, coop)}"
            assert ids_text(await action_ids(s.running, coop)) == set(ids)
    everything = set().union(*[set(await api_action_ids(http, slots[0].url, c)) for c in coops])
    assert everything == expected, f"missing {len(expected - everything)}, unexpected {len(everything - expected)}"


# ---- 1. convergence ----------------------------------------------------------------------------


async def test_five_node_mesh_converges_to_identical_sets(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    slots = cluster.add(5)
    cluster.mesh()
    await cluster.start_all()
    rng = random.Random(1)
    g1 = await found_coop(http, slots, Member(member_key(1)), "Valley Food Hub", at=0)
    g2 = await found_coop(http, slots, Member(member_key(2)), "Ride Share", at=3)
    coops = [g1.id, g2.id]
    members = [Member(member_key(10 + i)) for i in range(6)]

    async def member_posts(i: int, m: Member) -> set[str]:
        r = random.Random(rng.random())
        return await post_randomly(http, slots, r, m, coops[i % 2], 40) | await post_randomly(http, slots, r, m, coops[(i + 1) % 2], 20)

    parts = await asyncio.gather(*(member_posts(i, m) for i, m in enumerate(members)))
    expected = set().union(*parts) | {format_id(IdKind.ACTION, g1.id), format_id(IdKind.ACTION, g2.id)}
    assert len(expected) == 2 + 6 * 60

    nodes = [s.running for s in slots]
    await wait_converged(nodes, coops, within=40, what="5 nodes to hold the same heads and counts")
    await assert_same_actions(http, slots, coops, expected)
    assert_honest_peers_unpunished(nodes)
    for n in nodes:
        counts = await n.store.counts()
        assert counts["actions"] == len(expected) and counts["pending"] == 0 and counts["proofs"] == 0
        for m in members:  # every chain head is the member's last action, everywhere
            for c in coops:
                seq, head = await n.store.head(c, m.id)
                assert head == m.heads[c].id and seq == m.heads[c].seq


async def test_ring_propagates_over_several_hops(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    slots = cluster.add(5)
    cluster.ring()  # closed federation: a node only ever talks to its two neighbours
    await cluster.start_all()
    g = await found_coop(http, slots, Member(member_key(1)), "Ring Co-op", at=0)
    a, b = Member(member_key(20)), Member(member_key(21))
    expected = {format_id(IdKind.ACTION, g.id)}
    expected |= acked(await post(http, slots[0].url, a.act(g.id, 30)))  # two hops from nodes 2 and 3
    for _ in range(5):
        expected |= acked(await post(http, slots[2].url, b.act(g.id, 1), single=True))
    expected |= acked(await post(http, slots[2].url, b.act(g.id, 15)))
    nodes = [s.running for s in slots]
    await wait_converged(nodes, [g.id], within=30, what="the ring to converge")
    await assert_same_actions(http, slots, [g.id], expected)
    for i, s in enumerate(slots):  # still a ring: nothing reached a node except through a neighbour
        neighbours = {slots[(i - 1) % 5].node_id, slots[(i + 1) % 5].node_id}
        assert set(s.running.book.peers) == neighbours


# ---- 2. partition ------------------------------------------------------------------------------


async def partition(http: aiohttp.ClientSession, sides: Sequence[Sequence[Slot]]) -> None:
    """Cut every link between the sides through each node's fault hook (an empty list heals)."""
    for side in sides:
        others = [node_text(o.node_id) for other in sides if other is not side for o in other]
        for s in side:
            async with http.post(s.url + "/_test/partition", json={"block": others}) as r:
                assert r.status == 200, await r.text()
                assert sorted((await r.json())["blocked"]) == sorted(others)


async def test_partition_then_heal_converges_with_every_acknowledged_action(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    slots = cluster.add(5, fault_hooks=True)
    cluster.mesh()
    await cluster.start_all()
    left, right = slots[:2], slots[2:]
    shared = await found_coop(http, slots, Member(member_key(1)), "Shared", at=0)
    expected = {format_id(IdKind.ACTION, shared.id)}
    expected |= acked(await post(http, slots[4].url, Member(member_key(2)).act(shared.id, 5)))
    await wait_converged([s.running for s in slots], [shared.id], within=15, what="the pre-partition history")

    await partition(http, [left, right])
    rng = random.Random(2)
    lm, rm = [Member(member_key(30 + i)) for i in range(2)], [Member(member_key(40 + i)) for i in range(3)]
    left_coop, right_coop = Member(member_key(3)).found("Left only", 1), Member(member_key(4)).found("Right only", 1)
    expected |= acked(await post(http, left[0].url, [left_coop], single=True))
    expected |= acked(await post(http, right[1].url, [right_coop], single=True))
    await wait_until(
        lambda: _has_coop(left, left_coop.id), within=10, what="the left co-op on both left nodes"
    )  # members post to either node of their side, so the genesis must be there first
    await wait_until(lambda: _has_coop(right, right_coop.id), within=10, what="the right co-op on the right nodes")
    writes = [post_randomly(http, left, rng, m, c, 25) for m in lm for c in (shared.id, left_coop.id)]
    writes += [post_randomly(http, right, rng, m, c, 20) for m in rm for c in (shared.id, right_coop.id)]
    for part in await asyncio.gather(*writes):
        expected |= part
    coops = [shared.id, left_coop.id, right_coop.id]
    await wait_converged([s.running for s in left], coops, within=20, what="the left side to converge")
    await wait_converged([s.running for s in right], coops, within=20, what="the right side to converge")
    for s in left:  # the partition held: nothing crossed it
        assert await s.running.store.get_coop(right_coop.id) is None
        assert await s.running.store.head(shared.id, rm[0].id) == (0, None)
    for s in right:
        assert await s.running.store.get_coop(left_coop.id) is None

    await partition(http, [slots])  # heal
    await wait_converged([s.running for s in slots], coops, within=40, what="all five nodes to converge after healing")
    await assert_same_actions(http, slots, coops, expected)
    assert_honest_peers_unpunished([s.running for s in slots])


async def _has_coop(slots: Sequence[Slot], coop: bytes) -> bool:
    return all([await s.running.store.get_coop(coop) is not None for s in slots])


# ---- 3. joining --------------------------------------------------------------------------------


def federation_file(path: Path, peers: Sequence[Slot], *, extra: str = "") -> Path:
    lines = [f'name = "{FED_NAME}"', "open = true", 'replicate = "all"', extra]
    for p in peers:
        lines += ["", "[[peers]]", f'url = "{p.url}"', f'id = "{p.text_id}"']
    path.write_text("\n".join(lines) + "\n")
    return path


class CommitWatch:
    """A store listener on one node: the catch-up progress seen at each commit; optionally, after
    the first commit of ``cut_after`` actions or more, cut the node off from every peer (fault hook)
    so that a catch-up stops half way, deterministically."""

    def __init__(self, node: Node, cut_after: int | None = None, cut_from: set[bytes] | None = None) -> None:
        self.node = node
        self.cut_after = cut_after
        self.cut_from = cut_from or set()
        self.samples: list[tuple[bool, int, int]] = []  # (active, total, done) at each commit
        self.committed = 0
        self.cut = asyncio.Event()
        node.store.listeners.append(self)

    def __call__(self, c: Committed) -> None:
        p = self.node.gossip.progress
        self.samples.append((p.active, p.total, p.done))
        self.committed += len(c.actions)
        if self.cut_after is not None and self.committed >= self.cut_after and not self.cut.is_set():
            self.node.gossip.client.blocked = self.cut_from | set(self.node.book.peers)
            self.cut.set()


async def test_new_node_joins_with_a_federation_file_and_catches_up(cluster: Cluster, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    old = cluster.add(3, open=True)
    cluster.mesh()
    await cluster.start_all()
    g = await found_coop(http, old, Member(member_key(1)), "Big History", at=0)
    rng = random.Random(3)
    for i in range(10):
        m = Member(member_key(50 + i))
        for _ in range(2):
            await post(http, rng.choice(old).url, m.act(g.id, 100))
    total = 1 + 10 * 200
    await wait_converged([s.running for s in old], [g.id], within=40, what="the existing history")

    # The operator's side: a federation file naming two of the three nodes, and a new data dir.
    fed = load_federation_file(federation_file(tmp_path / "federation.toml", old[:2]))
    assert fed.open and fed.name == FED_NAME and [p.node_id for p in fed.peers] == [s.text_id for s in old[:2]]
    (port,) = free_ports(1)
    new = cluster.adopt(init_data_dir(tmp_path / "newcomer", port=port, federation=fed))
    assert new.config.federation.peers == fed.peers and new.config.federation.open
    # Set here, not in the file: init drops them from a federation file (test_federation_file_settings_survive_init).
    # Catch-up in fetches of 250 actions, so that it can be stopped half way.
    cluster.federate(new, anti_entropy_interval=0.3, request_timeout=2.0, fetch_batch=250)

    # First run: cut off after the first fetched batch, then stopped half way.
    watch = CommitWatch(await cluster.start(new), cut_after=1, cut_from={s.node_id for s in old})
    await wait_until(lambda: _is_set(watch.cut), within=20, what="the newcomer's first fetched batch")
    active, first_total, _ = watch.samples[0]
    assert active and first_total == total, watch.samples[:3]
    half = (await new.running.store.counts())["actions"]
    await cluster.stop(new)
    assert 0 < half < total, f"the catch-up was to stop half way, the newcomer holds {half} of {total}"

    # Second run: resumes where it stopped and completes.
    watch = CommitWatch(await cluster.start(new))
    nodes = [s.running for s in [*old, new]]
    await wait_converged(nodes, [g.id], within=40, what="the newcomer to catch up after its restart")
    active, second_total, _ = watch.samples[0]
    assert active and second_total == total - half, (half, watch.samples[:3])
    assert watch.committed == total - half
    assert not new.running.gossip.progress.active
    assert (await new.running.store.counts())["actions"] == total

    # Peers: the newcomer learned the third node by announce; the others learned the newcomer.
    async def newcomer_knows_all() -> bool:
        return {s.node_id for s in old} <= set(new.running.book.peers) and all(
            p.record is not None for p in new.running.book.peers.values()
        )

    await wait_until(newcomer_knows_all, within=10, what="the newcomer to learn every node")
    assert peer_view(new.running, old[2].node_id)["origin"] == "learned"
    await new.running.gossip.announce()  # the periodic announce is every ~30 s; this is that round, now

    async def all_know_newcomer() -> bool:  # it called them, then proved its URL (a probe)
        return all(new.node_id in s.running.book.peers and s.running.book.peers[new.node_id].url for s in old)

    await wait_until(all_know_newcomer, within=10, what="every existing node to learn the newcomer")
    for s in old:
        assert peer_view(s.running, new.node_id)["url"] == new.url

    # A full peer from now on: what is posted elsewhere reaches it.
    late = Member(member_key(70)).act(g.id, 3)
    await post(http, old[2].url, late)
    await wait_converged(nodes, [g.id], within=15, what="a new action to reach the newcomer")
    assert_honest_peers_unpunished(nodes)


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def _not_set(event: asyncio.Event) -> bool:
    return not event.is_set()


async def test_catch_up_of_a_large_history_with_default_limits(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Regression (found at db9ab98, fixed in 441b412): PeerClient read only the first chunk of a reply,
    so a fetch reply over ~64 KiB arrived truncated and the honest peer was penalised, then refused."""
    a, b = cluster.add(2)
    cluster.mesh()
    await cluster.start(a)
    g = await found_coop(http, [a], Member(member_key(1)), "Large")
    m = Member(member_key(2))
    for _ in range(4):
        await post(http, a.url, m.act(g.id, 500))
    await cluster.start(b)
    await wait_converged([a.running, b.running], [g.id], within=4, what="a fresh node to fetch 2001 actions")
    assert peer_view(b.running, a.node_id)["offences"] == {}


def test_cli_init_join_writes_the_federation_into_the_config(tmp_path: Path) -> None:
    a, b = node_key(1), node_key(2)
    peers = f"""
[[peers]]
url = "http://127.0.0.1:18471"
id = "{node_text(a.public_key)}"

[[peers]]
url = "http://127.0.0.1:18472"
id = "{node_text(b.public_key)}"
"""
    fed_file = tmp_path / "federation.toml"
    fed_file.write_text(f'name = "{FED_NAME}"\nopen = true\nreplicate = "all"\n{peers}')
    data_dir = tmp_path / "joined"
    result = CliRunner().invoke(
        cli_main, ["init", "--join", str(fed_file), "--data-dir", str(data_dir), "--listen", "127.0.0.1:18479"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(data_dir / "coopnet.toml", env={})
    assert cfg.federation.name == FED_NAME and cfg.federation.open
    assert cfg.federation.peers == load_federation_file(fed_file).peers


def test_federation_file_settings_survive_init(tmp_path: Path) -> None:
    path = federation_file(tmp_path / "federation.toml", [], extra="anti_entropy_interval = 0.5\nrequest_timeout = 3.0\nfanout = 2")
    fed = load_federation_file(path)
    assert (fed.anti_entropy_interval, fed.request_timeout, fed.fanout) == (0.5, 3.0, 2)
    cfg = init_data_dir(tmp_path / "d", port=0, federation=fed)
    assert (cfg.federation.anti_entropy_interval, cfg.federation.request_timeout, cfg.federation.fanout) == (0.5, 3.0, 2)


async def test_fetch_batch_bounds_catch_up_fetches(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Regression (found at db9ab98, fixed in 561a927): ``federation.fetch_batch`` was never used."""
    a, b = cluster.add(2, fetch_batch=50, fanout=0, limits={"max_batch_actions": 100})
    cluster.mesh()
    await cluster.start(a)
    g = await found_coop(http, [a], Member(member_key(1)), "Batches")
    m = Member(member_key(2))
    for _ in range(3):
        await post(http, a.url, m.act(g.id, 100))
    await cluster.start(b)
    await wait_converged([a.running, b.running], [g.id], within=20)
    fetches = metric(await get_text(http, b.url + "/metrics"), "coopnet_gossip_requests_total", direction="out", kind="fetch")
    assert fetches is not None and fetches >= 6, f"301 actions with fetch_batch = 50 came in {fetches} fetch(es)"


# ---- 4. hostile peers --------------------------------------------------------------------------


def reconcile_body(coop: bytes) -> bytes:
    return encode_reconcile_request(ReconcileRequest(coop, (Range(b"", None, heads_fingerprint([]), 0),), None, 0))


def counts_of(reply: Any) -> tuple[int, int]:
    """(accepted, rejected) from a push answer's msgpack counts."""
    assert isinstance(reply, bytes), reply
    counts = msgpack.unpackb(reply)
    return counts["accepted"], counts["rejected"]


def empty_push() -> bytes:
    return encode_push(PeerPush((), ()))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_peer_api_authentication_failures(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    listed, stranger = node_key(1), node_key(2)
    dead = free_ports(1)[0]
    a, b = cluster.add(2)  # closed federation
    cluster.mesh(extra=[PeerAddress(f"http://127.0.0.1:{dead}", node_text(listed.public_key))])
    await cluster.start_all()
    g = await found_coop(http, [a, b], Member(member_key(1)), "Guarded")
    target = a.node_id

    def expect(reply: tuple[int, Any], status: int, code: str) -> None:
        assert reply[0] == status and isinstance(reply[1], dict) and reply[1]["error"] == code, reply

    for path, body in ((PUSH, empty_push()), (RECONCILE, reconcile_body(g.id))):
        # no authentication at all
        expect(await peer_post(http, a.url, path, body, None), 401, "unauthenticated")
        # a signature that does not verify
        h = signed_headers(listed, target, path, body)
        h["Coopnet-Sig"] = ("0" if h["Coopnet-Sig"][0] != "0" else "1") + h["Coopnet-Sig"][1:]
        expect(await peer_post(http, a.url, path, body, h), 401, "bad_signature")
        # a valid signature over another body
        expect(await peer_post(http, a.url, path, body + b"\x00", signed_headers(listed, target, path, body)), 401, "bad_signature")
        # the same signed request twice
        h = signed_headers(listed, target, path, body)
        first = await peer_post(http, a.url, path, body, h)
        assert first[0] == 200 and isinstance(first[1], bytes), first
        expect(await peer_post(http, a.url, path, body, h), 401, "replayed")
        # addressed to another node
        expect(await peer_post(http, a.url, path, body, signed_headers(listed, b.node_id, path, body)), 421, "misaddressed")
        # signed ten minutes ago
        expect(
            await peer_post(http, a.url, path, body, signed_headers(listed, target, path, body, ts=now_ms() - 600_000)),
            401,
            "stale_request",
        )
        # a valid signature from a node the closed federation does not list
        expect(await peer_post(http, a.url, path, body, signed_headers(stranger, target, path, body)), 403, "unknown_node")

    text = await get_text(http, a.url + "/metrics")
    for outcome in ("unauthenticated", "bad_signature", "replayed", "misaddressed", "stale_request", "unknown_node"):
        assert (metric(text, "coopnet_gossip_requests_total", direction="in", outcome=outcome) or 0) >= 2, outcome
    assert peer_view(a.running, listed.public_key)["offences"] == {}  # authentication failures are not offences of a node


async def test_listed_malicious_peer_is_refused_while_honest_traffic_flows(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    evil = node_key(3)
    dead = free_ports(1)[0]
    slots = cluster.add(3)
    a, b, c = slots
    cluster.mesh()
    cluster.federate(a, peers=(*a.config.federation.peers, PeerAddress(f"http://127.0.0.1:{dead}", node_text(evil.public_key))))
    await cluster.start_all()
    g = await found_coop(http, slots, Member(member_key(1)), "Targeted")
    victim = Member(member_key(60))
    forged = victim.act(g.id, 6)
    before = await a.running.store.counts()

    async def attack() -> list[tuple[int, Any]]:
        replies = []
        for raws in ([bad_signature(forged[0]), bad_signature(forged[1]), bad_body(forged[2]), bad_body(forged[3])],
                     [bad_signature(forged[4]), bad_signature(forged[5])],
                     [forged[0].raw]):  # fmt: skip
            body = encode_push(PeerPush(tuple(raws), ()))
            replies.append(await peer_post(http, a.url, PUSH, body, signed_headers(evil, a.node_id, PUSH, body)))
        return replies

    honest = Member(member_key(61))
    replies, _ = await asyncio.gather(attack(), post(http, b.url, honest.act(g.id, 1), single=True))
    first, second, third = replies
    assert first[0] == 200 and counts_of(first[1]) == (0, 4), first
    assert second[0] == 200 and counts_of(second[1]) == (0, 2), second
    assert third[0] == 403 and third[1]["error"] == "refused", third  # a valid action, but the peer is refused now
    await wait_converged([s.running for s in slots], [g.id], within=15, what="the honest action posted during the attack")
    for x in forged:
        assert await a.running.store.get_action(x.id) is None
    assert (await a.running.store.counts())["actions"] == before["actions"] + 1  # the honest one only

    status, doc = await get_json(http, a.url + "/api/v1/peers")
    assert status == 200
    view = {p["id"]: p for p in doc["peers"]}[node_text(evil.public_key)]
    assert view["state"] == "refused" and view["offences"] == {"bad_signature": 4, "invalid_action": 2}, view
    assert view["score"] < 0 and view["refused_until_ms"] > now_ms()
    for honest_peer in (b, c):
        hv = {p["id"]: p for p in doc["peers"]}[honest_peer.text_id]
        assert hv["offences"] == {} and hv["state"] != "refused", hv
    text = await get_text(http, a.url + "/metrics")
    evil_id = node_text(evil.public_key)
    assert (metric(text, "coopnet_peer_score", peer=evil_id) or 0) < 0
    assert metric(text, "coopnet_gossip_requests_total", peer=evil_id, direction="in", kind="push", outcome="refused") == 1

    # Honest traffic keeps flowing, to and from the node under attack.
    more = honest.act(g.id, 4)
    await post(http, c.url, more[:2])
    await post(http, a.url, more[2:])
    await wait_converged([s.running for s in slots], [g.id], within=15, what="honest actions to propagate around the refused peer")
    assert await a.running.store.head(g.id, honest.id) == (5, more[-1].id)


async def test_rejected_peer_actions_are_counted_in_metrics(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    evil = node_key(4)
    (a,) = cluster.add(1)
    cluster.federate(a, peers=(PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(evil.public_key)),))
    await cluster.start(a)
    g = await found_coop(http, [a], Member(member_key(1)), "Counted")
    x = Member(member_key(62)).act(g.id, 1)[0]
    body = encode_push(PeerPush((bad_signature(x),), ()))
    status, _ = await peer_post(http, a.url, PUSH, body, signed_headers(evil, a.node_id, PUSH, body))
    assert status == 200
    text = await get_text(http, a.url + "/metrics")
    assert metric(text, "coopnet_actions_rejected_total", code="bad_signature", source="push") == 1


async def test_flood_is_rate_limited(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    flooder = node_key(5)
    (a,) = cluster.add(1, rate_limit=5.0)  # 5 requests/s, bursts of 10
    cluster.federate(a, peers=(PeerAddress(f"http://127.0.0.1:{free_ports(1)[0]}", node_text(flooder.public_key)),))
    await cluster.start(a)
    body = empty_push()
    t0 = now_ms()
    statuses: list[int] = []
    for i in range(30):  # distinct timestamps: identical requests would be refused as replays
        status, doc = await peer_post(http, a.url, PUSH, body, signed_headers(flooder, a.node_id, PUSH, body, ts=t0 + i))
        statuses.append(status)
        if status != 200:
            assert status == 429 and doc["error"] == "rate_limited", (status, doc)
    elapsed_s = (now_ms() - t0) / 1000
    ok = statuses.count(200)
    assert 10 <= ok <= 10 + 5 * elapsed_s + 1, (ok, elapsed_s)
    assert statuses.count(429) == 30 - ok
    view = peer_view(a.running, flooder.public_key)
    # Each 429 says when to retry; the first burst of refusals (requests an honest sender may have
    # had in flight) is not an offence, every one after it is (10.7).
    assert view["offences"].keys() == {"rate_limited"} and 1 <= view["offences"]["rate_limited"] <= 30 - ok - 10, view
    text = await get_text(http, a.url + "/metrics")
    assert metric(text, "coopnet_gossip_requests_total", peer=node_text(flooder.public_key), outcome="rate_limited") == 30 - ok


# ---- 5. equivocation ---------------------------------------------------------------------------


async def equivocate(cluster: Cluster, http: aiohttp.ClientSession) -> tuple[list[Slot], bytes, Member, Action, Action]:
    """Three nodes; a member signs two different seq-4 actions, one posted to A and one to B.

    The nodes are cut apart (fault hook) while the two are posted, so both are accepted, each by
    its own node, whatever the timing; then the links are healed."""
    slots = cluster.add(3, fault_hooks=True)
    cluster.mesh()
    await cluster.start_all()
    g = await found_coop(http, slots, Member(member_key(1)), "Forked")
    m = Member(member_key(63))
    base = m.act(g.id, 3)
    await post(http, slots[0].url, base)
    await wait_converged([s.running for s in slots], [g.id], within=15)
    x, y = (
        sign_action(m.key, coop=g.id, seq=4, prev=base[-1].id, ts=1_700_000_000_004, kind="test.note", body={"fork": side})
        for side in ("x", "y")
    )
    await partition(http, [[s] for s in slots])
    (rx,), (ry,) = (await post(http, slots[0].url, [x]))["results"], (await post(http, slots[1].url, [y]))["results"]
    assert rx["status"] == ry["status"] == "accepted"
    await partition(http, [slots])
    return slots, g.id, m, x, y


async def test_equivocation_is_proven_everywhere_and_no_chain_is_corrupted(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Also a regression (found at db9ab98, fixed in 202dcd9): each node kept the fork it saw first,
    so after an equivocation the nodes' chains differed forever."""
    slots, coop, m, x, y = await equivocate(cluster, http)
    coop_text = format_id(IdKind.COOP, coop)

    async def proofs_everywhere() -> bool:
        ids = []
        for s in slots:
            status, doc = await get_json(http, f"{s.url}/api/v1/coops/{coop_text}/proofs")
            assert status == 200
            ids.append([p["id"] for p in doc["proofs"]])
        return all(len(i) == 1 and i == ids[0] for i in ids)

    await wait_until(proofs_everywhere, within=20, what="the equivocation proof on every node")
    _, doc = await get_json(http, f"{slots[0].url}/api/v1/coops/{coop_text}/proofs")
    (proof,) = doc["proofs"]
    assert proof["author"] == format_id(IdKind.MEMBER, m.id) and proof["seq"] == 4

    member_text = format_id(IdKind.MEMBER, m.id)
    for s in slots:
        _, chains = await get_json(http, f"{s.url}/api/v1/coops/{coop_text}/chains?author={member_text}")
        (chain,) = chains["chains"]
        assert chain["seq"] == 4 and chain["head"] in {format_id(IdKind.ACTION, x.id), format_id(IdKind.ACTION, y.id)}
        assert chain["pending"] == 0
        _, listing = await get_json(http, f"{s.url}/api/v1/coops/{coop_text}/actions?author={member_text}")
        listed = listing["actions"]
        assert [a["seq"] for a in listed] == [1, 2, 3, 4], f"{s.url}: a gap or a duplicate in the chain"
        assert all(b["prev"] == a["id"] for a, b in itertools.pairwise(listed)), f"{s.url}: a broken link"
        assert listed[-1]["id"] == chain["head"]
        counts = await s.running.store.counts()
        assert counts["proofs"] == 1 and counts["pending"] == 0

    # Every node keeps the same fork, the one with the smaller id (docs/OPERATIONS.md), whichever it
    # saw first; the node that had accepted the other one keeps it aside as "forked".
    nodes = [s.running for s in slots]
    await wait_converged(nodes, [coop], within=15, what="every node to keep the same fork")
    winner, loser = sorted((x, y), key=lambda a: a.id)
    for n in nodes:
        assert await n.store.head(coop, m.id) == (4, winner.id)
    had_loser = slots[0] if loser is x else slots[1]
    status, doc = await get_json(http, f"{had_loser.url}/api/v1/actions/{format_id(IdKind.ACTION, loser.id)}")
    assert status == 200 and doc["status"] == "forked", (status, doc)


# ---- 6. scope ----------------------------------------------------------------------------------


async def test_scope_limits_what_a_node_stores_and_accepts(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    fx, fy = Member(member_key(1)), Member(member_key(2))
    gx, gy = fx.found("In scope", 1), fy.found("Out of scope", 1)
    x_text = format_id(IdKind.COOP, gx.id)
    scoped, full1, full2 = cluster.add(3)
    cluster.mesh()
    cluster.federate(scoped, replicate=(x_text,))
    await cluster.start_all()
    acked(await post(http, full1.url, [gx, gy]))
    await wait_until(lambda: _has_coop([full2], gy.id), within=10, what="co-op Y's genesis on the second full replica")
    m = Member(member_key(64))
    acked(await post(http, full1.url, m.act(gx.id, 10)))
    acked(await post(http, full2.url, m.act(gy.id, 10)))
    await wait_converged([full1.running, full2.running], [gx.id, gy.id], within=15, what="the full replicas")
    await wait_converged([s.running for s in (scoped, full1, full2)], [gx.id], within=15, what="co-op X everywhere")
    await cluster.run_rounds()
    assert await scoped.running.store.get_coop(gy.id) is None
    assert (await scoped.running.store.counts())["actions"] == 11

    # A push of co-op Y, signed by a real federation member: refused action by action.
    f1_key = read_key_file(full1.config.key_path, "node")
    ys = [gy, *Member(member_key(90)).act(gy.id, 2)]
    body = encode_push(PeerPush(tuple(a.raw for a in ys), ()))
    status, reply = await peer_post(http, scoped.url, PUSH, body, signed_headers(f1_key, scoped.node_id, PUSH, body))
    assert status == 200 and counts_of(reply) == (0, 3), reply
    body = reconcile_body(gy.id)
    status, err = await peer_post(http, scoped.url, RECONCILE, body, signed_headers(f1_key, scoped.node_id, RECONCILE, body))
    assert status == 422 and err["error"] == "out_of_scope", (status, err)
    text = await get_text(http, scoped.url + "/metrics")
    assert (metric(text, "coopnet_actions_rejected_total", code="out_of_scope", source="push") or 0) >= 3
    assert await scoped.running.store.get_coop(gy.id) is None

    # The others know what it replicates (from its record) and keep Y among themselves.
    assert peer_view(full1.running, scoped.node_id)["replicates"] == [x_text]
    assert peer_view(scoped.running, full1.node_id)["replicates"] == "all"
    late = m.act(gy.id, 2)
    acked(await post(http, full2.url, late))
    await wait_converged([full1.running, full2.running], [gx.id, gy.id], within=15)
    assert await scoped.running.store.get_action(late[-1].id) is None


# ---- 7. observability --------------------------------------------------------------------------


async def quiet_cluster(cluster: Cluster, n: int) -> list[Slot]:
    """Nodes that serve peers but run no gossip loop of their own (``Gossip.stop``): every
    reconciliation and announce is made explicitly by the test, so each difference is made on purpose."""
    slots = cluster.add(n, fanout=0)
    cluster.mesh()
    await cluster.start_all()
    for s in slots:
        gossip = s.running.gossip
        # Stop right after a wake can hang (test_gossip_stops_right_after_a_wake): let the loop take it first.
        await wait_until(lambda g=gossip: _not_set(g.wake), within=10, what="the start-up wake to be consumed")
        await gossip.stop()  # the methods (sync_coop, announce) still work; the loops are gone

    async def all_reachable() -> bool:  # the start-up announce may have run before every node listened
        for s in slots:
            await s.running.gossip.announce()
        return all(s.running.book.reachable() == n - 1 for s in slots)

    await wait_until(all_reachable, within=10, what="every node to reach every other")
    return slots


async def test_peers_metrics_and_health_report_the_federation(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b, c = await quiet_cluster(cluster, 3)
    founder, m = Member(member_key(1)), Member(member_key(65))
    g = founder.found("Observed", 1)
    await post(http, a.url, [g, *m.act(g.id, 5)])
    # A reconciliation each way: b fetches 6 actions from a; a finds c lacks them all.
    fetched = await b.running.gossip.sync_coop(b.running.book.peers[a.node_id], g.id)
    assert fetched == 6
    await a.running.gossip.sync_coop(a.running.book.peers[c.node_id], g.id)

    status, doc = await get_json(http, b.url + "/api/v1/peers")
    assert status == 200
    views = {p["id"]: p for p in doc["peers"]}
    assert set(views) == {a.text_id, c.text_id}
    va = views[a.text_id]
    assert va["url"] == a.url and va["state"] == "ok" and va["failures"] == 0 and va["score"] == 0.0
    assert isinstance(va["last_success_ms"], int) and now_ms() - va["last_success_ms"] < 60_000
    assert va["ahead"] == 6 and va["behind"] == 0 and va["replicates"] == "all"
    _, doc = await get_json(http, a.url + "/api/v1/peers")
    vc = {p["id"]: p for p in doc["peers"]}[c.text_id]
    assert vc["behind"] == 6 and vc["ahead"] == 0

    # Something rejected, with its code.
    bad = bad_signature(m.act(g.id, 1)[0])
    async with http.post(
        a.url + "/api/v1/actions", data=msgpack.packb({"actions": [bad]}), headers={"Content-Type": "application/msgpack"}
    ) as r:
        assert r.status == 200
    text_a, text_b = await get_text(http, a.url + "/metrics"), await get_text(http, b.url + "/metrics")
    assert metric(text_a, "coopnet_actions_stored_total", source="client") == 6
    assert metric(text_b, "coopnet_actions_stored_total", source="fetch") == 6
    assert metric(text_a, "coopnet_actions_rejected_total", code="bad_signature", source="client") == 1
    assert (metric(text_b, "coopnet_gossip_requests_total", peer=a.text_id, direction="out", kind="fetch", outcome="ok") or 0) >= 1
    assert (metric(text_a, "coopnet_gossip_requests_total", peer=b.text_id, direction="in", kind="fetch", outcome="ok") or 0) >= 1
    assert (metric(text_b, "coopnet_gossip_bytes_total", peer=a.text_id, direction="in") or 0) > 6 * 100
    assert (metric(text_b, "coopnet_reconcile_rounds_total") or 0) >= 1
    assert metric(text_b, "coopnet_catchup_lag_actions") == 0

    # Health: every peer reachable; a stopped peer drops out after a failed request.
    for s in (a, b, c):
        status, health = await get_json(http, s.url + "/healthz")
        assert status == 200 and health["ok"] and health["peers_reachable"] == 2, (s.url, health)
    await cluster.stop(c)
    await a.running.gossip.announce()  # the announce round reaches every peer: c fails
    status, health = await get_json(http, a.url + "/healthz")
    assert status == 200 and health["peers_reachable"] == 1
    assert metric(await get_text(http, a.url + "/metrics"), "coopnet_peers_reachable") == 1
    vc = peer_view(a.running, c.node_id)
    assert vc["failures"] == 1 and vc["state"] in ("backoff", "retrying") and vc["last_error"]


async def test_ahead_and_progress_count_exactly_what_is_missing(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Regression (found at db9ab98, fixed in 441b412): ``ahead`` and the catch-up total counted the
    one-action overlap of each partly held chain as missing; ``behind`` was exact."""
    a, b = await quiet_cluster(cluster, 2)
    founder, m = Member(member_key(1)), Member(member_key(66))
    g = founder.found("Counted", 1)
    await post(http, a.url, [g, *m.act(g.id, 3)])
    await b.running.gossip.sync_coop(b.running.book.peers[a.node_id], g.id)
    await post(http, a.url, m.act(g.id, 5))  # b now lacks exactly 5 actions
    await a.running.gossip.sync_coop(a.running.book.peers[b.node_id], g.id)
    assert peer_view(a.running, b.node_id)["behind"] == 5  # exact
    watch = CommitWatch(b.running)
    await b.running.gossip.sync_coop(b.running.book.peers[a.node_id], g.id)
    assert watch.samples and watch.samples[0][1] == 5, watch.samples
    assert peer_view(b.running, a.node_id)["ahead"] == 5


# ---- 8. dead and slow peers --------------------------------------------------------------------


async def test_dead_peer_never_blocks_the_others(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    slots = cluster.add(4)
    cluster.mesh()
    await cluster.start_all()
    g = await found_coop(http, slots, Member(member_key(1)), "Resilient")
    dead = slots[3]
    await cluster.stop(dead)
    live = slots[:3]
    m1, m2 = Member(member_key(67)), Member(member_key(68))
    t0 = time.monotonic()
    await post(http, live[0].url, m1.act(g.id, 20))
    for _ in range(5):
        await post(http, live[1].url, m2.act(g.id, 1), single=True)
    await wait_converged([s.running for s in live], [g.id], within=10, what="the live nodes to converge without the dead one")
    assert time.monotonic() - t0 < 10

    async def settled() -> bool:  # the dead node backed off from; the live ones all "ok" with each other
        return all(peer_view(s.running, dead.node_id)["state"] == "backoff" for s in live) and all(
            peer_view(s.running, o.node_id)["state"] == "ok" for s in live for o in live if o is not s
        )

    await wait_until(settled, within=10, what="every live node to back off from the dead one only")
    for s in live:
        v = peer_view(s.running, dead.node_id)
        assert v["failures"] > 0 and v["last_error"], v
        status, health = await get_json(http, s.url + "/healthz")
        assert status == 200 and health["peers_reachable"] == 2, health


async def test_hung_peer_does_not_delay_pushes_to_the_others(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Regression (found at db9ab98, fixed in 441b412): the pusher awaited a whole batch's sends, so a
    peer that accepts connections and never answers held every later push back for request_timeout."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        hung = node_key(6)
        hung_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        # Push is the only way actions travel here (anti-entropy is 10 minutes away); fanout covers all peers.
        slots = cluster.add(3, anti_entropy_interval=600.0, request_timeout=3.0)
        cluster.mesh(extra=[PeerAddress(hung_url, node_text(hung.public_key))])
        await cluster.start_all()
        a, b, c = slots

        async def hung_ready_again() -> bool:  # the start-up announce to it timed out, and every backoff is over
            views = a.running.book.view()
            return peer_view(a.running, hung.public_key)["failures"] >= 1 and all(v["state"] in ("ok", "retrying") for v in views)

        await wait_until(hung_ready_again, within=10, what="the hung peer to be due for a retry")
        g = Member(member_key(1)).found("Slow neighbour", 1)
        await post(http, a.url, [g])  # pushed to b, c and the hung peer together
        await wait_until(lambda: _has_coop([b, c], g.id), within=5, what="the genesis on b and c")
        later = Member(member_key(69)).act(g.id, 1)
        t0 = time.monotonic()
        await post(http, a.url, later)
        # Well under request_timeout (3 s): the push to the hung peer is still pending meanwhile.
        await wait_until(lambda: _has_action([b, c], later[0]), within=1.5, what="an action pushed while the hung peer holds a push")
        assert time.monotonic() - t0 < 1.5
    finally:
        for w in held:
            w.close()
        server.close()


async def test_the_push_queue_is_bounded_and_drains(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits queue their actions for the pusher up to PUSH_QUEUE_MAX; beyond that they are left
    to anti-entropy. What the pusher takes leaves room for later commits."""
    monkeypatch.setattr(gossip_module, "PUSH_QUEUE_MAX", 5)
    a, _b = cluster.add(2, anti_entropy_interval=600.0)
    cluster.mesh()
    node = await cluster.start(a)
    pusher = next(t for t in node.gossip._tasks if t.get_coro().__qualname__ == "Gossip._pusher")  # type: ignore[union-attr]
    pusher.cancel()  # nothing drains the queue meanwhile
    with contextlib.suppress(asyncio.CancelledError):
        await pusher
    g = Member(member_key(1)).found("Queue", 1)
    acts = Member(member_key(2)).act(g.id, 7)
    node.gossip.on_commit(Committed([(x, None) for x in acts[:3]], []))
    node.gossip.on_commit(Committed([(x, None) for x in acts[3:]], []))  # 4 more: only 2 fit
    assert node.gossip._push_queued == 5
    queued = [node.gossip._push_queue.get_nowait() for _ in range(node.gossip._push_queue.qsize())]
    assert [[item[1] for item in q] for q in queued] == [[x.raw for x in acts[:3]], [x.raw for x in acts[3:5]]]
    for q in queued:
        node.gossip._push_queue.put_nowait(q)

    # A pusher running again takes everything (b is not running: the sends fail, anti-entropy
    # would deliver) and the queue has room again.
    node.gossip._tasks.append(asyncio.create_task(node.gossip._pusher()))

    async def drained() -> bool:
        return node.gossip._push_queued == 0

    await wait_until(drained, within=5, what="the pusher to take the queue")
    node.gossip.on_commit(Committed([(acts[5], None)], []))
    assert node.gossip._push_queued in (0, 1)


async def test_gossip_stops_right_after_a_wake(cluster: Cluster) -> None:
    (a,) = cluster.add(1)
    node = await cluster.start(a)
    node.gossip.wake.set()  # what a learning announce, or a test, does
    await asyncio.sleep(0)  # the anti-entropy loop's wait completes...
    t0 = time.monotonic()
    await asyncio.wait_for(node.gossip.stop(), 2.0)  # ...and the cancel arrives now; 3.11's wait_for drops it
    assert time.monotonic() - t0 < 1.0, "Gossip.stop() did not return by itself (wait_for cut it after 2 s)"


async def _has_action(slots: Sequence[Slot], a: Action) -> bool:
    return all([await s.running.store.get_action(a.id) is not None for s in slots])


# ---- heterogeneous limits ----------------------------------------------------------------------


async def test_push_respects_the_receivers_batch_limit(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Regression (found at db9ab98, fixed in 561a927): pushes of up to 500 actions ignored the
    receiver's max_batch_actions; the receiver answered 400 too_large and penalised the honest sender."""
    a, b = cluster.add(2, limits={"max_batch_actions": 64})  # the limit tests/conftest.py uses
    cluster.mesh()
    await cluster.start_all()
    g = await found_coop(http, [a, b], Member(member_key(1)), "Bursty")
    await wait_until(lambda: _state_is(a, b, "ok"), within=10, what="a to be pushing to b")
    # Two chains held pending above a gap, then both gaps closed in one submission: one commit
    # appends 128 actions, all pushed to b at once. Every client request stayed within 64 actions.
    m1, m2 = Member(member_key(80)), Member(member_key(81))
    c1, c2 = m1.act(g.id, 64), m2.act(g.id, 64)
    await post(http, a.url, c1[1:])
    await post(http, a.url, c2[1:])
    assert (await a.running.store.counts())["pending"] == 126
    await post(http, a.url, [c1[0], c2[0]])
    await wait_converged([a.running, b.running], [g.id], within=15)
    assert peer_view(b.running, a.node_id)["offences"] == {}


async def _state_is(slot: Slot, peer: Slot, state: str) -> bool:
    return bool(peer_view(slot.running, peer.node_id)["state"] == state)


async def test_catch_up_from_a_peer_with_a_larger_batch_limit(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Regression (found at db9ab98, fixed in 561a927): fetch replies were cut at the responder's
    max_batch_actions and refused by a requester with a lower one, which then refused the honest peer."""
    (a,) = cluster.add(1)
    (b,) = cluster.add(1, limits={"max_batch_actions": 64})
    cluster.mesh()
    await cluster.start(a)
    g = await found_coop(http, [a], Member(member_key(1)), "Big replies")
    await post(http, a.url, Member(member_key(2)).act(g.id, 150))  # ~47 KiB: one read, not truncated
    await cluster.start(b)
    await wait_converged([a.running, b.running], [g.id], within=4, what="the node with the lower limit to catch up")
    assert peer_view(b.running, a.node_id)["offences"] == {}
