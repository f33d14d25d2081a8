"""The admin API's admission endpoints (node/admission_admin.py) against real nodes: the
quarantine listed with reasons and expiry and purged, authors blocked and unblocked (at once, and
across a restart, from clients and from peers), usage against the quotas, the token on every
route, and bad requests refused with nothing changed. In-process nodes (real aiohttp on 127.0.0.1,
SQLite in tmp_path); the ``coopnet admin`` commands run against one real ``coopnet run`` process."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.admin import ADMIN_PREFIX
from node.config import Federation
from node.node import Node, init_data_dir
from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission
from tests.conftest import OPEN_ADMISSION, TEST_LIMITS, NodeFactory
from tests.fed_helpers import Cluster, assert_honest_peers_unpunished, get_text, metric, wait_converged, wait_until
from tests.test_admin import Admin_
from tests.test_cli import Cli, clean_env
from tests.test_crash import NodeProcess, free_port
from tests.test_ops_cli import acli

TS = 1_700_000_000_000
MSGPACK = "application/msgpack"
HOLD = dataclasses.replace(OPEN_ADMISSION, unknown_authors="hold")  # the quarantine on, no rate limits
A = ADMIN_PREFIX


class Signer:
    """A key that signs the next action of its chain in each co-op."""

    def __init__(self, label: str) -> None:
        self.key = SigningKey(hashlib.sha256(f"coopnet-test-admin-admission:{label}".encode()).digest())
        self.heads: dict[bytes, Action] = {}

    @property
    def id(self) -> bytes:
        return self.key.public_key

    @property
    def text(self) -> str:
        return format_id(IdKind.MEMBER, self.id)

    def found(self, name: str, **body: Any) -> Action:
        g = sign_genesis(self.key, ts=TS, body={"name": name, **body})
        self.heads[g.id] = g
        return g

    def apply(self, coop: bytes) -> Action:
        return self.act(coop, kind="member.apply", body={"note": "let me in"})

    def act(self, coop: bytes, *, kind: str = "offer.produce", body: Any = None, seq: int | None = None) -> Action:
        """The next action of this chain (``seq``: skip ahead, leaving a gap: it will be pending)."""
        prev = self.heads.get(coop)
        n = seq if seq is not None else (prev.seq + 1 if prev is not None else 1)
        a = sign_action(
            self.key,
            coop=coop,
            seq=n,
            prev=prev.id if prev is not None and seq is None else (b"\x07" * 32 if n > 1 else None),
            ts=TS + n,
            kind=kind,
            body={"seq": n} if body is None else body,
        )
        if seq is None:
            self.heads[coop] = a
        return a


def act_text(a: Action) -> str:
    return format_id(IdKind.ACTION, a.id)


def coop_text(c: bytes) -> str:
    return format_id(IdKind.COOP, c)


async def submit(http: aiohttp.ClientSession, url: str, actions: list[Action]) -> tuple[int, Any]:
    body = encode_submission([a.raw for a in actions], single=len(actions) == 1)
    async with http.post(url + "/api/v1/actions", data=body, headers={"Content-Type": MSGPACK, "Accept": "application/json"}) as r:
        return r.status, await r.json()


async def statuses(http: aiohttp.ClientSession, url: str, actions: list[Action]) -> list[str]:
    status, doc = await submit(http, url, actions)
    assert status in (200, 202), (status, doc)  # 202: one action, held
    return [r["status"] for r in doc["results"]]


def audits(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "admin_action", None) == action]


# ---- the quarantine ------------------------------------------------------------------------------


async def test_a_strangers_held_actions_are_listed_with_reason_and_expiry_then_purged(
    start_node: NodeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    node = await start_node(admission=HOLD)
    admin = Admin_(http, node)
    founder, founder2 = Signer("founder"), Signer("founder-2")
    g1, g2 = founder.found("Valley"), founder2.found("Hill")
    assert await statuses(http, node.url, [g1, g2]) == ["accepted", "accepted"]
    s1, s2, s3 = Signer("stranger-1"), Signer("stranger-2"), Signer("stranger-3")
    s1_first, s1_second = s1.act(g1.id), s1.act(g1.id)
    s2_first, s3_first = s2.act(g1.id), s3.act(g2.id, kind="ride.offer")
    assert await statuses(http, node.url, [s1_first, s1_second, s2_first, s3_first]) == ["held"] * 4

    doc = await admin.ok("GET", f"{A}/held")
    quarantine_s = HOLD.quarantine_seconds
    assert doc["total"] == 4 and doc["hold_unknown"] is True
    assert (doc["max_quarantine"], doc["quarantine_per_coop"], doc["quarantine_seconds"]) == (
        HOLD.max_quarantine,
        HOLD.quarantine_per_coop,
        quarantine_s,
    )
    rows = {r["id"]: r for r in doc["held"]}
    assert set(rows) == {act_text(a) for a in (s1_first, s1_second, s2_first, s3_first)}
    row = rows[act_text(s3_first)]
    assert row | {"received_at_ms": 0, "age_s": 0, "expires_at_ms": 0, "expires_in_s": 0} == {
        "id": act_text(s3_first),
        "coop": coop_text(g2.id),
        "author": s3.text,
        "seq": 1,
        "kind": "ride.offer",
        "size": len(s3_first.raw),
        "received_at_ms": 0,
        "age_s": 0,
        "expires_at_ms": 0,
        "expires_in_s": 0,
        "reason": row["reason"],
    }
    for r in doc["held"]:
        assert r["reason"].startswith("unknown author: waiting for their application (member.apply)")
        assert r["expires_at_ms"] == r["received_at_ms"] + quarantine_s * 1000
        assert quarantine_s - 60 <= r["expires_in_s"] <= quarantine_s and r["age_s"] <= 60
    # The client API says the same of one action: held, not stored.
    async with http.get(node.url + f"/api/v1/actions/{act_text(s3_first)}") as r:
        assert (r.status, (await r.json())["status"]) == (200, "held")

    # Filters and the page size.
    by_coop = await admin.ok("GET", f"{A}/held", params={"coop": coop_text(g2.id)})
    assert [r["id"] for r in by_coop["held"]] == [act_text(s3_first)] and by_coop["total"] == 4
    by_author = await admin.ok("GET", f"{A}/held", params={"author": s1.text})
    assert [r["seq"] for r in by_author["held"]] == [1, 2]
    both = await admin.ok("GET", f"{A}/held", params={"author": s2.text, "coop": coop_text(g1.id)})
    assert [r["id"] for r in both["held"]] == [act_text(s2_first)]
    assert len((await admin.ok("GET", f"{A}/held", params={"limit": "1"}))["held"]) == 1

    # No purge of everything by accident, and nothing changes on a refusal.
    for body in ({}, {"coopp": coop_text(g1.id)}):
        status, err = await admin.call("POST", f"{A}/held/purge", json=body)
        assert (status, err["error"]) == (400, "bad_request"), err
    assert node.store.usage().held == 4

    caplog.set_level(logging.WARNING, logger="coopnet.admin")
    # An id outside the scope named beside it is not purged.
    assert await admin.ok("POST", f"{A}/held/purge", json={"ids": [act_text(s2_first)], "coop": coop_text(g2.id)}) == {"purged": 0}
    assert await admin.ok("POST", f"{A}/held/purge", json={"author": s1.text, "coop": coop_text(g1.id)}) == {"purged": 2}
    assert await admin.ok("POST", f"{A}/held/purge", json={"ids": [act_text(s2_first)]}) == {"purged": 1}
    assert node.store.usage().held_by_coop == {g2.id: 1}
    assert await admin.ok("POST", f"{A}/held/purge", json={"coop": coop_text(g2.id)}) == {"purged": 1}
    assert await admin.ok("POST", f"{A}/held/purge", json={"coop": coop_text(g2.id)}) == {"purged": 0}

    after = await admin.ok("GET", f"{A}/held")
    assert after["held"] == [] and after["total"] == 0 and node.store.usage().held == 0
    async with http.get(node.url + f"/api/v1/actions/{act_text(s3_first)}") as r:
        assert r.status == 404
    purges = audits(caplog, "held.purge")
    assert [r.getMessage().split(" (")[0] for r in purges] == [
        "admin held.purge: purged 2 held actions",
        *["admin held.purge: purged 1 held actions"] * 2,
    ]
    assert all(r.levelno == logging.WARNING for r in purges) and purges[0].author == s1.text  # type: ignore[attr-defined]
    # The stranger is not barred: their application is taken as before.
    assert await statuses(http, node.url, [Signer("stranger-1").apply(g1.id)]) == ["accepted"]


# ---- blocked authors -----------------------------------------------------------------------------


async def test_a_blocked_author_is_refused_at_once_still_after_a_restart_and_taken_again_once_unblocked(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = init_data_dir(tmp_path / "n", port=0)
    cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS), admission=HOLD)
    founder, other_founder = Signer("founder"), Signer("founder-2")
    alice, bob, troll = Signer("alice"), Signer("bob"), Signer("troll")
    g, g2 = founder.found("Valley"), other_founder.found("Hill")
    caplog.set_level(logging.WARNING, logger="coopnet.admin")

    node = await Node.start(cfg)
    try:
        admin = Admin_(http, node)
        assert await statuses(http, node.url, [g, g2, alice.apply(g.id), bob.apply(g.id), alice.act(g.id)]) == ["accepted"] * 5
        gap = alice.act(g.id, seq=5)  # seq 3 and 4 are missing: pending
        assert await statuses(http, node.url, [gap, troll.act(g.id, seq=1)]) == ["pending", "held"]
        assert await statuses(http, node.url, [alice.apply(g2.id)]) == ["accepted"]

        doc = await admin.ok("POST", f"{A}/authors/block", json={"author": alice.text, "reason": "spam"})
        assert doc == {
            "author": alice.text,
            "coop": None,
            "reason": "spam",
            "blocked": True,
            "changed": True,
            "dropped": {"held": 0, "pending": 1},
        }
        doc = await admin.ok("POST", f"{A}/authors/block", json={"author": troll.text, "coop": coop_text(g.id)})
        assert doc["changed"] is True and doc["dropped"] == {"held": 1, "pending": 0} and doc["reason"] == "blocked by the operator"
        assert node.store.usage().held == 0 and node.store.usage().pending == 0

        # At once, from the next submission on, in every co-op: 403 blocked, nothing stored.
        refused = alice.act(g.id)
        status, err = await submit(http, node.url, [refused])
        assert (status, err["error"]) == (403, "blocked"), err
        status, err = await submit(http, node.url, [alice.act(g2.id)])
        assert (status, err["error"]) == (403, "blocked")
        assert await statuses(http, node.url, [bob.act(g.id)]) == ["accepted"]  # others go on
        # A block in one co-op is that co-op's only.
        troll_applies = troll.apply(g.id)
        status, err = await submit(http, node.url, [troll_applies])
        assert (status, err["error"]) == (403, "blocked")
        assert await statuses(http, node.url, [troll.apply(g2.id)]) == ["accepted"]

        listed = (await admin.ok("GET", f"{A}/authors/blocked"))["blocked"]
        assert [(r["author"], r["coop"], r["reason"]) for r in listed] == [
            (alice.text, None, "spam"),
            (troll.text, coop_text(g.id), "blocked by the operator"),
        ]
        assert all(r["since_ms"] > 0 for r in listed)
        # The same block again changes nothing and logs nothing.
        again = await admin.ok("POST", f"{A}/authors/block", json={"author": alice.text, "reason": "spam"})
        assert again["changed"] is False
        [first, second] = audits(caplog, "authors.block")
        # A new reason is a change: kept, answered and logged.
        renamed = await admin.ok("POST", f"{A}/authors/block", json={"author": alice.text, "reason": "spam, again"})
        assert renamed["changed"] is True and renamed["reason"] == "spam, again"
        assert "reason now: spam, again" in audits(caplog, "authors.block")[-1].getMessage()
        assert (await admin.ok("POST", f"{A}/authors/block", json={"author": alice.text, "reason": "spam"}))["changed"] is True
        assert first.levelno == logging.WARNING and "blocked author " + alice.text in first.getMessage() and "spam" in first.getMessage()
        assert "dropped 0 held and 1 pending" in first.getMessage() and second.coop == coop_text(g.id)  # type: ignore[attr-defined]
    finally:
        await node.stop()

    node = await Node.start(cfg)
    try:
        admin = Admin_(http, node)
        assert len((await admin.ok("GET", f"{A}/authors/blocked"))["blocked"]) == 2
        status, err = await submit(http, node.url, [refused])
        assert (status, err["error"]) == (403, "blocked")

        doc = await admin.ok("POST", f"{A}/authors/unblock", json={"author": alice.text})
        assert doc == {"author": alice.text, "coop": None, "blocked": False, "changed": True, "still_blocked_in": []}
        assert await statuses(http, node.url, [refused]) == ["accepted"]
        assert await statuses(http, node.url, [alice.act(g.id, seq=5)]) == ["pending"]  # what the block dropped can come again

        # Unblocking "everywhere" does not lift a block in one co-op, and says so.
        doc = await admin.ok("POST", f"{A}/authors/unblock", json={"author": troll.text})
        assert doc["changed"] is False and doc["still_blocked_in"] == [coop_text(g.id)]
        doc = await admin.ok("POST", f"{A}/authors/unblock", json={"author": troll.text, "coop": coop_text(g.id)})
        assert doc["changed"] is True and doc["still_blocked_in"] == []
        assert await statuses(http, node.url, [troll_applies]) == ["accepted"]
        assert (await admin.ok("GET", f"{A}/authors/blocked"))["blocked"] == []
        assert [r.author for r in audits(caplog, "authors.unblock")] == [alice.text, troll.text]  # type: ignore[attr-defined]
    finally:
        await node.stop()


# ---- usage and quotas ----------------------------------------------------------------------------


async def test_usage_moves_as_actions_are_stored_held_pending_and_blocked(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    quotas = {"quota_author_bytes": 50_000, "quota_coop_bytes": 200_000, "quota_node_bytes": 500_000}
    node = await start_node(admission=dataclasses.replace(HOLD, **quotas))
    admin = Admin_(http, node)

    empty = await admin.ok("GET", f"{A}/usage")
    assert empty["coops"] == []
    assert empty["node"] == {
        "stored_bytes": 0,
        "quota_bytes": 500_000,
        "held": 0,
        "max_held": HOLD.max_quarantine,
        "pending": 0,
        "max_pending": node.config.limits.max_pending,
        "coops": 0,
        "blocked_authors": 0,
        "blocked_everywhere": 0,
        "blocked_peers": 0,
    }
    policy = empty["policy"]
    assert {k: policy[k] for k in quotas} == quotas and policy["founding"] == "open" and policy["unknown_authors"] == "hold"
    assert policy["max_pending_per_coop"] == node.config.limits.max_pending_per_coop
    assert policy["pending_seconds"] == node.config.limits.pending_seconds

    founder, alice, big = Signer("founder"), Signer("alice"), Signer("big")
    g = founder.found("Valley")
    mine = [g, alice.apply(g.id), *(alice.act(g.id, body={"text": "x" * 300}) for _ in range(3))]
    assert await statuses(http, node.url, mine) == ["accepted"] * 5
    doc = await admin.ok("GET", f"{A}/usage")
    total = sum(len(a.raw) for a in mine)
    assert doc["node"]["stored_bytes"] == total and doc["node"]["coops"] == 1
    [row] = doc["coops"]
    assert (row["coop"], row["name"], row["actions"], row["stored_bytes"], row["quota_bytes"]) == (
        coop_text(g.id),
        "Valley",
        5,
        total,
        200_000,
    )
    assert row["top_authors"] == [
        {"author": alice.text, "stored_bytes": sum(len(a.raw) for a in mine[1:]), "quota_bytes": 50_000},
        {"author": founder.text, "stored_bytes": len(g.raw), "quota_bytes": 50_000},
    ]
    async with http.get(node.url + "/api/v1/node") as r:
        assert (await r.json())["admission"]["stored_bytes"] == total  # the public view agrees

    # A larger co-op is listed first; limit and top cut the listing, not the totals.
    g2 = big.found("Hill")
    heavy = [g2, *(big.act(g2.id, body={"text": "y" * 2000}) for _ in range(3))]
    assert await statuses(http, node.url, heavy) == ["accepted"] * 4
    doc = await admin.ok("GET", f"{A}/usage")
    assert [r["coop"] for r in doc["coops"]] == [coop_text(g2.id), coop_text(g.id)]
    assert doc["node"]["stored_bytes"] == total + sum(len(a.raw) for a in heavy)
    cut = await admin.ok("GET", f"{A}/usage", params={"limit": "1", "top": "1"})
    assert [r["coop"] for r in cut["coops"]] == [coop_text(g2.id)] and len(cut["coops"][0]["top_authors"]) == 1
    assert cut["node"] == doc["node"]
    assert all(r["top_authors"] == [] for r in (await admin.ok("GET", f"{A}/usage", params={"top": "0"}))["coops"])

    # Held, pending and blocked move too, per co-op and node-wide.
    assert await statuses(http, node.url, [Signer("stranger").act(g.id), alice.act(g.id, seq=9)]) == ["held", "pending"]
    await admin.ok("POST", f"{A}/authors/block", json={"author": Signer("troll").text, "coop": coop_text(g.id)})
    await admin.ok("POST", f"{A}/authors/block", json={"author": Signer("troll-2").text})
    doc = await admin.ok("GET", f"{A}/usage")
    n = doc["node"]
    assert (n["held"], n["pending"], n["blocked_authors"], n["blocked_everywhere"]) == (1, 1, 2, 1)
    row = next(r for r in doc["coops"] if r["coop"] == coop_text(g.id))
    assert (row["held"], row["max_held"], row["pending"], row["max_pending"], row["blocked_authors"]) == (
        1,
        HOLD.quarantine_per_coop,
        1,
        node.config.limits.max_pending_per_coop,
        1,
    )
    assert row["stored_bytes"] == total  # held and pending are not stored bytes


async def test_pending_that_never_expires_says_so(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(pending_seconds=0)
    founder, alice = Signer("founder"), Signer("alice")
    g = founder.found("Valley")
    assert await statuses(http, node.url, [g, alice.act(g.id, seq=3)]) == ["accepted", "pending"]
    doc = await Admin_(http, node).ok("GET", f"{A}/pending")
    assert doc["pending_seconds"] == 0
    assert [(r["expires_at_ms"], r["expires_in_s"]) for r in doc["pending"]] == [(None, None)]


# ---- the token, bad requests ---------------------------------------------------------------------

NEW_ROUTES = {
    ("GET", f"{A}/held"),
    ("POST", f"{A}/held/purge"),
    ("GET", f"{A}/authors/blocked"),
    ("POST", f"{A}/authors/block"),
    ("POST", f"{A}/authors/unblock"),
    ("GET", f"{A}/usage"),
}


async def held_node(start_node: NodeFactory, http: aiohttp.ClientSession) -> tuple[Node, Admin_, Signer, bytes]:
    """A node holding one stranger's action, with nothing blocked."""
    node = await start_node(admission=HOLD)
    founder, stranger = Signer("founder"), Signer("stranger")
    g = founder.found("Valley")
    assert await statuses(http, node.url, [g, stranger.act(g.id)]) == ["accepted", "held"]
    return node, Admin_(http, node), stranger, g.id


async def unchanged(node: Node, admin: Admin_) -> None:
    assert node.store.usage().held == 1
    assert (await admin.ok("GET", f"{A}/authors/blocked"))["blocked"] == []
    assert (await admin.ok("GET", f"{A}/peers"))["blocked"] == []


async def test_every_route_refuses_without_the_token_and_changes_nothing(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node, admin, stranger, coop = await held_node(start_node, http)
    routes = {(r["method"], r["path"]) for r in (await admin.ok("GET", A))["routes"]}
    assert routes >= NEW_ROUTES
    body = {"author": stranger.text, "coop": coop_text(coop), "id": format_id(IdKind.NODE, b"\x01" * 32)}
    wrong = {"Authorization": "Bearer " + "x" * 43}
    for method, path in sorted(routes | {("GET", A)}):
        for headers in ({}, wrong):
            status, doc = await admin.call(method, path, token=None, json=body if method == "POST" else None, **headers)
            assert (status, doc["error"]) == (401, "unauthorized"), (method, path, headers)
    await unchanged(node, admin)


AUTHOR = format_id(IdKind.MEMBER, b"\x05" * 32)
COOP = format_id(IdKind.COOP, b"\x06" * 32)
NODE = format_id(IdKind.NODE, b"\x07" * 32)
ACTION = format_id(IdKind.ACTION, b"\x08" * 32)


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/held/purge", {}, "bad_request"),
        ("POST", "/held/purge", {"cop": COOP}, "bad_request"),
        ("POST", "/held/purge", {"author": AUTHOR, "everything": True}, "bad_request"),
        ("POST", "/held/purge", {"coop": AUTHOR}, "bad_id"),
        ("POST", "/held/purge", {"author": COOP}, "bad_id"),
        ("POST", "/held/purge", {"author": None}, "bad_id"),
        ("POST", "/held/purge", {"ids": []}, "bad_request"),
        ("POST", "/held/purge", {"ids": ACTION}, "bad_request"),
        ("POST", "/held/purge", {"ids": ["act_x"]}, "bad_id"),
        ("POST", "/held/purge", {"ids": [ACTION] * 2001}, "bad_request"),
        ("POST", "/held/purge", [AUTHOR], "bad_request"),
        ("POST", "/authors/block", {}, "bad_id"),
        ("POST", "/authors/block", {"author": NODE}, "bad_id"),
        ("POST", "/authors/block", {"author": "mem_" + "a" * 51}, "bad_id"),
        ("POST", "/authors/block", {"author": 5}, "bad_id"),
        ("POST", "/authors/block", {"author": AUTHOR, "coop": "coop_x"}, "bad_id"),
        ("POST", "/authors/block", {"author": AUTHOR, "coop": 7}, "bad_id"),
        ("POST", "/authors/block", {"author": AUTHOR, "reason": 5}, "bad_request"),
        ("POST", "/authors/block", {"author": AUTHOR, "reason": "x" * 501}, "bad_request"),
        ("POST", "/authors/block", {"author": AUTHOR, "why": "spam"}, "bad_request"),
        ("POST", "/authors/block", {"authors": [AUTHOR]}, "bad_request"),
        ("POST", "/authors/unblock", {"author": AUTHOR, "reason": "x"}, "bad_request"),
        ("POST", "/authors/unblock", {"author": ACTION}, "bad_id"),
        ("POST", "/peers/block", {"id": NODE, "reasn": "typo"}, "bad_request"),
        ("POST", "/peers/unblock", {"id": NODE, "coop": COOP}, "bad_request"),
        ("GET", "/held", {"coop": "coop_x"}, "bad_id"),
        ("GET", "/held", {"author": NODE}, "bad_id"),
        ("GET", "/held", {"limit": "0"}, "bad_request"),
        ("GET", "/held", {"limit": "9" * 40}, "bad_request"),
        ("GET", "/held", {"lmit": "5"}, "bad_request"),
        ("GET", "/held", [("coop", COOP), ("coop", COOP)], "bad_request"),
        ("GET", "/authors/blocked", {"author": AUTHOR}, "bad_request"),
        ("GET", "/usage", {"limit": "0"}, "bad_request"),
        ("GET", "/usage", {"limit": "1001"}, "bad_request"),
        ("GET", "/usage", {"top": "101"}, "bad_request"),
        ("GET", "/usage", {"top": "-1"}, "bad_request"),
        ("GET", "/usage", {"coop": COOP}, "bad_request"),
        ("GET", "/pending", {"cop": COOP}, "bad_request"),
        ("GET", "/peers", {"all": "1"}, "bad_request"),
    ],
)
async def test_bad_requests_are_400_and_change_nothing(
    start_node: NodeFactory, http: aiohttp.ClientSession, method: str, path: str, body: Any, code: str
) -> None:
    node, admin, _, _ = await held_node(start_node, http)
    if method == "GET":
        status, doc = await admin.call(method, A + path, params=body)
    else:
        status, doc = await admin.call(method, A + path, json=body)
    assert (status, doc["error"]) == (400, code), doc
    assert doc["message"]
    await unchanged(node, admin)


async def test_bodies_that_are_not_json_objects_change_nothing(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node, admin, _, _ = await held_node(start_node, http)
    auth = {"Authorization": f"Bearer {admin.token}"}
    for path in ("/held/purge", "/authors/block", "/authors/unblock"):
        async with http.post(admin.url + A + path, data=b"{nope", headers={**auth, "Content-Type": "application/json"}) as r:
            assert (r.status, (await r.json())["error"]) == (400, "malformed")
        async with http.post(admin.url + A + path, data=b"author=x", headers={**auth, "Content-Type": "text/plain"}) as r:
            assert (r.status, (await r.json())["error"]) == (415, "unsupported_media_type")
    await unchanged(node, admin)


# ---- coopnet admin, against a real node process --------------------------------------------------


async def _post(url: str, actions: list[Action]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        return await submit(http, url, actions)


def test_admin_commands_for_admission_against_a_running_node(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data", free_port())
    node.init()
    config = node.data_dir / "coopnet.toml"
    text = config.read_text()
    assert 'unknown_authors = "store"' in text
    config.write_text(text.replace('unknown_authors = "store"', 'unknown_authors = "hold"', 1))
    cli = Cli(clean_env(tmp_path), tmp_path)
    d = ["--data-dir", str(node.data_dir)]
    founder, stranger, alice = Signer("founder"), Signer("stranger"), Signer("alice")
    g = founder.found("Valley Food Hub")
    node.start()
    try:
        applied = alice.apply(g.id)
        status, doc = asyncio.run(_post(node.url, [g, stranger.act(g.id), applied, alice.act(g.id, seq=4)]))
        assert status == 200 and [r["status"] for r in doc["results"]] == ["accepted", "held", "accepted", "pending"]

        held = json.loads(cli.ok("--json", "admin", "held", "list", *d))
        assert held["total"] == 1 and held["held"][0]["author"] == stranger.text
        readable_held, readable_pending, readable_usage = cli.many(
            ("admin", "held", "list", *d), ("admin", "pending", "list", *d), ("admin", "usage", *d)
        )
        assert readable_held.returncode == 0 and "unknown author" in readable_held.stdout and "offer.produce" in readable_held.stdout
        assert readable_pending.returncode == 0 and "expires" in readable_pending.stdout and "waiting for seq 2" in readable_pending.stdout
        assert readable_usage.returncode == 0 and "Valley Food Hub" in readable_usage.stdout and "quota" in readable_usage.stdout
        pending = json.loads(cli.ok("--json", "admin", "pending", "list", *d))
        assert pending["pending"][0]["expires_at_ms"] == pending["pending"][0]["received_at_ms"] + pending["pending_seconds"] * 1000

        assert cli.run("admin", "held", "purge", *d).returncode == 2  # says nothing about what to purge
        assert json.loads(cli.ok("--json", "admin", "held", "purge", "--author", stranger.text, *d)) == {"purged": 1}

        blocked = json.loads(cli.ok("--json", "admin", "authors", "block", alice.text, "--reason", "spam", *d))
        assert blocked["changed"] is True and blocked["dropped"] == {"held": 0, "pending": 1}
        refused = alice.act(g.id)
        status, doc = asyncio.run(_post(node.url, [refused]))
        assert (status, doc["error"]) == (403, "blocked")
        listing = cli.ok("admin", "authors", "list", *d)
        assert alice.text in listing and "spam" in listing and "every co-op" in listing
        assert json.loads(cli.ok("--json", "admin", "authors", "unblock", alice.text, *d))["changed"] is True
        status, doc = asyncio.run(_post(node.url, [refused]))
        assert status == 200 and doc["results"][0]["status"] == "accepted"

        usage = json.loads(cli.ok("--json", "admin", "usage", *d))
        assert usage["node"]["stored_bytes"] == sum(len(a.raw) for a in (g, applied, refused))
        assert usage["coops"][0]["name"] == "Valley Food Hub"

        bad = cli.run("--json", "admin", "authors", "block", "node_nope", *d)
        assert bad.returncode == 1 and json.loads(bad.stdout)["error"] == "bad_id"
        bad = cli.run("--json", "admin", "held", "list", "--coop", "coop_nope", *d)
        assert bad.returncode == 1 and json.loads(bad.stdout)["error"] == "bad_id"
    finally:
        assert node.terminate() == 0
    log = node.log_path.read_text()
    assert "admin held.purge" in log and "admin authors.block" in log and "admin authors.unblock" in log


async def test_names_others_chose_are_printed_as_written_not_as_markup(start_node: NodeFactory, tmp_path: Path) -> None:
    """A co-op's name is a stranger's text: ``coopnet admin usage`` and ``coopnet verify`` of their
    archive print it as it is (an unescaped ``[/]`` made rich raise MarkupError, a traceback)."""
    node = await start_node()
    name = "Evil [/] [bold]Co-op[/bold] [link=http://x.example]here"
    g = Signer("evil").found(name)
    async with aiohttp.ClientSession() as http:
        assert await statuses(http, node.url, [g]) == ["accepted"]
    d = ["--data-dir", str(node.config.data_dir)]
    usage = await acli("admin", "usage", *d, cwd=tmp_path)
    assert usage.returncode == 0 and "Traceback" not in usage.stderr, usage.stderr
    assert name in usage.stdout
    # And the everyday readers: the co-op list, the co-op itself, and an error quoting the name.
    for args in (("list",), ("show", coop_text(g.id))):
        shown = await acli("--node", node.url, *args, cwd=tmp_path)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, (args, shown.stderr)
        assert name in shown.stdout.replace("\n", ""), (args, shown.stdout)
    refused = await acli("--node", node.url, "show", "act_[/]" + name, cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "[/]" + name in refused.stderr.replace("\n", ""), refused.stderr
    archive = tmp_path / "evil.coop"
    exported = await acli("export", "--coop", coop_text(g.id), "--out", str(archive), *d, cwd=tmp_path)
    assert exported.returncode == 0 and name in exported.stdout, (exported.stdout, exported.stderr)
    verified = await acli("verify", str(archive), cwd=tmp_path)
    assert verified.returncode == 0 and name in verified.stdout, (verified.stdout, verified.stderr)
    # And the hint about [federation] keeps its brackets.
    other = init_data_dir(tmp_path / "other", port=0, federation=Federation(replicate=(coop_text(b"\x01" * 32),)))
    imported = await acli("import", str(archive), "--data-dir", str(other.data_dir), cwd=tmp_path)
    assert imported.returncode == 0 and "[federation] replicate list does not name this co-op" in imported.stdout, imported.stdout


async def test_a_block_refuses_the_authors_actions_from_peers_too_and_peers_bring_them_after_the_unblock(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    cluster = Cluster(tmp_path / "cluster")
    try:
        a, b = cluster.add(2)
        cluster.mesh()
        await cluster.start_all()
        founder, alice = Signer("founder"), Signer("alice")
        g = founder.found("Valley")
        hers = [alice.act(g.id) for _ in range(3)]
        assert await statuses(http, a.url, [g]) == ["accepted"]
        await wait_converged([a.running, b.running], [g.id], within=20)
        await Admin_(http, a.running).ok("POST", f"{A}/authors/block", json={"author": alice.text, "reason": "spam"})

        assert await statuses(http, b.url, hers) == ["accepted"] * 3  # B does not block her

        async def rounds_on_a(n: int) -> int:
            return await refused_after_rounds(http, cluster, a.url, "blocked", n)

        # A goes on reconciling with B (which has what A lacks), but does not fetch a blocked
        # author's actions: they would be signature-checked only to be refused, every round. (B
        # may relay them once when it accepts them: refused at A's door, counted once.)
        refused = await rounds_on_a(3)
        assert refused <= len(hers)
        assert await rounds_on_a(3) == refused
        assert not await a.running.store.known_ids([x.id for x in hers])
        assert_honest_peers_unpunished([a.running, b.running])  # relaying a blocked author is no offence

        await Admin_(http, a.running).ok("POST", f"{A}/authors/unblock", json={"author": alice.text})
        await wait_converged([a.running, b.running], [g.id], within=30)
        assert await a.running.store.known_ids([x.id for x in hers]) == {x.id for x in hers}
    finally:
        await cluster.close()


async def test_a_chain_a_quota_refused_is_not_fetched_again_every_round(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """A member over A's per-author quota: A stores what fits and refuses the next action once;
    it does not fetch (and signature-check, and refuse) that chain's extensions from B every round."""
    cluster = Cluster(tmp_path / "cluster")
    try:
        founder, alice = Signer("founder"), Signer("alice")
        g = founder.found("Valley")
        hers = [alice.act(g.id) for _ in range(6)]
        quota = sum(len(x.raw) for x in hers[:3]) - 1  # her first two fit, not the third
        (a,) = cluster.add(1, admission=dataclasses.replace(OPEN_ADMISSION, quota_author_bytes=quota))
        (b,) = cluster.add(1)
        cluster.mesh()
        await cluster.start_all()
        assert await statuses(http, b.url, [g, *hers]) == ["accepted"] * 7

        async def rounds_on_a(n: int) -> int:
            return await refused_after_rounds(http, cluster, a.url, "quota_exceeded", n)

        async def stored_on_a() -> bool:
            await cluster.run_rounds()
            return await a.running.store.known_ids([x.id for x in hers[:2]]) == {x.id for x in hers[:2]}

        await wait_until(stored_on_a, within=20, what="her first two actions on A")
        refused = await rounds_on_a(3)
        assert 1 <= refused <= len(hers), refused  # refused at least once (a push from B may add one)
        assert await rounds_on_a(3) == refused
        assert not await a.running.store.known_ids([hers[2].id])  # (her later ones wait in pending for it)
        assert_honest_peers_unpunished([a.running, b.running])
    finally:
        await cluster.close()


async def refused_after_rounds(http: aiohttp.ClientSession, cluster: Cluster, url: str, code: str, n: int) -> int:
    """Run gossip rounds until the node at ``url`` has reconciled ``n`` more times; then how many
    actions it has refused with ``code`` in all (its metrics)."""

    async def counts() -> tuple[int, int]:
        text = await get_text(http, url + "/metrics")
        rounds = sum(int(metric(text, "coopnet_reconciliations_total", outcome=o) or 0) for o in ("differ", "in_sync"))
        return rounds, int(metric(text, "coopnet_actions_rejected_total", code=code) or 0)

    start = (await counts())[0]

    async def done() -> bool:
        await cluster.run_rounds()
        return (await counts())[0] >= start + n

    await wait_until(done, within=20, what=f"{n} reconciliations")
    return (await counts())[1]
