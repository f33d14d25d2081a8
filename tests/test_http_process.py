"""The HTTP surface of a real ``coopnet run`` process against strangers (issue #10, findings 1-4).

Each test starts the node as its own process (``tests/test_crash.py``'s ``NodeProcess``), with
limits written into its ``coopnet.toml``, and attacks it from this process over 127.0.0.1:

1. ``/healthz`` and ``/readyz`` polled during a burst of valid posts: no post fails (a health
   probe used to open a transaction on the writer's connection, and 35-44 % of posts got 503).
3. With an open-file limit of 1024, 1,100 idle sockets and a few slowloris clients (a header
   byte a second): ``/healthz`` keeps answering, the slowloris sockets are closed, and the log
   stays small (it used to stop answering and write tens of thousands of EMFILE tracebacks).
4. 40 concurrent uploads of 8 MiB: the node's peak RSS stays under 300 MB, it serves
   afterwards, and its RSS goes back near its idle size (it used to reach 775-891 MB and keep
   645 MB).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import resource
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from node.node import init_data_dir
from protocol import Action
from protocol.messages import encode_submission
from tests.conftest import member_key
from tests.fed_helpers import Member, wait_until
from tests.test_crash import HOST, OPEN_RATES, NodeProcess, free_port

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


def write_limits(data_dir: Path, **limits: Any) -> None:
    """Set ``[limits]`` keys in a data directory's coopnet.toml (init writes each one commented out)."""
    path = data_dir / "coopnet.toml"
    text = path.read_text()
    for key, value in limits.items():
        commented = next(line for line in text.splitlines() if line.startswith(f"# {key} = "))
        text = text.replace(commented, f"{key} = {value!r}")
    path.write_text(text)


def open_admission(data_dir: Path) -> None:
    """Take every author, rate-limit no client (as NodeProcess.init does): these tests' members
    never apply, and their load comes from one address. Admission has its own tests."""
    path = data_dir / "coopnet.toml"
    path.write_text(
        path.read_text().replace("[admission]\n", '[admission]\nunknown_authors = "store"\n' + "".join(f"{k} = 0.0\n" for k in OPEN_RATES))
    )


def new_node(tmp_path: Path, name: str = "node", *, nofile: int | None = None, **limits: Any) -> NodeProcess:
    port = free_port()
    data = tmp_path / name
    init_data_dir(data, port=port)
    open_admission(data)
    write_limits(data, **limits)
    popen: dict[str, Any] = {}
    if nofile is not None:

        def low_nofile() -> None:  # in the child, before exec: as `ulimit -n` would
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        popen["preexec_fn"] = low_nofile
    return NodeProcess(data, port, **popen)


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for n in started:
        n.cleanup()


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmHWM, VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def log_text(node: NodeProcess) -> str:
    return node.log_path.read_text(errors="replace")


def chains(n_members: int, per_member: int, seed: int) -> tuple[Action, list[list[Action]]]:
    founder = Member(member_key(seed))
    genesis = founder.found(f"co-op {seed}", 1)
    members = [Member(member_key(seed + 1 + i)) for i in range(n_members)]
    return genesis, [m.act(genesis.id, per_member) for m in members]


async def get_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as r:
        await r.read()
        return r.status


# ---- 1. health probes never make writes fail -------------------------------------------------------

POSTS = 600  # single-action posts in the burst
POST_LANES = 8
POLLERS = 4  # concurrent /healthz and /readyz pollers
MAX_POLLS = 20_000  # per poller, a bound; the burst's end stops them far sooner


async def test_health_probes_during_a_burst_of_posts_fail_nothing(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    node = new_node(tmp_path)
    nodes.append(node)
    await asyncio.to_thread(node.start)
    genesis, member_chains = chains(POST_LANES, POSTS // POST_LANES, seed=500)
    posts: Counter[tuple[int, str]] = Counter()
    probes: Counter[tuple[str, int]] = Counter()
    done = asyncio.Event()
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        async with http.post(node.url + "/api/v1/actions", data=encode_submission([genesis.raw], single=True), headers=_MSGPACK) as r:
            assert r.status == 200, await r.text()

        async def lane(chain: list[Action]) -> None:
            for a in chain:
                async with http.post(node.url + "/api/v1/actions", data=encode_submission([a.raw], single=True), headers=_MSGPACK) as r:
                    body = await r.json()
                    posts[(r.status, body["results"][0]["status"] if r.status == 200 else body["error"])] += 1

        async def poller(path: str) -> None:
            for _ in range(MAX_POLLS):
                if done.is_set():
                    return
                probes[(path, await get_status(http, node.url + path))] += 1

        polling = [asyncio.create_task(poller(p)) for p in ("/healthz", "/readyz") * (POLLERS // 2)]
        try:
            await asyncio.gather(*(lane(c) for c in member_chains))
        finally:
            done.set()
            await asyncio.gather(*polling)
    assert posts == Counter({(200, "accepted"): POSTS}), (posts, probes)
    assert set(probes) == {("/healthz", 200), ("/readyz", 200)}, probes
    assert sum(probes.values()) >= POLLERS, probes  # the pollers did run during the burst


_MSGPACK = {"Content-Type": "application/msgpack", "Accept": "application/json"}


# ---- 3. idle sockets and slowloris against a low open-file limit -----------------------------------

NOFILE = 1024
IDLE_SOCKETS = 1100
SLOWLORIS = 10
HEALTH_CHECKS = 20
HEADER_TIMEOUT = 5.0  # seconds: idle sockets outlive their opening; slowloris is closed within the test


async def _open_idle(n: int, port: int) -> list[socket.socket]:
    """``n`` connected sockets that never send a byte, opened 100 at a time (each connect bounded)."""
    loop = asyncio.get_running_loop()

    async def one() -> socket.socket | None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(s, (HOST, port)), 5)
        except (OSError, TimeoutError):
            s.close()
            return None
        return s

    out: list[socket.socket] = []
    for start in range(0, n, 100):
        out += [s for s in await asyncio.gather(*(one() for _ in range(min(100, n - start)))) if s is not None]
    return out


async def _slowloris(port: int, stop: asyncio.Event) -> str:
    """Send a request head one byte a second; return how it ended ("closed" by the server)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    try:
        for byte in head:  # bounded by the head's length, and by the server closing us
            if stop.is_set():
                return "still open"
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    return "closed"
            except TimeoutError:
                continue
        return "head sent"
    except (ConnectionError, OSError):
        return "closed"
    finally:
        writer.close()


async def test_idle_and_slowloris_sockets_do_not_stop_healthz(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_SOCKETS + 200:
        pytest.skip(f"this test process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the sockets
    node = new_node(tmp_path, nofile=NOFILE, header_timeout=HEADER_TIMEOUT)
    nodes.append(node)
    sockets: list[socket.socket] = []
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(node.start)
        assert node.proc is not None
        slow = [asyncio.create_task(_slowloris(node.port, stop)) for _ in range(SLOWLORIS)]
        sockets = await _open_idle(IDLE_SOCKETS, node.port)
        assert len(sockets) >= NOFILE, f"only {len(sockets)} sockets connected"
        statuses: list[int] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), connector=aiohttp.TCPConnector(force_close=True)) as http:
            for _ in range(HEALTH_CHECKS):
                statuses.append(await get_status(http, node.url + "/healthz"))
            ended = await asyncio.wait_for(asyncio.gather(*slow), 30)
            metrics = await _text(http, node.url + "/metrics")
        closed = [line for line in metrics.splitlines() if line.startswith("coopnet_http_")]
        assert statuses == [200] * HEALTH_CHECKS, closed
        assert ended == ["closed"] * SLOWLORIS, ended
        # Past the cap (the open-file limit less a reserve) the longest idle made way for newcomers;
        # each slowloris client was closed, evicted as idle or at its header timeout.
        evicted = _metric(metrics, 'coopnet_http_connections_closed_total{reason="evicted"}')
        timed_out = _metric(metrics, 'coopnet_http_connections_closed_total{reason="header_timeout"}')
        assert evicted >= IDLE_SOCKETS - NOFILE and evicted + timed_out >= IDLE_SOCKETS + SLOWLORIS - NOFILE, closed
        assert node.proc.poll() is None, "the node died"
    finally:
        stop.set()
        for s in sockets:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    text = log_text(node)
    assert "Traceback" not in text, text[-3000:]
    assert text.count("Too many open files") <= 2, text[-3000:]
    assert len(text.splitlines()) < 50, text[-3000:]


async def _text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        return await r.text()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


# ---- 4. upload memory -----------------------------------------------------------------------------

UPLOADS = 40
UPLOAD_BYTES = 8 * MIB - 4096  # just under max_request_bytes (8 MiB)
PEAK_RSS_LIMIT = 300 * 1000 * 1000
RETAINED_LIMIT = 48 * MIB  # above the idle node's RSS, once the uploads are answered
BUSY_RETRIES = 200  # per upload: 503 busy answers it honours (Retry-After) before giving up


def _uploads(seed: int) -> list[tuple[str, bytes]]:
    """Bodies of about UPLOAD_BYTES each, four kinds: msgpack of 2,000 junk actions; JSON of a
    million tiny items (past the batch limit); JSON of 2,000 base64 junk actions; one 8 MiB string."""
    rng = random.Random(seed)
    junk = rng.randbytes(4096)
    out: list[tuple[str, bytes]] = []
    for i in range(UPLOADS):
        kind = i % 4
        if kind == 0:
            item = UPLOAD_BYTES // 2000 - 8
            body = msgpack.packb({"actions": [junk[:item] for _ in range(2000)]}, use_bin_type=True)
            out.append(("application/msgpack", body))
        elif kind == 1:
            n = (UPLOAD_BYTES - 20) // 7
            out.append(("application/json", b'{"actions": [' + b",".join([b'"AAAA"'] * n) + b"]}"))
        elif kind == 2:
            item = base64.b64encode(junk[: (UPLOAD_BYTES // 2000 - 8) * 3 // 4])
            out.append(("application/json", json.dumps({"actions": [item.decode()] * 2000}).encode()))
        else:
            blob = base64.b64encode(rng.randbytes((UPLOAD_BYTES - 20) * 3 // 4)).decode()
            out.append(("application/json", json.dumps({"action": blob}).encode()))
        assert len(out[-1][1]) <= 8 * MIB, (kind, len(out[-1][1]))
    return out


async def test_concurrent_large_uploads_keep_memory_bounded(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    node = new_node(tmp_path)
    nodes.append(node)
    await asyncio.to_thread(node.start)
    assert node.proc is not None
    pid = node.proc.pid
    idle_rss = proc_status(pid, "VmRSS")
    bodies = _uploads(seed=4)
    answers: Counter[int] = Counter()
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT, connector=aiohttp.TCPConnector(limit=UPLOADS)) as http:

        async def upload(ctype: str, body: bytes) -> None:
            for _ in range(BUSY_RETRIES):
                async with http.post(node.url + "/api/v1/actions", data=body, headers={"Content-Type": ctype}) as r:
                    doc = await r.json()
                    assert set(doc) >= ({"results"} if r.status == 200 else {"error", "message"}), doc
                    if r.status == 503 and doc["error"] == "busy":
                        await asyncio.sleep(float(r.headers["Retry-After"]) / 10)  # a tenth: keep the pressure on
                        continue
                    answers[r.status] += 1
                    return
            answers[503] += 1

        await asyncio.gather(*(upload(c, b) for c, b in bodies))
        del bodies
        peak = proc_status(pid, "VmHWM")
        # It serves afterwards: a valid action is stored.
        genesis, _ = chains(0, 0, seed=900)
        async with http.post(node.url + "/api/v1/actions", data=encode_submission([genesis.raw], single=True), headers=_MSGPACK) as r:
            assert r.status == 200 and (await r.json())["results"][0]["status"] == "accepted"

        async def healthy() -> bool:
            return await get_status(http, node.url + "/readyz") == 200

        await wait_until(healthy, within=10, what="readyz")

        async def given_back() -> bool:  # nothing kept: the bodies' memory goes back to the system
            return proc_status(pid, "VmRSS") < idle_rss + RETAINED_LIMIT

        await wait_until(given_back, within=10, what=f"RSS back under {(idle_rss + RETAINED_LIMIT) / MIB:.0f} MiB")
    assert sum(answers.values()) == UPLOADS and not any(s >= 500 for s in answers), answers
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / MIB:.0f} MiB; answers {answers}"
    text = log_text(node)
    assert "Traceback" not in text, text[-3000:]
