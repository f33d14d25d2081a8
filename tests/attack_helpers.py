"""Three real nodes for the governance tests (tests/test_governance_nodes.py, tests/test_governance_attacks.py).

``Net`` is three in-process nodes (real aiohttp servers on 127.0.0.1, real SQLite files in a temp
dir) that reconcile every 0.3 s and expose the partition fault hook. ``Member`` signs its next
action with the deps and stamp a test (or an attacker) chooses. ``Net.deliver`` posts one list of
signed actions in a chosen *delivery order*: ``forward`` (causal order, round-robin over the
nodes), ``reversed`` (last first, round-robin), or ``partition`` (nodes {0, 1} and {2} cut apart,
each side given its own actions, then healed), so a test can show that the outcome does not
depend on who heard what first. ``cli`` runs the ``coopnet`` command against one of the nodes
without blocking the event loop that serves them.

Waits are conditions with deadlines (``wait_until``), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from node.config import Admission, Federation, PeerAddress
from node.keyfile import read_key_file, write_key_file
from node.node import Node, init_data_dir
from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.charter import DEFAULT_CHARTER
from protocol.ids import IdKind, format_id
from protocol.limits import DEFAULT_ACTION_LIMITS
from protocol.messages import encode_submission

from .fed_helpers import OPEN_ADMISSION, free_ports, wait_until

DEADLINE_S = 30.0
T0 = 1_700_000_000_000  # stamps of the signed histories: fixed, and in the past of every test run
SECOND = 1_000
MINUTE = 60_000
DAY = 86_400_000
TEN_YEARS_MS = 10 * 366 * DAY
BIG_SKEW_MS = 2 * TEN_YEARS_MS  # test nodes that accept stamps from the far future
COOPNET = Path(sys.executable).parent / "coopnet"
CLI_TIMEOUT_S = 60.0
ORDERS = ("forward", "reversed", "partition")
HELD = ("stored", "pending", "forked", "held")
MAX_DEPS = DEFAULT_ACTION_LIMITS.max_deps


def charter(
    *,
    policy: str = "open",
    sponsors: int = 1,
    quorum: int = 50,
    threshold: str = "majority",
    minutes: int = 5,
    offences: dict[str, Any] | None = None,
    equivocation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A charter whose every proposal type follows one rule with a short window (``minutes``)."""
    rule = {"minutes": minutes, "quorum": quorum, "threshold": threshold}
    return {
        "decisions": {"default": rule},
        "equivocation": equivocation if equivocation is not None else {"days": 30, "sanction": "suspend"},
        "membership": {"policy": policy, "sponsors": sponsors},
        "offences": offences if offences is not None else DEFAULT_CHARTER["offences"],
        "roles": {"member": ["propose", "vote", "tally", "sponsor", "*"]},
    }


class Member:
    """A member's key and chain position per co-op; signs its next action with chosen deps and stamp."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = SigningKey(hashlib.sha256(b"coopnet-attack-member:" + name.encode()).digest())
        self.heads: dict[bytes, tuple[int, bytes | None]] = {}
        self.rest: list[Action] = []

    def __repr__(self) -> str:
        return f"Member({self.name})"

    @property
    def pk(self) -> bytes:
        return self.key.public_key

    @property
    def id(self) -> str:
        return format_id(IdKind.MEMBER, self.key.public_key)

    def found(self, name: str, charter_: dict[str, Any] | None, founders: Sequence[Member], ts: int = T0) -> Action:
        body: dict[str, Any] = {"name": name}
        if charter_ is not None:
            body["charter"] = charter_
        if founders:
            body["founders"] = [f.pk for f in founders]
        g = sign_genesis(self.key, ts=ts, body=body)
        self.heads[g.id] = (1, g.id)
        return g

    def act(self, coop: bytes, kind: str, body: Any, deps: Iterable[Action] = (), ts: int = T0) -> Action:
        seq, prev = self.heads.get(coop, (0, None))
        a = sign_action(
            self.key, coop=coop, seq=seq + 1, prev=prev, deps=sorted({d.id for d in deps} - {prev}), ts=ts, kind=kind, body=body
        )
        self.heads[coop] = (seq + 1, a.id)
        return a

    def see(self, coop: bytes, actions: Sequence[Action], ts: int = T0) -> list[Action]:
        """``member.seen`` actions naming ``actions`` 32 at a time (all but the last chunk), so that
        this member's next action, naming the rest as deps, has seen them all (as the CLI does);
        returns the seen actions and leaves the rest to name in ``self.rest``."""
        out = []
        rest = list(actions)
        while len(rest) > MAX_DEPS:
            out.append(self.act(coop, "member.seen", {}, rest[:MAX_DEPS], ts))
            rest = rest[MAX_DEPS:]
        self.rest = rest
        return out

    def fork(self, coop: bytes, kind: str, bodies: Sequence[Any], deps: Iterable[Action] = (), ts: int = T0) -> list[Action]:
        """Two (or more) different actions at this member's next seq: an equivocation. The chain
        goes on from the one with the smallest id (the one every node keeps); returns them
        sorted by id, so ``[0]`` is kept and the others are displaced."""
        seq, prev = self.heads.get(coop, (0, None))
        ids = sorted({d.id for d in deps} - {prev})
        out = sorted(
            (sign_action(self.key, coop=coop, seq=seq + 1, prev=prev, deps=ids, ts=ts, kind=kind, body=b) for b in bodies),
            key=lambda a: a.id,
        )
        self.heads[coop] = (seq + 1, out[0].id)
        return out

    def follow(self, coop: bytes, head: Action) -> None:
        """Go on from ``head`` (one of the forks) instead of the kept one."""
        self.heads[coop] = (head.seq, head.id)

    # governance shorthands

    def note(self, coop: bytes, deps: Iterable[Action] = (), ts: int = T0, kind: str = "ride.offer", **body: Any) -> Action:
        return self.act(coop, kind, body, deps, ts)

    def apply(self, coop: bytes, deps: Iterable[Action], ts: int = T0) -> Action:
        return self.act(coop, "member.apply", {}, deps, ts)

    def open(self, coop: bytes, ptype: str, payload: dict[str, Any], deps: Iterable[Action], ts: int = T0, title: str = "") -> Action:
        return self.act(coop, "proposal.open", {"payload": payload, "title": title or f"{ptype} by {self.name}", "type": ptype}, deps, ts)

    def vote(self, coop: bytes, proposal: Action, choice: str, deps: Iterable[Action] = (), ts: int = T0) -> Action:
        return self.act(coop, "vote.cast", {"choice": choice, "proposal": proposal.id}, [proposal, *deps], ts)

    def tally(self, coop: bytes, proposal: Action, claim: str, deps: Iterable[Action] = (), ts: int = T0) -> Action:
        return self.act(coop, "proposal.tally", {"outcome": claim, "proposal": proposal.id}, [proposal, *deps], ts)

    def key_file(self, folder: Path) -> Path:
        path = folder / f"{self.name}.key"
        if not path.exists():
            write_key_file(path, "member", self.key.seed())
        assert read_key_file(path, "member").public_key == self.pk
        return path


def act_text(a: Action | bytes) -> str:
    return format_id(IdKind.ACTION, a.id if isinstance(a, Action) else a)


def coop_text(coop: bytes) -> str:
    return format_id(IdKind.COOP, coop)


@dataclass
class Delivery:
    """What a test posts, split for the partition order: ``prefix`` reaches every node before the
    cut; during it ``side_a`` goes to nodes 0 and 1 and ``side_b`` to node 2; ``suffix`` comes
    after the heal. The other orders post prefix + side_a + side_b + suffix as one list."""

    prefix: list[Action]
    side_a: list[Action] = dataclasses.field(default_factory=list)
    side_b: list[Action] = dataclasses.field(default_factory=list)
    suffix: list[Action] = dataclasses.field(default_factory=list)

    @property
    def all(self) -> list[Action]:
        return [*self.prefix, *self.side_a, *self.side_b, *self.suffix]


class Net:
    def __init__(self, nodes: list[Node], http: aiohttp.ClientSession, home: Path) -> None:
        self.nodes = nodes
        self.http = http
        self.home = home

    # ---- posting ---------------------------------------------------------------------------

    async def submit(self, i: int, *actions: Action, single: bool = False) -> tuple[int, dict[str, Any]]:
        """POST actions to node ``i``'s client API; the HTTP status and JSON answer, unchecked."""
        async with self.http.post(
            self.nodes[i].url + "/api/v1/actions",
            data=encode_submission([a.raw for a in actions], single=single),
            headers={"Content-Type": "application/msgpack", "Accept": "application/json"},
        ) as r:
            return r.status, await r.json()

    async def post(self, i: int, *actions: Action) -> list[dict[str, Any]]:
        """POST and assert every action was taken (accepted; pending its predecessor; held until its
        author's application arrives; a second fork of a seq is refused as a chain conflict but
        proves the equivocation)."""
        status, body = await self.submit(i, *actions)
        assert status == 200, (status, body)
        for r in body["results"]:
            assert r["status"] in ("accepted", "pending", "known", "held") or r.get("code") == "chain_conflict", body
        return list(body["results"])

    async def deliver(
        self,
        d: Delivery,
        order: str,
        *,
        unheld: Iterable[Action] = (),
        via: Sequence[int] = (0, 1, 2),
        batch: int = 1,
        within: float = DEADLINE_S,
    ) -> dict[bytes, dict[str, Any]]:
        """Post ``d`` in ``order`` (see the module docstring); return once every node holds it all
        (but ``unheld``); ``via``: the nodes the forward and reversed orders post to; ``batch``:
        actions per request (one node takes each batch, in the same order); ``within``: how long
        the nodes may take to hold it all. Returns what
        the node each action was posted to answered, by id.
        A co-op's genesis goes first, to every node: a node takes a co-op's actions only once it
        holds its genesis."""
        answers: dict[bytes, dict[str, Any]] = {}

        async def post(i: int, a: Action) -> None:
            answers[a.id] = (await self.post(i, a))[0]

        async def post_all(actions: list[Action], nodes: Sequence[int]) -> None:
            if batch == 1:
                for n, a in enumerate(actions):
                    await post(nodes[n % len(nodes)], a)
                return
            for n, k in enumerate(range(0, len(actions), batch)):
                chunk = actions[k : k + batch]
                for a, r in zip(chunk, await self.post(nodes[n % len(nodes)], *chunk), strict=True):
                    answers[a.id] = r

        geneses = [a for a in d.all if a.is_genesis]
        for a in geneses:
            for i in range(3):
                await post(i, a)
        d = Delivery(*([a for a in part if not a.is_genesis] for part in (d.prefix, d.side_a, d.side_b, d.suffix)))
        if order == "partition":
            await post_all(d.prefix, (0, 1, 2))
            await self.everywhere(*d.prefix, held=HELD)
            await self.partition([{0, 1}, {2}])
            try:
                await post_all(d.side_a, (0, 1))
                await post_all(d.side_b, (2,))
                await self.everywhere(*d.side_a, nodes=(0, 1), held=HELD)
                await self.everywhere(*d.side_b, nodes=(2,), held=HELD)
            finally:
                await self.partition([{0, 1, 2}])
            await post_all(d.suffix, (0, 1, 2))
        else:
            await post_all(d.all if order == "forward" else d.all[::-1], via)
        skip = {a.id for a in unheld}  # actions the test expects some nodes never to hold
        await self.everywhere(*geneses, *(a for a in d.all if a.id not in skip), held=HELD, within=within)
        return answers

    # ---- reading ---------------------------------------------------------------------------

    async def get(self, i: int, path: str, **query: Any) -> Any:
        async with self.http.get(self.nodes[i].url + path, params=query) as r:
            assert r.status == 200, (path, r.status, await r.text())
            return await r.json()

    async def status_of(self, i: int, action: Action) -> str | None:
        async with self.http.get(f"{self.nodes[i].url}/api/v1/actions/{act_text(action)}") as r:
            return str((await r.json())["status"]) if r.status == 200 else None

    async def everywhere(
        self, *actions: Action, nodes: Sequence[int] = (0, 1, 2), held: Sequence[str] = ("stored",), within: float = DEADLINE_S
    ) -> None:
        missing = [(i, a) for i in nodes for a in actions]

        async def check() -> bool:
            while missing:  # an action held once stays held: look only at what was missing
                i, a = missing[-1]
                if await self.status_of(i, a) not in held:
                    return False
                missing.pop()
            return True

        async def explain() -> str:
            found = [f"{a.kind} {act_text(a)[:16]} on node {i} ({await self.status_of(i, a)})" for i, a in missing]
            return "missing: " + ", ".join(found)

        await wait_until(check, within=within, what=f"{len(actions)} actions on nodes {tuple(nodes)}", explain=explain)

    def coop_path(self, coop: bytes, rest: str = "") -> str:
        return f"/api/v1/coops/{coop_text(coop)}{rest}"

    async def state(self, i: int, coop: bytes) -> dict[str, Any]:
        return dict(await self.get(i, self.coop_path(coop, "/state")))

    async def result(self, i: int, coop: bytes, action: Action) -> dict[str, Any]:
        return dict(await self.get(i, self.coop_path(coop, f"/results/{act_text(action)}")))

    async def results(self, coop: bytes, *actions: Action) -> list[tuple[str, str | None]]:
        """Each action's (result, reason), asserting that the three nodes say the same."""
        out = []
        for a in actions:
            seen = [await self.result(i, coop, a) for i in range(3)]
            pairs = {(r["result"], r["reason"]) for r in seen}
            assert len(pairs) == 1, (a.kind, seen)
            out.append(pairs.pop())
        return out

    async def one(self, coop: bytes, action: Action) -> tuple[str, str | None]:
        return (await self.results(coop, action))[0]

    async def proposal(self, i: int, coop: bytes, p: Action) -> dict[str, Any]:
        return dict(await self.get(i, self.coop_path(coop, f"/proposals/{act_text(p)}")))

    async def members(self, i: int, coop: bytes) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        after: str | None = None
        for _ in range(100):
            page = await self.get(i, self.coop_path(coop, "/members"), limit=1000, **({"after": after} if after else {}))
            out.update({m["member"]: m for m in page["members"]})
            after = page["next"]
            if after is None:
                return out
        raise AssertionError("members pagination did not end")

    async def sanctions(self, i: int, coop: bytes) -> list[dict[str, Any]]:
        return list((await self.get(i, self.coop_path(coop, "/sanctions")))["sanctions"])

    async def preview(self, i: int, coop: bytes, p: Action, parents: Iterable[Action | bytes]) -> dict[str, Any]:
        deps = ",".join(act_text(x) for x in parents)
        return dict(await self.get(i, self.coop_path(coop, f"/proposals/{act_text(p)}/preview"), deps=deps))

    async def action(self, i: int, aid: str) -> dict[str, Any]:
        return dict(await self.get(i, f"/api/v1/actions/{aid}"))

    async def height(self, i: int, coop: bytes) -> int:
        return int((await self.state(i, coop))["height"])

    async def same_state(
        self,
        coop: bytes,
        nodes: Sequence[int] = (0, 1, 2),
        *,
        proofs: int | None = None,
        deferred: int = 0,
        within: float = DEADLINE_S,
    ) -> str:
        """Wait until the nodes hold the same chains (and ``proofs`` proofs, when given) for ``coop``,
        have ``deferred`` actions of it deferred, and report one state hash; return it."""
        hashes: list[str] = []
        last: list[Any] = []

        async def check() -> bool:
            nonlocal hashes, last
            chains = [await self.get(i, self.coop_path(coop, "/chains")) for i in nodes]
            states = [await self.state(i, coop) for i in nodes]
            last = [(s["state_hash"][:12], s["height"], s["deferred"]) for s in states]
            if any(c != chains[0] for c in chains) or any(s["deferred"] != deferred for s in states):
                return False
            if proofs is not None:
                found = [len((await self.get(i, self.coop_path(coop, "/proofs")))["proofs"]) for i in nodes]
                if any(n != proofs for n in found):
                    return False
            hashes = [s["state_hash"] for s in states]
            return len(set(hashes)) == 1

        async def explain() -> str:
            return f"(hash, height, deferred) per node: {last}"

        await wait_until(check, within=within, what=f"nodes {tuple(nodes)} to agree on co-op {coop_text(coop)[:16]}", explain=explain)
        return hashes[0]

    # ---- faults ----------------------------------------------------------------------------

    async def partition(self, groups: list[set[int]]) -> None:
        for i, node in enumerate(self.nodes):
            block = [format_id(IdKind.NODE, self.nodes[j].node_id) for g in groups if i not in g for j in g]
            async with self.http.post(node.url + "/_test/partition", json={"block": block}) as r:
                assert r.status == 200

    @asynccontextmanager
    async def cut_off(self, i: int) -> AsyncIterator[None]:
        """Node ``i`` alone on one side of a partition for the duration; healed on the way out."""
        await self.partition([{i}, {0, 1, 2} - {i}])
        try:
            yield
        finally:
            await self.partition([{0, 1, 2}])

    @asynccontextmanager
    async def cli_node(self, order: str) -> AsyncIterator[int]:
        """The node a command-line test talks to in ``order``: node 0 (forward), node 1
        (reversed), or node 2 cut off from the others until the block ends (partition)."""
        if order != "partition":
            yield 0 if order == "forward" else 1
            return
        async with self.cut_off(2):
            yield 2

    # ---- the command line ------------------------------------------------------------------

    async def cli(self, i: int, *args: str) -> tuple[int, str, str]:
        """Run ``coopnet --node <node i> ARGS`` as a subprocess (the event loop keeps serving the
        nodes meanwhile); its exit status, stdout and stderr."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "LANG": "C.UTF-8", "COLUMNS": "250"}
        proc = await asyncio.create_subprocess_exec(
            str(COOPNET),
            "--node",
            self.nodes[i].url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(self.home),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def cli_json(self, i: int, *args: str, exit_code: int = 0) -> dict[str, Any]:
        """``coopnet --json ARGS``: assert the exit status and that stdout is exactly one JSON document."""
        code, out, err = await self.cli(i, "--json", *args)
        assert code == exit_code, (args, code, out, err)
        doc = json.loads(out)  # the whole of stdout, or this raises
        assert isinstance(doc, dict), out
        return doc


@asynccontextmanager
async def three_nodes(
    root: Path, *, skew_ms: int | None = BIG_SKEW_MS, admission: Sequence[Admission] = (OPEN_ADMISSION,) * 3
) -> AsyncIterator[Net]:
    """Three nodes that list each other as peers; ``skew_ms``: their ``limits.max_clock_skew_ms``
    (None: the default); ``admission``: each node's ``[admission]`` (by default every author is
    stored, strangers included, so that the fold meets them, and no client is rate limited)."""
    ports = free_ports(3)
    cfgs = [init_data_dir(root / f"n{i}", port=ports[i]) for i in range(3)]
    ids = [format_id(IdKind.NODE, read_key_file(c.key_path, "node").public_key) for c in cfgs]
    peers = tuple(PeerAddress(f"http://127.0.0.1:{ports[i]}", ids[i]) for i in range(3))
    nodes: list[Node] = []
    try:
        for i, c in enumerate(cfgs):
            fed = Federation(name="gov", peers=peers[:i] + peers[i + 1 :], anti_entropy_interval=0.3, request_timeout=3.0, fault_hooks=True)
            limits = dataclasses.replace(c.limits, verify_workers=0)
            if skew_ms is not None:
                limits = dataclasses.replace(limits, max_clock_skew_ms=skew_ms)
            nodes.append(await Node.start(dataclasses.replace(c, federation=fed, limits=limits, admission=admission[i])))
        home = root / "home"
        home.mkdir()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            yield Net(nodes, http, home)
    finally:
        for n in reversed(nodes):
            await asyncio.wait_for(n.stop(), 15.0)


def wall_ms() -> int:
    """The real clock, for the one kind of test that must stamp relative to it (the far future)."""
    return time.time_ns() // 1_000_000
