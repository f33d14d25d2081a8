"""``coopnet invite``: the tokens that let a client found a co-op on a node whose
``[admission] founding = "invite"``. They work on the data directory's store directly (the node
may be running: SQLite serialises the writes), so they need no network and no admin token.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Any

import click

from protocol.ids import IdKind, format_id

from .cli import Ctx, _fail, _out, console, default_data_dir, main, pass_ctx
from .config import CONFIG_NAME, ConfigError, load_config
from .ingest import invite_hash
from .store import Store, StoreError

TOKEN_BYTES = 24  # 192 bits, url-safe base64: 32 characters


def _config(c: Ctx, data_dir: Path | None) -> Any:
    env = dict(os.environ)
    if data_dir is not None:
        env["COOPNET_DATA_DIR"] = str(data_dir)
    try:
        return load_config((data_dir or default_data_dir()) / CONFIG_NAME, env=env)
    except ConfigError as e:
        _fail("bad_config", str(e), c.as_json)


async def _with_store(c: Ctx, data_dir: Path | None, work: Any) -> Any:
    cfg = _config(c, data_dir)
    store = await Store.open(cfg.database_path, synchronous=cfg.synchronous, clock_ms=lambda: time.time_ns() // 1_000_000)
    try:
        return await work(store)
    finally:
        await store.close()


_data_dir = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data directory made by 'coopnet init'.")


@main.group()
def invite() -> None:
    """Invites: a token that lets one genesis found a co-op on this node (founding = "invite")."""


@invite.command("new")
@_data_dir
@click.option("--days", type=click.IntRange(0, 36500), default=30, show_default=True, help="Valid for this many days (0: no expiry).")
@click.option("--note", default="", help="A note for the operator (whom it was given to).")
@pass_ctx
def invite_new(c: Ctx, data_dir: Path | None, days: int, note: str) -> None:
    """Make an invite and print its token (shown once; the node keeps only its hash)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires = time.time_ns() // 1_000_000 + days * 86_400_000 if days else 0

    async def work(store: Store) -> None:
        await store.add_invite(invite_hash(token), expires=expires, note=note)

    try:
        asyncio.run(_with_store(c, data_dir, work))
    except (StoreError, OSError) as e:
        _fail("store", str(e), c.as_json)
    out = {"token": token, "hash": invite_hash(token).hex(), "expires_ms": expires, "note": note}
    _out(
        out,
        c.as_json,
        lambda o: console.print(
            f"Invite token (give it to the founder; it is shown only once):\n  [bold]{o['token']}[/]\n"
            f"They send it with their genesis: coopnet coop create ... with the header Coopnet-Invite: {o['token']}"
        ),
    )


@invite.command("list")
@_data_dir
@pass_ctx
def invite_list(c: Ctx, data_dir: Path | None) -> None:
    """Invites made on this node: when, for whom, until when, and which co-op each founded."""

    async def work(store: Store) -> list[dict[str, Any]]:
        return [
            {
                "hash": r.hash.hex(),
                "note": r.note,
                "created_ms": r.created,
                "expires_ms": r.expires,
                "used_by": format_id(IdKind.COOP, r.used_by) if r.used_by else None,
                "used_ms": r.used_at,
            }
            for r in await store.invites()
        ]

    try:
        rows = asyncio.run(_with_store(c, data_dir, work))
    except (StoreError, OSError) as e:
        _fail("store", str(e), c.as_json)
    _out({"invites": rows}, c.as_json)


@invite.command("revoke")
@_data_dir
@click.argument("hash_hex")
@pass_ctx
def invite_revoke(c: Ctx, data_dir: Path | None, hash_hex: str) -> None:
    """Revoke an unused invite by its hash (as 'coopnet invite list' shows it)."""
    try:
        h = bytes.fromhex(hash_hex)
    except ValueError:
        _fail("bad_request", "give the invite's hash in hex, as 'coopnet invite list' shows it", c.as_json)

    async def work(store: Store) -> bool:
        return await store.revoke_invite(h)

    if not asyncio.run(_with_store(c, data_dir, work)):
        _fail("not_found", "no unused invite with this hash", c.as_json)
    _out({"revoked": hash_hex}, c.as_json)
