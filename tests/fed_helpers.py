"""Helpers for the in-process multi-node federation tests (tests/test_federation.py).

A ``Cluster`` owns a set of node *slots*: each slot is a data directory made by ``init_data_dir``
with a port picked in advance (peers are read from the config at start, so every node's URL must
be known before any node is configured), a node key, and the running ``Node`` when started.
Nodes are real aiohttp servers on 127.0.0.1 with real SQLite files; they validate inline
(``verify_workers = 0``) and reconcile often (``anti_entropy_interval`` 0.3 s).

Waiting is always for a condition with a deadline (``wait_until``), polled every 50 ms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from node.config import Admission, Config, PeerAddress
from node.keyfile import read_key_file
from node.node import Node, init_data_dir
from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import Head, encode_submission
from protocol.peer import sign_request

FED_NAME = "fed-test"
POLL_S = 0.05
STOP_TIMEOUT_S = 15.0
MSGPACK = "application/msgpack"

# Federation settings of the test nodes: fast rounds and short timeouts; limits are the defaults.
FAST_FEDERATION: dict[str, Any] = {
    "name": FED_NAME,
    "anti_entropy_interval": 0.3,
    "request_timeout": 2.0,
}
NODE_LIMITS: dict[str, int] = {"verify_workers": 0}
# Every author taken, no client rate limits (tests/conftest.py: OPEN_ADMISSION); ``admission=``
# gives a node another.
OPEN_ADMISSION = Admission(unknown_authors="store", read_rate=0, write_rate=0, author_rate=0, join_rate=0, apply_rate=0)


# ---- waiting -----------------------------------------------------------------------------------


async def wait_until(
    cond: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> float:
    """Poll ``cond`` every 50 ms until it is true; fail after ``within`` seconds. Returns the wait."""
    start = time.monotonic()
    deadline = start + within
    while True:
        if await cond():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            detail = f"\n{await explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {within:g} s waiting for {what}{detail}")
        await asyncio.sleep(POLL_S)


# ---- ports and keys ----------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (all sockets held until all are chosen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_key(n: int) -> SigningKey:
    """A deterministic node key for a node that exists only as a key (a hostile or fake peer)."""
    return SigningKey(hashlib.sha256(b"coopnet-test-fake-node:%d" % n).digest())


def node_text(node_id: bytes) -> str:
    return format_id(IdKind.NODE, node_id)


def signed_headers(key: SigningKey, receiver: bytes, path: str, body: bytes, *, ts: int | None = None) -> dict[str, str]:
    """The authentication headers of a peer request from ``key``'s node to ``receiver``."""
    ts = time.time_ns() // 1_000_000 if ts is None else ts
    headers = sign_request(key, method="POST", path=path, body=body, ts=ts, receiver=receiver)
    headers["Content-Type"] = MSGPACK
    return headers


# ---- cluster -----------------------------------------------------------------------------------


@dataclass
class Slot:
    """One node's data directory, config and (when running) the node itself."""

    index: int
    config: Config
    node_id: bytes
    node: Node | None = None

    @property
    def text_id(self) -> str:
        return node_text(self.node_id)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.url, self.text_id)

    @property
    def running(self) -> Node:
        assert self.node is not None, f"node {self.index} is not running"
        return self.node


class Cluster:
    """Nodes on loopback, configured before any of them starts, stopped at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.slots: list[Slot] = []

    def add(
        self, count: int, *, limits: dict[str, int] | None = None, admission: Admission = OPEN_ADMISSION, **federation: Any
    ) -> list[Slot]:
        """Prepare ``count`` data directories (not started, no peers yet)."""
        out = []
        for port in free_ports(count):
            i = len(self.slots)
            cfg = init_data_dir(self.root / f"n{i}", port=port)
            cfg = dataclasses.replace(
                cfg,
                limits=dataclasses.replace(cfg.limits, **{**NODE_LIMITS, **(limits or {})}),
                federation=dataclasses.replace(cfg.federation, **{**FAST_FEDERATION, **federation}),
                admission=admission,
            )
            slot = Slot(i, cfg, read_key_file(cfg.key_path, "node").public_key)
            self.slots.append(slot)
            out.append(slot)
        return out

    def adopt(self, config: Config, *, limits: dict[str, int] | None = None) -> Slot:
        """Take a data directory prepared elsewhere (``coopnet init``, a federation file)."""
        cfg = dataclasses.replace(
            config, limits=dataclasses.replace(config.limits, **{**NODE_LIMITS, **(limits or {})}), admission=OPEN_ADMISSION
        )
        slot = Slot(len(self.slots), cfg, read_key_file(cfg.key_path, "node").public_key)
        self.slots.append(slot)
        return slot

    def federate(self, slot: Slot, **changes: Any) -> None:
        slot.config = dataclasses.replace(slot.config, federation=dataclasses.replace(slot.config.federation, **changes))

    def mesh(self, slots: Sequence[Slot] | None = None, *, extra: Iterable[PeerAddress] = ()) -> None:
        """Every node lists every other one (plus ``extra``)."""
        slots = list(self.slots if slots is None else slots)
        extra = tuple(extra)
        for s in slots:
            self.federate(s, peers=tuple(o.address for o in slots if o is not s) + extra)

    def ring(self, slots: Sequence[Slot] | None = None) -> None:
        """Each node lists only its two neighbours."""
        slots = list(self.slots if slots is None else slots)
        n = len(slots)
        for i, s in enumerate(slots):
            self.federate(s, peers=(slots[(i - 1) % n].address, slots[(i + 1) % n].address))

    async def start(self, slot: Slot) -> Node:
        assert slot.node is None, f"node {slot.index} is already running"
        slot.node = await Node.start(slot.config)
        assert slot.node.url == slot.url, (slot.node.url, slot.url)
        return slot.node

    async def start_all(self, slots: Sequence[Slot] | None = None) -> list[Node]:
        return list(await asyncio.gather(*(self.start(s) for s in (self.slots if slots is None else slots))))

    async def stop(self, slot: Slot) -> None:
        node, slot.node = slot.node, None
        if node is not None:
            # Bounded: Node.stop can hang on Python 3.11 when a gossip wake coincides with it
            # (test_gossip_stops_right_after_a_wake); the bound turns that hang into a slow stop.
            await asyncio.wait_for(node.stop(), STOP_TIMEOUT_S)

    async def close(self) -> None:
        for slot in reversed(self.slots):
            await self.stop(slot)

    @property
    def live(self) -> list[Slot]:
        return [s for s in self.slots if s.node is not None]

    async def run_rounds(self) -> None:
        """Ask every live node for an anti-entropy round now (it also runs on its own timer)."""
        for s in self.live:
            s.running.gossip.wake.set()


# ---- members and actions -----------------------------------------------------------------------


@dataclass
class Member:
    """A member key that remembers its chain head in each co-op, to sign what comes next."""

    key: SigningKey
    heads: dict[bytes, Action] = field(default_factory=dict)

    @property
    def id(self) -> bytes:
        return self.key.public_key

    def found(self, name: str, ts: int) -> Action:
        g = sign_genesis(self.key, ts=ts, body={"name": name})
        self.heads[g.id] = g
        return g

    def act(self, coop: bytes, n: int = 1, *, kind: str = "test.note", tag: str = "") -> list[Action]:
        out = []
        for _ in range(n):
            prev = self.heads.get(coop)
            seq = prev.seq + 1 if prev is not None else 1
            a = sign_action(
                self.key,
                coop=coop,
                seq=seq,
                prev=prev.id if prev is not None else None,
                ts=1_700_000_000_000 + seq,
                kind=kind,
                body={"seq": seq, "tag": tag},
            )
            self.heads[coop] = a
            out.append(a)
        return out


async def post(http: aiohttp.ClientSession, url: str, actions: Sequence[Action], *, single: bool = False) -> dict[str, Any]:
    """Post actions to a node's client API; return its JSON answer, asserting that every action was
    acknowledged (accepted, or held pending until its predecessor arrives)."""
    body = encode_submission([a.raw for a in actions], single=single)
    async with http.post(url + "/api/v1/actions", data=body, headers={"Content-Type": MSGPACK, "Accept": "application/json"}) as r:
        doc = await r.json()
        assert r.status == 200, (r.status, doc)
    assert {x["status"] for x in doc["results"]} <= {"accepted", "pending"}, doc
    return dict(doc)


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Accept": "application/json"}) as r:
        return r.status, await r.json(content_type=None)


async def get_text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        assert r.status == 200, r.status
        return await r.text()


async def peer_post(
    http: aiohttp.ClientSession, url: str, path: str, body: bytes, headers: dict[str, str] | None
) -> tuple[int, dict[str, Any] | bytes]:
    """POST a peer request; the answer as JSON (errors) or raw bytes (msgpack success)."""
    async with http.post(url + path, data=body, headers=headers or {"Content-Type": MSGPACK}) as r:
        data = await r.read()
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, data


# ---- comparing nodes ---------------------------------------------------------------------------


async def heads(node: Node, coop: bytes) -> tuple[Head, ...]:
    return tuple(await node.store.heads(coop))


async def action_ids(node: Node, coop: bytes, page: int = 500) -> set[bytes]:
    """Every stored action id of ``coop`` on ``node``, read page by page (position cursor)."""
    out: set[bytes] = set()
    after = 0
    for _ in range(100_000):
        rows = await node.store.list_actions(coop, after=after, limit=page)
        out.update(r.action().id for r in rows)
        if len(rows) < page:
            return out
        after = rows[-1].pos or after
    raise AssertionError("pagination did not end")


async def api_action_ids(http: aiohttp.ClientSession, url: str, coop: bytes) -> list[str]:
    """Every action id of ``coop`` through ``GET /api/v1/coops/{coop}/actions`` and its ``next`` cursor."""
    out: list[str] = []
    after: str | None = None
    ctext = format_id(IdKind.COOP, coop)
    for _ in range(10_000):
        q = f"?limit=200&after={after}" if after else "?limit=200"
        status, doc = await get_json(http, f"{url}/api/v1/coops/{ctext}/actions{q}")
        assert status == 200, (status, doc)
        out += [a["id"] for a in doc["actions"]]
        after = doc["next"]
        if after is None:
            return out
    raise AssertionError("pagination did not end")


async def fingerprint(node: Node, coops: Iterable[bytes]) -> dict[str, Any]:
    """What must be equal on converged nodes, per co-op: action count, chain heads, proof ids."""
    out: dict[str, Any] = {}
    for c in coops:
        row = await node.store.get_coop(c)
        out[format_id(IdKind.COOP, c)] = (row.actions if row else None, await heads(node, c), tuple(await node.store.proof_ids(c)))
    return out


async def converged(nodes: Sequence[Node], coops: Sequence[bytes]) -> bool:
    """Every node holds the same heads, counts and proofs in ``coops``, and nothing is pending."""
    prints = [await fingerprint(n, coops) for n in nodes]
    if not all(p == prints[0] for p in prints):
        return False
    return all([(await n.store.counts())["pending"] == 0 for n in nodes])


async def describe(nodes: Sequence[Node], coops: Sequence[bytes]) -> str:
    lines = []
    for n in nodes:
        counts = await n.store.counts()
        per = []
        for c in coops:
            row = await n.store.get_coop(c)
            per.append(f"{format_id(IdKind.COOP, c)[:12]}={row.actions if row else None}")
        peers = ", ".join(f"{p['id'][:12]}:{p['state']}/f{p['failures']}/s{p['score']}" for p in n.book.view())
        lines.append(f"  {n.url}: {counts} {' '.join(per)} progress={n.gossip.progress} peers=[{peers}]")
    return "\n".join(lines)


async def wait_converged(nodes: Sequence[Node], coops: Sequence[bytes], *, within: float, what: str = "convergence") -> float:
    return await wait_until(lambda: converged(nodes, coops), within=within, what=what, explain=lambda: describe(nodes, coops))


# ---- metrics -----------------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` whose labels include ``labels``; None if there is none.

    ``name`` is the sample name (counters end in ``_total``)."""
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
                found = True
    return total if found else None


def assert_honest_peers_unpunished(nodes: Sequence[Node]) -> None:
    """No node holds an offence against another of ``nodes`` (honest traffic is never penalised)."""
    ids = {node_text(n.node_id) for n in nodes}
    for n in nodes:
        for p in n.book.view():
            if p["id"] in ids:
                assert p["offences"] == {} and p["state"] != "refused", f"{n.url} punished an honest peer: {p}"


def peer_view(node: Node, peer_id: bytes) -> dict[str, Any]:
    text = node_text(peer_id)
    for p in node.book.view():
        if p["id"] == text:
            return p
    raise AssertionError(f"{node.url} does not know {text}")
