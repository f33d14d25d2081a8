"""Export a co-op to an archive file, verify one, import one (the format: protocol/archive.py).

Export reads the store file directly, read-only, in one read transaction: a consistent snapshot,
whether or not the node runs (WAL lets it read beside the writer). Import stores into a stopped
node, through the node's own ingest path (``Ingestor.submit`` on the data directory's store, the
code behind ``POST /api/v1/actions``) and ``Store.ingest_proofs`` for the proofs. Why not into a
running node over HTTP: the client API takes actions, not proofs, and the actions inside a proof
travel without bodies (a governance action without its body is refused), so proofs could not be
carried; an import is an operator's act, like a restore, so it holds the data directory's lock
instead of competing with members' writes and their rate limits. Peers then learn the imported
co-op from this node by anti-entropy, as from any other.

Import reads the file twice: first to verify all of it (nothing is stored unless every signature,
chain link, the order, the genesis and the digest check out), then to store it in batches; the
second pass repeats every check but the signatures (the ingest path verifies those again) and
must end with the same digest.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from protocol import Action, EquivocationProof, ProtocolError, decode_action, decode_proof
from protocol.archive import ArchiveError, ArchiveReader, ArchiveSummary, encode_archive
from protocol.ids import IdKind, format_id

from .config import Config
from .ingest import Ingestor, Source
from .metrics import Metrics
from .ops import DataDirLock
from .store import Store

READ_CHUNK = 1 << 20
IMPORT_BATCH = 1000  # actions handed to the ingest path at a time


class ExportError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Exported:
    path: Path
    coop: bytes
    name: str
    actions: int
    proofs: int
    bytes: int
    sha256: str


@dataclass
class Imported:
    summary: ArchiveSummary
    statuses: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # by reject code
    proofs_new: int = 0


def export_coop(database: Path, coop: bytes, out: Path, *, overwrite: bool = False) -> Exported:
    """Write the archive of ``coop`` as stored in ``database`` to ``out`` (atomically)."""
    if out.exists() and not overwrite:
        raise ExportError("exists", f"{out} already exists; refusing to overwrite it")
    if not database.is_file():
        raise ExportError("no_store", f"{database}: no store there")
    conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")  # one snapshot: a commit during the export is either all in or all out
        raws = [r[0] for r in conn.execute("SELECT raw FROM actions WHERE coop = ?", (coop,))]
        proof_raws = [r[0] for r in conn.execute("SELECT raw FROM proofs WHERE coop = ?", (coop,))]
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        raise ExportError("no_store", f"{database}: cannot read the store: {e}") from None
    finally:
        conn.close()
    try:
        # Verified when stored, and again here: a damaged store must not make an archive that
        # only fails at the other end.
        actions = [decode_action(raw) for raw in raws]
        proofs = [decode_proof(raw) for raw in proof_raws]
    except ProtocolError as e:
        # Stored by another coopnet version whose rules differ (a downgrade), or a damaged file.
        raise ExportError("bad_store", f"{database}: a stored action of this co-op does not decode here: {e}") from None
    genesis = next((a for a in actions if a.id == coop and a.is_genesis), None)
    if genesis is None:
        raise ExportError("unknown_coop", f"no co-op {format_id(IdKind.COOP, coop)} in {database}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        size = 0
        with tmp.open("wb") as f:
            last = b""
            for chunk in encode_archive(genesis, actions, proofs):
                f.write(chunk)
                size += len(chunk)
                last = chunk
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    body = genesis.body_value()
    name = str(body.get("name", "")) if isinstance(body, dict) else ""
    return Exported(out, coop, name, len(actions), len(proofs), size, last.hex())


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            yield chunk


def read_items(path: Path, *, check_signatures: bool = True) -> Iterator[Action | EquivocationProof | ArchiveSummary]:
    """The verified actions and proofs of the archive at ``path``, then its summary last."""
    reader = ArchiveReader(check_signatures=check_signatures)
    for chunk in _chunks(path):
        for item in reader.feed(chunk):
            if isinstance(item, Action | EquivocationProof):
                yield item
    yield reader.close()


def verify_file(path: Path) -> tuple[ArchiveSummary, Action]:
    """Verify the whole archive at ``path``; its summary and its genesis, or ArchiveError."""
    genesis: Action | None = None
    for item in read_items(path):
        if isinstance(item, ArchiveSummary):
            assert genesis is not None
            return item, genesis
        if genesis is None and isinstance(item, Action):
            genesis = item
    raise ArchiveError("truncated", "no summary")  # unreachable: read_items ends with one


async def import_file(cfg: Config, path: Path) -> Imported:
    """Verify the archive at ``path``, then store it in ``cfg``'s store (the node must be stopped)."""
    lock = DataDirLock.acquire(cfg.data_dir, "coopnet import")  # DataDirBusy while a node runs
    try:
        first, _ = verify_file(path)
        store = await Store.open(
            cfg.database_path,
            synchronous=cfg.synchronous,
            clock_ms=_now_ms,
            max_pending=cfg.limits.max_pending,
            max_group=cfg.limits.max_group,
        )
        ingestor = Ingestor(store, cfg.limits, Metrics())
        result = Imported(first)
        try:
            batch: list[bytes] = []
            proofs: list[EquivocationProof] = []

            async def flush() -> None:
                for r in await ingestor.submit(batch, Source("import")):
                    result.statuses[r.status] += 1
                    if r.code is not None:
                        result.rejected[r.code.value] += 1
                batch.clear()

            for item in read_items(path, check_signatures=False):
                if isinstance(item, Action):
                    batch.append(item.raw)
                    if len(batch) >= IMPORT_BATCH:
                        await flush()
                elif isinstance(item, EquivocationProof):
                    proofs.append(item)
                elif item.digest != first.digest:
                    raise ArchiveError("bad_digest", f"{path} changed while it was imported")
            if batch:
                await flush()
            if proofs:
                result.proofs_new = sum(await store.ingest_proofs(proofs))
        finally:
            ingestor.close()
            await store.close()
        return result
    finally:
        lock.release()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
