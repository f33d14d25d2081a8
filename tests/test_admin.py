"""The admin API (node/admin.py) on real nodes: its own loopback listener, the bearer token kept
0600 in the data directory, peers blocked in both directions (persisted across restarts), the
pending area listed with reasons and purged, every change logged at WARNING, and the data
directory's lock. Real aiohttp servers on 127.0.0.1, real SQLite files in tmp_path."""

from __future__ import annotations

import dataclasses
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.admin import ADMIN_PREFIX, ADMIN_URL_FILE, TOKEN_FILE, AdminApi, AdminTokenError, ensure_token, read_token
from node.config import Admin
from node.keyfile import read_key_file
from node.node import Node, init_data_dir
from node.ops import DataDirBusy
from protocol.ids import IdKind, format_id
from tests.conftest import TEST_LIMITS, NodeFactory, make_chain, make_genesis, member_key
from tests.fed_helpers import Cluster, Member, metric, node_text, peer_post, post, signed_headers, wait_converged, wait_until

COOP_G = make_genesis(member_key(1), name="Admin Co-op")
COOP = COOP_G.id
COOP_TEXT = format_id(IdKind.COOP, COOP)


class Admin_:
    """Requests to one node's admin API, with its token (or another one)."""

    def __init__(self, http: aiohttp.ClientSession, node: Node) -> None:
        assert node.admin_url is not None
        self.http = http
        self.url = node.admin_url
        self.token = read_token(node.config.data_dir)

    async def call(
        self, method: str, path: str, *, json: Any = None, token: str | None = "", params: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, Any]:
        h = dict(headers)
        if token is not None:
            h.setdefault("Authorization", f"Bearer {token or self.token}")
        async with self.http.request(method, self.url + path, json=json, headers=h, params=params) as r:
            assert r.content_type == "application/json", (r.status, await r.text())
            return r.status, await r.json()

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        status, doc = await self.call(method, path, **kw)
        assert status == 200, (status, doc)
        return doc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    await c.close()


# ---- the listener and the token ---------------------------------------------------------------------


def test_init_writes_a_0600_token(tmp_path: Path) -> None:
    cfg = init_data_dir(tmp_path / "d", port=0)
    path = cfg.data_dir / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_token(cfg.data_dir)) >= 32
    assert ensure_token(cfg.data_dir) == read_token(cfg.data_dir)  # never replaced


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_token_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    ensure_token(tmp_path)
    (tmp_path / TOKEN_FILE).chmod(mode)
    with pytest.raises(AdminTokenError, match="readable by others"):
        read_token(tmp_path)


async def test_admin_api_listens_apart_on_loopback_with_its_address_in_a_file(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    assert node.admin_url is not None and node.admin_url.startswith("http://127.0.0.1:")
    assert node.admin_url != node.url
    assert (node.config.data_dir / ADMIN_URL_FILE).read_text().strip() == node.admin_url
    admin = Admin_(http, node)
    doc = await admin.ok("GET", f"{ADMIN_PREFIX}/peers")
    assert doc == {"peers": [], "blocked": []}
    # The public listener knows nothing of the admin routes, even with the token.
    async with http.get(node.url + f"{ADMIN_PREFIX}/peers", headers={"Authorization": f"Bearer {admin.token}"}) as r:
        assert r.status == 404
    index = await admin.ok("GET", ADMIN_PREFIX)
    assert {"method": "POST", "path": f"{ADMIN_PREFIX}/peers/block"} in index["routes"]
    await node.stop()
    assert not (node.config.data_dir / ADMIN_URL_FILE).exists()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token-wrong-token-0000"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "bearer "},
    ],
)
async def test_every_request_needs_the_token(start_node: NodeFactory, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    node = await start_node()
    admin = Admin_(http, node)
    for method, path in (("GET", f"{ADMIN_PREFIX}/peers"), ("POST", f"{ADMIN_PREFIX}/peers/block"), ("GET", "/nothing/here")):
        status, doc = await admin.call(method, path, token=None, json={"id": "x"}, **headers)
        assert (status, doc["error"]) == (401, "unauthorized"), (method, path)
    status, doc = await admin.call("GET", "/nothing/here")
    assert (status, doc["error"]) == (404, "not_found")


async def test_a_missing_token_is_made_at_start_and_an_empty_listen_disables_the_api(start_node: NodeFactory, tmp_path: Path) -> None:
    cfg = init_data_dir(tmp_path / "d", port=0)
    (cfg.data_dir / TOKEN_FILE).unlink()
    node = await Node.start(dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS)))
    try:
        assert stat.S_IMODE((cfg.data_dir / TOKEN_FILE).stat().st_mode) == 0o600
    finally:
        await node.stop()
    node = await Node.start(dataclasses.replace(cfg, admin=Admin(""), limits=dataclasses.replace(cfg.limits, **TEST_LIMITS)))
    try:
        assert node.admin_url is None and not (cfg.data_dir / ADMIN_URL_FILE).exists()
    finally:
        await node.stop()


async def test_more_endpoints_plug_in_with_one_call(http: aiohttp.ClientSession) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.match_info["who"]})

    with pytest.raises(ValueError, match="never served without a token"):
        AdminApi("").app()
    api = AdminApi("t" * 40)
    api.add_routes([web.get(f"{ADMIN_PREFIX}/hello/{{who}}", hello)])
    with pytest.raises(ValueError, match="under /api/v1/admin"):
        api.add_routes([web.get("/api/v1/hello", hello)])
    runner = web.AppRunner(api.app())
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        headers = {"Authorization": "Bearer " + "t" * 40}
        async with http.get(f"http://{host}:{port}{ADMIN_PREFIX}/hello/you", headers=headers) as r:
            assert (r.status, await r.json()) == (200, {"hello": "you"})
        async with http.get(f"http://{host}:{port}{ADMIN_PREFIX}", headers=headers) as r:
            assert (await r.json())["routes"] == [{"method": "GET", "path": f"{ADMIN_PREFIX}/hello/{{who}}"}]
    finally:
        await runner.cleanup()


async def test_a_data_dir_runs_one_node_at_a_time(tmp_path: Path) -> None:
    cfg = init_data_dir(tmp_path / "d", port=0)
    cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS))
    first = await Node.start(cfg)
    try:
        with pytest.raises(DataDirBusy, match="in use by coopnet run"):
            await Node.start(cfg)
        assert first.store is not None and (await first.store.counts())["actions"] == 0  # the first one is untouched
    finally:
        await first.stop()
    again = await Node.start(cfg)  # released at stop
    await again.stop()


# ---- peers: block and unblock -------------------------------------------------------------------------


async def test_a_blocked_peer_is_refused_both_ways_until_unblocked_even_across_a_restart(
    cluster: Cluster, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = cluster.add(3)
    cluster.mesh()
    await cluster.start_all()
    founder = Member(member_key(1))
    genesis = founder.found("Blocked Co-op", ts=1_700_000_000_000)
    await post(http, a.url, [genesis], single=True)
    await wait_converged([s.running for s in (a, b, c)], [genesis.id], within=20)

    caplog.set_level(logging.WARNING, logger="coopnet.admin")
    admin = Admin_(http, a.running)
    doc = await admin.ok("POST", f"{ADMIN_PREFIX}/peers/block", json={"id": b.text_id, "reason": "sends junk"})
    assert doc == {"id": b.text_id, "blocked": True, "changed": True}
    assert (await admin.ok("POST", f"{ADMIN_PREFIX}/peers/block", json={"id": b.text_id}))["changed"] is False
    [record] = [r for r in caplog.records if getattr(r, "admin_action", None) == "peers.block"]
    assert record.levelno == logging.WARNING and b.text_id in record.getMessage() and "sends junk" in record.getMessage()
    assert record.node == b.text_id  # type: ignore[attr-defined]

    listing = await admin.ok("GET", f"{ADMIN_PREFIX}/peers")
    assert [x["id"] for x in listing["blocked"]] == [b.text_id] and listing["blocked"][0]["reason"] == "sends junk"
    assert b.text_id not in {p["id"] for p in listing["peers"]}

    # Inbound: B's signed requests are refused.
    b_key = read_key_file(b.config.key_path, "node")
    status, body = await peer_post(http, a.url, "/peer/v1/coops", b"", signed_headers(b_key, a.node_id, "/peer/v1/coops", b""))
    assert status == 403 and isinstance(body, dict) and body["error"] == "refused"

    # Outbound: A keeps reconciling (with C) and never calls B.
    async def rounds() -> float:
        async with http.get(a.url + "/metrics") as r:
            return metric(await r.text(), "coopnet_reconcile_rounds_total") or 0.0

    async def calls_to_b() -> float:
        async with http.get(a.url + "/metrics") as r:
            return metric(await r.text(), "coopnet_gossip_requests_total", peer=b.text_id, direction="out") or 0.0

    async def rounds_past(n: float) -> bool:
        a.running.gossip.wake.set()
        return await rounds() >= n

    await wait_until(lambda: rounds_past(0), within=10, what="a round")
    settled = await rounds()
    await wait_until(lambda: rounds_past(settled + 2), within=20, what="A's rounds after the block")  # in-flight calls end
    before = await calls_to_b()
    mark = await rounds()
    await wait_until(lambda: rounds_past(mark + 6), within=30, what="six more rounds on A")
    assert await calls_to_b() == before

    # The block survives a restart of A.
    await cluster.stop(a)
    await cluster.start(a)
    admin = Admin_(http, a.running)
    assert [x["id"] for x in (await admin.ok("GET", f"{ADMIN_PREFIX}/peers"))["blocked"]] == [b.text_id]
    status, body = await peer_post(http, a.url, "/peer/v1/coops", b"", signed_headers(b_key, a.node_id, "/peer/v1/coops", b""))
    assert status == 403

    # Unblocked: B is a configured peer again and the three converge.
    doc = await admin.ok("POST", f"{ADMIN_PREFIX}/peers/unblock", json={"id": b.text_id})
    assert doc == {"id": b.text_id, "blocked": False, "changed": True}
    assert any(getattr(r, "admin_action", None) == "peers.unblock" for r in caplog.records)
    assert b.text_id in {p["id"] for p in (await admin.ok("GET", f"{ADMIN_PREFIX}/peers"))["peers"]}
    late = founder.act(genesis.id, 1, tag="after the unblock")
    await post(http, b.url, late)
    await wait_converged([s.running for s in (a, b, c)], [genesis.id], within=30)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "bad_id"),
        ({"id": "node_nope"}, "bad_id"),
        ({"id": "mem_" + "a" * 52}, "bad_id"),
        ({"id": 7}, "bad_id"),
        ({"id": "node_" + "a" * 52, "reason": 5}, "bad_request"),
        ({"id": "node_" + "a" * 52, "reason": "x" * 501}, "bad_request"),
    ],
)
async def test_bad_block_requests_change_nothing(start_node: NodeFactory, http: aiohttp.ClientSession, body: Any, code: str) -> None:
    node = await start_node()
    admin = Admin_(http, node)
    status, doc = await admin.call("POST", f"{ADMIN_PREFIX}/peers/block", json=body)
    assert (status, doc["error"]) == (400, code), doc
    assert (await admin.ok("GET", f"{ADMIN_PREFIX}/peers"))["blocked"] == []


async def test_a_node_cannot_block_itself_and_bodies_must_be_json_objects(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    admin = Admin_(http, node)
    status, doc = await admin.call("POST", f"{ADMIN_PREFIX}/peers/block", json={"id": node_text(node.node_id)})
    assert (status, doc["error"]) == (400, "bad_request")
    status, doc = await admin.call("POST", f"{ADMIN_PREFIX}/peers/block", json=[1])
    assert (status, doc["error"]) == (400, "bad_request")
    async with http.post(
        admin.url + f"{ADMIN_PREFIX}/peers/block",
        data=b"{nope",
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    ) as r:
        assert (r.status, (await r.json())["error"]) == (400, "malformed")
    async with http.post(
        admin.url + f"{ADMIN_PREFIX}/peers/block", data=b"x" * (300 * 1024), headers={"Authorization": f"Bearer {admin.token}"}
    ) as r:
        assert r.status in (413, 415)
    assert (await admin.ok("GET", f"{ADMIN_PREFIX}/peers"))["blocked"] == []


# ---- pending: list and purge ----------------------------------------------------------------------------


async def test_pending_is_listed_with_reasons_and_age_and_purged_by_id_coop_or_author(
    start_node: NodeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    node = await start_node()
    admin = Admin_(http, node)
    alice = make_chain(member_key(2), COOP, 4)
    bob = make_chain(member_key(3), COOP, 3)
    other = make_genesis(member_key(4), name="Other")
    carol = make_chain(member_key(5), other.id, 2)
    await post(http, node.url, [COOP_G, other, alice[2], alice[3], bob[2], carol[1]])

    doc = await admin.ok("GET", f"{ADMIN_PREFIX}/pending")
    assert doc["total"] == 4 and doc["max_pending"] == node.store.max_pending
    rows = {r["id"]: r for r in doc["pending"]}
    alice_text = format_id(IdKind.MEMBER, member_key(2).public_key)
    row = rows[format_id(IdKind.ACTION, alice[2].id)]
    assert row | {"age_s": 0, "received_at_ms": 0, "expires_at_ms": 0, "expires_in_s": 0} == {
        "id": format_id(IdKind.ACTION, alice[2].id),
        "coop": COOP_TEXT,
        "author": alice_text,
        "seq": 3,
        "received_at_ms": 0,
        "age_s": 0,
        "expires_at_ms": 0,
        "expires_in_s": 0,
        "reason": "waiting for seq 1",
    }
    # Each entry says when expire() drops it: pending_seconds after it came.
    ttl = node.config.limits.pending_seconds
    assert doc["pending_seconds"] == ttl > 0
    assert all(r["age_s"] >= 0 and r["received_at_ms"] > 0 for r in doc["pending"])
    assert all(r["expires_at_ms"] == r["received_at_ms"] + ttl * 1000 for r in doc["pending"])
    assert all(ttl - 60 <= r["expires_in_s"] <= ttl for r in doc["pending"])
    only_other = await admin.ok("GET", f"{ADMIN_PREFIX}/pending", params={"coop": format_id(IdKind.COOP, other.id)})
    assert [r["seq"] for r in only_other["pending"]] == [2]
    assert len((await admin.ok("GET", f"{ADMIN_PREFIX}/pending", params={"limit": "1"}))["pending"]) == 1

    caplog.set_level(logging.WARNING, logger="coopnet.admin")
    assert (await admin.ok("POST", f"{ADMIN_PREFIX}/pending/purge", json={"ids": [format_id(IdKind.ACTION, alice[3].id)]})) == {"purged": 1}
    assert (await admin.ok("POST", f"{ADMIN_PREFIX}/pending/purge", json={"coop": format_id(IdKind.COOP, other.id)})) == {"purged": 1}
    assert (await admin.ok("POST", f"{ADMIN_PREFIX}/pending/purge", json={"author": alice_text, "coop": COOP_TEXT})) == {"purged": 1}
    left = await admin.ok("GET", f"{ADMIN_PREFIX}/pending")
    assert [r["id"] for r in left["pending"]] == [format_id(IdKind.ACTION, bob[2].id)] and left["total"] == 1
    purges = [r for r in caplog.records if getattr(r, "admin_action", None) == "pending.purge"]
    assert len(purges) == 3 and all(r.levelno == logging.WARNING and "purged 1 pending" in r.getMessage() for r in purges)
    # Bob's chain still fills normally.
    await post(http, node.url, bob[:2])
    assert (await admin.ok("GET", f"{ADMIN_PREFIX}/pending"))["total"] == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "bad_request"),
        ({"ids": []}, "bad_request"),
        ({"ids": "act_x"}, "bad_request"),
        ({"ids": ["act_x"]}, "bad_id"),
        ({"ids": ["act_" + "a" * 52] * 2001}, "bad_request"),
        ({"coop": "mem_" + "a" * 52}, "bad_id"),
        ({"author": None}, "bad_id"),
        ({"everything": True}, "bad_request"),
    ],
)
async def test_bad_purges_change_nothing(start_node: NodeFactory, http: aiohttp.ClientSession, body: Any, code: str) -> None:
    node = await start_node()
    admin = Admin_(http, node)
    alice = make_chain(member_key(2), COOP, 3)
    await post(http, node.url, [COOP_G, alice[2]])
    status, doc = await admin.call("POST", f"{ADMIN_PREFIX}/pending/purge", json=body)
    assert (status, doc["error"]) == (400, code), doc
    assert (await admin.ok("GET", f"{ADMIN_PREFIX}/pending"))["total"] == 1


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "10001"}, {"limit": "9" * 50}, {"coop": "coop_x"}, {"author": "node_x"}])
async def test_bad_pending_queries_are_400(start_node: NodeFactory, http: aiohttp.ClientSession, query: dict[str, str]) -> None:
    node = await start_node()
    status, doc = await Admin_(http, node).call("GET", f"{ADMIN_PREFIX}/pending", params=query)
    assert status == 400 and doc["error"] in ("bad_request", "bad_id")
