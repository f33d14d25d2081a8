"""The ``coopnet`` command.

Readable output by default, ``--json`` for scripts. Exit status: 0 success, 1 the node or the
input said no (the error code is printed), 2 a usage error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from protocol import ProtocolError, sign_action, sign_genesis
from protocol.ids import IdKind, format_id, parse_id

from .client import DEFAULT_URL, Client, ClientError
from .config import CONFIG_NAME, ConfigError, load_config, load_federation_file
from .keyfile import KeyFileError, read_key_file, write_key_file
from .node import URL_FILE, init_data_dir, serve
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
        err_console.print(f"[bold red]error[/] [red]{code}[/]: {message}")
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
@pass_ctx
def init(c: Ctx, data_dir: Path | None, listen: str, join: Path | None, advertise_url: str) -> None:
    """Create a data directory: config, node key (0600) and an empty store on first run."""
    data_dir = data_dir or default_data_dir()
    host, _, port = listen.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
        raise click.BadParameter("expected HOST:PORT", param_hint="--listen")
    if advertise_url and not advertise_url.startswith(("http://", "https://")):
        raise click.BadParameter("expected an http:// or https:// URL", param_hint="--advertise-url")
    try:
        federation = load_federation_file(join) if join is not None else None
    except ConfigError as e:
        _fail("bad_federation_file", str(e), c.as_json)
    try:
        cfg = init_data_dir(data_dir, host=host, port=int(port), federation=federation, advertise_url=advertise_url)
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
            f"Initialised [bold]{o['data_dir']}[/]\n  node id  {o['node_id']}\n  config   {o['config']}\n  listen   {o['listen']}"
        )
        if federation is not None:
            console.print(f"  joins    federation [bold]{federation.name}[/] ({len(federation.peers)} bootstrap peers)")
            if not federation.open:
                console.print("  The federation is closed: its members must list this node id before they accept it.")
        console.print(f"Start it with: coopnet run --data-dir {o['data_dir']}")

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
    interactive = sys.stderr.isatty()
    if interactive:
        from rich.logging import RichHandler

        logging.basicConfig(
            level=cfg.log_level.upper(), format="%(name)s: %(message)s", handlers=[RichHandler(console=err_console, show_path=False)]
        )
    else:
        logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
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
        lambda o: console.print(f"Member key written to [bold]{o['key_file']}[/]\n  member id  {o['member_id']}"),
    )


# ---- acting -----------------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _submit_one(c: Ctx, raw: bytes) -> dict[str, Any]:
    try:
        resp = c.client.submit([raw], single=True)
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
@pass_ctx
def coop_create(c: Ctx, name: str, purpose: str, key_file: Path) -> None:
    """Found a co-op: sign its genesis action with your key and submit it."""
    key = _load_member_key(c, key_file)
    body: dict[str, Any] = {"name": name}
    if purpose:
        body["purpose"] = purpose
    try:
        genesis = sign_genesis(key, ts=_now_ms(), body=body)
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)
    result = _submit_one(c, genesis.raw)
    out = {
        "coop": format_id(IdKind.COOP, genesis.id),
        "name": name,
        "founder": format_id(IdKind.MEMBER, key.public_key),
        "status": result["status"],
    }
    _out(out, c.as_json, lambda o: console.print(f"Co-op [bold]{o['name']}[/] founded ({o['status']})\n  id  {o['coop']}"))


def _sign_and_submit(c: Ctx, key_file: Path, coop_text: str, kind: str, body: Any, deps: list[str]) -> dict[str, Any]:
    """Sign ``kind``/``body`` as the key's next action in the co-op (seq and prev from the node),
    submit it, and return what to print. Exits 1 with the node's code if it is refused."""
    key = _load_member_key(c, key_file)
    try:
        coop_raw = parse_id(IdKind.COOP, coop_text)
        dep_raw = [parse_id(IdKind.ACTION, d) for d in deps]
        member = format_id(IdKind.MEMBER, key.public_key)
        try:
            seq, head = c.client.head(coop_text, member)
        except ClientError as e:
            _fail(e.code, e.message, c.as_json)
        action = sign_action(
            key,
            coop=coop_raw,
            seq=seq + 1,
            prev=parse_id(IdKind.ACTION, head) if head else None,
            deps=dep_raw,
            ts=_now_ms(),
            kind=kind,
            body=body,
        )
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)
    result = _submit_one(c, action.raw)
    out: dict[str, Any] = {"id": format_id(IdKind.ACTION, action.id), "seq": action.seq, "kind": kind, "status": result["status"]}
    # Governance is decided by the fold: say whether this action was applied or why it was not.
    try:
        fold = c.client.get(f"/api/v1/coops/{coop_text}/results/{out['id']}")
        out["fold"] = {"result": fold["result"], "reason": fold["reason"]}
    except ClientError:
        pass
    return out


def _print_acted(o: dict[str, Any]) -> None:
    console.print(f"{o['status']}: {o['kind']} #{o['seq']}\n  id  {o['id']}")
    fold = o.get("fold")
    if fold and fold["result"] == "rejected":
        console.print(f"  [yellow]stored, but rejected by the co-op's rules: {fold['reason']}[/]")
    elif fold and fold["result"] == "deferred":
        console.print("  waiting for actions it depends on before the co-op's rules apply to it")


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
    """Sign an action and submit it; the next seq and prev are found from the node."""
    out = _sign_and_submit(c, key_file, coop_text, kind, _json_body(c, body_json, "--body"), list(deps))
    _out(out, c.as_json, _print_acted)


# ---- governance -------------------------------------------------------------------------------


def _recent(c: Ctx, coop_text: str, limit: int = 16) -> list[str]:
    """Recent chain heads of the co-op: what this member has seen, as deps."""
    try:
        chains = c.client.get(f"/api/v1/coops/{coop_text}/chains")["chains"]
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)
    return [x["head"] for x in chains][:limit]


def _open(c: Ctx, coop_text: str, key_file: Path, ptype: str, title: str, payload: dict[str, Any]) -> None:
    out = _sign_and_submit(
        c, key_file, coop_text, "proposal.open", {"payload": payload, "title": title, "type": ptype}, _recent(c, coop_text)
    )
    _out(out, c.as_json, _print_acted)


@main.group()
def member() -> None:
    """Membership: apply, sponsor an applicant, propose admitting one, leave."""


@member.command("apply")
@_acting
@click.option("--note", default="", help="A word to the members.")
@pass_ctx
def member_apply(c: Ctx, coop_text: str, key_file: Path, note: str) -> None:
    """Apply to join the co-op (an open co-op admits you at once)."""
    body = {"note": note} if note else {}
    _out(_sign_and_submit(c, key_file, coop_text, "member.apply", body, _recent(c, coop_text)), c.as_json, _print_acted)


@member.command("sponsor")
@_acting
@click.argument("applicant")
@pass_ctx
def member_sponsor(c: Ctx, coop_text: str, key_file: Path, applicant: str) -> None:
    """Sponsor an applicant (a sponsored co-op admits them after enough sponsors)."""
    body = {"member": _parse(c, IdKind.MEMBER, applicant)}
    _out(_sign_and_submit(c, key_file, coop_text, "member.sponsor", body, _recent(c, coop_text)), c.as_json, _print_acted)


@member.command("admit")
@_acting
@click.argument("applicant")
@click.option("--title", default="", help="Proposal title (default: Admit <member>).")
@pass_ctx
def member_admit(c: Ctx, coop_text: str, key_file: Path, applicant: str, title: str) -> None:
    """Open a proposal to admit an applicant (co-ops that admit by vote)."""
    _open(c, coop_text, key_file, "admit", title or f"Admit {applicant[:16]}…", {"member": _parse(c, IdKind.MEMBER, applicant)})


@member.command("leave")
@_acting
@pass_ctx
def member_leave(c: Ctx, coop_text: str, key_file: Path) -> None:
    """Leave the co-op."""
    _out(_sign_and_submit(c, key_file, coop_text, "member.leave", {}, _recent(c, coop_text)), c.as_json, _print_acted)


@main.group()
def proposal() -> None:
    """Proposals: open one, vote, tally, show."""


@proposal.command("open")
@_acting
@click.option(
    "--type",
    "ptype",
    type=click.Choice(["admit", "amend", "sanction", "lift", "federate", "unfederate", "role", "text"]),
    default="text",
    show_default=True,
)
@click.option("--title", required=True)
@click.option(
    "--payload",
    "payload_json",
    default="{}",
    show_default=True,
    help="The proposal's payload as JSON (ids as their text forms are not converted: use the dedicated commands).",
)
@pass_ctx
def proposal_open(c: Ctx, coop_text: str, key_file: Path, ptype: str, title: str, payload_json: str) -> None:
    """Open a proposal (text proposals, charter amendments with --type amend --payload '{"charter": ...}')."""
    _open(c, coop_text, key_file, ptype, title, _json_body(c, payload_json, "--payload"))


@proposal.command("vote")
@_acting
@click.argument("proposal_id")
@click.argument("choice", type=click.Choice(["yes", "no", "abstain", "block"]))
@pass_ctx
def proposal_vote(c: Ctx, coop_text: str, key_file: Path, proposal_id: str, choice: str) -> None:
    """Vote on a proposal; voting again replaces your earlier vote."""
    pid = _parse(c, IdKind.ACTION, proposal_id)
    _out(_sign_and_submit(c, key_file, coop_text, "vote.cast", {"choice": choice, "proposal": pid}, [proposal_id]), c.as_json, _print_acted)


@proposal.command("tally")
@_acting
@click.argument("proposal_id")
@pass_ctx
def proposal_tally(c: Ctx, coop_text: str, key_file: Path, proposal_id: str) -> None:
    """Tally a proposal: counts the votes this node has seen (its deps name the voters' latest
    actions), claims the outcome the node computes, and every node checks that claim."""
    pid = _parse(c, IdKind.ACTION, proposal_id)
    try:
        view = c.client.get(f"/api/v1/coops/{coop_text}/proposals/{proposal_id}")
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)
    chains = {x["author"]: x["head"] for x in c.client.get(f"/api/v1/coops/{coop_text}/chains")["chains"]}
    voters = [m for m in view["ballots"] if m in chains]
    if len(voters) > 31:
        console.print(f"[yellow]{len(voters)} voters: this tally names the latest 31 chains; earlier votes reach it only through them[/]")
    deps = [proposal_id, *(chains[m] for m in voters[:31])]
    # The tally's causal past also holds the tallier's own chain (its prev): preview with it too.
    mine = chains.get(format_id(IdKind.MEMBER, _load_member_key(c, key_file).public_key))
    try:
        preview = c.client.get(f"/api/v1/coops/{coop_text}/proposals/{proposal_id}/preview", deps=",".join(deps + ([mine] if mine else [])))
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)
    out = _sign_and_submit(c, key_file, coop_text, "proposal.tally", {"outcome": preview["outcome"], "proposal": pid}, deps)
    out["outcome"] = preview["outcome"]
    out["votes"] = preview["votes"]

    def readable(o: dict[str, Any]) -> None:
        _print_acted(o)
        v = o["votes"]
        console.print(f"  outcome [bold]{o['outcome']}[/]: yes {v['yes']}, no {v['no']}, abstain {v['abstain']}, block {v['block']}")

    _out(out, c.as_json, readable)


@proposal.command("show")
@click.option("--coop", "coop_text", required=True)
@click.argument("proposal_id")
@pass_ctx
def proposal_show(c: Ctx, coop_text: str, proposal_id: str) -> None:
    """A proposal with its votes and outcome."""
    try:
        view = c.client.get(f"/api/v1/coops/{coop_text}/proposals/{proposal_id}")
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    def readable(o: dict[str, Any]) -> None:
        v = o["votes"]
        console.print(f"[bold]{o['title']}[/] ({o['type']}) — {o['status']}")
        console.print(f"  rule: quorum {o['rule']['quorum']}%, {o['rule']['threshold']}; electorate {o['electorate']}")
        console.print(f"  votes: yes {v['yes']}, no {v['no']}, abstain {v['abstain']}, block {v['block']}")
        if o["decided_by"]:
            console.print(f"  decided by {o['decided_by']}")

    _out(view, c.as_json, readable)


@main.group()
def sanction() -> None:
    """Sanctions: propose one under a charter clause, lift one (an appeal), list them."""


@sanction.command("propose")
@_acting
@click.argument("member_id")
@click.option("--clause", required=True, help="The charter offence clause.")
@click.option("--evidence", multiple=True, help="An action id showing the offence (repeatable).")
@click.option("--title", default="")
@pass_ctx
def sanction_propose(c: Ctx, coop_text: str, key_file: Path, member_id: str, clause: str, evidence: tuple[str, ...], title: str) -> None:
    """Open a proposal to sanction a member as the charter clause says."""
    ev = [_parse(c, IdKind.ACTION, e) for e in evidence]
    payload = {"clause": clause, "evidence": ev, "member": _parse(c, IdKind.MEMBER, member_id)}
    _open(c, coop_text, key_file, "sanction", title or f"Sanction under {clause}", payload)


@sanction.command("lift")
@_acting
@click.argument("sanction_id")
@click.option("--title", default="", help="Why it should be lifted (an appeal, if it is your own).")
@pass_ctx
def sanction_lift(c: Ctx, coop_text: str, key_file: Path, sanction_id: str, title: str) -> None:
    """Open a proposal to lift a sanction; the sanctioned member may do this (appeal)."""
    sid = _parse(c, IdKind.PROOF if sanction_id.startswith("eqv_") else IdKind.ACTION, sanction_id)
    _open(c, coop_text, key_file, "lift", title or "Lift a sanction", {"sanction": sid})


@sanction.command("list")
@click.option("--coop", "coop_text", required=True)
@pass_ctx
def sanction_list(c: Ctx, coop_text: str) -> None:
    """Sanctions with their clause, evidence and state (due process)."""
    try:
        view = c.client.get(f"/api/v1/coops/{coop_text}/sanctions")
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    def readable(o: dict[str, Any]) -> None:
        t = Table("sanction", "member", "kind", "clause", "active")
        for x in o["sanctions"]:
            t.add_row(
                x["id"][:20] + "…", x["member"][:20] + "…", x["kind"], f"{x['clause']}: {x['clause_text']}", "yes" if x["active"] else "no"
            )
        console.print(t)

    _out(view, c.as_json, readable)


@main.group()
def federate() -> None:
    """Federation agreements between co-ops: propose one, end one, list them."""


@federate.command("propose")
@_acting
@click.argument("other_coop")
@click.option("--terms", "terms_json", default="{}", help="Reciprocity terms as JSON.")
@pass_ctx
def federate_propose(c: Ctx, coop_text: str, key_file: Path, other_coop: str, terms_json: str) -> None:
    """Open a proposal to federate with another co-op (it must pass on both sides)."""
    other = _parse(c, IdKind.COOP, other_coop)
    _open(
        c,
        coop_text,
        key_file,
        "federate",
        f"Federate with {other_coop[:16]}…",
        {"coop": other, "terms": _json_body(c, terms_json, "--terms")},
    )


@federate.command("end")
@_acting
@click.argument("other_coop")
@pass_ctx
def federate_end(c: Ctx, coop_text: str, key_file: Path, other_coop: str) -> None:
    """Open a proposal to end a federation agreement."""
    other = _parse(c, IdKind.COOP, other_coop)
    _open(c, coop_text, key_file, "unfederate", f"End federation with {other_coop[:16]}…", {"coop": other})


@federate.command("list")
@click.option("--coop", "coop_text", required=True)
@pass_ctx
def federate_list(c: Ctx, coop_text: str) -> None:
    """This co-op's federation decisions, and whether the other side agreed."""
    try:
        view = c.client.get(f"/api/v1/coops/{coop_text}/federations")
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)
    _out(
        view,
        c.as_json,
        lambda o: [console.print(f"{f['coop']}  mutual: {f['mutual']}") for f in o["federations"]] or console.print("no federations"),
    )


# ---- reading ----------------------------------------------------------------------------------


def _print_action(o: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None)
    for k in ("id", "coop", "author", "seq", "prev", "kind", "ts", "status"):
        t.add_row(k, str(o.get(k)))
    t.add_row("deps", ", ".join(o.get("deps", [])) or "-")
    t.add_row("body", json.dumps(o.get("body"), ensure_ascii=False) if o.get("body_present") else "(not carried)")
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
    try:
        obj = c.client.get(paths[prefix] + ident)
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)

    def readable(o: dict[str, Any]) -> None:
        if prefix == "act":
            _print_action(o)
        elif prefix == "coop":
            console.print(
                f"[bold]{o['name']}[/]  {o['id']}\n  founder  {o['founder']}\n  actions  {o['actions']}\n  members with a chain  {o['chains']}"
            )
            body = o["genesis"].get("body") or {}
            if body.get("purpose"):
                console.print(f"  purpose  {body['purpose']}")
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
                t.add_row(x["id"], x["name"], str(x["actions"]), x["founder"])
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
            t.add_row("federation", o["federation"])
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
                pt.add_row(p["id"][:20] + "…", p["url"], p["state"], ago, str(p["failures"]), str(p["score"]), behind)
            console.print(pt)

    _out(info, c.as_json, readable)
