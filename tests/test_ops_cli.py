"""The operator's commands end to end, against real node processes on 127.0.0.1 (``coopnet run``
started by ``tests/test_crash.NodeProcess``) and the real ``coopnet`` command in a subprocess:
backup under load and restore, the admin commands with JSON logs, exposure at ``init``, and
federation files."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.admin import ADMIN_URL_FILE, TOKEN_FILE
from node.config import Federation, PeerAddress, load_config, load_federation_file, render_config
from node.keyfile import read_key_file
from node.node import Node, init_data_dir
from node.ops import JsonFormatter, advertise_problem, loopback_problem
from node.store import MIGRATIONS, SCHEMA_VERSION
from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.charter import DEFAULT_CHARTER
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission
from tests.conftest import TEST_LIMITS, NodeFactory
from tests.fed_helpers import wait_until
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


# ---- export, verify, import ---------------------------------------------------------------------------


class Member:
    """A member key that tracks its chain head per co-op."""

    def __init__(self, seed: int) -> None:
        self.key = SigningKey(hashlib.sha256(b"coopnet ops archive member %d" % seed).digest())
        self.heads: dict[bytes, tuple[int, bytes | None]] = {}

    def found(self, name: str, founders: list[Member]) -> Action:
        charter = {**DEFAULT_CHARTER, "membership": {"policy": "vote", "sponsors": 1}}
        charter["decisions"] = {"default": {"quorum": 50, "threshold": "majority"}, "sanction": {"quorum": 50, "threshold": "majority"}}
        g = sign_genesis(self.key, ts=1_000, body={"name": name, "charter": charter, "founders": [f.key.public_key for f in founders]})
        self.heads[g.id] = (1, g.id)
        return g

    def act(self, coop: bytes, kind: str, body: Any, deps: list[Action] = [], *, seq: int | None = None) -> Action:  # noqa: B006
        head, prev = self.heads.get(coop, (0, None))
        a = sign_action(self.key, coop=coop, seq=head + 1, prev=prev, deps=sorted(d.id for d in deps), ts=2_000, kind=kind, body=body)
        self.heads[coop] = (head + 1, a.id)
        return a


async def acli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The coopnet command without blocking the event loop (an in-process node may be serving)."""
    env = clean_env(cwd)
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "coopnet"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


async def ok(*args: str, cwd: Path) -> Any:
    proc = await acli("--json", *args, cwd=cwd)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


async def governed_coop(url: str) -> tuple[Action, list[Action]]:
    """A co-op with an admission by vote, a tally, an application action and an equivocation."""
    f0, f1, x = Member(1), Member(2), Member(3)
    genesis = f0.found("Archive Co-op", [f1])
    coop = genesis.id
    apply = x.act(coop, "member.apply", {"note": "hello"}, [genesis])
    admit = f0.act(coop, "proposal.open", {"payload": {"member": x.key.public_key}, "title": "Admit x", "type": "admit"}, [apply])
    v0 = f0.act(coop, "vote.cast", {"choice": "yes", "proposal": admit.id}, [admit])
    v1 = f1.act(coop, "vote.cast", {"choice": "yes", "proposal": admit.id}, [admit])
    tally = f1.act(coop, "proposal.tally", {"outcome": "passed", "proposal": admit.id}, [admit, v0, v1])
    ride = x.act(coop, "ride.offer", {"seats": 2}, [tally])
    seq, prev = x.heads[coop]
    one = x.act(coop, "ride.offer", {"seats": 3}, [ride])
    twin = sign_action(x.key, coop=coop, seq=seq + 1, prev=prev, deps=[ride.id], ts=2_000, kind="ride.offer", body={"seats": 4})
    actions = [genesis, apply, admit, v0, v1, tally, ride, one, twin]
    async with aiohttp.ClientSession() as http:
        for a in actions:
            async with http.post(
                url + "/api/v1/actions", data=encode_submission([a.raw]), headers={"Content-Type": "application/msgpack"}
            ) as r:
                assert r.status in (200, 409), await r.text()  # the twin is refused chain_conflict (or replaces)
    return genesis, actions


async def node_view(url: str, coop: bytes) -> dict[str, Any]:
    text = format_id(IdKind.COOP, coop)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        for key, path in (("chains", "/chains"), ("proofs", "/proofs"), ("state", "/state"), ("members", "/members")):
            async with http.get(f"{url}/api/v1/coops/{text}{path}") as r:
                assert r.status == 200, await r.text()
                out[key] = await r.json()
    return out


async def test_export_import_round_trip_between_two_nodes(start_node: NodeFactory, tmp_path: Path) -> None:
    a = await start_node()
    genesis, _ = await governed_coop(a.url)
    coop = format_id(IdKind.COOP, genesis.id)
    before = await node_view(a.url, genesis.id)
    assert len(before["proofs"]["proofs"]) == 1 and before["state"]["members"] == 3

    archive = tmp_path / "coop.archive"
    exported = await ok("export", "--coop", coop, "--out", str(archive), "--data-dir", str(a.config.data_dir), cwd=tmp_path)
    assert exported["actions"] == 8 and exported["proofs"] == 1 and exported["name"] == "Archive Co-op"
    checked = await ok("verify", str(archive), cwd=tmp_path)
    assert checked["coop"] == coop and checked["sha256"] == exported["sha256"] and checked["authors"] == 3

    b_dir = init_data_dir(tmp_path / "b", port=0).data_dir
    imported = await ok("import", str(archive), "--data-dir", str(b_dir), cwd=tmp_path)
    assert imported["statuses"] == {"accepted": 8, "known": 0, "pending": 0, "rejected": 0} and imported["proofs_new"] == 1
    again = await ok("import", str(archive), "--data-dir", str(b_dir), cwd=tmp_path)
    assert again["statuses"]["known"] == 8 and again["proofs_new"] == 0

    cfg = load_config(b_dir / "coopnet.toml", env={})
    b = await Node.start(dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS)))
    try:
        after = await node_view(b.url, genesis.id)
        assert after == before
        assert after["state"]["state_hash"] == before["state"]["state_hash"]
        # A node running on the data directory is never imported into behind its back.
        proc = await acli("--json", "import", str(archive), "--data-dir", str(b_dir), cwd=tmp_path)
        assert proc.returncode == 1 and json.loads(proc.stdout)["error"] == "node_running"
    finally:
        await b.stop()
    # The same co-op exports to the same bytes from either node.
    second = tmp_path / "from-b.archive"
    await ok("export", "--coop", coop, "--out", str(second), "--data-dir", str(b_dir), cwd=tmp_path)
    assert second.read_bytes() == archive.read_bytes()


async def test_a_tampered_archive_is_refused_with_its_reason_and_nothing_is_stored(start_node: NodeFactory, tmp_path: Path) -> None:
    a = await start_node()
    genesis, actions = await governed_coop(a.url)
    archive = tmp_path / "coop.archive"
    await ok(
        "export", "--coop", format_id(IdKind.COOP, genesis.id), "--out", str(archive), "--data-dir", str(a.config.data_dir), cwd=tmp_path
    )
    data = archive.read_bytes()
    tally = actions[5]
    at = data.index(tally.raw) + len(tally.raw) - 10  # inside the tally's signature
    cases = {
        "bad_action": data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :],
        "bad_digest": data[:-1] + bytes([data[-1] ^ 1]),
        "truncated": data[: len(data) // 2],
        "not_an_archive": b"{}",
    }
    b_dir = init_data_dir(tmp_path / "b", port=0).data_dir
    for reason, content in cases.items():
        bad = tmp_path / f"{reason}.archive"
        bad.write_bytes(content)
        for command in (("verify", str(bad)), ("import", str(bad), "--data-dir", str(b_dir))):
            proc = await acli("--json", *command, cwd=tmp_path)
            assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
            doc = json.loads(proc.stdout)
            assert (doc["error"], doc["reason"]) == ("bad_archive", reason), (command, doc)
            assert "Traceback" not in proc.stderr
    assert (
        "bad_signature"
        in json.loads((await acli("--json", "verify", str(tmp_path / "bad_action.archive"), cwd=tmp_path)).stdout)["message"]
    )
    assert not (b_dir / "coopnet.sqlite3").exists()  # nothing was stored: the store was never even opened


# ---- exposure ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:8470", "[::]:8470", ":::8470"])
def test_init_refuses_every_interface_without_an_advertised_url(cli: Cli, tmp_path: Path, listen: str) -> None:
    proc = cli.run("init", "--data-dir", str(tmp_path / "d"), "--listen", listen)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    message = " ".join(proc.stderr.split())
    assert "peers would be told http://" in message and "--advertise-url" in message, message
    assert not (tmp_path / "d").exists()
    done = json.loads(
        cli.ok("--json", "init", "--data-dir", str(tmp_path / "d"), "--listen", listen, "--advertise-url", "https://coop.example")
    )
    assert load_config(Path(done["config"]), env={}).federation.advertise_url == "https://coop.example"


def test_advertise_problem_names_what_peers_would_be_told() -> None:
    assert advertise_problem("127.0.0.1", 8470, "") is None
    assert advertise_problem("0.0.0.0", 8470, "https://x.example") is None
    text = advertise_problem("0.0.0.0", 8470, "")
    assert text is not None and "http://0.0.0.0:8470" in text
    text = advertise_problem("::", 9000, "")
    assert text is not None and "http://[::]:9000" in text


async def test_loopback_advertised_with_remote_peers_warns() -> None:
    assert await loopback_problem("http://127.0.0.1:8470", ["http://127.0.0.1:8471", "http://localhost:8472"]) is None
    assert await loopback_problem("http://192.0.2.10:8470", ["http://192.0.2.11:8470"]) is None
    text = await loopback_problem("http://127.0.0.1:8470", ["http://127.0.0.1:8471", "http://192.0.2.11:8470"])
    assert text is not None and "192.0.2.11" in text and "advertise_url" in text
    assert await loopback_problem("http://[::1]:8470", ["http://[2001:db8::1]:8470"]) is not None


async def test_a_node_advertising_loopback_to_remote_peers_says_so_in_its_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fed = Federation(
        name="f",
        peers=(PeerAddress("http://192.0.2.11:8470", format_id(IdKind.NODE, SigningKey(b"\x05" * 32).public_key)),),
        request_timeout=0.5,
    )
    cfg = init_data_dir(tmp_path / "d", port=0, federation=fed)
    caplog.set_level(logging.WARNING, logger="coopnet.node")
    node = await Node.start(dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS)))
    try:

        async def warned() -> bool:
            return any("loopback address" in r.getMessage() and "192.0.2.11" in r.getMessage() for r in caplog.records)

        await wait_until(warned, within=10, what="the loopback warning")
    finally:
        await node.stop()


# ---- federation files ------------------------------------------------------------------------------------


def test_federation_new_and_add_peer_write_a_file_init_can_join(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    first = json.loads(cli.ok("--json", "init", "--data-dir", str(tmp_path / "first"), "--listen", f"127.0.0.1:{port}"))
    coop = "coop_" + "a" * 52
    fed_file = tmp_path / "federation.toml"
    made = json.loads(
        cli.ok(
            "--json",
            "federation",
            "new",
            "Valley Co-ops",
            "--open",
            "--coop",
            coop,
            "--out",
            str(fed_file),
            "--data-dir",
            str(tmp_path / "first"),
        )
    )
    assert made["peers"] == [{"url": f"http://127.0.0.1:{port}", "id": first["node_id"]}]
    fed = load_federation_file(fed_file)
    assert (fed.name, fed.open, fed.replicate) == ("Valley Co-ops", True, (coop,))
    assert fail_code(cli.run("--json", "federation", "new", "X", "--out", str(fed_file), "--data-dir", str(tmp_path / "first"))) == "exists"

    second = format_id(IdKind.NODE, SigningKey(b"\x02" * 32).public_key)
    third = format_id(IdKind.NODE, SigningKey(b"\x03" * 32).public_key)
    done = json.loads(cli.ok("--json", "federation", "add-peer", str(fed_file), "--url", "https://b.example:8470/", "--id", second))
    assert done["peers"][-1] == {"url": "https://b.example:8470", "id": second}
    before = fed_file.read_text()
    bad = {
        ("http://c.example:8470/api", third): "origin only",
        ("http://c.example:8470?x=1", third): "origin only",
        ("http://user:pw@c.example:8470", third): "user",
        ("ftp://c.example", third): "http",
        ("http://0.0.0.0:8470", third): "no address",
        ("http://c.example:99999", third): "not a URL",
        ("http://c.example:8470", "node_nope"): "node id",
        ("http://c.example:8470", second): "already a peer",
        ("https://b.example:8470", third): "already a peer",
    }
    for (url, node_id), words in bad.items():
        proc = cli.run("--json", "federation", "add-peer", str(fed_file), "--url", url, "--id", node_id)
        assert fail_code(proc) == "bad_peer", (url, node_id)
        assert words in json.loads(proc.stdout)["message"] or words == "node id", (url, json.loads(proc.stdout)["message"])
    assert fed_file.read_text() == before
    assert (
        fail_code(cli.run("--json", "federation", "add-peer", str(tmp_path / "absent.toml"), "--url", "http://x:1", "--id", third))
        == "bad_federation_file"
    )

    # The file is what a new operator joins with.
    joined = json.loads(
        cli.ok("--json", "init", "--data-dir", str(tmp_path / "joiner"), "--listen", "127.0.0.1:0", "--join", str(fed_file))
    )
    assert joined["federation"] == "Valley Co-ops" and joined["peers"] == 2


def test_federation_new_needs_a_reachable_url(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "d"
    init_data_dir(data, port=0)
    proc = cli.run("--json", "federation", "new", "F", "--out", str(tmp_path / "f.toml"), "--data-dir", str(data))
    assert fail_code(proc) == "no_url" and "--url" in json.loads(proc.stdout)["message"]
    (data / "coopnet.toml").write_text(render_config("0.0.0.0", 8470))
    proc = cli.run("--json", "federation", "new", "F", "--out", str(tmp_path / "f.toml"), "--data-dir", str(data))
    assert fail_code(proc) == "no_url" and "http://0.0.0.0:8470" in json.loads(proc.stdout)["message"]
    made = json.loads(
        cli.ok(
            "--json", "federation", "new", "F", "--out", str(tmp_path / "f.toml"), "--data-dir", str(data), "--url", "https://me.example"
        )
    )
    assert made["peers"][0]["url"] == "https://me.example"


# ---- the node key ----------------------------------------------------------------------------------------


async def test_rotate_node_key_keeps_the_store_and_the_old_key(tmp_path: Path) -> None:
    cfg = init_data_dir(tmp_path / "d", port=0)
    old = read_key_file(cfg.key_path, "node")
    node = await Node.start(dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS)))
    try:
        genesis, _ = corpus()
        await _post_one(node.url, genesis)
        proc = await acli("--json", "rotate-node-key", "--data-dir", str(cfg.data_dir), cwd=tmp_path)
        assert proc.returncode == 1 and json.loads(proc.stdout)["error"] == "node_running"
    finally:
        await node.stop()
    assert read_key_file(cfg.key_path, "node").public_key == old.public_key  # untouched while it ran
    done = await ok("rotate-node-key", "--data-dir", str(cfg.data_dir), cwd=tmp_path)
    new = read_key_file(cfg.key_path, "node")
    assert done["node_id"] == format_id(IdKind.NODE, new.public_key) != done["old_node_id"] == format_id(IdKind.NODE, old.public_key)
    aside = Path(done["old_key"])
    assert read_key_file(aside, "node").public_key == old.public_key and stat.S_IMODE(os.stat(aside).st_mode) == 0o600
    node = await Node.start(dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **TEST_LIMITS)))
    try:
        assert node.node_id == new.public_key
        assert (await node.store.counts())["coops"] == 1
    finally:
        await node.stop()


def test_run_refuses_an_admin_token_others_can_read(cli: Cli, tmp_path: Path) -> None:
    cli.ok("init", "--data-dir", str(tmp_path / "d"), "--listen", f"127.0.0.1:{free_port()}")
    (tmp_path / "d" / TOKEN_FILE).chmod(0o644)
    proc = cli.run("run", "--data-dir", str(tmp_path / "d"))
    assert proc.returncode == 1 and "cannot_start" in proc.stderr and "readable by others" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_on_a_busy_data_dir_or_a_newer_store_says_why(node: NodeProcess, cli: Cli) -> None:
    node.start()
    proc = cli.run("run", "--data-dir", str(node.data_dir))
    assert proc.returncode == 1 and "cannot_start" in proc.stderr and "in use by coopnet run" in proc.stderr, proc.stderr
    assert node.terminate() == 0
    with sqlite3.connect(node.data_dir / "coopnet.sqlite3") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    proc = cli.run("run", "--data-dir", str(node.data_dir))
    assert proc.returncode == 1 and "cannot_start" in proc.stderr and "newer than this coopnet" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_of_an_unknown_coop_or_an_unreadable_store_is_refused(cli: Cli, tmp_path: Path) -> None:
    data = init_data_dir(tmp_path / "d", port=0).data_dir
    coop = "coop_" + "a" * 52
    out = tmp_path / "x.archive"
    assert fail_code(cli.run("--json", "export", "--coop", coop, "--out", str(out), "--data-dir", str(data))) == "no_store"
    genesis, _ = corpus()
    db = data / "coopnet.sqlite3"
    with sqlite3.connect(db) as conn:
        for script in MIGRATIONS:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute(
            "INSERT INTO actions (id, coop, author, seq, kind, ts, raw, received_at) VALUES (?, ?, ?, 1, 'coop.genesis', 1, ?, 1)",
            (genesis.id, genesis.id, genesis.author, genesis.raw[:-1] + b"\x00"),
        )
    assert fail_code(cli.run("--json", "export", "--coop", coop, "--out", str(out), "--data-dir", str(data))) == "unknown_coop"
    proc = cli.run("--json", "export", "--coop", format_id(IdKind.COOP, genesis.id), "--out", str(out), "--data-dir", str(data))
    assert fail_code(proc) == "bad_store"
    assert fail_code(cli.run("--json", "export", "--coop", "coop_x", "--out", str(out), "--data-dir", str(data))) == "bad_id"
    assert not out.exists()
