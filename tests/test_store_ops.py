"""The store's operator hooks (node/store.py): online backup, the backup taken before a schema
migration, the pending area as an operator sees it (list with reasons, purge), and the persisted
peer block list. A real SQLite file in tmp_path, no HTTP."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import node.store as store_module
from node.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError, backup_database
from tests.conftest import make_chain, make_genesis, member_key, next_action

CLOCK_MS = 1_700_000_123_456
GENESIS = make_genesis(member_key(1), name="Ops Co-op")
COOP = GENESIS.id
OTHER = make_genesis(member_key(5), name="Other Co-op")


async def open_store(path: Path, **kw: object) -> Store:
    return await Store.open(path, clock_ms=lambda: CLOCK_MS, **kw)  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "coopnet.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    s = await open_store(db_path)
    yield s
    await s.close()


def names(folder: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix))


def count(path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# ---- online backup ---------------------------------------------------------------------------------


async def test_backup_is_a_complete_consistent_single_file(store: Store, tmp_path: Path) -> None:
    await store.ingest([GENESIS, *make_chain(member_key(1), COOP, 20, after=GENESIS), *make_chain(member_key(2), COOP, 30)])
    out = tmp_path / "backups" / "b.sqlite3"
    info = await store.backup(out)
    assert info.integrity == "ok" and info.schema == SCHEMA_VERSION and info.actions == 51
    assert count(out, "actions") == 51 and count(out, "chains") == 2
    # One self-contained file: no WAL beside it, journal mode back to DELETE.
    assert names(out.parent, out.name) == [out.name]
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_backup_refuses_to_overwrite_and_leaves_no_partial_file(store: Store, tmp_path: Path) -> None:
    await store.ingest([GENESIS])
    out = tmp_path / "b.sqlite3"
    out.write_bytes(b"precious")
    with pytest.raises(StoreError, match="exists"):
        await store.backup(out)
    assert out.read_bytes() == b"precious"
    assert names(tmp_path, "b.sqlite3") == ["b.sqlite3"]


def test_backup_of_a_missing_store_is_refused_without_creating_one(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        backup_database(tmp_path / "absent.sqlite3", tmp_path / "out.sqlite3")
    assert not (tmp_path / "absent.sqlite3").exists() and not (tmp_path / "out.sqlite3").exists()


# ---- the backup before a migration -----------------------------------------------------------------


def make_old_store(path: Path, version: int) -> None:
    """A store file as an older coopnet left it: the first ``version`` migrations, one co-op."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for script in MIGRATIONS[:version]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("INSERT INTO coops (id, name, founder, created_ts) VALUES (?, 'Old', ?, 1)", (COOP, member_key(1).public_key))


async def test_a_migration_takes_a_backup_first_and_says_so(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = SCHEMA_VERSION - 1
    make_old_store(db_path, old)
    caplog.set_level(logging.INFO, logger="coopnet.store")
    s = await open_store(db_path)
    await s.close()
    backup = db_path.with_name(f"{db_path.name}.pre-v{SCHEMA_VERSION}")
    assert backup.exists()
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == old  # the store as it was
        assert conn.execute("SELECT name FROM coops").fetchall() == [("Old",)]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(backup) in m and "before migrating" in m for m in messages), messages
    assert [r.levelno for r in caplog.records if str(backup) in r.getMessage()] == [logging.WARNING]


async def test_a_new_store_or_a_current_one_takes_no_backup(db_path: Path) -> None:
    s = await open_store(db_path)
    await s.close()
    s = await open_store(db_path)
    await s.close()
    assert sorted(p.name for p in db_path.parent.iterdir() if ".pre-v" in p.name) == []


async def test_a_migration_whose_backup_fails_does_not_migrate(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_old_store(db_path, SCHEMA_VERSION - 1)

    def broken(src: Path, dst: Path, **_: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(store_module, "backup_database", broken)
    with pytest.raises(StoreError, match="disk full"):
        await open_store(db_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1


# ---- pending: list with reasons, purge ----------------------------------------------------------


async def test_pending_lists_each_action_with_its_reason_and_age(store: Store) -> None:
    alice = make_chain(member_key(2), COOP, 5)
    # Carol's seq 3 extends a rival seq 2: once her own seq 2 arrives it stays pending as a fork.
    carol = make_chain(member_key(3), COOP, 2)
    fork = next_action(member_key(3), COOP, make_chain(member_key(3), COOP, 2, tag="rival")[1])
    results = await store.ingest([GENESIS, alice[0], alice[3], alice[4], carol[0], fork])
    assert [r.status for r in results] == ["accepted", "accepted", "pending", "pending", "accepted", "pending"]
    assert [r.status for r in await store.ingest([carol[1]])] == ["accepted"]
    rows = await store.pending_rows()
    by_id = {r.id: r for r in rows}
    assert set(by_id) == {alice[3].id, alice[4].id, fork.id}
    assert by_id[alice[3].id].reason == "waiting for seq 2"
    assert by_id[alice[4].id].reason == "waiting for seq 2"
    assert by_id[fork.id].reason.startswith("fork")
    assert all(r.received_at == CLOCK_MS and r.coop == COOP for r in rows)
    assert [r.id for r in await store.pending_rows(author=member_key(2).public_key)] == [alice[3].id, alice[4].id]
    assert await store.pending_rows(coop=OTHER.id) == []
    assert len(await store.pending_rows(limit=1)) == 1


async def test_purging_pending_frees_room_and_counts(db_path: Path) -> None:
    s = await open_store(db_path, max_pending=3)
    try:
        alice = make_chain(member_key(2), COOP, 4)
        bob = make_chain(member_key(3), COOP, 4)
        carol = make_chain(member_key(4), OTHER.id, 3)
        await s.ingest([GENESIS, OTHER])
        assert [r.status for r in await s.ingest([alice[2], bob[2], carol[2]])] == ["pending"] * 3
        full = await s.ingest([alice[3]])
        assert full[0].status == "rejected" and full[0].code is not None and full[0].code.value == "chain_gap"

        assert await s.purge_pending(ids=[alice[2].id, b"\x00" * 32]) == 1
        assert (await s.ingest([alice[3]]))[0].status == "pending"  # room again
        assert await s.purge_pending(coop=OTHER.id) == 1
        assert await s.purge_pending(author=member_key(2).public_key) == 1
        assert [r.id for r in await s.pending_rows()] == [bob[2].id]
        assert (await s.counts())["pending"] == 1
        # The chain fills normally after a purge: nothing else was touched.
        assert [r.status for r in await s.ingest(bob[:2])] == ["accepted", "accepted"]
        assert await s.pending_rows() == []
        assert await s.head(COOP, member_key(3).public_key) == (3, bob[2].id)
    finally:
        await s.close()


async def test_purge_needs_a_selector(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.purge_pending()


# ---- the peer block list --------------------------------------------------------------------------


async def test_block_list_persists_across_restarts(db_path: Path) -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    s = await open_store(db_path)
    assert await s.set_blocked(a, "sent garbage") is True
    assert await s.set_blocked(a, "sent garbage again") is False  # already blocked: reason kept
    assert await s.set_blocked(b, "spam") is True
    assert await s.set_blocked(b, None) is True
    assert await s.set_blocked(b, None) is False
    await s.close()
    s = await open_store(db_path)
    try:
        assert await s.blocked_nodes() == {a: ("sent garbage", CLOCK_MS)}
    finally:
        await s.close()
