"""node/store.py directly: a real SQLite file in tmp_path, no HTTP."""

from __future__ import annotations

import asyncio
import gc
import itertools
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import node.store as store_module
from node.store import SCHEMA_VERSION, IngestResult, Store, StoreError
from protocol import Action, RejectCode, decode_action, decode_proof
from protocol.messages import Head
from tests.conftest import make_chain, make_genesis, member_key, next_action

CLOCK_MS = 1_700_000_123_456


async def open_store(path: Path, **kw: object) -> Store:
    return await Store.open(path, clock_ms=lambda: CLOCK_MS, **kw)  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "coopnet.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    s = await open_store(db_path)
    yield s
    await s.close()


def statuses(results: list[IngestResult]) -> list[str]:
    return [r.status for r in results]


async def pragma(store: Store, name: str) -> object:
    # PRAGMA synchronous is per connection: ask the store's own connections.
    values = []
    for conn in (store._w, store._r):
        async with conn.execute(f"PRAGMA {name}") as cur:
            values.append((await cur.fetchone())[0])  # type: ignore[index]
    assert values[0] == values[1], values
    return values[0]


GENESIS = make_genesis(member_key(1), name="Store Co-op")
COOP = GENESIS.id


# ---- ingest ----------------------------------------------------------------------------------


async def test_chain_out_of_order_inside_one_batch_is_all_accepted(store: Store) -> None:
    founder_chain = make_chain(member_key(1), COOP, 3, after=GENESIS)
    alice_chain = make_chain(member_key(2), COOP, 4)
    batch = [alice_chain[3], founder_chain[2], alice_chain[1], founder_chain[0], alice_chain[0], founder_chain[1], alice_chain[2], GENESIS]
    results = await store.ingest(batch)
    assert [r.id for r in results] == [a.id for a in batch]
    assert statuses(results) == ["accepted"] * len(batch)
    assert store.groups_committed == 1 and store.actions_committed == len(batch)
    assert await store.head(COOP, member_key(1).public_key) == (4, founder_chain[-1].id)
    assert await store.head(COOP, member_key(2).public_key) == (4, alice_chain[-1].id)
    listed = await store.list_actions(COOP, author=member_key(2).public_key)
    assert [s.action().seq for s in listed] == [1, 2, 3, 4]
    coop = await store.get_coop(COOP)
    assert coop is not None and coop.actions == 8 and coop.name == "Store Co-op"


async def test_a_groups_plan_is_freed_when_its_commit_is_done_not_left_to_the_collector(store: Store) -> None:
    """A plan holds every decoded action of its group. The node runs with the cyclic collector
    tuned down (``node.node``), so a plan caught in a reference cycle lingered: 25 MB more at the
    ingest benchmark's peak. Plans must go by reference counting alone."""
    gc.collect()
    gc.disable()
    try:
        for i in range(5):
            assert statuses(await store.ingest([GENESIS, *make_chain(member_key(10 + i), COOP, 3)]))[1:] == ["accepted"] * 3
        lingering = [o for o in gc.get_objects() if type(o) is store_module._GroupPlan]
        assert lingering == [], f"{len(lingering)} group plans wait for the cyclic collector"
    finally:
        gc.enable()


async def test_same_action_twice_in_one_batch_is_accepted_then_known(store: Store) -> None:
    a = next_action(member_key(2), COOP, None)
    results = await store.ingest([GENESIS, a, a, GENESIS])
    assert statuses(results) == ["accepted", "accepted", "known", "known"]
    assert (await store.counts())["actions"] == 2
    assert statuses(await store.ingest([a])) == ["known"]


async def test_rejected_twice_in_one_batch_gets_the_same_verdict(store: Store) -> None:
    stray = next_action(member_key(2), b"\x05" * 32, None)
    results = await store.ingest([stray, stray])
    assert [(r.status, r.code) for r in results] == [("rejected", RejectCode.UNKNOWN_COOP)] * 2


async def test_action_before_its_genesis_in_an_earlier_batch_is_unknown_coop(store: Store) -> None:
    a = next_action(member_key(2), COOP, None)
    first = await store.ingest([a])
    assert (first[0].status, first[0].code) == ("rejected", RejectCode.UNKNOWN_COOP)
    assert await store.get_action(a.id) is None
    assert statuses(await store.ingest([GENESIS])) == ["accepted"]
    assert statuses(await store.ingest([a])) == ["accepted"]


async def test_pending_is_promoted_and_a_mismatched_pending_waits_for_its_rival(store: Store) -> None:
    alice = member_key(2)
    a1, a2, a3, a4 = make_chain(alice, COOP, 4)
    await store.ingest([GENESIS])
    assert statuses(await store.ingest([a3])) == ["pending"]
    stored = await store.get_action(a3.id)
    assert stored is not None and stored.status == "pending" and stored.pos is None
    assert statuses(await store.ingest([a1, a2])) == ["accepted", "accepted"]
    assert await store.head(COOP, alice.public_key) == (3, a3.id)
    # A pending seq 6 whose prev is not the seq 5 that closes the gap is not appended: it forks
    # the chain and stays pending until a rival at seq 6 arrives, which proves the fork.
    a5 = next_action(alice, COOP, a4)
    a5_other = next_action(alice, COOP, a4, body={"other": True})
    a6_on_other = next_action(alice, COOP, a5_other)
    assert statuses(await store.ingest([a6_on_other])) == ["pending"]
    assert statuses(await store.ingest([a4, a5])) == ["accepted", "accepted"]
    assert await store.head(COOP, alice.public_key) == (5, a5.id)
    leftover = await store.get_action(a6_on_other.id)
    assert leftover is not None and leftover.status == "pending"
    assert (await store.counts())["pending"] == 1
    a6 = next_action(alice, COOP, a5)
    [result] = await store.ingest([a6])
    assert result.status == "accepted" and result.proof is not None
    assert await store.head(COOP, alice.public_key) == (6, a6.id)
    # seq 6 is decided now: the rival goes aside (kept as evidence, and as a ghost others may have
    # built on), where a replacement further down could still take it back into the chain
    aside = await store.get_action(a6_on_other.id)
    assert aside is not None and aside.status == "forked"
    assert (await store.counts())["pending"] == 0
    [proof] = await store.proofs(COOP)
    assert proof.id == result.proof and proof.seq == 6


async def test_equivocation_is_proven_whatever_the_delivery_order(tmp_path: Path) -> None:
    alice = member_key(2)
    a1 = next_action(alice, COOP, None)
    a2 = next_action(alice, COOP, a1)
    a2x = next_action(alice, COOP, a1, body={"fork": True})  # never delivered
    a3 = next_action(alice, COOP, a2)
    a3x = next_action(alice, COOP, a2x)  # seq 3 again: with a3, a valid equivocation proof
    orders = {"chain order": [[GENESIS, a1, a2, a3], [a3x]], "fork first": [[GENESIS, a1, a3x], [a2, a3]]}
    proofs = {}
    for name, batches in orders.items():
        s = await open_store(tmp_path / f"{name}.sqlite3")
        try:
            for batch in batches:
                await s.ingest(batch)
            assert await s.head(COOP, alice.public_key) == (3, a3.id)
            proofs[name] = [p.id for p in await s.proofs()]
        finally:
            await s.close()
    assert len(proofs["chain order"]) == 1
    assert proofs["fork first"] == proofs["chain order"]


async def test_a_proofs_losing_half_takes_what_waits_on_it_aside_bodies_or_not(store: Store) -> None:
    """alice signs two votes at seq 2 (same prev); the node holds the smaller-id one and, waiting
    for seq 2, an action built on the other. Then it learns the other only from the proof (no
    body, though a vote needs one): the loser goes aside by its envelope and takes the waiting
    action with it (it can never take seq 3), and both read back as actions, for the fold's
    ghosts; a peer asking by id is not served the bodiless one."""
    from protocol.chain import make_proof

    alice = member_key(2)
    a1 = next_action(alice, COOP, None)
    votes = [next_action(alice, COOP, a1, kind="vote.cast", body={"proposal": a1.id, "choice": c}) for c in ("yes", "no")]
    lo, hi = sorted(votes, key=lambda a: a.id)
    on_hi = next_action(alice, COOP, hi)
    assert statuses(await store.ingest([GENESIS, a1])) == ["accepted"] * 2
    assert statuses(await store.ingest([on_hi])) == ["pending"]
    assert statuses(await store.ingest([lo])) == ["accepted"]
    assert (await store.counts())["pending"] == 1
    proof = make_proof(lo, hi)
    assert await store.ingest_proofs([decode_proof(proof.encode())]) == [True]
    assert (await store.counts())["pending"] == 0
    aside = {r.action().id: r.action() for r in await store.forked(COOP)}
    assert set(aside) == {hi.id, on_hi.id}
    assert aside[hi.id].body is None  # known from the proof alone
    served = await store.raw_by_ids(COOP, [hi.id, on_hi.id], max_bytes=1 << 20)
    assert [decode_action(r).id for r in served] == [on_hi.id]


async def test_closed_store_refuses_ingest(db_path: Path) -> None:
    s = await open_store(db_path)
    await s.close()
    with pytest.raises(StoreError):
        await s.ingest([GENESIS])
    await s.close()  # idempotent


# ---- the file --------------------------------------------------------------------------------


async def test_schema_version_is_recorded(store: Store, db_path: Path) -> None:
    assert await pragma(store, "user_version") == SCHEMA_VERSION
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_reopening_keeps_everything(db_path: Path) -> None:
    alice, bob = member_key(2), member_key(3)
    a1, a2, a3 = make_chain(alice, COOP, 3)
    b1 = next_action(bob, COOP, None, body={"v": 1})
    b1_other = next_action(bob, COOP, None, body={"v": 2})
    s = await open_store(db_path, max_pending=2)
    results = await s.ingest([GENESIS, a1, a3, b1])
    assert statuses(results) == ["accepted", "accepted", "pending", "accepted"]
    conflict = (await s.ingest([b1_other]))[0]
    assert conflict.code is RejectCode.CHAIN_CONFLICT and conflict.proof is not None
    before = (await s.counts(), await s.chains(COOP), await s.proofs(), await s.list_coops(), await s.list_actions(COOP))
    await s.close()

    s = await open_store(db_path, max_pending=2)
    try:
        after = (await s.counts(), await s.chains(COOP), await s.proofs(), await s.list_coops(), await s.list_actions(COOP))
        assert after == before
        assert after[0] == {"actions": 3, "coops": 1, "pending": 1, "proofs": 1, "chains": 3}
        pending = await s.get_action(a3.id)
        assert pending is not None and pending.status == "pending" and pending.raw == a3.raw
        proof = await s.get_proof(conflict.proof)
        assert proof is not None and decode_proof(proof.raw).id == conflict.proof
        # The co-op is still known (no unknown_coop), the pending count still counts toward the limit.
        c1, c2 = make_chain(member_key(4), COOP, 2), make_chain(member_key(5), COOP, 2)
        assert statuses(await s.ingest([c1[1]])) == ["pending"]
        gap = (await s.ingest([c2[1]]))[0]
        assert (gap.status, gap.code) == ("rejected", RejectCode.CHAIN_GAP)
        # And the gap still closes after the restart.
        assert statuses(await s.ingest([a2])) == ["accepted"]
        assert await s.head(COOP, alice.public_key) == (3, a3.id)
        assert await s.integrity_check() == "ok"
    finally:
        await s.close()


async def test_what_a_store_holds_is_known_wherever_it_lies_after_reopening(db_path: Path) -> None:
    """Stored, pending and displaced actions are each "known" when sent again, before and after
    a restart, also mixed in one batch with new actions above their chains' heads."""
    alice, bob = member_key(2), member_key(3)
    a1 = next_action(alice, COOP, None)
    small, large = sorted((next_action(alice, COOP, a1, body={"v": v}) for v in ("x", "y")), key=lambda a: a.id)
    after_large = next_action(alice, COOP, large)
    b1, b2, b3 = make_chain(bob, COOP, 3)
    s = await open_store(db_path)
    try:
        assert statuses(await s.ingest([GENESIS, a1, large, after_large, b1, b3])) == ["accepted"] * 5 + ["pending"]
        assert statuses(await s.ingest([small])) == ["accepted"]  # large and after_large now lie in forks
    finally:
        await s.close()
    for _ in range(2):
        s = await open_store(db_path)
        try:
            sent = [after_large, GENESIS, b3, small, large, a1]
            assert statuses(await s.ingest(sent)) == ["known"] * len(sent)
            counts = await s.counts()
            assert (counts["actions"], counts["pending"]) == (4, 1)
        finally:
            await s.close()
    s = await open_store(db_path)
    try:
        a3 = next_action(alice, COOP, small)
        assert statuses(await s.ingest([large, a3, b2, b1])) == ["known", "accepted", "accepted", "known"]
        assert await s.head(COOP, bob.public_key) == (3, b3.id)
        assert await s.integrity_check() == "ok"
    finally:
        await s.close()


async def test_a_head_set_is_kept_until_a_commit_moves_one_of_its_heads(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = member_key(2), member_key(3)
    a1, a2 = make_chain(alice, COOP, 2)
    await store.ingest([GENESIS, a1, a2])
    first = await store.head_set(COOP)
    assert [(h.author, h.seq, h.head) for h in first.heads] == sorted([(GENESIS.author, 1, GENESIS.id), (alice.public_key, 2, a2.id)])
    assert await store.head_set(COOP) is first
    await store.ingest([make_genesis(member_key(9), name="Elsewhere"), a2])  # another co-op; a known action
    assert await store.head_set(COOP) is first

    # A commit while the heads are being read: what was read is not kept as current.
    b1, b2 = make_chain(bob, COOP, 2)
    await store.ingest([b1])
    read = store.heads

    async def read_then_commit(coop: bytes) -> list[Head]:
        rows = await read(coop)
        await store.ingest([b2])
        return rows

    monkeypatch.setattr(store, "heads", read_then_commit)
    during = await store.head_set(COOP)
    monkeypatch.setattr(store, "heads", read)
    assert (bob.public_key, 1, b1.id) in [(h.author, h.seq, h.head) for h in during.heads]
    after = await store.head_set(COOP)
    assert after is not first and after is not during
    assert (bob.public_key, 2, b2.id) in [(h.author, h.seq, h.head) for h in after.heads]
    assert await store.head_set(COOP) is after

    # A co-op not stored here (a peer may ask about any id) is read each time, never kept.
    for _ in range(3):
        assert (await store.head_set(b"\x77" * 32)).heads == []
    assert list(store._head_sets) == [COOP]

    # Kept within HEAD_SETS_MAX_HEADS over all co-ops: the least recently used gives way.
    other = make_genesis(member_key(10), name="Other")
    await store.ingest([other, next_action(member_key(11), other.id, None)])
    monkeypatch.setattr(store_module, "HEAD_SETS_MAX_HEADS", 4)
    mine = await store.head_set(COOP)  # 3 heads
    theirs = await store.head_set(other.id)  # 2 more: COOP's set goes
    assert await store.head_set(other.id) is theirs
    assert await store.head_set(COOP) is not mine


async def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        await open_store(db_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


async def test_bad_synchronous_mode_is_refused(db_path: Path) -> None:
    with pytest.raises(StoreError, match="synchronous"):
        await open_store(db_path, synchronous="off")


async def test_wal_and_full_sync_by_default(store: Store, db_path: Path) -> None:
    assert str(await pragma(store, "journal_mode")).lower() == "wal"
    assert await pragma(store, "synchronous") == 2  # FULL
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"  # persistent in the file


async def test_normal_sync_when_configured(db_path: Path) -> None:
    s = await open_store(db_path, synchronous="normal")
    try:
        assert await pragma(s, "synchronous") == 1  # NORMAL
        assert str(await pragma(s, "journal_mode")).lower() == "wal"
    finally:
        await s.close()


async def test_integrity_check_is_ok(store: Store) -> None:
    await store.ingest([GENESIS, *make_chain(member_key(2), COOP, 5)])
    assert await store.integrity_check() == "ok"
    assert await store.writable()


# ---- delivery order does not matter ----------------------------------------------------------

# A pool of honest chains, signed once: the founder continues after the genesis; three members.
FOUNDER_CHAIN = make_chain(member_key(1), COOP, 5, after=GENESIS)
MEMBER_CHAINS = [make_chain(member_key(2 + i), COOP, 5, tag=f"m{i}") for i in range(3)]
CHAINS = [FOUNDER_CHAIN, *MEMBER_CHAINS]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Action], list[list[Action]]]:
    """(the actions in chain order, the same multiset shuffled and split into batches)."""
    lengths = draw(st.lists(st.integers(0, 5), min_size=len(CHAINS), max_size=len(CHAINS)))
    chosen = [a for chain, n in zip(CHAINS, lengths, strict=True) for a in chain[:n]]
    extras = draw(st.lists(st.sampled_from(chosen), max_size=8)) if chosen else []
    shuffled = draw(st.permutations(chosen + extras))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(shuffled) - 1, 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if c < len(shuffled)], len(shuffled)]
    batches = [shuffled[i:j] for i, j in itertools.pairwise(bounds) if j > i]
    return chosen, batches


async def final_state(path: Path, batches: list[list[Action]]) -> tuple[object, ...]:
    s = await open_store(path, synchronous="normal")
    try:
        assert statuses(await s.ingest([GENESIS])) == ["accepted"]
        for batch in batches:
            for r in await s.ingest(batch):
                assert r.status in ("accepted", "known", "pending"), r
        stored = await s.list_actions(COOP, limit=1000)
        return (
            sorted(x.raw for x in stored),
            await s.chains(COOP),
            await s.counts(),
            await s.proofs(),
        )
    finally:
        await s.close()


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_any_delivery_order_gives_the_in_order_state(case: tuple[list[Action], list[list[Action]]]) -> None:
    in_order, batches = case

    async def run() -> None:
        with tempfile.TemporaryDirectory() as d:
            reference = await final_state(Path(d) / "in_order.sqlite3", [[a] for a in in_order])
            shuffled = await final_state(Path(d) / "shuffled.sqlite3", batches)
        assert shuffled == reference
        raws, chains, counts, proofs = reference
        assert raws == sorted([GENESIS.raw, *(a.raw for a in in_order)])
        assert counts["pending"] == 0 and proofs == []  # type: ignore[index]
        heads = {c.author: (c.head_seq, c.head_id) for c in chains}  # type: ignore[attr-defined]
        for chain in CHAINS:
            mine = [a for a in in_order if a.author == chain[0].author]
            if mine:
                assert heads[chain[0].author] == (mine[-1].seq, mine[-1].id)
        assert all(decode_action(r).coop == COOP for r in raws)  # type: ignore[attr-defined]

    asyncio.run(run())


async def test_segments_are_read_in_want_order_and_bounded_whatever_is_asked(store: Store) -> None:
    from protocol.messages import Want

    founder = make_chain(member_key(1), COOP, 5, after=GENESIS)
    alice = make_chain(member_key(2), COOP, 6)
    await store.ingest([GENESIS, *founder, *alice])
    f, a = member_key(1).public_key, member_key(2).public_key
    wanted = [Want(a, 2, 4), Want(f, 1, 3)]
    raws, more = await store.segments(COOP, wanted, max_actions=100, max_bytes=1 << 20)
    got = [(x.author, x.seq) for x in map(decode_action, raws)]
    assert got == [(f, 1), (f, 2), (f, 3), (a, 2), (a, 3), (a, 4)] and not more  # the founder's chain first
    raws, more = await store.segments(COOP, wanted, max_actions=4, max_bytes=1 << 20)
    assert [(x.author, x.seq) for x in map(decode_action, raws)] == got[:4] and more
    # a peer asking for far more than a reply holds: at most a reply's worth is read, and it says so
    raws, more = await store.segments(COOP, [Want(a, 1, 2**40), Want(f, 1, 2**40)], max_actions=3, max_bytes=1 << 20)
    assert [(x.author, x.seq) for x in map(decode_action, raws)] == [(f, 1), (f, 2), (f, 3)] and more
    # a chain the store holds less of than asked, within what fits: not a cut
    raws, more = await store.segments(COOP, [Want(a, 5, 9)], max_actions=100, max_bytes=1 << 20)
    assert [x.seq for x in map(decode_action, raws)] == [5, 6] and not more


# ---- fork choice through SQLite --------------------------------------------------------------


async def _forked_state(path: Path, groups: list[list[Action]]) -> tuple[object, ...]:
    from tests.forkchoice_histories import ALL
    from tests.forkchoice_histories import GENESIS as FORK_GENESIS

    s = await open_store(path, synchronous="normal")
    try:
        await s.ingest([FORK_GENESIS])
        for g in groups:
            await s.ingest(g)
        for _ in range(3):  # anti-entropy offers everything again, chain by chain
            await s.ingest(sorted(ALL, key=lambda a: (a.author, a.seq, a.id)))
        coop = FORK_GENESIS.id
        heads = {c.author: (c.head_seq, c.head_id) for c in await s.chains(coop)}
        aside = {r.raw for r in await s.forked(coop)}
        return heads, aside, (await s.counts())["pending"]
    finally:
        await s.close()


@pytest.mark.parametrize("seed", range(8))
async def test_forked_histories_keep_the_same_chains_and_aside_rows_in_any_order(tmp_path: Path, seed: int) -> None:
    """The store applies protocol.forkchoice as tests/test_forkchoice.py's model does: the same
    heads and the same actions kept aside, whatever the order and grouping of arrival."""
    import random

    from tests.forkchoice_histories import ALL

    rng = random.Random(seed)
    order = list(ALL)
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), rng.randint(0, 6)))
    groups = [order[i:j] for i, j in itertools.pairwise([0, *cuts, len(order)]) if j > i]
    ref = await _forked_state(tmp_path / "ref.sqlite3", [[a] for a in sorted(ALL, key=lambda a: (a.author, a.seq, a.id))])
    got = await _forked_state(tmp_path / "got.sqlite3", groups)
    assert got == ref
    assert ref[2] == 0
