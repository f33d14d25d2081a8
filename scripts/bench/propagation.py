#!/usr/bin/env python3
"""Propagation benchmark: how fast an action reaches every node of a 10-node federation, and
how many bytes crossed the wire for each node it reached, beside the action's own size.

What it does, in order:

1. ``coopnet init`` ``--nodes`` data directories (ports chosen first, so every node's
   ``coopnet.toml`` lists its peers' URLs and node ids before any node starts): a closed
   federation, full mesh or random-k (made symmetric), ``fanout``, ``anti_entropy_interval``,
   ``verify_workers`` from the options. Starts them all (``coopnet run``), waits for /healthz and
   for no peer to be in backoff.
2. Founds a co-op on node 0 (its genesis) and waits until every node holds it.
3. Pre-signs ``--actions`` actions from ``--members`` members (bodies of 60-120 bytes, as in
   ingest.py). Each member has a home node (members spread evenly over the nodes, in random
   order); the actions go out round-robin over the members, so one member's successive actions
   are ``members / rate`` seconds apart.
4. Posts them at ``--rate`` actions/s, one action per request, each to its member's home node,
   on a fixed schedule (requests are not held back by slow answers; at most ``--inflight`` in
   flight). Every answer must be ``accepted``. The send time of each is recorded (wall clock, ms).
5. Waits until every node holds every action (polls /api/v1/node every 0.5 s), then reads each
   node's /metrics again: the peer bytes and requests of the whole window, from the first post to
   convergence (pushes, anti-entropy, fetches, announces: everything federation cost).
6. Measures the HTTP header bytes of one signed peer request and its reply, per kind, through a
   counting TCP relay (benchlib.http_overhead), since ``coopnet_gossip_bytes`` counts bodies only.
7. Stops the nodes and reads, from each node's SQLite file, the ``received_at`` of every action:
   the node's wall clock (the same clock as this script's: one machine) when the commit group
   that stored it began. Time to reach all nodes = the latest ``received_at`` over the nodes
   minus the send time. Resolution 1 ms; no polling during the run, so measuring costs nothing.
   ``received_at`` is taken before the group's fsync, so each figure is short of "durably stored
   everywhere" by one commit (the ack latency of step 4 includes it: compare).

Usage (from the repository root)::

    python scripts/bench/propagation.py                         # 10 nodes, 1500 actions at 50/s
    python scripts/bench/propagation.py --rate 100 --actions 2000 --json
    python scripts/bench/propagation.py --topology random-k --k 4

Only 127.0.0.1 is used. All nodes are stopped (SIGTERM, then SIGKILL of the process group after
a deadline) and the temporary directory removed, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import benchlib as bl
import ingest as ib
import msgpack

from protocol import decode_action, sign_genesis
from protocol.ids import IdKind, format_id, parse_id
from protocol.messages import FetchRequest, Head, PeerPush, encode_fetch_request, encode_push, encode_reconcile_request, encode_submission
from protocol.reconcile import HeadSet, Reconciliation

say = bl.say
BenchError = bl.BenchError
SETTLE_POLL_S = 0.5
PEER_KINDS = ("push", "reconcile", "fetch", "coops", "announce")


# ---- plan ------------------------------------------------------------------------------------------


@dataclass
class Planned:
    raw: bytes
    id: bytes
    member: int
    seq: int
    node: int


def topology(n: int, kind: str, k: int, rng: random.Random) -> list[list[int]]:
    """Peers of each node: everyone (full) or k drawn at random, made symmetric and connected."""
    if kind == "full":
        return [[j for j in range(n) if j != i] for i in range(n)]
    edges: set[tuple[int, int]] = set()
    for i in range(n):
        for j in rng.sample([j for j in range(n) if j != i], min(k, n - 1)):
            edges.add((min(i, j), max(i, j)))
    for i in range(n - 1):  # a path through all nodes keeps the graph connected whatever was drawn
        edges.add((i, i + 1))
    peers: list[list[int]] = [[] for _ in range(n)]
    for a, b in sorted(edges):
        peers[a].append(b)
        peers[b].append(a)
    return peers


def plan_actions(coop: bytes, actions: int, members: int, nodes: int, rng: random.Random) -> list[Planned]:
    lengths = ib.chain_lengths(actions, members)
    chains, _ = bl.presign(lengths, coop, 1, sys.stderr)
    home_order = list(range(members))
    rng.shuffle(home_order)
    home = {m: pos % nodes for pos, m in enumerate(home_order)}
    out: list[Planned] = []
    for k in range(actions):
        m, s = k % members, k // members
        raw = chains[m][s]
        out.append(Planned(raw, decode_action(raw, check_signature=False).id, m, s + 1, home[m]))
    return out


# ---- load --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    sent_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    lag_s: float = 0.0  # how far behind its schedule the last request was sent
    wall_s: float = 0.0


def now_ms() -> float:
    return time.time_ns() / 1e6


async def run_load(
    session: aiohttp.ClientSession, nodes: Sequence[bl.BenchNode], plan: Sequence[Planned], rate: float, inflight: int, out: TextIO
) -> LoadResult:
    res = LoadResult(sent_ms=[0.0] * len(plan), ack_ms=[0.0] * len(plan))
    sem = asyncio.Semaphore(inflight)
    progress = ib.Progress("posting", len(plan), out)
    errors: list[str] = []

    async def one(i: int, p: Planned) -> None:
        try:
            body = encode_submission([p.raw], single=True)
            res.sent_ms[i] = now_ms()
            async with session.post(nodes[p.node].url + "/api/v1/actions", data=body, headers=bl.MSGPACK_HEADERS) as r:
                data = await r.read()
                res.ack_ms[i] = now_ms()
                if r.status != 200:
                    errors.append(f"HTTP {r.status}: {data[:200]!r}")
                    return
            doc = msgpack.unpackb(data, raw=False)
            status = doc["results"][0]["status"]
            res.statuses[status] += 1
            if status != "accepted":
                errors.append(f"action {i} (member {p.member} seq {p.seq}) on node {p.node}: {doc['results'][0]}")
        except (aiohttp.ClientError, TimeoutError) as e:
            errors.append(f"action {i}: {type(e).__name__}: {e}")
        finally:
            sem.release()
            progress.advance(1)

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.1
    t0 = time.perf_counter()
    try:
        for i, p in enumerate(plan):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            res.lag_s = max(res.lag_s, -delay)
            await sem.acquire()
            tasks.append(asyncio.create_task(one(i, p)))
            if errors:
                break
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        progress.close()
    res.wall_s = time.perf_counter() - t0
    if errors:
        raise BenchError(f"{len(errors)} posts failed; first: {errors[0]}")
    return res


async def wait_converged(
    session: aiohttp.ClientSession, nodes: Sequence[bl.BenchNode], target: int, within: float, out: TextIO
) -> tuple[float, list[int]]:
    """Poll every node's action count until all hold ``target``; returns (seconds waited, counts)."""
    t = time.perf_counter()
    counts: list[int] = []
    for _ in range(int(within / SETTLE_POLL_S) + 1):
        bl.check_alive(nodes)
        counts = [c["actions"] for c in await asyncio.gather(*(bl.node_counts(session, n) for n in nodes))]
        if all(c >= target for c in counts):
            return time.perf_counter() - t, counts
        await asyncio.sleep(SETTLE_POLL_S)
    raise BenchError(f"not converged after {within:g} s: nodes hold {counts}, expected {target} each")


async def wait_no_backoff(session: aiohttp.ClientSession, nodes: Sequence[bl.BenchNode], within: float) -> None:
    deadline = time.monotonic() + within
    bad: list[str] = []
    while time.monotonic() < deadline:
        views = await asyncio.gather(*(bl.peers_view(session, n) for n in nodes))
        bad = [
            f"node {n.index}: {p['id'][:14]} {p['state']}"
            for n, v in zip(nodes, views, strict=True)
            for p in v
            if p["state"] in ("backoff", "refused")
        ]
        if not bad:
            return
        await asyncio.sleep(0.25)
    raise BenchError(f"peers still in backoff after {within:g} s: {bad[:5]}")


# ---- run ---------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, ns: bl.NodeSet, out: TextIO) -> dict[str, Any]:
    rng = random.Random(args.seed)
    settings = bl.NodeSettings(
        synchronous=args.synchronous,
        verify_workers=args.workers,
        fanout=args.fanout,
        anti_entropy_interval=args.interval,
        log_level="warning",
    )
    nodes = ns.init(args.nodes)
    peers = topology(args.nodes, args.topology, args.k, rng)
    for node, mine in zip(nodes, peers, strict=True):
        ns.configure(node, [nodes[j] for j in mine], settings)
    founder = ib.founder_key()
    genesis = sign_genesis(founder, ts=ib.TS0, body={"name": "Propagation benchmark", "about": "a steady load over a federation"})
    coop = genesis.id

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=args.inflight + 16)) as session:
        with bl.stage(
            out, f"1/6 starting {args.nodes} nodes ({args.topology}, fanout {args.fanout}, anti-entropy every ~{args.interval:g} s) ..."
        ):
            for n in nodes:
                ns.start(n)
            await ns.wait_ready(session, nodes)
            await asyncio.sleep(1.0)  # a first announce to a peer not yet up backs off < 1 s
            await wait_no_backoff(session, nodes, 30.0)

        with bl.stage(out, "2/6 founding the co-op on node 0, waiting for every node to hold it ..."):
            async with session.post(
                nodes[0].url + "/api/v1/actions", data=encode_submission([genesis.raw], single=True), headers=bl.MSGPACK_HEADERS
            ) as r:
                if r.status != 200:
                    raise BenchError(f"genesis: HTTP {r.status}: {(await r.read())[:300]!r}")
            await wait_converged(session, nodes, 1, 60.0, out)
            base = [c["actions"] for c in await asyncio.gather(*(bl.node_counts(session, n) for n in nodes))]

        with bl.stage(out, f"3/6 signing {args.actions:,} actions from {args.members} members ..."):
            plan = plan_actions(coop, args.actions, args.members, args.nodes, rng)
        sizes = [len(p.raw) for p in plan]

        say(out, f"4/6 posting {args.actions:,} actions at {args.rate:g}/s to their members' home nodes ...")
        before = await asyncio.gather(*(bl.scrape(session, n) for n in nodes))
        cpu = bl.CpuWindow({f"node{n.index}": n.pid for n in nodes}).start()
        load = await run_load(session, nodes, plan, args.rate, args.inflight, out)
        posted_s = time.perf_counter() - cpu.wall0
        say(out, f"    posted in {load.wall_s:.1f} s (at most {1000 * load.lag_s:.0f} ms behind schedule); waiting for convergence ...")
        settle_s, counts = await wait_converged(session, nodes, base[0] + args.actions, args.settle, out)
        cpu.stop()
        after = await asyncio.gather(*(bl.scrape(session, n) for n in nodes))
        say(out, f"    every node holds all {args.actions:,} ({settle_s:.1f} s after the last post)")

        with bl.stage(out, "5/6 measuring HTTP header bytes of peer requests (one of each, through a counting relay) ..."):
            heads = [
                Head(parse_id(IdKind.MEMBER, c["author"]), c["seq"], parse_id(IdKind.ACTION, c["head"]))
                for c in (await bl.get_json(session, nodes[0].url, f"/api/v1/coops/{format_id(IdKind.COOP, coop)}/chains"))["chains"]
            ]
            request = Reconciliation(coop, HeadSet(heads), ()).next_request()
            assert request is not None
            calls = [
                ("push", "/peer/v1/push", encode_push(PeerPush((plan[0].raw,), ()))),
                ("reconcile", "/peer/v1/reconcile", encode_reconcile_request(request)),
                ("fetch", "/peer/v1/fetch", encode_fetch_request(FetchRequest(coop, (), ()))),
                ("coops", "/peer/v1/coops", b""),
            ]
            sender = nodes[peers[0][0]].key
            costs = await bl.http_overhead(nodes[0], sender, calls)

    with bl.stage(out, "6/6 stopping the nodes, reading each node's received_at ..."):
        codes = ns.stop()
        received = [bl.read_received_at(n, coop) for n in nodes]
    odd = {i: c for i, c in codes.items() if c not in (0, -15)}
    return figures(args, nodes, peers, plan, sizes, load, received, before, after, cpu, costs, settle_s, posted_s, counts, odd)


def figures(
    args: argparse.Namespace,
    nodes: Sequence[bl.BenchNode],
    peers: list[list[int]],
    plan: Sequence[Planned],
    sizes: list[int],
    load: LoadResult,
    received: list[dict[bytes, int]],
    before: Sequence[bl.Samples],
    after: Sequence[bl.Samples],
    cpu: bl.CpuWindow,
    costs: dict[str, bl.HeaderCost],
    settle_s: float,
    posted_s: float,
    counts: list[int],
    odd_exits: dict[int, int | None],
) -> dict[str, Any]:
    n = len(nodes)
    to_all: list[float] = []
    per_node: list[float] = []
    missing = 0
    for i, p in enumerate(plan):
        times = [r.get(p.id) for r in received]
        if any(t is None for t in times):
            missing += 1
            continue
        lat = [t - load.sent_ms[i] for t in times if t is not None]
        to_all.append(max(lat))
        per_node.extend(x for j, x in enumerate(lat) if j != p.node)
    slow = sorted(range(len(plan)), key=lambda i: -max(r[plan[i].id] - load.sent_ms[i] for r in received))[:5]
    slowest = [
        {
            "action": i,
            "member": plan[i].member,
            "seq": plan[i].seq,
            "home_node": plan[i].node,
            "ms_per_node": [round(r[plan[i].id] - load.sent_ms[i], 1) for r in received],
        }
        for i in slow
    ]
    if missing:
        raise BenchError(f"{missing} actions missing from some node's store after convergence")
    ack = [a - s for a, s in zip(load.ack_ms, load.sent_ms, strict=True)]

    def dist(xs: list[float]) -> dict[str, float | None]:
        return {
            "p50": round(bl.percentile(xs, 50) or 0, 1),
            "p90": round(bl.percentile(xs, 90) or 0, 1),
            "p99": round(bl.percentile(xs, 99) or 0, 1),
            "max": round(max(xs), 1) if xs else None,
            "mean": round(statistics.fmean(xs), 1) if xs else None,
        }

    def delta(name: str, **labels: str) -> float:
        return sum(bl.mdelta(b, a, name, **labels) for b, a in zip(before, after, strict=True))

    # coopnet_gossip_bytes: the client side counts a request body "out" and its reply "in"; the
    # server side counts a request body "in". So over all nodes: out = request bodies, and
    # in = request bodies + reply bodies = every body that crossed (every request was admitted).
    bytes_out = delta("coopnet_gossip_bytes_total", direction="out")
    bytes_in = delta("coopnet_gossip_bytes_total", direction="in")
    requests: dict[str, int] = {}
    outcomes: Counter[str] = Counter()
    for a, b in zip(after, before, strict=True):
        for (name, labels), v in a.items():
            if name != "coopnet_gossip_requests_total":
                continue
            lab = dict(labels)
            d = v - b.get((name, labels), 0.0)
            if lab.get("direction") == "out" and d:
                outcomes[f"{lab['kind']}:{lab['outcome']}"] += int(d)
                if lab["outcome"] != "error":
                    requests[lab["kind"]] = requests.get(lab["kind"], 0) + int(d)
    header_bytes = sum(cnt * costs.get(kind, costs["push"]).headers for kind, cnt in requests.items())
    deliveries = len(plan) * (n - 1)
    bodies = bytes_in
    stored_by = {src: int(delta("coopnet_actions_stored_total", source=src)) for src in ("client", "push", "fetch")}
    rejected: Counter[str] = Counter()
    for a, b in zip(after, before, strict=True):
        for (name, labels), v in a.items():
            if name == "coopnet_actions_rejected_total" and (d := int(v - b.get((name, labels), 0.0))):
                lab = dict(labels)
                rejected[f"{lab.get('source')}:{lab.get('code')}"] += d
    action_mean = statistics.fmean(sizes)
    cw = cpu.view()
    nodes_cpu = sum(v for k, v in cw["cpu_seconds"].items() if k.startswith("node"))
    fig: dict[str, Any] = {
        "settings": {
            "nodes": n,
            "topology": args.topology,
            "peers_per_node": [len(p) for p in peers],
            "fanout": args.fanout,
            "anti_entropy_interval_s": args.interval,
            "verify_workers": args.workers,
            "synchronous": args.synchronous,
            "actions": len(plan),
            "members": args.members,
            "rate_per_s": args.rate,
            "seed": args.seed,
        },
        "machine": bl.machine_info(),
        "action_bytes": {"mean": round(action_mean, 1), "min": min(sizes), "max": max(sizes)},
        "load": {
            "posted_per_s": round(len(plan) / load.wall_s, 1),
            "max_behind_schedule_ms": round(1000 * load.lag_s, 1),
            "statuses": dict(load.statuses),
            "posting_s": round(posted_s, 2),
            "converged_after_last_post_s": round(settle_s, 2),
            "final_counts": counts,
        },
        "latency_ms": {
            "to_all_nodes": dist(to_all),
            "to_each_other_node": dist(per_node),
            "post_ack_at_origin": dist(ack),
            "resolution_ms": 1,
            "slowest": slowest,
            "definition": "send of the POST -> received_at (start of the commit group that stored it) on the last node",
        },
        "wire": {
            "deliveries": deliveries,
            "body_bytes_total": int(bodies),
            "request_body_bytes": int(bytes_out),
            "reply_body_bytes": int(bytes_in - bytes_out),
            "header_bytes_estimated": int(header_bytes),
            "body_bytes_per_delivery": round(bodies / deliveries, 1),
            "header_bytes_per_delivery": round(header_bytes / deliveries, 1),
            "wire_bytes_per_delivery": round((bodies + header_bytes) / deliveries, 1),
            "body_ratio_to_action": round(bodies / deliveries / action_mean, 2),
            "wire_ratio_to_action": round((bodies + header_bytes) / deliveries / action_mean, 2),
            "peer_requests": requests,
            "peer_requests_per_action": round(sum(requests.values()) / len(plan), 2),
            "request_outcomes": dict(outcomes),
            "header_bytes_per_request": {k: c.view() for k, c in costs.items()},
            "stored_by_source": stored_by,
            "rejected_by_source_code": dict(rejected),
        },
        "cpu": {
            **cw,
            "nodes_total_cores": round(nodes_cpu / max(cpu.wall, 1e-9), 2),
            "nodes_cpu_ms_per_action": round(1000 * nodes_cpu / len(plan), 1),
        },
        "node_exit_codes_other_than_sigterm": odd_exits,
    }
    return fig


def render(fig: dict[str, Any], out: TextIO) -> None:
    s, m, lat, w, ld, c = fig["settings"], fig["machine"], fig["latency_ms"], fig["wire"], fig["load"], fig["cpu"]
    ta, te, ack = lat["to_all_nodes"], lat["to_each_other_node"], lat["post_ack_at_origin"]
    hc = w["header_bytes_per_request"]
    lines = [
        "",
        f"coopnet propagation benchmark: {s['nodes']} nodes ({s['topology']}, {min(s['peers_per_node'])}-{max(s['peers_per_node'])} peers each),"
        f" fanout {s['fanout']}, anti-entropy ~{s['anti_entropy_interval_s']:g} s, verify_workers {s['verify_workers']}, synchronous {s['synchronous']}",
        f"  load: {s['actions']:,} actions from {s['members']} members, offered {s['rate_per_s']:g}/s, posted {ld['posted_per_s']:g}/s,"
        f" one per request to the member's home node; converged {ld['converged_after_last_post_s']:.1f} s after the last post",
        f"  machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}; coopnet {m['revision']}; load average at start {m['loadavg_at_start']}",
        "",
        "time for an action to reach nodes (ms; send -> received_at on the node; resolution 1 ms)",
        f"  to ALL {s['nodes']} nodes           p50 {ta['p50']:>8}   p90 {ta['p90']:>8}   p99 {ta['p99']:>8}   max {ta['max']:>8}",
        f"  to each other node        p50 {te['p50']:>8}   p90 {te['p90']:>8}   p99 {te['p99']:>8}   max {te['max']:>8}",
        f"  one hop: POST -> ack      p50 {ack['p50']:>8}   p90 {ack['p90']:>8}   p99 {ack['p99']:>8}   max {ack['max']:>8}"
        "   (origin node: validate + commit + fsync)",
        "",
        f"wire bytes per action delivered to a node ({w['deliveries']:,} deliveries = actions x {s['nodes'] - 1} other nodes)",
        f"  the action itself                 {fig['action_bytes']['mean']:>8.0f} B  (mean; {fig['action_bytes']['min']}-{fig['action_bytes']['max']})",
        f"  peer message bodies               {w['body_bytes_per_delivery']:>8.0f} B  ({w['body_ratio_to_action']:.2f}x the action; coopnet_gossip_bytes)",
        f"  + HTTP headers (estimated)        {w['header_bytes_per_delivery']:>8.0f} B  ({w['peer_requests_per_action']:.1f} peer requests per action;"
        f" {hc['push']['request_headers']} + {hc['push']['reply_headers']} B of headers per push)",
        f"  = on the wire                     {w['wire_bytes_per_delivery']:>8.0f} B  ({w['wire_ratio_to_action']:.2f}x the action)",
        f"  peer requests: {w['peer_requests']}; outcomes: {w['request_outcomes']}",
        f"  deliveries by path: {w['stored_by_source']}; rejected: {w['rejected_by_source_code'] or 'none'}",
        "",
        f"CPU over the {c['wall_s']:.1f} s window (posting + convergence): nodes {c['nodes_total_cores']:.2f} cores,"
        f" benchmark client {c['cores']['benchmark_client']:.2f}, other processes {c['cores']['other_processes']:.2f},"
        f" steal {c['cores']['hypervisor_steal']:.2f}; load average {c['loadavg_start']} -> {c['loadavg_end']}",
        f"  node CPU per action, all {s['nodes']} nodes together: {c['nodes_cpu_ms_per_action']} ms",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=10, help="node processes (default 10)")
    p.add_argument("--topology", choices=("full", "random-k"), default="full", help="who peers with whom (default full)")
    p.add_argument("--k", type=int, default=4, help="peers drawn per node with --topology random-k (default 4)")
    p.add_argument("--fanout", type=int, default=3, help="federation.fanout (default 3)")
    p.add_argument("--interval", type=float, default=1.5, help="federation.anti_entropy_interval, seconds (default 1.5)")
    p.add_argument("--workers", type=int, default=0, help="limits.verify_workers of every node (default 0: inline)")
    p.add_argument("--synchronous", choices=("full", "normal"), default="full", help="store.synchronous (default full)")
    p.add_argument("--actions", type=int, default=1500, help="actions posted (default 1500)")
    p.add_argument("--members", type=int, default=200, help="members posting them (default 200)")
    p.add_argument("--rate", type=float, default=50.0, help="actions per second offered (default 50)")
    p.add_argument("--inflight", type=int, default=256, help="most requests in flight (default 256)")
    p.add_argument("--settle", type=float, default=180.0, help="seconds allowed for convergence after the last post (default 180)")
    p.add_argument("--seed", type=int, default=1, help="seed of the topology, homes and order (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the nodes' data directories and logs (printed at the end)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    a = p.parse_args(argv)
    if not 2 <= a.nodes <= 50:
        p.error("--nodes must be 2-50")
    if not 1 <= a.actions <= 100_000 or not 1 <= a.members <= a.actions or not 1 <= a.inflight <= 4096:
        p.error("--actions 1-100000, --members 1..actions, --inflight 1-4096")
    if not 0.1 <= a.rate <= 10_000 or not 0.05 <= a.interval <= 600 or not 1 <= a.settle <= 3600:
        p.error("--rate 0.1-10000, --interval 0.05-600, --settle 1-3600")
    if a.fanout < 0 or a.workers < 0 or (a.topology == "random-k" and not 1 <= a.k < a.nodes):
        p.error("--fanout and --workers must be >= 0, --k 1..nodes-1")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    bl.install_signal_handlers()
    say(out, f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with bl.NodeSet("coopnet-bench-propagation-", keep=args.keep) as ns:
        try:
            fig = asyncio.run(run(args, ns, out))
        except BaseException:
            for n in ns.nodes:
                if n.proc is not None and n.proc.poll() is not None and n.proc.returncode not in (0, -15):
                    say(sys.stderr, f"node {n.index} exited with status {n.proc.returncode}; its log ends:\n{n.log_tail(15)}")
            raise
    return bl.emit(fig, args.json, render)


if __name__ == "__main__":
    bl.run_main(main, "propagation")
