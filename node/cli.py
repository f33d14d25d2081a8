"""The ``coopnet`` command.

Readable output by default, ``--json`` for scripts. Exit status: 0 success, 1 the node or the
input said no (the error code is printed), 2 a usage error.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from protocol import ProtocolError, sign_genesis
from protocol.ids import IdKind, format_id, parse_id
from protocol.peer import parse_origin

from .client import DEFAULT_URL, Client, ClientError
from .config import CONFIG_NAME, DEFAULT_ADMIN_LISTEN, ConfigError, load_config, load_federation_file
from .keyfile import KeyFileError, read_key_file, write_key_file
from .node import URL_FILE, init_data_dir, serve
from .ops import advertise_problem, setup_logging
from .store import StoreError
from .views import json_to_value


class _Console:
    """A rich Console made on first use: ``coopnet run`` as a service never needs one, and rich
    is a few megabytes of a node that aims to stay small."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def get(self) -> Any:
        """The rich Console itself, made now if it was not yet."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    # Python looks special methods up on the type, never through __getattr__, and rich uses a
    # console as a context manager (Live.stop, Live.refresh): forward them explicitly.
    def __enter__(self) -> Any:
        return self.get().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.get().__exit__(*exc)


def _plain(text: Any) -> str:
    """``text`` as it is, not as rich markup: names, purposes, titles, reasons, URLs and errors come
    from others (a stranger names a co-op ``[/]``, and an unescaped print of it raises MarkupError)."""
    from rich.markup import escape  # only readable output loads rich

    return escape(str(text))


def Table(*columns: str, **options: Any) -> Any:
    from rich.table import Table as RichTable

    return RichTable(*columns, **options)


console: Any = _Console()
err_console: Any = _Console(stderr=True)


def default_data_dir() -> Path:
    return Path(os.environ.get("COOPNET_DATA_DIR") or Path.home() / ".coopnet")


def _fail(code: str, message: str, as_json: bool, extra: dict[str, Any] | None = None) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": code, "message": message, **(extra or {})}))
    else:
        err_console.print(f"[bold red]error[/] [red]{_plain(code)}[/]: {_plain(message)}")
    sys.exit(1)


def _out(obj: dict[str, Any], as_json: bool, readable: Any = None) -> None:
    if as_json or readable is None:
        click.echo(json.dumps(obj, indent=None if as_json else 2))
    else:
        readable(obj)


def _node_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("COOPNET_NODE"):
        return os.environ["COOPNET_NODE"]
    url_file = default_data_dir() / URL_FILE
    if url_file.exists():
        return url_file.read_text().strip()
    return DEFAULT_URL


class Ctx:
    def __init__(self, node: str | None, as_json: bool) -> None:
        self.node_url = node
        self.as_json = as_json

    @property
    def client(self) -> Client:
        return Client(_node_url(self.node_url))


_pass_obj = click.make_pass_decorator(Ctx)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Ctx).as_json = True


def pass_ctx(f: Any) -> Any:
    """Pass the shared Ctx, and accept --json after the subcommand too (coopnet post ... --json)."""
    option = click.option("--json", "_json", is_flag=True, expose_value=False, callback=_set_json, help="Print JSON for scripts.")
    return option(_pass_obj(f))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--node", "node", metavar="URL", help="Node to talk to (default: $COOPNET_NODE, the local node's address, or http://127.0.0.1:8470)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.version_option(package_name="coopnet")
@click.pass_context
def main(ctx: click.Context, node: str | None, as_json: bool) -> None:
    """coopnet: a federated node for cooperative platforms."""
    ctx.obj = Ctx(node, as_json)


# ---- node lifecycle ---------------------------------------------------------------------------


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the node keeps its files (default: $COOPNET_DATA_DIR or ~/.coopnet).",
)
@click.option("--listen", default="127.0.0.1:8470", show_default=True, help="Address the node will listen on.")
@click.option("--join", "join", type=click.Path(path_type=Path), default=None, help="A federation file: join that federation.")
@click.option("--advertise-url", default="", help="How peers reach this node, if not the listen address.")
@click.option(
    "--admin-listen", default=DEFAULT_ADMIN_LISTEN, show_default=True, help='Address of the admin API (port 0: any free port; "": none).'
)
@pass_ctx
def init(c: Ctx, data_dir: Path | None, listen: str, join: Path | None, advertise_url: str, admin_listen: str) -> None:
    """Create a data directory: config, node key and admin token (0600), an empty store on first run."""
    data_dir = data_dir or default_data_dir()
    host, _, port = listen.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
        raise click.BadParameter("expected HOST:PORT", param_hint="--listen")
    if advertise_url:
        try:
            parse_origin(advertise_url.removesuffix("/"))
        except ValueError as e:  # checked before anything is written: the config would not load
            raise click.BadParameter(str(e), param_hint="--advertise-url") from None
    problem = advertise_problem(host, int(port), advertise_url)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--listen")
    admin_host, _, admin_port = admin_listen.rpartition(":")
    if admin_listen and (not admin_host or not (admin_port.isascii() and admin_port.isdigit()) or not 0 <= int(admin_port) < 65536):
        raise click.BadParameter('expected HOST:PORT, or "" for no admin API', param_hint="--admin-listen")
    try:
        federation = load_federation_file(join) if join is not None else None
    except ConfigError as e:
        _fail("bad_federation_file", str(e), c.as_json)
    try:
        cfg = init_data_dir(
            data_dir, host=host, port=int(port), federation=federation, advertise_url=advertise_url, admin_listen=admin_listen
        )
        node_id = format_id(IdKind.NODE, read_key_file(cfg.key_path, "node").public_key)
    except (ConfigError, KeyFileError) as e:
        _fail("exists", str(e), c.as_json)
    out: dict[str, Any] = {
        "data_dir": str(data_dir),
        "config": str(data_dir / CONFIG_NAME),
        "node_id": node_id,
        "listen": f"{cfg.host}:{cfg.port}",
    }
    if federation is not None:
        out["federation"] = federation.name
        out["peers"] = len(federation.peers)

    def readable(o: dict[str, Any]) -> None:
        console.print(
            f"Initialised [bold]{_plain(o['data_dir'])}[/]\n  node id  {o['node_id']}\n  config   {_plain(o['config'])}\n  listen   {_plain(o['listen'])}"
        )
        if federation is not None:
            console.print(f"  joins    federation [bold]{_plain(federation.name)}[/] ({len(federation.peers)} bootstrap peers)")
            if not federation.open:
                console.print("  The federation is closed: its members must list this node id before they accept it.")
        console.print(f"Start it with: coopnet run --data-dir {_plain(o['data_dir'])}")

    _out(out, c.as_json, readable)


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data directory made by 'coopnet init'.")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), default=None, help="Config file (default: DATA_DIR/coopnet.toml)."
)
@pass_ctx
def run(c: Ctx, data_dir: Path | None, config_file: Path | None) -> None:
    """Run the node until interrupted (Ctrl-C or SIGTERM)."""
    path = config_file or (data_dir or default_data_dir()) / CONFIG_NAME
    env = dict(os.environ)
    if data_dir is not None:
        env["COOPNET_DATA_DIR"] = str(data_dir)
    try:
        cfg = load_config(path, env=env)
    except ConfigError as e:
        _fail("bad_config", str(e), c.as_json)
    interactive = sys.stderr.isatty() and cfg.log_format == "text"  # JSON logs stay one object per line
    setup_logging(cfg.log_level, cfg.log_format, err_console if interactive else None)
    try:
        asyncio.run(serve(cfg, err_console.get() if interactive else None))
    except (KeyFileError, OSError, StoreError, sqlite3.Error) as e:
        _fail("cannot_start", str(e) if isinstance(e, (OSError, KeyFileError)) else f"{e} (data directory {cfg.data_dir})", c.as_json)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("member.key"), show_default=True, help="Where to write the key.")
@pass_ctx
def keygen(c: Ctx, out: Path) -> None:
    """Create a member key file (mode 0600). The private key never leaves it."""
    try:
        key = write_key_file(out, "member")
    except KeyFileError as e:
        _fail("exists", str(e), c.as_json)
    member = format_id(IdKind.MEMBER, key.public_key)
    _out(
        {"member_id": member, "key_file": str(out)},
        c.as_json,
        lambda o: console.print(f"Member key written to [bold]{_plain(o['key_file'])}[/]\n  member id  {o['member_id']}"),
    )


# ---- acting -----------------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _submit_one(c: Ctx, raw: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        resp = c.client.submit([raw], single=True, headers=headers)
    except ClientError as e:
        _fail(e.code, e.message, c.as_json, {"results": e.body.get("results", [])})
    return resp["results"][0]


def _load_member_key(c: Ctx, key_file: Path) -> Any:
    try:
        return read_key_file(key_file, "member")
    except KeyFileError as e:
        _fail("bad_key_file", str(e), c.as_json)


@main.group()
def coop() -> None:
    """Co-ops: create one."""


@coop.command("create")
@click.argument("name")
@click.option("--purpose", default="", help="What the co-op is for.")
@click.option(
    "--key", "key_file", type=click.Path(path_type=Path), default=Path("member.key"), show_default=True, help="Founder's member key."
)
@click.option("--invite", default=None, help="The invite token a node that founds co-ops by invite gave you.")
@pass_ctx
def coop_create(c: Ctx, name: str, purpose: str, key_file: Path, invite: str | None) -> None:
    """Found a co-op: sign its genesis action with your key and submit it."""
    key = _load_member_key(c, key_file)
    body: dict[str, Any] = {"name": name}
    if purpose:
        body["purpose"] = purpose
    try:
        genesis = sign_genesis(key, ts=_now_ms(), body=body)
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)
    result = _submit_one(c, genesis.raw, {"Coopnet-Invite": invite} if invite else None)
    out = {
        "coop": format_id(IdKind.COOP, genesis.id),
        "name": name,
        "founder": format_id(IdKind.MEMBER, key.public_key),
        "status": result["status"],
    }
    _out(out, c.as_json, lambda o: console.print(f"Co-op [bold]{_plain(o['name'])}[/] founded ({o['status']})\n  id  {o['coop']}"))


def _act(
    c: Ctx, key_file: Path, coop_text: str, kind: str, body: Any, extra: list[bytes] | None = None, *, see_all: bool = True
) -> dict[str, Any]:
    """Sign ``kind`` as the key's next action in the co-op, having seen the co-op's tips (and
    ``extra``), submit it, and return what to print. Exits 1 with the node's code if it is refused."""
    from .acting import ActingError, Actor

    key = _load_member_key(c, key_file)
    _parse(c, IdKind.COOP, coop_text)
    try:
        return Actor(c.client, key, coop_text).act(kind, body, extra or [], see_all=see_all)
    except ActingError as e:
        _fail(e.code, e.message, c.as_json, e.extra)
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)


def _print_acted(o: dict[str, Any]) -> None:
    console.print(f"{o['status']}: {o['kind']} #{o['seq']}\n  id  {o['id']}")
    if o["status"] == "held":
        console.print(f"  [yellow]not stored yet: {_plain(o.get('message', 'this node holds it back'))}[/]")
        console.print("  (you are not known to this co-op on this node: `coopnet member apply` first)")
    elif o["status"] == "pending" and o.get("message"):
        console.print(f"  {_plain(o['message'])}")
    fold = o.get("fold")
    if not fold:
        return
    if fold["result"] == "rejected":
        console.print(
            f"  [yellow]stored, but the co-op's rules reject it: {_plain(fold.get('explanation') or fold['reason'])}[/] ({fold['reason']})"
        )
    elif fold["result"] == "deferred":
        console.print(f"  {_plain(fold.get('explanation', 'waiting for actions it depends on'))}")
        for w in fold.get("waits_for", [])[:5]:
            console.print(f"    waits for {w}")
    prop = fold.get("proposal") or {}
    if prop.get("counted") is False:
        console.print(
            f"  [yellow]the proposal was already decided ({prop['status']}) by {prop['decided_by']}: this vote is recorded but not counted[/]"
        )


def _finish(c: Ctx, out: dict[str, Any], readable: Any = _print_acted) -> None:
    """Print what happened; exit 1 when the co-op's rules rejected the action, or the node held
    it back (an unknown author's action is not stored, and will not be unless they apply)."""
    _out(out, c.as_json, readable)
    if (out.get("fold") or {}).get("result") == "rejected" or out.get("status") == "held":
        sys.exit(1)


def _json_body(c: Ctx, text: str, option: str) -> Any:
    try:
        return json_to_value(json.loads(text))
    except json.JSONDecodeError as e:
        _fail("bad_body", f"{option} is not JSON: {e}", c.as_json)
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)


def _acting(f: Any) -> Any:
    """The options every acting command shares: which co-op, which key."""
    f = click.option(
        "--key", "key_file", type=click.Path(path_type=Path), default=Path("member.key"), show_default=True, help="Your member key."
    )(f)
    return click.option("--coop", "coop_text", required=True, help="Co-op id (coop_...).")(f)


def _parse(c: Ctx, kind: IdKind, text: str) -> bytes:
    """An id given on the command line, or exit 1 with bad_id."""
    try:
        return parse_id(kind, text)
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)


@main.command()
@_acting
@click.option("--kind", required=True, help="Action kind, e.g. ride.offer.")
@click.option("--body", "body_json", default="{}", show_default=True, help='Body as JSON (integers only; bytes as {"$bin": base64}).')
@click.option("--dep", "deps", multiple=True, help="An action id this one depends on (repeatable).")
@pass_ctx
def post(c: Ctx, coop_text: str, key_file: Path, kind: str, body_json: str, deps: tuple[str, ...]) -> None:
    """Sign an action and submit it; the next seq and prev are found from the node, and the
    co-op's tips (plus any --dep) are named as what you have seen."""
    extra = [_parse(c, IdKind.ACTION, d) for d in deps]
    _finish(c, _act(c, key_file, coop_text, kind, _json_body(c, body_json, "--body"), extra))


# ---- reading ----------------------------------------------------------------------------------


def _print_action(o: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None)
    for k in ("id", "coop", "author", "seq", "prev", "kind", "ts", "status"):
        t.add_row(k, _plain(o.get(k)))
    t.add_row("deps", ", ".join(o.get("deps", [])) or "-")
    t.add_row("body", _plain(json.dumps(o.get("body"), ensure_ascii=False)) if o.get("body_present") else "(not carried)")
    console.print(t)


@main.command()
@click.argument("ident")
@pass_ctx
def show(c: Ctx, ident: str) -> None:
    """Show an action (act_...), a co-op (coop_...) or an equivocation proof (eqv_...)."""
    prefix = ident.split("_", 1)[0]
    paths = {"act": "/api/v1/actions/", "coop": "/api/v1/coops/", "eqv": "/api/v1/proofs/"}
    if prefix not in paths:
        _fail("bad_id", f"{ident!r}: expected an id starting with act_, coop_ or eqv_", c.as_json)
    _parse(c, IdKind(prefix), ident)
    try:
        obj = c.client.get(paths[prefix] + ident)
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    def readable(o: dict[str, Any]) -> None:
        if prefix == "act":
            _print_action(o)
        elif prefix == "coop":
            console.print(
                f"[bold]{_plain(o['name'])}[/]  {o['id']}\n  founder  {o['founder']}\n  actions  {o['actions']}\n  members with a chain  {o['chains']}"
            )
            body = o["genesis"].get("body") or {}
            if body.get("purpose"):
                console.print(f"  purpose  {_plain(body['purpose'])}")
        else:
            console.print(f"equivocation proof {o['id']}\n  co-op  {o['coop']}\n  author {o['author']}\n  seq    {o['seq']}")

    _out(obj, c.as_json, readable)


@main.command("list")
@click.argument("coop_text", required=False, metavar="[COOP]")
@click.option("--author", default=None, help="Only this member's actions (mem_...).")
@click.option("--kind", default=None, help="Only actions of this kind.")
@click.option("--after", default=None, help="Continue after this cursor (from a previous page).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
def list_cmd(c: Ctx, coop_text: str | None, author: str | None, kind: str | None, after: str | None, limit: int) -> None:
    """List co-ops, or a co-op's actions (oldest first, paginated)."""
    try:
        if coop_text is None:
            obj = c.client.get("/api/v1/coops")
        else:
            obj = c.client.get(f"/api/v1/coops/{coop_text}/actions", author=author, kind=kind, after=after, limit=limit)
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    def readable(o: dict[str, Any]) -> None:
        if coop_text is None:
            t = Table("co-op", "name", "actions", "founder")
            for x in o["coops"]:
                t.add_row(x["id"], _plain(x["name"]), str(x["actions"]), x["founder"])
        else:
            t = Table("pos", "kind", "author", "seq", "id")
            for x in o["actions"]:
                t.add_row(str(x["pos"]), x["kind"], x["author"][:16] + "…", str(x["seq"]), x["id"])
        console.print(t)
        if coop_text is not None and o.get("next"):
            console.print(f"more: coopnet list {coop_text} --after {o['next']}")

    _out(obj, c.as_json, readable)


@main.command()
@pass_ctx
def status(c: Ctx) -> None:
    """Show the node's id, version, uptime and counts."""
    try:
        info = c.client.node()
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    try:
        info["peers"] = c.client.get("/api/v1/peers")["peers"]
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    def readable(o: dict[str, Any]) -> None:
        t = Table(show_header=False, box=None)
        t.add_row("node", o["node_id"])
        t.add_row("url", c.client.url)
        t.add_row("version", f"{o['version']} (protocol {o['protocol']})")
        t.add_row("uptime", f"{o['uptime_s']} s")
        if o.get("federation"):
            t.add_row("federation", _plain(o["federation"]))
        for k, v in o["counts"].items():
            t.add_row(k, str(v))
        rejected = o["submitted"]["rejected"]
        t.add_row("rejected", ", ".join(f"{k}={v}" for k, v in sorted(rejected.items())) or "0")
        cu = o.get("catchup") or {}
        if cu.get("active"):
            eta = f", ~{cu['eta_s']:.0f} s left" if cu.get("eta_s") is not None else ""
            pct = 100 * cu["done"] / max(cu["total"], 1)
            t.add_row("catch-up", f"{cu['done']}/{cu['total']} actions ({pct:.0f}%), {cu['rate']:.0f}/s{eta}")
        else:
            t.add_row("catch-up", "idle (in sync with the last peer reconciled)")
        t.add_row("peers", f"{o.get('peers_reachable', 0)} reachable of {len(o['peers'])}")
        console.print(t)
        if o["peers"]:
            pt = Table("peer", "url", "state", "last success", "failures", "score", "behind")
            now_ms = time.time_ns() // 1_000_000
            for p in o["peers"]:
                ago = f"{(now_ms - p['last_success_ms']) / 1000:.0f} s ago" if p["last_success_ms"] else "never"
                behind = "-" if p["behind"] is None else str(p["behind"])
                pt.add_row(p["id"][:20] + "…", _plain(p["url"]), p["state"], ago, str(p["failures"]), str(p["score"]), behind)
            console.print(pt)

    _out(info, c.as_json, readable)


# Registered on ``main`` by importing them: the governance, operator and admission commands.
from . import admission_cli, cli_gov, cli_ops  # noqa: E402, F401
