"""A bounded HTTP fuzzer over every route of a real node (issue #10).

A seeded generator (``random.Random``: the same requests on every run) builds requests for every
route the node's router holds (the client API, the governance API, and the peer API without
authentication), read from the router itself so a new route is fuzzed the day it is added: any
method, path parameters valid or hostile, query strings (huge numbers, unicode, repeats), content
types, and bodies (deeply nested or huge JSON, wrong types, truncated msgpack, binary junk,
mutations of a real action). Then raw-socket requests that no client library would send: a valid
request mutated byte by byte, truncated, or with broken framing.

Invariants, after every request: no 5xx; every error is JSON with ``error`` and ``message``; the
node answers a good request; nothing was stored (counts unchanged: the only real action in the
mix is one already stored); nothing was logged at ERROR.

``COOPNET_FUZZ_REQUESTS`` (default 400) and ``COOPNET_FUZZ_RAW`` (default 150) set the counts,
``COOPNET_FUZZ_SEED`` the seed, for exploring beyond what ``make test`` runs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import re
import time
from typing import Any

import aiohttp
import msgpack
import pytest
from yarl import URL

from node.node import Node
from protocol import Action, codec
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission
from tests.conftest import JSON, MSGPACK, NodeFactory, make_chain, make_genesis, member_key
from tests.test_http_limits import HOST, parse_response

REQUESTS = int(os.environ.get("COOPNET_FUZZ_REQUESTS", "400"))
RAW = int(os.environ.get("COOPNET_FUZZ_RAW", "150"))
SEED = int(os.environ.get("COOPNET_FUZZ_SEED", "20261204"))
TIME_BUDGET_S = float(os.environ.get("COOPNET_FUZZ_SECONDS", "60"))  # a bound, not an expectation
REQUEST_TIMEOUT_S = 10.0
RAW_CONCURRENCY = 25  # raw requests in flight: the incomplete ones each wait out a node timeout
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
CONTENT_TYPES = (
    JSON,
    MSGPACK,
    "application/x-msgpack",
    "application/vnd.msgpack",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "",
    "\u00e9/\u00e9",
)
QUERY_KEYS = ("limit", "after", "author", "kind", "status", "deps", "x", "", "limit[]")
ID_PREFIXES = ("act_", "coop_", "mem_", "eqv_", "node_", "", "ACT_", "act-")


class Fuzzer:
    """Builds hostile requests from a seeded Random and a few real ids of the node under test."""

    def __init__(self, rng: random.Random, routes: list[tuple[str, str]], real: dict[str, str], stored: Action) -> None:
        self.rng = rng
        self.routes = routes
        self.real = real  # path variable -> a real id
        self.stored = stored

    # -- pieces --

    def huge_number(self) -> str:
        return self.rng.choice(["9" * self.rng.choice([19, 20, 100, 4301, 10_000]), "-1", "0", "1e999", "0x10", "1_000", "\uff11", "٣"])

    def junk_text(self, n: int = 40) -> str:
        alphabet = "abcXYZ019_-./%\u00e9\u4e2d\U0001f600\x00 '\"<>{}[]\\"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randrange(n)))

    def path_value(self, name: str) -> str:
        r = self.rng.random()
        if r < 0.35 and name in self.real:
            return self.real[name]
        if r < 0.5:
            return self.rng.choice(ID_PREFIXES) + base64.b32encode(
                self.rng.randbytes(self.rng.choice([0, 5, 32, 33, 64]))
            ).decode().lower().rstrip("=")
        if r < 0.6:
            return self.huge_number()
        if r < 0.7:
            return "%" + self.rng.randbytes(1).hex() + "%ff%00%2F.."
        return self.junk_text() or "x"

    def query(self) -> str:
        parts = []
        for _ in range(self.rng.randrange(4)):
            key = self.rng.choice(QUERY_KEYS)
            value = self.rng.choice([self.huge_number(), self.junk_text(20), ",".join(self.real.values()), ""])
            parts.append(f"{_quote(key)}={_quote(value)}")
        return "&".join(parts)

    def json_value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 6 or r < 0.4:
            return self.rng.choice(
                [None, True, 1, -(2**63), 2**63, 10**30, 1.5, "", self.junk_text(), base64.b64encode(self.rng.randbytes(40)).decode()]
            )
        if r < 0.7:
            return [self.json_value(depth + 1) for _ in range(self.rng.randrange(5))]
        return {self.junk_text(8): self.json_value(depth + 1) for _ in range(self.rng.randrange(5))}

    def body(self) -> tuple[str, bytes]:
        """(content type, body) for one request."""
        kind = self.rng.randrange(12)
        raw = self.stored.raw
        ctype = self.rng.choice(CONTENT_TYPES)
        if kind == 0:
            return JSON, b"[" * self.rng.choice([33, 1000, 50_000]) + b"]" * self.rng.randrange(2)
        if kind == 1:
            return JSON, b'{"actions": [' + self.huge_number().encode() + b"]}"
        if kind == 2:
            return JSON, json.dumps(
                self.rng.choice([{"actions": self.json_value()}, {"action": self.json_value()}, self.json_value()])
            ).encode()
        if kind == 3:
            good = encode_submission([raw])
            return MSGPACK, good[: self.rng.randrange(len(good))]
        if kind == 4:
            return self.rng.choice([MSGPACK, JSON, ctype]), self.rng.randbytes(self.rng.randrange(2000))
        if kind == 5:  # the stored action, flipped: every verdict but "accepted"
            i = self.rng.randrange(len(raw))
            mutated = raw[:i] + bytes([raw[i] ^ (1 << self.rng.randrange(8))]) + raw[i + 1 :]
            return MSGPACK, encode_submission([mutated])
        if kind == 6:  # the stored action again: "known"
            return self.rng.choice(
                [(MSGPACK, encode_submission([raw])), (JSON, json.dumps({"action": base64.b64encode(raw).decode()}).encode())]
            )
        if kind == 7:
            value = {"actions": [self.rng.randbytes(self.rng.randrange(100)) for _ in range(self.rng.randrange(70))]}
            return MSGPACK, msgpack.packb(value, use_bin_type=True)
        if kind == 8:
            try:
                return MSGPACK, msgpack.packb(self.json_value(), use_bin_type=True)
            except OverflowError:  # an integer msgpack cannot carry: send its neighbour instead
                return MSGPACK, b"\xcf" + b"\xff" * 8
        if kind == 9:
            return JSON, b'{"actions": [' + b",".join([b'"AAAA"'] * self.rng.choice([65, 1000, 20_000])) + b"]}"
        if kind == 10:
            return ctype, codec.encode({"actions": [raw[: self.rng.randrange(len(raw))]]})
        return ctype, b""

    def request(self) -> tuple[str, str, dict[str, str], bytes | None]:
        posts = [r for r in self.routes if r[0] == "POST"]
        # A third of the requests go to routes that take a body: that is where the parsing is.
        method_hint, template = self.rng.choice(posts if posts and self.rng.random() < 0.35 else self.routes)
        method = method_hint if self.rng.random() < 0.8 else self.rng.choice(METHODS)
        path = re.sub(r"\{(\w+)\}", lambda m: _quote(self.path_value(m.group(1))), template)
        query = self.query() if self.rng.random() < 0.5 else ""
        headers = {
            "Accept": self.rng.choice(
                [JSON, MSGPACK, "*/*", "text/html", "".join(c for c in self.junk_text(20) if c.isascii() and c.isprintable())]
            )
        }
        body = None
        if method in ("POST", "PUT", "PATCH") or self.rng.random() < 0.1:
            ctype, body = self.body()
            if ctype:
                headers["Content-Type"] = ctype
        return method, path + ("?" + query if query else ""), headers, body

    def raw_request(self) -> bytes:
        """A valid request mutated into something malformed, or framing that does not add up."""
        base = b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/msgpack\r\nContent-Length: %d\r\n\r\n%s"
        body = encode_submission([self.stored.raw])
        data = bytearray(base % (len(body), body))
        kind = self.rng.randrange(7)
        if kind == 0:  # flip bytes anywhere
            for _ in range(self.rng.randrange(1, 8)):
                i = self.rng.randrange(len(data))
                data[i] = self.rng.randrange(256)
        elif kind == 1:  # cut it short
            del data[self.rng.randrange(len(data)) :]
        elif kind == 2:  # junk header lines
            at = data.index(b"\r\n") + 2
            data[at:at] = self.rng.randbytes(self.rng.randrange(1, 300)) + b"\r\n"
        elif kind == 3:  # a non-ASCII or overlong target
            target = self.rng.choice([("/" + self.junk_text(30)).encode("utf-8"), b"/" + b"a" * 9000, b"*", b"http://evil/x"])
            data[5 : 5 + len(b"/api/v1/actions")] = target
        elif kind == 4:  # chunked framing that breaks
            head = b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunks = self.rng.choice(
                [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}\r\n", b"ffffffffff\r\n", b"1\r\n{}}\r\n0\r\n\r\n", b"0\r\nX: y\r\n\r\n"]
            )
            data = bytearray(head + chunks)
        elif kind == 5:  # Content-Length that lies
            data = bytearray(base % (self.rng.choice([0, 1, len(body) - 1, len(body) + 10]), body))
        else:  # a method or version nobody speaks
            data[0:4] = self.rng.choice([b"BREW", b"\x16\x03\x01\x00", b"GET ", b"PRI "])
        return bytes(data)


def _quote(text: str) -> str:
    """Percent-encode what a URL cannot carry literally; keep what a hostile client might send as is."""
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "-._~,%") else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


def client_routes(node: Node) -> list[tuple[str, str]]:
    routes = []
    for route in node.runner.app.router.routes():  # type: ignore[union-attr]
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template and route.method != "HEAD":
            routes.append((route.method, template))
    return sorted(set(routes))


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """Bytes until one whole answer (head and Content-Length body) is in, or the node closes."""
    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return buf
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if m is None or len(body) >= int(m.group(1)):
                return buf


def check_answer(status: int, headers: Any, body: bytes, what: str) -> None:
    assert status < 500 or (status == 503 and b'"busy"' in body), f"{what}: {status} {body[:300]!r}"
    if status >= 400:
        ctype = headers.get("Content-Type", headers.get("content-type", ""))
        assert ctype.startswith("application/json"), f"{what}: {status} {ctype} {body[:300]!r}"
        doc = json.loads(body)
        assert isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str), f"{what}: {doc}"


async def fuzz_world(start_node: NodeFactory, http: aiohttp.ClientSession) -> tuple[Node, dict[str, str], Action]:
    node = await start_node(header_timeout=0.5, body_timeout=0.5, idle_timeout=0.5)
    genesis = make_genesis(member_key(1))
    chain = make_chain(member_key(2), genesis.id, 2)
    async with http.post(
        node.url + "/api/v1/actions", data=encode_submission([genesis.raw, *(a.raw for a in chain)]), headers={"Content-Type": MSGPACK}
    ) as r:
        assert r.status == 200 and (await r.json())["accepted"] == 3
    real = {
        "coop": format_id(IdKind.COOP, genesis.id),
        "id": format_id(IdKind.ACTION, chain[0].id),
    }
    return node, real, chain[0]


async def snapshot(http: aiohttp.ClientSession, node: Node) -> dict[str, int]:
    async with http.get(node.url + "/api/v1/node") as r:
        assert r.status == 200
        return dict((await r.json())["counts"])


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        yield session


async def test_fuzz_every_route(start_node: NodeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    node, real, stored = await fuzz_world(start_node, http)
    before = await snapshot(http, node)
    routes = client_routes(node)
    assert {("POST", "/api/v1/actions"), ("GET", "/api/v1/coops/{coop}/state"), ("POST", "/peer/v1/push")} <= set(routes), routes
    fuzzer = Fuzzer(random.Random(SEED), routes, real, stored)
    deadline = time.monotonic() + TIME_BUDGET_S
    statuses: dict[int, int] = {}
    for i in range(REQUESTS):
        if time.monotonic() > deadline:
            break
        method, target, headers, body = fuzzer.request()
        what = f"#{i} {method} {target[:200]}"
        try:
            async with http.request(method, URL(node.url + target, encoded=True), headers=headers, data=body) as r:
                payload = await r.read()
                if method != "HEAD":  # a HEAD answer has no body to check
                    check_answer(r.status, r.headers, payload, what)
                else:
                    assert r.status < 500, what
                statuses[r.status] = statuses.get(r.status, 0) + 1
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError):
            pass  # the node closed on a request it refused before answering: allowed
        if i % 50 == 0:
            async with http.get(node.url + "/healthz") as r:
                assert r.status == 200, what
    assert sum(statuses.values()) >= min(REQUESTS, 50), statuses
    assert await snapshot(http, node) == before
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors][:5]


async def test_fuzz_raw_malformed_http(start_node: NodeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    node, real, stored = await fuzz_world(start_node, http)
    before = await snapshot(http, node)
    fuzzer = Fuzzer(random.Random(SEED + 1), client_routes(node), real, stored)
    requests = [fuzzer.raw_request() for _ in range(RAW)]
    deadline = time.monotonic() + TIME_BUDGET_S
    answered = 0

    async def one(i: int, data: bytes) -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(HOST, node.config.port)
        try:
            writer.write(data)
            await writer.drain()
            # Incomplete requests are answered (408) or closed at the node's short timeouts.
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                out = await read_answer(reader)
        except (ConnectionError, OSError):
            out = b""
        finally:
            writer.close()
        if out:
            reply = parse_response(out)
            check_answer(reply.status, reply.headers, reply.body, f"raw #{i} {data[:120]!r}")
            answered += 1

    for start in range(0, len(requests), RAW_CONCURRENCY):
        if time.monotonic() > deadline:
            break
        await asyncio.gather(*(one(start + k, d) for k, d in enumerate(requests[start : start + RAW_CONCURRENCY])))
    assert answered >= min(RAW, 50) // 2, answered
    async with http.get(node.url + "/healthz") as r:
        assert r.status == 200
    assert await snapshot(http, node) == before
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors][:5]
