"""Shared machinery of the federation benchmarks (propagation.py, catchup.py, idle.py).

Builds on ``ingest.py`` (imported, not copied): its single-core Ed25519 rates, its pre-signing,
its /proc readers (CPU of a process tree, RSS sampler) and its output helpers. What is added here
is what a *federation* of real nodes needs:

- ``NodeSet``: real node processes on 127.0.0.1, each made by ``coopnet init`` and run by
  ``coopnet run``, with a ``coopnet.toml`` written here so that every node knows its peers (their
  URLs and node ids) before any of them starts. Each node leads its own process group; ``close``
  sends SIGTERM to all, waits, then SIGKILLs each group still alive, and the data directories
  live in one temporary directory removed at the end, whatever happened.
- ``scrape``: a node's Prometheus metrics as a dict, and sums over label subsets.
- ``CountingProxy``: a TCP relay in front of a node that counts the bytes that cross it in each
  direction: HTTP requests and replies as they are on the wire (request line, headers, body).
- ``HttpProxy``: the same, parsing HTTP/1.1 exchanges, so that bytes are counted per request path
  (``/peer/v1/reconcile``, ``/peer/v1/announce``...), head and body apart.
- ``http_overhead``: the header bytes of one signed peer request and its reply, measured through
  a ``CountingProxy`` with the node's own ``PeerClient``: what the ``coopnet_gossip_bytes`` metric
  (bodies only) leaves out.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import aiohttp  # noqa: E402
import ingest as ib  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import node.config as node_config  # noqa: E402
from node.config import CONFIG_NAME, load_config  # noqa: E402
from node.keyfile import read_key_file  # noqa: E402
from node.metrics import Metrics  # noqa: E402
from node.peers import Peer, PeerClient  # noqa: E402
from protocol import Action, SigningKey  # noqa: E402
from protocol.charter import is_governance  # noqa: E402
from protocol.ids import IdKind, format_id  # noqa: E402

BenchError = ib.BenchError
say = ib.say
HOST = "127.0.0.1"
FEDERATION = "bench"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 20.0
MSGPACK_HEADERS = {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}


# ---- signing ----------------------------------------------------------------------------------
#
# ingest.py's members, keys, bodies and timestamps. Its kinds must stay application kinds: since
# governance bodies are checked when an action is decoded (protocol/charter.py), a governance kind
# with ingest.py's bodies would be rejected (bad_body) and break every chain after it.

if any(is_governance(k) for k in ib.KINDS):
    raise ImportError(f"ingest.KINDS {ib.KINDS} holds a governance kind: the benchmark's chains would be rejected")


def presign(lengths: Sequence[int], coop: bytes, procs: int, out: TextIO, *, first_member: int = 0) -> tuple[list[list[bytes]], float]:
    """Chains of members ``first_member + j`` with ``lengths[j]`` actions each, signed in
    ``procs`` processes (in this one if ``procs`` is 1 or there is little to sign). Returns the
    chains and the signing rate."""
    total = sum(lengths)
    tasks = [(first_member + j, n, coop) for j, n in enumerate(lengths) if n]
    chains: list[list[bytes]] = [[] for _ in lengths]
    progress = ib.Progress("signing", total, out)
    start = time.perf_counter()
    try:
        if procs <= 1 or total < 5000:
            for t in tasks:
                i, raws = ib.sign_chain(t)
                chains[i - first_member] = raws
                progress.advance(len(raws))
        else:
            with multiprocessing.get_context("spawn").Pool(procs) as pool:
                for i, raws in pool.imap_unordered(ib.sign_chain, tasks, chunksize=max(1, len(tasks) // (procs * 32))):
                    chains[i - first_member] = raws
                    progress.advance(len(raws))
    finally:
        progress.close()
    return chains, total / max(time.perf_counter() - start, 1e-9)


def sample_actions(n: int, coop: bytes) -> list[Action]:
    """Real actions with distinct keys, for the single-core verification rates (ingest.py's)."""
    return ib.sample_actions(n, coop)


def rates_view(rates: ib.MachineRates) -> dict[str, Any]:
    allr = rates.rounds["libsodium"] + rates.rounds.get("libsodium_after", [])
    return {
        "libsodium_verify_per_s": round(rates.libsodium),
        "libsodium_median_per_s": round(statistics.median(allr)),
        "openssl_verify_per_s": round(rates.openssl),
        "decode_action_per_s": round(rates.decode_action),
        "seconds_each": rates.seconds_each,
        "rounds": {k: [round(x) for x in v] for k, v in rates.rounds.items()},
    }


# ---- settings and nodes -------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSettings:
    """What the benchmarks vary in a node's ``coopnet.toml``; None keeps the node's default."""

    synchronous: str = "full"
    verify_workers: int | None = None
    max_batch_actions: int = 2000
    log_level: str = "info"
    open: bool = False
    fanout: int | None = None
    anti_entropy_interval: float | None = None
    request_timeout: float | None = None
    fetch_batch: int | None = None
    rate_limit: float | None = None
    # A public node: the default admission (client rate limits on), behind a reverse proxy at these
    # addresses, whose X-Forwarded-For names each client. False: every client rate limit off (one
    # benchmark address posts everything).
    public: bool = False
    trusted_proxies: tuple[str, ...] = ()
    founding: str | None = None  # [admission] founding; None: the node's default


@dataclass
class BenchNode:
    index: int
    data_dir: Path
    port: int
    key: SigningKey
    advertise_url: str = ""  # how peers reach it (a CountingProxy, say); default its own URL
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.perf_counter() just before Popen

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def peer_url(self) -> str:
        return self.advertise_url or self.url

    @property
    def node_id(self) -> str:
        return format_id(IdKind.NODE, self.key.public_key)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "node.log"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "coopnet.sqlite3"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"node {self.index} is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def as_process(self) -> ib.NodeProcess:
        """The same node as ``ingest.py`` sees one (for ``ingest.run_ingest``)."""
        assert self.proc is not None
        return ib.NodeProcess(self.proc, self.data_dir, self.log_path, self.url)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (all sockets held until all are chosen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(node: BenchNode, peers: Sequence[BenchNode], s: NodeSettings) -> str:
    limits = {"max_batch_actions": s.max_batch_actions}
    if s.verify_workers is not None:
        limits["verify_workers"] = s.verify_workers
    fed: dict[str, object] = {"name": FEDERATION, "open": s.open, "replicate": "all", "advertise_url": node.peer_url}
    for key in ("fanout", "anti_entropy_interval", "request_timeout", "fetch_batch", "rate_limit"):
        v = getattr(s, key)
        if v is not None:
            fed[key] = float(v) if key in ("anti_entropy_interval", "request_timeout", "rate_limit") else int(v)
    lines = [
        f"# coopnet benchmark node {node.index}, written by scripts/bench/benchlib.py",
        "[node]",
        f'listen = "{HOST}:{node.port}"',
        'data_dir = "."',
        'key_file = "node.key"',
        'database = "coopnet.sqlite3"',
        f"log_level = {_toml_value(s.log_level)}",
        "",
        "[store]",
        f"synchronous = {_toml_value(s.synchronous)}",
        "",
        "[limits]",
        *(f"{k} = {_toml_value(v)}" for k, v in limits.items()),
        "",
        "[federation]",
        *(f"{k} = {_toml_value(v)}" for k, v in fed.items()),
    ]
    if s.public:
        adm = [f"trusted_proxies = [{', '.join(_toml_value(p) for p in s.trusted_proxies)}]"]
        if s.founding is not None:
            adm.append(f"founding = {_toml_value(s.founding)}")
        lines += ["", "[admission]", *adm]
    elif hasattr(node_config, "Admission"):  # a coopnet with admission: one client address posts everything
        lines += ["", "[admission]", *(f"{k} = 0.0" for k in ib.ADMISSION_RATES)]
    for p in peers:
        if p is not node:
            lines += ["", "[[federation.peers]]", f"url = {_toml_value(p.peer_url)}", f"id = {_toml_value(p.node_id)}"]
    return "\n".join(lines) + "\n"


class NodeSet:
    """Real node processes in one temporary directory; a context manager that always cleans up."""

    def __init__(self, prefix: str = "coopnet-fedbench-", *, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep  # leave the data directories (logs, stores) for inspection
        self.nodes: list[BenchNode] = []
        self.env = ib._clean_env()
        self.cli = ib.coopnet_cli()

    def __enter__(self) -> NodeSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def init(self, n: int, *, ports: Sequence[int] | None = None) -> list[BenchNode]:
        """``coopnet init`` ``n`` data directories, each with its own port and node key."""
        ports = list(ports) if ports is not None else free_ports(n)
        made = []
        for port in ports[:n]:
            index = len(self.nodes)
            data_dir = self.root / f"node{index}"
            done = subprocess.run(
                [self.cli, "init", "--data-dir", str(data_dir), "--listen", f"{HOST}:{port}"],
                capture_output=True,
                env=self.env,
                timeout=60,
                check=False,
            )
            if done.returncode != 0:
                raise BenchError(f"coopnet init failed: {done.stderr.decode(errors='replace') or done.stdout.decode(errors='replace')}")
            node = BenchNode(index, data_dir, port, read_key_file(data_dir / "node.key", "node"))
            self.nodes.append(node)
            made.append(node)
        return made

    def configure(self, node: BenchNode, peers: Sequence[BenchNode], settings: NodeSettings) -> None:
        """Write the node's coopnet.toml, then load it back: fail here, not in the node, if it is wrong."""
        path = node.data_dir / CONFIG_NAME
        path.write_text(render_config(node, peers, settings))
        cfg = load_config(path, env={})
        if cfg.port != node.port or len(cfg.federation.peers) != len([p for p in peers if p is not node]):
            raise BenchError(f"{path}: the settings did not take")
        if settings.public and (cfg.admission.trusted_proxies != settings.trusted_proxies or cfg.admission.write_rate == 0):
            raise BenchError(f"{path}: the public node's admission did not take")

    def start(self, node: BenchNode) -> None:
        node.started_at = time.perf_counter()
        with node.log_path.open("ab") as log:
            node.proc = subprocess.Popen(
                [self.cli, "run", "--data-dir", str(node.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=node.data_dir,
                start_new_session=True,
            )

    async def wait_ready(self, session: aiohttp.ClientSession, nodes: Sequence[BenchNode], within: float = START_DEADLINE_S) -> None:
        await asyncio.gather(*(wait_healthy(session, n, within) for n in nodes))

    def stop(self, nodes: Sequence[BenchNode] | None = None, deadline_s: float = STOP_DEADLINE_S) -> dict[int, int | None]:
        """SIGTERM every running node at once, wait up to ``deadline_s``, then SIGKILL the process
        group of each one still alive (the group its ``start_new_session`` made; its verify
        workers are in it). Returns each node's exit status."""
        targets = [n for n in (self.nodes if nodes is None else nodes) if n.proc is not None]
        for n in targets:
            assert n.proc is not None
            if n.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    n.proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + deadline_s
        codes: dict[int, int | None] = {}
        for n in targets:
            assert n.proc is not None
            try:
                n.proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(n.proc.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    n.proc.wait(timeout=10)
            _kill_group(n.proc.pid)  # leftovers (workers) of a leader that exited
            codes[n.index] = n.proc.returncode
        return codes

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.keep:
                print(f"kept the nodes' data directories in {self.root}", file=sys.stderr)
            else:
                shutil.rmtree(self.root, ignore_errors=True)


def _group_members(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = ib._stat_fields(f"/proc/{name}/stat")
            if f is not None and f[0] not in ("Z", "X") and int(f[2]) == pgid:
                out.append(int(name))
    return out


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group this script created (checked in /proc first)."""
    if _group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP end the benchmark like Ctrl-C does, so every ``finally`` cleans up."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every finally: nodes stopped, directories removed

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


async def wait_healthy(session: aiohttp.ClientSession, node: BenchNode, within: float = START_DEADLINE_S) -> float:
    """Poll /healthz until it answers 200; returns seconds since the node's start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if node.proc is None or node.proc.poll() is not None:
            code = None if node.proc is None else node.proc.returncode
            raise BenchError(f"node {node.index} exited with status {code} while starting:\n{node.log_tail()}")
        try:
            async with session.get(node.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return time.perf_counter() - node.started_at
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.02)
    raise BenchError(f"node {node.index} not healthy after {within:.0f} s:\n{node.log_tail()}")


def check_alive(nodes: Sequence[BenchNode]) -> None:
    for n in nodes:
        if n.proc is not None and n.proc.poll() is not None:
            raise BenchError(f"node {n.index} exited with status {n.proc.returncode}:\n{n.log_tail()}")


# ---- HTTP helpers -------------------------------------------------------------------------------


async def get_json(session: aiohttp.ClientSession, url: str, path: str) -> Any:
    async with session.get(url + path, headers={"Accept": "application/json"}) as r:
        if r.status != 200:
            raise BenchError(f"GET {url}{path}: HTTP {r.status}: {(await r.text())[:300]}")
        return await r.json()


async def node_counts(session: aiohttp.ClientSession, node: BenchNode) -> dict[str, int]:
    return dict((await get_json(session, node.url, "/api/v1/node"))["counts"])


async def peers_view(session: aiohttp.ClientSession, node: BenchNode) -> list[dict[str, Any]]:
    return list((await get_json(session, node.url, "/api/v1/peers"))["peers"])


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(session: aiohttp.ClientSession, node: BenchNode) -> Samples:
    """Every sample of the node's /metrics: (name, sorted labels) -> value."""
    async with session.get(node.url + "/metrics") as r:
        text = await r.text()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def msum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every sample whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def mdelta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return msum(after, name, **labels) - msum(before, name, **labels)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls) in samples if n == name and label in dict(ls)}


# ---- wire bytes ---------------------------------------------------------------------------------


class _Relay:
    """A TCP relay on 127.0.0.1 in front of a node's port: the parts both relays share."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def start(self, port: int = 0) -> Any:
        self._server = await asyncio.start_server(self._handle, HOST, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None


class CountingProxy(_Relay):
    """A TCP relay 127.0.0.1:<port> -> 127.0.0.1:<target_port> counting bytes in each direction.

    ``up``: bytes from the connecting side (HTTP requests), ``down``: bytes back (replies). Counted
    before they are forwarded, so once a client holds a reply, the reply is counted."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.up = 0
        self.down = 0
        self.connections = 0

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
        try:
            for _ in range(1 << 40):  # bounded in name only: ends at EOF or a broken connection
                data = await src.read(1 << 16)
                if not data:
                    break
                if up:
                    self.up += len(data)
                else:
                    self.down += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            t_reader, t_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, t_writer}
        try:
            await asyncio.gather(self._pump(reader, t_writer, True), self._pump(t_reader, writer, False))
        finally:
            self._writers -= {writer, t_writer}


@dataclass
class PathStats:
    """HTTP exchanges through an ``HttpProxy`` for one request path."""

    requests: int = 0
    request_head: int = 0  # request line and headers, with the blank line
    request_body: int = 0
    reply_head: int = 0  # status line and headers
    reply_body: int = 0

    @property
    def total(self) -> int:
        return self.request_head + self.request_body + self.reply_head + self.reply_body

    def minus(self, other: PathStats) -> PathStats:
        return PathStats(
            *(getattr(self, f) - getattr(other, f) for f in ("requests", "request_head", "request_body", "reply_head", "reply_body"))
        )


class HttpProxy(_Relay):
    """A relay for HTTP/1.1 with Content-Length bodies (what aiohttp's client and server send to
    each other), counting each exchange by request path: head and body bytes each way.

    One request at a time per connection (aiohttp does not pipeline): read a request, forward it,
    read the reply, forward it. Anything else (a chunked body, a parse error) ends the connection,
    and the node's client retries on another: counted under ``unparsed``."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.paths: dict[str, PathStats] = {}
        self.unparsed = 0

    def snapshot(self) -> dict[str, PathStats]:
        return {k: PathStats(v.requests, v.request_head, v.request_body, v.reply_head, v.reply_body) for k, v in self.paths.items()}

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"transfer-encoding":
                raise ValueError("chunked body")
        return head, (await reader.readexactly(length) if length else b"")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, t_writer}
        try:
            for _ in range(1 << 40):  # one exchange per turn, until either side closes
                try:
                    head, body = await self._read_message(reader)
                except asyncio.IncompleteReadError:
                    break  # the client closed its keep-alive connection
                path = head.split(b" ", 2)[1].decode(errors="replace").split("?")[0]
                t_writer.write(head + body)
                await t_writer.drain()
                rhead, rbody = await self._read_message(t_reader)
                writer.write(rhead + rbody)
                await writer.drain()
                st = self.paths.setdefault(path, PathStats())
                st.requests += 1
                st.request_head += len(head)
                st.request_body += len(body)
                st.reply_head += len(rhead)
                st.reply_body += len(rbody)
        except (ValueError, IndexError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            self.unparsed += 1
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers -= {writer, t_writer}
            for w in (writer, t_writer):
                with contextlib.suppress(Exception):
                    w.close()


@dataclass
class HeaderCost:
    """Bytes of one signed peer request and its reply, as sent, beside their bodies."""

    kind: str
    request_total: int
    request_body: int
    reply_total: int
    reply_body: int

    @property
    def request_headers(self) -> int:
        return self.request_total - self.request_body

    @property
    def reply_headers(self) -> int:
        return self.reply_total - self.reply_body

    @property
    def headers(self) -> int:
        return self.request_headers + self.reply_headers

    def view(self) -> dict[str, int]:
        return {
            "request_headers": self.request_headers,
            "reply_headers": self.reply_headers,
            "request_body": self.request_body,
            "reply_body": self.reply_body,
        }


async def http_overhead(target: BenchNode, sender: SigningKey, calls: Sequence[tuple[str, str, bytes]]) -> dict[str, HeaderCost]:
    """Send each (kind, path, body) to ``target`` as the node of key ``sender`` would (the node's
    own ``PeerClient``: same aiohttp client, same signed headers), through a ``CountingProxy``;
    the header bytes are what crossed minus the bodies. ``sender`` must be a peer ``target``
    admits. The requests are real (a push is ingested, a reconcile answered)."""
    proxy = await CountingProxy(target.port).start()
    client = PeerClient(sender, lambda: time.time_ns() // 1_000_000, Metrics(), 10.0)
    peer = Peer(target.key.public_key, proxy.url, "config")
    out: dict[str, HeaderCost] = {}
    try:
        for kind, path, body in calls:
            up0, down0 = proxy.up, proxy.down
            reply = await client.call(peer, path, body, kind)
            await asyncio.sleep(0.01)
            out[kind] = HeaderCost(kind, proxy.up - up0, len(body), proxy.down - down0, len(reply))
    finally:
        await client.close()
        await proxy.close()
    return out


# ---- CPU, memory, machine --------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants."""
    total = ib.cpu_seconds(pid) or 0.0
    for c in ib.descendants(pid):
        total += ib.cpu_seconds(c) or 0.0
    return total


@dataclass
class CpuWindow:
    """CPU of some process trees, this process and the whole machine over a wall-clock window."""

    pids: dict[str, int]
    wall0: float = 0.0
    wall1: float = 0.0
    trees0: dict[str, float] = field(default_factory=dict)
    trees1: dict[str, float] = field(default_factory=dict)
    self0: float = 0.0
    self1: float = 0.0
    machine0: tuple[float, float] = (0.0, 0.0)
    machine1: tuple[float, float] = (0.0, 0.0)
    load0: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load1: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self) -> CpuWindow:
        self.wall0 = time.perf_counter()
        self.trees0 = {k: tree_cpu(p) for k, p in self.pids.items()}
        self.self0 = time.process_time()
        self.machine0 = ib.machine_cpu()
        self.load0 = os.getloadavg()
        return self

    def stop(self) -> CpuWindow:
        self.wall1 = time.perf_counter()
        self.trees1 = {k: tree_cpu(p) for k, p in self.pids.items()}
        self.self1 = time.process_time()
        self.machine1 = ib.machine_cpu()
        self.load1 = os.getloadavg()
        return self

    @property
    def wall(self) -> float:
        return self.wall1 - self.wall0

    def seconds(self) -> dict[str, float]:
        out = {k: self.trees1.get(k, 0.0) - self.trees0.get(k, 0.0) for k in self.pids}
        out["benchmark_client"] = self.self1 - self.self0
        ours = sum(out.values())
        busy = self.machine1[0] - self.machine0[0]
        out["other_processes"] = max(0.0, busy - ours)
        out["hypervisor_steal"] = self.machine1[1] - self.machine0[1]
        return out

    def view(self) -> dict[str, Any]:
        secs = self.seconds()
        w = max(self.wall, 1e-9)
        return {
            "wall_s": round(self.wall, 3),
            "cpu_seconds": {k: round(v, 2) for k, v in secs.items()},
            "cores": {k: round(v / w, 2) for k, v in secs.items()},
            "loadavg_start": [round(x, 2) for x in self.load0],
            "loadavg_end": [round(x, 2) for x in self.load1],
        }


def mem_total_mb() -> float:
    """The machine's RAM (MemTotal), in MB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_files_limit(pid: int | None = None) -> tuple[int | None, int | None]:
    """(soft, hard) RLIMIT_NOFILE of a process (this one if None); None stands for unlimited."""
    if pid is None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (None if soft == resource.RLIM_INFINITY else soft), (None if hard == resource.RLIM_INFINITY else hard)
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft_s, hard_s = line.split()[3:5]
                return (None if soft_s == "unlimited" else int(soft_s)), (None if hard_s == "unlimited" else int(hard_s))
    raise BenchError(f"no open-file limit in /proc/{pid}/limits")


def raise_open_files_limit() -> int | None:
    """Raise this process's soft open-file limit to its hard one (a load generator holding many
    sockets); returns the new soft limit (None: unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return open_files_limit()[0]


@dataclass(frozen=True)
class ProcessPeak:
    pid: int
    ppid: int
    command: str
    vmhwm_kb: int  # the peak resident memory of the process since it started


def tree_vmhwm(pid: int) -> list[ProcessPeak]:
    """A process and each live descendant, with its VmHWM. The sum bounds the peak of the tree's
    summed RSS from above (each process's peak may come at another moment)."""
    out: list[ProcessPeak] = []
    for p in [pid, *ib.descendants(pid)]:
        hwm = ib.status_kb(p, ("VmHWM",)).get("VmHWM")
        stat = ib._stat_fields(f"/proc/{p}/stat")
        if hwm is None or stat is None:
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        out.append(ProcessPeak(p, int(stat[1]), cmd, hwm))
    return out


def code_digest() -> str:
    """A short digest of node/ and protocol/ as they are on disk (uncommitted changes included):
    which code a run measured, when the working tree moves between runs."""
    h = hashlib.sha256()
    for d in ("node", "protocol"):
        for f in sorted((ROOT / d).glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


LOADAVG_AT_IMPORT = os.getloadavg()  # the benchmark script imports this module first thing


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": ib.cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "revision": ib.git_revision(),
        "code_digest": code_digest(),
        "loadavg_at_start": [round(x, 2) for x in LOADAVG_AT_IMPORT],
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None if empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def read_received_at(node: BenchNode, coop: bytes) -> dict[bytes, int]:
    """Action id -> received_at (ms) of every action of ``coop`` the node stored, read from its
    SQLite file directly (read-only; the node is stopped or in WAL mode)."""
    uri = f"file:{node.db_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        return dict(db.execute("SELECT id, received_at FROM actions WHERE coop = ?", (coop,)).fetchall())


@contextlib.contextmanager
def stage(out: TextIO, text: str) -> Iterator[None]:
    say(out, text)
    t = time.perf_counter()
    yield
    say(out, f"    ... {time.perf_counter() - t:.1f} s")


def emit(fig: dict[str, Any], as_json: bool, render: Any) -> int:
    """Print the figures (JSON, or the readable report) and return the exit status."""
    if as_json:
        print(json.dumps(fig, indent=2))
    else:
        render(fig, sys.stdout)
    return 0


def run_main(main: Any, name: str) -> None:
    """``sys.exit(main())``, turning a BenchError into one line on stderr and status 1."""
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"{name} benchmark FAILED: {e}", file=sys.stderr)
        sys.exit(1)
