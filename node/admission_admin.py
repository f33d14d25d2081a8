"""The admin API's admission endpoints: the quarantine, blocked authors, usage against the quotas.

Registered on the node's ``AdminApi`` with one line in ``node/node.py``; behind its token, on its
own listener (see ``node/admin.py``). Reads come from the store's in-memory counters where it
keeps them (``Store.usage``) and from the reader connection otherwise; every change goes through
one of the store's write methods (one transaction between group commits, after which the store
reloads its counters and its block list), is answered only once committed, and is logged at
WARNING by ``audit``. A block therefore refuses the author's next submission, from clients and
peers alike, as soon as its answer is sent, and is kept in the store across restarts.

A request naming a field or a query parameter the endpoint does not know is refused (400) with
nothing changed: a misspelt ``coop`` must not turn a co-op's purge into a node-wide one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from protocol.ids import IdKind, format_id

from .admin import ADMIN_PREFIX, MAX_PENDING_PAGE, audit, id_arg, int_arg, only_fields, only_params, purge_scope, read_json, reason_arg
from .config import Admission
from .store import ANY_COOP, Store

DEFAULT_HELD_PAGE = 100
DEFAULT_USAGE_COOPS = 100  # co-ops listed by /usage, the largest first
MAX_USAGE_COOPS = 1000
DEFAULT_TOP_AUTHORS = 5  # authors listed per co-op by /usage, the largest first
MAX_TOP_AUTHORS = 100


def _member(b: bytes) -> str:
    return format_id(IdKind.MEMBER, b)


def _coop(b: bytes) -> str:
    return format_id(IdKind.COOP, b)


class AdmissionAdmin:
    """``/held``, ``/held/purge``, ``/authors/*`` and ``/usage`` under ``ADMIN_PREFIX``."""

    def __init__(self, store: Store, admission: Admission, clock_ms: Callable[[], int]) -> None:
        self.store = store
        self.admission = admission
        self.clock_ms = clock_ms

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{ADMIN_PREFIX}/held", self.held),
            web.post(f"{ADMIN_PREFIX}/held/purge", self.purge_held),
            web.get(f"{ADMIN_PREFIX}/authors/blocked", self.blocked),
            web.post(f"{ADMIN_PREFIX}/authors/block", self.block),
            web.post(f"{ADMIN_PREFIX}/authors/unblock", self.unblock),
            web.get(f"{ADMIN_PREFIX}/usage", self.usage),
        ]

    # ---- the quarantine ------------------------------------------------------------------------

    async def held(self, request: web.Request) -> web.Response:
        q = only_params(request, ("coop", "author", "limit"))
        coop = id_arg(IdKind.COOP, q["coop"], "coop") if q.get("coop") else None
        author = id_arg(IdKind.MEMBER, q["author"], "author") if q.get("author") else None
        limit = int_arg(q, "limit", DEFAULT_HELD_PAGE, MAX_PENDING_PAGE)
        rows = await self.store.held(coop, author, limit=limit)
        now = self.clock_ms()
        p = self.store.policy
        return web.json_response(
            {
                "held": [
                    {
                        "id": format_id(IdKind.ACTION, r.id),
                        "coop": _coop(r.coop),
                        "author": _member(r.author),
                        "seq": r.seq,
                        "kind": r.kind,
                        "size": r.size,
                        "received_at_ms": r.received_at,
                        "age_s": max(0, now - r.received_at) // 1000,
                        "expires_at_ms": r.expires_at,
                        "expires_in_s": None if r.expires_at is None else max(0, r.expires_at - now) // 1000,
                        "reason": r.reason,
                    }
                    for r in rows
                ],
                "total": self.store.held_count,
                "hold_unknown": p.hold_unknown,
                "max_quarantine": p.max_quarantine,
                "quarantine_per_coop": p.quarantine_per_coop,
                "quarantine_per_author": p.quarantine_per_author,
                "quarantine_seconds": p.quarantine_ms // 1000,
            }
        )

    async def purge_held(self, request: web.Request) -> web.Response:
        what = await purge_scope(request)
        n = await self.store.purge_held(what.coop, what.author, ids=what.ids)
        if n:
            audit("held.purge", f"purged {n} held actions ({what.text})", purged=n, **what.fields)
        return web.json_response({"purged": n})

    # ---- blocked authors -----------------------------------------------------------------------

    async def blocked(self, request: web.Request) -> web.Response:
        only_params(request, ())
        rows = await self.store.blocked_authors()
        return web.json_response(
            {
                "blocked": [
                    {
                        "author": _member(r.author),
                        "coop": None if r.coop is None else _coop(r.coop),
                        "reason": r.reason,
                        "since_ms": r.since,
                    }
                    for r in rows
                ]
            }
        )

    async def _author_and_coop(self, request: web.Request, fields: tuple[str, ...]) -> tuple[dict[str, Any], bytes, bytes | None]:
        doc = await read_json(request)
        only_fields(doc, fields)
        author = id_arg(IdKind.MEMBER, doc.get("author"), "author")
        coop = None if doc.get("coop") is None else id_arg(IdKind.COOP, doc["coop"], "coop")  # absent or null: every co-op
        return doc, author, coop

    async def block(self, request: web.Request) -> web.Response:
        doc, author, coop = await self._author_and_coop(request, ("author", "coop", "reason"))
        reason = reason_arg(doc) or "blocked by the operator"
        done = await self.store.block_author(coop, author, reason)
        who, where = _member(author), ("every co-op" if coop is None else _coop(coop))
        fields = {"author": who, "coop": None if coop is None else _coop(coop), "reason": reason}
        changed = done.added or done.reason_was != reason
        if done.added:
            audit(
                "authors.block",
                f"blocked author {who} in {where}: {reason}; dropped {done.held} held and {done.pending} pending actions",
                dropped_held=done.held,
                dropped_pending=done.pending,
                **fields,
            )
        elif changed or done.held or done.pending:
            audit(
                "authors.block", f"author {who} was blocked in {where} already; reason now: {reason}", reason_was=done.reason_was, **fields
            )
        return web.json_response({**fields, "blocked": True, "changed": changed, "dropped": {"held": done.held, "pending": done.pending}})

    async def unblock(self, request: web.Request) -> web.Response:
        _, author, coop = await self._author_and_coop(request, ("author", "coop"))
        changed = await self.store.unblock_author(coop, author)
        who = _member(author)
        where = None if coop is None else _coop(coop)
        if changed:
            audit("authors.unblock", f"unblocked author {who} in {where or 'every co-op'}", author=who, coop=where)
        # Say where the author is still blocked: an unblock "everywhere" does not lift a block
        # in one co-op, and the operator should not have to guess.
        still = [None if c == ANY_COOP else _coop(c) for c, a in sorted(self.store.blocked) if a == author]
        return web.json_response({"author": who, "coop": where, "blocked": False, "changed": changed, "still_blocked_in": still})

    # ---- usage ---------------------------------------------------------------------------------

    async def usage(self, request: web.Request) -> web.Response:
        q = only_params(request, ("limit", "top"))
        limit = int_arg(q, "limit", DEFAULT_USAGE_COOPS, MAX_USAGE_COOPS)
        top = int_arg(q, "top", DEFAULT_TOP_AUTHORS, MAX_TOP_AUTHORS, lo=0)
        store, p = self.store, self.store.policy
        u = store.usage()
        coops = await store.list_coops()
        blocked_in: dict[bytes, int] = {}
        for c, _author in store.blocked:
            blocked_in[c] = blocked_in.get(c, 0) + 1
        # The largest first: the co-ops nearest their quota are the ones an operator looks for.
        coops.sort(key=lambda r: (-u.coop_bytes.get(r.id, 0), r.id))
        shown = coops[:limit]
        tops = await store.top_authors([r.id for r in shown], top)
        return web.json_response(
            {
                "node": {
                    "stored_bytes": u.bytes,
                    "quota_bytes": p.quota_node_bytes,
                    "held": u.held,
                    "max_held": p.max_quarantine,
                    "pending": u.pending,
                    "max_pending": store.max_pending,
                    "coops": len(coops),
                    "blocked_authors": u.blocked,
                    "blocked_everywhere": blocked_in.get(ANY_COOP, 0),
                    "blocked_peers": len(await store.blocked_nodes()),
                },
                "coops": [
                    {
                        "coop": _coop(r.id),
                        "name": r.name,
                        "actions": r.actions,
                        "stored_bytes": u.coop_bytes.get(r.id, 0),
                        "quota_bytes": p.quota_coop_bytes,
                        "held": u.held_by_coop.get(r.id, 0),
                        "max_held": p.quarantine_per_coop,
                        "pending": u.pending_by_coop.get(r.id, 0),
                        "max_pending": p.max_pending_per_coop,
                        "blocked_authors": blocked_in.get(r.id, 0),
                        "top_authors": [
                            {"author": _member(a), "stored_bytes": n, "quota_bytes": p.quota_author_bytes} for a, n in tops.get(r.id, [])
                        ],
                    }
                    for r in shown
                ],
                "policy": {
                    "founding": self.admission.founding,
                    "unknown_authors": self.admission.unknown_authors,
                    "quota_author_bytes": p.quota_author_bytes,
                    "quota_coop_bytes": p.quota_coop_bytes,
                    "quota_node_bytes": p.quota_node_bytes,
                    "quarantine_per_author": p.quarantine_per_author,
                    "quarantine_per_coop": p.quarantine_per_coop,
                    "max_quarantine": p.max_quarantine,
                    "quarantine_seconds": p.quarantine_ms // 1000,
                    "max_pending": store.max_pending,
                    "max_pending_per_coop": p.max_pending_per_coop,
                    "max_pending_per_author": p.max_pending_per_author,
                    "pending_floor": p.pending_floor,
                    "pending_seconds": p.pending_ms // 1000,
                },
            }
        )
