"""The admin API: ``/api/v1/admin/*``, for this node's operator and nobody else.

Theory of operation. The admin API never shares a socket with the public API: it has its own
aiohttp application on its own listener (``[admin] listen``, loopback by default), so a reverse
proxy in front of the public port cannot expose it by accident. Every request, whatever its
path, must carry ``Authorization: Bearer <token>``, the token kept in ``DATA_DIR/admin.token``
(mode 0600, made by ``coopnet init`` or at the first start); it is compared in constant time. A
request without it gets ``401 unauthorized`` before any route is looked up, so the routes cannot
be probed. Errors are JSON ``{"error", "message"}`` like the client API's. Every change an admin
request makes is logged at WARNING by ``audit`` with what changed.

Adding endpoints (one line in ``node/node.py``): write a class whose ``routes()`` returns aiohttp
``RouteDef``s under ``ADMIN_PREFIX``, and register them on the node's ``AdminApi``::

    admin.add_routes(Quarantine(store).routes())

Handlers read a JSON body with ``await read_json(request)`` and refuse fields they do not know
with ``only_fields`` (query parameters: ``only_params``), parse ids and numbers with ``id_arg`` and
``int_arg``, answer with ``web.json_response``, raise ``ApiError(code, message)`` for errors (the
status comes from ``node.statuses``), and call ``audit(action, message, **fields)`` for every
change they make. ``GET /api/v1/admin`` lists every registered route.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from protocol import ProtocolError
from protocol.ids import IdKind, format_id, parse_id

from .api import ApiError, error_middleware
from .keyfile import KeyFileError
from .peers import PeerBook
from .store import Store

log = logging.getLogger("coopnet.admin")

ADMIN_PREFIX = "/api/v1/admin"
TOKEN_FILE = "admin.token"
ADMIN_URL_FILE = "coopnet.admin-url"  # written on start: where the admin API listens (port 0)
TOKEN_BYTES = 32
MAX_ADMIN_BODY = 256 * 1024  # an admin request body (a purge names at most MAX_PURGE_IDS ids)
MAX_PURGE_IDS = 2000
MAX_PENDING_PAGE = 10_000
DEFAULT_PENDING_PAGE = 100
UNAUTHORIZED_LOG_INTERVAL_S = 60.0  # refused requests are logged once per interval, with a count
MAX_REASON = 500  # characters of a block's reason


class AdminTokenError(KeyFileError):
    """The admin token file is missing, unreadable, too short or readable by others."""


def ensure_token(data_dir: Path) -> str:
    """The admin token of ``data_dir``: created (0600) if missing, refused if others can read it."""
    path = data_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(data_dir)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("created the admin token %s", path)
    return token


def read_token(data_dir: Path) -> str:
    path = data_dir / TOKEN_FILE
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise AdminTokenError(f"{path}: no admin token (it is made by 'coopnet init' and when the node starts)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AdminTokenError(f"{path}: cannot read the admin token: {e}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AdminTokenError(f"{path}: readable by others (mode {stat.filemode(mode)}); run: chmod 600 {path}")
    if len(token) < 32:
        raise AdminTokenError(f"{path}: too short to be an admin token; delete it and restart the node to make a new one")
    return token


def audit(action: str, message: str, **fields: Any) -> None:
    """Log a change made through the admin API (WARNING: an operator changed the node)."""
    log.warning("admin %s: %s", action, message, extra={"admin_action": action, **fields})


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 ApiError."""
    if request.content_type != "application/json":
        raise ApiError("unsupported_media_type", "send application/json")
    try:
        doc = json.loads(await request.read())
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError("malformed", f"body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ApiError("bad_request", "expected a JSON object")
    return doc


def id_arg(kind: IdKind, value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError("bad_id", f"{what} must be a {kind.value}_... id")
    try:
        return parse_id(kind, value)
    except ProtocolError as e:
        raise ApiError(e.code.value, e.message) from None


def int_arg(q: Any, name: str, default: int, hi: int, lo: int = 1) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not lo <= int(raw) <= hi:
        raise ApiError("bad_request", f"{name} must be an integer from {lo} to {hi}")
    return int(raw)


def only_fields(doc: dict[str, Any], allowed: Iterable[str]) -> None:
    """A 400 for a body field the endpoint does not know: a misspelt field would otherwise be
    ignored, and a purge or a block would do something else than the operator meant."""
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ApiError("bad_request", f"unknown field {unknown[0]!r} (this endpoint takes {', '.join(sorted(allowed))})")


def only_params(request: web.Request, allowed: Iterable[str]) -> Any:
    """The query, refused (400) if it names a parameter the endpoint does not know, or one twice."""
    q = request.query
    allowed = set(allowed)
    for name in q:
        if name not in allowed:
            raise ApiError("bad_request", f"unknown query parameter {name!r} (this endpoint takes {', '.join(sorted(allowed)) or 'none'})")
        if len(q.getall(name)) > 1:
            raise ApiError("bad_request", f"query parameter {name!r} given more than once")
    return q


def reason_arg(doc: dict[str, Any]) -> str:
    reason = doc.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ApiError("bad_request", f"reason must be a string of at most {MAX_REASON} characters")
    return reason


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminApi:
    """The admin application: token check, JSON errors, and whatever routes are registered."""

    def __init__(self, token: str, routes: Iterable[web.RouteDef] = ()) -> None:
        self._token = token.encode()
        self._routes: list[web.RouteDef] = []
        self._refused = 0
        self._refused_logged_at = 0.0
        self.add_routes(routes)

    def add_routes(self, routes: Iterable[web.RouteDef]) -> None:
        for r in routes:
            if not r.path.startswith(ADMIN_PREFIX):
                raise ValueError(f"admin routes live under {ADMIN_PREFIX}, not {r.path}")
            self._routes.append(r)

    def app(self) -> web.Application:
        if len(self._token) < 32:
            raise ValueError("the admin API is never served without a token (see ensure_token)")
        app = web.Application(client_max_size=MAX_ADMIN_BODY, middlewares=[error_middleware, self._auth])
        app.add_routes([web.get(ADMIN_PREFIX, self.index), *self._routes])
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            self._note_refused(request)
            raise ApiError("unauthorized", f"the admin API needs 'Authorization: Bearer <token>' (the token is in {TOKEN_FILE})")
        return await handler(request)

    def _note_refused(self, request: web.Request) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= UNAUTHORIZED_LOG_INTERVAL_S:
            log.warning("admin API: %d request(s) without the right token (the last: %s %s)", self._refused, request.method, request.path)
            self._refused, self._refused_logged_at = 0, now

    async def index(self, request: web.Request) -> web.Response:
        routes = [{"method": r.method, "path": r.path} for r in self._routes]
        return web.json_response({"routes": sorted(routes, key=lambda r: (r["path"], r["method"]))})


class NodeAdmin:
    """The node's own admin endpoints: peers (list, block, unblock) and pending actions."""

    def __init__(self, store: Store, book: PeerBook, clock_ms: Callable[[], int]) -> None:
        self.store = store
        self.book = book
        self.clock_ms = clock_ms

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{ADMIN_PREFIX}/peers", self.peers),
            web.post(f"{ADMIN_PREFIX}/peers/block", self.block),
            web.post(f"{ADMIN_PREFIX}/peers/unblock", self.unblock),
            web.get(f"{ADMIN_PREFIX}/pending", self.pending),
            web.post(f"{ADMIN_PREFIX}/pending/purge", self.purge),
        ]

    async def peers(self, request: web.Request) -> web.Response:
        only_params(request, ())
        blocked = await self.store.blocked_nodes()
        return web.json_response(
            {
                "peers": self.book.view(),
                "blocked": [
                    {"id": format_id(IdKind.NODE, n), "reason": reason, "blocked_at_ms": at} for n, (reason, at) in blocked.items()
                ],
            }
        )

    async def block(self, request: web.Request) -> web.Response:
        doc = await read_json(request)
        only_fields(doc, ("id", "reason"))
        node = id_arg(IdKind.NODE, doc.get("id"), "id")
        reason = reason_arg(doc)
        if node == self.book.my_id:
            raise ApiError("bad_request", "that is this node's own id")
        changed = await self.store.set_blocked(node, reason or "blocked by the operator")
        self.book.block(node)
        text = format_id(IdKind.NODE, node)
        if changed:
            audit("peers.block", f"blocked peer {text}: {reason or '(no reason given)'}", node=text, reason=reason)
        return web.json_response({"id": text, "blocked": True, "changed": changed})

    async def unblock(self, request: web.Request) -> web.Response:
        doc = await read_json(request)
        only_fields(doc, ("id",))
        node = id_arg(IdKind.NODE, doc.get("id"), "id")
        changed = await self.store.set_blocked(node, None)
        self.book.unblock(node)
        text = format_id(IdKind.NODE, node)
        if changed:
            audit("peers.unblock", f"unblocked peer {text}", node=text)
        return web.json_response({"id": text, "blocked": False, "changed": changed})

    async def pending(self, request: web.Request) -> web.Response:
        q = only_params(request, ("coop", "author", "limit"))
        coop = id_arg(IdKind.COOP, q["coop"], "coop") if q.get("coop") else None
        author = id_arg(IdKind.MEMBER, q["author"], "author") if q.get("author") else None
        limit = int_arg(q, "limit", DEFAULT_PENDING_PAGE, MAX_PENDING_PAGE)
        rows = await self.store.pending_rows(coop=coop, author=author, limit=limit)
        now = self.clock_ms()
        ttl = self.store.policy.pending_ms  # expire() drops a pending action this long after it came (0: never)
        return web.json_response(
            {
                "pending": [
                    {
                        "id": format_id(IdKind.ACTION, r.id),
                        "coop": format_id(IdKind.COOP, r.coop),
                        "author": format_id(IdKind.MEMBER, r.author),
                        "seq": r.seq,
                        "received_at_ms": r.received_at,
                        "age_s": max(0, now - r.received_at) // 1000,
                        "expires_at_ms": r.received_at + ttl if ttl else None,
                        "expires_in_s": max(0, r.received_at + ttl - now) // 1000 if ttl else None,
                        "reason": r.reason,
                    }
                    for r in rows
                ],
                "total": (await self.store.counts())["pending"],
                "max_pending": self.store.max_pending,
                "pending_seconds": ttl // 1000,
            }
        )

    async def purge(self, request: web.Request) -> web.Response:
        what = await purge_scope(request)
        n = await self.store.purge_pending(ids=what.ids, coop=what.coop, author=what.author)
        if n:
            audit("pending.purge", f"purged {n} pending actions ({what.text})", purged=n, **what.fields)
        return web.json_response({"purged": n})


@dataclass(frozen=True, slots=True)
class PurgeScope:
    """What a purge request names: ids, and/or everything of a co-op and/or an author."""

    ids: list[bytes] | None
    coop: bytes | None
    author: bytes | None
    fields: dict[str, Any]  # as given (ids counted), for the audit line

    @property
    def text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.fields.items())


async def purge_scope(request: web.Request) -> PurgeScope:
    """A purge's body: at least one of ``ids``, ``coop``, ``author`` (never everything by accident)."""
    doc = await read_json(request)
    only_fields(doc, ("ids", "coop", "author"))
    ids = None
    if "ids" in doc:
        if not isinstance(doc["ids"], list) or not doc["ids"] or len(doc["ids"]) > MAX_PURGE_IDS:
            raise ApiError("bad_request", f"ids must be a list of 1 to {MAX_PURGE_IDS} act_... ids")
        ids = [id_arg(IdKind.ACTION, x, "ids[]") for x in doc["ids"]]
    coop = id_arg(IdKind.COOP, doc["coop"], "coop") if "coop" in doc else None
    author = id_arg(IdKind.MEMBER, doc["author"], "author") if "author" in doc else None
    if ids is None and coop is None and author is None:
        raise ApiError("bad_request", "say what to purge: ids, coop and/or author")
    fields = {
        k: v for k, v in (("coop", doc.get("coop")), ("author", doc.get("author")), ("ids", len(ids) if ids else None)) if v is not None
    }
    return PurgeScope(ids, coop, author, fields)


# ---- the client side: coopnet admin ... ------------------------------------------------------------


class AdminClientError(Exception):
    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class AdminClient:
    """Talks to the admin API of the node running on ``data_dir``, with the token kept there."""

    def __init__(self, data_dir: Path, timeout: float = 30.0) -> None:
        url_file = data_dir / ADMIN_URL_FILE
        try:
            self.url = url_file.read_text().strip().rstrip("/")
        except FileNotFoundError:
            raise AdminClientError(
                "no_admin",
                f"no node with an admin listener runs on {data_dir} ({url_file} is missing; is the node running, with [admin] listen set?)",
            ) from None
        try:
            self.token = read_token(data_dir)
        except AdminTokenError as e:
            raise AdminClientError("no_token", str(e)) from None
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
        q = {k: v for k, v in query.items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(q) if q else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                out: dict[str, Any] = json.loads(resp.read())
                return out
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())
            except ValueError:
                raise AdminClientError("http_error", f"HTTP {e.code} from {self.url}", e.code) from None
            raise AdminClientError(err.get("error", "http_error"), err.get("message", ""), e.code) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            raise AdminClientError("unreachable", f"cannot reach the admin API at {self.url}: {getattr(e, 'reason', e)}") from None
