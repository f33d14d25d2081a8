"""The operator's commands end to end, against real node processes on 127.0.0.1 (``coopnet run``
started by ``tests/test_crash.NodeProcess``) and the real ``coopnet`` command in a subprocess:
backup under load and restore, the admin commands with JSON logs, exposure at ``init``, and
federation files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from node.admin import ADMIN_URL_FILE, TOKEN_FILE
from node.ops import JsonFormatter
from node.store import SCHEMA_VERSION
from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission
from tests.test_cli import Cli, clean_env, get_json
from tests.test_crash import NodeProcess, free_port

TS = 1_700_000_000_000
MEMBERS = 12
PER_MEMBER = 400  # 4800 actions besides the genesis: the load outlasts the backup
AFTER_BACKUP = 10  # batches posted after the backup ended, then the load stops
BATCH = 20
CONCURRENCY = 3
BACKUP_AFTER = 400  # acknowledged actions before the backup starts; the load goes on during it


def corpus() -> tuple[Action, list[list[Action]]]:
    keys = [SigningKey(hashlib.sha256(b"coopnet ops test member %d" % i).digest()) for i in range(MEMBERS)]
    genesis = sign_genesis(keys[0], ts=TS, body={"name": "Backup Co-op"})
    batches: list[list[Action]] = []
    heads: list[Action | None] = [genesis] + [None] * (MEMBERS - 1)
    flat: list[Action] = []
    for n in range(PER_MEMBER):
        for i, key in enumerate(keys):
            prev = heads[i]
            a = sign_action(
                key,
                coop=genesis.id,
                seq=prev.seq + 1 if prev else 1,
                prev=prev.id if prev else None,
                ts=TS + n,
                kind="test.note",
                body={"n": n, "text": "x" * 40},
            )
            heads[i] = a
            flat.append(a)
    for i in range(0, len(flat), BATCH):
        batches.append(flat[i : i + BATCH])
    return genesis, batches


def act(a: Action) -> str:
    return format_id(IdKind.ACTION, a.id)


def ids_in(db: Path) -> tuple[str, set[str]]:
    """(integrity check, ids stored or pending) of a store file, read-only."""
    with sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True) as conn:
        integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        rows = conn.execute("SELECT id FROM actions UNION ALL SELECT id FROM pending").fetchall()
    return integrity, {format_id(IdKind.ACTION, r[0]) for r in rows}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(clean_env(tmp_path), tmp_path)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    n = NodeProcess(tmp_path / "data", free_port())
    n.init()
    yield n
    n.cleanup()


def fail_code(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    doc = json.loads(proc.stdout)
    assert "Traceback" not in proc.stderr
    return str(doc["error"])


# ---- backup under load, restore ------------------------------------------------------------------------


async def load_with_backup(url: str, batches: list[list[Action]], backup: list[str]) -> tuple[set[str], set[str], int]:
    """Post batches (CONCURRENCY in flight); once BACKUP_AFTER actions are acknowledged, run
    ``backup`` as a process while posting goes on, until AFTER_BACKUP batches after it ended (or
    the batches run out). Returns (acknowledged before the backup started, acknowledged in all,
    actions acknowledged while the backup ran)."""
    acked: set[str] = set()
    before: set[str] = set()
    queue = iter(batches)
    proc: asyncio.subprocess.Process | None = None
    during = after = 0
    headers = {"Content-Type": "application/msgpack", "Accept": "application/json"}

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal proc, before, during, after
        while after < AFTER_BACKUP and (batch := next(queue, None)) is not None:
            async with http.post(url + "/api/v1/actions", data=encode_submission([a.raw for a in batch]), headers=headers) as r:
                doc = await r.json()
                assert r.status == 200, doc
            assert {x["status"] for x in doc["results"]} <= {"accepted", "pending"}, doc
            acked.update(x["id"] for x in doc["results"])
            if proc is not None and proc.returncode is None:
                during += len(batch)
            elif proc is not None:
                after += 1
            if not before and len(acked) >= BACKUP_AFTER:
                before = set(acked)  # every one of these was acknowledged before the backup began
                proc = await asyncio.create_subprocess_exec(*backup, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.gather(*(worker(http) for _ in range(CONCURRENCY)))
    assert proc is not None
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, (out, err)
    return before, acked, during


def test_backup_under_load_is_consistent_and_restores(node: NodeProcess, cli: Cli, tmp_path: Path) -> None:
    genesis, batches = corpus()
    out = tmp_path / "backups" / "node.sqlite3"
    backup_cmd = [str(cli.argv((), False)[0]), "--json", "backup", "--data-dir", str(node.data_dir), "--out", str(out)]
    node.start()
    asyncio.run(_post_one(node.url, genesis))
    before, acked, during = asyncio.run(load_with_backup(node.url, batches, backup_cmd))
    before.add(act(genesis))
    print(f"backup began after {len(before)} acknowledged actions; {during} more were acknowledged while it ran")
    assert during > 0 and len(acked) < sum(map(len, batches)), "the load did not go on during the backup"

    integrity, in_backup = ids_in(out)
    assert integrity == "ok"
    assert before <= in_backup, f"{len(before - in_backup)} actions acknowledged before the backup are missing from it"
    assert in_backup <= acked | {act(genesis)}
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    # A running node's store is never replaced.
    db = node.data_dir / "coopnet.sqlite3"
    assert fail_code(cli.run("--json", "restore", "--data-dir", str(node.data_dir), "--from", str(out))) == "node_running"
    assert node.proc is not None and node.proc.poll() is None
    # Nor does the backup refuse to overwrite silently.
    assert fail_code(cli.run("--json", "backup", "--data-dir", str(node.data_dir), "--out", str(out))) == "backup_failed"

    assert node.terminate() == 0
    _, everything = ids_in(db)
    assert len(everything) == len(acked) + 1 > len(in_backup)
    current = digest(db)

    # Damaged backups are refused, and the store stays as it was.
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\x07" * 5000)
    newer = tmp_path / "newer.sqlite3"
    forged = tmp_path / "forged.sqlite3"
    for copy in (newer, forged):
        copy.write_bytes(out.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with sqlite3.connect(forged) as conn:
        row_id, raw = conn.execute("SELECT id, raw FROM actions ORDER BY pos DESC LIMIT 1").fetchone()
        conn.execute("UPDATE actions SET raw = ? WHERE id = ?", (raw[:-24] + bytes([raw[-24] ^ 1]) + raw[-23:], row_id))  # in S
    for bad, words in ((garbage, "not"), (newer, "newer"), (forged, "bad_signature"), (tmp_path / "absent", "no such file")):
        proc = cli.run("--json", "restore", "--data-dir", str(node.data_dir), "--from", str(bad))
        assert fail_code(proc) == "bad_backup", bad
        assert words in json.loads(proc.stdout)["message"], (bad, proc.stdout)
    assert digest(db) == current

    # The good one: the current store is kept aside, the node starts on the backup's content.
    done = json.loads(cli.ok("--json", "restore", "--data-dir", str(node.data_dir), "--from", str(out)))
    assert done["actions"] == len(in_backup) and done["schema"] == SCHEMA_VERSION
    aside = Path(done["kept_aside"])
    assert aside.parent == node.data_dir and aside.name.startswith("coopnet.sqlite3.before-restore-")
    assert ids_in(aside) == ("ok", everything)
    node.start()
    assert get_json(node.url + "/api/v1/node")["counts"]["actions"] == len(in_backup)
    assert node.terminate() == 0
    assert ids_in(db) == ("ok", in_backup)


async def _post_one(url: str, *actions: Action) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + "/api/v1/actions", data=encode_submission([a.raw for a in actions]), headers={"Content-Type": "application/msgpack"}
        ) as r,
    ):
        assert r.status == 200, await r.text()


# ---- admin commands, JSON logs ------------------------------------------------------------------------


def test_admin_commands_against_a_running_node_with_json_logs(node: NodeProcess, cli: Cli, tmp_path: Path) -> None:
    config = node.data_dir / "coopnet.toml"
    config.write_text(config.read_text().replace('log_format = "text"', 'log_format = "json"'))
    d = ["--data-dir", str(node.data_dir)]
    assert fail_code(cli.run("--json", "admin", "peers", "list", *d)) == "no_admin"  # not running yet
    node.start()
    assert (node.data_dir / ADMIN_URL_FILE).exists() and stat.S_IMODE((node.data_dir / TOKEN_FILE).stat().st_mode) == 0o600

    other = format_id(IdKind.NODE, SigningKey(b"\x09" * 32).public_key)
    assert json.loads(cli.ok("--json", "admin", "peers", "list", *d)) == {"peers": [], "blocked": []}
    assert json.loads(cli.ok("--json", "admin", "peers", "block", other, "--reason", "floods us", *d))["changed"] is True
    listed = json.loads(cli.ok("--json", "admin", "peers", "list", *d))
    assert [(b["id"], b["reason"]) for b in listed["blocked"]] == [(other, "floods us")]
    assert "floods us" in cli.ok("admin", "peers", "list", *d)
    assert json.loads(cli.ok("--json", "admin", "peers", "unblock", other, *d))["changed"] is True
    assert fail_code(cli.run("--json", "admin", "peers", "block", "node_nope", *d)) == "bad_id"

    # Pending: a chain whose first actions are missing.
    genesis, batches = corpus()
    asyncio.run(_post_one(node.url, genesis))
    held = [a for a in batches[0] if a.seq == 2 and a.author != genesis.author][:3]
    asyncio.run(_post_one(node.url, *held))
    pending = json.loads(cli.ok("--json", "admin", "pending", "list", *d))
    assert pending["total"] == 3 and {r["reason"] for r in pending["pending"]} == {"waiting for seq 1"}
    assert "waiting for seq 1" in cli.ok("admin", "pending", "list", *d)
    first = pending["pending"][0]
    assert json.loads(cli.ok("--json", "admin", "pending", "purge", "--id", first["id"], *d)) == {"purged": 1}
    assert json.loads(cli.ok("--json", "admin", "pending", "purge", "--coop", first["coop"], *d)) == {"purged": 2}
    assert cli.run("admin", "pending", "purge", *d).returncode == 2  # says nothing about what to purge

    # The token is what lets the command in.
    token = node.data_dir / TOKEN_FILE
    saved = token.read_text()
    token.write_text("x" * 43 + "\n")
    try:
        assert fail_code(cli.run("--json", "admin", "peers", "list", *d)) == "unauthorized"
    finally:
        token.write_text(saved)
    assert node.terminate() == 0

    lines = [json.loads(line) for line in node.log_path.read_text().splitlines() if line.startswith("{")]
    other_lines = [line for line in node.log_path.read_text().splitlines() if line and not line.startswith(("{", "===="))]
    assert not other_lines, other_lines[:3]
    assert all({"ts", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x["logger"] == "coopnet.node" and "listening on" in x["message"] for x in lines)
    [blocked] = [x for x in lines if x.get("admin_action") == "peers.block"]
    assert blocked["level"] == "warning" and blocked["node"] == other and blocked["reason"] == "floods us"
    assert {x.get("admin_action") for x in lines} >= {"peers.block", "peers.unblock", "pending.purge"}
    assert any("without the right token" in x["message"] for x in lines)


def test_json_formatter_carries_extras_and_tracebacks() -> None:
    record = logging.LogRecord("coopnet.x", logging.ERROR, __file__, 1, "failed %d times", (3,), None)
    record.peer = "node_x"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "error" and doc["logger"] == "coopnet.x" and doc["message"] == "failed 3 times"
    assert doc["peer"] == "node_x" and "ValueError: boom" in doc["exc"]
    assert doc["ts"].endswith("Z") and len(doc["ts"]) == len("2026-01-01T00:00:00.000Z")
