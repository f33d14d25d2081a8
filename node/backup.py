"""Restore: check a backup file offline, then swap it in for a stopped node's store.

A backup is made by ``coopnet backup`` (``store.backup_database``: SQLite's online backup API,
safe while the node runs). Restoring it replaces the store, so it happens only while no node runs
on the data directory: ``restore`` takes the data directory's lock (``ops.DataDirLock``) and
refuses if a node holds it. Before anything moves, the file is verified: SQLite's integrity
check, a schema version this coopnet knows (an older one is migrated at the next start, with its
own backup first), the tables a store has, every stored action's and proof's signature, and each
chain head against the actions below it. The current store is kept aside (never deleted), then
the checked copy is renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from protocol import ProtocolError, decode_proof
from protocol.action import decode_many
from protocol.ids import IdKind, format_id

from .config import Config
from .ops import DataDirLock
from .store import MIGRATIONS, backup_database

VERIFY_CHUNK = 2000  # rows read and verified at a time


class BadStoreFile(Exception):
    """A file that is not a store this coopnet can restore; the message says why."""


@dataclass(frozen=True, slots=True)
class StoreReport:
    path: Path
    schema: int
    coops: int
    actions: int
    pending: int
    proofs: int


@dataclass(frozen=True, slots=True)
class Restored:
    report: StoreReport
    database: Path
    aside: Path | None  # where the store it replaced was kept


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise BadStoreFile(f"{path}: no such file")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise BadStoreFile(f"{path}: cannot open it: {e}") from None
    try:
        yield conn
    finally:
        conn.close()


def verify_store_file(path: Path) -> StoreReport:
    """Check a store file thoroughly without changing it; raise ``BadStoreFile`` with the reason."""
    with _read_only(path) as conn:
        try:
            integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
            schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise BadStoreFile(f"{path}: not an SQLite database: {e}") from None
        if integrity != "ok":
            raise BadStoreFile(f"{path}: SQLite's integrity check failed: {integrity[:500]}")
        if schema > len(MIGRATIONS):
            raise BadStoreFile(f"{path}: schema version {schema} is newer than this coopnet's ({len(MIGRATIONS)}); upgrade coopnet first")
        needed = {"actions", "chains", "coops", "pending", "proofs"} | ({"forks"} if schema >= 2 else set())
        if schema < 1 or not needed <= tables:
            raise BadStoreFile(f"{path}: not a coopnet store (schema version {schema}, tables {sorted(tables)})")
        conn.execute("BEGIN")  # one snapshot for everything below
        counts = {t: 0 for t in ("actions", "pending", "forks")}
        for table in counts:
            if table not in tables:
                continue
            cur = conn.execute(f"SELECT id, coop, author, seq, raw FROM {table}")
            while rows := cur.fetchmany(VERIFY_CHUNK):
                for (row_id, coop, author, seq, _raw), checked in zip(rows, decode_many([r[4] for r in rows]), strict=True):
                    shown = format_id(IdKind.ACTION, row_id) if isinstance(row_id, bytes) and len(row_id) == 32 else repr(row_id)
                    where = f"{path}: {table} row {shown}"
                    if isinstance(checked, ProtocolError):
                        raise BadStoreFile(f"{where}: {checked.code.value}: {checked.message}")
                    if (checked.id, checked.coop, checked.author, checked.seq) != (row_id, coop, author, seq):
                        raise BadStoreFile(f"{where}: its columns do not match the action it holds")
                counts[table] += len(rows)
        proofs = 0
        for row_id, raw in conn.execute("SELECT id, raw FROM proofs"):
            try:
                proof = decode_proof(raw)
            except ProtocolError as e:
                raise BadStoreFile(f"{path}: proof {row_id.hex()}: {e.code.value}: {e.message}") from None
            if proof.id != row_id:
                raise BadStoreFile(f"{path}: proof {row_id.hex()}: its id does not match the proof it holds")
            proofs += 1
        # Each chain holds seqs 1..head without holes, and the head row names the action at head.
        bad = conn.execute(
            """SELECT c.coop, c.author FROM chains c
               LEFT JOIN actions a ON a.coop = c.coop AND a.author = c.author AND a.seq = c.head_seq
               WHERE a.id IS NULL OR a.id != c.head_id
                  OR c.head_seq != (SELECT COUNT(*) FROM actions x WHERE x.coop = c.coop AND x.author = c.author)
               LIMIT 1"""
        ).fetchone()
        if bad is not None:
            raise BadStoreFile(
                f"{path}: the chain of {format_id(IdKind.MEMBER, bad[1])} in {format_id(IdKind.COOP, bad[0])} is inconsistent"
            )
        coops = int(conn.execute("SELECT COUNT(*) FROM coops").fetchone()[0])
        conn.execute("COMMIT")
    return StoreReport(path, schema, coops, counts["actions"], counts["pending"], proofs)


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the main file, so the store kept aside is one self-contained file."""
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(db.resolve().as_uri() + "?mode=rw", uri=True)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(cfg: Config, source: Path) -> Restored:
    """Replace ``cfg``'s store with the verified copy of ``source``; the node must be stopped."""
    lock = DataDirLock.acquire(cfg.data_dir, "coopnet restore")  # DataDirBusy while a node runs
    try:
        report = verify_store_file(source)
        db = cfg.database_path
        staged = db.with_name(f"{db.name}.restoring")
        backup_database(source, staged, overwrite=True)  # a consistent, checked copy beside the store
        aside = None
        if db.exists():
            _checkpoint(db)
            aside = db.with_name(f"{db.name}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
            os.replace(db, aside)
            for suffix in ("-wal", "-shm"):  # whatever the checkpoint left, kept with its file
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{db}{suffix}", f"{aside}{suffix}")
        os.replace(staged, db)
        _fsync_dir(db.parent)
        return Restored(report, db, aside)
    finally:
        lock.release()
