"""The ``coopnet`` command end to end, against a real node process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.node import URL_FILE
from protocol.ids import IdKind, parse_id

COOPNET = Path(sys.executable).parent / "coopnet"
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 30.0
CLI_TIMEOUT_S = 60.0


def free_port() -> int:
    """A port nothing listens on right now (bound to 127.0.0.1:0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path) -> dict[str, str]:
    """No COOPNET_* from the caller's environment; a private HOME; wide output for tables."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", "COLUMNS": "250"}


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path
    node_url: str | None = None

    def argv(self, args: tuple[str, ...], with_node: bool) -> list[str]:
        node = ["--node", self.node_url] if with_node and self.node_url else []
        return [str(COOPNET), *node, *args]

    def run(self, *args: str, with_node: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(args, with_node), capture_output=True, text=True, env=self.env, cwd=self.cwd, timeout=CLI_TIMEOUT_S, check=False
        )

    def ok(self, *args: str, with_node: bool = True) -> str:
        proc = self.run(*args, with_node=with_node)
        assert proc.returncode == 0, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))

    def many(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands side by side (each CLI start costs an interpreter start)."""
        procs = [
            subprocess.Popen(self.argv(c, True), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, cwd=self.cwd)
            for c in commands
        ]
        out = []
        for c, p in zip(commands, procs, strict=True):
            stdout, stderr = p.communicate(timeout=CLI_TIMEOUT_S)
            out.append(subprocess.CompletedProcess(list(c), p.returncode, stdout, stderr))
        return out


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class RunningNode:
    data_dir: Path
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        """SIGTERM, then wait (bounded) for the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_DEADLINE_S)


def start_node(cli: Cli, data_dir: Path) -> RunningNode:
    """``coopnet init`` then ``coopnet run`` as a subprocess; wait until /healthz answers."""
    port = free_port()
    out = cli.json("init", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}")
    assert out["listen"] == f"127.0.0.1:{port}" and out["data_dir"] == str(data_dir)
    parse_id(IdKind.NODE, out["node_id"])
    log = data_dir / "node.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(COOPNET), "run", "--data-dir", str(data_dir)], stdout=log_file, stderr=subprocess.STDOUT, env=cli.env, cwd=cli.cwd
        )
    node = RunningNode(data_dir, "", proc, log)
    deadline = time.monotonic() + START_DEADLINE_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"node exited with {proc.returncode}: {log.read_text()}")
            url_file = data_dir / URL_FILE
            if url_file.exists():
                url = url_file.read_text().strip()
                try:
                    if get_json(url + "/healthz").get("ok") is True:
                        node.url = url
                        return node
                except (urllib.error.URLError, ConnectionError, ValueError):
                    pass
            time.sleep(0.05)  # poll interval, not a wait for readiness: the deadline bounds the loop
        raise AssertionError(f"node not ready within {START_DEADLINE_S} s: {log.read_text()}")
    except BaseException:
        proc.kill()
        proc.wait(timeout=STOP_DEADLINE_S)
        raise


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def running(home: Path) -> Iterator[tuple[RunningNode, Cli]]:
    cli = Cli(clean_env(home), home)
    node = start_node(cli, home / "data")
    assert node.url == f"http://127.0.0.1:{node.url.rsplit(':', 1)[1]}"
    cli.node_url = node.url
    yield node, cli
    try:
        status = node.stop()  # SIGTERM at the end: a clean exit within the deadline
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=STOP_DEADLINE_S)
    assert status == 0, node.log.read_text()


def test_init_refuses_an_existing_data_dir(running: tuple[RunningNode, Cli]) -> None:
    node, cli = running
    config_before = (node.data_dir / "coopnet.toml").read_bytes()
    key_before = (node.data_dir / "node.key").read_bytes()
    plain, as_json = cli.many(
        ("init", "--data-dir", str(node.data_dir), "--listen", "127.0.0.1:1"),
        ("--json", "init", "--data-dir", str(node.data_dir)),
    )
    assert plain.returncode == 1
    assert "already exists" in plain.stderr and "exists" in plain.stderr
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"] == "exists"
    assert (node.data_dir / "coopnet.toml").read_bytes() == config_before
    assert (node.data_dir / "node.key").read_bytes() == key_before
    assert stat.S_IMODE((node.data_dir / "node.key").stat().st_mode) == 0o600


def test_keygen_writes_0600_and_refuses_to_overwrite(running: tuple[RunningNode, Cli]) -> None:
    _, cli = running
    key = cli.cwd / "keygen-test.key"
    out = cli.json("keygen", "--out", str(key))
    assert out["key_file"] == str(key)
    parse_id(IdKind.MEMBER, out["member_id"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    again = cli.run("keygen", "--out", str(key))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert key.read_bytes() == before


def test_create_post_list_show_status(running: tuple[RunningNode, Cli]) -> None:
    node, cli = running
    key = cli.cwd / "founder.key"
    human_keygen = cli.ok("keygen", "--out", str(key))
    assert "member id" in human_keygen
    member = tomllib.loads(key.read_text())["id"]

    # coop create: readable output with the id, and --json for scripts.
    human = cli.ok("coop", "create", "Valley Food Hub", "--purpose", "short supply chains", "--key", str(key))
    coop = next(word for word in human.split() if word.startswith("coop_"))
    parse_id(IdKind.COOP, coop)
    assert "Valley Food Hub" in human and "accepted" in human
    second = cli.json("coop", "create", "Ride Share", "--key", str(key))
    assert second["name"] == "Ride Share" and second["founder"] == member and second["status"] == "accepted"
    assert second["coop"] != coop

    # post finds seq and prev by itself: the genesis is seq 1.
    first = cli.json("post", "--coop", coop, "--kind", "offer.produce", "--body", '{"item": "carrots", "kg": 12}', "--key", str(key))
    assert (first["seq"], first["status"], first["kind"]) == (2, "accepted", "offer.produce")
    then = cli.ok("post", "--coop", coop, "--kind", "offer.produce", "--body", '{"item": "leeks", "kg": 4}', "--key", str(key), "--json")
    then_obj = json.loads(then)
    assert (then_obj["seq"], then_obj["status"]) == (3, "accepted")

    listing, coops, action, coop_shown, status = cli.many(
        ("--json", "list", coop),
        ("list",),
        ("--json", "show", then_obj["id"]),
        ("show", coop),
        ("status", "--json"),
    )
    for p in (listing, coops, action, coop_shown, status):
        assert p.returncode == 0, (p.args, p.stdout, p.stderr)
    actions = json.loads(listing.stdout)["actions"]
    assert [(a["seq"], a["kind"]) for a in actions] == [(1, "coop.genesis"), (2, "offer.produce"), (3, "offer.produce")]
    assert actions[2]["prev"] == first["id"] and actions[2]["body"] == {"item": "leeks", "kg": 4}
    assert "Valley Food Hub" in coops.stdout and "Ride Share" in coops.stdout
    shown = json.loads(action.stdout)
    assert shown["id"] == then_obj["id"] and shown["author"] == member and shown["status"] == "stored"
    assert "Valley Food Hub" in coop_shown.stdout and "short supply chains" in coop_shown.stdout
    info = json.loads(status.stdout)
    assert info["counts"]["coops"] >= 2 and info["counts"]["actions"] >= 4
    assert info["protocol"] == 1 and info["node_id"].startswith("node_")
    # The node's own view agrees with what the CLI reported.
    chains = get_json(f"{node.url}/api/v1/coops/{coop}/chains?author={member}")["chains"]
    assert chains == [{"author": member, "seq": 3, "head": then_obj["id"], "pending": 0}]


def test_errors_exit_1_with_a_message(running: tuple[RunningNode, Cli]) -> None:
    _, cli = running
    key = cli.cwd / "errors.key"
    cli.ok("keygen", "--out", str(key))
    coop = cli.json("coop", "create", "Errors Co-op", "--key", str(key))["coop"]
    closed = f"http://127.0.0.1:{free_port()}"
    unknown_coop = "coop_" + "a" * 52
    results = cli.many(
        ("post", "--coop", coop, "--kind", "offer.produce", "--body", '{"kg": 1.25}', "--key", str(key)),
        ("post", "--coop", "coop_nope", "--kind", "offer.produce", "--key", str(key)),
        ("post", "--coop", unknown_coop, "--kind", "offer.produce", "--key", str(key)),
        ("post", "--coop", coop, "--kind", "Not A Kind", "--key", str(key)),
        ("post", "--coop", coop, "--kind", "offer.produce", "--body", "{nope", "--key", str(key)),
        ("post", "--coop", coop, "--kind", "offer.produce", "--key", str(cli.cwd / "missing.key")),
        ("show", "xyz_123"),
        ("show", "act_" + "a" * 52),
    )
    expected = ["bad_schema", "bad_id", "unknown_coop", "bad_schema", "bad_body", "bad_key_file", "bad_id", "not_found"]
    for proc, code in zip(results, expected, strict=True):
        assert proc.returncode == 1, (proc.args, proc.returncode, proc.stdout, proc.stderr)
        assert "error" in proc.stderr and code in proc.stderr, (proc.args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert "float" in results[0].stderr or "integer" in results[0].stderr

    unreachable_plain = subprocess.run(
        [str(COOPNET), "--node", closed, "status"], capture_output=True, text=True, env=cli.env, cwd=cli.cwd, timeout=CLI_TIMEOUT_S
    )
    unreachable_json = subprocess.run(
        [str(COOPNET), "--node", closed, "--json", "coop", "create", "X", "--key", str(key)],
        capture_output=True,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
        timeout=CLI_TIMEOUT_S,
    )
    assert unreachable_plain.returncode == 1 and "unreachable" in unreachable_plain.stderr
    assert unreachable_json.returncode == 1 and json.loads(unreachable_json.stdout)["error"] == "unreachable"
    # Nothing the errors touched was stored.
    listing = cli.json("list", coop)
    assert [a["seq"] for a in listing["actions"]] == [1]


def test_run_on_a_port_in_use_exits_1(tmp_path: Path) -> None:
    cli = Cli(clean_env(tmp_path), tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli.ok("init", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}")
        proc = cli.run("run", "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "cannot_start" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / URL_FILE).exists()


def test_sigterm_stops_the_node_with_status_0(tmp_path: Path) -> None:
    cli = Cli(clean_env(tmp_path), tmp_path)
    node = start_node(cli, tmp_path / "data")
    try:
        assert node.stop() == 0
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=STOP_DEADLINE_S)
    assert not (node.data_dir / URL_FILE).exists()
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get_json(node.url + "/healthz")
