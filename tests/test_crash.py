"""Crash safety with a real node process.

The rule under test: an action the node acknowledged (a 2xx answer whose result says accepted,
known or pending) is never lost, neither by ``kill -9`` nor by a restart.

Each scenario starts ``coopnet run`` in its own process group, posts pre-signed batches and
single actions with several requests in flight, and SIGKILLs the whole group (the node and its
spawned validation workers) at a chosen moment: early, mid-run, or while a large batch is being
validated. The node is then restarted on the same data directory and checked: every acknowledged
action is still there, SQLite's integrity check passes, and each chain head matches the author's
stored actions. Finally every action is posted again (acknowledged ones must answer ``known``)
and everything must end up stored, including after a clean SIGTERM stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.ids import IdKind, format_id
from protocol.messages import encode_submission

pytestmark = pytest.mark.slow
OPEN_RATES = ("read_rate", "write_rate", "author_rate", "join_rate", "apply_rate")

COOPNET = Path(sys.executable).parent / "coopnet"
HOST = "127.0.0.1"
MEMBERS = 50  # member 0 founds the co-op
ACTIONS_PER_MEMBER = 50  # 2500 actions besides the genesis
BASE_TS = 1_700_000_000_000
CONCURRENCY = 4  # requests in flight at once
LARGE_BATCH = 1500  # well above the inline-validation threshold (32): validated by worker processes
PAGE = 25  # page size when listing an author's actions, so pagination is exercised
START_TIMEOUT = 30.0  # seconds for a node to answer /healthz
STOP_TIMEOUT = 20.0  # seconds for a node (or its process group) to go away
REQUEST_TIMEOUT = 30.0
ACK_STATUSES = ("accepted", "known", "pending")
JSON_HEADERS = {"Content-Type": "application/msgpack", "Accept": "application/json"}
# Batch sizes cycled through when cutting the actions into requests; 1 means a single-action post.
BATCH_CYCLE = (50, 1, 120, 1, 75, 200, 1, 64, 33, 1, 150)


# ---- pre-signed actions --------------------------------------------------------------------------


def _act_id(a: Action) -> str:
    return format_id(IdKind.ACTION, a.id)


@dataclass(frozen=True)
class Corpus:
    genesis: Action
    coop: str  # coop_... text id
    authors: list[str]  # mem_... text ids, founder first
    chains: dict[str, list[Action]]  # author -> that author's actions in seq order (founder: genesis first)
    interleaved: list[Action]  # every non-genesis action, seq-major across authors
    author_of: dict[str, str]  # act_... -> mem_...

    @property
    def total(self) -> int:
        return len(self.interleaved) + 1


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    keys = [SigningKey(hashlib.sha256(f"coopnet crash test member {i}".encode()).digest()) for i in range(MEMBERS)]
    genesis = sign_genesis(keys[0], ts=BASE_TS, body={"name": "Crash test co-op", "purpose": "kill -9 safety"})
    authors = [format_id(IdKind.MEMBER, k.public_key) for k in keys]
    chains: dict[str, list[Action]] = {m: [] for m in authors}
    chains[authors[0]].append(genesis)
    interleaved: list[Action] = []
    for n in range(ACTIONS_PER_MEMBER):
        for i, key in enumerate(keys):
            chain = chains[authors[i]]
            prev = chain[-1].id if chain else None
            a = sign_action(
                key,
                coop=genesis.id,
                seq=len(chain) + 1,
                prev=prev,
                ts=BASE_TS + 1 + n,
                kind="test.note",
                body={"member": i, "n": n, "text": f"note {n} of member {i}"},
            )
            chain.append(a)
            interleaved.append(a)
    author_of = {_act_id(a): m for m, chain in chains.items() for a in chain}
    return Corpus(genesis, format_id(IdKind.COOP, genesis.id), authors, chains, interleaved, author_of)


@dataclass(frozen=True)
class Post:
    index: int
    ids: tuple[str, ...]
    body: bytes
    single: bool


def make_posts(actions: list[Action], prefix: tuple[int, ...] = ()) -> list[Post]:
    """Cut ``actions`` (in order) into requests: first the sizes in ``prefix``, then BATCH_CYCLE over and over."""
    posts: list[Post] = []
    sizes = [*prefix, *BATCH_CYCLE * (len(actions) // sum(BATCH_CYCLE) + 1)]
    i = 0
    for size in sizes:
        if i >= len(actions):
            break
        chunk = actions[i : i + size]
        i += len(chunk)
        single = len(chunk) == 1
        body = encode_submission([a.raw for a in chunk], single=single)
        posts.append(Post(len(posts), tuple(_act_id(a) for a in chunk), body, single))
    assert i == len(actions)
    return posts


# ---- the node process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _child_env() -> dict[str, str]:
    # COOPNET_PORT / COOPNET_DATA_DIR from the caller's environment would override the config file.
    return {k: v for k, v in os.environ.items() if not k.startswith("COOPNET_")}


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether anything (zombies included) is left
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    alive: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields_ = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = fields_[0], int(fields_[2])
        if pgrp == pgid and state not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


class NodeProcess:
    """``coopnet run`` in its own session (so its process group holds it and its workers)."""

    def __init__(self, data_dir: Path, port: int, **popen: Any) -> None:
        self.data_dir = data_dir
        self.popen = popen  # Popen arguments that replace the defaults (a preexec_fn; a terminal as stdio)
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def init(self) -> None:
        out = subprocess.run(
            [str(COOPNET), "init", "--data-dir", str(self.data_dir), "--listen", f"{HOST}:{self.port}"],
            env=_child_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, f"coopnet init failed ({out.returncode}): {out.stdout!r} {out.stderr!r}"
        # The load comes from one address, and its members never apply: take every author, no rate limits.
        config = self.data_dir / "coopnet.toml"
        config.write_text(
            config.read_text().replace(
                "[admission]\n", '[admission]\nunknown_authors = "store"\n' + "".join(f"{k} = 0.0\n" for k in OPEN_RATES)
            )
        )

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def start(self) -> None:
        assert self.proc is None, "node already running"
        self.starts += 1
        self._log = self.log_path.open("ab")
        self._log.write(f"==== start {self.starts} ====\n".encode())
        self._log.flush()
        defaults: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": self._log, "stderr": subprocess.STDOUT}
        self.proc = subprocess.Popen(
            [str(COOPNET), "run", "--data-dir", str(self.data_dir)],
            env=_child_env(),
            start_new_session=True,
            **{**defaults, **self.popen},
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.kill9()  # whatever it left behind
                self.wait_gone()
                pytest.fail(f"node exited with {rc} during start {self.starts}; log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                self.kill9()
                self.wait_gone()
                pytest.fail(f"node did not answer /healthz within {START_TIMEOUT}s (start {self.starts}); log:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL the node's whole process group (node, validation workers, resource tracker)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def wait_gone(self) -> None:
        """Reap the node and wait until nothing of its process group is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        finally:
            self.proc = None
            if self._log is not None:
                self._log.close()
                self._log = None
        deadline = time.monotonic() + STOP_TIMEOUT
        while left := _group_alive(pgid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                pytest.fail(f"processes {left} of the node's group outlived it")
            time.sleep(0.02)

    def terminate(self) -> int:
        """A clean stop (SIGTERM to the node itself); returns its exit status."""
        assert self.proc is not None
        proc = self.proc
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise
        finally:
            self.wait_gone()
        return rc

    def cleanup(self) -> None:
        if self.proc is not None:
            self.kill9()
            with contextlib.suppress(Exception):
                self.wait_gone()


# ---- the posting client --------------------------------------------------------------------------


@dataclass
class Run:
    """What one posting run saw. ``acked`` maps an action id to the status of its 2xx answer."""

    acked: dict[str, str] = field(default_factory=dict)
    posts_acked: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)
    dispatched: set[int] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)
    killed: bool = False
    in_flight_at_kill: frozenset[int] = frozenset()
    errors_after_kill: int = 0


Trigger = Callable[[Run, Post], bool]


async def post_schedule(url: str, posts: list[Post], *, trigger: Trigger | None = None, kill: Callable[[], None] | None = None) -> Run:
    """Post ``posts`` with CONCURRENCY requests in flight; after each 2xx, ``trigger`` may fire ``kill``."""
    run = Run()
    queue: Iterator[Post] = iter(posts)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not run.killed:
            post = next(queue, None)
            if post is None:
                return
            run.dispatched.add(post.index)
            run.in_flight.add(post.index)
            try:
                async with session.post(url + "/api/v1/actions", data=post.body, headers=JSON_HEADERS) as resp:
                    status = resp.status
                    payload: dict[str, Any] = await resp.json()
            except (TimeoutError, aiohttp.ClientError, ValueError):
                if run.killed:
                    run.errors_after_kill += 1
                    return
                raise
            finally:
                run.in_flight.discard(post.index)
            if not 200 <= status < 300:
                run.unexpected.append(f"post {post.index}: HTTP {status}: {payload}")
                continue
            results = payload["results"]
            assert [r["id"] for r in results] == list(post.ids), f"post {post.index}: results out of order"
            for r in results:
                if r["status"] in ACK_STATUSES:
                    run.acked[r["id"]] = r["status"]
                else:
                    run.unexpected.append(f"post {post.index}: {r}")
            run.posts_acked.add(post.index)
            if trigger is not None and kill is not None and not run.killed and trigger(run, post):
                run.killed = True
                run.in_flight_at_kill = frozenset(run.in_flight)
                kill()

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return run


# ---- reading the node back -----------------------------------------------------------------------


async def get_statuses(url: str, ids: list[str]) -> dict[str, str]:
    """GET /api/v1/actions/{id} for each id: its status, or 'missing' on 404."""
    out: dict[str, str] = {}
    sem = asyncio.Semaphore(8)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def one(session: aiohttp.ClientSession, action_id: str) -> None:
        async with sem, session.get(f"{url}/api/v1/actions/{action_id}") as resp:
            if resp.status == 404:
                out[action_id] = "missing"
                return
            assert resp.status == 200, f"GET {action_id}: HTTP {resp.status}: {await resp.text()}"
            view = await resp.json()
            assert view["id"] == action_id
            out[action_id] = view["status"]

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one(session, i) for i in ids))
    return out


@dataclass(frozen=True)
class StoreView:
    stored: dict[str, list[tuple[int, str]]]  # author -> (seq, id) of the stored actions, by position
    heads: dict[str, tuple[int, str, int]]  # author -> (head seq, head id, pending count)
    coop_actions: int
    counts: dict[str, int]


async def read_store(url: str, corpus: Corpus) -> StoreView:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    base = f"{url}/api/v1/coops/{corpus.coop}"
    stored: dict[str, list[tuple[int, str]]] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def get(path: str, **query: str | int) -> dict[str, Any]:
            async with session.get(path, params={k: str(v) for k, v in query.items()}) as resp:
                assert resp.status == 200, f"GET {path} {query}: HTTP {resp.status}: {await resp.text()}"
                body: dict[str, Any] = await resp.json()
                return body

        async def list_author(author: str) -> None:
            rows: list[tuple[int, str]] = []
            after = "0"
            for _ in range(len(corpus.chains[author]) // PAGE + 2):  # bounded: one page more than needed
                page = await get(base + "/actions", author=author, limit=PAGE, after=after)
                for v in page["actions"]:
                    assert v["author"] == author and v["status"] == "stored", v
                    rows.append((v["seq"], v["id"]))
                if page["next"] is None:
                    break
                after = page["next"]
            else:
                pytest.fail(f"pagination of {author}'s actions did not end")
            stored[author] = rows

        for i in range(0, len(corpus.authors), 8):
            await asyncio.gather(*(list_author(a) for a in corpus.authors[i : i + 8]))
        chains = await get(base + "/chains")
        heads = {c["author"]: (c["seq"], c["head"], c["pending"]) for c in chains["chains"]}
        coop = await get(base)
        counts = (await get(url + "/api/v1/node"))["counts"]
    return StoreView(stored, heads, coop["actions"], counts)


def check_chains(view: StoreView, corpus: Corpus) -> int:
    """Each author's stored actions are exactly our seq 1..head, and the chain head says so."""
    total = 0
    for author in corpus.authors:
        rows = view.stored[author]
        expected = [(a.seq, _act_id(a)) for a in corpus.chains[author][: len(rows)]]
        assert sorted(rows) == expected, f"{author}: stored actions are not seq 1..{len(rows)} of its chain"
        assert [s for s, _ in rows] == sorted(s for s, _ in rows), f"{author}: stored out of chain order"
        if rows:
            head_seq, head_id, _pending = view.heads.get(author, (0, "", 0))
            assert (head_seq, head_id) == expected[-1], f"{author}: chain head {head_seq} does not match its {len(rows)} stored actions"
        else:
            assert author not in view.heads, f"{author}: a chain head but no stored action"
        total += len(rows)
    assert set(view.heads) <= set(corpus.authors)
    assert view.coop_actions == total, f"co-op counts {view.coop_actions} actions, {total} are listed"
    assert view.counts["actions"] == total
    return total


def sqlite_facts(db: Path) -> tuple[list[str], int, int]:
    """(PRAGMA integrity_check rows, stored actions, pending actions), read with a separate connection."""
    con = sqlite3.connect(db, timeout=10)
    try:
        integrity = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        actions = con.execute("SELECT COUNT(*) FROM actions").fetchone()[0]
        pending = con.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
    finally:
        con.close()
    return integrity, int(actions), int(pending)


# ---- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    prefix: tuple[int, ...]  # batch sizes before BATCH_CYCLE takes over
    trigger: Callable[[Corpus, list[Post]], Trigger]


def _early(corpus: Corpus, posts: list[Post]) -> Trigger:
    return lambda run, post: len(run.posts_acked) >= 1


def _mid(corpus: Corpus, posts: list[Post]) -> Trigger:
    return lambda run, post: len(run.acked) >= corpus.total // 2


def _during_large(corpus: Corpus, posts: list[Post]) -> Trigger:
    large = next(p.index for p in posts if len(p.ids) == LARGE_BATCH)
    # The first answer to a request sent after the large batch: singles are validated inline and
    # commit quickly, so the large batch is then most likely still in the worker processes.
    return lambda run, post: large in run.dispatched and post.index > large


SCENARIOS = [
    Scenario("early", (), _early),
    Scenario("mid", (), _mid),
    # Some ordinary batches first, so the worker pool is warm and the store not empty.
    Scenario("large_batch", (60, 1, 100, 200, 1, 150, 120, LARGE_BATCH, *(1,) * 12), _during_large),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_kill9_loses_no_acknowledged_action(scenario: Scenario, corpus: Corpus, tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "node", free_port())
    node.init()
    db = node.data_dir / "coopnet.sqlite3"
    genesis_post = make_posts([corpus.genesis])
    posts = make_posts(corpus.interleaved, scenario.prefix)
    assert any(len(p.ids) > 32 for p in posts) and any(p.single for p in posts)
    try:
        # ---- phase 1: post until the trigger fires, then kill -9 the whole process group
        node.start()
        first = asyncio.run(post_schedule(node.url, genesis_post))
        assert first.acked == {_act_id(corpus.genesis): "accepted"}, first
        run = asyncio.run(post_schedule(node.url, posts, trigger=scenario.trigger(corpus, posts), kill=node.kill9))
        assert run.killed, f"the kill trigger never fired ({len(run.acked)} actions acknowledged)"
        node.wait_gone()
        assert not run.unexpected, run.unexpected[:5]
        assert run.in_flight_at_kill, "no request was in flight at the kill"
        acked = {_act_id(corpus.genesis): "accepted", **run.acked}
        assert len(acked) < corpus.total, "everything was acknowledged before the kill"
        print(
            f"{scenario.name}: killed with posts {sorted(run.in_flight_at_kill)} in flight; "
            f"{len(run.posts_acked)} posts / {len(acked)} actions acknowledged "
            f"({sum(s == 'pending' for s in acked.values())} pending); {run.errors_after_kill} requests failed"
        )

        # ---- restart on the same data dir: nothing acknowledged is missing, the file is sound
        node.start()
        statuses = asyncio.run(get_statuses(node.url, sorted(acked)))
        lost = [
            f"{i} acknowledged {s}, now {statuses[i]}"
            for i, s in sorted(acked.items())
            if statuses[i] not in (("stored",) if s == "accepted" else ("stored", "pending"))
        ]
        assert not lost, f"{len(lost)} acknowledged actions lost after kill -9 ({scenario.name}): {lost[:5]}"
        integrity, _, _ = sqlite_facts(db)
        assert integrity == ["ok"], integrity
        view = asyncio.run(read_store(node.url, corpus))
        stored_after_crash = check_chains(view, corpus)
        assert stored_after_crash >= sum(s == "accepted" for s in acked.values())
        for i, s in statuses.items():
            if s == "pending":  # held only while a predecessor is missing
                author = corpus.author_of[i]
                seq = next(a.seq for a in corpus.chains[author] if _act_id(a) == i)
                assert seq > len(view.stored[author]) + 1, f"{i} (seq {seq}) is pending above a head of {len(view.stored[author])}"

        # ---- resume: post everything again; what was acknowledged must answer known
        again = asyncio.run(post_schedule(node.url, make_posts([corpus.genesis, *corpus.interleaved], scenario.prefix)))
        assert not again.unexpected, again.unexpected[:5]
        assert len(again.acked) == corpus.total
        not_known = [f"{i}: {again.acked[i]}" for i in sorted(acked) if again.acked[i] != "known"]
        assert not not_known, f"acknowledged actions not known on re-post: {not_known[:5]}"
        view = asyncio.run(read_store(node.url, corpus))
        assert check_chains(view, corpus) == corpus.total
        assert view.counts["pending"] == 0 and all(p == 0 for _, _, p in view.heads.values())
        assert len(view.heads) == MEMBERS

        # ---- a clean stop keeps it all too
        rc = node.terminate()
        assert rc == 0, f"node exited with {rc} on SIGTERM; log:\n{node.log_tail()}"
        assert sqlite_facts(db) == (["ok"], corpus.total, 0)
    finally:
        node.cleanup()
