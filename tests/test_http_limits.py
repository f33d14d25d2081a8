"""The HTTP surface's own limits (node/http.py), against a real in-process node on 127.0.0.1.

Raw sockets where a client library would refuse to send what an attacker sends: malformed
request lines and headers, broken chunking, heads dribbled a byte at a time, bodies that never
finish. Every answer is JSON ``{"error", "message"}``, nothing is stored, the node keeps serving,
and what it logs is bounded (issue #10, findings 1-3; ``test_http_process.py`` holds the same
findings against a ``coopnet run`` process).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import logging
import os
import re
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.config import Limits
from node.http import JSON_MAX_NUMBER_CHARS, RepeatFilter, RepeatLimiter, parse_json
from node.node import Node
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission
from tests.conftest import JSON, MSGPACK, TEST_LIMITS, NodeFactory, make_chain, make_genesis, member_key, next_action
from tests.fed_helpers import metric, wait_until

HOST = "127.0.0.1"
EXCHANGE_TIMEOUT = 10.0


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.headers, self.body[:200])
        doc = json.loads(self.body)
        assert isinstance(doc, dict)
        return doc


def parse_response(data: bytes) -> Raw:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", len(body)))
    return Raw(status, headers, body[:n])


async def exchange(port: int, data: bytes) -> Raw:
    """Send ``data`` on a fresh connection; read one answer (its head, then Content-Length bytes)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> Raw:
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        reply = parse_response(head)
        n = int(reply.headers.get("content-length", "0"))
        reply.body = await reader.readexactly(n)
        return reply


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True once the server closes the connection (EOF), False if it is still open after ``within``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
            return True
    return False


def error_of(reply: Raw) -> tuple[int, str]:
    doc = reply.json()
    assert set(doc) >= {"error", "message"}, doc
    assert isinstance(doc["message"], str) and doc["message"], doc
    return reply.status, str(doc["error"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def counts(http: aiohttp.ClientSession, node: Node) -> dict[str, int]:
    async with http.get(node.url + "/api/v1/node") as r:
        assert r.status == 200
        return dict((await r.json())["counts"])


async def healthy(http: aiohttp.ClientSession, node: Node) -> None:
    async with http.get(node.url + "/healthz") as r:
        assert r.status == 200, await r.text()


# ---- the parser's own errors ----------------------------------------------------------------------

POST_HEAD = b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
CHUNKED = POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"

PARSER_CASES: dict[str, tuple[bytes, int, str]] = {
    "non-ASCII URL": ("GET /api/v1/coops/é HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400, "bad_url"),
    "9 KB header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "header_too_large"),
    "9 KB URL": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "header_too_large"),
    "a megabyte of headers": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 8000) for i in range(120)) + b"\r\n",
        431,
        "header_too_large",
    ),
    "200 headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 400, "bad_http"),
    "letters in Content-Length": (POST_HEAD + b"Content-Length: abc\r\n\r\n", 400, "bad_http"),
    "negative Content-Length": (POST_HEAD + b"Content-Length: -1\r\n\r\n", 400, "bad_http"),
    "huge Content-Length": (POST_HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n", 400, "bad_http"),
    "two Content-Lengths": (POST_HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400, "bad_http"),
    "Content-Length and chunked": (POST_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_http"),
    "bad chunk size": (CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n", 400, "bad_http"),
    "chunk size overflow": (CHUNKED + b"ffffffffffffffffffff\r\nab\r\n", 400, "bad_http"),
    "chunk without its CRLF": (CHUNKED + b"3\r\nabcXX0\r\n\r\n", 400, "bad_http"),
    "NUL in the method": (b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_http"),
    "HTTP/9.9": (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_http"),
    "header without a colon": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nXXXX\r\n\r\n", 400, "bad_http"),
    "TLS hello on the HTTP port": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32), 400, "bad_http"),
}


@pytest.mark.parametrize("case", PARSER_CASES, ids=list(PARSER_CASES))
async def test_parser_errors_are_json(case: str, start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    data, status, code = PARSER_CASES[case]
    before = await counts(http, node)
    assert error_of(await exchange(node.config.port, data)) == (status, code)
    assert await counts(http, node) == before
    await healthy(http, node)


async def test_body_framing_broken_after_the_head_is_json(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    """Chunking that breaks after the handler started reading: the payload's own error."""
    node = await start_node()
    reader, writer = await asyncio.open_connection(HOST, node.config.port)
    try:
        writer.write(CHUNKED + b'4\r\n{"ac')
        await writer.drain()
        await asyncio.sleep(0)  # let the head go first; the rest is what breaks
        writer.write(b"\r\nzz\r\n")
        await writer.drain()
        reply = await read_response(reader)
    finally:
        writer.close()
    assert error_of(reply)[0] == 400
    await healthy(http, node)


async def test_parser_errors_are_logged_once_per_interval_without_traceback(
    start_node: NodeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    node = await start_node(log_repeat_interval=0.3)
    caplog.set_level(logging.INFO, logger="coopnet.http")
    bad = list(PARSER_CASES.values())
    for i in range(30):
        await exchange(node.config.port, bad[i % len(bad)][0])
    first = [r for r in caplog.records if r.name == "coopnet.http"]
    kinds = {code for _, _, code in bad}
    assert 1 <= len(first) <= len(kinds), [r.getMessage() for r in first]
    assert all(r.exc_info is None for r in first)

    async def counted() -> bool:  # the flush reports how many were held back
        return any("more like this" in r.getMessage() for r in caplog.records if r.name == "coopnet.http")

    await wait_until(counted, within=10, what="a summary of the held-back lines")
    assert all(r.exc_info is None for r in caplog.records if r.name == "coopnet.http")
    text = await (await http.get(node.url + "/metrics")).text()
    assert sum(metric(text, "coopnet_http_bad_requests_total", code=c) or 0 for c in kinds) == 30


# ---- bounded JSON and query parameters -------------------------------------------------------------


def post_raw(body: bytes, ctype: str = JSON) -> bytes:
    return b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        ctype.encode(),
        len(body),
        body,
    )


JSON_CASES: dict[str, tuple[bytes, int, str]] = {
    "nested 1,000 levels": (b"[" * 1000 + b"]" * 1000, 413, "too_large"),
    "nested 100,000 levels, unclosed": (b'{"actions": ' + b"[" * 100_000, 413, "too_large"),
    "nested objects": (b'{"a": ' * 5000 + b"1" + b"}" * 5000, 413, "too_large"),
    "10,000-digit integer": (b'{"action": ' + b"9" * 10_000 + b"}", 400, "malformed"),
    "10,000-digit integer in a batch": (b'{"actions": [' + b"1" * 10_000 + b"]}", 400, "malformed"),
    "huge exponent": (b'{"actions": [1e999999999]}', 422, "bad_schema"),
    "NaN": (b'{"actions": [NaN]}', 400, "malformed"),
    "a million items": (b'{"actions": [' + b",".join([b'"AAAA"'] * 100_000) + b"]}", 413, "too_large"),
    "lone surrogate": (b'{"action": "\\ud800"}', 400, "malformed"),
    "control character": (b'{"action": "a\x01b"}', 400, "malformed"),
    "trailing garbage": (b'{"actions": ["AAAA"]} x', 400, "malformed"),
    "not UTF-8": (b'{"action": "\xff"}', 400, "malformed"),
}


@pytest.mark.parametrize("case", JSON_CASES, ids=list(JSON_CASES))
async def test_hostile_json_bodies(case: str, start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(max_request_bytes=1024 * 1024)
    body, status, code = JSON_CASES[case]
    before = await counts(http, node)
    assert error_of(await exchange(node.config.port, post_raw(body))) == (status, code)
    assert await counts(http, node) == before
    await healthy(http, node)


@pytest.mark.parametrize("param", ["limit", "after"])
@pytest.mark.parametrize("digits", [20, 4300, 5000, 8000])
async def test_huge_integer_query_parameters(param: str, digits: int, start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    genesis = make_genesis(member_key(1))
    async with http.post(node.url + "/api/v1/actions", data=json.dumps({"action": _b64(genesis.raw)}), headers={"Content-Type": JSON}) as r:
        assert r.status == 200
    coop = format_id(IdKind.COOP, genesis.id)
    request = b"GET /api/v1/coops/%s/actions?%s=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (
        coop.encode(),
        param.encode(),
        b"9" * digits,
    )
    reply = await exchange(node.config.port, request)
    assert error_of(reply) == (400, "bad_request")
    # A long run of zeros is still a small number.
    ok = b"GET /api/v1/coops/%s/actions?%s=%s1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (
        coop.encode(),
        param.encode(),
        b"0" * digits,
    )
    assert (await exchange(node.config.port, ok)).status == 200


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# parse_json against the json module, on documents both accept (derandomized, modest counts).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(derandomize=True, max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(value=json_values, indent=st.sampled_from([None, 0, 2]), separators=st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : ")]))
def test_parse_json_agrees_with_the_json_module(value: object, indent: int | None, separators: tuple[str, str]) -> None:
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=False)
    assert parse_json(text.encode(), max_depth=64, max_values=10_000) == json.loads(text)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(text=st.text(alphabet='[]{}",:0123456789-.eE truefalsnu\\\n', max_size=40))
def test_parse_json_refuses_what_the_json_module_refuses(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        expected = ValueError
    try:
        got = parse_json(text, max_depth=64, max_values=10_000)
    except ValueError:
        got = ValueError
    if expected is not ValueError and got is ValueError:
        # Only the bounds may refuse a document json accepts: long numbers.
        assert any(len(tok) > JSON_MAX_NUMBER_CHARS for tok in text.replace(",", " ").replace("[", " ").split()), text
    else:
        assert got == expected or (got is not ValueError and json.dumps(got) == json.dumps(expected)), (text, expected, got)


# ---- time limits ----------------------------------------------------------------------------------


async def test_slowloris_head_is_closed_at_header_timeout(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(header_timeout=0.5, idle_timeout=60.0)
    reader, writer = await asyncio.open_connection(HOST, node.config.port)
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        closed = False
        for byte in head:  # a byte every 0.1 s: the head would take 13 s
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionError, OSError):
                closed = True
                break
            if await closed_by_server(reader, 0.1):
                closed = True
                break
        assert closed, "the server never closed a head dribbled a byte every 0.1 s"
    finally:
        writer.close()
    text = await (await http.get(node.url + "/metrics")).text()
    assert metric(text, "coopnet_http_connections_closed_total", reason="header_timeout") == 1
    await healthy(http, node)


async def test_a_silent_connection_is_closed_at_header_timeout(start_node: NodeFactory) -> None:
    node = await start_node(header_timeout=0.3, idle_timeout=60.0)
    reader, writer = await asyncio.open_connection(HOST, node.config.port)
    try:
        assert await closed_by_server(reader, 10)
    finally:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_at_idle_timeout(start_node: NodeFactory) -> None:
    node = await start_node(idle_timeout=0.3, header_timeout=60.0)
    reader, writer = await asyncio.open_connection(HOST, node.config.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), EXCHANGE_TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
        await reader.readexactly(length)
        assert await closed_by_server(reader, 10), "an idle keep-alive connection stayed open"
    finally:
        writer.close()


async def test_a_body_that_never_finishes_gets_408(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(body_timeout=0.5)
    before = await counts(http, node)
    reader, writer = await asyncio.open_connection(HOST, node.config.port)
    try:
        writer.write(POST_HEAD + b'Content-Length: 1000\r\n\r\n{"actions": [')
        await writer.drain()
        reply = await read_response(reader)
    finally:
        writer.close()
    assert error_of(reply) == (408, "timeout")
    assert await counts(http, node) == before
    assert node.http is not None and node.http.budget.used == 0


async def test_a_client_that_never_reads_its_answer_is_closed(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    """A large answer the client never reads: the node closes the connection instead of waiting
    on the socket forever (measured by bytes still queued, checked every idle_timeout)."""
    page = 300  # actions of ~16 KB: an answer of ~11 MB, more than the kernel's socket buffers take
    node = await start_node(idle_timeout=0.3, max_request_bytes=1024 * 1024, max_page=page)
    genesis = make_genesis(member_key(1))
    big = make_chain(member_key(2), genesis.id, page, tag="x" * 16_000)
    for i in range(0, len(big), 10):
        async with http.post(
            node.url + "/api/v1/actions",
            data=encode_submission([a.raw for a in ([genesis] if i == 0 else []) + big[i : i + 10]]),
            headers={"Content-Type": MSGPACK},
        ) as r:
            assert r.status == 200 and (await r.json())["rejected"] == 0
    coop = format_id(IdKind.COOP, genesis.id)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # take as little as the kernel allows
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, node.config.port))
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"GET /api/v1/coops/%s/actions?limit=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (coop.encode(), page))
        await writer.drain()
        assert node.http is not None

        async def closed() -> bool:
            text = node.http.metrics.render().decode()  # type: ignore[union-attr]
            return (metric(text, "coopnet_http_connections_closed_total", reason="send_timeout") or 0) == 1

        await wait_until(closed, within=20, what="the node to close a connection that reads nothing")
    finally:
        writer.close()
    await healthy(http, node)


# ---- connections and the body budget ---------------------------------------------------------------

CAP = 16  # node.http.MIN_CONNECTIONS: the smallest cap there is


async def test_past_the_cap_the_longest_idle_connection_makes_way(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(max_connections=CAP, header_timeout=60.0, idle_timeout=60.0)
    held = [await asyncio.open_connection(HOST, node.config.port) for _ in range(CAP)]
    try:
        assert node.http is not None

        async def all_open() -> bool:
            return len(node.http.guard) == CAP  # type: ignore[union-attr]

        await wait_until(all_open, within=10, what="every idle connection to be accepted")
        # A newcomer takes the place of the connection idle longest (the first one opened).
        reply = await exchange(node.config.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.status == 200
        assert await closed_by_server(held[0][0], 10), "the oldest idle connection was not the one closed"
        assert not await closed_by_server(held[1][0], 0.2)
        text = await (await http.get(node.url + "/metrics")).text()
        assert metric(text, "coopnet_http_connections_closed_total", reason="evicted") == 1
    finally:
        for _, w in held:
            w.close()


async def test_many_busy_connections_do_not_hide_the_idle_ones(start_node: NodeFactory) -> None:
    """Slow uploads opened first (busy, and the least recently active) and idle sockets after
    them, up to the cap: a newcomer still finds an idle connection to take the place of."""
    cap, slow = 100, 80
    node = await start_node(max_connections=cap, body_timeout=60.0, header_timeout=60.0, idle_timeout=60.0)
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(slow):
            _, w = await asyncio.open_connection(HOST, node.config.port)
            w.write(POST_HEAD + b"Content-Length: 100\r\n\r\n0123456789")
            await w.drain()
            held.append(w)
        assert node.http is not None

        async def all_busy() -> bool:
            return node.http.budget.used >= slow  # type: ignore[union-attr]

        await wait_until(all_busy, within=10, what="the slow uploads to be reading their bodies")
        for _ in range(cap - slow):
            _, w = await asyncio.open_connection(HOST, node.config.port)
            held.append(w)

        async def full() -> bool:
            return len(node.http.guard) == cap  # type: ignore[union-attr]

        await wait_until(full, within=10, what="the cap to be reached")
        reply = await exchange(node.config.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.status == 200
    finally:
        for w in held:
            w.close()


async def test_when_every_connection_is_busy_a_newcomer_is_refused_as_json(start_node: NodeFactory) -> None:
    # Half of them read their bodies (the budget holds no more); the others wait for room.
    node = await start_node(max_connections=CAP, body_timeout=60.0, header_timeout=60.0, body_budget_wait=60.0)
    busy: list[asyncio.StreamWriter] = []
    try:
        for _ in range(CAP):  # each sends a head and a tenth of its body: busy reading it
            _, w = await asyncio.open_connection(HOST, node.config.port)
            w.write(POST_HEAD + b"Content-Length: 100\r\n\r\n0123456789")
            await w.drain()
            busy.append(w)
        assert node.http is not None

        async def all_busy() -> bool:
            return node.http.budget.used >= CAP  # type: ignore[union-attr]

        await wait_until(all_busy, within=10, what="every connection to be reading a body")
        reply = await exchange(node.config.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert error_of(reply) == (503, "busy") and reply.headers["retry-after"] == "1"
    finally:
        for w in busy:
            w.close()

    async def served() -> bool:
        try:
            return (await exchange(node.config.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).status == 200
        except (ConnectionError, ValueError, IndexError):
            return False

    await wait_until(served, within=10, what="the node to serve again once the busy clients left")


async def test_bodies_past_the_budget_get_503_busy_with_retry_after(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    limit = TEST_LIMITS["max_request_bytes"]
    node = await start_node(max_body_bytes_in_flight=limit, body_budget_wait=0.2, body_timeout=60.0)
    _, writer = await asyncio.open_connection(HOST, node.config.port)
    try:  # one upload holds the whole budget while it trickles in
        writer.write(POST_HEAD + b"Content-Length: %d\r\n\r\n{" % limit)
        await writer.drain()
        assert node.http is not None

        async def held() -> bool:
            return node.http.budget.used == limit  # type: ignore[union-attr]

        await wait_until(held, within=10, what="the first upload to hold the budget")
        async with http.post(node.url + "/api/v1/actions", data=b'{"actions": []}', headers={"Content-Type": JSON}) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "1"
            assert (await r.json())["error"] == "busy"
    finally:
        writer.close()

    async def room() -> bool:
        return node.http.budget.used == 0  # type: ignore[union-attr]

    await wait_until(room, within=10, what="the budget to be given back")
    a = make_genesis(member_key(1))
    async with http.post(node.url + "/api/v1/actions", data=json.dumps({"action": _b64(a.raw)}), headers={"Content-Type": JSON}) as r:
        assert r.status == 200 and (await r.json())["results"][0]["status"] == "accepted"


async def test_a_client_waiting_for_room_gets_it_when_room_is_made(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    limit = TEST_LIMITS["max_request_bytes"]
    node = await start_node(max_body_bytes_in_flight=limit, body_budget_wait=30.0, body_timeout=60.0)
    reader, writer = await asyncio.open_connection(HOST, node.config.port)
    body = b'{"actions": []}'
    writer.write(POST_HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % limit)
    await writer.drain()
    assert node.http is not None

    async def held() -> bool:
        return node.http.budget.used == limit  # type: ignore[union-attr]

    await wait_until(held, within=10, what="the first upload to hold the budget")
    waiting = asyncio.create_task(http.post(node.url + "/api/v1/actions", data=body, headers={"Content-Type": JSON}))
    writer.write(b" " * limit)  # the first upload finishes (400: not JSON); room is made
    await writer.drain()
    assert error_of(await read_response(reader))[0] == 400
    writer.close()
    async with await waiting as r:
        assert r.status == 422, await r.text()  # the waiter got in: judged on its (empty) content


# ---- readiness ------------------------------------------------------------------------------------


async def test_readyz_says_not_ready_below_the_disk_floor(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node(min_free_disk_bytes=2**62)
    async with http.get(node.url + "/readyz") as r:
        doc = await r.json()
        assert r.status == 503 and doc["ready"] is False, doc
        assert "min_free_disk_bytes" in doc["reasons"][0] and doc["disk"]["free_bytes"] < 2**62
    await healthy(http, node)  # alive all the same


async def test_readyz_says_not_ready_when_the_store_is_closed(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    async with http.get(node.url + "/readyz") as r:
        assert r.status == 200
    await node.store.close()
    async with http.get(node.url + "/readyz") as r:
        doc = await r.json()
        assert r.status == 503 and doc["reasons"] == ["the store is closed"], doc
    await healthy(http, node)


# ---- logging and the open-file limit ---------------------------------------------------------------


async def test_accept_errors_are_logged_once_per_interval(start_node: NodeFactory, caplog: pytest.LogCaptureFixture) -> None:
    node = await start_node(log_repeat_interval=60.0)
    caplog.set_level(logging.INFO)
    loop = asyncio.get_running_loop()
    for _ in range(1000):  # what asyncio reports for each accept() that fails with EMFILE
        loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "Too many open files")}
        )
    lines = [r for r in caplog.records if "Too many open files" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert node.http is not None
    assert metric(node.http.metrics.render().decode(), "coopnet_http_accept_errors_total", errno="EMFILE") == 1000


def test_repeat_filter_lets_one_through_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    f = RepeatFilter(10.0)
    f.limiter = RepeatLimiter(10.0, clock=lambda: now[0])
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("coopnet.test-repeat")
    logger.propagate = False
    handler = Keep()
    handler.addFilter(f)
    logger.addHandler(handler)
    try:
        for _ in range(100):
            logger.warning("peer %s failed", "p1")
        logger.warning("peer %s failed", "p2")  # another line: it passes
        assert seen == ["peer p1 failed", "peer p2 failed"]
        f.flush()  # the interval has not ended: nothing to report yet
        now[0] = 11.0
        f.flush()
        assert seen[-1] == "99 more like this in the last 10 s; the last: peer p1 failed"
        logger.warning("peer %s failed", "p1")
        assert seen[-1] == "peer p1 failed"
    finally:
        logger.removeHandler(handler)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    code = "from node.http import raise_open_files_limit; print(*raise_open_files_limit())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=lower, timeout=60, check=True)
    before, after = map(int, out.stdout.split())
    assert before == low and after == (hard if hard != resource.RLIM_INFINITY else after), out
    assert os.getpid() > 0 and soft > 0


# ---- a good request still works ---------------------------------------------------------------------


async def test_at_most_half_the_connections_read_bodies_at_once(start_node: NodeFactory) -> None:
    node = await start_node(max_connections=CAP, body_timeout=60.0, header_timeout=60.0, body_budget_wait=60.0)
    assert node.http is not None and node.http.min_reservation * (CAP // 2) == node.config.limits.max_body_bytes_in_flight
    held = []
    try:
        for _ in range(CAP // 2 + 2):
            _, w = await asyncio.open_connection(HOST, node.config.port)
            w.write(POST_HEAD + b"Content-Length: 100\r\n\r\n0123456789")
            await w.drain()
            held.append(w)

        async def waiting() -> bool:
            return len(node.http.budget._waiters) == 2  # type: ignore[union-attr]

        await wait_until(waiting, within=10, what="two uploads to wait for room")
        assert node.http.budget.used == node.config.limits.max_body_bytes_in_flight
    finally:
        for w in held:
            w.close()


async def test_a_large_body_in_the_same_packet_as_its_head_is_not_a_large_head(
    start_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await start_node()
    body = b" " * 100_000 + b'{"actions": []}'
    reply = await exchange(node.config.port, post_raw(body))  # one write: head and 100 KB of body together
    assert error_of(reply) == (422, "bad_schema")


async def test_json_and_msgpack_submissions_still_work(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    g = make_genesis(member_key(1))
    async with http.post(node.url + "/api/v1/actions", data=encode_submission([g.raw]), headers={"Content-Type": MSGPACK}) as r:
        assert r.status == 200 and (await r.json())["accepted"] == 1
    a = next_action(member_key(2), g.id, None)
    async with http.post(node.url + "/api/v1/actions", data=json.dumps({"actions": [_b64(a.raw)]}), headers={"Content-Type": JSON}) as r:
        assert r.status == 200 and (await r.json())["accepted"] == 1


# ---- docs ---------------------------------------------------------------------------------------


def test_every_limit_is_documented_with_its_default() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "OPERATIONS.md").read_text()
    for f in fields(Limits):
        default = getattr(Limits(), f.name)
        assert re.search(rf"^{f.name} = {re.escape(repr(default))}(\s|$)", text, re.M), f"{f.name} = {default!r} not in OPERATIONS.md"
