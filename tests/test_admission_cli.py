"""Admission through the ``coopnet`` command, against a real node process on 127.0.0.1: founding
by invite, and a newcomer who posts before applying."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
from pathlib import Path

from node.node import URL_FILE
from tests.test_cli import COOPNET, START_DEADLINE_S, STOP_DEADLINE_S, Cli, RunningNode, clean_env, free_port, get_json


def start_initialised(cli: Cli, data_dir: Path) -> RunningNode:
    log = data_dir / "node.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(COOPNET), "run", "--data-dir", str(data_dir)], stdout=log_file, stderr=subprocess.STDOUT, env=cli.env, cwd=cli.cwd
        )
    node = RunningNode(data_dir, "", proc, log)
    deadline = time.monotonic() + START_DEADLINE_S
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
        time.sleep(0.05)  # poll interval; the deadline bounds the loop
    proc.kill()
    proc.wait(timeout=STOP_DEADLINE_S)
    raise AssertionError(f"node not ready within {START_DEADLINE_S} s: {log.read_text()}")


def test_founding_by_invite_and_a_newcomer_who_posts_before_applying(tmp_path: Path) -> None:
    cli = Cli(clean_env(tmp_path), tmp_path)
    data = tmp_path / "data"
    cli.ok("init", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}")
    config = data / "coopnet.toml"
    text = config.read_text()
    assert '# founding = "open"' in text  # coopnet init shows the key with its default
    config.write_text(text.replace('# founding = "open"', 'founding = "invite"'))
    node = start_initialised(cli, data)
    try:
        cli.node_url = node.url
        cli.ok("keygen", "--out", str(tmp_path / "founder.key"))
        cli.ok("keygen", "--out", str(tmp_path / "alice.key"))
        refused = cli.run("coop", "create", "Invited Co-op", "--key", str(tmp_path / "founder.key"))
        assert refused.returncode == 1 and "founding_refused" in refused.stderr and "invite" in refused.stderr

        made = cli.json("invite", "new", "--data-dir", str(data), "--note", "for the valley")  # the node is running
        created = cli.json("coop", "create", "Invited Co-op", "--key", str(tmp_path / "founder.key"), "--invite", made["token"])
        assert created["status"] == "accepted"
        (listed,) = cli.json("invite", "list", "--data-dir", str(data))["invites"]
        assert listed["used_by"] == created["coop"] and listed["note"] == "for the valley" and listed["hash"] == made["hash"]
        again = cli.run("coop", "create", "Second", "--key", str(tmp_path / "alice.key"), "--invite", made["token"])
        assert again.returncode == 1 and "founding_refused" in again.stderr

        # A newcomer posts before applying: held, and told so; applying gets them in.
        coop = created["coop"]
        held_run = cli.run(
            "--json", "post", "--coop", coop, "--kind", "offer.produce", "--body", '{"kg": 1}', "--key", str(tmp_path / "alice.key")
        )
        assert held_run.returncode == 1  # not stored: the CLI says so and exits 1
        held = json.loads(held_run.stdout)
        assert held["status"] == "held" and "member.apply" in held["message"]
        applied = cli.json("member", "apply", "--coop", coop, "--key", str(tmp_path / "alice.key"))
        assert applied["status"] == "accepted" and applied["seq"] == 1
        posted = cli.json("post", "--coop", coop, "--kind", "offer.produce", "--body", '{"kg": 2}', "--key", str(tmp_path / "alice.key"))
        assert (posted["status"], posted["seq"]) == ("accepted", 2)
        info = get_json(node.url + "/api/v1/node")
        assert info["admission"]["founding"] == "invite" and info["counts"]["proofs"] == 0
    finally:
        node.stop()
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=STOP_DEADLINE_S)
