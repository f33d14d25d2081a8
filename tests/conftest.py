"""Shared fixtures for the node-level tests: real nodes on 127.0.0.1, real SQLite files.

Keys are deterministic (fixed seeds), so every run signs the same bytes. Nodes are started
in-process with ``Node.start`` on an OS-chosen port (port 0) and stopped at teardown.
Most nodes validate inline (``limits.verify_workers = 0``: no spawned processes); the
``node_workers`` fixture keeps two validation worker processes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from hypothesis import HealthCheck, settings

from node.config import Admission
from node.node import Node, init_data_dir
from protocol import Action, SigningKey, codec, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission

# Hypothesis profiles. ``ci`` (the default, what ``make test`` runs): derandomized, so every run
# draws the same examples and CI cannot pass or fail by chance; no example database. ``explore``
# (``HYPOTHESIS_PROFILE=explore``, ``make explore``): random seeds and ten times the examples, for
# developers hunting new counterexamples; turn each one found into a fixed test.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", derandomize=True, database=None, deadline=None, suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, deadline=None, suppress_health_check=_QUIET, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXPLORE_FACTOR = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1


def examples(n: int) -> int:
    """A test's example count: ``n`` in CI, ten times that when exploring."""
    return n * EXPLORE_FACTOR


TS0 = 1_700_000_000_000  # a fixed timestamp (ms): tests never read the clock to sign

# Limits of the test nodes: small enough to reach from a test, large enough for every happy path.
TEST_LIMITS: dict[str, int] = {
    "verify_workers": 0,
    "max_request_bytes": 256 * 1024,
    "max_batch_actions": 64,
    "max_page": 50,
}

# Admission of the test nodes: every author is taken and no client is rate limited, so that the
# suites about storage, chains and the API need no applications; tests/test_admission.py runs
# nodes with the defaults.
OPEN_ADMISSION = Admission(unknown_authors="store", read_rate=0, write_rate=0, author_rate=0, join_rate=0, apply_rate=0)

MSGPACK = "application/msgpack"
JSON = "application/json"


# ---- keys and actions ------------------------------------------------------------------------


def member_key(n: int) -> SigningKey:
    """The ``n``-th deterministic member key."""
    return SigningKey(hashlib.sha256(b"coopnet-test-member:%d" % n).digest())


@pytest.fixture
def keys() -> Callable[[int], SigningKey]:
    """A deterministic member key factory: ``keys(n)`` is always the same key."""
    return member_key


def make_genesis(key: SigningKey, *, name: str = "Test Co-op", ts: int = TS0, **extra: Any) -> Action:
    return sign_genesis(key, ts=ts, body={"name": name, **extra})


def next_action(
    key: SigningKey,
    coop: bytes,
    after: Action | None,
    *,
    kind: str = "test.note",
    body: Any = None,
    ts: int | None = None,
    deps: tuple[bytes, ...] = (),
) -> Action:
    """The action that extends ``after`` (``None``: seq 1 of a new chain) in ``coop``."""
    seq = after.seq + 1 if after is not None else 1
    return sign_action(
        key,
        coop=coop,
        seq=seq,
        prev=after.id if after is not None else None,
        deps=deps,
        ts=TS0 + seq if ts is None else ts,
        kind=kind,
        body={"seq": seq} if body is None else body,
    )


def make_chain(
    key: SigningKey, coop: bytes, length: int, *, after: Action | None = None, kind: str = "test.note", tag: str = ""
) -> list[Action]:
    """``length`` actions by ``key`` in ``coop``, continuing ``after`` or starting at seq 1."""
    out: list[Action] = []
    prev = after
    for _ in range(length):
        body = {"seq": (prev.seq + 1) if prev else 1, "tag": tag}
        prev = next_action(key, coop, prev, kind=kind, body=body)
        out.append(prev)
    return out


def with_sig(a: Action, sig: bytes) -> bytes:
    """``a``'s wire bytes with another signature (still canonical msgpack)."""
    return codec.encode({"body": a.body, "env": a.env_bytes, "sig": sig})


def bad_signature(a: Action) -> bytes:
    sig = bytearray(a.sig)
    sig[40] ^= 0x01  # inside S, well below L: a reduced scalar that does not verify
    return with_sig(a, bytes(sig))


def bad_body(a: Action) -> bytes:
    """``a`` carrying a body that does not match its body_hash."""
    return codec.encode({"body": codec.encode({"forged": True}), "env": a.env_bytes, "sig": a.sig})


def act_id(a: Action | bytes) -> str:
    return format_id(IdKind.ACTION, a.id if isinstance(a, Action) else a)


def coop_id(a: Action | bytes) -> str:
    return format_id(IdKind.COOP, a.id if isinstance(a, Action) else a)


def mem_id(key: SigningKey) -> str:
    return format_id(IdKind.MEMBER, key.public_key)


# ---- nodes -----------------------------------------------------------------------------------


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """``await start_node(**limits)``: a fresh node in its own data dir; stopped at teardown.
    ``admission``: its ``[admission]`` (default ``OPEN_ADMISSION``)."""
    nodes: list[Node] = []
    counter = itertools.count()

    async def start(*, synchronous: str | None = None, admission: Admission = OPEN_ADMISSION, **limits: int) -> Node:
        cfg = init_data_dir(tmp_path / f"node{next(counter)}", port=0)
        assert cfg.host == "127.0.0.1"
        cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **{**TEST_LIMITS, **limits}), admission=admission)
        if synchronous is not None:
            cfg = dataclasses.replace(cfg, synchronous=synchronous)
        node = await Node.start(cfg)
        nodes.append(node)
        return node

    yield start
    for node in reversed(nodes):
        await node.stop()


@pytest.fixture
async def node(start_node: NodeFactory) -> Node:
    """A node validating inline (verify_workers = 0) with ``TEST_LIMITS``."""
    return await start_node()


@pytest.fixture
async def node_workers(start_node: NodeFactory) -> Node:
    """A node that validates batches of 32 actions or more in 2 worker processes."""
    return await start_node(verify_workers=2)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


# ---- talking to a node -----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    content_type: str
    data: bytes

    @property
    def json(self) -> Any:
        assert self.content_type == JSON, f"expected JSON, got {self.content_type}: {self.data[:200]!r}"
        return json.loads(self.data)

    @property
    def msgpack(self) -> Any:
        assert self.content_type == MSGPACK, f"expected msgpack, got {self.content_type}: {self.data[:200]!r}"
        return msgpack.unpackb(self.data, raw=False)


async def request(http: aiohttp.ClientSession, method: str, url: str, *, data: Any = None, headers: dict[str, str] | None = None) -> Reply:
    async with http.request(method, url, data=data, headers=headers or {}) as resp:
        return Reply(resp.status, resp.content_type, await resp.read())


def json_submission(raws: list[bytes], *, single: bool = False) -> bytes:
    """The JSON form of a submission: ``{"actions": [base64, ...]}`` or ``{"action": base64}``."""
    b64 = [base64.b64encode(r).decode("ascii") for r in raws]
    if single:
        assert len(b64) == 1
        return json.dumps({"action": b64[0]}).encode()
    return json.dumps({"actions": b64}).encode()


async def post_msgpack(http: aiohttp.ClientSession, url: str, raws: list[bytes], *, single: bool = False) -> Reply:
    return await request(
        http, "POST", url + "/api/v1/actions", data=encode_submission(raws, single=single), headers={"Content-Type": MSGPACK}
    )


async def post_json(http: aiohttp.ClientSession, url: str, raws: list[bytes], *, single: bool = False) -> Reply:
    return await request(http, "POST", url + "/api/v1/actions", data=json_submission(raws, single=single), headers={"Content-Type": JSON})


class NodeClient:
    """A thin test client for one node: post actions, read JSON or msgpack answers."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def post(self, actions: list[Action | bytes], *, single: bool = False, fmt: str = "msgpack") -> Reply:
        raws = [a.raw if isinstance(a, Action) else a for a in actions]
        poster = post_msgpack if fmt == "msgpack" else post_json
        return await poster(self.http, self.url, raws, single=single)

    async def post_raw(self, body: Any, content_type: str | None) -> Reply:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        return await request(self.http, "POST", self.url + "/api/v1/actions", data=body, headers=headers)

    async def get(self, path: str, *, binary: bool = False, **params: Any) -> Reply:
        query = {k: str(v) for k, v in params.items() if v is not None}
        url = self.url + path
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return await request(self.http, "GET", url, headers={"Accept": MSGPACK if binary else JSON})

    async def counts(self) -> dict[str, int]:
        reply = await self.get("/api/v1/node")
        assert reply.status == 200
        return dict(reply.json["counts"])

    async def status_of(self, a: Action) -> str | None:
        """``stored``, ``pending`` or None (not here)."""
        reply = await self.get(f"/api/v1/actions/{act_id(a)}")
        if reply.status == 404:
            return None
        assert reply.status == 200, reply.data
        return str(reply.json["status"])


@pytest.fixture
def client(node: Node, http: aiohttp.ClientSession) -> NodeClient:
    return NodeClient(http, node.url)


def fresh_keys(start: int = 10_000) -> Iterator[SigningKey]:
    """An endless supply of distinct deterministic keys (for one-off members)."""
    return (member_key(n) for n in itertools.count(start))
