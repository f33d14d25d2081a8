"""The operator's commands: ``coopnet admin``, ``backup``, ``restore``, ``export``, ``verify``,
``import`` and ``federation``. Registered on the ``main`` group by the import at the bottom of
``node/cli.py``; output and exit statuses as in the rest of the CLI (0 success, 1 a refusal with
its code, 2 a usage error).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import click

from protocol import ProtocolError
from protocol.archive import ArchiveError
from protocol.ids import IdKind, format_id, parse_id

from .admin import ADMIN_PREFIX, AdminClient, AdminClientError
from .archive import ExportError, export_coop, import_file, verify_file
from .backup import BadStoreFile, restore
from .cli import Ctx, Table, _fail, _out, _plain, console, default_data_dir, main, pass_ctx
from .config import CONFIG_NAME, Config, ConfigError, PeerAddress, load_config
from .keyfile import KeyFileError, read_key_file, write_key_file
from .ops import (
    DataDirBusy,
    DataDirLock,
    add_peer,
    advertise_problem,
    check_federation_text,
    new_federation_file,
    unspecified,
    write_atomically,
)
from .store import StoreError, backup_database


def _data_dir_option(f: Any) -> Any:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="The node's data directory (default: $COOPNET_DATA_DIR or ~/.coopnet).",
    )(f)


def _config(c: Ctx, data_dir: Path | None) -> Config:
    """The config of the node whose data directory is ``data_dir`` (as ``coopnet run`` reads it)."""
    path = (data_dir or default_data_dir()) / CONFIG_NAME
    env = dict(os.environ)
    if data_dir is not None:
        env["COOPNET_DATA_DIR"] = str(data_dir)
    try:
        return load_config(path, env=env)
    except ConfigError as e:
        _fail("bad_config", str(e), c.as_json)


def _duration(seconds: int | None) -> str:
    """A span for people: ``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``; None is ``never``."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        h, m = divmod(seconds // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(seconds // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _share(used: int, bound: int) -> str:
    """How much of a bound is used, as the operator compares them (a bound of 0 is none)."""
    return "no bound" if not bound else f"{100 * used / bound:.1f} %"


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# ---- admin ---------------------------------------------------------------------------------------


def _admin(c: Ctx, data_dir: Path | None) -> AdminClient:
    folder = data_dir or default_data_dir()
    if (folder / CONFIG_NAME).exists():
        folder = _config(c, data_dir).data_dir
    try:
        return AdminClient(folder)
    except AdminClientError as e:
        _fail(e.code, e.message, c.as_json)


def _admin_call(c: Ctx, data_dir: Path | None, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
    try:
        return _admin(c, data_dir).request(method, ADMIN_PREFIX + path, body, **query)
    except AdminClientError as e:
        _fail(e.code, e.message, c.as_json)


@main.group()
def admin() -> None:
    """Administer the node running on a data directory (its admin API, with the token kept there)."""


@admin.group("peers")
def admin_peers() -> None:
    """Peers: list them, block or unblock one on this node."""


@admin_peers.command("list")
@_data_dir_option
@pass_ctx
def admin_peers_list(c: Ctx, data_dir: Path | None) -> None:
    """Every peer with its state, and the peers blocked here."""
    doc = _admin_call(c, data_dir, "GET", "/peers")

    def readable(o: dict[str, Any]) -> None:
        t = Table("peer", "url", "origin", "state", "failures", "score", "last error")
        for p in o["peers"]:
            t.add_row(
                p["id"],
                _plain(p["url"]),
                _plain(p["origin"]),
                p["state"],
                str(p["failures"]),
                str(p["score"]),
                _plain(p["last_error"] or ""),
            )
        console.print(t if o["peers"] else "no peers")
        for b in o["blocked"]:
            since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b["blocked_at_ms"] / 1000))
            console.print(f"[red]blocked[/] {b['id']} since {since} UTC: {_plain(b['reason'])}")

    _out(doc, c.as_json, readable)


@admin_peers.command("block")
@click.argument("node_id")
@click.option("--reason", default="", help="Why (kept with the block, shown in the list and the log).")
@_data_dir_option
@pass_ctx
def admin_peers_block(c: Ctx, node_id: str, reason: str, data_dir: Path | None) -> None:
    """Block a peer node on this node: refused in both directions, never contacted, until unblocked."""
    doc = _admin_call(c, data_dir, "POST", "/peers/block", {"id": node_id, "reason": reason})
    _out(doc, c.as_json, lambda o: console.print(f"{'blocked' if o['changed'] else 'already blocked'}: {o['id']}"))


@admin_peers.command("unblock")
@click.argument("node_id")
@_data_dir_option
@pass_ctx
def admin_peers_unblock(c: Ctx, node_id: str, data_dir: Path | None) -> None:
    """Unblock a peer node."""
    doc = _admin_call(c, data_dir, "POST", "/peers/unblock", {"id": node_id})
    _out(doc, c.as_json, lambda o: console.print(f"{'unblocked' if o['changed'] else 'was not blocked'}: {o['id']}"))


@admin.group("pending")
def admin_pending() -> None:
    """Actions held waiting for a missing predecessor: list them with reasons, purge some."""


@admin_pending.command("list")
@click.option("--coop", "coop_text", default=None, help="Only this co-op (coop_...).")
@click.option("--author", default=None, help="Only this author (mem_...).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@_data_dir_option
@pass_ctx
def admin_pending_list(c: Ctx, coop_text: str | None, author: str | None, limit: int, data_dir: Path | None) -> None:
    """Pending actions, each with its reason and age."""
    doc = _admin_call(c, data_dir, "GET", "/pending", coop=coop_text, author=author, limit=limit)

    def readable(o: dict[str, Any]) -> None:
        t = Table("action", "co-op", "author", "seq", "age", "expires in", "reason")
        for r in o["pending"]:
            t.add_row(
                r["id"],
                r["coop"][:20] + "…",
                r["author"][:20] + "…",
                str(r["seq"]),
                _duration(r["age_s"]),
                _duration(r["expires_in_s"]),
                _plain(r["reason"]),
            )
        console.print(t if o["pending"] else "nothing pending")
        expiry = f"each dropped {_duration(o['pending_seconds'])} after it came" if o["pending_seconds"] else "they never expire"
        console.print(f"{o['total']} pending in all (at most {o['max_pending']}); {expiry}")

    _out(doc, c.as_json, readable)


@admin_pending.command("purge")
@click.option("--id", "ids", multiple=True, help="A pending action id (act_...); repeatable.")
@click.option("--coop", "coop_text", default=None, help="Every pending action of this co-op (with --author: of that author there).")
@click.option("--author", default=None, help="Every pending action of this author (mem_...).")
@_data_dir_option
@pass_ctx
def admin_pending_purge(c: Ctx, ids: tuple[str, ...], coop_text: str | None, author: str | None, data_dir: Path | None) -> None:
    """Delete pending actions by id, by co-op or by author (they come back if peers send them again)."""
    body: dict[str, Any] = {}
    if ids:
        body["ids"] = list(ids)
    if coop_text:
        body["coop"] = coop_text
    if author:
        body["author"] = author
    if not body:
        raise click.UsageError("say what to purge: --id, --coop and/or --author")
    doc = _admin_call(c, data_dir, "POST", "/pending/purge", body)
    _out(doc, c.as_json, lambda o: console.print(f"purged {o['purged']} pending actions"))


@admin.group("held")
def admin_held() -> None:
    """Actions of authors not known in their co-op, held in the quarantine: list them, purge some."""


@admin_held.command("list")
@click.option("--coop", "coop_text", default=None, help="Only this co-op (coop_...).")
@click.option("--author", default=None, help="Only this author (mem_...).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@_data_dir_option
@pass_ctx
def admin_held_list(c: Ctx, coop_text: str | None, author: str | None, limit: int, data_dir: Path | None) -> None:
    """Held actions, oldest first, each with its kind, size, age, expiry and reason."""
    doc = _admin_call(c, data_dir, "GET", "/held", coop=coop_text, author=author, limit=limit)

    def readable(o: dict[str, Any]) -> None:
        reasons = {r["reason"] for r in o["held"]}
        columns = ["action", "co-op", "author", "seq", "kind", "size", "age", "expires in"]
        t = Table(*columns, *(["reason"] if len(reasons) > 1 else []))
        for r in o["held"]:
            row = [r["id"], r["coop"][:20] + "…", r["author"], str(r["seq"]), _plain(r["kind"]), _size(r["size"])]
            row += [_duration(r["age_s"]), _duration(r["expires_in_s"])]
            t.add_row(*row, *([_plain(r["reason"])] if len(reasons) > 1 else []))
        console.print(t if o["held"] else "nothing held")
        if len(reasons) == 1:
            console.print(f"why: {_plain(reasons.pop())}")
        console.print(
            f"{o['total']} held in all (at most {o['max_quarantine']}; {o['quarantine_per_coop']} per co-op, "
            f"{o['quarantine_per_author']} per author in a co-op; each dropped {_duration(o['quarantine_seconds'])} after it came)"
        )
        if not o["hold_unknown"]:
            console.print('[yellow]this node stores unknown authors\' actions (unknown_authors = "store"): it holds nothing new[/]')

    _out(doc, c.as_json, readable)


@admin_held.command("purge")
@click.option("--id", "ids", multiple=True, help="A held action id (act_...); repeatable.")
@click.option("--coop", "coop_text", default=None, help="Every held action of this co-op (with --author: of that author there).")
@click.option("--author", default=None, help="Every held action of this author (mem_...).")
@_data_dir_option
@pass_ctx
def admin_held_purge(c: Ctx, ids: tuple[str, ...], coop_text: str | None, author: str | None, data_dir: Path | None) -> None:
    """Drop held actions by id, co-op or author (the author may send them again, and is held again)."""
    body: dict[str, Any] = {}
    if ids:
        body["ids"] = list(ids)
    if coop_text:
        body["coop"] = coop_text
    if author:
        body["author"] = author
    if not body:
        raise click.UsageError("say what to purge: --id, --coop and/or --author")
    doc = _admin_call(c, data_dir, "POST", "/held/purge", body)
    _out(doc, c.as_json, lambda o: console.print(f"purged {o['purged']} held actions"))


@admin.group("authors")
def admin_authors() -> None:
    """Authors this node refuses: list them, block or unblock one (in one co-op or in all)."""


@admin_authors.command("list")
@_data_dir_option
@pass_ctx
def admin_authors_list(c: Ctx, data_dir: Path | None) -> None:
    """Every blocked author, where, since when and why."""
    doc = _admin_call(c, data_dir, "GET", "/authors/blocked")

    def readable(o: dict[str, Any]) -> None:
        t = Table("author", "where", "since (UTC)", "reason")
        for b in o["blocked"]:
            since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b["since_ms"] / 1000))
            t.add_row(b["author"], b["coop"] or "every co-op", since, _plain(b["reason"]))
        console.print(t if o["blocked"] else "no author is blocked")

    _out(doc, c.as_json, readable)


@admin_authors.command("block")
@click.argument("author")
@click.option("--coop", "coop_text", default=None, help="Only in this co-op (coop_...; default: in every co-op).")
@click.option("--reason", default="", help="Why (kept with the block, shown in the list and the log).")
@_data_dir_option
@pass_ctx
def admin_authors_block(c: Ctx, author: str, coop_text: str | None, reason: str, data_dir: Path | None) -> None:
    """Refuse an author's actions on this node, from clients and peers, at once and until unblocked;
    what they have held or pending here is dropped, what is stored stays (it is shared state)."""
    body: dict[str, Any] = {"author": author, "reason": reason}
    if coop_text:
        body["coop"] = coop_text
    doc = _admin_call(c, data_dir, "POST", "/authors/block", body)

    def readable(o: dict[str, Any]) -> None:
        where = o["coop"] or "every co-op"
        if o["changed"]:
            console.print(f"blocked {o['author']} in {where}: {_plain(o['reason'])}")
        else:
            console.print(f"{o['author']} was blocked in {where} already (reason now: {_plain(o['reason'])})")
        if o["dropped"]["held"] or o["dropped"]["pending"]:
            console.print(f"  dropped {o['dropped']['held']} held and {o['dropped']['pending']} pending actions of theirs")

    _out(doc, c.as_json, readable)


@admin_authors.command("unblock")
@click.argument("author")
@click.option("--coop", "coop_text", default=None, help="The co-op of a block in one co-op (default: the block in every co-op).")
@_data_dir_option
@pass_ctx
def admin_authors_unblock(c: Ctx, author: str, coop_text: str | None, data_dir: Path | None) -> None:
    """Lift a block: the author's next actions are taken (peers bring what was refused meanwhile)."""
    body: dict[str, Any] = {"author": author}
    if coop_text:
        body["coop"] = coop_text
    doc = _admin_call(c, data_dir, "POST", "/authors/unblock", body)

    def readable(o: dict[str, Any]) -> None:
        where = o["coop"] or "every co-op"
        console.print(f"unblocked {o['author']} in {where}" if o["changed"] else f"{o['author']} was not blocked in {where}")
        for other in o["still_blocked_in"]:
            hint = f"lift it with --coop {other}" if other else "lift it by unblocking without --coop"
            console.print(f"[yellow]  still blocked in {other or 'every co-op'}[/] ({hint})")

    _out(doc, c.as_json, readable)


@admin.command("usage")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="Co-ops shown, the largest first.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(0, 100), help="Authors shown per co-op, the largest first.")
@_data_dir_option
@pass_ctx
def admin_usage(c: Ctx, limit: int, top: int, data_dir: Path | None) -> None:
    """What this node stores, holds and refuses, beside its quotas and bounds."""
    doc = _admin_call(c, data_dir, "GET", "/usage", limit=limit, top=top)

    def readable(o: dict[str, Any]) -> None:
        n, p = o["node"], o["policy"]
        t = Table("node", "now", "bound", "used")
        t.add_row(
            "stored",
            _size(n["stored_bytes"]),
            _size(n["quota_bytes"]) if n["quota_bytes"] else "no quota",
            _share(n["stored_bytes"], n["quota_bytes"]),
        )
        t.add_row("held (quarantine)", str(n["held"]), str(n["max_held"]), _share(n["held"], n["max_held"]))
        t.add_row("pending", str(n["pending"]), str(n["max_pending"]), _share(n["pending"], n["max_pending"]))
        t.add_row("co-ops", str(n["coops"]), "", "")
        t.add_row("blocked authors", f"{n['blocked_authors']} ({n['blocked_everywhere']} in every co-op)", "", "")
        t.add_row("blocked peers", str(n["blocked_peers"]), "", "")
        console.print(t)
        if o["coops"]:
            t = Table("co-op", "name", "actions", "stored", "of quota", "held", "pending", "blocked")
            for r in o["coops"]:
                t.add_row(
                    r["coop"][:20] + "…",
                    _plain(r["name"]),
                    str(r["actions"]),
                    _size(r["stored_bytes"]),
                    _share(r["stored_bytes"], r["quota_bytes"]),
                    f"{r['held']}/{r['max_held']}",
                    f"{r['pending']}/{r['max_pending']}" if r["max_pending"] else str(r["pending"]),
                    str(r["blocked_authors"]),
                )
            console.print(t)
            if any(r["top_authors"] for r in o["coops"]):
                t = Table("co-op", "largest authors", "stored", "of author quota")
                for r in o["coops"]:
                    for a in r["top_authors"]:
                        t.add_row(
                            _plain(r["name"]) or r["coop"][:20] + "…",
                            a["author"],
                            _size(a["stored_bytes"]),
                            _share(a["stored_bytes"], a["quota_bytes"]),
                        )
                console.print(t)
            if len(o["coops"]) < n["coops"]:
                console.print(f"(the {len(o['coops'])} largest of {n['coops']} co-ops; --limit shows more)")
        quota = " per author in a co-op, ".join(_size(p[k]) if p[k] else "none" for k in ("quota_author_bytes", "quota_coop_bytes"))
        console.print(
            f"quotas: {quota} per co-op, {_size(p['quota_node_bytes']) if p['quota_node_bytes'] else 'none'} node-wide; "
            f"founding {p['founding']}, unknown authors {p['unknown_authors']}"
        )

    _out(doc, c.as_json, readable)


# ---- backup and restore -----------------------------------------------------------------------------


@main.command()
@_data_dir_option
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The backup file to write.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@pass_ctx
def backup(c: Ctx, data_dir: Path | None, out: Path, force: bool) -> None:
    """Copy the store to one file, consistently, while the node runs (SQLite online backup)."""
    cfg = _config(c, data_dir)
    try:
        info = backup_database(cfg.database_path, out, overwrite=force)
    except StoreError as e:
        _fail("backup_failed", str(e), c.as_json)
    doc = {"out": str(info.path), "bytes": info.bytes, "schema": info.schema, "actions": info.actions, "integrity": info.integrity}
    _out(
        doc,
        c.as_json,
        lambda o: console.print(f"Backed up {o['actions']} actions to [bold]{_plain(o['out'])}[/] ({_size(o['bytes'])}, integrity ok)"),
    )


@main.command("restore")
@_data_dir_option
@click.option("--from", "source", type=click.Path(path_type=Path), required=True, help="A backup made by 'coopnet backup'.")
@pass_ctx
def restore_cmd(c: Ctx, data_dir: Path | None, source: Path) -> None:
    """Replace a stopped node's store with a verified backup; the current store is kept aside."""
    cfg = _config(c, data_dir)
    try:
        done = restore(cfg, source)
    except DataDirBusy as e:
        _fail("node_running", f"{e}: stop the node before restoring", c.as_json)
    except (BadStoreFile, StoreError) as e:
        _fail("bad_backup", str(e), c.as_json)
    r = done.report
    doc = {
        "database": str(done.database),
        "from": str(source),
        "schema": r.schema,
        "coops": r.coops,
        "actions": r.actions,
        "pending": r.pending,
        "proofs": r.proofs,
        "kept_aside": str(done.aside) if done.aside else None,
    }

    def readable(o: dict[str, Any]) -> None:
        console.print(
            f"Restored [bold]{_plain(o['database'])}[/] from {_plain(o['from'])}: {o['actions']} actions in {o['coops']} co-ops, schema v{o['schema']}"
        )
        if o["kept_aside"]:
            console.print(f"  the store it replaced is kept at {_plain(o['kept_aside'])}")
        console.print("  Start the node; it catches up with its peers on what happened since the backup.")

    _out(doc, c.as_json, readable)


# ---- export, verify, import -----------------------------------------------------------------------


@main.command("export")
@click.option("--coop", "coop_text", required=True, help="The co-op to export (coop_...).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The archive file to write.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@_data_dir_option
@pass_ctx
def export_cmd(c: Ctx, coop_text: str, out: Path, force: bool, data_dir: Path | None) -> None:
    """Write a co-op's actions and proofs to a portable archive that anyone can verify offline."""
    try:
        coop = parse_id(IdKind.COOP, coop_text)
    except ProtocolError as e:
        _fail(e.code.value, e.message, c.as_json)
    cfg = _config(c, data_dir)
    try:
        done = export_coop(cfg.database_path, coop, out, overwrite=force)
    except ExportError as e:
        _fail(e.code, e.message, c.as_json)
    doc = {
        "out": str(done.path),
        "coop": coop_text,
        "name": done.name,
        "actions": done.actions,
        "proofs": done.proofs,
        "bytes": done.bytes,
        "sha256": done.sha256,
    }
    _out(
        doc,
        c.as_json,
        lambda o: console.print(
            f"Exported [bold]{_plain(o['name'])}[/] ({o['coop']}): {o['actions']} actions, {o['proofs']} proofs\n"
            f"  to {_plain(o['out'])} ({_size(o['bytes'])}), sha256 {o['sha256']}"
        ),
    )


def _archive_doc(path: Path, summary: Any, genesis: Any) -> dict[str, Any]:
    body = genesis.body_value()
    return {
        "file": str(path),
        "coop": format_id(IdKind.COOP, summary.header.coop),
        "name": str(body.get("name", "")) if isinstance(body, dict) else "",
        "actions": summary.header.actions,
        "proofs": summary.header.proofs,
        "authors": summary.authors,
        "bytes": summary.size,
        "sha256": summary.digest.hex(),
    }


@main.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@pass_ctx
def verify_cmd(c: Ctx, file: Path) -> None:
    """Check an archive offline (signatures, chains, order, genesis, digest) without importing it."""
    try:
        summary, genesis = verify_file(file)
    except ArchiveError as e:
        _fail("bad_archive", f"{file}: {e.reason}: {e.message}", c.as_json, {"reason": e.reason})
    except OSError as e:
        _fail("bad_archive", f"{file}: {e}", c.as_json, {"reason": "unreadable"})
    _out(
        _archive_doc(file, summary, genesis),
        c.as_json,
        lambda o: console.print(
            f"[green]valid[/] archive of [bold]{_plain(o['name'])}[/] ({o['coop']}): {o['actions']} actions by {o['authors']} members, "
            f"{o['proofs']} proofs\n  sha256 {o['sha256']}"
        ),
    )


@main.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@_data_dir_option
@pass_ctx
def import_cmd(c: Ctx, file: Path, data_dir: Path | None) -> None:
    """Verify an archive, then store it in a stopped node's store (its peers then catch up)."""
    cfg = _config(c, data_dir)
    try:
        done = asyncio.run(import_file(cfg, file))
    except DataDirBusy as e:
        _fail("node_running", f"{e}: stop the node before importing (peers will learn the co-op from it once it runs)", c.as_json)
    except ArchiveError as e:
        _fail("bad_archive", f"{file}: {e.reason}: {e.message}; nothing was stored", c.as_json, {"reason": e.reason})
    except (OSError, StoreError) as e:
        _fail("import_failed", str(e), c.as_json)
    coop = done.summary.header.coop
    doc: dict[str, Any] = {
        "file": str(file),
        "coop": format_id(IdKind.COOP, coop),
        "actions": done.summary.header.actions,
        "statuses": {s: done.statuses.get(s, 0) for s in ("accepted", "known", "pending", "rejected")},
        "rejected": dict(done.rejected),
        "proofs": done.summary.header.proofs,
        "proofs_new": done.proofs_new,
        "in_scope": cfg.federation.replicate is None or format_id(IdKind.COOP, coop) in cfg.federation.replicate,
    }

    def readable(o: dict[str, Any]) -> None:
        s = o["statuses"]
        console.print(
            f"Imported {o['coop']}: {s['accepted']} new, {s['known']} already here, {s['pending']} pending, "
            f"{s['rejected']} refused; {o['proofs_new']} new proofs of {o['proofs']}"
        )
        if not o["in_scope"]:
            console.print("[yellow]this node's \\[federation] replicate list does not name this co-op: peers will not get it from here[/]")

    if done.statuses.get("rejected"):
        _fail("rejected", f"the store refused {done.statuses['rejected']} actions: {dict(done.rejected)}", c.as_json, doc)
    _out(doc, c.as_json, readable)


# ---- federation files --------------------------------------------------------------------------------


@main.group()
def federation() -> None:
    """Federation files: start one with this node as its first peer, add peers to one."""


@federation.command("new")
@click.argument("name")
@click.option("--open", "open_", is_flag=True, help="Any node with a valid signed record may join (default: closed, listed peers only).")
@click.option("--coop", "coops", multiple=True, help="A co-op the federation replicates (repeatable; default: all).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("federation.toml"), show_default=True)
@click.option("--url", default=None, help="How peers reach this node (default: its advertise_url, else its listen address).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@_data_dir_option
@pass_ctx
def federation_new(
    c: Ctx, name: str, open_: bool, coops: tuple[str, ...], out: Path, url: str | None, force: bool, data_dir: Path | None
) -> None:
    """Write a federation file whose first bootstrap peer is this node (its URL and node id)."""
    cfg = _config(c, data_dir)
    try:
        node_id = format_id(IdKind.NODE, read_key_file(cfg.key_path, "node").public_key)
    except KeyFileError as e:
        _fail("bad_key_file", str(e), c.as_json)
    if url is None:
        url = cfg.federation.advertise_url or None
    if url is None:
        problem = advertise_problem(cfg.host, cfg.port, "")
        if problem is not None or unspecified(cfg.host):
            _fail("no_url", f"{problem}; or give --url", c.as_json)
        if cfg.port == 0:
            _fail("no_url", "this node listens on port 0 (any free port): give the URL peers will use with --url", c.as_json)
        url = f"http://[{cfg.host}]:{cfg.port}" if ":" in cfg.host else f"http://{cfg.host}:{cfg.port}"
    if out.exists() and not force:
        _fail("exists", f"{out} already exists; refusing to overwrite it", c.as_json)
    try:
        text = new_federation_file(name, open_=open_, coops=list(coops) or None, first=PeerAddress(url, node_id))
        fed = check_federation_text(text, out)
    except (ValueError, ProtocolError) as e:
        _fail("bad_federation", str(e), c.as_json)
    write_atomically(out, text)
    doc = {
        "file": str(out),
        "name": fed.name,
        "open": fed.open,
        "replicate": list(fed.replicate) if fed.replicate else "all",
        "peers": [{"url": p.url, "id": p.node_id} for p in fed.peers],
    }

    def readable(o: dict[str, Any]) -> None:
        console.print(
            f"Wrote [bold]{_plain(o['file'])}[/]: federation {_plain(o['name'])} ({'open' if o['open'] else 'closed'}), "
            f"first peer {_plain(o['peers'][0]['url'])}"
        )
        if "127.0.0.1" in o["peers"][0]["url"] or "localhost" in o["peers"][0]["url"]:
            console.print("[yellow]that URL is loopback: only nodes on this machine can reach it (give --url)[/]")

    _out(doc, c.as_json, readable)


@federation.command("add-peer")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--url", required=True, help="The peer's origin: scheme://host:port, no path.")
@click.option("--id", "node_id", required=True, help="The peer's node id (node_...), as its 'coopnet status' shows it.")
@pass_ctx
def federation_add_peer(c: Ctx, file: Path, url: str, node_id: str) -> None:
    """Add a bootstrap peer to a federation file (checked: origin-only URL, a node id, no duplicate)."""
    try:
        text, _ = add_peer(file, url, node_id)
        fed = check_federation_text(text, file)
    except ConfigError as e:
        _fail("bad_federation_file", str(e), c.as_json)
    except (ValueError, ProtocolError) as e:
        _fail("bad_peer", str(e), c.as_json)
    write_atomically(file, text)
    doc = {"file": str(file), "name": fed.name, "peers": [{"url": p.url, "id": p.node_id} for p in fed.peers]}
    _out(
        doc,
        c.as_json,
        lambda o: console.print(f"{_plain(o['file'])}: {len(o['peers'])} bootstrap peers (added {_plain(fed.peers[-1].url)})"),
    )


# ---- the node key ----------------------------------------------------------------------------------


@main.command("rotate-node-key")
@_data_dir_option
@pass_ctx
def rotate_node_key(c: Ctx, data_dir: Path | None) -> None:
    """Give a stopped node a new node key (the old one is kept aside, 0600). Its actions and
    co-ops are untouched; peers see a new node id (see docs/OPERATIONS.md, Key loss)."""
    cfg = _config(c, data_dir)
    try:
        lock = DataDirLock.acquire(cfg.data_dir, "coopnet rotate-node-key")
    except DataDirBusy as e:
        _fail("node_running", f"{e}: stop the node first", c.as_json)
    try:
        old_id = None
        aside = None
        if cfg.key_path.exists():
            try:
                old_id = format_id(IdKind.NODE, read_key_file(cfg.key_path, "node").public_key)
            except KeyFileError:
                old_id = None  # damaged or unreadable: replaced all the same, and kept aside
            aside = cfg.key_path.with_name(f"{cfg.key_path.name}.old-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
            os.replace(cfg.key_path, aside)
        try:
            new = write_key_file(cfg.key_path, "node")
        except KeyFileError as e:
            _fail("exists", str(e), c.as_json)
    finally:
        lock.release()
    doc = {"node_id": format_id(IdKind.NODE, new.public_key), "old_node_id": old_id, "old_key": str(aside) if aside else None}

    def readable(o: dict[str, Any]) -> None:
        console.print(f"New node id [bold]{o['node_id']}[/]" + (f" (was {o['old_node_id']})" if o["old_node_id"] else ""))
        if o["old_key"]:
            console.print(f"  the old key is kept at {_plain(o['old_key'])}: delete it once peers know the new id")
        console.print(
            "  Closed federations: every peer must list the new id (coopnet federation add-peer, their \\[\\[federation.peers]])."
        )

    _out(doc, c.as_json, readable)
