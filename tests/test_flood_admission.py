"""What a stranger's flood costs a public node before any handler runs (scripts/bench/abuse.py).

The abuse benchmark found members slowed to a fifth of their rate while one stranger flooded the
node; each test here pins one of the causes on a real node (aiohttp on 127.0.0.1, SQLite in
tmp_path) with the default admission, trusting 127.0.0.1 as a proxy so that clients are told
apart by ``X-Forwarded-For``. The node's clock is the test's, so buckets refill only when the
test moves it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from node.node import Node, init_data_dir
from protocol import SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission
from tests.fed_helpers import metric, wait_until

TS = 1_700_000_000_000
PROXY = ("127.0.0.1",)
STRANGER = "203.0.113.7"
MEMBER = "198.51.100.1"
ANSWER_DEADLINE_S = 5.0  # an answer that does not wait for the body comes at once; the body timeout is 30 s


class Clock:
    def __init__(self) -> None:
        self.now = TS

    def __call__(self) -> int:
        return self.now


NodeMaker = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeMaker]:
    nodes: list[Node] = []

    async def make(clock: Clock, **adm: Any) -> Node:
        cfg = init_data_dir(tmp_path / f"n{len(nodes)}", port=0)
        cfg = dataclasses.replace(
            cfg,
            limits=dataclasses.replace(cfg.limits, verify_workers=0),
            admission=dataclasses.replace(cfg.admission, trusted_proxies=PROXY, **adm),
        )
        node = await Node.start(cfg, clock_ms=clock)
        nodes.append(node)
        return node

    yield make
    for n in reversed(nodes):
        await n.stop()


def _port(node: Node) -> int:
    return int(node.url.rsplit(":", 1)[1])


async def raw_exchange(port: int, head: bytes, body: bytes = b"", *, closes: bool = False) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``head`` (and ``body``), read one answer within ANSWER_DEADLINE_S: status, headers,
    body, and (``closes``) whether the node then closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_DEADLINE_S)
        lines = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        payload = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), ANSWER_DEADLINE_S)
        closed = closes and await asyncio.wait_for(reader.read(1), ANSWER_DEADLINE_S) == b""
        return int(lines[0].split()[1]), headers, payload, closed
    finally:
        writer.close()


def post_head(address: str, length: int) -> bytes:
    return (
        "POST /api/v1/actions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/msgpack\r\n"
        f"X-Forwarded-For: {address}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def spend_write_bucket(port: int, address: str, actions: int) -> None:
    """A well-framed submission of ``actions`` junk items: charged to the address when it is read
    (each item is then rejected as malformed)."""
    body = encode_submission([b"\x00junk"] * actions)
    status, _, payload, _ = await raw_exchange(port, post_head(address, len(body)), body)
    assert status == 200, payload
    assert json.loads(payload)["rejected"] == actions


async def test_a_client_over_its_write_bucket_is_refused_before_its_body_is_read(make_node: NodeMaker) -> None:
    """The node read every body, 8 MiB at a time, before it looked at the client's write bucket:
    a stranger long out of tokens kept the node's body budget full, and members' batches queued
    behind its bodies (abuse benchmark: members at 0.2-0.35 of their rate alone). Now the bucket is
    checked on the request head: 429 with Retry-After at once, the connection closed (its body is
    never read), nothing reserved in the budget; another client still posts."""
    clock = Clock()
    node = await make_node(clock, write_rate=1.0, write_burst=10)
    port = _port(node)
    await spend_write_bucket(port, STRANGER, 10)
    assert node.http is not None

    # The head of an 8 MiB upload, and not a byte of its body.
    status, headers, payload, closed = await raw_exchange(port, post_head(STRANGER, 8 * 1024 * 1024 - 1), closes=True)
    assert status == 429, payload
    assert json.loads(payload)["error"] == "rate_limited"
    assert int(headers["retry-after"]) >= 1
    assert closed, "a refused request's unread body must not keep the connection"
    assert node.http.budget.used == 0

    # Another client's write goes through meanwhile.
    await spend_write_bucket(port, MEMBER, 3)


async def test_a_read_costs_tokens_by_the_size_of_its_answer(make_node: NodeMaker) -> None:
    """A read cost one token whatever it asked for: a stranger reading pages of 1,000 actions
    (~0.7 MB each) 20 times a second kept a quarter of the node's event loop busy building them
    (abuse benchmark, py-spy: Api.list_actions and stored_view). Now a read costs one token per
    started ``read_token_bytes`` of its answer: with a burst of 40 tokens, two or three reads of a
    ~1.3 MB page get through, not forty; a small read from another client still does."""
    clock = Clock()
    node = await make_node(clock, read_rate=1.0, read_burst=40)
    port = _port(node)
    founder = SigningKey(b"\x07" * 32)
    genesis = sign_genesis(founder, ts=TS, body={"name": "big pages"})
    chain, prev = [genesis.raw], genesis.id  # the genesis is its founder's seq 1
    for seq in range(2, 22):
        a = sign_action(founder, coop=genesis.id, seq=seq, prev=prev, ts=TS + seq, kind="offer.produce", body={"blob": bytes(40_000)})
        chain.append(a.raw)
        prev = a.id
    body = encode_submission(chain)
    status, _, payload, _ = await raw_exchange(port, post_head(MEMBER, len(body)), body)
    assert status == 200 and json.loads(payload)["accepted"] == 21, payload

    page = f"/api/v1/coops/{format_id(IdKind.COOP, genesis.id)}/actions?limit=1000"
    answered = []
    for _ in range(40):  # bounded: the burst, if every read cost one token
        status, headers, payload, _ = await raw_exchange(port, get_head(page, STRANGER))
        answered.append(status)
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            break
        assert status == 200 and len(payload) > 1_000_000, (status, len(payload))
    # Each answer is ~1.3 MB, 20-odd tokens: the second or third read empties the burst.
    assert answered[-1] == 429 and 2 <= answered.count(200) <= 3, answered
    status, _, _, _ = await raw_exchange(port, get_head("/api/v1/node", MEMBER))
    assert status == 200


def get_head(path: str, address: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {address}\r\n\r\n".encode()


async def test_a_client_over_a_bucket_waits_for_its_429(make_node: NodeMaker) -> None:
    """A 429 came back at once, so a stranger that ignores Retry-After and asks again at once kept
    the node's event loop busy answering 429s: in the abuse benchmark, one address with 32
    requests in flight sent 700-900 requests a second, nearly all refused, and members still
    ingested at a quarter of their rate. Now the answer itself waits (Retry-After, at most
    ``tarpit_seconds``): such a client gets no more than its requests in flight answered per
    ``tarpit_seconds``. Meanwhile other clients are served; the refused one still gets its 429."""
    clock = Clock()
    node = await make_node(clock, write_rate=0.1, write_burst=10, tarpit_seconds=3.0)
    port = _port(node)
    await spend_write_bucket(port, STRANGER, 10)

    refused = socket.create_connection(("127.0.0.1", port))
    try:
        refused.sendall(post_head(STRANGER, 1000) + b"\x00" * 1000)

        async def counted() -> bool:  # the node has seen the request and decided to refuse it
            _, _, text, _ = await raw_exchange(port, get_head("/metrics", MEMBER))
            return (metric(text.decode(), "coopnet_rate_limited_total", bucket="write") or 0) >= 1

        await wait_until(counted, within=ANSWER_DEADLINE_S, what="the refusal")
        await spend_write_bucket(port, MEMBER, 3)  # a whole exchange of another client meanwhile
        with pytest.raises(BlockingIOError):  # and still no answer for the refused one
            refused.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        refused.settimeout(3.0 + ANSWER_DEADLINE_S)
        answer = b""
        for _ in range(100):  # to EOF: the node closes after the 429
            chunk = await asyncio.to_thread(refused.recv, 65536)
            if not chunk:
                break
            answer += chunk
    finally:
        refused.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429"), answer[:300]
    assert json.loads(payload)["error"] == "rate_limited"
    assert b"Retry-After:" in head
