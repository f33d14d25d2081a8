#!/usr/bin/env python3
"""A tester's cluster of real coopnet node processes on this machine.

    python scripts/cluster.py up 5 --topology ring       # keys, configs, processes, a co-op, a manifest
    python scripts/cluster.py load --count 2000           # simulated members post signed actions
    python scripts/cluster.py status                      # per node: actions, head digest; converged?
    python scripts/cluster.py wait-converged --timeout 60 # exit 0 once every live node holds the same
    python scripts/cluster.py partition 0,1/2,3,4         # nodes in different groups stop talking
    python scripts/cluster.py heal
    python scripts/cluster.py kill 2                      # SIGKILL node 2's process group
    python scripts/cluster.py restart 2                   # same data dir, same port
    python scripts/cluster.py verify                      # every acknowledged action is on every node
    python scripts/cluster.py down [--purge]

Everything lives in a state directory (``--dir``, default ``.coopnet-cluster/``); defaults come
from ``--config`` (see ``configs/cluster.toml``), and flags override them. Nodes listen on
127.0.0.1 only, except with ``up --netns`` (root only), where each node has its own network
namespace on a private bridge in 10.200.0.0/24 with ``tc netem`` delay and loss.

Exit status: 0 success; 1 the cluster said no (not converged, an action rejected, a node
refused, an acknowledged action missing); 2 a usage error or a command that could not be done.
How it works: see the docstring of ``scripts/cluster_lib.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import click
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster_lib as cl

from node.config import load_config
from node.keyfile import write_key_file
from protocol.ids import IdKind, format_id

DEFAULT_DIR = Path(".coopnet-cluster")
# Not a terminal (a test, a pipe): wide enough that tables keep ids and digests readable.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


@dataclasses.dataclass
class Ctx:
    state: Path
    settings: cl.Settings


def _fail(message: str, status: int = 2) -> NoReturn:
    err.print(f"[bold red]error[/]: {message}", highlight=False)
    sys.exit(status)


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except cl.ClusterError as e:
        _fail(str(e))


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dir",
    "state",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DIR,
    show_default=True,
    help="State directory: manifest, node data dirs, logs.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Default settings (TOML, see configs/cluster.toml); flags override them.",
)
@click.pass_context
def main(ctx: click.Context, state: Path, config: Path | None) -> None:
    """Drive a cluster of real coopnet node processes on this machine.

    Typical run: up 5, load --count 2000, wait-converged --timeout 60, partition 0,1/2,3,4, heal,
    kill 2, restart 2, verify, down --purge. Exit status: 0 success, 1 the cluster said no (not
    converged, rejected, refused, missing), 2 usage error or a command that could not be done."""
    settings = _run(lambda: cl.load_settings(config))
    ctx.obj = Ctx(state, settings)


pass_ctx = click.make_pass_decorator(Ctx)


# ---- up ----------------------------------------------------------------------------------------


@main.command()
@click.argument("n", type=click.IntRange(1, cl.MAX_NODES), required=False)
@click.option("--topology", type=click.Choice(cl.TOPOLOGIES), default=None, help="Who peers with whom [config: full].")
@click.option("--k", type=click.IntRange(1), default=None, help="Peers each node draws in random-k [config: 3].")
@click.option("--base-port", type=click.IntRange(0, 65535), default=None, help="Node i listens on base+i (default: free ports).")
@click.option("--interval", type=click.FloatRange(min=0.01), default=None, help="Anti-entropy interval in seconds [config: 1.0].")
@click.option("--seed", default=None, help="Derive every key from this text (reproducible cluster); default random.")
@click.option("--no-coop", is_flag=True, help="Do not found the cluster's co-op on node 0.")
@click.option("--netns", is_flag=True, help="Root only: one network namespace per node, on a private bridge.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="With --netns: netem delay per node egress, ms.")
@click.option("--loss", type=click.FloatRange(0, 100), default=0.0, help="With --netns: netem loss per node egress, percent.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@pass_ctx
def up(
    c: Ctx,
    n: int | None,
    topology: str | None,
    k: int | None,
    base_port: int | None,
    interval: float | None,
    seed: str | None,
    no_coop: bool,
    netns: bool,
    latency: float,
    loss: float,
    as_json: bool,
) -> None:
    """Start N nodes: keys, configs, data dirs, processes, a co-op; wait until all are healthy."""
    s = c.settings
    s = _run(
        lambda: dataclasses.replace(
            s,
            nodes=_pick(n, s.nodes),
            topology=_pick(topology, s.topology),
            k=_pick(k, s.k),
            base_port=_pick(base_port, s.base_port),
            interval=_pick(interval, s.interval),
        ).check("options")
    )
    if (latency or loss) and not netns:
        _fail("--latency and --loss need --netns (netem runs in the nodes' namespaces)")
    m = _run(lambda: _up(c.state, s, seed, no_coop, netns, latency, loss))
    if as_json:
        click.echo(m.to_json())
        return
    table = Table(title=f"cluster in {c.state} ({s.topology}, {len(m.nodes)} nodes)")
    for col in ("node", "id", "url", "pid", "peers", "log"):
        table.add_column(col)
    for e in m.nodes:
        table.add_row(str(e.index), e.node_id[:18] + "…", e.url, str(e.pid), ",".join(map(str, e.peers)), e.log)
    console.print(table)
    if m.coop:
        console.print(f"co-op [bold]{m.coop}[/] founded on node 0 and present on every node")


def _up(state: Path, s: cl.Settings, seed_text: str | None, no_coop: bool, netns: bool, latency: float, loss: float) -> cl.Manifest:
    if cl.manifest_path(state).exists():
        raise cl.ClusterError(f"{state} already holds a cluster; stop it and remove it with: cluster.py --dir {state} down --purge")
    leftovers = sorted(p.name for p in state.glob("node*")) if state.exists() else []
    if leftovers:
        raise cl.ClusterError(f"{state} holds node directories ({', '.join(leftovers[:3])}…) but no manifest; remove them first")
    if netns:
        cl.netns_check(latency, loss)
    state.mkdir(parents=True, exist_ok=True)
    seed = cl.new_seed(seed_text)
    created_ms = time.time_ns() // 1_000_000
    rng = random.Random(seed)
    peers = cl.topology_peers(s.nodes, s.topology, s.k, rng)
    net_info = None
    if netns:
        net_info = cl.netns_up(state, s.nodes, latency, loss)
        hosts = [f"{cl.NETNS_NET}.{i + 1}" for i in range(s.nodes)]
    else:
        hosts = [cl.HOST] * s.nodes
    try:
        ports = [s.base_port + i for i in range(s.nodes)] if s.base_port else cl.free_ports(s.nodes)
        if any(p > 65535 for p in ports):
            raise cl.ClusterError(f"--base-port {s.base_port} + {s.nodes} nodes goes past port 65535")
        entries = []
        for i in range(s.nodes):
            data_dir = (state / f"node{i}").resolve()
            key = cl.node_key(seed, i)
            url = f"http://{hosts[i]}:{ports[i]}"
            entries.append(
                cl.NodeEntry(
                    index=i,
                    node_id=format_id(IdKind.NODE, key.public_key),
                    host=hosts[i],
                    port=ports[i],
                    url=url,
                    data_dir=str(data_dir),
                    config=str(data_dir / "coopnet.toml"),
                    log=str(data_dir / "node.log"),
                    peers=peers[i],
                    netns=net_info["namespaces"][i] if net_info else None,
                )
            )
        for i, e in enumerate(entries):
            Path(e.data_dir).mkdir(parents=True)
            write_key_file(Path(e.data_dir) / "node.key", "node", cl.node_key(seed, i).seed())
            Path(e.config).write_text(cl.render_node_config(e, entries, s))
            load_config(e.config, env={})  # the node would refuse a bad config; find out now
        m = cl.Manifest(
            version=cl.MANIFEST_VERSION,
            created_ms=created_ms,
            seed=seed.hex(),
            topology=s.topology,
            k=s.k,
            settings=dataclasses.asdict(s),
            nodes=entries,
            netns=net_info,
        )
    except BaseException:
        if net_info:
            cl.netns_down(net_info)
        raise
    cl.create_manifest(state, m)
    try:
        for e in m.nodes:
            e.pid, e.started = cl.start_process(e)
            with cl.edit_manifest(state) as mm:
                mm.nodes[e.index].pid, mm.nodes[e.index].started = e.pid, e.started
        asyncio.run(cl.healthy_all(m, s.health_timeout))
        if not no_coop:
            genesis = cl.make_genesis(seed, created_ms, s.coop_name)
            coop = format_id(IdKind.COOP, genesis.id)
            asyncio.run(cl.found_coop(m, genesis.raw, coop, s.health_timeout))
            with cl.edit_manifest(state) as mm:
                mm.coop, mm.genesis, mm.founder = coop, genesis.raw.hex(), format_id(IdKind.MEMBER, genesis.author)
    except BaseException as e:
        cl.stop_all(state, 0.0 if isinstance(e, KeyboardInterrupt) else s.stop_timeout)
        raise cl.ClusterError(
            f"{e}\nthe nodes were stopped; logs are in {state}; clean up with: cluster.py --dir {state} down --purge"
        ) from None
    return cl.read_manifest(state)


# ---- load --------------------------------------------------------------------------------------


@main.command()
@click.option("--count", type=click.IntRange(1), default=None, help="Actions to post.")
@click.option("--duration", type=click.FloatRange(min=0.01), default=None, help="Seconds to post for.")
@click.option(
    "--rate", type=click.FloatRange(min=0), default=None, help="Actions per second, all members together (0: as fast as possible)."
)
@click.option("--members", type=click.IntRange(1), default=None, help="Simulated members posting [config: 20].")
@click.option("--first-member", type=click.IntRange(0), default=0, show_default=True, help="Index of the first member posting.")
@click.option("--batch", type=click.IntRange(1), default=None, help="Actions per request [config: 50].")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None, help="Requests in flight [config: 4].")
@click.option("--nodes", "node_spec", default=None, help="Post only to these nodes, e.g. 0,1 (default: any live node).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def load(
    c: Ctx,
    count: int | None,
    duration: float | None,
    rate: float | None,
    members: int | None,
    first_member: int,
    batch: int | None,
    concurrency: int | None,
    node_spec: str | None,
    as_json: bool,
) -> None:
    """Post signed actions of simulated members to random live nodes, bounded in count and time.

    Exits 1 if any action was rejected or a live node refused a request (a node that was killed
    meanwhile is not a refusal: its batch goes to another node, byte for byte)."""
    if count is None and duration is None:
        _fail("give --count N or --duration S (or both)")
    s = c.settings
    s = _run(
        lambda: dataclasses.replace(
            s,
            rate=_pick(rate, s.rate),
            members=_pick(members, s.members),
            batch=_pick(batch, s.batch),
            concurrency=_pick(concurrency, s.concurrency),
        ).check("options")
    )
    m = _run(lambda: cl.read_manifest(c.state))
    targets = _run(lambda: cl.parse_indexes(node_spec, len(m.nodes)))
    batch_limit = m.settings.get("max_batch_actions", s.max_batch_actions)
    if s.batch > batch_limit:
        _fail(f"--batch {s.batch} exceeds the nodes' max_batch_actions ({batch_limit})")

    def job() -> tuple[cl.LoadReport, list[cl.MemberHead]]:
        with cl.load_lock(c.state):
            fresh = cl.read_manifest(c.state)
            result = asyncio.run(
                cl.run_load(
                    c.state,
                    fresh,
                    count=count,
                    duration=duration,
                    rate=s.rate,
                    members=s.members,
                    first_member=first_member,
                    batch=s.batch,
                    concurrency=s.concurrency,
                    nodes=targets,
                    max_count=s.max_count,
                    max_seconds=s.max_seconds,
                    request_timeout=float(m.settings.get("request_timeout", s.request_timeout)) * 2,
                )
            )
            cl.save_heads(c.state, result[1])
            return result

    report, _ = _run(job)
    out = report.public()
    if as_json:
        click.echo(json.dumps(out))
    else:
        console.print(
            f"posted {report.posted}: accepted {report.accepted}, known {report.known}, pending {report.pending}, "
            f"rejected {out['rejected']} {out['rejected_by_code'] or ''}"
        )
        console.print(
            f"{report.requests} requests ({report.retried} retried), {report.elapsed_s:.2f} s, {report.rate:.0f} actions/s; "
            f"stopped: {report.stopped or 'done'}"
        )
        if report.lost_nodes:
            console.print(f"nodes found dead during the load (their batches went elsewhere): {report.lost_nodes}")
        for r in report.refused[:10]:
            err.print(f"[red]refused[/] {r}", highlight=False)
        if report.unsent:
            err.print(f"[red]{report.unsent} actions were taken by no node[/]")
    sys.exit(0 if report.ok else 1)


# ---- status ------------------------------------------------------------------------------------


def _status_table(m: cl.Manifest, statuses: list[cl.NodeStatus]) -> Table:
    index_of = {e.node_id: e.index for e in m.nodes}
    title = f"cluster: {len(m.nodes)} nodes, {m.topology}" + (f", partition {_groups(m.partition)}" if m.partition else "")
    table = Table(title=title)
    for col in ("node", "state", "actions", "pending", "chains", "heads digest", "peers ok", "catch-up", "offences", "url"):
        table.add_column(col)
    for st in statuses:
        style = {"up": "green", "down": "dim", "unresponsive": "red"}[st.state]
        cu = st.catchup or {}
        offences = ", ".join(f"{k} {v}" for k, v in sorted(st.offences.items()))
        if st.refused:
            offences += f" refuses {sorted(index_of.get(r, -1) for r in st.refused)}"
        table.add_row(
            str(st.index),
            f"[{style}]{st.state}[/]",
            "" if st.actions is None else str(st.actions),
            "" if st.pending is None else str(st.pending),
            "" if st.chains is None else str(st.chains),
            (st.digest or "")[:16],
            "" if st.peers_reachable is None else f"{st.peers_reachable}/{st.peers_known}",
            f"{cu.get('done')}/{cu.get('total')}" if cu.get("active") else "",
            f"[red]{offences}[/]" if offences else "",
            st.url,
        )
    return table


def _groups(groups: list[list[int]] | None) -> str:
    return "/".join(",".join(map(str, g)) for g in groups or [])


def _status_doc(m: cl.Manifest, statuses: list[cl.NodeStatus], conv: cl.Convergence, heads: bool = False) -> dict[str, Any]:
    return {
        "converged": conv.converged,
        "reference": conv.reference,
        "differences": conv.differences,
        "coop": m.coop,
        "partition": m.partition,
        "nodes": [s.public(with_heads=heads) for s in statuses],
    }


def _select(statuses: list[cl.NodeStatus], only: list[int] | None) -> list[cl.NodeStatus]:
    return statuses if only is None else [s for s in statuses if s.index in only]


@main.command()
@click.option("--nodes", "node_spec", default=None, help="Only these nodes, e.g. 0,1 (converged among them).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--heads", is_flag=True, help="With --json: include every node's chain heads.")
@pass_ctx
def status(c: Ctx, node_spec: str | None, as_json: bool, heads: bool) -> None:
    """Per node: up/down, actions, pending, chains, chain-head digest, peers; and converged yes/no.

    The offences column shows what a node holds against its peers: in a cluster of honest nodes,
    anything there is a bug."""
    m = _run(lambda: cl.read_manifest(c.state))
    only = _run(lambda: cl.parse_indexes(node_spec, len(m.nodes)))
    statuses = _select(asyncio.run(cl.cluster_status(m)), only)
    conv = cl.convergence(statuses)
    if as_json:
        click.echo(json.dumps(_status_doc(m, statuses, conv, heads)))
        return
    console.print(_status_table(m, statuses))
    console.print(f"converged: {'[green]yes[/]' if conv.converged else '[red]no[/]'}")
    for d in conv.differences:
        console.print(d, highlight=False)


@main.command("wait-converged")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, help="Seconds to wait.")
@click.option("--nodes", "node_spec", default=None, help="Only these nodes, e.g. 2,3,4 (one side of a partition).")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON.")
@pass_ctx
def wait_converged(c: Ctx, timeout: float, node_spec: str | None, as_json: bool) -> None:
    """Exit 0 once every live node holds the same chain heads and counts; else 1, saying how they differ.

    Nodes that are down (killed) are left out; a node whose process runs but does not answer
    counts as a difference."""
    m = _run(lambda: cl.read_manifest(c.state))
    only = _run(lambda: cl.parse_indexes(node_spec, len(m.nodes)))
    t0 = time.monotonic()

    async def poll() -> tuple[list[cl.NodeStatus], cl.Convergence, int]:
        async with cl.session(5.0) as http:
            statuses: list[cl.NodeStatus] = []
            conv = cl.Convergence(False, None, ["not checked"])
            for i in range(cl.MAX_POLLS):
                mm = cl.read_manifest(c.state)  # kill/restart may change pids meanwhile
                statuses = _select(list(await asyncio.gather(*(cl.node_status(http, e) for e in mm.nodes))), only)
                conv = cl.convergence(statuses)
                if conv.converged or time.monotonic() - t0 >= timeout:
                    return statuses, conv, i + 1
                await asyncio.sleep(0.2)
            return statuses, conv, cl.MAX_POLLS

    statuses, conv, polls = asyncio.run(poll())
    elapsed = time.monotonic() - t0
    if as_json:
        doc = _status_doc(m, statuses, conv)
        doc["elapsed_s"] = round(elapsed, 3)
        click.echo(json.dumps(doc))
    else:
        up_nodes = [s for s in statuses if s.state == "up"]
        down = [s.index for s in statuses if s.state == "down"]
        if conv.converged:
            ref = up_nodes[0]
            console.print(
                f"converged after {elapsed:.1f} s: nodes {[s.index for s in up_nodes]} hold {ref.actions} actions, "
                f"digest {(ref.digest or '')[:16]}" + (f" (down, not counted: {down})" if down else "")
            )
        else:
            console.print(_status_table(m, statuses))
            console.print(f"[red]not converged after {elapsed:.1f} s ({polls} looks)[/]")
            for d in conv.differences:
                console.print(d, highlight=False)
    sys.exit(0 if conv.converged else 1)


# ---- faults ------------------------------------------------------------------------------------


@main.command()
@click.argument("spec")
@pass_ctx
def partition(c: Ctx, spec: str) -> None:
    """Split the cluster: 0,1/2,3,4 makes nodes in different groups stop talking to each other."""

    def job() -> list[str]:
        with cl.edit_manifest(c.state) as m:
            groups = cl.parse_partition(spec, len(m.nodes))
            m.partition = groups
        return asyncio.run(cl.apply_partition(m))

    for line in _run(job):
        console.print(line)


@main.command()
@pass_ctx
def heal(c: Ctx) -> None:
    """Remove the partition: every node may talk to every peer again."""

    def job() -> list[str]:
        with cl.edit_manifest(c.state) as m:
            m.partition = None
        return asyncio.run(cl.apply_partition(m))

    for line in _run(job):
        console.print(line)


@main.command()
@click.argument("index", type=click.IntRange(0))
@pass_ctx
def kill(c: Ctx, index: int) -> None:
    """SIGKILL node INDEX's process group (the node and its validation workers)."""
    pid = _run(lambda: cl.kill_node(c.state, index))
    console.print(f"node {index} (pid {pid}) killed")


@main.command()
@click.argument("index", type=click.IntRange(0))
@click.option("--no-wait", is_flag=True, help="Return once the process is started, without waiting for /healthz.")
@pass_ctx
def restart(c: Ctx, index: int, no_wait: bool) -> None:
    """Start node INDEX again on its data dir and port; wait until healthy; re-apply any partition."""
    pid = _run(lambda: cl.restart_node(c.state, index, wait=not no_wait))
    console.print(f"node {index} running again (pid {pid})")


@main.command()
@click.option("--purge", is_flag=True, help="Then delete the state directory (data, logs, manifest).")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Seconds between SIGTERM and SIGKILL [config: 15].")
@pass_ctx
def down(c: Ctx, purge: bool, timeout: float | None) -> None:
    """Stop every node (SIGTERM, then SIGKILL after a deadline); remove namespaces; --purge the dir."""
    if not cl.manifest_path(c.state).exists():
        if purge and c.state.exists() and any(c.state.glob("node*/coopnet.toml")):
            shutil.rmtree(c.state)
            console.print(f"removed {c.state}")
            return
        _fail(f"no cluster in {c.state}")
    lines = _run(lambda: cl.stop_all(c.state, _pick(timeout, c.settings.stop_timeout)))
    for line in lines:
        console.print(line)
    if purge:
        shutil.rmtree(c.state)
        console.print(f"removed {c.state}")


# ---- verify ------------------------------------------------------------------------------------


@main.command()
@click.option("--nodes", "node_spec", default=None, help="Check only these nodes (default: every live node).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def verify(c: Ctx, node_spec: str | None, as_json: bool) -> None:
    """Check that every action a node ever acknowledged to `load` is stored on every live node."""
    m = _run(lambda: cl.read_manifest(c.state))
    if m.coop is None:
        _fail("the cluster has no co-op")
    targets = _run(lambda: cl.parse_indexes(node_spec, len(m.nodes))) or list(range(len(m.nodes)))
    acked = cl.read_acks(c.state)
    coop = m.coop

    async def missing_on(http: aiohttp.ClientSession, e: cl.NodeEntry) -> list[str] | None:
        if not cl.alive(e):
            return None
        info = await cl.get_json(http, e.url, "/api/v1/node")
        held = await cl.stored_ids(http, e, coop, int(info["limits"]["max_page"]))
        return sorted(acked - held)

    async def check() -> dict[int, Any]:
        async with cl.session(60.0) as http:
            found = await asyncio.gather(*(missing_on(http, m.nodes[i]) for i in targets))
        return dict(zip(targets, found, strict=True))

    result = asyncio.run(check())
    ok = all(v is not None and not v for v in result.values()) and bool(result)
    if as_json:
        click.echo(json.dumps({"ok": ok, "acknowledged": len(acked), "missing": {str(k): v for k, v in result.items()}}))
    else:
        for i, missing in result.items():
            if missing is None:
                console.print(f"node {i}: [red]down[/]")
            elif missing:
                console.print(f"node {i}: [red]{len(missing)} of {len(acked)} acknowledged actions missing[/], e.g. {missing[:3]}")
            else:
                console.print(f"node {i}: all {len(acked)} acknowledged actions stored")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
