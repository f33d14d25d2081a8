"""The store's admission (node/store.py, ``StorePolicy``): who is known, what is held and released,
how pending and quotas are bounded and counted. A real SQLite file in tmp_path, no HTTP."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import node.store as store_module
from node.store import IngestResult, Store, StorePolicy
from protocol import Action, RejectCode, SigningKey, sign_action, sign_genesis
from tests.conftest import member_key

TS = 1_700_000_000_000
HOLD = StorePolicy(hold_unknown=True)


class Clock:
    def __init__(self) -> None:
        self.now = TS

    def __call__(self) -> int:
        return self.now


async def open_store(path: Path, policy: StorePolicy = HOLD, clock: Clock | None = None, **kw: Any) -> Store:
    return await Store.open(path, clock_ms=clock or Clock(), policy=policy, **kw)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(tmp_path / "s.sqlite3")
    yield s
    await s.close()


def chain(key: SigningKey, coop: bytes, n: int, *, first: str = "note", after: Action | None = None, tag: str = "") -> list[Action]:
    out: list[Action] = []
    prev = after
    for _ in range(n):
        seq = prev.seq + 1 if prev is not None else 1
        kind = "member.apply" if seq == 1 and first == "apply" else "offer.produce"
        body: dict[str, Any] = {} if kind == "member.apply" else {"seq": seq, "tag": tag}
        prev = sign_action(key, coop=coop, seq=seq, prev=prev.id if prev else None, ts=TS + seq, kind=kind, body=body)
        out.append(prev)
    return out


def statuses(results: list[IngestResult]) -> list[str]:
    return [r.status for r in results]


FOUNDER, NAMED, APPLICANT, STRANGER = (member_key(i) for i in (1, 2, 3, 4))
GENESIS = sign_genesis(FOUNDER, ts=TS, body={"name": "Known", "founders": [NAMED.public_key]})
COOP = GENESIS.id


async def test_who_is_known_is_decided_in_one_group(store: Store) -> None:
    """The genesis author, the founders it names, and whoever starts their chain with an
    application (earlier in the same group counts) are known; anyone else is held."""
    founder_next = chain(FOUNDER, COOP, 1, after=GENESIS)[0]
    named = chain(NAMED, COOP, 2)  # a founder's chain may start with anything
    applicant = chain(APPLICANT, COOP, 3, first="apply")
    stranger = chain(STRANGER, COOP, 2)
    batch = [applicant[2], stranger[1], named[1], applicant[0], founder_next, GENESIS, stranger[0], named[0], applicant[1]]
    results = await store.ingest(batch)
    assert statuses(results) == ["accepted", "held", "accepted", "accepted", "accepted", "accepted", "held", "accepted", "accepted"]
    assert results[1].message is not None and results[1].message.startswith("unknown author")
    assert store.usage().held == 2 and (await store.counts())["actions"] == 7
    assert {r.id for r in await store.held(COOP)} == {stranger[0].id, stranger[1].id}
    # The stranger's actions are nowhere a peer or the fold would look.
    assert {a.id for a in stranger}.isdisjoint(await store.known_ids([a.id for a in stranger]))
    listed = {s.action().id for s in await store.list_actions(COOP, limit=100)}
    assert listed.isdisjoint({a.id for a in stranger})
    # An application later releases what was held, in one more group.
    late_apply = chain(STRANGER, COOP, 1, first="apply")[0]
    assert late_apply.seq == 1
    assert statuses(await store.ingest([late_apply])) == ["accepted"]
    await store.releases_done()
    assert store.usage().held == 0
    assert await store.head(COOP, STRANGER.public_key) == (1, late_apply.id)  # the held seq 1 is not it: dropped
    assert await store.proofs(COOP) == []


async def test_a_held_chain_is_released_in_order_once_its_application_arrives(store: Store) -> None:
    assert statuses(await store.ingest([GENESIS])) == ["accepted"]
    a = chain(APPLICANT, COOP, 4, first="apply")
    assert statuses(await store.ingest([a[3], a[1]])) == ["held", "held"]
    assert statuses(await store.ingest([a[0]])) == ["accepted"]
    await store.releases_done()
    # seq 2 stored, seq 4 pending for seq 3, nothing held any more
    assert await store.head(COOP, APPLICANT.public_key) == (2, a[1].id)
    assert store.usage().held == 0 and store.usage().pending == 1
    assert statuses(await store.ingest([a[2]])) == ["accepted"]
    assert await store.head(COOP, APPLICANT.public_key) == (4, a[3].id)
    assert store.released_total == 2


@pytest.mark.parametrize("seed", range(6))
async def test_what_is_stored_does_not_depend_on_the_order_of_arrival(tmp_path: Path, seed: int) -> None:
    """Honest histories (founders, named founders, applicants) delivered in any order and any
    batches end as the same chains as delivered in order: nothing an honest node sends is lost to
    the quarantine (which holds at most 4 per author: chains here are shorter)."""
    rng = random.Random(seed)
    keys = [member_key(100 + i) for i in range(6)]
    g = sign_genesis(keys[0], ts=TS, body={"name": "Shuffled", "founders": [keys[1].public_key]})
    actions = [g, *chain(keys[0], g.id, 3, after=g), *chain(keys[1], g.id, 4)]
    for k in keys[2:]:
        actions += chain(k, g.id, rng.randint(1, 5), first="apply")
    in_order = await open_store(tmp_path / "in-order.sqlite3")
    shuffled = await open_store(tmp_path / "shuffled.sqlite3")
    try:
        assert set(statuses(await in_order.ingest(actions))) == {"accepted"}
        rest = actions[1:]
        rng.shuffle(rest)
        await shuffled.ingest([g])
        while rest:
            n = rng.randint(1, 5)
            await shuffled.ingest(rest[:n])
            rest = rest[n:]
        await shuffled.releases_done()
        for k in keys:
            assert await shuffled.head(g.id, k.public_key) == await in_order.head(g.id, k.public_key)
        assert await shuffled.counts() == await in_order.counts()
        assert shuffled.usage().held == 0 and shuffled.usage().bytes == in_order.usage().bytes
    finally:
        await in_order.close()
        await shuffled.close()


async def test_pending_is_bounded_per_author_and_co_op_with_a_floor_per_co_op(tmp_path: Path) -> None:
    policy = StorePolicy(max_pending_per_coop=5, max_pending_per_author=3, pending_floor=2)
    s = await open_store(tmp_path / "p.sqlite3", policy, max_pending=6)
    try:
        keys = [member_key(200 + i) for i in range(4)]
        g1, g2, g3 = (sign_genesis(keys[i], ts=TS, body={"name": f"P{i}"}) for i in range(3))
        assert statuses(await s.ingest([g1, g2, g3])) == ["accepted"] * 3
        gapped = chain(keys[0], g1.id, 6, after=g1)[1:]  # seq 3..7 of the founder of g1
        got = await s.ingest(gapped)
        assert statuses(got) == ["pending"] * 3 + ["rejected"] * 2
        assert "already has 3 actions pending" in (got[3].message or "")
        other = chain(keys[3], g1.id, 5)[2:]  # a named-less author: the store takes anyone (no hold here)
        got = await s.ingest(other)
        assert statuses(got) == ["pending", "pending", "rejected"]
        assert "this co-op already has 5" in (got[2].message or "")
        assert s.usage().pending_by_coop == {g1.id: 5}
        # Node-wide 6: g2 gets one, then is at... below its floor of 2, so a second too.
        got = await s.ingest(chain(keys[1], g2.id, 4, after=g2)[1:])
        assert statuses(got) == ["pending", "pending", "rejected"]
        assert "the pending area is full (6)" in (got[2].message or "")
        got = await s.ingest(chain(keys[2], g3.id, 4, after=g3)[1:])
        assert statuses(got) == ["pending", "pending", "rejected"]
        assert s.usage().pending == 9
        assert [r.reason for r in await s.pending(g2.id)] == ["waiting for seq 2 of its author's chain"] * 2
        assert await s.purge_pending(g1.id) == 5
        assert s.usage().pending_by_coop == {g2.id: 2, g3.id: 2}
    finally:
        await s.close()


async def test_bytes_are_counted_as_stored_and_recounted_when_a_fork_displaces_a_chain(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    s = await open_store(path, StorePolicy(quota_author_bytes=10**9))
    try:
        key = member_key(300)
        g = sign_genesis(key, ts=TS, body={"name": "Bytes"})
        base = chain(key, g.id, 2, after=g)
        x, y = sorted((chain(key, g.id, 1, after=base[-1], tag=t)[0] for t in ("x", "y")), key=lambda a: a.id)  # two seq-4 forks
        larger_then = chain(key, g.id, 2, after=y, tag="z")
        assert set(statuses(await s.ingest([g, *base, y, *larger_then]))) == {"accepted"}
        assert statuses(await s.ingest([x])) == ["accepted"]  # the smaller id displaces y and what follows it
        expected = sum(len(a.raw) for a in (g, *base, x))
        assert s.usage().bytes == expected and s.usage().coop_bytes == {g.id: expected}
    finally:
        await s.close()
    with sqlite3.connect(path) as db:
        (coop_bytes,) = db.execute("SELECT bytes FROM coops").fetchone()
        (chain_bytes,) = db.execute("SELECT bytes FROM chains").fetchone()
        (actual,) = db.execute("SELECT SUM(length(raw)) FROM actions").fetchone()
    assert coop_bytes == chain_bytes == actual == expected


async def test_migration_3_counts_the_bytes_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    g = sign_genesis(member_key(400), ts=TS, body={"name": "Old"})
    a = chain(member_key(401), g.id, 2)
    with sqlite3.connect(path) as db:
        for script in store_module.MIGRATIONS[:2]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO coops (id, name, founder, created_ts, actions) VALUES (?, 'Old', ?, ?, 3)", (g.id, g.author, TS))
        for x in (g, *a):
            db.execute(
                "INSERT INTO actions (id, coop, author, seq, kind, ts, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (x.id, x.coop, x.author, x.seq, x.kind, x.env.ts, x.raw, TS),
            )
        db.execute("INSERT INTO chains VALUES (?, ?, 1, ?)", (g.id, g.author, g.id))
        db.execute("INSERT INTO chains VALUES (?, ?, 2, ?)", (g.id, a[0].author, a[1].id))
    s = await open_store(path)
    try:
        assert s.usage().coop_bytes == {g.id: sum(len(x.raw) for x in (g, *a))}
        # The stranger of yesterday has a chain here: known.
        nxt = chain(member_key(401), g.id, 1, after=a[1])[0]
        assert statuses(await s.ingest([nxt])) == ["accepted"]
    finally:
        await s.close()


async def test_a_full_quarantine_refuses_with_unknown_author(tmp_path: Path) -> None:
    s = await open_store(
        tmp_path / "q.sqlite3", StorePolicy(hold_unknown=True, quarantine_per_author=1, quarantine_per_coop=2, max_quarantine=3)
    )
    try:
        await s.ingest([GENESIS])
        got = await s.ingest([*chain(member_key(500), COOP, 2), *[chain(member_key(501 + i), COOP, 1)[0] for i in range(2)]])
        # Which author meets the co-op's bound first is the plan's order (by key), not the batch's.
        assert sorted((r.status, str(r.code)) for r in got) == [("held", "None")] * 2 + [("rejected", RejectCode.UNKNOWN_AUTHOR.value)] * 2
        assert got[1].code is RejectCode.UNKNOWN_AUTHOR
        assert s.usage().held == 2
    finally:
        await s.close()
