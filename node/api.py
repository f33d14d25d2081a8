"""The client HTTP API (aiohttp): JSON for people, msgpack for programs.

A submission flows: rate limit (client address) → size cap → decode (bounded) → the ingest path's
first step (validation, scope, block list, founding policy) → rate limits (authors, applications)
→ its second step (``Store.ingest``, group commit) → answer. Every error answer is JSON
``{"error": code, "message": text}``, its status from ``node.statuses``. Validation and storage go
through ``node.ingest``, shared with the peer API; admission's rate limits are ``node.admission``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgpack
from aiohttp import web

from protocol import ProtocolError, RejectCode
from protocol.ids import IdKind, format_id, parse_id
from protocol.messages import Submission, check_submission, decode_submission

from . import __version__, views
from .admission import ClientAdmission, limited_response, read_limit_middleware
from .config import Limits
from .governance import Governance
from .ingest import Ingestor, Source
from .metrics import CONTENT_TYPE, Metrics
from .statuses import MISSING_STATUS, REJECT_STATUS, status_for
from .store import IngestResult, Store, StoreError

log = logging.getLogger("coopnet.api")

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
JSON_TYPE = "application/json"

INVITE_HEADER = "Coopnet-Invite"  # the token that lets a genesis found a co-op (admission.founding = invite)
STATUS_FOR_CODE = REJECT_STATUS  # kept for importers; the table lives in node.statuses


class ApiError(Exception):
    """An error answer: ``code`` is a stable string; its HTTP status comes from ``node.statuses``
    (404 whatever the code when ``missing``: the resource the path names is not here)."""

    def __init__(self, code: str, message: str, extra: dict[str, Any] | None = None, *, missing: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra or {}
        self.status = status_for(code, missing=missing)


def status_named_error(status: int, code: str, message: str) -> ApiError:
    """For a layer that still names a status with its code (``GovApi``'s ``error``): the table
    decides the status; the only thing taken from ``status`` is that 404 means the path names
    something that is not here."""
    return ApiError(code, message, missing=status == MISSING_STATUS)


def _from_protocol(e: ProtocolError) -> ApiError:
    return ApiError(e.code.value, e.message)


def _error_response(status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message, **(extra or {})}, status=status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error_response(e.status, e.code, e.message, e.extra)
    except ProtocolError as e:
        err = _from_protocol(e)
        return _error_response(err.status, err.code, err.message)
    except web.HTTPRequestEntityTooLarge as e:
        # Raised while reading a body sent without Content-Length (chunked) past client_max_size.
        return _error_response(status_for(RejectCode.TOO_LARGE), RejectCode.TOO_LARGE.value, e.text or "request body too large")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error_response(e.status, _HTTP_CODES.get(e.status, "http_error"), e.reason or "error")
    except StoreError as e:
        log.error("store unavailable: %s", e)
        return _error_response(status_for("unavailable"), "unavailable", f"the store could not complete the request: {e}")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error_response(status_for("internal"), "internal", "internal error; see the node log")


def _wants_msgpack(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(t in accept for t in MSGPACK_TYPES)


def respond(request: web.Request, payload: dict[str, Any], status: int = 200) -> web.Response:
    if _wants_msgpack(request):
        return web.Response(body=msgpack.packb(payload, use_bin_type=True), status=status, content_type="application/msgpack")
    return web.json_response(payload, status=status)


class Api:
    """The handlers. Holds explicit references to what they use; built by ``node.node``."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        node_key_id: bytes,
        limits: Limits,
        started_ms: int,
        clock_ms: Callable[[], int],
        metrics: Metrics,
        status_extra: Callable[[], dict[str, Any]] | None = None,
        peers_view: Callable[[], list[dict[str, Any]]] | None = None,
        governance: Governance | None = None,
        admission: ClientAdmission | None = None,
    ) -> None:
        self.store = store
        self.ingestor = ingestor
        self.node_id = node_key_id
        self.limits = limits
        self.started_ms = started_ms
        self.clock_ms = clock_ms
        self.metrics = metrics
        self.status_extra = status_extra
        self.peers_view = peers_view
        self.governance = governance
        self.admission = admission

    def app(self) -> web.Application:
        middlewares = [error_middleware]
        if self.admission is not None:
            middlewares.append(read_limit_middleware(self.admission))
        app = web.Application(client_max_size=self.limits.max_request_bytes, middlewares=middlewares)
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.metrics_text),
                web.get("/api/v1/node", self.node_info),
                web.get("/api/v1/peers", self.peers),
                web.post("/api/v1/actions", self.post_actions),
                web.get("/api/v1/actions/{id}", self.get_action),
                web.get("/api/v1/coops", self.list_coops),
                web.get("/api/v1/coops/{coop}", self.get_coop),
                web.get("/api/v1/coops/{coop}/actions", self.list_actions),
                web.get("/api/v1/coops/{coop}/chains", self.chains),
                web.get("/api/v1/coops/{coop}/proofs", self.proofs),
                web.get("/api/v1/proofs/{id}", self.get_proof),
            ]
        )
        return app

    # ---- submitting --------------------------------------------------------------------------

    async def _read_submission(self, request: web.Request) -> Submission:
        if request.content_length is not None and request.content_length > self.limits.max_request_bytes:
            raise ApiError(
                "too_large", f"request body of {request.content_length} bytes exceeds the limit of {self.limits.max_request_bytes}"
            )
        ctype = request.content_type
        if ctype not in MSGPACK_TYPES and ctype != JSON_TYPE:
            raise ApiError("unsupported_media_type", f"send {JSON_TYPE} or application/msgpack, not {ctype or 'nothing'}")
        data = await request.read()
        if not data:
            raise ApiError("malformed", "empty request body")
        if ctype in MSGPACK_TYPES:
            return decode_submission(data, max_actions=self.limits.max_batch_actions)
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ApiError("malformed", f"body is not JSON: {e}") from None
        if isinstance(doc, dict):
            if isinstance(doc.get("actions"), list):
                doc["actions"] = [_unbase64(x, f"actions[{i}]") for i, x in enumerate(doc["actions"])]
            if "action" in doc:
                doc["action"] = _unbase64(doc["action"], "action")
        return check_submission(doc, self.limits.max_batch_actions)

    async def post_actions(self, request: web.Request) -> web.Response:
        gate = self.admission
        address = gate.address(request) if gate is not None else (request.remote or "")
        if gate is not None and (over := gate.write(address)) is not None:
            return limited_response(over)
        sub = await self._read_submission(request)
        if gate is not None:
            gate.posted(address, len(sub.actions))
        checked = await self.ingestor.check(sub.actions, Source.client(address, request.headers.get(INVITE_HEADER)))
        if gate is not None and (over := gate.admit(address, checked)) is not None:
            return limited_response(over)  # before the store: nothing of it is kept
        outcome = await self.ingestor.store_checked(checked)
        if gate is not None:
            gate.charge(address, checked, outcome)
        results = outcome.in_order(checked)
        body = {"results": [views.result_view(r) for r in results], **_tally(results)}
        if sub.single and results[0].status == "rejected":
            r = results[0]
            assert r.code is not None
            raise ApiError(r.code.value, r.message or r.code.value, body)
        # One action held (its author is not known here yet): taken, not accepted.
        return respond(request, body, status=202 if sub.single and results[0].status == "held" else 200)

    # ---- reading -----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        ok = await self.store.writable()
        body: dict[str, Any] = {"ok": ok, "store": "writable" if ok else "not writable"}
        if self.status_extra is not None:
            body["peers_reachable"] = self.status_extra().get("peers_reachable", 0)
        return web.json_response(body, status=200 if ok else 503)

    async def peers(self, request: web.Request) -> web.Response:
        return respond(request, {"peers": self.peers_view() if self.peers_view is not None else []})

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def node_info(self, request: web.Request) -> web.Response:
        counts = await self.store.counts()
        return respond(
            request,
            {
                "node_id": format_id(IdKind.NODE, self.node_id),
                "version": __version__,
                "protocol": 1,
                "uptime_s": (self.clock_ms() - self.started_ms) // 1000,
                "counts": counts,
                "submitted": {
                    "accepted": self.ingestor.stats.accepted,
                    "known": self.ingestor.stats.known,
                    "pending": self.ingestor.stats.pending,
                    "rejected": dict(self.ingestor.stats.rejected),
                },
                "admission": self._admission_view(),
                **(self.status_extra() if self.status_extra is not None else {}),
                "limits": {
                    "max_request_bytes": self.limits.max_request_bytes,
                    "max_batch_actions": self.limits.max_batch_actions,
                    "max_action_bytes": self.limits.max_action_bytes,
                    "max_page": self.limits.max_page,
                    "max_pending": self.limits.max_pending,
                },
            },
        )

    def _admission_view(self) -> dict[str, Any]:
        u = self.store.usage()
        p = self.store.policy
        cfg = self.ingestor.admission
        return {
            "founding": cfg.founding,
            "unknown_authors": cfg.unknown_authors,
            "held": u.held,
            "held_total": self.ingestor.stats.held,
            "released_total": self.store.released_total,
            "pending": u.pending,
            "blocked_authors": u.blocked,
            "stored_bytes": u.bytes,
            "rate_limited_total": self.admission.limited if self.admission is not None else 0,
            "limits": {
                "quarantine_per_author": p.quarantine_per_author,
                "quarantine_per_coop": p.quarantine_per_coop,
                "max_quarantine": p.max_quarantine,
                "quarantine_seconds": p.quarantine_ms // 1000,
                "max_pending_per_coop": p.max_pending_per_coop,
                "max_pending_per_author": p.max_pending_per_author,
                "pending_seconds": p.pending_ms // 1000,
                "quota_author_bytes": p.quota_author_bytes,
                "quota_coop_bytes": p.quota_coop_bytes,
                "quota_node_bytes": p.quota_node_bytes,
            },
        }

    async def get_action(self, request: web.Request) -> web.Response:
        action_id = parse_id(IdKind.ACTION, request.match_info["id"])
        found = await self.store.get_action(action_id)
        if found is None:
            raise ApiError("not_found", f"no action {request.match_info['id']} here")
        view = views.stored_view(found, binary=_wants_msgpack(request))
        if self.governance is not None and found.status == "stored":
            fold = await self.governance.fold(found.action().coop)
            if fold is not None:
                state, reason = fold.result(action_id)
                view["fold"] = {"result": state, "reason": reason}
        return respond(request, view)

    async def _coop(self, request: web.Request) -> bytes:
        coop = parse_id(IdKind.COOP, request.match_info["coop"])
        if await self.store.get_coop(coop) is None:
            raise ApiError(RejectCode.UNKNOWN_COOP.value, f"no co-op {request.match_info['coop']} here", missing=True)
        return coop

    async def list_coops(self, request: web.Request) -> web.Response:
        return respond(request, {"coops": [views.coop_view(c) for c in await self.store.list_coops()]})

    async def get_coop(self, request: web.Request) -> web.Response:
        coop = await self._coop(request)
        row = await self.store.get_coop(coop)
        genesis = await self.store.get_action(coop)
        assert row is not None and genesis is not None
        out = views.coop_view(row)
        out["genesis"] = views.stored_view(genesis, binary=_wants_msgpack(request))
        out["chains"] = await self.store.chain_count(coop)
        return respond(request, out)

    async def list_actions(self, request: web.Request) -> web.Response:
        coop = await self._coop(request)
        q = request.query
        author = parse_id(IdKind.MEMBER, q["author"]) if q.get("author") else None
        kind = q.get("kind") or None
        after = _int_param(q, "after", 0, 0, 2**63 - 1)
        limit = _int_param(q, "limit", min(100, self.limits.max_page), 1, self.limits.max_page)
        rows = await self.store.list_actions(coop, author=author, kind=kind, after=after, limit=limit)
        binary = _wants_msgpack(request)
        nxt = str(rows[-1].pos) if len(rows) == limit else None
        return respond(request, {"actions": [views.stored_view(r, binary=binary) for r in rows], "next": nxt})

    async def chains(self, request: web.Request) -> web.Response:
        coop = await self._coop(request)
        author = parse_id(IdKind.MEMBER, request.query["author"]) if request.query.get("author") else None
        rows = await self.store.chains(coop, author)
        return respond(request, {"coop": request.match_info["coop"], "chains": [views.chain_view(c) for c in rows]})

    async def proofs(self, request: web.Request) -> web.Response:
        coop = await self._coop(request)
        binary = _wants_msgpack(request)
        return respond(request, {"proofs": [views.proof_view(p, binary=binary) for p in await self.store.proofs(coop)]})

    async def get_proof(self, request: web.Request) -> web.Response:
        proof = await self.store.get_proof(parse_id(IdKind.PROOF, request.match_info["id"]))
        if proof is None:
            raise ApiError("not_found", f"no proof {request.match_info['id']} here")
        return respond(request, views.proof_view(proof, binary=_wants_msgpack(request)))


def _tally(results: Sequence[IngestResult]) -> dict[str, int]:
    c = Counter(r.status for r in results)
    return {s: c.get(s, 0) for s in ("accepted", "known", "pending", "held", "rejected")}


def _unbase64(v: Any, where: str) -> bytes:
    if not isinstance(v, str):
        raise ApiError("bad_schema", f"{where} must be the base64 text of an action's bytes")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("malformed", f"{where} is not valid base64") from None


def _int_param(q: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise ApiError("bad_request", f"query parameter {name} must be an integer from {lo} to {hi}, got {raw[:40]!r}")
    return int(raw)
