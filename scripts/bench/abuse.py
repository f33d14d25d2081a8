#!/usr/bin/env python3
"""Abuse benchmark: a public node under a stranger's flood, big uploads and idle sockets.

One real ``coopnet run`` process configured as a public node is (the default admission policy,
client rate limits on, the default connection and body limits, behind a reverse proxy: this
script plays the proxy, so ``X-Forwarded-For`` names each client), and load generators in
processes of their own. Each figure is printed beside the machine's limit measured in the same
run: libsodium verifications per second on one core, the open-file limits, the RAM.

1. **Members under a flood.** The members of one co-op (their applications stored beforehand)
   post signed actions in batches, ``--inflight`` lanes as ``ingest.py`` does, each request from
   a member address of its own. The run alternates windows in which they post alone and windows
   in which a stranger floods the same node from another process as hard as it can, in the order
   alone, flood, flood, alone, alone, flood... (``--rounds`` pairs): a machine whose speed drifts
   spoils both kinds of window alike. The stranger, from ``--stranger-addresses`` addresses
   (default one), keeps ``--flood-conns`` requests in flight and ``--flood-idle`` idle sockets
   open, and sends: batches of actions by unknown authors in the members' co-op; applications by
   throwaway keys, then those applicants' chains; a co-op of its own and its founder's chain;
   garbage bodies; 8 MiB bodies; bodies over the limit, declared and chunked; broken HTTP;
   expensive reads; connections opened and dropped. Target: the members' rate under the flood
   is at least 80 % of their rate alone. Reported: what the node did with each kind of request
   (statuses, 429s, held, refused and why), and the members' co-op state compared with a
   reference node fed only the members' actions, then also what the node accepted from the
   stranger (admission lets anyone apply): the public node must equal the second exactly.
2. **Upload memory.** A fresh public node receives ``--uploads`` concurrent 8 MiB uploads, each
   from its own address: valid framing (msgpack and JSON batches of junk actions), invalid
   framing, and oversize (declared and chunked); each retries a 503 busy as told. Target: the sum
   of the VmHWM (peak resident memory) of every process of the node, the main process, its
   verify workers, their fork server and resource tracker, stays under 300 MB. Beside: the RAM.
3. **Idle sockets.** A fresh public node; another process opens ``--idle-sockets`` connections
   that never send a byte (and reopens those the node closes at its header timeout); this script
   then probes ``/healthz`` on a new connection each time, ``--probes`` times, paced over more
   than the header timeout. Target: p50, p99 and max under 100 ms. Beside: the open-file limits
   of the node and of the socket holder, and the same probes with no idle socket.

It exits non-zero if a target is missed (``--report-only``: never for a target) and prints a
table, or one JSON object with ``--json``. Only 127.0.0.1 is contacted. Every node is stopped
(SIGTERM, then SIGKILL of its process group) and every generator process ended, and the data
directories removed, whatever happens.

Usage (from the repository root)::

    python scripts/bench/abuse.py                          # all three parts, ~3-5 minutes
    python scripts/bench/abuse.py --parts members --rounds 5 --window-actions 30000
    python scripts/bench/abuse.py --stranger-addresses 1000 --json > abuse.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import benchlib as bl
import ingest as ib
import msgpack

from protocol import SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission

say = bl.say
BenchError = bl.BenchError
HOST = bl.HOST
MIB = 1024 * 1024

TARGET_RATIO = 0.8  # members' rate under the flood / alone
TARGET_UPLOAD_MB = 300.0  # sum of the node's processes' VmHWM under the uploads
TARGET_HEALTHZ_MS = 100.0  # /healthz with the idle sockets open: p50, p99 and max

MAX_REQUEST_BYTES = 8 * MIB  # the node's default limits.max_request_bytes (checked against its config)
REQUEST_TIMEOUT_S = 60.0  # one request of a load generator
CONNECT_TIMEOUT_S = 10.0
PAUSE_DEADLINE_S = 15.0  # requests in flight when a flood window ends get this long to finish
CONTROL_TIMEOUT_S = 300.0  # a generator process must answer a command within this
MEMBER_RETRIES = 50  # per member batch: 503 busy / dropped connections retried before failing
UPLOAD_RETRIES = 200  # per upload: 503 busy answers honoured before it counts as refused
IDLE_REOPENS = 20  # per idle socket: reopened at most this often after the node closes it
RSS_SAMPLE_S = 0.02
LARGE_BODY = 256 * 1024  # the stranger sends larger bodies in pieces, listening for an early answer
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

STRANGER_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("unknown", 3.0),  # batches by unknown authors in the members' co-op
    ("apply", 1.0),  # a throwaway key applies to the members' co-op
    ("applicant", 2.0),  # an accepted applicant's chain
    ("own_coop", 2.0),  # a co-op of the stranger's own, and its founder's chain
    ("garbage", 3.0),  # small bodies that are not submissions
    ("large", 1.0),  # 8 MiB bodies under the limit: junk in valid framing, or broken
    ("oversize", 1.0),  # Content-Length over the limit
    ("chunked", 0.5),  # a chunked body that never ends before the limit
    ("bad_http", 1.0),  # what the HTTP parser refuses
    ("read", 1.0),  # reads: a page of 1,000 actions, every chain head, the node's status
    ("read_state", 0.5),  # the co-op's governance state: the node folds what is new first
    ("churn", 1.0),  # connect, half a request head, hang up
)


# ---- a hand-written HTTP/1.1 client ------------------------------------------------------------
#
# The load generators share two cores with the node: aiohttp's client would spend more CPU per
# request than the node spends refusing it. This one sends prepared bytes and parses only the
# status, the headers it needs and a Content-Length body; and it can send what no library would.


def http_request(
    method: str, path: str, body: bytes = b"", *, ctype: str | None = None, xff: str | None = None, extra: Sequence[str] = ()
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Accept: application/msgpack"]
    if xff is not None:
        lines.append(f"X-Forwarded-For: {xff}")
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    if method == "POST" and not any(e.lower().startswith(("content-length", "transfer-encoding")) for e in extra):
        lines.append(f"Content-Length: {len(body)}")
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"

    def error_code(self) -> str:
        """The ``error`` of a JSON error body, else the status."""
        with contextlib.suppress(ValueError, UnicodeDecodeError, TypeError, AttributeError):
            return str(json.loads(self.body)["error"])
        return str(self.status)


class RawConn:
    """One keep-alive HTTP/1.1 connection to the node, reopened after the node closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0

    async def ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.close()
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port, limit=1 << 20), CONNECT_TIMEOUT_S)
            self.opened += 1
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None

    async def read_reply(self) -> Reply:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k:
                headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0") or 0)
        body = await self.reader.readexactly(n) if n else b""
        return Reply(status, headers, body)

    async def exchange(self, data: bytes) -> Reply:
        """Send one whole request, read its answer; a closing answer closes this side too."""
        _, writer = await self.ensure()
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the node may have answered on the head and closed: its answer is still to read
        reply = await self.read_reply()
        if reply.closes:
            self.close()
        return reply

    async def send_then_reply(self, head: bytes, chunks: Sequence[bytes]) -> Reply:
        """Send a head, then body pieces while waiting for an answer (the node may answer, and
        close, before the body is through); the connection is closed afterwards."""
        _, writer = await self.ensure()

        async def pump() -> None:
            writer.write(head)
            for c in chunks:
                writer.write(c)
                await writer.drain()

        sender = asyncio.create_task(pump())
        try:
            return await self.read_reply()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await sender
            self.close()


def outcome_of(e: BaseException) -> str:
    return f"error:{type(e).__name__}"


# ---- the members ------------------------------------------------------------------------------


def member_address(lane: int, k: int) -> str:
    """The k-th request of a lane comes from its own member address (10.<lane>.x.y)."""
    return f"10.{lane % 256}.{(k >> 8) % 256}.{k % 256}"


def stranger_address(i: int, n: int) -> str:
    """The i-th of n stranger addresses: TEST-NET-3 for up to 254, the benchmarking /15 beyond."""
    if n <= 254:
        return f"203.0.113.{i % n + 1}"
    j = i % n
    return f"198.{18 + (j >> 16) % 2}.{(j >> 8) % 256}.{j % 256}"


@dataclass
class MemberWork:
    genesis: bytes
    coop: bytes
    applications: list[bytes]  # each member's seq 1, stored before the measured windows
    windows: list[list[list[tuple[bytes, int]]]]  # window -> lane -> (request body, actions), in order
    window_actions: list[int]
    all_actions: list[list[bytes]]  # per lane, in posting order: what the reference node is fed
    members: int
    action_bytes_mean: float


def build_member_work(windows: int, per_window: int, members: int, lanes: int, batch: int, procs: int, out: TextIO) -> MemberWork:
    founder = ib.founder_key()
    genesis = sign_genesis(founder, ts=ib.TS0, body={"name": "Abuse benchmark co-op", "about": "members posting while a stranger floods"})
    coop = genesis.id
    total = windows * per_window
    lengths = [n + 1 for n in ib.chain_lengths(total, members)]  # +1: each chain starts with the application
    chains, _rate = bl.presign(lengths, coop, procs, out)
    applications = [c[0] for c in chains]
    lane_actions: list[list[bytes]] = [[] for _ in range(lanes)]
    for j in range(1, max(lengths)):
        for m, chain in enumerate(chains):
            if j < len(chain):
                lane_actions[m % lanes].append(chain[j])
    out_windows: list[list[list[tuple[bytes, int]]]] = []
    counts = []
    for w in range(windows):
        lanes_w = []
        n = 0
        for acts in lane_actions:
            part = acts[w * len(acts) // windows : (w + 1) * len(acts) // windows]
            lanes_w.append([(encode_submission(part[k : k + batch]), len(part[k : k + batch])) for k in range(0, len(part), batch)])
            n += len(part)
        out_windows.append(lanes_w)
        counts.append(n)
    every = [raw for c in chains for raw in c[1:]]
    return MemberWork(
        genesis.raw,
        coop,
        applications,
        out_windows,
        counts,
        lane_actions,
        members,
        sum(len(r) for r in every) / max(1, len(every)),
    )


@dataclass
class MemberStats:
    http: Counter[str] = field(default_factory=Counter)  # status (and error code) of every answer, retries included
    retries: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # per batch, retries included
    accepted: int = 0


async def post_members(
    session: aiohttp.ClientSession, url: str, body: bytes, n: int, address: str, stats: MemberStats, *, check: bool = True
) -> dict[str, Any]:
    """Post one batch as a member client would: a 503 busy or 429 is retried after its
    Retry-After, a dropped keep-alive connection at once; every action must be accepted."""
    headers = {**bl.MSGPACK_HEADERS, "X-Forwarded-For": address}
    t = time.perf_counter()
    for _ in range(MEMBER_RETRIES):
        try:
            async with session.post(url + "/api/v1/actions", data=body, headers=headers) as r:
                data = await r.read()
                status = r.status
                retry_after = r.headers.get("Retry-After")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
            stats.http[outcome_of(e)] += 1
            stats.retries[outcome_of(e)] += 1
            continue
        if status == 200:
            stats.http["200"] += 1
            doc = msgpack.unpackb(data, raw=False)
            if check:
                ib.check_all_accepted(doc, n, "member batch")
            stats.accepted += doc.get("accepted", 0)
            stats.latencies.append(time.perf_counter() - t)
            return dict(doc)
        code = _error_code(data)
        stats.http[f"{status} {code}"] += 1
        if status in (429, 503) and retry_after is not None:
            stats.retries[f"{status} {code}"] += 1
            await asyncio.sleep(min(float(retry_after), 5.0))
            continue
        raise BenchError(f"member batch of {n}: HTTP {status}: {data[:300]!r}")
    raise BenchError(f"member batch of {n}: still refused after {MEMBER_RETRIES} tries: {dict(stats.http)}")


def _error_code(data: bytes) -> str:
    with contextlib.suppress(Exception):
        return str(json.loads(data)["error"])
    with contextlib.suppress(Exception):
        return str(msgpack.unpackb(data, raw=False)["error"])
    return "?"


# ---- control of a generator process ---------------------------------------------------------------


class Generator:
    """A load generator in its own process (spawned), driven by commands over a pipe."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, *args), name=name, daemon=True)
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def ask(self, *command: Any, timeout: float = CONTROL_TIMEOUT_S) -> Any:
        if command:
            self.conn.send(command)
        return self.expect(timeout)

    def expect(self, timeout: float = CONTROL_TIMEOUT_S) -> Any:
        if not self.conn.poll(timeout):
            raise BenchError(f"the {self.name} process did not answer within {timeout:g} s")
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            raise BenchError(f"the {self.name} process ended (exit status {self.proc.exitcode})") from None
        if kind == "error":
            raise BenchError(f"the {self.name} process failed: {payload}")
        return payload

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("stop",))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def _child(conn: Connection, body: Callable[[], Awaitable[None]]) -> None:
    """A generator process's main: run ``body``; report a failure instead of dying silently."""
    try:
        bl.raise_open_files_limit()
        asyncio.run(body())
    except BaseException as e:  # the parent must hear of it, whatever it was
        with contextlib.suppress(Exception):
            conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


class Commands:
    """Commands from the parent, read on a thread and handed to the event loop."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def read() -> None:
            for _ in range(1 << 30):  # until the parent hangs up
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    msg = ("stop",)
                loop.call_soon_threadsafe(self.queue.put_nowait, msg)
                if msg[0] == "stop":
                    return

        threading.Thread(target=read, name="commands", daemon=True).start()

    async def next(self) -> tuple[Any, ...]:
        return await self.queue.get()

    def reply(self, kind: str, payload: Any = None) -> None:
        self.conn.send((kind, payload))


# ---- the stranger -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrangerPlan:
    port: int
    coop: bytes  # the members' co-op
    conns: int
    idle: int
    addresses: int
    seed: int
    unknown_keys: int  # throwaway keys acting in the members' co-op without applying
    unknown_per_key: int
    batch: int  # actions per batch (its own co-op's and unknown authors')
    applicants: int  # throwaway keys that apply, then post their chain
    applicant_chain: int
    applicant_batch: int
    own_coops: int
    own_chain: int
    max_request_bytes: int
    weights: tuple[tuple[str, float], ...] = STRANGER_WEIGHTS
    cpu: float = 0.0  # cores the stranger's process may use while flooding; 0: as much as it can get


def stranger_key(kind: str, i: int) -> SigningKey:
    return SigningKey(hashlib.sha256(f"coopnet-bench/stranger/{kind}/{i}".encode()).digest())


def sign_chain_of(key: SigningKey, coop: bytes, n: int, first: str | None, salt: int) -> list[bytes]:
    """A chain of ``n`` application-kind actions (``first``: the kind of its seq 1, e.g. an application)."""
    rng = random.Random(salt)
    out: list[bytes] = []
    prev: bytes | None = None
    for seq in range(1, n + 1):
        ts = ib.TS0 + seq * 60_000 + salt % 50_000
        kind = rng.choice(ib.KINDS)
        body = ib.make_body(rng, kind, ts)
        if seq == 1 and first is not None:
            kind, body = first, {"note": "a stranger applies"}
        a = sign_action(key, coop=coop, seq=seq, prev=prev, ts=ts, kind=kind, body=body)
        out.append(a.raw)
        prev = a.id
    return out


@dataclass
class StrangerMaterial:
    unknown: list[bytes]  # request bodies
    applicants: list[list[bytes]]  # each: [application, chain...]
    own: list[list[bytes]]  # each: [genesis, founder's chain...]
    garbage: list[tuple[str, bytes]]  # (content type, body)
    large: list[tuple[str, bytes]]
    bad_http: list[bytes]
    reads: list[str]
    oversize_chunks: list[bytes]

    @classmethod
    def build(cls, plan: StrangerPlan) -> StrangerMaterial:
        rng = random.Random(plan.seed)
        coop = plan.coop
        unknown_raws = [
            raw
            for i in range(plan.unknown_keys)
            for raw in sign_chain_of(stranger_key("unknown", i), coop, plan.unknown_per_key, None, 10_000 + i)
        ]
        rng.shuffle(unknown_raws)  # keys mixed across batches, as a flood would send them (held and pending alike)
        unknown = [encode_submission(unknown_raws[k : k + plan.batch]) for k in range(0, len(unknown_raws), plan.batch)]
        applicants = [
            sign_chain_of(stranger_key("applicant", i), coop, plan.applicant_chain, ib.APPLY, 20_000 + i) for i in range(plan.applicants)
        ]
        own = []
        for i in range(plan.own_coops):
            key = stranger_key("founder", i)
            g = sign_genesis(key, ts=ib.TS0, body={"name": f"stranger co-op {i}", "about": "founded on a public node by a stranger"})
            own.append([g.raw, *sign_chain_of(key, g.id, plan.own_chain, None, 30_000 + i)])
        junk = rng.randbytes(64 * 1024)
        deep = b'{"actions": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        garbage = [
            ("application/msgpack", junk[:4096]),
            ("application/msgpack", msgpack.packb({"actions": [junk[:300]] * 64}, use_bin_type=True)),  # junk actions, valid framing
            ("application/json", b'{"actions": ["' + base64.b64encode(junk[:3000]) + b'!"]}'),  # bad base64
            ("application/json", deep),  # nested past max_json_depth
            ("application/json", b'{"actions": [' + b"1" * 30_000 + b"]}"),  # a 30,000-digit number
            ("application/json", b"\xff\xfe" + junk[:2000]),  # not UTF-8
            ("text/plain", b"hello"),  # unsupported media type
            ("application/msgpack", msgpack.packb({"actions": [b"\x00"] * 2500}, use_bin_type=True)),  # past max_batch_actions
        ]
        item = 4096 - 8
        size = plan.max_request_bytes - 4096
        large = [
            ("application/msgpack", msgpack.packb({"actions": [junk[:item]] * min(2000, size // (item + 3))}, use_bin_type=True)),
            ("application/json", b'{"action": "' + base64.b64encode(rng.randbytes((size - 20) * 3 // 4)) + b'!"}'),  # broken at the end
            ("application/json", b'{"action": "' + base64.b64encode(rng.randbytes((size - 20) * 3 // 4)) + b'"}'),  # one 6 MiB "action"
            ("application/msgpack", junk[:16] * (size // 16)),  # broken framing, 8 MiB of it
        ]
        for _ct, b in large:
            if len(b) > plan.max_request_bytes:
                raise BenchError(f"a large body of {len(b)} bytes is over the limit")
        long_header = "X-Junk: " + "a" * 9000
        bad_http = [
            b"GET /api/v1/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",  # not ASCII
            ("GET /api/v1/node HTTP/1.1\r\nHost: x\r\n" + long_header + "\r\n\r\n").encode(),  # header line too long
            b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",  # broken chunking
            b"GET /api/v1/node HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",  # too many headers
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + junk[:200] + b"\r\n\r\n",  # TLS to a plain port
        ]
        c = format_id(IdKind.COOP, coop)
        reads = [f"/api/v1/coops/{c}/actions?limit=1000", f"/api/v1/coops/{c}/chains", "/api/v1/node"]
        chunk = rng.randbytes(256 * 1024)
        n_chunks = plan.max_request_bytes // len(chunk) + 4
        oversize_chunks = [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * n_chunks
        return cls(unknown, applicants, own, garbage, large, bad_http, reads, oversize_chunks)

    def summary(self) -> dict[str, Any]:
        return {
            "unknown_author_batches": len(self.unknown),
            "applicants": len(self.applicants),
            "own_coops": len(self.own),
            "garbage_bodies": len(self.garbage),
            "large_bodies_mib": [round(len(b) / MIB, 2) for _, b in self.large],
        }


class Stranger:
    """The flood: ``plan.conns`` request loops and ``plan.idle`` idle sockets, while flooding."""

    def __init__(self, plan: StrangerPlan, m: StrangerMaterial) -> None:
        self.plan = plan
        self.m = m
        self.flooding = False
        self.rng = random.Random(plan.seed)
        self.kinds = [k for k, _ in plan.weights]
        self.weights = [w for _, w in plan.weights]
        self.counter = 0
        self.address_i = 0
        # What the node took from the stranger in the members' co-op (the reference node gets it too).
        self.accepted_in_coop: list[bytes] = []
        self.accepted_own = 0
        self.applicant_next: dict[int, int] = {}  # applicant -> index of the next action to send (1: the chain after the application)
        self.applicant_ready: list[int] = []
        self.applicant_tried = 0
        self.own_next = [0] * len(m.own)
        self.own_turn = 0
        self.cpu0 = self.wall0 = 0.0
        self.reset_stats()

    def reset_stats(self) -> None:
        self.outcomes: Counter[str] = Counter()  # "kind status code"
        self.actions: Counter[str] = Counter()  # "kind status[:code]" per action in answers
        self.requests: Counter[str] = Counter()
        self.slowest: dict[str, float] = {}  # per kind, the longest a request took (a 429 waits up to tarpit_seconds)
        self.bytes_sent = 0
        self.idle_opened = 0
        self.idle_closed_by_node = 0
        self.idle_refused = 0
        self.idle_errors: Counter[str] = Counter()

    def address(self) -> str:
        self.address_i += 1
        return stranger_address(self.address_i, self.plan.addresses)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "outcomes": dict(self.outcomes),
            "actions": dict(self.actions),
            "slowest_s": {k: round(v, 3) for k, v in sorted(self.slowest.items())},
            "bytes_sent": self.bytes_sent,
            "idle_sockets": {
                "opened": self.idle_opened,
                "closed_by_node": self.idle_closed_by_node,
                "refused_503": self.idle_refused,
                "errors": dict(self.idle_errors),
            },
            "accepted_in_members_coop": len(self.accepted_in_coop),
            "accepted_in_own_coops": self.accepted_own,
        }

    # ---- the loops ----

    async def lane(self, i: int) -> None:
        rng = random.Random(self.plan.seed * 1000 + i)
        conn = RawConn(self.plan.port)
        try:
            for _ in range(1 << 40):  # until the window ends
                if not self.flooding:
                    return
                if self.plan.cpu:
                    await self.pace()
                kind = rng.choices(self.kinds, self.weights)[0]
                self.requests[kind] += 1
                t = time.perf_counter()
                try:
                    await asyncio.wait_for(self.one(kind, conn), REQUEST_TIMEOUT_S)
                    self.slowest[kind] = max(self.slowest.get(kind, 0.0), time.perf_counter() - t)
                except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as e:
                    self.outcomes[f"{kind} {outcome_of(e)}"] += 1
                    conn.close()
        finally:
            conn.close()

    async def pace(self) -> None:
        """Sleep while this process has used more than ``plan.cpu`` cores since the flood began:
        an attacker elsewhere spends its own CPU, not the node's machine's."""
        ahead = (time.process_time() - self.cpu0) / self.plan.cpu - (time.perf_counter() - self.wall0)
        if ahead > 0:
            await asyncio.sleep(min(ahead, 1.0))

    async def idle_socket(self) -> None:
        for _ in range(IDLE_REOPENS + 1):
            if not self.flooding:
                return
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.plan.port), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as e:
                self.idle_errors[outcome_of(e)] += 1
                return
            self.idle_opened += 1
            try:
                got = await reader.read(64)
                if got.startswith(b"HTTP/1.1 503"):
                    self.idle_refused += 1
                else:
                    self.idle_closed_by_node += 1
            except (ConnectionError, OSError) as e:
                self.idle_errors[outcome_of(e)] += 1
            finally:
                writer.close()

    async def flood(self, stop: asyncio.Event) -> None:
        """Until ``stop``: every lane and idle socket; then what is in flight ends (with a deadline)."""
        self.flooding = True
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        tasks = [asyncio.create_task(self.lane(i)) for i in range(self.plan.conns)]
        idle = []
        for k in range(0, self.plan.idle, 100):  # opened 100 at a time: the listen backlog is 128
            if stop.is_set():
                break
            idle += [asyncio.create_task(self.idle_socket()) for _ in range(min(100, self.plan.idle - k))]
            await asyncio.sleep(0)
        await stop.wait()
        self.flooding = False
        for t in idle:
            t.cancel()
        done, pending = await asyncio.wait(tasks, timeout=PAUSE_DEADLINE_S)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, *idle, return_exceptions=True)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    # ---- one request of each kind ----

    async def one(self, kind: str, conn: RawConn) -> None:
        await getattr(self, f"_{kind}")(conn, kind)

    async def _post(self, conn: RawConn, kind: str, body: bytes, ctype: str = "application/msgpack") -> Reply:
        if len(body) > LARGE_BODY:
            # Sent while listening: once the node answers (on the head, or halfway), stop sending.
            head = http_request("POST", "/api/v1/actions", ctype=ctype, xff=self.address(), extra=[f"Content-Length: {len(body)}"])
            self.bytes_sent += len(head) + len(body)
            pieces = [body[k : k + LARGE_BODY] for k in range(0, len(body), LARGE_BODY)]
            r = await conn.send_then_reply(head, pieces)
        else:
            data = http_request("POST", "/api/v1/actions", body, ctype=ctype, xff=self.address())
            self.bytes_sent += len(data)
            r = await conn.exchange(data)
        self.outcomes[f"{kind} {r.status} {r.error_code() if r.status != 200 else ''}".rstrip()] += 1
        return r

    def _results(self, kind: str, r: Reply) -> list[dict[str, Any]]:
        """Per-action results of an answer to a submission (a 200, or an error carrying them)."""
        try:
            doc = msgpack.unpackb(r.body, raw=False) if r.status == 200 else json.loads(r.body)
        except (ValueError, msgpack.UnpackException):
            return []
        results = doc.get("results", []) if isinstance(doc, dict) else []
        for x in results:
            self.actions[f"{kind} {x.get('status')}" + (f":{x['code']}" if x.get("code") else "")] += 1
        return list(results)

    async def _unknown(self, conn: RawConn, kind: str) -> None:
        self.counter += 1
        r = await self._post(conn, kind, self.m.unknown[self.counter % len(self.m.unknown)])
        self._results(kind, r)

    async def _apply(self, conn: RawConn, kind: str) -> None:
        if self.applicant_tried >= len(self.m.applicants):
            self.applicant_tried = 0  # every key tried: send the refused ones again
        i = self.applicant_tried
        self.applicant_tried += 1
        if i in self.applicant_next:
            return await self._applicant(conn, "applicant")
        raw = self.m.applicants[i][0]
        r = await self._post(conn, kind, encode_submission([raw], single=True))
        res = self._results(kind, r)
        if res and res[0].get("status") == "accepted" and i not in self.applicant_next:
            self.accepted_in_coop.append(raw)
            self.applicant_next[i] = 1
            self.applicant_ready.append(i)
        return None

    async def _applicant(self, conn: RawConn, kind: str) -> None:
        if not self.applicant_ready:
            return await self._apply(conn, "apply")
        i = self.applicant_ready.pop(0)  # leased: one request at a time per chain, so it arrives in order
        try:
            chain = self.m.applicants[i]
            start = self.applicant_next[i]
            part = chain[start : start + self.plan.applicant_batch]
            if not part:
                return None
            r = await self._post(conn, kind, encode_submission(part))
            res = self._results(kind, r)
            for raw, x in zip(part, res, strict=False):
                if x.get("status") not in ("accepted", "known"):
                    break
                if x.get("status") == "accepted":
                    self.accepted_in_coop.append(raw)
                self.applicant_next[i] += 1
        finally:
            if self.applicant_next[i] < len(self.m.applicants[i]):
                self.applicant_ready.append(i)
        return None

    async def _own_coop(self, conn: RawConn, kind: str) -> None:
        if not self.m.own:
            return
        i = self.own_turn % len(self.m.own)
        self.own_turn += 1
        chain = self.m.own[i]
        start = self.own_next[i]
        if start >= len(chain):
            start = self.own_next[i] = 1  # all stored: send it again (known), still work for the node
        part = chain[start : start + (1 if start == 0 else self.plan.batch)]
        self.own_next[i] = start + len(part)  # optimistic: another lane takes the next part meanwhile
        r = await self._post(conn, kind, encode_submission(part, single=start == 0))
        res = self._results(kind, r)
        ok = 0
        for x in res:
            if x.get("status") not in ("accepted", "known"):
                break
            ok += 1
            self.accepted_own += x.get("status") == "accepted"
        if ok < len(part):
            self.own_next[i] = min(self.own_next[i], start + ok)  # refused: that part again later

    async def _garbage(self, conn: RawConn, kind: str) -> None:
        self.counter += 1
        ctype, body = self.m.garbage[self.counter % len(self.m.garbage)]
        await self._post(conn, kind, body, ctype)

    async def _large(self, conn: RawConn, kind: str) -> None:
        self.counter += 1
        ctype, body = self.m.large[self.counter % len(self.m.large)]
        r = await self._post(conn, kind, body, ctype)
        self._results(kind, r)

    async def _oversize(self, conn: RawConn, kind: str) -> None:
        size = self.plan.max_request_bytes + MIB
        head = http_request("POST", "/api/v1/actions", ctype="application/msgpack", xff=self.address(), extra=[f"Content-Length: {size}"])
        self.bytes_sent += len(head)
        r = await conn.send_then_reply(head, self.m.oversize_chunks[:1])  # a first piece; the node answers on the head
        self.bytes_sent += len(self.m.oversize_chunks[0])
        self.outcomes[f"{kind} {r.status} {r.error_code()}"] += 1

    async def _chunked(self, conn: RawConn, kind: str) -> None:
        head = http_request(
            "POST", "/api/v1/actions", ctype="application/msgpack", xff=self.address(), extra=["Transfer-Encoding: chunked"]
        )
        self.bytes_sent += len(head) + sum(len(c) for c in self.m.oversize_chunks)
        r = await conn.send_then_reply(head, self.m.oversize_chunks)
        self.outcomes[f"{kind} {r.status} {r.error_code()}"] += 1

    async def _bad_http(self, conn: RawConn, kind: str) -> None:
        self.counter += 1
        data = self.m.bad_http[self.counter % len(self.m.bad_http)]
        conn.close()  # a fresh connection: the node closes it after its answer anyway
        self.bytes_sent += len(data)
        r = await conn.send_then_reply(data, ())
        self.outcomes[f"{kind} {r.status} {r.error_code()}"] += 1

    async def _read(self, conn: RawConn, kind: str) -> None:
        self.counter += 1
        path = self.m.reads[self.counter % len(self.m.reads)]
        data = http_request("GET", path, xff=self.address())
        self.bytes_sent += len(data)
        r = await conn.exchange(data)
        self.outcomes[f"{kind} {r.status}" + (f" {r.error_code()}" if r.status != 200 else "")] += 1

    async def _read_state(self, conn: RawConn, kind: str) -> None:
        data = http_request("GET", f"/api/v1/coops/{format_id(IdKind.COOP, self.plan.coop)}/state", xff=self.address())
        self.bytes_sent += len(data)
        r = await conn.exchange(data)
        self.outcomes[f"{kind} {r.status}" + (f" {r.error_code()}" if r.status != 200 else "")] += 1

    async def _churn(self, conn: RawConn, kind: str) -> None:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.plan.port), CONNECT_TIMEOUT_S)
        writer.write(b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nContent-Le")
        writer.close()
        self.outcomes[f"{kind} hung up"] += 1


def stranger_main(conn: Connection, plan: StrangerPlan) -> None:
    async def body() -> None:
        cmds = Commands(conn)
        m = StrangerMaterial.build(plan)
        s = Stranger(plan, m)
        cmds.reply("ready", m.summary())
        for _ in range(1 << 20):
            cmd = await cmds.next()
            if cmd[0] == "go":
                stop = asyncio.Event()
                s.reset_stats()
                flood = asyncio.create_task(s.flood(stop))
                cmds.reply("flooding")
                cmd = await cmds.next()
                stop.set()
                await flood
                cmds.reply("paused", s.stats())
            if cmd[0] == "stop":
                cmds.reply("stopped", {"accepted_in_members_coop": s.accepted_in_coop, "accepted_in_own_coops": s.accepted_own})
                return

    _child(conn, body)


# ---- uploads ----------------------------------------------------------------------------------------


UPLOAD_KINDS = ("msgpack_junk_actions", "json_junk_actions", "msgpack_broken", "json_broken", "oversize_declared", "oversize_chunked")


def upload_bodies(n: int, size: int, seed: int) -> list[tuple[str, str, bytes]]:
    """``n`` bodies of about ``size`` bytes, kinds in turn: (kind, content type, body)."""
    rng = random.Random(seed)
    junk = rng.randbytes(8192)
    item = 4096 - 8
    out: list[tuple[str, str, bytes]] = []
    for i in range(n):
        kind = UPLOAD_KINDS[i % len(UPLOAD_KINDS)]
        if kind == "msgpack_junk_actions":
            body = msgpack.packb(
                {"actions": [junk[(i % 16) * 8 : (i % 16) * 8 + item]] * max(1, min(2000, size // item))}, use_bin_type=True
            )
            out.append((kind, "application/msgpack", body))
        elif kind == "json_junk_actions":
            one = base64.b64encode(junk[: (size // 2000 - 8) * 3 // 4] if size >= 40_000 else junk[:100]).decode()
            out.append((kind, "application/json", json.dumps({"actions": [one] * min(2000, max(1, size // (len(one) + 3)))}).encode()))
        elif kind == "msgpack_broken":
            whole = msgpack.packb({"actions": [junk[:item]] * max(1, min(2000, size // item))}, use_bin_type=True)
            out.append((kind, "application/msgpack", whole[:-100]))  # truncated: the framing breaks at the end
        elif kind == "json_broken":
            blob = base64.b64encode(rng.randbytes(max(3, (size - 20) * 3 // 4))).decode()
            out.append((kind, "application/json", json.dumps({"action": blob}).encode()[:-2] + b"!}"))
        else:
            out.append((kind, "application/msgpack", rng.randbytes(MAX_REQUEST_BYTES + MIB)))  # over the node's limit
    return out


def uploader_main(conn: Connection, port: int, n: int, size: int, seed: int) -> None:
    async def body() -> None:
        cmds = Commands(conn)
        bodies = upload_bodies(n, size, seed)
        cmds.reply("ready", {k: sum(1 for x in bodies if x[0] == k) for k in UPLOAD_KINDS})
        cmd = await cmds.next()
        if cmd[0] != "go":
            cmds.reply("stopped", None)
            return
        answers: Counter[str] = Counter()
        busy: Counter[str] = Counter()
        times: list[float] = []

        async def one(i: int, kind: str, ctype: str, data: bytes) -> None:
            conn_ = RawConn(port)
            t = time.perf_counter()
            try:
                for _ in range(UPLOAD_RETRIES):
                    xff = f"198.51.100.{i % 250 + 1}"
                    try:
                        if kind == "oversize_chunked":
                            head = http_request("POST", "/api/v1/actions", ctype=ctype, xff=xff, extra=["Transfer-Encoding: chunked"])
                            pieces = [
                                b"%x\r\n" % len(data[k : k + 65536]) + data[k : k + 65536] + b"\r\n" for k in range(0, len(data), 65536)
                            ]
                            r = await asyncio.wait_for(conn_.send_then_reply(head, [*pieces, b"0\r\n\r\n"]), REQUEST_TIMEOUT_S)
                        elif kind == "oversize_declared":
                            head = http_request("POST", "/api/v1/actions", ctype=ctype, xff=xff, extra=[f"Content-Length: {len(data)}"])
                            r = await asyncio.wait_for(
                                conn_.send_then_reply(head, [data[k : k + 65536] for k in range(0, len(data), 65536)]), REQUEST_TIMEOUT_S
                            )
                        else:
                            r = await asyncio.wait_for(
                                conn_.exchange(http_request("POST", "/api/v1/actions", data, ctype=ctype, xff=xff)), REQUEST_TIMEOUT_S
                            )
                    except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError) as e:
                        conn_.close()
                        if kind.startswith("oversize"):
                            answers[f"{kind} {outcome_of(e)}"] += 1  # refused on its head, reset while still sending
                            return
                        # A 503 busy on a body the node did not read is followed by a close; a
                        # slow sender sees the reset, not the answer: try again, as after a busy.
                        busy[f"{kind} {outcome_of(e)}"] += 1
                        await asyncio.sleep(0.1)
                        continue
                    if r.status == 503 and r.error_code() == "busy":
                        busy[kind] += 1
                        conn_.close()  # its body was not read: a new connection for the next try
                        await asyncio.sleep(float(r.headers.get("retry-after", "1")) / 10)  # a tenth: keep the pressure on
                        continue
                    answers[f"{kind} {r.status} {r.error_code() if r.status != 200 else 'ok'}"] += 1
                    return
                answers[f"{kind} gave up after {UPLOAD_RETRIES} busy"] += 1
            finally:
                times.append(time.perf_counter() - t)
                conn_.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, *b) for i, b in enumerate(bodies)))
        wall = time.perf_counter() - t0
        cmds.reply(
            "done", {"answers": dict(answers), "busy_retries": dict(busy), "wall_s": round(wall, 3), "slowest_s": round(max(times), 3)}
        )
        await cmds.next()
        cmds.reply("stopped", None)

    _child(conn, body)


# ---- idle sockets -------------------------------------------------------------------------------


def holder_main(conn: Connection, port: int, n: int) -> None:
    async def body() -> None:
        cmds = Commands(conn)
        cmds.reply("ready", {"open_files_soft": bl.open_files_limit()[0]})
        cmd = await cmds.next()
        if cmd[0] != "open":
            cmds.reply("stopped", None)
            return
        stats: Counter[str] = Counter()
        up = asyncio.Event()
        live = 0
        first_done = 0  # sockets whose first connection attempt has ended, either way
        holding = True

        def first_attempt_done() -> None:
            nonlocal first_done
            first_done += 1
            if first_done >= n:
                up.set()

        async def hold() -> None:
            nonlocal live
            for attempt in range(IDLE_REOPENS + 1):
                if not holding:
                    return
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), CONNECT_TIMEOUT_S)
                except (OSError, TimeoutError) as e:
                    stats[f"connect {outcome_of(e)}"] += 1
                    if attempt == 0:
                        first_attempt_done()
                    return
                stats["opened"] += 1
                live += 1
                if attempt == 0:
                    first_attempt_done()
                try:
                    got = await reader.read(64)
                    stats["refused 503" if got.startswith(b"HTTP/1.1 503") else "closed by the node"] += 1
                except (ConnectionError, OSError) as e:
                    stats[outcome_of(e)] += 1
                finally:
                    live -= 1
                    writer.close()

        tasks = []
        t0 = time.perf_counter()
        for k in range(0, n, 100):  # 100 at a time: the node's listen backlog is 128
            tasks += [asyncio.create_task(hold()) for _ in range(min(100, n - k))]
            for _ in range(100):
                await asyncio.sleep(0)
        try:
            await asyncio.wait_for(up.wait(), 60)
        except TimeoutError:
            pass
        cmds.reply("open", {"live": live, "opened": stats["opened"], "seconds": round(time.perf_counter() - t0, 2)})
        await cmds.next()
        live_at_end = live
        holding = False
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cmds.reply("closed", {"live_at_end": live_at_end, **dict(stats)})
        await cmds.next()
        cmds.reply("stopped", None)

    _child(conn, body)


async def probe_healthz(port: int) -> float:
    """Seconds for one /healthz on a new connection: connect, ask, read the whole answer."""
    t = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), CONNECT_TIMEOUT_S)
    try:
        writer.write(HEALTHZ)
        data = await asyncio.wait_for(reader.read(), CONNECT_TIMEOUT_S)  # Connection: close: to EOF
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise BenchError(f"/healthz answered {data[:200]!r}")
    return time.perf_counter() - t


async def probe_series(port: int, n: int, interval: float) -> list[float]:
    out = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(n):
        out.append(await probe_healthz(port))
        wait = start + (i + 1) * interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)  # paced: the probes span the node's header timeout
    return out


def latency_view(xs: Sequence[float]) -> dict[str, Any]:
    ms = [1000 * x for x in xs]
    return {
        "probes": len(ms),
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p99_ms": round(bl.percentile(ms, 99) or 0.0, 2) if ms else None,
        "max_ms": round(max(ms), 2) if ms else None,
    }


# ---- part 1: members under a flood --------------------------------------------------------------------


FLOOD_METRICS = (
    "coopnet_rate_limited_total",
    "coopnet_actions_held_total",
    "coopnet_actions_rejected_total",
    "coopnet_actions_stored_total",
    "coopnet_http_bad_requests_total",
    "coopnet_http_connections_closed_total",
    "coopnet_http_busy_total",
    "coopnet_http_accept_errors_total",
)


def metric_deltas(before: bl.Samples, after: bl.Samples) -> dict[str, float]:
    out = {}
    for (name, labels), v in after.items():
        if name in FLOOD_METRICS:
            d = v - before.get((name, labels), 0.0)
            if d:
                out[name.removeprefix("coopnet_").removesuffix("_total") + "{" + ",".join(f"{k}={x}" for k, x in labels) + "}"] = int(d)
    return dict(sorted(out.items()))


@dataclass
class Window:
    index: int
    flood: bool
    actions: int
    wall: float
    members: MemberStats
    cpu: bl.CpuWindow
    node_metrics: dict[str, float]
    stranger: dict[str, Any] | None

    @property
    def rate(self) -> float:
        return self.actions / self.wall

    def view(self) -> dict[str, Any]:
        lat = sorted(self.members.latencies)
        return {
            "window": self.index,
            "flood": self.flood,
            "actions": self.actions,
            "wall_s": round(self.wall, 3),
            "members_accepted_per_s": round(self.rate),
            "member_answers": dict(self.members.http),
            "member_retries": dict(self.members.retries),
            "batch_latency_ms": {
                "p50": round(1000 * lat[len(lat) // 2], 1) if lat else None,
                "max": round(1000 * lat[-1], 1) if lat else None,
            },
            "cpu": self.cpu.view(),
            "node_metrics": self.node_metrics,
            "stranger": self.stranger,
        }


async def run_window(
    session: aiohttp.ClientSession,
    node: bl.BenchNode,
    work: MemberWork,
    w: int,
    stranger: Generator | None,
    out: TextIO,
) -> Window:
    lanes = work.windows[w]
    stats = MemberStats()
    m0 = await bl.scrape(session, node)
    pids = {"node": node.pid}
    if stranger is not None:
        pids["stranger"] = stranger.pid
        await asyncio.to_thread(stranger.ask, "go")
    cpu = bl.CpuWindow(pids).start()
    counter = [0] * len(lanes)

    async def lane(li: int, reqs: list[tuple[bytes, int]]) -> None:
        for body, n in reqs:
            counter[li] += 1
            await post_members(session, node.url, body, n, member_address(li, w * 4096 + counter[li]), stats)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(lane(i, r) for i, r in enumerate(lanes)))
    finally:
        wall = time.perf_counter() - t0
        cpu.stop()
        flood_stats = await asyncio.to_thread(stranger.ask, "pause") if stranger is not None else None
    bl.check_alive([node])
    m1 = await bl.scrape(session, node)
    win = Window(w, stranger is not None, work.window_actions[w], wall, stats, cpu, metric_deltas(m0, m1), flood_stats)
    cores = cpu.view()["cores"]
    say(
        out,
        f"    window {w + 1}/{len(work.windows)} {'FLOOD' if win.flood else 'alone'}: {win.actions:,} member actions in {wall:.2f} s"
        f" = {win.rate:,.0f}/s; node {cores.get('node', 0):.2f} cores"
        + (f", stranger {cores.get('stranger', 0):.2f}" if win.flood else "")
        + f", others {cores['other_processes']:.2f}",
    )
    return win


async def post_all(session: aiohttp.ClientSession, url: str, lanes: Sequence[Sequence[bytes]], batch: int, address: str) -> MemberStats:
    """Everything in ``lanes`` (each in order, the lanes at once), from one address (a node
    without client rate limits)."""
    stats = MemberStats()

    async def lane(acts: Sequence[bytes]) -> None:
        for k in range(0, len(acts), batch):
            part = list(acts[k : k + batch])
            await post_members(session, url, encode_submission(part), len(part), address, stats)

    await asyncio.gather(*(lane(a) for a in lanes))
    return stats


async def coop_state(session: aiohttp.ClientSession, node: bl.BenchNode, coop: bytes) -> dict[str, Any]:
    doc = await bl.get_json(session, node.url, f"/api/v1/coops/{format_id(IdKind.COOP, coop)}/state")
    return {k: doc[k] for k in ("state_hash", "height", "counted", "rejected", "deferred", "members", "applicants")}


async def load_history(session: aiohttp.ClientSession, node: bl.BenchNode, work: MemberWork) -> None:
    """The co-op and its members' applications: what the node held before the measured windows."""
    st = MemberStats()
    await post_members(session, node.url, encode_submission([work.genesis], single=True), 1, "192.0.2.1", st)
    await post_all(session, node.url, [work.applications], 1000, "192.0.2.1")


async def warm_up(session: aiohttp.ClientSession, node: bl.BenchNode, work: MemberWork) -> None:
    """The genesis as 64 copies of itself: all known, and large enough to start the verify
    workers before the first window (as in a node that has been running)."""
    st = MemberStats()
    doc = await post_members(
        session, node.url, encode_submission([work.genesis] * ib.GENESIS_COPIES), ib.GENESIS_COPIES, "192.0.2.2", st, check=False
    )
    if doc.get("known") != ib.GENESIS_COPIES:
        raise BenchError(f"warm-up: expected {ib.GENESIS_COPIES} known, got {doc}")


def window_order(rounds: int) -> list[bool]:
    """Flood or not, per window: alone-flood, flood-alone, alone-flood, ... (ABBA)."""
    out: list[bool] = []
    for r in range(rounds):
        out += [False, True] if r % 2 == 0 else [True, False]
    return out


@dataclass
class MembersResult:
    windows: list[Window]
    stranger_material: dict[str, Any]
    stranger_accepted: list[bytes]
    stranger_own_accepted: int
    state_public: dict[str, Any]
    state_reference: dict[str, Any]
    state_reference_plus: dict[str, Any]
    admission_view: dict[str, Any]
    node_open_files: tuple[int | None, int | None]


async def members_part(
    ns: bl.NodeSet, args: argparse.Namespace, work: MemberWork, settings_public: bl.NodeSettings, out: TextIO
) -> MembersResult:
    (node,) = ns.init(1)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S * 5)
    lanes = len(work.windows[0])
    say(out, "    history: the co-op and its members' applications, stored by the node without rate limits ...")
    ns.configure(node, [], bl.NodeSettings(verify_workers=args.workers))
    ns.start(node)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=lanes + 4)) as session:
        await bl.wait_healthy(session, node)
        await load_history(session, node, work)
    ns.stop([node])

    say(out, "    restarted as a public node (default admission, client rate limits on, behind a proxy at 127.0.0.1)")
    ns.configure(node, [], settings_public)
    ns.start(node)
    plan = StrangerPlan(
        port=node.port,
        coop=work.coop,
        conns=args.flood_conns,
        idle=args.flood_idle,
        addresses=args.stranger_addresses,
        seed=args.seed,
        unknown_keys=args.unknown_keys,
        unknown_per_key=6,
        batch=500,
        applicants=64,
        applicant_chain=201,
        applicant_batch=25,
        own_coops=4,
        own_chain=2000,
        max_request_bytes=MAX_REQUEST_BYTES,
        weights=args.flood_weights,
        cpu=args.stranger_cpu,
    )
    stranger = Generator("stranger", stranger_main, plan)
    try:
        material = stranger.expect()
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=lanes + 4)) as session:
            await bl.wait_healthy(session, node)
            node_nofile = bl.open_files_limit(node.pid)
            await warm_up(session, node, work)
            windows = []
            for w, flood in enumerate(window_order(args.rounds)):
                windows.append(await run_window(session, node, work, w, stranger if flood else None, out))
            final = await asyncio.to_thread(stranger.ask, "stop")
            say(out, "    the members' co-op state on the public node (a fold) ...")
            state_public = await coop_state(session, node, work.coop)
            info = await bl.get_json(session, node.url, "/api/v1/node")
    finally:
        stranger.close()
    ns.stop([node])

    say(out, "    a reference node fed only the members' actions, then what the public node took from the stranger ...")
    (ref,) = ns.init(1)
    ns.configure(ref, [], bl.NodeSettings(verify_workers=args.workers))
    ns.start(ref)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=lanes + 4)) as session:
        await bl.wait_healthy(session, ref)
        await load_history(session, ref, work)
        await post_all(session, ref.url, work.all_actions, args.batch, "192.0.2.3")
        state_ref = await coop_state(session, ref, work.coop)
        accepted = list(final["accepted_in_members_coop"])
        if accepted:
            await post_all(session, ref.url, [accepted], args.batch, "192.0.2.3")
        state_plus = await coop_state(session, ref, work.coop)
    ns.stop([ref])
    return MembersResult(
        windows,
        material,
        accepted,
        final["accepted_in_own_coops"],
        state_public,
        state_ref,
        state_plus,
        info.get("admission", {}),
        node_nofile,
    )


def members_figures(r: MembersResult, rates: ib.MachineRates) -> dict[str, Any]:
    alone = [w for w in r.windows if not w.flood]
    flood = [w for w in r.windows if w.flood]
    rate_alone = sum(w.actions for w in alone) / sum(w.wall for w in alone)
    rate_flood = sum(w.actions for w in flood) / sum(w.wall for w in flood)
    ratio = rate_flood / rate_alone
    per_round = [round(f.rate / a.rate, 3) for a, f in zip(alone, flood, strict=True)]  # window_order pairs them round by round
    totals: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    node_metrics: Counter[str] = Counter()
    slowest: dict[str, float] = {}
    sent = 0
    for w in flood:
        s = w.stranger or {}
        for k, v in s.get("slowest_s", {}).items():
            slowest[k] = max(slowest.get(k, 0.0), v)
        actions.update(s.get("actions", {}))
        outcomes.update(s.get("outcomes", {}))
        requests.update(s.get("requests", {}))
        sent += s.get("bytes_sent", 0)
        idle.update({k: v for k, v in s.get("idle_sockets", {}).items() if isinstance(v, int)})
        node_metrics.update(w.node_metrics)
    for w in alone:
        totals.update(w.node_metrics)
    flood_wall = sum(w.wall for w in flood)
    member_answers: Counter[str] = Counter()
    member_retries: Counter[str] = Counter()
    for w in r.windows:
        member_answers.update(w.members.http)
        member_retries.update(w.members.retries)
    cores_stranger = statistics.fmean(w.cpu.view()["cores"].get("stranger", 0.0) for w in flood)
    cores_node_flood = statistics.fmean(w.cpu.view()["cores"]["node"] for w in flood)
    cores_node_alone = statistics.fmean(w.cpu.view()["cores"]["node"] for w in alone)
    same = r.state_public == r.state_reference_plus
    return {
        "members_per_s_alone": round(rate_alone),
        "members_per_s_flood": round(rate_flood),
        "ratio": round(ratio, 3),
        "ratio_per_round": per_round,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "alone_vs_libsodium": round(rate_alone / rates.libsodium, 3),
        "member_answers": dict(member_answers),
        "member_retries": dict(member_retries),
        "cores": {
            "node_alone": round(cores_node_alone, 2),
            "node_flood": round(cores_node_flood, 2),
            "stranger_process": round(cores_stranger, 2),
        },
        "flood": {
            "seconds": round(flood_wall, 2),
            "requests": dict(requests),
            "requests_per_s": round(sum(requests.values()) / flood_wall) if flood_wall else 0,
            "mb_sent": round(sent / 1e6, 1),
            "answers": dict(sorted(outcomes.items())),
            "actions": dict(sorted(actions.items())),
            "idle_sockets": dict(idle),
            "slowest_answer_s": dict(sorted(slowest.items())),
            "node_metrics_during_floods": dict(node_metrics),
            "node_metrics_during_alone_windows": dict(totals),
            "material": r.stranger_material,
        },
        "state": {
            "public_node": r.state_public,
            "reference_members_only": r.state_reference,
            "reference_plus_what_the_stranger_got_in": r.state_reference_plus,
            "stranger_actions_accepted_in_members_coop": len(r.stranger_accepted),
            "stranger_actions_accepted_in_own_coops": r.stranger_own_accepted,
            "unchanged_by_the_flood": r.state_public == r.state_reference,
            "equal_to_reference_plus_stranger_accepted": same,
        },
        "admission_at_end": r.admission_view,
        "node_open_files": list(r.node_open_files),
        "windows": [w.view() for w in r.windows],
    }


# ---- part 2: uploads --------------------------------------------------------------------------------


async def uploads_part(ns: bl.NodeSet, args: argparse.Namespace, settings_public: bl.NodeSettings, out: TextIO) -> dict[str, Any]:
    (node,) = ns.init(1)
    ns.configure(node, [], settings_public)
    ns.start(node)
    size = int(args.upload_mib * MIB) - 4096
    gen = Generator("uploader", uploader_main, node.port, args.uploads, size, args.seed)
    try:
        kinds = gen.expect()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await bl.wait_healthy(session, node)
            genesis = sign_genesis(ib.founder_key(), ts=ib.TS0, body={"name": "upload benchmark co-op"})
            st = MemberStats()
            await post_members(session, node.url, encode_submission([genesis.raw] * ib.GENESIS_COPIES), 64, "192.0.2.4", st, check=False)
            await asyncio.sleep(0.5)  # the warm-up's memory given back (the node trims at most once a second)
            idle_rss = sum(ib.status_kb(p.pid, ("VmRSS",)).get("VmRSS", 0) for p in bl.tree_vmhwm(node.pid))
            sampler = ib.TreeSampler(node.pid, RSS_SAMPLE_S)
            sampler.start()
            try:
                say(out, f"    {args.uploads} concurrent uploads of {args.upload_mib:g} MiB: {kinds}")
                res = await asyncio.to_thread(gen.ask, "go")
            finally:
                sampler.stop()
            hwm = bl.tree_vmhwm(node.pid)
            bl.check_alive([node])
            async with session.get(node.url + "/healthz") as r:
                healthy = r.status
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            rss_after = idle_rss
            for _ in range(100):  # the bodies' memory handed back: RSS back within 48 MB of idle, 10 s at most
                rss_after = sum(ib.status_kb(p, ("VmRSS",)).get("VmRSS", 0) for p in [node.pid, *ib.descendants(node.pid)])
                if rss_after < idle_rss + 48 * 1024 or loop.time() - t0 > 10:
                    break
                await asyncio.sleep(0.1)
            back_s = loop.time() - t0
            await asyncio.to_thread(gen.ask, "stop")
    finally:
        gen.close()
    ns.stop([node])
    total_hwm = sum(p.vmhwm_kb for p in hwm) / 1024
    procs = [{"pid": p.pid, "role": _role(p, node.pid), "vmhwm_mb": round(p.vmhwm_kb / 1024, 1)} for p in hwm]
    main_workers = sum(x["vmhwm_mb"] for x in procs if x["role"] in ("main", "verify worker"))
    return {
        "uploads": args.uploads,
        "upload_mib": args.upload_mib,
        "kinds": kinds,
        "answers": res["answers"],
        "busy_retries": res["busy_retries"],
        "wall_s": res["wall_s"],
        "slowest_upload_s": res["slowest_s"],
        "idle_rss_tree_mb": round(idle_rss / 1024, 1),
        "sum_vmhwm_mb": round(total_hwm, 1),
        "main_and_workers_vmhwm_mb": round(main_workers, 1),
        "peak_sampled_rss_tree_mb": round(sampler.peak_rss_kb / 1024, 1),
        "processes": procs,
        "rss_after_mb": round(rss_after / 1024, 1),
        "seconds_to_give_back": round(back_s, 2),
        "healthz_after": healthy,
        "target_mb": TARGET_UPLOAD_MB,
        "target_met": total_hwm < TARGET_UPLOAD_MB,
    }


def _role(p: bl.ProcessPeak, main: int) -> str:
    """What a process of the node is: the verify workers are forked by the fork server (so their
    command line is the fork server's)."""
    if p.pid == main:
        return "main"
    if "resource_tracker" in p.command:
        return "resource tracker"
    return "fork server" if p.ppid == main else "verify worker"


# ---- part 3: idle sockets ---------------------------------------------------------------------------


async def idle_part(ns: bl.NodeSet, args: argparse.Namespace, settings_public: bl.NodeSettings, out: TextIO) -> dict[str, Any]:
    (node,) = ns.init(1)
    ns.configure(node, [], settings_public)
    ns.start(node)
    holder = Generator("socket holder", holder_main, node.port, args.idle_sockets)
    try:
        h = holder.expect()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await bl.wait_healthy(session, node)
            nofile = bl.open_files_limit(node.pid)
            cfg = bl.load_config(node.data_dir / bl.CONFIG_NAME, env={})
            say(out, f"    baseline: {args.baseline_probes} probes with no idle socket ...")
            base = await probe_series(node.port, args.baseline_probes, 0.0)
            m0 = await bl.scrape(session, node)
            opened = await asyncio.to_thread(holder.ask, "open")
            say(
                out,
                f"    {opened['live']:,} idle sockets open ({opened['seconds']} s); {args.probes} probes every {args.probe_interval:g} s ...",
            )
            connections_during = bl.msum(await bl.scrape(session, node), "coopnet_http_connections")
            cpu = bl.CpuWindow({"node": node.pid, "holder": holder.pid}).start()
            lat = await probe_series(node.port, args.probes, args.probe_interval)
            cpu.stop()
            closed = await asyncio.to_thread(holder.ask, "close")
            m1 = await bl.scrape(session, node)
            bl.check_alive([node])
            await asyncio.to_thread(holder.ask, "stop")
    finally:
        holder.close()
    ns.stop([node])
    view = latency_view(lat)
    met = all(view[k] is not None and view[k] < TARGET_HEALTHZ_MS for k in ("p50_ms", "p99_ms", "max_ms"))
    return {
        "idle_sockets": args.idle_sockets,
        "opened": opened,
        "holder": closed,
        "connections_seen_by_node": int(connections_during),
        "node_open_files": list(nofile),
        "holder_open_files": h["open_files_soft"],
        "max_connections": cfg.limits.max_connections,
        "header_timeout_s": cfg.limits.header_timeout,
        "probe_interval_s": args.probe_interval,
        "baseline": latency_view(base),
        "with_idle_sockets": view,
        "node_metrics": metric_deltas(m0, m1),
        "cpu": cpu.view(),
        "target_ms": TARGET_HEALTHZ_MS,
        "target_met": met,
    }


# ---- report -----------------------------------------------------------------------------------


def render(fig: dict[str, Any], out: TextIO) -> None:
    m, lim = fig["machine"], fig["limits_single_core"]
    sod = lim["libsodium_verify_per_s"]

    def ok(flag: bool) -> str:
        return "MET" if flag else "NOT MET"

    lines = [
        "",
        f"coopnet abuse benchmark: coopnet {m['revision']} (code {m['code_digest']}); load average {m['loadavg_at_start']} at start, {m['loadavg_at_end']} at end",
        f"  machine: {m['nproc']} cores ({m['cpu']}), RAM {m['ram_mb']:,.0f} MB, this process's open-file limit {m['open_files']};"
        f" libsodium {sod:,} verifications/s on one core (best round; median {lim['libsodium_median_per_s']:,})",
    ]
    if "members" in fig:
        f = fig["members"]
        s = f["state"]
        lines += [
            "",
            f"1. members under a flood ({fig['settings']['rounds']} rounds, {fig['settings']['window_actions']:,} member actions per window)",
            f"  members alone                     {f['members_per_s_alone']:>8,} actions/s   ({f['alone_vs_libsodium']:.2f}x libsodium one core)",
            f"  members under the flood           {f['members_per_s_flood']:>8,} actions/s",
            f"  ratio                             {f['ratio']:>8.2f}   target >= {f['target_ratio']}: {ok(f['target_met'])}   per round {f['ratio_per_round']}",
            f"  cores: node {f['cores']['node_alone']:.2f} alone, {f['cores']['node_flood']:.2f} under the flood; the stranger's own process {f['cores']['stranger_process']:.2f}",
            f"  member answers {f['member_answers']}; retried {f['member_retries'] or 'none'}",
            f"  the flood: {sum(f['flood']['requests'].values()):,} requests ({f['flood']['requests_per_s']:,}/s), {f['flood']['mb_sent']} MB sent over {f['flood']['seconds']} s;"
            f" idle sockets {f['flood']['idle_sockets']}",
            "  what the node answered the stranger (kind status code: count):",
            *_columns(f["flood"]["answers"]),
            f"  the slowest answer of each kind, s: {f['flood']['slowest_answer_s']}",
            "  per action in those answers:",
            *_columns(f["flood"]["actions"]),
            "  the node's counters during the floods:",
            *_columns(f["flood"]["node_metrics_during_floods"]),
            f"  members' co-op state: public node {s['public_node']['state_hash'][:16]}, reference (members only) {s['reference_members_only']['state_hash'][:16]},"
            f" reference + the {s['stranger_actions_accepted_in_members_coop']} stranger actions the node accepted {s['reference_plus_what_the_stranger_got_in']['state_hash'][:16]}",
            f"    unchanged by the flood: {s['unchanged_by_the_flood']}; equal to the reference plus what admission let in: {ok(s['equal_to_reference_plus_stranger_accepted'])}",
            f"    public node {s['public_node']}",
            f"    reference   {s['reference_members_only']}",
            f"  the stranger's own co-ops: {s['stranger_actions_accepted_in_own_coops']:,} actions stored",
        ]
    if "uploads" in fig:
        u = fig["uploads"]
        lines += [
            "",
            f"2. {u['uploads']} concurrent uploads of {u['upload_mib']:g} MiB (each from its own address)",
            f"  sum of VmHWM, every node process   {u['sum_vmhwm_mb']:>8.1f} MB   target < {u['target_mb']:g} MB: {ok(u['target_met'])}   (RAM {m['ram_mb']:,.0f} MB)",
            f"  main process + verify workers       {u['main_and_workers_vmhwm_mb']:>8.1f} MB;  peak of the summed RSS, sampled every {RSS_SAMPLE_S * 1000:.0f} ms: {u['peak_sampled_rss_tree_mb']:.1f} MB",
            f"  idle before {u['idle_rss_tree_mb']} MB; after: {u['rss_after_mb']} MB within {u['seconds_to_give_back']} s; /healthz after: {u['healthz_after']}",
            "  per process: " + ", ".join(f"{p['role']} {p['vmhwm_mb']}" for p in u["processes"]),
            f"  answers {u['answers']}; retried after a 503 busy or a reset {u['busy_retries']}; all answered in {u['wall_s']} s",
        ]
    if "idle" in fig:
        d = fig["idle"]
        b, w = d["baseline"], d["with_idle_sockets"]
        lines += [
            "",
            f"3. {d['idle_sockets']:,} idle sockets (node open-file limit {d['node_open_files']}, holder's {d['holder_open_files']},"
            f" max_connections {d['max_connections']}, header_timeout {d['header_timeout_s']:g} s)",
            f"  /healthz, no idle socket           p50 {b['p50_ms']} / p99 {b['p99_ms']} / max {b['max_ms']} ms ({b['probes']} probes)",
            f"  /healthz, with the idle sockets    p50 {w['p50_ms']} / p99 {w['p99_ms']} / max {w['max_ms']} ms ({w['probes']} probes over"
            f" {d['cpu']['wall_s']} s)   target < {d['target_ms']:g} ms: {ok(d['target_met'])}",
            f"  the node saw {d['connections_seen_by_node']:,} connections; the holder: {d['holder']}",
            f"  the node's counters: {d['node_metrics']}",
        ]
    lines += ["", f"verdict: {fig['verdict']}", ""]
    out.write("\n".join(lines))
    out.flush()


def _columns(d: dict[str, Any]) -> list[str]:
    items = [f"{k}: {v:,}" for k, v in d.items()]
    return [f"    {'; '.join(items[i : i + 4])}" for i in range(0, len(items), 4)] or ["    (none)"]


# ---- main ---------------------------------------------------------------------------------------------


PARTS = ("members", "uploads", "idle")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"which parts to run, comma-separated (default {','.join(PARTS)})")
    p.add_argument("--rounds", type=int, default=3, help="pairs of windows, one alone and one under the flood (default 3)")
    p.add_argument("--window-actions", type=int, default=15_000, help="member actions posted in each window (default 15000)")
    p.add_argument("--members", type=int, default=None, help="members (default: enough that no member posts more than 100 actions)")
    p.add_argument("--batch", type=int, default=1000, help="member actions per POST (default 1000)")
    p.add_argument("--inflight", type=int, default=4, help="member requests in flight (default 4)")
    p.add_argument("--workers", type=int, default=None, help="the node's limits.verify_workers (default: the node's default)")
    p.add_argument("--flood-conns", type=int, default=32, help="the stranger's requests in flight (default 32)")
    p.add_argument("--flood-idle", type=int, default=500, help="idle sockets the stranger holds while flooding (default 500)")
    p.add_argument("--stranger-addresses", type=int, default=1, help="client addresses the stranger sends from (default 1)")
    p.add_argument(
        "--flood-mix",
        default="",
        metavar="KIND=W,...",
        help="weights of the stranger's kinds of request, over the defaults (e.g. large=0,chunked=0); kinds: "
        + ", ".join(f"{k} ({w:g})" for k, w in STRANGER_WEIGHTS),
    )
    p.add_argument(
        "--stranger-cpu",
        type=float,
        default=0.0,
        metavar="CORES",
        help="cores the stranger's process may use (it paces itself), as if it ran elsewhere; default 0: as much as it gets",
    )
    p.add_argument("--unknown-keys", type=int, default=2000, help="throwaway keys posting in the members' co-op (default 2000)")
    p.add_argument(
        "--founding", choices=("open", "invite", "closed"), default=None, help="the public node's founding policy (default: the node's)"
    )
    p.add_argument("--uploads", type=int, default=40, help="concurrent uploads (default 40)")
    p.add_argument("--upload-mib", type=float, default=8.0, help="size of each upload in MiB (default 8, the node's limit)")
    p.add_argument("--idle-sockets", type=int, default=2000, help="idle sockets for part 3 (default 2000)")
    p.add_argument("--probes", type=int, default=300, help="/healthz probes with the idle sockets open (default 300)")
    p.add_argument("--probe-interval", type=float, default=0.05, help="seconds between probes (default 0.05: 300 probes span 15 s)")
    p.add_argument("--baseline-probes", type=int, default=100, help="/healthz probes before the sockets are opened (default 100)")
    p.add_argument("--rate-seconds", type=float, default=1.0, help="seconds for each single-core rate (default 1)")
    p.add_argument("--sign-procs", type=int, default=os.cpu_count() or 1, help="processes signing (default: all cores)")
    p.add_argument("--seed", type=int, default=1, help="seed of the stranger's choices and bodies (default 1)")
    p.add_argument("--report-only", action="store_true", help="exit 0 even if a target is missed (the figures still say so)")
    p.add_argument("--keep", action="store_true", help="keep the nodes' data directories and logs")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    a = p.parse_args(argv)
    a.parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    if not a.parts or any(x not in PARTS for x in a.parts):
        p.error(f"--parts: a comma-separated subset of {','.join(PARTS)}")
    if not 1 <= a.rounds <= 50 or not 10 <= a.window_actions <= 1_000_000 or not 1 <= a.batch <= 2000 or not 1 <= a.inflight <= 64:
        p.error("--rounds 1-50, --window-actions 10-1000000, --batch 1-2000, --inflight 1-64")
    weights = dict(STRANGER_WEIGHTS)
    for part in (x.strip() for x in a.flood_mix.split(",") if x.strip()):
        k, _, v = part.partition("=")
        try:
            w = float(v)
        except ValueError:
            w = -1.0
        if k not in weights or not 0 <= w <= 1000:
            p.error(f"--flood-mix: {part!r}: a kind of {', '.join(weights)} and a weight 0-1000")
        weights[k] = w
    if not any(weights.values()):
        p.error("--flood-mix: at least one kind with a weight above 0")
    a.flood_weights = tuple(weights.items())
    total = 2 * a.rounds * a.window_actions
    if a.members is None:
        a.members = max(a.inflight, 1000, -(-total // 100))
    # A member's actions are charged to their own bucket (author_rate 10/s, burst 300): 100 each
    # keeps members well inside it, so what is measured is the node, not the members' own limit.
    if not a.inflight <= a.members <= total:
        p.error("--members: at least --inflight, at most every action its own member")
    if (
        not 0 <= a.flood_conns <= 1000
        or not 0 <= a.flood_idle <= 20_000
        or not 1 <= a.stranger_addresses <= 65_536
        or not 0 <= a.unknown_keys <= 100_000
    ):
        p.error("--flood-conns 0-1000, --flood-idle 0-20000, --stranger-addresses 1-65536, --unknown-keys 0-100000")
    if not 1 <= a.uploads <= 1000 or not 0.01 <= a.upload_mib <= 8.0:
        p.error("--uploads 1-1000, --upload-mib 0.01-8")
    if (
        not 1 <= a.idle_sockets <= 60_000
        or not 1 <= a.probes <= 100_000
        or not 0 <= a.probe_interval <= 10
        or not 1 <= a.baseline_probes <= 100_000
    ):
        p.error("--idle-sockets 1-60000, --probes 1-100000, --probe-interval 0-10, --baseline-probes 1-100000")
    if not 0 <= a.stranger_cpu <= 64:
        p.error("--stranger-cpu 0-64 cores")
    if a.workers is not None and a.workers < 0:
        p.error("--workers must be >= 0")
    if not 0.05 <= a.rate_seconds <= 60 or a.sign_procs < 1:
        p.error("--rate-seconds 0.05-60, --sign-procs >= 1")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    bl.install_signal_handlers()
    own_nofile = bl.raise_open_files_limit()
    say(out, f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; open-file limit {own_nofile}")
    settings_public = bl.NodeSettings(verify_workers=args.workers, public=True, trusted_proxies=(HOST,), founding=args.founding)

    genesis_sample = sign_genesis(ib.founder_key(), ts=ib.TS0, body={"name": "sample"})
    say(out, f"1. single-core rates (~{args.rate_seconds:g} s each) ...")
    sample = bl.sample_actions(256, genesis_sample.id)
    rates = ib.measure_rates(sample, args.rate_seconds)
    say(out, f"    libsodium {rates.libsodium:,.0f}/s")

    fig: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k not in ("json", "keep")}}
    with bl.NodeSet("coopnet-bench-abuse-", keep=args.keep) as ns:
        if "members" in args.parts:
            windows = 2 * args.rounds
            say(out, f"2. signing {windows} x {args.window_actions:,} member actions ({args.members:,} members) ...")
            work = build_member_work(
                windows, args.window_actions, args.members, min(args.inflight, args.members), args.batch, args.sign_procs, out
            )
            say(
                out,
                f"3. members under a flood: {args.rounds} rounds, the stranger with {args.flood_conns} requests in flight,"
                f" {args.flood_idle} idle sockets, {args.stranger_addresses} address(es) ...",
            )
            res = asyncio.run(members_part(ns, args, work, settings_public, out))
            fig["members"] = members_figures(res, rates)
        if "uploads" in args.parts:
            say(out, "4. upload memory ...")
            fig["uploads"] = asyncio.run(uploads_part(ns, args, settings_public, out))
        if "idle" in args.parts:
            say(out, "5. idle sockets ...")
            fig["idle"] = asyncio.run(idle_part(ns, args, settings_public, out))

    say(out, "libsodium again, now that the nodes are stopped ...")
    ib.remeasure_libsodium(rates, sample)
    fig["machine"] = {**bl.machine_info(), "ram_mb": round(bl.mem_total_mb()), "open_files": own_nofile}
    fig["limits_single_core"] = bl.rates_view(rates)
    missed = []
    if "members" in fig:
        if not fig["members"]["target_met"]:
            missed.append(f"members' rate under the flood {fig['members']['ratio']:.2f}x of alone (target {TARGET_RATIO})")
        if not fig["members"]["state"]["equal_to_reference_plus_stranger_accepted"]:
            missed.append("the members' co-op state differs from the reference fed the same actions")
    if "uploads" in fig and not fig["uploads"]["target_met"]:
        missed.append(f"upload memory {fig['uploads']['sum_vmhwm_mb']} MB (target < {TARGET_UPLOAD_MB:g})")
    if "idle" in fig and not fig["idle"]["target_met"]:
        missed.append(f"/healthz max {fig['idle']['with_idle_sockets']['max_ms']} ms with idle sockets (target < {TARGET_HEALTHZ_MS:g})")
    fig["verdict"] = "every target met" if not missed else "NOT MET: " + "; ".join(missed)
    fig["targets_met"] = not missed
    bl.emit(fig, args.json, render)
    return 0 if not missed or args.report_only else 2


if __name__ == "__main__":
    bl.run_main(main, "abuse")
