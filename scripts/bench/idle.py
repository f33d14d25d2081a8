#!/usr/bin/env python3
"""Idle-cost benchmark: bytes per anti-entropy round between two nodes already in sync, for
1,000 and 10,000 authors, and for a short and a ten times longer history per author. The goal:
the cost does not grow with history length.

What it does, for each (authors, history) variant, with a fresh pair of nodes each time:

1. Pre-signs (once, for the largest variant) ``max(authors)`` chains of ``max(history)``
   actions; a variant uses the first ``authors`` chains cut to ``history`` actions.
2. ``coopnet init`` two nodes A and B, a closed federation of the two, anti-entropy every
   ``--interval`` s (jittered +-50% by the node). Each node is reached by its peer through an HTTP
   relay on 127.0.0.1 (benchlib.HttpProxy: the relay is the peer URL in the other's config and the
   node's ``advertise_url``) that counts every exchange by request path, head and body apart.
3. Posts the genesis and every action to both nodes over their client API (``synchronous =
   "normal"`` to build the history faster; an idle round writes nothing), waits until both hold
   everything and each has had two ``in_sync`` reconciliations in a row.
4. Measures one window of ``--window`` s: the relays' counts per path, both nodes' reconciliation
   counters (any ``differ`` or ``failed`` fails the run) and both nodes' CPU. Per round (one node
   reconciling with the other; with ``replicate = "all"`` that is a ``/peer/v1/coops`` exchange
   and a ``/peer/v1/reconcile`` exchange; announces, every ~30 s, are counted apart):

   - protocol bytes: ``encode_reconcile_request`` / ``encode_reconcile_reply`` and the co-op list,
     computed here for the same head set;
   - body bytes and HTTP head bytes (request line, status line, headers) as they crossed;
   - node CPU (both nodes) per reconciliation: that one grows with the number of authors (every
     round reads and hashes all the heads).

Usage (from the repository root)::

    python scripts/bench/idle.py                                # 1,000 and 10,000 authors x 1 and 10
    python scripts/bench/idle.py --authors 1000 --history 1,10  # quick
    python scripts/bench/idle.py --json

Only 127.0.0.1 is used. Nodes are stopped (SIGTERM, then SIGKILL of each process group after a
deadline) and their temporary directories removed, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import benchlib as bl
import ingest as ib

from protocol import Action, decode_action, sign_genesis
from protocol.messages import Head, encode_coop_list, encode_reconcile_reply, encode_reconcile_request, encode_submission
from protocol.reconcile import HeadSet, Reconciliation, respond

say = bl.say
BenchError = bl.BenchError


@dataclass
class Variant:
    authors: int
    history: int

    @property
    def actions(self) -> int:
        return self.authors * self.history


def protocol_bytes(coop: bytes, heads: list[Head]) -> dict[str, int]:
    """Sizes of one idle round's messages, for two identical head sets, as encoded here."""
    mine = HeadSet(heads)
    request = Reconciliation(coop, mine, ()).next_request()
    assert request is not None
    reply = respond(request, HeadSet(heads), ())
    if reply.ranges or reply.listings:
        raise BenchError("identical head sets did not reconcile in one message")
    return {
        "reconcile_request": len(encode_reconcile_request(request)),
        "reconcile_reply": len(encode_reconcile_reply(reply)),
        "coops_request": 0,
        "coops_reply": len(encode_coop_list([coop])),
    }


async def post_all(
    session: aiohttp.ClientSession, node: bl.BenchNode, genesis: bytes, chains: list[list[bytes]], out: TextIO, label: str
) -> None:
    """The genesis, then every chain seq by seq in batches of 1000, 2 lanes; accepted or known
    (the other node may have pushed some first), never rejected."""
    res = ib.PostResult()
    doc = await ib.post_batch(session, node.url, encode_submission([genesis]), 1, res)
    if doc.get("rejected"):
        raise BenchError(f"{label}: genesis rejected: {doc}")
    work = ib.build_workload(decode_action(genesis), chains, 2, 1000)
    progress = ib.Progress(f"posting to {label}", work.actions, out)

    async def lane(reqs: list[tuple[bytes, int]]) -> None:
        for body, n in reqs:
            d = await ib.post_batch(session, node.url, body, n, res)
            if d.get("rejected"):
                odd = [r for r in d.get("results", []) if r.get("status") == "rejected"][:3]
                raise BenchError(f"{label}: {d['rejected']} of {n} rejected: {odd}")
            progress.advance(n)

    try:
        await asyncio.gather(*(lane(r) for r in work.lanes))
    finally:
        progress.close()


def reconciliations(samples: Sequence[bl.Samples], outcome: str) -> float:
    return sum(bl.msum(s, "coopnet_reconciliations_total", outcome=outcome) for s in samples)


async def wait_in_sync(session: aiohttp.ClientSession, nodes: list[bl.BenchNode], expected: int, within: float) -> float:
    """Both nodes hold ``expected`` actions and each has had two more in_sync reconciliations
    since, with no differ in between."""
    t = time.perf_counter()
    deadline = t + within
    base: list[bl.Samples] | None = None
    counts: list[int] = []
    while time.perf_counter() < deadline:
        bl.check_alive(nodes)
        counts = [(await bl.node_counts(session, n))["actions"] for n in nodes]
        if all(c == expected for c in counts):
            now = [await bl.scrape(session, n) for n in nodes]
            if base is None or any(
                bl.mdelta(b, a, "coopnet_reconciliations_total", outcome="differ") for b, a in zip(base, now, strict=True)
            ):
                base = now
            elif all(bl.mdelta(b, a, "coopnet_reconciliations_total", outcome="in_sync") >= 2 for b, a in zip(base, now, strict=True)):
                return time.perf_counter() - t
        await asyncio.sleep(0.25)
    raise BenchError(f"nodes not in sync after {within:g} s: they hold {counts}, expected {expected} each")


RECONCILE, COOPS = "/peer/v1/reconcile", "/peer/v1/coops"


async def measure(session: aiohttp.ClientSession, nodes: list[bl.BenchNode], proxies: list[bl.HttpProxy], seconds: float) -> dict[str, Any]:
    """One window: the relays' per-path counts, the nodes' reconciliation counters and CPU."""
    before = [await bl.scrape(session, n) for n in nodes]
    snap0 = [p.snapshot() for p in proxies]
    win = bl.CpuWindow({f"node{n.index}": n.pid for n in nodes}).start()
    await asyncio.sleep(seconds)
    win.stop()
    snap1 = [p.snapshot() for p in proxies]
    after = [await bl.scrape(session, n) for n in nodes]
    bl.check_alive(nodes)
    paths: dict[str, bl.PathStats] = {}
    for s0, s1 in zip(snap0, snap1, strict=True):
        for path, st in s1.items():
            d = st.minus(s0.get(path, bl.PathStats()))
            acc = paths.setdefault(path, bl.PathStats())
            for f in ("requests", "request_head", "request_body", "reply_head", "reply_body"):
                setattr(acc, f, getattr(acc, f) + getattr(d, f))
    outcomes = {o: int(reconciliations(after, o) - reconciliations(before, o)) for o in ("in_sync", "differ", "failed")}
    messages = int(sum(bl.mdelta(b, a, "coopnet_reconcile_rounds_total") for b, a in zip(before, after, strict=True)))
    body_metric = sum(bl.mdelta(b, a, "coopnet_gossip_bytes_total", direction="in") for b, a in zip(before, after, strict=True))
    node_cpu = sum(v for k, v in win.seconds().items() if k.startswith("node"))
    return {
        "paths": paths,
        "outcomes": outcomes,
        "reconcile_messages": messages,
        "metric_body_bytes": body_metric,
        "node_cpu_s": node_cpu,
        "wall_s": win.wall,
        "other_processes_cores": win.seconds()["other_processes"] / max(win.wall, 1e-9),
        "loadavg": win.load1,
        "unparsed": sum(p.unparsed for p in proxies),
    }


async def run_variant(
    args: argparse.Namespace, v: Variant, genesis: Action, chains: list[list[bytes]], heads: list[Head], out: TextIO
) -> dict[str, Any]:
    coop = genesis.id
    with bl.NodeSet(f"coopnet-bench-idle-{v.authors}x{v.history}-", keep=args.keep) as ns:
        nodes = ns.init(2)
        proxies = [await bl.HttpProxy(n.port).start() for n in nodes]
        try:
            for n, p in zip(nodes, proxies, strict=True):
                n.advertise_url = p.url
            settings = bl.NodeSettings(
                anti_entropy_interval=args.interval, verify_workers=args.workers, synchronous="normal", log_level="warning"
            )
            for n in nodes:
                ns.configure(n, nodes, settings)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
                for n in nodes:
                    ns.start(n)
                await ns.wait_ready(session, nodes)
                t = time.perf_counter()
                await asyncio.gather(*(post_all(session, n, genesis.raw, chains, out, f"node {'AB'[n.index]}") for n in nodes))
                posted_s = time.perf_counter() - t
                sync_s = await wait_in_sync(session, nodes, v.actions + 1, args.settle)
                say(
                    out,
                    f"    {v.actions:,} actions on both nodes ({posted_s:.1f} s), in sync {sync_s:.1f} s later; measuring for {args.window:g} s ...",
                )
                m = await measure(session, nodes, proxies, args.window)
        finally:
            for p in proxies:
                await p.close()
    paths: dict[str, bl.PathStats] = m["paths"]
    rec, coops = paths.get(RECONCILE, bl.PathStats()), paths.get(COOPS, bl.PathStats())
    n = rec.requests
    if not n or m["outcomes"]["in_sync"] == 0:
        raise BenchError(f"{v.authors}x{v.history}: no reconciliation measured ({m['outcomes']})")
    if m["outcomes"]["differ"] or m["outcomes"]["failed"]:
        raise BenchError(f"{v.authors}x{v.history}: the nodes were not in sync during the window ({m['outcomes']})")
    proto = protocol_bytes(coop, heads)
    if coops.requests == 0:
        raise BenchError(f"{v.authors}x{v.history}: no {COOPS} request measured")
    # A round is one exchange of each; per-exchange averages, so that an exchange cut by the
    # window's edge (a coops call in, its reconcile call out) does not count.
    bodies = (rec.request_body + rec.reply_body) / n + (coops.request_body + coops.reply_body) / coops.requests
    heads_b = (rec.request_head + rec.reply_head) / n + (coops.request_head + coops.reply_head) / coops.requests
    recs = m["outcomes"]["in_sync"]
    return {
        "authors": v.authors,
        "history_per_author": v.history,
        "actions": v.actions,
        "reconcile_requests": n,
        "coops_requests": coops.requests,
        "reconciliations_in_sync": recs,
        "reconcile_messages_per_reconciliation": round(m["reconcile_messages"] / recs, 2),
        "protocol_bytes": {**proto, "per_round": sum(proto.values())},
        "body_bytes_per_round": round(bodies, 1),
        "http_head_bytes_per_round": round(heads_b, 1),
        "wire_bytes_per_round": round(bodies + heads_b, 1),
        "per_request": {
            path: {
                "requests": st.requests,
                "request_head": round(st.request_head / st.requests, 1),
                "request_body": round(st.request_body / st.requests, 1),
                "reply_head": round(st.reply_head / st.requests, 1),
                "reply_body": round(st.reply_body / st.requests, 1),
            }
            for path, st in sorted(paths.items())
            if st.requests
        },
        "metric_body_bytes_per_reconciliation_with_announces": round(m["metric_body_bytes"] / recs, 1),
        "node_cpu_ms_per_reconciliation": round(1000 * m["node_cpu_s"] / recs, 2),
        "reconciliations_per_s": round(recs / m["wall_s"], 2),
        "window_s": round(m["wall_s"], 2),
        "other_processes_cores": round(m["other_processes_cores"], 2),
        "loadavg_end": [round(x, 2) for x in m["loadavg"]],
        "unparsed_connections": m["unparsed"],
    }


def variants(args: argparse.Namespace) -> list[Variant]:
    return [Variant(a, h) for a in args.authors for h in args.history]


def render(fig: dict[str, Any], out: TextIO) -> None:
    s, m = fig["settings"], fig["machine"]
    rows = fig["variants"]
    lines = [
        "",
        f"coopnet idle-cost benchmark: two nodes in sync, anti-entropy every ~{s['anti_entropy_interval_s']:g} s each (jittered +-50%),"
        f" replicate = all; coopnet {m['revision']} (code {m['code_digest']})",
        f"  machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}; load average {m['loadavg_at_start']} at start, {m['loadavg_at_end']} at end",
        "",
        "bytes per reconciliation (one node asks the other: POST /peer/v1/coops + POST /peer/v1/reconcile)",
        f"  {'authors':>8} {'history':>8} {'actions':>9} | {'protocol':>8} {'bodies':>8} {'HTTP hdr':>8} {'on wire':>8} | {'rounds':>6} {'msgs':>5} | {'CPU/round':>10}",
    ]
    for r in rows:
        lines.append(
            f"  {r['authors']:>8,} {r['history_per_author']:>8} {r['actions']:>9,} | {r['protocol_bytes']['per_round']:>8} {r['body_bytes_per_round']:>8.1f}"
            f" {r['http_head_bytes_per_round']:>8.1f} {r['wire_bytes_per_round']:>8.1f} | {r['reconcile_requests']:>6} {r['reconcile_messages_per_reconciliation']:>5.2f}"
            f" | {r['node_cpu_ms_per_reconciliation']:>7} ms"
        )
    g = fig["growth"]
    lines += [
        "",
        "  protocol: encode_reconcile_request/reply + the co-op list, computed here for the same heads; bodies, HTTP hdr, on wire:"
        " counted per request by the relays (request/status lines and headers); rounds: reconcile requests in the window;"
        " msgs: reconcile request/reply pairs per reconciliation; CPU/round: both nodes' CPU over the window / reconciliations",
        f"  growth of wire bytes per round with history x{g['history_factor']:g}: {g['wire_vs_history']};"
        f" with authors x{g['authors_factor']:g}: {g['wire_vs_authors']}",
        f"  growth of CPU per round with authors x{g['authors_factor']:g}: {g['cpu_vs_authors']}; with history x{g['history_factor']:g}: {g['cpu_vs_history']}",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()


def growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["authors"], r["history_per_author"]): r for r in rows}
    authors = sorted({r["authors"] for r in rows})
    history = sorted({r["history_per_author"] for r in rows})

    def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
        x, y = a[key], b[key]
        return round(y / x, 3) if x else None

    return {
        "history_factor": history[-1] / history[0],
        "authors_factor": authors[-1] / authors[0],
        "wire_vs_history": {a: ratio(by[(a, history[0])], by[(a, history[-1])], "wire_bytes_per_round") for a in authors},
        "wire_vs_authors": {h: ratio(by[(authors[0], h)], by[(authors[-1], h)], "wire_bytes_per_round") for h in history},
        "cpu_vs_authors": {h: ratio(by[(authors[0], h)], by[(authors[-1], h)], "node_cpu_ms_per_reconciliation") for h in history},
        "cpu_vs_history": {a: ratio(by[(a, history[0])], by[(a, history[-1])], "node_cpu_ms_per_reconciliation") for a in authors},
    }


def int_list(text: str) -> list[int]:
    try:
        out = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or out[0] < 1:
        raise argparse.ArgumentTypeError("values must be >= 1")
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--authors", type=int_list, default=[1000, 10_000], help="author counts, comma-separated (default 1000,10000)")
    p.add_argument("--history", type=int_list, default=[1, 10], help="actions per author, comma-separated (default 1,10)")
    p.add_argument("--interval", type=float, default=0.5, help="federation.anti_entropy_interval, seconds (default 0.5)")
    p.add_argument("--window", type=float, default=30.0, help="seconds of measurement per variant (default 30)")
    p.add_argument("--workers", type=int, default=None, help="limits.verify_workers of both nodes (default: the node's)")
    p.add_argument("--settle", type=float, default=300.0, help="seconds allowed for the pair to get in sync (default 300)")
    p.add_argument("--sign-procs", type=int, default=os.cpu_count() or 1, help="processes signing (default: all cores)")
    p.add_argument("--keep", action="store_true", help="keep the nodes' data directories and logs")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    a = p.parse_args(argv)
    if a.authors[-1] > 200_000 or a.history[-1] > 1000 or a.authors[-1] * a.history[-1] > 2_000_000:
        p.error("at most 200000 authors, 1000 actions each, 2000000 actions in all")
    if not 0.05 <= a.interval <= 60 or not 1 <= a.window <= 3600:
        p.error("--interval 0.05-60, --window 1-3600")
    if (a.workers is not None and a.workers < 0) or a.sign_procs < 1 or not 1 <= a.settle <= 3600:
        p.error("--workers >= 0, --sign-procs >= 1, --settle 1-3600")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    bl.install_signal_handlers()
    say(out, f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    genesis = sign_genesis(ib.founder_key(), ts=ib.TS0, body={"name": "Idle-cost benchmark", "about": "two nodes in sync"})
    coop = genesis.id
    most_a, most_h = args.authors[-1], args.history[-1]
    say(out, f"signing {most_a:,} chains of {most_h} actions ...")
    all_chains, _ = bl.presign([most_h] * most_a, coop, args.sign_procs, out)
    ids = [[decode_action(raw, check_signature=False).id for raw in chain] for chain in all_chains]
    rows = []
    for k, v in enumerate(variants(args), 1):
        say(out, f"{k}/{len(args.authors) * len(args.history)} {v.authors:,} authors x {v.history} actions each ...")
        chains = [c[: v.history] for c in all_chains[: v.authors]]
        heads = [Head(ib.member_key(i).public_key, v.history, ids[i][v.history - 1]) for i in range(v.authors)]
        heads.append(Head(genesis.author, 1, genesis.id))
        row = asyncio.run(run_variant(args, v, genesis, chains, heads, out))
        rows.append(row)
        say(
            out,
            f"    {row['wire_bytes_per_round']:.0f} bytes on the wire per round ({row['body_bytes_per_round']:.0f} of bodies), {row['reconcile_requests']} rounds",
        )
    fig = {
        "settings": {
            "authors": args.authors,
            "history": args.history,
            "anti_entropy_interval_s": args.interval,
            "window_s": args.window,
            "verify_workers": args.workers,
        },
        "machine": bl.machine_info(),
        "variants": rows,
        "growth": growth(rows),
        "protocol_bytes_stable": statistics.pstdev([r["protocol_bytes"]["per_round"] for r in rows]) == 0,
    }
    return bl.emit(fig, args.json, render)


if __name__ == "__main__":
    bl.run_main(main, "idle-cost")
