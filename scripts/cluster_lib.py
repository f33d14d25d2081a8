"""The machinery behind ``scripts/cluster.py``: a cluster of real coopnet node processes.

Theory of operation. A cluster lives in a *state directory* (default ``.coopnet-cluster/``):

- ``manifest.json`` says everything about it: the cluster seed, every node (index, node id, URL,
  port, pid, data directory, log file, peers per topology), the co-op made at ``up`` (its genesis
  bytes), each simulated member's chain head, the current partition and the network-namespace
  setup. Every change goes through :func:`edit_manifest`: an exclusive ``flock`` on
  ``manifest.lock``, a fresh read, the change, an atomic rename. So ``kill`` and ``restart`` from
  one shell and a ``load`` running in another never overwrite each other's changes.
- ``node<i>/`` is node i's data directory: ``coopnet.toml``, ``node.key``, the SQLite store and
  ``node.log`` (the node's stderr).
- ``acks.txt``: the id of every action a node acknowledged to ``load``, one a line, so ``verify``
  can check that none was lost.

Keys are derived from the cluster seed (``sha256(seed || label)``): node i, the founder of the
co-op, member i. Member actions are deterministic too: member m's action at seq s has a fixed kind,
body and timestamp, and ``prev`` is the member's action at s - 1. Ed25519 signing is deterministic,
so signing "the next action" twice gives the same bytes. That is what makes loads safe to repeat
and to interrupt: a batch whose answer was lost (the node was killed mid-request) is sent again,
byte for byte, to another node; a load killed before it saved its chain heads re-signs the same
actions next time and the nodes answer ``known``. No load can make a member equivocate.

Processes are started with ``start_new_session=True`` (each node leads its own process group,
with any validation workers it spawns) and their output goes to their log file. A pid is trusted
only together with the process start time read from ``/proc`` at launch, so a recycled pid is never
signalled. Every wait has a deadline; every loop is bounded.

Partitions use the nodes' fault hook (``POST /_test/partition``, enabled by
``federation.fault_hooks = true`` in every cluster config): nodes in different groups refuse each
other's requests and stop calling each other. The hook keeps its list in memory, so ``restart``
applies the manifest's partition again as soon as the node answers (a restarted node may talk
across the partition for the few milliseconds in between). In ``--netns`` mode (root only) each
node runs in its own network namespace on a private bridge (10.200.0.0/24, no route anywhere
else) with ``tc netem`` delay and loss, and partitions are real: blackhole routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp

from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id, parse_id
from protocol.messages import encode_submission

HOST = "127.0.0.1"
MANIFEST = "manifest.json"
MANIFEST_LOCK = "manifest.lock"
LOAD_LOCK = "load.lock"
ACKS = "acks.txt"
MANIFEST_VERSION = 1
FEDERATION = "cluster"
ACTION_KIND = "cluster.note"
TOPOLOGIES = ("full", "ring", "random-k")
ACK_STATUSES = ("accepted", "known", "pending")
POLL_S = 0.05  # between two looks at a condition that is waited for
MAX_POLLS = 100_000  # hard bound on any polling loop (deadlines end them far sooner)
NETNS_NET = "10.200.0"  # the private /24 of --netns mode; .254 is the bridge (this host's side)
NETNS_HOST_ADDR = f"{NETNS_NET}.254"
MAX_NODES = 200


class ClusterError(Exception):
    """Something the user should read: the command stops with this message (exit status 2)."""


# ---- settings (configs/cluster.toml) ---------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Defaults of the script; ``configs/cluster.toml`` documents each key. CLI flags win."""

    # [cluster]: what `up` builds
    nodes: int = 5
    topology: str = "full"
    k: int = 3
    interval: float = 1.0
    base_port: int = 0
    verify_workers: int = 0
    synchronous: str = "full"
    log_level: str = "info"
    fanout: int = 3
    request_timeout: float = 5.0
    rate_limit: float = 50.0
    max_batch_actions: int = 2000
    fetch_batch: int = 2000
    health_timeout: float = 30.0
    stop_timeout: float = 15.0
    coop_name: str = "Cluster Co-op"
    # [load]: what `load` sends
    members: int = 20
    batch: int = 50
    rate: float = 0.0
    concurrency: int = 4
    max_count: int = 1_000_000
    max_seconds: float = 3600.0

    def check(self, where: str = "settings") -> Settings:
        def fail(key: str, what: str) -> ClusterError:
            return ClusterError(f"{where}: {key} {what}, got {getattr(self, key)!r}")

        if self.topology not in TOPOLOGIES:
            raise fail("topology", f"must be one of {', '.join(TOPOLOGIES)}")
        if self.synchronous not in ("full", "normal"):
            raise fail("synchronous", "must be 'full' or 'normal'")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise fail("log_level", "must be debug, info, warning or error")
        if not 1 <= self.nodes <= MAX_NODES:
            raise fail("nodes", f"must be 1-{MAX_NODES}")
        if not 0 <= self.base_port < 65536:
            raise fail("base_port", "must be a port number (0: find free ports)")
        for key in ("k", "members", "batch", "concurrency", "max_count", "max_batch_actions", "fetch_batch"):
            if getattr(self, key) < 1:
                raise fail(key, "must be at least 1")
        for key in ("verify_workers", "fanout"):
            if getattr(self, key) < 0:
                raise fail(key, "must be at least 0")
        for key in ("interval", "request_timeout", "rate_limit", "health_timeout", "stop_timeout", "max_seconds"):
            if getattr(self, key) <= 0:
                raise fail(key, "must be a positive number")
        if self.rate < 0:
            raise fail("rate", "must be 0 (as fast as possible) or positive")
        if self.batch > self.max_batch_actions:
            raise ClusterError(f"{where}: batch ({self.batch}) cannot exceed max_batch_actions ({self.max_batch_actions})")
        return self


SETTINGS_TABLES: dict[str, tuple[str, ...]] = {
    "cluster": (
        "nodes",
        "topology",
        "k",
        "interval",
        "base_port",
        "verify_workers",
        "synchronous",
        "log_level",
        "fanout",
        "request_timeout",
        "rate_limit",
        "max_batch_actions",
        "fetch_batch",
        "health_timeout",
        "stop_timeout",
        "coop_name",
    ),
    "load": ("members", "batch", "rate", "concurrency", "max_count", "max_seconds"),
}


def load_settings(path: Path | None) -> Settings:
    """The defaults, overridden by ``path`` (a TOML file with [cluster] and [load] tables)."""
    if path is None:
        return Settings().check()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ClusterError(f"{path}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(SETTINGS_TABLES))
    if unknown:
        raise ClusterError(f"{path}: unknown table {unknown[0]!r} (allowed: {', '.join(SETTINGS_TABLES)})")
    types = {f.name: type(f.default) for f in fields(Settings)}
    values: dict[str, Any] = {}
    for table, keys in SETTINGS_TABLES.items():
        t = data.get(table, {})
        if not isinstance(t, dict):
            raise ClusterError(f"{path}: [{table}] must be a table")
        for key, value in t.items():
            if key not in keys:
                raise ClusterError(f"{path}: [{table}] unknown key {key!r} (allowed: {', '.join(keys)})")
            want = types[key]
            if want is float and type(value) is int:
                value = float(value)
            if type(value) is not want:
                raise ClusterError(f"{path}: {table}.{key}: expected {want.__name__}, got {value!r}")
            values[key] = value
    return Settings(**values).check(str(path))


# ---- keys and deterministic actions ------------------------------------------------------------


def derive_seed(cluster_seed: bytes, label: str) -> bytes:
    return hashlib.sha256(cluster_seed + b"/" + label.encode()).digest()


def node_key(cluster_seed: bytes, index: int) -> SigningKey:
    return SigningKey(derive_seed(cluster_seed, f"node:{index}"))


def founder_key(cluster_seed: bytes) -> SigningKey:
    return SigningKey(derive_seed(cluster_seed, "founder"))


def member_key(cluster_seed: bytes, index: int) -> SigningKey:
    return SigningKey(derive_seed(cluster_seed, f"member:{index}"))


def member_action(key: SigningKey, member: int, coop: bytes, seq: int, prev: bytes | None, base_ts: int) -> Action:
    """Member ``member``'s action at ``seq``: a pure function of its arguments (see module doc)."""
    return sign_action(
        key,
        coop=coop,
        seq=seq,
        prev=prev,
        deps=(),
        ts=base_ts + seq,
        kind=ACTION_KIND,
        body={"member": member, "seq": seq, "note": "cluster load"},
    )


def parse_text_id(kind: IdKind, text: str) -> bytes:
    return parse_id(kind, text)


# ---- the manifest ------------------------------------------------------------------------------


@dataclass
class NodeEntry:
    index: int
    node_id: str
    host: str
    port: int
    url: str
    data_dir: str
    config: str
    log: str
    peers: list[int]
    pid: int | None = None
    started: int | None = None  # process start time (clock ticks after boot): guards against pid reuse
    netns: str | None = None
    restarts: int = 0


@dataclass
class MemberHead:
    seq: int = 0
    head: str | None = None  # act_... of the member's action at seq (None at seq 0)


@dataclass
class Manifest:
    version: int
    created_ms: int
    seed: str  # hex: every key and every action of the cluster derives from it
    topology: str
    k: int
    settings: dict[str, Any]
    nodes: list[NodeEntry]
    coop: str | None = None
    genesis: str | None = None  # hex of the genesis action's bytes
    founder: str | None = None
    members: list[MemberHead] = field(default_factory=list)
    partition: list[list[int]] | None = None
    netns: dict[str, Any] | None = None

    @property
    def seed_bytes(self) -> bytes:
        return bytes.fromhex(self.seed)

    def node(self, index: int) -> NodeEntry:
        if not 0 <= index < len(self.nodes):
            raise ClusterError(f"no node {index}: the cluster has nodes 0-{len(self.nodes) - 1}")
        return self.nodes[index]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        if d.get("version") != MANIFEST_VERSION:
            raise ClusterError(f"manifest version {d.get('version')!r} is not {MANIFEST_VERSION}")
        d["nodes"] = [NodeEntry(**n) for n in d["nodes"]]
        d["members"] = [MemberHead(**m) for m in d.get("members", [])]
        return cls(**d)


def manifest_path(state: Path) -> Path:
    return state / MANIFEST


@contextlib.contextmanager
def _flock(path: Path, kind: int) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f.fileno(), kind)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_manifest(state: Path) -> Manifest:
    path = manifest_path(state)
    if not path.exists():
        raise ClusterError(f"no cluster in {state} (no {MANIFEST}); start one with: cluster.py --dir {state} up N")
    with _flock(state / MANIFEST_LOCK, fcntl.LOCK_SH):
        return Manifest.from_json(path.read_text())


def write_manifest_unlocked(state: Path, m: Manifest) -> None:
    path = manifest_path(state)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(m.to_json())
    os.replace(tmp, path)


@contextlib.contextmanager
def edit_manifest(state: Path) -> Iterator[Manifest]:
    """Read, change and write the manifest under an exclusive lock (nothing is written on error)."""
    if not manifest_path(state).exists():
        raise ClusterError(f"no cluster in {state} (no {MANIFEST})")
    with _flock(state / MANIFEST_LOCK, fcntl.LOCK_EX):
        m = Manifest.from_json(manifest_path(state).read_text())
        yield m
        write_manifest_unlocked(state, m)


@contextlib.contextmanager
def load_lock(state: Path) -> Iterator[None]:
    """One load at a time per cluster: a second one would only race the first on chain heads."""
    path = state / LOAD_LOCK
    with path.open("a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another load is running on the cluster in {state}") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ---- topology and ports ------------------------------------------------------------------------


def topology_peers(n: int, topology: str, k: int, rng: random.Random) -> list[list[int]]:
    """Each node's peers. Always symmetric (a closed federation refuses unlisted nodes) and connected."""
    edges: set[tuple[int, int]] = set()

    def link(a: int, b: int) -> None:
        if a != b:
            edges.add((min(a, b), max(a, b)))

    if topology == "full":
        for a in range(n):
            for b in range(a + 1, n):
                link(a, b)
    elif topology == "ring":
        for a in range(n):
            link(a, (a + 1) % n)
    elif topology == "random-k":
        if n > 1 and not 1 <= k < n:
            raise ClusterError(f"random-k needs 1 <= k < nodes, got k={k} with {n} nodes")
        for a in range(n):
            for b in rng.sample([x for x in range(n) if x != a], min(k, n - 1)):
                link(a, b)
        # Join components, if the draw left several, with one random edge each.
        for _ in range(n):
            comp = _components(n, edges)
            if len(comp) <= 1:
                break
            link(rng.choice(comp[0]), rng.choice(comp[1]))
    else:
        raise ClusterError(f"topology must be one of {', '.join(TOPOLOGIES)}, got {topology!r}")
    peers: list[list[int]] = [[] for _ in range(n)]
    for a, b in sorted(edges):
        peers[a].append(b)
        peers[b].append(a)
    return [sorted(p) for p in peers]


def _components(n: int, edges: set[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for x in range(n):
        groups.setdefault(find(x), []).append(x)
    return list(groups.values())


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct ports the OS says are free on ``host`` right now."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def parse_partition(spec: str, n: int) -> list[list[int]]:
    """``"0,1/2,3,4"`` -> [[0, 1], [2, 3, 4]]: every node in exactly one group."""
    groups: list[list[int]] = []
    seen: set[int] = set()
    for part in spec.split("/"):
        group: list[int] = []
        for item in part.split(","):
            item = item.strip()
            if not (item.isascii() and item.isdigit()):
                raise ClusterError(f"partition: {item!r} is not a node index (write groups like 0,1/2,3,4)")
            i = int(item)
            if i >= n:
                raise ClusterError(f"partition: no node {i} (the cluster has nodes 0-{n - 1})")
            if i in seen:
                raise ClusterError(f"partition: node {i} is in two groups")
            seen.add(i)
            group.append(i)
        groups.append(sorted(group))
    missing = sorted(set(range(n)) - seen)
    if missing:
        raise ClusterError(f"partition: nodes {missing} are in no group; every node must be in exactly one")
    if len(groups) < 2:
        raise ClusterError("partition: give at least two groups separated by '/'")
    return groups


def blocked_by(groups: list[list[int]] | None, index: int) -> list[int]:
    """The nodes ``index`` must not talk to under ``groups`` (none when there is no partition)."""
    if not groups:
        return []
    mine = next(g for g in groups if index in g)
    return sorted(i for g in groups if g is not mine for i in g)


def parse_indexes(spec: str | None, n: int) -> list[int] | None:
    if spec is None or spec == "":
        return None
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not (item.isascii() and item.isdigit()) or int(item) >= n:
            raise ClusterError(f"--nodes: {item!r} is not a node index 0-{n - 1}")
        out.append(int(item))
    return sorted(set(out))


# ---- node configs ------------------------------------------------------------------------------


def render_node_config(entry: NodeEntry, m_nodes: Sequence[NodeEntry], s: Settings) -> str:
    """The coopnet.toml of one cluster node: closed federation, fault hooks on, fast anti-entropy."""
    lines = [
        f"# coopnet cluster node {entry.index}, written by scripts/cluster.py. Cluster testing only:",
        "# fault_hooks lets the script partition this node from others (POST /_test/partition).",
        "",
        "[node]",
        f'listen = "{entry.host}:{entry.port}"',
        'data_dir = "."',
        'key_file = "node.key"',
        'database = "coopnet.sqlite3"',
        f'log_level = "{s.log_level}"',
        "",
        "[store]",
        f'synchronous = "{s.synchronous}"',
        "",
        "[limits]",
        f"verify_workers = {s.verify_workers}",
        f"max_batch_actions = {s.max_batch_actions}",
        "",
        "[federation]",
        f'name = "{FEDERATION}"',
        "open = false",
        'replicate = "all"',
        f'advertise_url = "{entry.url}"',
        f"fanout = {s.fanout}",
        f"anti_entropy_interval = {float(s.interval)!r}",
        f"request_timeout = {float(s.request_timeout)!r}",
        f"rate_limit = {float(s.rate_limit)!r}",
        f"fetch_batch = {s.fetch_batch}",
        "fault_hooks = true",
        "",
        "# Cluster testing: load comes from one address and its members never apply, so every",
        "# author is taken and no client is rate limited (docs/OPERATIONS.md, Admission).",
        "[admission]",
        'unknown_authors = "store"',
        *(f"{k} = 0.0" for k in ("read_rate", "write_rate", "author_rate", "join_rate", "apply_rate")),
    ]
    for p in entry.peers:
        peer = m_nodes[p]
        lines += ["", "[[federation.peers]]", f'url = "{peer.url}"', f'id = "{peer.node_id}"']
    return "\n".join(lines) + "\n"


# ---- processes ---------------------------------------------------------------------------------


def coopnet_command() -> list[str]:
    exe = Path(sys.executable).parent / "coopnet"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("coopnet")
    if found:
        return [found]
    return [sys.executable, "-c", "from node.cli import main; main()"]


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot, or None if there is no live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) is in parentheses and may hold spaces: split after the last ')'.
    rest = stat[stat.rfind(")") + 2 :].split()
    state, start = rest[0], rest[19]
    if state in ("Z", "X"):
        return None  # a zombie: dead, waiting for a parent to reap it
    return int(start)


def alive(entry: NodeEntry) -> bool:
    """Is node ``entry``'s own process running (not just some process with a recycled pid)?"""
    if entry.pid is None:
        return False
    start = proc_start_time(entry.pid)
    return start is not None and (entry.started is None or start == entry.started)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("COOPNET_DATA_DIR", "COOPNET_PORT"):  # they would override the node's config
        env.pop(var, None)
    return env


def start_process(entry: NodeEntry) -> tuple[int, int]:
    """Launch node ``entry`` detached, output to its log file; returns (pid, start time)."""
    cmd = [*coopnet_command(), "run", "--config", entry.config]
    if entry.netns:
        cmd = ["ip", "netns", "exec", entry.netns, *cmd]
    with open(entry.log, "ab") as log:
        log.write(f"\n==== cluster.py: starting node {entry.index} at {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
            cwd=entry.data_dir,
        )
    start = None
    for _ in range(200):  # /proc/<pid> exists as soon as fork returns; bounded anyway
        start = proc_start_time(proc.pid)
        if start is not None or proc.poll() is not None:
            break
        time.sleep(0.005)
    if start is None:
        raise ClusterError(f"node {entry.index} exited at once; see {entry.log}")
    # Popen's handle is dropped on purpose: the node outlives this command. Mark it reaped-by-others.
    proc.returncode = 0
    return proc.pid, start


def signal_node(entry: NodeEntry, sig: int) -> bool:
    """Send ``sig`` to node ``entry``'s process group, if it is still that node. True if sent."""
    if not alive(entry):
        return False
    assert entry.pid is not None
    try:
        os.killpg(entry.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_dead(entries: Sequence[NodeEntry], timeout: float) -> list[NodeEntry]:
    """Wait until none of ``entries`` runs; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    _reap(entries)
    left = [e for e in entries if alive(e)]
    for _ in range(MAX_POLLS):
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S / 2)
        _reap(left)
        left = [e for e in left if alive(e)]
    return left


def _reap(entries: Sequence[NodeEntry]) -> None:
    """Collect the exit status of nodes this very process started (else they stay zombies)."""
    for e in entries:
        if e.pid is not None:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(e.pid, os.WNOHANG)


def group_alive(pgid: int) -> bool:
    """Any process left in process group ``pgid`` (validation workers outlive their node otherwise)?"""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if rest[0] not in ("Z", "X") and int(rest[2]) == pgid:
            return True
    return False


# ---- talking to nodes --------------------------------------------------------------------------


def session(timeout: float = 10.0) -> aiohttp.ClientSession:
    # No environment proxies: every address here is local.
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0)), trust_env=False)


async def get_json(http: aiohttp.ClientSession, url: str, path: str, **params: str) -> Any:
    async with http.get(url + path, params=params or None, headers={"Accept": "application/json"}) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise NodeRefused(resp.status, body)
        return json.loads(body)


class NodeRefused(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        code = ""
        with contextlib.suppress(ValueError, AttributeError):
            code = json.loads(body).get("error", "")
        super().__init__(f"HTTP {status} {code}".strip())
        self.status = status
        self.code = code


async def wait_healthy(http: aiohttp.ClientSession, entry: NodeEntry, within: float) -> None:
    """Until /healthz says ok and the node is the one we expect; ClusterError after ``within`` s."""
    deadline = time.monotonic() + within
    last = "no answer"
    for _ in range(MAX_POLLS):
        if not alive(entry):
            raise ClusterError(f"node {entry.index} exited while starting; see {entry.log}:\n{tail(entry.log)}")
        try:
            health = await get_json(http, entry.url, "/healthz")
            info = await get_json(http, entry.url, "/api/v1/node")
            if info.get("node_id") != entry.node_id:
                raise ClusterError(f"{entry.url} answers as {info.get('node_id')}, not node {entry.index} ({entry.node_id})")
            if health.get("ok"):
                return
            last = f"healthz: {health}"
        except (aiohttp.ClientError, OSError, TimeoutError, NodeRefused, ValueError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    raise ClusterError(f"node {entry.index} not healthy after {within:g} s ({last}); see {entry.log}")


def tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + x for x in text.splitlines()[-lines:])


async def post_actions(http: aiohttp.ClientSession, url: str, raws: Sequence[bytes]) -> dict[str, Any]:
    body = encode_submission(list(raws))
    headers = {"Content-Type": "application/msgpack", "Accept": "application/json"}
    async with http.post(url + "/api/v1/actions", data=body, headers=headers) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise NodeRefused(resp.status, data)
        return json.loads(data)


async def set_partition(http: aiohttp.ClientSession, m: Manifest, entry: NodeEntry, groups: list[list[int]] | None) -> list[str]:
    """Tell ``entry`` whom to block under ``groups`` (None: nobody). Returns the blocked node ids."""
    block = [m.nodes[i].node_id for i in blocked_by(groups, entry.index)]
    if m.netns:
        _netns_blackholes(m, entry, blocked_by(groups, entry.index))
        return block
    async with http.post(entry.url + "/_test/partition", json={"block": block}) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise ClusterError(f"node {entry.index} refused the fault hook: HTTP {resp.status} {data[:200]!r}")
        return list(json.loads(data)["blocked"])


# ---- status and convergence --------------------------------------------------------------------


@dataclass
class NodeStatus:
    index: int
    node_id: str
    url: str
    state: str  # up | down | unresponsive
    actions: int | None = None
    pending: int | None = None
    coops: int | None = None
    chains: int | None = None
    proofs: int | None = None
    digest: str | None = None
    peers_reachable: int | None = None
    peers_known: int | None = None
    catchup: dict[str, Any] | None = None
    offences: dict[str, int] = field(default_factory=dict)  # what this node holds against its peers, summed
    refused: list[str] = field(default_factory=list)  # peers this node refuses right now
    error: str | None = None
    heads: dict[str, list[Any]] = field(default_factory=dict)  # "coop author" -> [seq, head]

    def public(self, with_heads: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_heads:
            d.pop("heads")
        return d


def heads_digest(heads: dict[str, list[Any]]) -> str:
    h = hashlib.sha256()
    for key in sorted(heads):
        seq, head = heads[key]
        h.update(f"{key} {seq} {head}\n".encode())
    return h.hexdigest()


async def node_status(http: aiohttp.ClientSession, entry: NodeEntry) -> NodeStatus:
    st = NodeStatus(entry.index, entry.node_id, entry.url, "down")
    if not alive(entry):
        return st
    try:
        info = await get_json(http, entry.url, "/api/v1/node")
        coops = (await get_json(http, entry.url, "/api/v1/coops"))["coops"]
        heads: dict[str, list[Any]] = {}
        for c in coops:
            for ch in (await get_json(http, entry.url, f"/api/v1/coops/{c['id']}/chains"))["chains"]:
                heads[f"{c['id']} {ch['author']}"] = [ch["seq"], ch["head"]]
        for p in (await get_json(http, entry.url, "/api/v1/peers"))["peers"]:
            for code, n in (p.get("offences") or {}).items():
                st.offences[code] = st.offences.get(code, 0) + n
            if p.get("state") == "refused":
                st.refused.append(p["id"])
        counts = info["counts"]
        st.state = "up"
        st.actions, st.pending, st.coops = counts["actions"], counts["pending"], counts["coops"]
        st.chains, st.proofs = counts["chains"], counts["proofs"]
        st.peers_reachable, st.peers_known = info.get("peers_reachable"), info.get("peers_known")
        st.catchup = info.get("catchup")
        st.heads = heads
        st.digest = heads_digest(heads)
    except (aiohttp.ClientError, OSError, TimeoutError, NodeRefused, ValueError, KeyError) as e:
        st.state = "unresponsive"
        st.error = f"{type(e).__name__}: {e}"
    return st


async def cluster_status(m: Manifest, request_timeout: float = 10.0) -> list[NodeStatus]:
    async with session(request_timeout) as http:
        return list(await asyncio.gather(*(node_status(http, e) for e in m.nodes)))


@dataclass
class Convergence:
    converged: bool
    reference: int | None  # the node others are compared with
    differences: list[str]


def convergence(statuses: Sequence[NodeStatus]) -> Convergence:
    """Converged: at least one node up, none unresponsive, every node up holds the same heads,
    actions and pending count. Down (killed) nodes are left out and named."""
    up = [s for s in statuses if s.state == "up"]
    diffs = [f"node {s.index}: unresponsive ({s.error})" for s in statuses if s.state == "unresponsive"]
    if not up:
        return Convergence(False, None, [*diffs, "no node is up"])
    votes = Counter((s.digest, s.actions, s.pending) for s in up)
    best = max(votes.values())
    ref = next(s for s in up if votes[(s.digest, s.actions, s.pending)] == best)
    for s in up:
        if (s.digest, s.actions, s.pending) == (ref.digest, ref.actions, ref.pending):
            continue
        parts = [
            f"node {s.index} differs from node {ref.index}: actions {s.actions} vs {ref.actions}, pending {s.pending} vs {ref.pending}"
        ]
        keys = sorted(set(s.heads) | set(ref.heads))
        differing = [k for k in keys if s.heads.get(k) != ref.heads.get(k)]
        for k in differing[:8]:
            mine, theirs = s.heads.get(k), ref.heads.get(k)
            coop, author = k.split(" ")
            parts.append(
                f"    author {author[:16]}… in {coop[:14]}…: seq {mine[0] if mine else 0} here, {theirs[0] if theirs else 0} on node {ref.index}"
            )
        if len(differing) > 8:
            parts.append(f"    … and {len(differing) - 8} more authors")
        if not differing:
            parts.append("    same chain heads; pending actions differ")
        diffs.append("\n".join(parts))
    return Convergence(not diffs, ref.index, diffs)


# ---- load --------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    posted: int = 0  # actions sent in a request that got an answer
    accepted: int = 0
    known: int = 0
    pending: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # a live node said no to a whole request, or did not answer
    lost_nodes: list[int] = field(default_factory=list)  # nodes found dead (killed) during the load
    retried: int = 0  # requests sent again to another node
    unsent: int = 0  # actions no node took (the load stopped early)
    requests: int = 0
    elapsed_s: float = 0.0
    stopped: str = ""  # why the load ended

    @property
    def acknowledged(self) -> int:
        return self.accepted + self.known + self.pending

    @property
    def rate(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.refused and not self.unsent

    def public(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "posted": self.posted,
            "accepted": self.accepted,
            "known": self.known,
            "pending": self.pending,
            "rejected": sum(self.rejected.values()),
            "rejected_by_code": dict(self.rejected),
            "refused": self.refused,
            "lost_nodes": self.lost_nodes,
            "retried": self.retried,
            "unsent": self.unsent,
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(self.rate, 1),
            "stopped": self.stopped,
        }


class ChainWriter:
    """Signs members' next actions round-robin and tracks which are acknowledged.

    Members are ``first .. first + count - 1``. A member's head only advances over an unbroken run
    of acknowledged seqs, so the saved head is always an action every later load can build on."""

    def __init__(self, m: Manifest, first: int, count: int) -> None:
        assert m.coop is not None
        self.coop = parse_text_id(IdKind.COOP, m.coop)
        self.base_ts = m.created_ms
        seed = m.seed_bytes
        self.members = list(range(first, first + count))
        size = max(len(m.members), first + count)
        # heads: per member index, the last action of an unbroken acknowledged run (what gets saved)
        self.heads = [MemberHead(h.seq, h.head) for h in m.members] + [MemberHead() for _ in range(size - len(m.members))]
        self.keys = {i: member_key(seed, i) for i in self.members}
        self.next = {i: (self.heads[i].seq, parse_text_id(IdKind.ACTION, h) if (h := self.heads[i].head) else None) for i in self.members}
        self.acked: dict[int, dict[int, str]] = {i: {} for i in self.members}  # seq -> act id, beyond the saved head
        self.turn = 0

    def take(self, n: int) -> list[tuple[int, Action]]:
        out = []
        for _ in range(n):
            i = self.members[self.turn % len(self.members)]
            self.turn += 1
            seq, prev = self.next[i]
            a = member_action(self.keys[i], i, self.coop, seq + 1, prev, self.base_ts)
            self.next[i] = (seq + 1, a.id)
            out.append((i, a))
        return out

    def ack(self, member: int, a: Action) -> None:
        pending = self.acked[member]
        pending[a.seq] = format_id(IdKind.ACTION, a.id)
        h = self.heads[member]
        for _ in range(len(pending)):
            nxt = pending.pop(h.seq + 1, None)
            if nxt is None:
                break
            h.seq, h.head = h.seq + 1, nxt


async def run_load(
    state: Path,
    m: Manifest,
    *,
    count: int | None,
    duration: float | None,
    rate: float,
    members: int,
    first_member: int = 0,
    batch: int,
    concurrency: int,
    nodes: list[int] | None,
    max_count: int,
    max_seconds: float,
    request_timeout: float,
) -> tuple[LoadReport, list[MemberHead]]:
    """Post signed member actions to random live nodes; bounded by count and by time."""
    if m.coop is None:
        raise ClusterError("the cluster has no co-op (it was made with --no-coop)")
    writer = ChainWriter(m, first_member, members)
    report = LoadReport()
    limit = min(count if count is not None else max_count, max_count)
    time_limit = min(duration if duration is not None else max_seconds, max_seconds)
    targets = [m.nodes[i] for i in (nodes if nodes is not None else range(len(m.nodes)))]
    usable = {e.index for e in targets if alive(e)}
    if not usable:
        raise ClusterError("no live node to load (among the chosen ones)")
    rng = random.Random()
    taken = 0
    lock = asyncio.Lock()
    t0 = time.monotonic()
    stop_at = t0 + time_limit
    acks = (state / ACKS).open("a")

    async def node_gone(index: int) -> bool:
        """After a failed request: was the node killed (fine) or is it alive and refusing?"""
        deadline = time.monotonic() + 2.0
        for _ in range(100):
            fresh = read_manifest(state).nodes[index]
            if not alive(fresh) or not alive(m.nodes[index]):
                return True
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        return False

    async def send(http: aiohttp.ClientSession, items: list[tuple[int, Action]]) -> None:
        raws = [a.raw for _, a in items]
        tried: set[int] = set()
        for attempt in range(len(m.nodes) + 1):
            choices = sorted(usable - tried)
            if not choices:
                break
            idx = rng.choice(choices)
            tried.add(idx)
            if attempt:
                report.retried += 1
            report.requests += 1
            try:
                reply = await post_actions(http, m.nodes[idx].url, raws)
            except NodeRefused as e:
                report.refused.append(f"node {idx}: {e}")
                continue
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                if await node_gone(idx):
                    usable.discard(idx)
                    if idx not in report.lost_nodes:
                        report.lost_nodes.append(idx)
                else:
                    report.refused.append(f"node {idx}: no answer ({type(e).__name__}: {e})")
                    usable.discard(idx)
                continue
            report.posted += len(items)
            lines = []
            for (member, a), r in zip(items, reply["results"], strict=True):
                status = r["status"]
                if status in ACK_STATUSES:
                    setattr(report, status, getattr(report, status) + 1)
                    writer.ack(member, a)
                    lines.append(r["id"])
                else:
                    report.rejected[r.get("code", "?")] += 1
            if lines:
                acks.write("\n".join(lines) + "\n")
                acks.flush()
            return
        report.unsent += len(items)

    async def lane(http: aiohttp.ClientSession) -> None:
        nonlocal taken
        for _ in range(limit + 1):
            async with lock:
                now = time.monotonic()
                due = t0 + taken / rate if rate > 0 else now
                if taken >= limit:
                    report.stopped = report.stopped or f"count {limit} reached"
                    return
                if max(now, due) >= stop_at:
                    report.stopped = report.stopped or f"time limit {time_limit:g} s reached"
                    return
                if report.unsent:
                    report.stopped = report.stopped or "no live node took a batch"
                    return
                n = min(batch, limit - taken)
                items = writer.take(n)
                taken += n
            if due > now:
                await asyncio.sleep(due - now)
            await send(http, items)

    try:
        async with session(request_timeout) as http:
            await asyncio.gather(*(lane(http) for _ in range(concurrency)))
    finally:
        acks.close()
        report.elapsed_s = time.monotonic() - t0
    return report, writer.heads


def save_heads(state: Path, heads: list[MemberHead]) -> None:
    """Store members' heads, keeping the longer chain where another writer got further."""
    with edit_manifest(state) as m:
        merged = list(m.members) + [MemberHead() for _ in range(max(0, len(heads) - len(m.members)))]
        for i, h in enumerate(heads):
            if h.seq > merged[i].seq:
                merged[i] = MemberHead(h.seq, h.head)
        m.members = merged


def read_acks(state: Path) -> set[str]:
    path = state / ACKS
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


async def stored_ids(http: aiohttp.ClientSession, entry: NodeEntry, coop: str, page: int) -> set[str]:
    """Every stored action id of ``coop`` on ``entry`` (paginated; bounded by the node's count)."""
    ids: set[str] = set()
    after = "0"
    for _ in range(MAX_POLLS):
        doc = await get_json(http, entry.url, f"/api/v1/coops/{coop}/actions", after=after, limit=str(page))
        ids.update(a["id"] for a in doc["actions"] if a.get("status", "stored") == "stored")
        if doc.get("next") is None:
            break
        after = doc["next"]
    return ids


# ---- network namespaces (root only) ------------------------------------------------------------


def netns_names(state: Path, n: int) -> tuple[str, list[str], list[str]]:
    """Bridge, namespace and host-side veth names, unique per state directory (<= 15 characters)."""
    tag = "cn" + hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:4]
    return f"{tag}br", [f"{tag}-n{i}" for i in range(n)], [f"{tag}h{i}" for i in range(n)]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if check and res.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def netns_check(latency: float, loss: float) -> None:
    if os.geteuid() != 0:
        raise ClusterError(
            "--netns needs root (network namespaces, veth pairs, a bridge, tc netem); without it, partitions use the fault hook"
        )
    if shutil.which("ip") is None:
        raise ClusterError("--netns needs the ip command (apt-get install iproute2)")
    if (latency or loss) and shutil.which("tc") is None:
        raise ClusterError("--latency/--loss need the tc command (apt-get install iproute2)")
    res = _ip("netns", "list", check=False)
    if res.returncode != 0:
        raise ClusterError(f"ip netns does not work here: {res.stderr.strip()}")
    routes = _ip("-4", "route", "show", "to", "match", f"{NETNS_NET}.0/24", check=False).stdout
    addrs = _ip("-4", "-o", "addr", "show", check=False).stdout
    if f" {NETNS_NET}." in addrs or any(line.startswith(f"{NETNS_NET}.") for line in routes.splitlines()):
        raise ClusterError(f"{NETNS_NET}.0/24 is already in use on this host (another --netns cluster?); run down on it first")


def netns_up(state: Path, n: int, latency: float, loss: float) -> dict[str, Any]:
    """A bridge with this host at .254 and node i in namespace i at .(i+1); nothing routes beyond
    the /24 (no default route in the namespaces, no NAT). On any failure, removes what it made."""
    bridge, spaces, veths = netns_names(state, n)
    info: dict[str, Any] = {"bridge": bridge, "namespaces": [], "veths": [], "latency_ms": latency, "loss_pct": loss}
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{NETNS_HOST_ADDR}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, (ns, veth) in enumerate(zip(spaces, veths, strict=True)):
            peer = f"{veth}p"
            _ip("netns", "add", ns)
            info["namespaces"].append(ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            info["veths"].append(veth)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", veth, "master", bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", peer, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{NETNS_NET}.{i + 1}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            if latency or loss:
                netem = ["netem"]
                if latency:
                    netem += ["delay", f"{latency:g}ms"]
                if loss:
                    netem += ["loss", f"{loss:g}%"]
                cmd = ["tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", *netem]
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
                if res.returncode != 0:
                    raise ClusterError(f"{' '.join(cmd)}: {res.stderr.strip()} (this kernel may lack the sch_netem module)")
    except BaseException:
        netns_down(info)
        raise
    return info


def netns_down(info: dict[str, Any]) -> list[str]:
    """Delete the veth pairs, the namespaces and the bridge. Returns problems.

    The veths first, by their host ends: a namespace outlives ``ip netns del`` while anything
    still refers to it (connections to a peer cut off by a partition do, for minutes), and its
    veth pair with it, which would block the next ``up --netns`` in this directory."""
    problems = []
    # Manifests written before the veths were recorded: the host ends are named after the namespaces.
    veths = info.get("veths") or [ns.replace("-n", "h") for ns in info.get("namespaces", [])]
    for veth in veths:
        res = _ip("link", "del", veth, check=False)
        if res.returncode != 0 and "Cannot find device" not in res.stderr:
            problems.append(f"ip link del {veth}: {res.stderr.strip()}")
    for ns in info.get("namespaces", []):
        res = _ip("netns", "del", ns, check=False)
        if res.returncode != 0 and "No such file" not in res.stderr:
            problems.append(f"ip netns del {ns}: {res.stderr.strip()}")
    res = _ip("link", "del", info["bridge"], check=False)
    if res.returncode != 0 and "Cannot find device" not in res.stderr:
        problems.append(f"ip link del {info['bridge']}: {res.stderr.strip()}")
    return problems


def _netns_blackholes(m: Manifest, entry: NodeEntry, blocked: list[int]) -> None:
    assert entry.netns is not None
    existing = _ip("-n", entry.netns, "route", "show", "type", "blackhole", check=False).stdout.split()
    for addr in [w for w in existing if w.startswith(NETNS_NET)]:
        _ip("-n", entry.netns, "route", "del", "blackhole", addr, check=False)
    for j in blocked:
        _ip("-n", entry.netns, "route", "add", "blackhole", f"{m.nodes[j].host}/32")


# ---- the co-op ---------------------------------------------------------------------------------


def make_genesis(seed: bytes, created_ms: int, name: str) -> Action:
    return sign_genesis(founder_key(seed), ts=created_ms, body={"name": name, "purpose": "coopnet test cluster"})


def new_seed(spec: str | None) -> bytes:
    """A cluster seed: random, or derived from ``--seed TEXT`` for a reproducible cluster."""
    if spec is None:
        return secrets.token_bytes(32)
    return hashlib.sha256(b"coopnet-cluster-seed/" + spec.encode()).digest()


# ---- operations on a cluster (the CLI commands without their printing) -------------------------


def create_manifest(state: Path, m: Manifest) -> None:
    with _flock(state / MANIFEST_LOCK, fcntl.LOCK_EX):
        if manifest_path(state).exists():
            raise ClusterError(f"{state} already holds a cluster")
        write_manifest_unlocked(state, m)


async def healthy_all(m: Manifest, within: float) -> None:
    async with session(5.0) as http:
        await asyncio.gather(*(wait_healthy(http, e, within) for e in m.nodes))


async def found_coop(m: Manifest, genesis: bytes, coop: str, within: float) -> None:
    """Post the genesis to node 0 and wait until gossip has taken it to every node."""
    async with session(10.0) as http:
        reply = await post_actions(http, m.nodes[0].url, [genesis])
        if reply["results"][0]["status"] not in ACK_STATUSES:
            raise ClusterError(f"node 0 did not take the genesis: {reply['results'][0]}")
        deadline = time.monotonic() + within
        missing = list(m.nodes)
        for _ in range(MAX_POLLS):
            still = []
            for e in missing:
                try:
                    await get_json(http, e.url, f"/api/v1/coops/{coop}")
                except (NodeRefused, aiohttp.ClientError, OSError, TimeoutError):
                    still.append(e)
            missing = still
            if not missing or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        if missing:
            raise ClusterError(f"the co-op did not reach nodes {[e.index for e in missing]} within {within:g} s")


async def apply_partition(m: Manifest) -> list[str]:
    """Send every live node its block list under ``m.partition`` (None: heal)."""
    out = []
    async with session(5.0) as http:
        for e in m.nodes:
            if not alive(e):
                out.append(f"node {e.index}: down (it gets the partition when restarted)")
                continue
            await set_partition(http, m, e, m.partition)
            out.append(f"node {e.index}: blocks {blocked_by(m.partition, e.index) or 'nobody'}")
    return out


def kill_node(state: Path, index: int, timeout: float = 10.0) -> int:
    """SIGKILL node ``index``'s process group and wait until it is gone; returns its pid."""
    with edit_manifest(state) as m:
        e = m.node(index)
        if not alive(e):
            raise ClusterError(f"node {index} is not running")
        assert e.pid is not None
        pid = e.pid
        signal_node(e, signal.SIGKILL)
        if wait_dead([e], timeout):
            raise ClusterError(f"node {index} (pid {pid}) still runs {timeout:g} s after SIGKILL")
        e.pid, e.started = None, None
    return pid


def restart_node(state: Path, index: int, *, wait: bool = True) -> int:
    """Start node ``index`` again (same data dir, port, config); wait for health unless told not to.
    A current partition is applied again as soon as the node answers."""
    with edit_manifest(state) as m:
        e = m.node(index)
        if alive(e):
            raise ClusterError(f"node {index} is running (pid {e.pid}); kill it first")
        e.pid, e.started = start_process(e)
        e.restarts += 1
    timeout = float(m.settings.get("health_timeout", 30.0))

    async def ready() -> None:
        async with session(5.0) as http:
            await wait_healthy(http, e, timeout)
            if m.partition:
                await set_partition(http, m, e, m.partition)

    if wait or m.partition:
        asyncio.run(ready())
    assert e.pid is not None
    return e.pid


def stop_all(state: Path, timeout: float) -> list[str]:
    """SIGTERM every node, SIGKILL what is left at the deadline, remove the namespaces."""
    out = []
    with edit_manifest(state) as m:
        running = [e for e in m.nodes if alive(e)]
        for e in running:
            signal_node(e, signal.SIGTERM)
        stubborn = wait_dead(running, timeout)
        for e in stubborn:
            signal_node(e, signal.SIGKILL)
            out.append(f"node {e.index}: did not stop within {timeout:g} s of SIGTERM; killed")
        left = wait_dead(stubborn, 10.0)
        if left:
            raise ClusterError(f"nodes {[e.index for e in left]} survive SIGKILL")
        for e in m.nodes:
            if e.pid is not None and group_alive(e.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(e.pid, signal.SIGKILL)  # validation workers left by a node that was killed
            e.pid, e.started = None, None
        out.append(f"stopped {len(running)} nodes")
        if m.netns and not m.netns.get("removed"):
            problems = netns_down(m.netns)
            out += problems or [f"removed the namespaces and bridge {m.netns['bridge']}"]
            m.netns = {**m.netns, "removed": True}
    return out
