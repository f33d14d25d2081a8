#!/usr/bin/env python3
"""Catch-up benchmark: a fresh node syncing 100,000 actions from one peer, beside the raw Ed25519
verification rate of one core measured in the same run (target: at least half of it).

What it does, in order:

1. Measures, single-threaded in this process, libsodium's Ed25519 verification rate (and
   OpenSSL's, and ``protocol.decode_action``'s), as ingest.py does: the machine limit.
2. Pre-signs one genesis and ``--actions`` actions from ``--members`` members (chains with
   seq/prev, application kinds, bodies of 60-120 bytes) in a process pool.
3. ``coopnet init`` two data directories, A and B, a closed federation of the two: each lists the
   other as its only peer. B gets ``--fetch-batch`` and ``--workers`` (its verify workers).
4. Starts A alone and has it ingest everything over its client API (ingest.py's poster: batches of
   1000, 4 in flight; every action must be accepted). A's ingest rate is reported too.
5. Starts B (``coopnet run``, a fresh data directory) and from that instant polls B's
   ``/api/v1/node`` every 0.1 s until B holds every action. B finds the co-op and what it lacks by
   anti-entropy (reconcile) and fetches it from A in batches; nothing is pushed to it.
   Meanwhile: VmRSS of B's process tree every 100 ms (peak), CPU time of B's event-loop thread,
   its other threads, its verify workers, A's process tree, this script, and the machine.
6. Reads B's SQLite file for the ``received_at`` of its first and last stored action: the sync
   window without B's start-up (interpreter, first announce and reconciliation).
7. Measures libsodium again (the reference is the better of before and after: a harder target).

Usage (from the repository root)::

    python scripts/bench/catchup.py                       # 100,000 actions from 1,000 members
    python scripts/bench/catchup.py --actions 20000       # quick
    python scripts/bench/catchup.py --fetch-batch 500 --workers 0 --json

Only 127.0.0.1 is used. Both nodes are stopped (SIGTERM, then SIGKILL of each process group after
a deadline) and the temporary directory removed, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
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

from protocol import sign_genesis

say = bl.say
BenchError = bl.BenchError
TARGET_RATIO = 0.5
POLL_S = 0.1


@dataclass
class CatchUp:
    started: float  # perf_counter just before B's Popen
    healthy_s: float  # B's /healthz answered
    first_s: float | None  # first poll that saw B hold more than the genesis
    done_s: float  # first poll that saw B hold everything
    polls: int
    cpu_b0: ib.CpuSnapshot
    cpu_b1: ib.CpuSnapshot
    window: bl.CpuWindow
    metrics_b: bl.Samples
    metrics_a: bl.Samples
    node_info_b: dict[str, Any]
    sampler: ib.TreeSampler


async def catch_up(ns: bl.NodeSet, a: bl.BenchNode, b: bl.BenchNode, expected: int, within: float, out: TextIO) -> CatchUp:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        metrics_a0 = await bl.scrape(session, a)
        ns.start(b)
        sampler = ib.TreeSampler(b.pid)
        sampler.start()
        try:
            return await _watch(session, a, b, sampler, metrics_a0, expected, within, out)
        finally:
            sampler.stop()


async def _watch(
    session: aiohttp.ClientSession,
    a: bl.BenchNode,
    b: bl.BenchNode,
    sampler: ib.TreeSampler,
    metrics_a0: bl.Samples,
    expected: int,
    within: float,
    out: TextIO,
) -> CatchUp:
    """Poll B from its start until it holds ``expected`` actions; CPU and metrics around it."""
    cpu_b0 = ib.snapshot_cpu(b.pid)
    window = bl.CpuWindow({"node_b": b.pid, "node_a": a.pid}).start()
    healthy_s = await bl.wait_healthy(session, b)
    first_s: float | None = None
    last_line = 0.0
    polls = 0
    for _ in range(int(within / POLL_S) + 2):
        polls += 1
        bl.check_alive([a, b])
        info = await bl.get_json(session, b.url, "/api/v1/node")
        held = info["counts"]["actions"]
        now = time.perf_counter() - b.started_at
        if first_s is None and held > 1:
            first_s = now
        if held >= expected:
            break
        if now - last_line >= 2.0:
            last_line = now
            cu = info.get("catchup", {})
            say(
                out,
                f"  B holds {held:,}/{expected:,} after {now:.1f} s (catch-up {cu.get('done', 0):,}/{cu.get('total', 0):,}, {cu.get('rate', 0):,.0f}/s)",
            )
        await asyncio.sleep(POLL_S)
    else:
        raise BenchError(f"B holds {held:,} of {expected:,} after {within:g} s")
    done_s = time.perf_counter() - b.started_at
    cpu_b1 = ib.snapshot_cpu(b.pid)
    window.stop()
    info = await bl.get_json(session, b.url, "/api/v1/node")
    metrics_b = await bl.scrape(session, b)
    metrics_a = await bl.scrape(session, a)
    for k, v in metrics_a0.items():  # A's counters during the catch-up only
        metrics_a[k] = metrics_a.get(k, 0.0) - v
    return CatchUp(b.started_at, healthy_s, first_s, done_s, polls, cpu_b0, cpu_b1, window, metrics_b, metrics_a, info, sampler)


def figures(
    args: argparse.Namespace,
    rates: ib.MachineRates,
    sign_rate: float,
    work: ib.Workload,
    ingest_a: ib.RunFigures,
    cu: CatchUp,
    received: dict[bytes, int],
    workers_b: int,
    log_b: str,
) -> dict[str, Any]:
    n = work.actions
    sampler = cu.sampler
    sod = rates.libsodium
    median = statistics.median(rates.rounds["libsodium"] + rates.rounds.get("libsodium_after", []))
    rate_start = n / cu.done_s
    first_ms, last_ms = min(received.values()), max(received.values())
    sync_s = max((last_ms - first_ms) / 1000, 1e-3)
    rate_sync = n / sync_s
    b0, b1 = cu.cpu_b0, cu.cpu_b1
    workers_cpu = sum(v - b0.children.get(p, 0.0) for p, v in b1.children.items())
    secs = cu.window.seconds()
    wall = cu.window.wall
    cpu = {
        "b_event_loop": b1.main_thread - b0.main_thread,
        "b_other_threads": b1.main_other - b0.main_other,
        "b_verify_workers": workers_cpu,
        "b_total": secs["node_b"],
        "a_total": secs["node_a"],
        "benchmark_client": secs["benchmark_client"],
        "other_processes": secs["other_processes"],
        "hypervisor_steal": secs["hypervisor_steal"],
        "decode_action_minimum": n / rates.decode_action,
    }
    mb, ma = cu.metrics_b, cu.metrics_a
    fetches = int(bl.msum(mb, "coopnet_gossip_requests_total", direction="out", kind="fetch"))
    reconciles = int(bl.msum(mb, "coopnet_gossip_requests_total", direction="out", kind="reconcile"))
    rejected = {
        f"{dict(ls).get('source')}:{dict(ls).get('code')}": int(v)
        for (name, ls), v in mb.items()
        if name == "coopnet_actions_rejected_total" and v
    }
    rounds = {dict(ls).get("outcome", "?"): int(v) for (name, ls), v in mb.items() if name == "coopnet_reconciliations_total" and v}
    sessions = [(int(x), float(y)) for x, y in re.findall(r"catch-up done: (\d+) actions in ([\d.]+) s", log_b)]
    fetching_s = sum(y for _, y in sessions)
    b_in = bl.msum(mb, "coopnet_gossip_bytes_total", direction="in")
    b_out = bl.msum(mb, "coopnet_gossip_bytes_total", direction="out")
    # The rate this build would reach with the machine to itself, from CPU per action: one core for
    # B's event loop, W cores for its W workers, all cores for A and B together.
    per = {k: 1e6 * v / n for k, v in cpu.items()}
    ceilings = [1e6 / max(per["b_event_loop"], 1e-9), (os.cpu_count() or 1) * 1e6 / max(per["b_total"] + per["a_total"], 1e-9)]
    if workers_b:
        ceilings.append(workers_b * 1e6 / max(per["b_verify_workers"], 1e-9))
    return {
        "settings": {
            "actions": n,
            "members": args.members,
            "fetch_batch": args.fetch_batch,
            "verify_workers_b": workers_b,
            "synchronous": args.synchronous,
            "anti_entropy_interval_s": args.interval,
        },
        "machine": bl.machine_info(),
        "limits_single_core": bl.rates_view(rates),
        "signing_per_s": round(sign_rate),
        "workload": {
            "action_bytes_mean": round(work.action_bytes_mean, 1),
            "body_bytes": [work.body_bytes_min, round(work.body_bytes_mean, 1), work.body_bytes_max],
        },
        "node_a_ingest": {
            "accepted_per_s": round(n / ingest_a.wall),
            "wall_s": round(ingest_a.wall, 2),
            "statuses": dict(ingest_a.post.statuses),
        },
        "catchup": {
            "held_by_b": cu.node_info_b["counts"]["actions"],
            "from_b_start_s": round(cu.done_s, 2),
            "b_healthy_after_s": round(cu.healthy_s, 2),
            "first_action_seen_after_s": round(cu.first_s, 2) if cu.first_s is not None else None,
            "sync_window_s": round(sync_s, 2),
            "actions_per_s_from_start": round(rate_start),
            "actions_per_s_sync_window": round(rate_sync),
            "ratio_to_libsodium": round(rate_start / sod, 3),
            "ratio_to_libsodium_median": round(rate_start / median, 3),
            "ratio_sync_window_to_libsodium": round(rate_sync / sod, 3),
            "target_ratio": TARGET_RATIO,
            "target_met": rate_start / sod >= TARGET_RATIO,
            "poll_interval_s": POLL_S,
            "polls": cu.polls,
            "fetch_sessions": [{"actions": x, "seconds": y} for x, y in sessions],
            "actions_per_s_while_fetching": round(n / fetching_s) if fetching_s else None,
            "reconciliations_by_outcome": rounds,
            "rejected_by_source_code": rejected,
            "b_ingest_results": cu.node_info_b.get("submitted", {}),
            "fetch_requests": fetches,
            "actions_per_fetch": round(n / max(fetches, 1), 1),
            "reconcile_requests": reconciles,
            "b_peer_bytes_in": int(b_in),
            "b_peer_bytes_out": int(b_out),
            "b_bytes_in_per_action": round(b_in / n, 1),
            "a_served_fetches": int(bl.msum(ma, "coopnet_gossip_requests_total", direction="in", kind="fetch")),
        },
        "memory_b": {
            "peak_rss_tree_mb": round(sampler.peak_rss_kb / 1024, 1),
            "peak_pss_tree_mb": round(sampler.peak_pss_kb / 1024, 1),
            "processes_at_peak": sampler.peak_processes,
            "samples": sampler.samples,
        },
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_cores": {k: round(v / wall, 2) for k, v in cpu.items() if k != "decode_action_minimum"},
        "cpu_us_per_action": {k: round(v, 1) for k, v in per.items() if k != "decode_action_minimum"},
        "ceiling_if_idle_per_s": round(min(ceilings)),
        "window": {
            "wall_s": round(wall, 2),
            "loadavg_start": [round(x, 2) for x in cu.window.load0],
            "loadavg_end": [round(x, 2) for x in cu.window.load1],
        },
    }


def render(fig: dict[str, Any], out: TextIO) -> None:
    s, m, lim, c, mem, cs, cc, pa = (
        fig["settings"],
        fig["machine"],
        fig["limits_single_core"],
        fig["catchup"],
        fig["memory_b"],
        fig["cpu_seconds"],
        fig["cpu_cores"],
        fig["cpu_us_per_action"],
    )
    sod = lim["libsodium_verify_per_s"]
    sessions = ", ".join(f"{x['actions']:,} in {x['seconds']:g} s" for x in c["fetch_sessions"])

    def ok(flag: bool) -> str:
        return "MET" if flag else "NOT MET"

    lines = [
        "",
        f"coopnet catch-up benchmark: a fresh node B syncs {s['actions']:,} actions ({s['members']:,} members) from its one peer A",
        f"  B: fetch_batch {s['fetch_batch']}, verify_workers {s['verify_workers_b']}, synchronous {s['synchronous']}; coopnet {m['revision']} (code {m['code_digest']})",
        f"  machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, SQLite {m['sqlite']}; load average {m['loadavg_at_start']} at start",
        "",
        f"machine limit, one core, this run: libsodium {sod:,} verifications/s (best round; median {lim['libsodium_median_per_s']:,});"
        f" OpenSSL {lim['openssl_verify_per_s']:,}/s; decode_action {lim['decode_action_per_s']:,}/s",
        f"A ingested them first over its client API at {fig['node_a_ingest']['accepted_per_s']:,} actions/s",
        "",
        "catch-up",
        f"  B holds all {c['held_by_b']:,} after      {c['from_b_start_s']:>8.2f} s from its start (healthy after {c['b_healthy_after_s']:.2f} s,"
        f" first action after {c['first_action_seen_after_s']} s; polled every {c['poll_interval_s']:g} s)",
        f"  rate from B's start              {c['actions_per_s_from_start']:>8,} actions/s   = {c['ratio_to_libsodium']:.2f}x libsodium"
        f" (target >= {c['target_ratio']}: {ok(c['target_met'])}; {c['ratio_to_libsodium_median']:.2f}x the median round)",
        f"  rate over the sync window        {c['actions_per_s_sync_window']:>8,} actions/s   = {c['ratio_sync_window_to_libsodium']:.2f}x libsodium"
        f" ({c['sync_window_s']:.2f} s from B's first stored action to its last)",
        f"  rate while fetching              {c['actions_per_s_while_fetching'] or 0:>8,} actions/s"
        f"   (the node's own catch-up sessions: {sessions})",
        f"  reconciliations {c['reconciliations_by_outcome']}; B's ingest results {c['b_ingest_results']}",
        f"  {c['fetch_requests']} fetches ({c['actions_per_fetch']:g} actions each), {c['reconcile_requests']} reconcile requests;"
        f" B received {c['b_peer_bytes_in'] / 1e6:.1f} MB of peer bodies ({c['b_bytes_in_per_action']:.0f} B/action)",
        "",
        f"B's memory: peak RSS {mem['peak_rss_tree_mb']:.1f} MB (node + workers, {mem['processes_at_peak']} processes), peak PSS {mem['peak_pss_tree_mb']:.1f} MB",
        "",
        f"CPU from B's start to done ({fig['window']['wall_s']:.2f} s): core-seconds, cores, us per action",
        f"  B event-loop thread      {cs['b_event_loop']:>7.2f} s  {cc['b_event_loop']:.2f}  {pa['b_event_loop']:>6} us",
        f"  B other threads          {cs['b_other_threads']:>7.2f} s  {cc['b_other_threads']:.2f}  {pa['b_other_threads']:>6} us",
        f"  B verify workers         {cs['b_verify_workers']:>7.2f} s  {cc['b_verify_workers']:.2f}  {pa['b_verify_workers']:>6} us",
        f"  B total                  {cs['b_total']:>7.2f} s  {cc['b_total']:.2f}  {pa['b_total']:>6} us",
        f"  A total (serving)        {cs['a_total']:>7.2f} s  {cc['a_total']:.2f}  {pa['a_total']:>6} us",
        f"  benchmark (polling)      {cs['benchmark_client']:>7.2f} s  {cc['benchmark_client']:.2f}",
        f"  other processes          {cs['other_processes']:>7.2f} s  {cc['other_processes']:.2f}",
        f"  hypervisor steal         {cs['hypervisor_steal']:>7.2f} s  {cc['hypervisor_steal']:.2f}",
        f"  decode_action alone would need {cs['decode_action_minimum']:.2f} s of one core",
        f"  ceiling from CPU per action, with the machine to itself: {fig['ceiling_if_idle_per_s']:,} actions/s"
        f" ({fig['ceiling_if_idle_per_s'] / sod:.2f}x libsodium)",
        f"  load average {fig['window']['loadavg_start']} -> {fig['window']['loadavg_end']}",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--actions", type=int, default=100_000, help="actions A holds and B syncs (default 100000)")
    p.add_argument("--members", type=int, default=1000, help="members signing them, one chain each (default 1000)")
    p.add_argument("--fetch-batch", type=int, default=2000, help="B's federation.fetch_batch (default 2000, the node default)")
    p.add_argument("--workers", type=int, default=None, help="B's limits.verify_workers (default: the node's default)")
    p.add_argument("--a-workers", type=int, default=None, help="A's limits.verify_workers while it ingests (default: the node's)")
    p.add_argument("--synchronous", choices=("full", "normal"), default="full", help="store.synchronous of both nodes (default full)")
    p.add_argument("--interval", type=float, default=None, help="federation.anti_entropy_interval of both nodes (default: the node's)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds B may take (default 1800)")
    p.add_argument("--rate-seconds", type=float, default=2.5, help="seconds for each single-core rate (default 2.5)")
    p.add_argument("--sign-procs", type=int, default=os.cpu_count() or 1, help="processes signing (default: all cores)")
    p.add_argument("--keep", action="store_true", help="keep the nodes' data directories and logs (printed at the end)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    a = p.parse_args(argv)
    if not 1 <= a.actions <= 10_000_000 or not 1 <= a.members <= a.actions or a.fetch_batch < 1 or a.sign_procs < 1:
        p.error("--actions 1-10000000, --members 1..actions, --fetch-batch and --sign-procs >= 1")
    if (a.workers is not None and a.workers < 0) or (a.a_workers is not None and a.a_workers < 0):
        p.error("--workers and --a-workers must be >= 0")
    if not 1 <= a.timeout <= 86_400 or not 0.1 <= a.rate_seconds <= 60 or (a.interval is not None and not 0.05 <= a.interval <= 600):
        p.error("--timeout 1-86400, --rate-seconds 0.1-60, --interval 0.05-600")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    bl.install_signal_handlers()
    say(out, f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    genesis = sign_genesis(ib.founder_key(), ts=ib.TS0, body={"name": "Catch-up benchmark", "about": "synced by a fresh node"})
    coop = genesis.id

    say(out, f"1/5 single-core rates (~{args.rate_seconds:g} s each) ...")
    sample = bl.sample_actions(256, coop)
    rates = ib.measure_rates(sample, args.rate_seconds)
    say(out, f"    libsodium {rates.libsodium:,.0f}/s, OpenSSL {rates.openssl:,.0f}/s, decode_action {rates.decode_action:,.0f}/s")

    say(out, f"2/5 signing {args.actions:,} actions from {args.members:,} members in {args.sign_procs} processes ...")
    chains, sign_rate = bl.presign(ib.chain_lengths(args.actions, args.members), coop, args.sign_procs, out)
    work = ib.build_workload(genesis, chains, min(4, args.members), 1000)
    del chains

    with bl.NodeSet("coopnet-bench-catchup-", keep=args.keep) as ns:
        a, b = ns.init(2)
        sync, interval = args.synchronous, args.interval
        ns.configure(a, [b], bl.NodeSettings(synchronous=sync, anti_entropy_interval=interval, verify_workers=args.a_workers))
        ns.configure(
            b,
            [a],
            bl.NodeSettings(synchronous=sync, anti_entropy_interval=interval, verify_workers=args.workers, fetch_batch=args.fetch_batch),
        )
        workers_b = bl.load_config(b.data_dir / bl.CONFIG_NAME, env={}).limits.verify_workers
        try:
            say(out, f"3/5 node A ingests {work.actions:,} actions over its client API ...")
            ns.start(a)
            ingest_a = asyncio.run(ib.run_ingest(a.as_process(), work, out))
            if ingest_a.node_counts.get("actions") != work.actions + 1:
                raise BenchError(f"A holds {ingest_a.node_counts.get('actions')} actions, expected {work.actions + 1}")
            say(out, f"    {work.actions / ingest_a.wall:,.0f} actions/s")

            say(out, "4/5 starting the fresh node B (A is its only peer), until it holds everything ...")
            cu = asyncio.run(catch_up(ns, a, b, work.actions + 1, args.timeout, out))
            say(out, f"    B holds everything {cu.done_s:.1f} s after its start")
        except BaseException:
            for n in ns.nodes:
                if n.proc is not None and n.proc.poll() is not None and n.proc.returncode not in (0, -15):
                    say(sys.stderr, f"node {'AB'[n.index]} exited with status {n.proc.returncode}; its log ends:\n{n.log_tail(15)}")
            raise
        ns.stop()
        received = bl.read_received_at(b, coop)
        log_b = b.log_path.read_text(errors="replace")
        received.pop(coop, None)  # the genesis comes first, as a separate step of the reconciliation
        if len(received) != work.actions:
            raise BenchError(f"B's store holds {len(received)} actions of the co-op besides the genesis, expected {work.actions}")

    say(out, "5/5 libsodium again, now that the nodes are stopped ...")
    ib.remeasure_libsodium(rates, sample)
    fig = figures(args, rates, sign_rate, work, ingest_a, cu, received, workers_b, log_b)
    return bl.emit(fig, args.json, render)


if __name__ == "__main__":
    bl.run_main(main, "catch-up")
