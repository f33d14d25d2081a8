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
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgpack
from aiohttp import web

from protocol import ProtocolError, RejectCode
from protocol.ids import IdKind, format_id, parse_id
from protocol.messages import Submission, check_submission, decode_submission

from . import __version__, views
from .admission import ClientAdmission, client_limit_middleware
from .config import Limits
from .governance import Governance
from .http import OFFLOAD_MIN_BYTES, BadParam, JsonError, int_param, parse_json
from .ingest import Ingestor, Source
from .metrics import CONTENT_TYPE, Metrics
from .statuses import MISSING_STATUS, REJECT_STATUS, status_for
from .store import IngestResult, Store, StoreError

log = logging.getLogger("coopnet.api")

DISK_CHECK_INTERVAL_S = 1.0  # /readyz looks at free disk space at most this often
Offload = Callable[..., Awaitable[Any]]  # runs a function off the event loop (node.http.HttpServer.offload)

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
    except ConnectionError:
        raise  # the client went away: nothing to answer; node/http.py counts it
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
        *,
        offload: Offload | None = None,
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
        self.offload = offload  # runs large decodes off the event loop; None: inline
        self._disk_checked: tuple[float, int] = (float("-inf"), 0)  # (monotonic time, free bytes)

    def app(self) -> web.Application:
        middlewares = [error_middleware]
        if self.admission is not None:
            middlewares.append(client_limit_middleware(self.admission))
        app = web.Application(client_max_size=self.limits.max_request_bytes, middlewares=middlewares)
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
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
        data = await request.read()  # already read, within the body budget and timeout (node/http.py)
        if not data:
            raise ApiError("malformed", "empty request body")
        if ctype in MSGPACK_TYPES:
            decode: Callable[[bytes], Submission] = self._msgpack_submission
        else:
            decode = self._json_submission
        if self.offload is not None and len(data) >= OFFLOAD_MIN_BYTES:
            return await self.offload(decode, data)
        return decode(data)

    def _msgpack_submission(self, data: bytes) -> Submission:
        return decode_submission(data, max_actions=self.limits.max_batch_actions)

    def _json_submission(self, data: bytes) -> Submission:
        """The JSON form: shape and count checked before any item is decoded from base64."""
        max_actions = self.limits.max_batch_actions
        try:
            # The values of {"actions": [...]}: one per action and the array itself.
            doc = parse_json(data, max_depth=self.limits.max_json_depth, max_values=max_actions + 1)
        except JsonError as e:
            raise ApiError(e.code, e.message) from None
        if not isinstance(doc, dict) or len(doc) != 1 or not doc.keys() <= {"action", "actions"}:
            raise ApiError("bad_schema", 'body must be {"actions": [...]} or {"action": ...}')
        single = "action" in doc
        items = [doc["action"]] if single else doc["actions"]
        if not isinstance(items, list):
            raise ApiError("bad_schema", '"actions" must be an array')
        if not items:
            raise ApiError("bad_schema", '"actions" is empty')
        if len(items) > max_actions:
            raise ApiError("too_large", f"{len(items)} actions exceeds the batch limit of {max_actions}")
        for i, x in enumerate(items):
            if not isinstance(x, str):
                raise ApiError("bad_schema", f"{'action' if single else f'actions[{i}]'} must be the base64 text of an action's bytes")
        raws = [_unbase64(x, "action" if single else f"actions[{i}]") for i, x in enumerate(items)]
        del doc, items
        return check_submission({"action": raws[0]} if single else {"actions": raws}, max_actions)

    async def post_actions(self, request: web.Request) -> web.Response:
        gate = self.admission
        address = gate.address(request) if gate is not None else (request.remote or "")
        if gate is not None and (over := gate.write(address)) is not None:
            return await gate.refusal(over)
        sub = await self._read_submission(request)
        if gate is not None:
            gate.posted(address, len(sub.actions))
        checked = await self.ingestor.check(sub.actions, Source.client(address, request.headers.get(INVITE_HEADER)))
        if gate is not None and (over := gate.admit(address, checked)) is not None:
            return await gate.refusal(over)  # before the store: nothing of it is kept
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
        """Alive: the process answers. From memory only; never touches the store."""
        body: dict[str, Any] = {"ok": True, "status": "alive"}
        if self.status_extra is not None:
            body["peers_reachable"] = self.status_extra().get("peers_reachable", 0)
        return web.json_response(body)

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready: the node can take writes now. Free disk space above ``min_free_disk_bytes`` and a
        live, unstuck store writer; read from memory and one statvfs, never through the writer's
        connection, so a poller cannot get in the way of a commit."""
        lim = self.limits
        h = self.store.health()
        free = self._free_disk()
        reasons = []
        if not h.open:
            reasons.append("the store is closed")
        elif not h.writer_alive:
            reasons.append("the store's writer task has stopped")
        elif h.commit_running_s > lim.writer_stall_timeout:
            reasons.append(f"a commit has been running for {h.commit_running_s:.0f} s")
        if free < lim.min_free_disk_bytes:
            reasons.append(f"{free} bytes free on the data directory's filesystem, below min_free_disk_bytes ({lim.min_free_disk_bytes})")
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "store": {"open": h.open, "writer_alive": h.writer_alive, "commit_running_s": round(h.commit_running_s, 3), "queued": h.queued},
            "disk": {"free_bytes": free, "min_free_bytes": lim.min_free_disk_bytes},
        }
        return web.json_response(body, status=200 if not reasons else 503)

    def _free_disk(self) -> int:
        """Free bytes for this process on the store's filesystem; looked up at most every
        DISK_CHECK_INTERVAL_S, so a tight poller costs nothing."""
        now = time.monotonic()
        checked, free = self._disk_checked
        if now - checked >= DISK_CHECK_INTERVAL_S:
            try:
                st = os.statvfs(self.store.path.parent)
                free = st.f_bavail * st.f_frsize
            except OSError:
                free = 0  # a filesystem that cannot say: not ready to promise writes on it
            self._disk_checked = (now, free)
        return free

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
    try:
        return int_param(q, name, default, lo, hi)
    except BadParam as e:
        raise ApiError("bad_request", str(e)) from None
