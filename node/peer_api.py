"""The peer HTTP API (``/peer/v1/...``): what other nodes may ask of this one.

Every request goes through, in order: authentication (protocol.peer: signed by the sending
node's key for this node, within the time window, and not before this process started: the
replay memory lives in RAM, so a request captured before a restart must be stale after it),
admission (listed, or the federation is open; not refused for misbehaviour), the replay memory
(never the same signed request twice; checked only for admitted senders, so others cannot fill
it), then the sender's rate limit (429 with ``Retry-After``; an offence only for a sender that
keeps sending well past it). Bodies are msgpack; errors are JSON ``{"error", "message"}`` like
the client API.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from protocol import ProtocolError, RejectCode
from protocol.ids import IdKind, format_id, parse_id
from protocol.messages import (
    FETCH_MAX_ACTIONS,
    FETCH_MAX_BYTES,
    MAX_ANNOUNCED_PEERS,
    Announce,
    FetchReply,
    decode_announce,
    decode_fetch_request,
    decode_push,
    decode_reconcile_request,
    encode_announce,
    encode_coop_list,
    encode_counts,
    encode_fetch_reply,
    encode_reconcile_reply,
)
from protocol.peer import AuthCode, BadRecordSignature, PeerAuthError, ReplayGuard, authenticate_request, decode_node_record
from protocol.reconcile import respond

from .config import Federation, Limits
from .ingest import FORGED, INTRINSIC, Checked, Ingestor, Source
from .metrics import Metrics
from .peers import PeerBook, PeerClient, TokenBucket
from .statuses import status_for
from .store import Store

log = logging.getLogger("coopnet.peer_api")

MSGPACK = "application/msgpack"
__all__ = ["FORGED", "INTRINSIC", "Intake", "PeerApi"]

Intake = Checked  # what a peer sent, verified and judged at the door, not yet stored (``PeerApi.prepare``)


def _err(code: str, message: str, *, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return web.json_response({"error": code, "message": message}, status=status_for(code), headers=headers)


def _ok(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=MSGPACK)


class PeerApi:
    def __init__(
        self,
        *,
        node_id: bytes,
        store: Store,
        ingestor: Ingestor,
        book: PeerBook,
        client: PeerClient,
        federation: Federation,
        limits: Limits,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        in_scope: Callable[[bytes], bool],
        my_record: Callable[[], bytes],
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.ingestor = ingestor
        self.book = book
        self.client = client
        self.federation = federation
        self.limits = limits
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.in_scope = in_scope
        self.my_record = my_record
        self.guard = ReplayGuard()
        self.rate = TokenBucket(federation.rate_limit, clock_ms)
        # Nothing signed before this moment is accepted: the replay memory starts empty here.
        self.started_ms = clock_ms()
        # What a co-op decided to federate with (its fold here); set once governance exists.
        self.consents: Callable[[bytes], Awaitable[frozenset[bytes]]] | None = None

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.post("/peer/v1/push", self.push),
            web.post("/peer/v1/reconcile", self.reconcile),
            web.post("/peer/v1/fetch", self.fetch),
            web.post("/peer/v1/announce", self.announce),
            web.post("/peer/v1/coops", self.coops),
        ]
        if self.federation.fault_hooks:
            routes.append(web.post("/_test/partition", self.partition))
        return routes

    async def _authenticate(self, request: web.Request, kind: str) -> tuple[bytes, bytes] | web.Response:
        body = await request.read()
        now = self.clock_ms()
        try:
            sender, sig, ts = authenticate_request(
                request.headers,
                method=request.method,
                path=request.path_qs,
                body=body,
                receiver=self.node_id,
                now=now,
                not_before=self.started_ms,
            )
        except PeerAuthError as e:
            self.metrics.gossip_requests.labels("unauthenticated", "in", kind, e.code.value).inc()
            return _err(e.code, e.message)
        label = format_id(IdKind.NODE, sender)
        self.metrics.gossip_bytes.labels(label, "in").inc(len(body))
        if sender in self.client.blocked:
            return _err("partitioned", "this node is partitioned from yours (fault hook)")
        if not self.book.allowed(sender):
            self.metrics.gossip_requests.labels(label, "in", kind, "unknown_node").inc()
            return _err(AuthCode.UNKNOWN_NODE, f"{label} is not a member of federation {self.federation.name!r} here")
        if self.book.refused(sender):
            self.metrics.gossip_requests.labels(label, "in", kind, "refused").inc()
            return _err(AuthCode.REFUSED, "this node refuses yours for now: too many invalid requests")
        self.book.seen_inbound(sender)
        try:
            self.guard.check_and_remember(sender, sig, ts, now)
        except PeerAuthError as e:
            self.metrics.gossip_requests.labels(label, "in", kind, e.code.value).inc()
            if e.code is AuthCode.RATE_LIMITED:
                self.book.penalize(sender, "rate_limited")
            return _err(e.code, e.message)
        verdict = self.rate.check(sender)
        if not verdict.ok:
            # A sender that waits as told is never penalised for the few requests it had in flight.
            if verdict.excessive:
                self.book.penalize(sender, "rate_limited")
            self.metrics.gossip_requests.labels(label, "in", kind, "rate_limited").inc()
            return _err(AuthCode.RATE_LIMITED, f"more than {self.federation.rate_limit:g} requests/s", retry_after=verdict.retry_after)
        self.metrics.gossip_requests.labels(label, "in", kind, "ok").inc()
        return sender, body

    async def push(self, request: web.Request) -> web.Response:
        auth = await self._authenticate(request, "push")
        if isinstance(auth, web.Response):
            return auth
        sender, body = auth
        try:
            msg = decode_push(body, max_actions=self.limits.max_batch_actions)  # at least PUSH_MAX_ACTIONS
        except ProtocolError as e:
            self.book.penalize(sender, "bad_message")
            return _err(e.code, e.message)
        counts, _, _ = await self.take(sender, msg.actions, msg.proofs, "push")
        # The wire's four counts (10.3): an action held for an unknown author is "pending" there.
        held = counts.pop("held", 0)
        counts["pending"] += held
        return _ok(encode_counts(counts))

    async def take(
        self, sender: bytes, raws: tuple[bytes, ...], proofs: tuple[bytes, ...], source: str
    ) -> tuple[dict[str, int], dict[bytes, int], dict[bytes, int]]:
        """Validate, judge and store what a peer sent; penalise what no honest node sends.

        Returns the counts by status; per author, the highest seq now held among those sent; and per
        author, the lowest seq refused because its prev is not this node's action below it (the
        peer holds another fork of that chain, which starts further down).
        """
        return await self.store_intake(await self.prepare(sender, raws, proofs, source))

    async def prepare(
        self,
        sender: bytes,
        raws: tuple[bytes, ...],
        proofs: tuple[bytes, ...],
        source: str,
        *,
        skip_known: bool = True,
        coop: bytes | None = None,
    ) -> Intake:
        """The first half of ``take`` (the ingest path's first step), then the penalties for what
        failed validation. Catch-up verifies replies while the one before them is stored.
        ``skip_known=False``: the sender was asked for exactly what this node lacks (a fetch), so
        looking up each id first would cost more than it saves; the store still answers ``known``
        for anything held. ``coop``: the co-op a fetch asked for (anything else is refused)."""
        intake = await self.ingestor.check(raws, Source.from_peer(sender, source), proofs=proofs, skip_known=skip_known, coop=coop)
        if intake.forged:
            self.book.penalize(sender, "bad_signature", intake.forged)
        if intake.invalid:
            self.book.penalize(sender, "invalid_action", intake.invalid)
        return intake

    async def store_intake(self, intake: Intake) -> tuple[dict[str, int], dict[bytes, int], dict[bytes, int]]:
        """The second half of ``take``: store the verified actions and the proofs. Nothing the store
        refuses for this node's own reasons (quarantine, quotas, the pending area) is an offence."""
        out = await self.ingestor.store_checked(intake)
        assert intake.source.peer is not None
        for _ in range(out.bogus_proofs):
            self.book.penalize(intake.source.peer, "bogus_proof")
        return out.counts, out.top, out.forks

    async def _coop_message(self, request: web.Request, kind: str, decode: Callable[[bytes], Any]) -> Any:
        """Authenticate, decode (a body no honest node sends is penalised) and scope-check a
        message about one co-op; return it, or the error response to send instead."""
        auth = await self._authenticate(request, kind)
        if isinstance(auth, web.Response):
            return auth
        sender, body = auth
        try:
            msg = decode(body)
        except ProtocolError as e:
            self.book.penalize(sender, "bad_message")
            return _err(e.code, e.message)
        if not self.in_scope(msg.coop):
            return _err(RejectCode.OUT_OF_SCOPE, f"this node does not replicate {format_id(IdKind.COOP, msg.coop)}")
        if not await self.may_serve(sender, msg.coop):
            return _err(
                RejectCode.OUT_OF_SCOPE,
                f"co-op {format_id(IdKind.COOP, msg.coop)} has not decided to federate with a co-op your node replicates",
            )
        return msg

    async def may_serve(self, sender: bytes, coop: bytes) -> bool:
        """A co-op's actions go to a node that replicates it by its operator's choice (its record
        lists it, or every co-op), or, for a node of another co-op, only if this co-op decided to
        federate with that co-op (its fold here says so). A sender whose record has not arrived yet
        is served: records come within one announce interval."""
        peer = self.book.peers.get(sender)
        record = peer.record if peer is not None else None
        if record is None or record.all_coops or coop in record.coops:
            return True
        if self.consents is None:
            return False
        partners = await self.consents(coop)
        return bool(partners and partners & set(record.coops))

    async def reconcile(self, request: web.Request) -> web.Response:
        req = await self._coop_message(request, "reconcile", decode_reconcile_request)
        if isinstance(req, web.Response):
            return req
        heads = await self.store.head_set(req.coop)
        reply = respond(req, heads, await self.store.proof_ids(req.coop) if req.proofs_fp is not None else ())
        return _ok(encode_reconcile_reply(reply))

    async def fetch(self, request: web.Request) -> web.Response:
        req = await self._coop_message(request, "fetch", decode_fetch_request)
        if isinstance(req, web.Response):
            return req
        proofs = await self.store.proofs_by_id(req.coop, req.proofs) if req.proofs else []
        kept, size = [], 0
        for p in proofs:  # proofs first: the byte cap covers both
            if size + len(p) > FETCH_MAX_BYTES // 2:
                break
            kept.append(p)
            size += len(p)
        actions, more = await self.store.segments(req.coop, req.wants, max_actions=FETCH_MAX_ACTIONS, max_bytes=FETCH_MAX_BYTES - size)
        if req.ids and len(actions) < FETCH_MAX_ACTIONS:
            # Asked by id: deps a fold waits for (an action kept aside by an equivocation, which no
            # chain segment holds). What is not here is skipped.
            room = FETCH_MAX_BYTES - size - sum(len(a) for a in actions)
            actions += (await self.store.raw_by_ids(req.coop, req.ids, max_bytes=room))[: FETCH_MAX_ACTIONS - len(actions)]
        return _ok(encode_fetch_reply(FetchReply(tuple(actions), tuple(kept), more or len(kept) < len(proofs))))

    async def announce(self, request: web.Request) -> web.Response:
        auth = await self._authenticate(request, "announce")
        if isinstance(auth, web.Response):
            return auth
        sender, body = auth
        try:
            msg = decode_announce(body)
            record = decode_node_record(msg.record)
        except (ProtocolError, BadRecordSignature) as e:  # what no honest node sends
            self.book.penalize(sender, "bad_message")
            return _err(RejectCode.BAD_SCHEMA, f"announce: {e}")
        except ValueError as e:  # a record against the rules: a misconfigured or older node, not an attack
            return _err(RejectCode.BAD_SCHEMA, f"announce: {e}")
        if record.node != sender:
            self.book.penalize(sender, "bad_message")
            return _err(RejectCode.BAD_SCHEMA, "an announce carries the sender's own record")
        self.book.introduce(record, sender)
        for data in msg.peers:
            try:
                self.book.introduce(decode_node_record(data), sender)
            except BadRecordSignature:
                self.book.penalize(sender, "bad_message")
            except ValueError:
                pass  # not learned; honest nodes may hold records an older or newer version refuses
        return _ok(encode_announce(Announce(self.my_record(), self.known_records(exclude=sender))))

    def known_records(self, exclude: bytes | None = None) -> tuple[bytes, ...]:
        """The records this node passes on: its peers that proved their URL and are not refused."""
        now = self.clock_ms()
        known = [
            p.record.encode()
            for p in self.book.peers.values()
            if p.record is not None and p.url == p.record.url and p.node_id != exclude and p.refused_until_ms <= now
        ]
        return tuple(known[:MAX_ANNOUNCED_PEERS])

    async def coops(self, request: web.Request) -> web.Response:
        auth = await self._authenticate(request, "coops")
        if isinstance(auth, web.Response):
            return auth
        return _ok(encode_coop_list([c for c in await self.store.coop_ids() if self.in_scope(c)]))

    async def partition(self, request: web.Request) -> web.Response:
        """Cluster testing only (``fault_hooks``): pretend the listed nodes are unreachable."""
        if request.remote not in ("127.0.0.1", "::1"):
            return _err("forbidden", "fault hooks answer loopback only")
        try:
            doc: Any = await request.json()
            blocked = {parse_id(IdKind.NODE, t) for t in doc.get("block", [])}
        except (ValueError, AttributeError, TypeError) as e:
            return _err("bad_request", f'expected {{"block": ["node_...", ...]}}: {e}')
        self.client.blocked = blocked
        log.warning("fault hook: partitioned from %d nodes", len(blocked))
        return web.json_response({"blocked": sorted(format_id(IdKind.NODE, b) for b in blocked)})
