"""Cluster tests: ``scripts/cluster.py`` driving real node processes on 127.0.0.1.

Each scenario starts a cluster in its own temporary ``--dir`` on free ports, drives it through the
script's command line exactly as a tester would (``up``, ``load``, ``partition``, ``heal``,
``kill``, ``restart``, ``wait-converged``, ``verify``, ``down``) and always tears it down. Waits
are on conditions with deadlines; every loop is bounded.

The scenarios catch up in small fetches (``fetch_batch = 100``) so that catch-up takes several
round trips and test 4 can kill the node in the middle of it. A large gap caught up with the
nodes' default limits is covered by ``test_catch_up_of_a_large_gap_with_default_limits`` (it once
failed: a peer reply larger than one socket read was cut short).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from protocol.ids import IdKind, parse_id
from protocol.messages import encode_submission

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
SCRIPT = SCRIPTS / "cluster.py"
sys.path.insert(0, str(SCRIPTS))

import cluster_lib as cl  # noqa: E402  (scripts/ is not a package)

pytestmark = pytest.mark.slow

COMMAND_TIMEOUT = 120.0  # seconds for one cluster.py command
POLL_S = 0.02

# Settings of the scenario clusters: small catch-up fetches (see the module docstring), fast
# anti-entropy, validation in the event loop (five nodes share two cores), load batches well
# under the fetch size.
SCENARIO_CONFIG = """
[cluster]
interval = 0.5
verify_workers = 0
fetch_batch = 100
max_batch_actions = 100
request_timeout = 5.0

[load]
members = 20
batch = 25
concurrency = 4
"""


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / POLL_S) + 10):
        if condition():
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def node_counts(url: str) -> dict[str, int] | None:
    """The node's counts, or None if it does not answer (yet)."""
    try:
        with urllib.request.urlopen(url + "/api/v1/node", timeout=2.0) as resp:
            return dict(json.loads(resp.read())["counts"])
    except (OSError, ValueError):
        return None


@dataclass
class Cluster:
    state: Path
    config: Path | None
    background: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        cmd = [sys.executable, str(SCRIPT), "--dir", str(self.state)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + list(args)

    def run(self, *args: str, expect: int | None = 0, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
        if expect is not None:
            assert res.returncode == expect, (
                f"cluster.py {' '.join(args)} exited {res.returncode}, not {expect}:\n{res.stdout}\n{res.stderr}"
            )
        return res

    def json(self, *args: str, expect: int | None = 0) -> Any:
        return json.loads(self.run(*args, "--json", expect=expect).stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.background.append(proc)
        return proc

    def manifest(self) -> cl.Manifest:
        return cl.read_manifest(self.state)

    def status(self) -> dict[str, Any]:
        return dict(self.json("status"))

    def teardown(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        if not cl.manifest_path(self.state).exists():
            return
        res = self.run("down", "--timeout", "10", expect=None, timeout=60)
        m = self.manifest()
        if res.returncode != 0 or any(cl.alive(e) for e in m.nodes):
            cl.stop_all(self.state, 5.0)  # in-process fallback; raises if a node survives it
        assert not any(cl.alive(e) for e in self.manifest().nodes)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(config_text)``: a cluster helper in a fresh directory; always torn down."""
    made: list[Cluster] = []

    def make(config: str | None = SCENARIO_CONFIG) -> Cluster:
        n = len(made)
        path = None
        if config is not None:
            path = tmp_path / f"cluster{n}.toml"
            path.write_text(config)
        c = Cluster(tmp_path / f"cluster{n}", path)
        made.append(c)
        return c

    try:
        yield make
    finally:
        problems = []
        for c in made:
            try:
                c.teardown()
            except Exception as e:
                problems.append(f"{c.state}: {e}")
        assert not problems, problems


def assert_all_hold(c: Cluster, actions: int) -> dict[str, Any]:
    st = c.status()
    up = [n for n in st["nodes"] if n["state"] == "up"]
    assert len(up) == len(st["nodes"]), st
    assert {n["digest"] for n in up} == {up[0]["digest"]}, st
    assert [n["actions"] for n in up] == [actions] * len(up), st
    assert [n["pending"] for n in up] == [0] * len(up), st
    assert st["converged"] is True
    return st


# ---- 1. load, converge ---------------------------------------------------------------------------


def test_load_converges_on_every_node(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.run("up", "5", "--topology", "full")
    m = c.manifest()
    assert len(m.nodes) == 5 and m.coop is not None
    assert all(e.peers == [i for i in range(5) if i != e.index] for e in m.nodes)
    assert len({e.port for e in m.nodes}) == 5 and all(e.host == "127.0.0.1" for e in m.nodes)

    report = c.json("load", "--count", "2000")
    assert report["ok"], report
    assert report["accepted"] + report["known"] + report["pending"] == 2000, report
    assert report["rejected"] == 0 and report["refused"] == []

    c.run("wait-converged", "--timeout", "60")
    assert_all_hold(c, 2001)  # the genesis and 2000 member actions
    c.run("verify")

    c.run("down")
    st = c.status()
    assert [n["state"] for n in st["nodes"]] == ["down"] * 5
    assert all(e.pid is None for e in c.manifest().nodes)


# ---- 2. partition, heal --------------------------------------------------------------------------


def test_partition_then_heal(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.run("up", "5", "--topology", "ring")
    c.run("partition", "0,1/2,3,4")
    assert c.manifest().partition == [[0, 1], [2, 3, 4]]

    # Each side gets its own members, so each side is complete by itself.
    a = c.json("load", "--count", "400", "--nodes", "0,1", "--members", "10", "--first-member", "0")
    b = c.json("load", "--count", "400", "--nodes", "2,3,4", "--members", "10", "--first-member", "10")
    assert a["ok"] and b["ok"], (a, b)
    c.run("wait-converged", "--nodes", "0,1", "--timeout", "30")
    c.run("wait-converged", "--nodes", "2,3,4", "--timeout", "30")

    # The sides must not have met: wait-converged gives up and says how they differ.
    res = c.run("wait-converged", "--timeout", "2", expect=1)
    assert "differs" in res.stdout
    st = c.status()
    assert [n["actions"] for n in st["nodes"]] == [401] * 5
    assert len({n["digest"] for n in st["nodes"]}) == 2
    assert st["nodes"][0]["digest"] == st["nodes"][1]["digest"] != st["nodes"][2]["digest"]

    # Node 4 (ring peers 3 and 0) comes back from kill -9 still cut off from node 0.
    c.run("kill", "4")
    c.run("restart", "4")
    c.run("wait-converged", "--nodes", "2,3,4", "--timeout", "30")
    c.run("wait-converged", "--nodes", "0,4", "--timeout", "2", expect=1)
    st = c.status()
    assert st["nodes"][4]["digest"] == st["nodes"][2]["digest"] != st["nodes"][0]["digest"]

    c.run("heal")
    assert c.manifest().partition is None
    c.run("wait-converged", "--timeout", "60")
    assert_all_hold(c, 801)

    # Chains continue across the healed cluster, then every acknowledged action is everywhere.
    again = c.json("load", "--count", "200")
    assert again["ok"], again
    c.run("wait-converged", "--timeout", "60")
    assert_all_hold(c, 1001)
    c.run("verify")


# ---- 3. kill -9 during load ----------------------------------------------------------------------


def test_kill_during_load(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.run("up", "5")
    acks = c.state / cl.ACKS
    load = c.start("load", "--count", "3000", "--rate", "1000", "--json")

    def acknowledged() -> int:
        return len(acks.read_text().splitlines()) if acks.exists() else 0

    wait_for("the load to be under way", lambda: acknowledged() >= 600 or load.poll() is not None, 60)
    assert load.poll() is None, "the load ended before the kill"
    c.run("kill", "2")
    assert not cl.alive(c.manifest().nodes[2])
    assert acknowledged() < 3000, "the kill came after the load"

    out, errs = load.communicate(timeout=COMMAND_TIMEOUT)
    assert load.returncode == 0, f"{out}\n{errs}"
    report = json.loads(out)
    assert report["accepted"] + report["known"] + report["pending"] == 3000, report
    assert report["lost_nodes"] in ([], [2]), report

    c.run("restart", "2")
    c.run("wait-converged", "--timeout", "60")
    assert_all_hold(c, 3001)
    c.run("verify")


# ---- 4. kill -9 during catch-up -------------------------------------------------------------------


def test_kill_during_catch_up(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.run("up", "5")
    c.run("kill", "4")
    assert c.json("load", "--count", "3000")["ok"]
    c.run("wait-converged", "--timeout", "60")  # nodes 0-3; node 4 is down
    target = 3001
    url = c.manifest().nodes[4].url

    caught = False
    seen = 0
    for _attempt in range(3):
        # Restart in-process, not through the command, to watch node 4 from its first moment.
        cl.restart_node(c.state, 4, wait=False)
        deadline = time.monotonic() + 60
        state = "starting"
        for _ in range(int(60 / POLL_S)):
            counts = node_counts(url)
            if counts is not None and 1 < counts["actions"] < target:
                seen = counts["actions"]
                state = "catching up"
                break
            if counts is not None and counts["actions"] >= target:
                state = "caught up"
                break
            assert time.monotonic() < deadline, f"node 4 did not start catching up: {counts}"
            time.sleep(POLL_S)
        cl.kill_node(c.state, 4)
        if state == "catching up":
            caught = True
            break
        # It caught up between two looks: make a bigger gap and try again.
        assert c.json("load", "--count", "1500")["ok"]
        target += 1500
    assert caught, "never saw node 4 in the middle of its catch-up"

    # What node 4 reported as stored before the kill is still there when it comes back.
    c.run("restart", "4")
    counts = node_counts(url)
    assert counts is not None and counts["actions"] >= seen, (counts, seen)
    c.run("wait-converged", "--timeout", "60")
    assert_all_hold(c, target)
    c.run("verify")


# ---- the tool itself ---------------------------------------------------------------------------


def test_configs_cluster_toml_is_the_defaults() -> None:
    """configs/cluster.toml documents every setting with the script's built-in default."""
    path = ROOT / "configs" / "cluster.toml"
    assert cl.load_settings(path) == cl.Settings()
    text = path.read_text()
    for name in cl.SETTINGS_TABLES["cluster"] + cl.SETTINGS_TABLES["load"]:
        assert f"\n{name} = " in text, f"{name} is not documented in {path}"


def test_bad_settings_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    for text, words in (
        ("[cluster]\nnodez = 3\n", "nodez"),
        ("[cluster]\ntopology = 'star'\n", "topology"),
        ("[load]\nbatch = 'ten'\n", "load.batch"),
        ("[other]\n", "other"),
        ("[load]\nbatch = 5000\n", "max_batch_actions"),
    ):
        bad.write_text(text)
        with pytest.raises(cl.ClusterError, match=words):
            cl.load_settings(bad)


@pytest.mark.parametrize("topology", cl.TOPOLOGIES)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_topologies_are_symmetric_and_connected(topology: str, n: int) -> None:
    import random

    k = min(2, max(1, n - 1))
    peers = cl.topology_peers(n, topology, k, random.Random(n))
    for i, ps in enumerate(peers):
        assert i not in ps
        assert all(i in peers[p] for p in ps), "a closed federation refuses unlisted peers: links must go both ways"
        if topology == "random-k" and n > 1:
            assert len(ps) >= k
    edges = {(min(a, b), max(a, b)) for a, ps in enumerate(peers) for b in ps}
    assert len(cl._components(n, edges)) == 1
    if topology == "ring" and n > 2:
        assert all(len(ps) == 2 for ps in peers)


def test_partition_specs() -> None:
    assert cl.parse_partition("0,1/2,3,4", 5) == [[0, 1], [2, 3, 4]]
    assert cl.blocked_by([[0, 1], [2, 3, 4]], 3) == [0, 1]
    assert cl.blocked_by(None, 3) == []
    for spec, words in (("0,1/2,3", "in no group"), ("0,1/1,2,3,4", "two groups"), ("0,1,2,3,4", "two groups"), ("0/x", "not a node")):
        with pytest.raises(cl.ClusterError, match=words):
            cl.parse_partition(spec, 5)


def test_member_actions_are_deterministic() -> None:
    """Signing a member's next action twice gives the same bytes: resending after a lost answer,
    or re-running a load that did not save its heads, can never make a member equivocate."""
    seed = cl.new_seed("determinism")
    genesis = cl.make_genesis(seed, 1_700_000_000_000, "x")
    key = cl.member_key(seed, 3)
    one = cl.member_action(key, 3, genesis.id, 1, None, 1_700_000_000_000)
    assert one.raw == cl.member_action(key, 3, genesis.id, 1, None, 1_700_000_000_000).raw
    two = cl.member_action(key, 3, genesis.id, 2, one.id, 1_700_000_000_000)
    assert two.prev == one.id and two.seq == 2


def test_usage_errors_exit_2(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    assert "no cluster" in c.run("status", expect=2).stderr
    assert "--netns" in c.run("up", "2", "--latency", "5", expect=2).stderr
    if os.geteuid() != 0:
        assert "root" in c.run("up", "2", "--netns", expect=2).stderr
    assert "--count" in c.run("load", expect=2).stderr


def _netns_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    return subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode == 0


def _leftovers(state: Path, n: int) -> list[str]:
    """Links and namespaces of this cluster's --netns naming still on the host."""
    bridge, spaces, _veths = cl.netns_names(state, n)
    tag = bridge[: -len("br")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = [line.split(": ")[1].split("@")[0] for line in links.splitlines()]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()
    return [x for x in names if x.startswith(tag)] + [x for x in spaces if x in listed]


@pytest.mark.skipif(not _netns_usable(), reason="--netns needs root and a working ip netns")
def test_netns_cluster_partitions_heals_and_leaves_nothing_behind(make_cluster: Callable[..., Cluster]) -> None:
    """Each node in its own namespace on a private bridge; a partition is blackhole routes there.
    Down removes every namespace and link, also in the middle of a partition, so up works again."""
    c = make_cluster()
    for _ in range(2):  # the second round: nothing of the first one is in the way
        c.run("up", "3", "--netns")
        assert all(e.host.startswith(cl.NETNS_NET + ".") for e in c.manifest().nodes)
        c.run("partition", "0/1,2")
        a = c.json("load", "--count", "60", "--nodes", "0", "--members", "3", "--first-member", "0")
        b = c.json("load", "--count", "60", "--nodes", "1,2", "--members", "3", "--first-member", "3")
        assert a["ok"] and b["ok"], (a, b)
        c.run("wait-converged", "--nodes", "1,2", "--timeout", "30")
        assert "differs" in c.run("wait-converged", "--timeout", "2", expect=1).stdout
        c.run("heal")
        c.run("wait-converged", "--timeout", "60")
        assert [n["actions"] for n in c.status()["nodes"]] == [121] * 3
        # Down while cut off, with pushes to the blocked peers in flight: those connections keep
        # their namespace alive after ``ip netns del``, and its veth pairs with it.
        c.run("partition", "0/1,2")
        assert c.json("load", "--count", "30", "--nodes", "0", "--members", "3", "--first-member", "0")["ok"]
        c.run("down", "--purge")
        assert _leftovers(c.state, 3) == []


@pytest.mark.skipif(not _netns_usable(), reason="--netns needs root and a working ip netns")
def test_netns_latency_runs_or_says_why_not(make_cluster: Callable[..., Cluster]) -> None:
    """--latency needs the kernel's sch_netem: with it the cluster runs delayed; without it (as on
    the machine this was written on) up fails with a clear error and leaves nothing behind."""
    c = make_cluster()
    res = c.run("up", "2", "--netns", "--latency", "5", expect=None)
    if res.returncode == 0:
        qdisc = subprocess.run(
            ["tc", "-n", c.manifest().nodes[0].netns or "", "qdisc", "show", "dev", "eth0"], capture_output=True, text=True, check=True
        )
        assert "netem" in qdisc.stdout and "delay 5ms" in qdisc.stdout, qdisc.stdout
        c.run("wait-converged", "--timeout", "30")
        c.run("down", "--purge")
    else:
        assert res.returncode == 2 and "netem" in res.stderr, res.stderr
        assert not cl.manifest_path(c.state).exists()
    assert _leftovers(c.state, 2) == []


# ---- node bugs found with the cluster ----------------------------------------------------------


def test_catch_up_of_a_large_gap_with_default_limits(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(None)  # the nodes' default limits
    c.run("up", "2")
    c.run("kill", "1")
    assert c.json("load", "--count", "1500", "--nodes", "0")["ok"]
    c.run("restart", "1")
    # Until node 1 has caught up, or holds something against its honest peer (the bug's mark).
    statuses: list[cl.NodeStatus] = []

    def settled() -> bool:
        nonlocal statuses
        statuses = asyncio.run(cl.cluster_status(c.manifest()))
        return cl.convergence(statuses).converged or any(s.offences for s in statuses)

    wait_for("node 1 to catch up (or to blame node 0)", settled, 30)
    assert [s.offences for s in statuses] == [{}, {}], [s.public() for s in statuses]
    assert cl.convergence(statuses).converged


def test_a_push_larger_than_the_receivers_batch_limit_is_taken(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster("[cluster]\nmax_batch_actions = 10\nverify_workers = 0\n[load]\nbatch = 10\n")
    """Found with this tool: pushes used to carry up to 500 actions whatever the receiver's
    limits.max_batch_actions, and a receiver with a lower limit answered 400 too_large and
    penalised its honest peer. Every node now takes pushes of up to PUSH_MAX_ACTIONS."""
    c.run("up", "2")
    m = c.manifest()
    assert m.coop is not None
    # Member 0's seq 2-40 wait on node 0 as pending; seq 1 then stores all 40 in one commit, which
    # node 0 pushes to node 1 in one push of 40 actions: more than node 1 takes in one request.
    key = cl.member_key(m.seed_bytes, 0)
    coop = parse_id(IdKind.COOP, m.coop)
    chain = []
    prev = None
    for seq in range(1, 41):
        a = cl.member_action(key, 0, coop, seq, prev, m.created_ms)
        chain.append(a.raw)
        prev = a.id
    for start in range(1, 40, 10):
        assert {r["status"] for r in post(m.nodes[0].url, chain[start : start + 10])} == {"pending"}
    assert [r["status"] for r in post(m.nodes[0].url, chain[:1])] == ["accepted"]
    c.run("wait-converged", "--timeout", "15", expect=None)
    st = c.status()
    assert [n["offences"] for n in st["nodes"]] == [{}, {}], st["nodes"]
    assert st["converged"], st


def post(url: str, raws: list[bytes]) -> list[dict[str, Any]]:
    req = urllib.request.Request(
        url + "/api/v1/actions",
        data=encode_submission(raws),
        headers={"Content-Type": "application/msgpack", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return list(json.loads(resp.read())["results"])
