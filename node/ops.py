"""Operator helpers that several commands share: the data directory's lock, JSON logs, the
exposure checks (what peers will be told), and federation files.

The lock: a running node holds an exclusive ``flock`` on ``DATA_DIR/coopnet.lock`` for its whole
life, and so does ``coopnet restore`` (and ``coopnet import``) while it replaces the store. The
kernel drops the lock when its holder dies, kill -9 included, so a stale lock cannot outlive
a crash; the file itself stays (unlinking a lock file races with a process that just opened it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import ipaddress
import json
import logging
import os
import sys
import tomllib
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from protocol.ids import IdKind, parse_id
from protocol.peer import parse_origin

from .config import ConfigError, Federation, PeerAddress, load_federation_file, parse_federation

log = logging.getLogger("coopnet.ops")

LOCK_FILE = "coopnet.lock"
UNSPECIFIED_HOSTS = ("0.0.0.0", "::", "[::]")  # every interface: no address a peer can call
RESOLVE_TIMEOUT_S = 2.0  # one DNS lookup for the exposure check; it only ever warns


# ---- the data directory's lock ---------------------------------------------------------------------


class DataDirBusy(OSError):
    """Another process (a running node, a restore) holds the data directory."""


class DataDirLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, holder: str) -> DataDirLock:
        """Take the lock or raise ``DataDirBusy`` naming who holds it; never waits."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise DataDirBusy(f"{data_dir} is in use by {who}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder} (pid {os.getpid()})\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None


# ---- logs ------------------------------------------------------------------------------------------

# Attributes every LogRecord has: anything else on a record came in through ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601, ms), level, logger, message, then the
    record's extra fields (``log.warning(..., extra={"peer": ...})``) and ``exc`` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        out: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str, fmt: str, console: Any = None) -> None:
    """Logs to standard error: JSON lines (``fmt == "json"``), rich on a terminal (``console``),
    plain lines otherwise."""
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


# ---- exposure ----------------------------------------------------------------------------------------


def unspecified(host: str) -> bool:
    return host in UNSPECIFIED_HOSTS


def advertise_problem(host: str, port: int, advertise_url: str) -> str | None:
    """Why peers could not reach this node at what it advertises, when that is certain."""
    if unspecified(host) and not advertise_url:
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        return (
            f"listening on {shown}:{port} (every interface) without an advertised URL: peers would be told "
            f"http://{shown}:{port}, which is no address they can call; give the node's public URL "
            "(coopnet init --advertise-url, or [federation] advertise_url)"
        )
    return None


async def _is_loopback(host: str) -> bool | None:
    """True if ``host`` is (or resolves only to) loopback addresses; None if it does not resolve."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None), RESOLVE_TIMEOUT_S)
    except (OSError, TimeoutError):
        return None
    addrs = {ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos}
    return bool(addrs) and all(a.is_loopback for a in addrs)


async def loopback_problem(advertised_url: str, peer_urls: Sequence[str]) -> str | None:
    """A node that advertises a loopback address while it federates with peers elsewhere: those
    peers would call themselves."""
    host = urllib.parse.urlsplit(advertised_url).hostname or ""
    if not host or await _is_loopback(host) is not True:
        return None
    remote = []
    for url in peer_urls:
        peer_host = urllib.parse.urlsplit(url).hostname or ""
        if peer_host and await _is_loopback(peer_host) is False:
            remote.append(url)
    if not remote:
        return None
    return (
        f"this node advertises {advertised_url}, a loopback address, but federates with peers elsewhere "
        f"({', '.join(remote[:3])}{', ...' if len(remote) > 3 else ''}): they cannot reach it there; "
        "set [federation] advertise_url to the URL they can reach"
    )


# ---- federation files --------------------------------------------------------------------------------


def check_origin(url: str) -> str:
    """``url`` as a peer origin (scheme://host[:port], no path, query, fragment or user), or
    ValueError saying what is wrong with it."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{url!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: expected an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{url!r}: a peer URL carries no user or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"{url!r}: a peer URL is an origin only (scheme://host:port), without a path, query or fragment")
    if unspecified(parts.hostname):
        raise ValueError(f"{url!r}: {parts.hostname} is no address a peer can call")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    try:
        parse_origin(origin)  # the protocol's own rule (10.2), which configs and records are held to
    except ValueError as e:
        raise ValueError(f"{url!r}: {e}") from None
    return origin


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON strings are valid TOML basic strings


def _peer_block(p: PeerAddress) -> str:
    return f"\n[[peers]]\nurl = {_toml_str(p.url)}\nid = {_toml_str(p.node_id)}\n"


def render_federation_file(name: str, *, open_: bool, coops: Sequence[str] | None, peers: Sequence[PeerAddress]) -> str:
    """A federation file, as ``coopnet init --join`` reads it."""
    replicate = '"all"' if coops is None else "[" + ", ".join(_toml_str(c) for c in coops) + "]"
    text = (
        "# A coopnet federation: hand this file to every operator who joins (coopnet init --join FILE).\n"
        "# Add bootstrap peers with: coopnet federation add-peer FILE --url URL --id node_...\n\n"
        f"name = {_toml_str(name)}\n"
        f"open = {'true' if open_ else 'false'}   # true: any node with a valid signed record may join; false: only the peers below\n"
        f'replicate = {replicate}   # co-ops the federation replicates: "all" or a list of coop_... ids\n'
    )
    return text + "".join(_peer_block(p) for p in peers)


def new_federation_file(name: str, *, open_: bool, coops: Sequence[str] | None, first: PeerAddress) -> str:
    """A federation file whose first bootstrap peer is ``first``; checked by loading it back."""
    if not name.strip():
        raise ValueError("a federation needs a name")
    for c in coops or ():
        parse_id(IdKind.COOP, c)
    peer = PeerAddress(check_origin(first.url), first.node_id)
    parse_id(IdKind.NODE, peer.node_id)
    return render_federation_file(name, open_=open_, coops=coops, peers=[peer])


def add_peer(path: Path, url: str, node_id: str) -> tuple[str, Federation]:
    """The text of the federation file at ``path`` with one more bootstrap peer appended (the
    rest of the file, comments included, is kept), and the federation it now describes."""
    fed = load_federation_file(path)
    origin = check_origin(url)
    parse_id(IdKind.NODE, node_id)
    for p in fed.peers:
        if p.node_id == node_id:
            raise ValueError(f"{node_id} is already a peer in {path} (at {p.url})")
        if p.url.rstrip("/") == origin:
            raise ValueError(f"{origin} is already a peer in {path} (as {p.node_id})")
    text = path.read_text(encoding="utf-8")
    text = (text if text.endswith("\n") else text + "\n") + _peer_block(PeerAddress(origin, node_id))
    return text, fed


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_federation_text(text: str, where: Path) -> Federation:
    """Parse a federation file's text the way ``coopnet init --join`` will read it."""
    try:
        fed = parse_federation(tomllib.loads(text), str(where))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{where}: not valid TOML: {e}") from None
    except ConfigError as e:
        raise ValueError(str(e)) from None
    if not fed.name:
        raise ValueError(f"{where}: a federation file needs a name")
    return fed
