"""Admission: how much a client may ask of this node, how fast, and what the store takes.

Theory of operation. Admission is local: it decides what this node does for whom, never what a
stored action means, so two nodes with different policies still fold the same state from what
they both store. Three parts:

- **The store's policy** (``store_policy``): quarantine of unknown authors, pending bounds and
  expiry, byte quotas, decided inside the store's group plan (``node.store``).
- **The door** (``node.ingest``): scope, the block list, the founding policy.
- **Client rate limits** (``ClientAdmission``), token buckets on the client API only (peers have
  their own, ``federation.rate_limit``): per client address for reads (loose) and for writes
  (a request costs its number of actions, which is the signature work it asks for); per author
  for actions stored; per client address for applications and new co-ops, and per co-op for
  applications, so that throwaway keys cannot make chains without end. A bucket is checked before
  the work and charged with what the work turned out to be (only what was stored or held counts
  for an author, so replaying a member's old actions costs the member nothing); it may go into
  debt, and its ``Retry-After`` is the time until it holds a token again.

The client's address is the peer address of the connection, unless that is one of
``trusted_proxies``: then the right-most address of ``X-Forwarded-For`` that is not a trusted
proxy. IPv6 addresses are bucketed by their /64, which is what one host usually holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from aiohttp import web

from protocol import Action, RejectCode

from .config import Admission, Config
from .ingest import Checked, Outcome
from .metrics import Metrics
from .statuses import status_for
from .store import APPLY_KIND, Store, StorePolicy

log = logging.getLogger("coopnet.admission")

MAX_BUCKETS = 65_536  # buckets kept per kind; the least recently used go first (which only forgives)
EXPIRY_INTERVAL_S = 60.0  # how often held and pending actions past their expiry are dropped


def store_policy(config: Config) -> StorePolicy:
    """The store's part of the node's admission (``[admission]`` and the pending ``[limits]``)."""
    a, lim = config.admission, config.limits
    return StorePolicy(
        hold_unknown=a.unknown_authors == "hold",
        quarantine_per_author=a.quarantine_per_author,
        quarantine_per_coop=a.quarantine_per_coop,
        max_quarantine=a.max_quarantine,
        quarantine_ms=a.quarantine_seconds * 1000,
        max_pending_per_coop=lim.max_pending_per_coop,
        max_pending_per_author=lim.max_pending_per_author,
        pending_floor=min(lim.pending_floor, lim.max_pending),  # a floor above the bound would be no bound
        pending_ms=lim.pending_seconds * 1000,
        quota_author_bytes=a.quota_author_bytes,
        quota_coop_bytes=a.quota_coop_bytes,
        quota_node_bytes=a.quota_node_bytes,
    )


async def expire_loop(store: Store, interval_s: float = EXPIRY_INTERVAL_S) -> None:
    """Drop held and pending actions past their expiry, now and every ``interval_s``."""
    while True:
        try:
            await store.expire()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiring held and pending actions failed")
        await asyncio.sleep(interval_s)


class Buckets:
    """Token buckets by key: ``rate`` tokens a second, up to ``burst``; a rate of 0 is no limit."""

    def __init__(self, name: str, rate: float, burst: int, clock_ms: Callable[[], int], max_keys: int = MAX_BUCKETS) -> None:
        self.name = name
        self.rate = rate
        self.burst = float(burst)
        self.clock_ms = clock_ms
        self.max_keys = max_keys
        self._b: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def _tokens(self, key: Hashable, now: int) -> float:
        hit = self._b.get(key)
        if hit is None:
            return self.burst
        tokens, at = hit
        return min(self.burst, tokens + (now - at) / 1000 * self.rate)

    def retry_after(self, key: Hashable) -> float | None:
        """None if ``key`` holds a token now, else the seconds until it will."""
        if not self.rate:
            return None
        tokens = self._tokens(key, self.clock_ms())
        return None if tokens >= 1 else (1 - tokens) / self.rate

    def charge(self, key: Hashable, cost: float) -> None:
        if not self.rate or cost <= 0:
            return
        now = self.clock_ms()
        # Debt is bounded by one burst: a single huge request waits at most burst/rate seconds.
        self._b[key] = (max(-self.burst, self._tokens(key, now) - cost), now)
        self._b.move_to_end(key)
        while len(self._b) > self.max_keys:
            self._b.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Limited:
    """A client over one of its buckets: answer 429 with ``Retry-After``."""

    bucket: str
    retry_after: float
    message: str

    @property
    def retry_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


class ClientAdmission:
    """The client API's rate limits (see the module's theory of operation)."""

    def __init__(self, config: Admission, clock_ms: Callable[[], int], metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in config.trusted_proxies)
        c = config
        self.reads = Buckets("read", c.read_rate, c.read_burst, clock_ms)
        self.writes = Buckets("write", c.write_rate, c.write_burst, clock_ms)
        self.authors = Buckets("author", c.author_rate, c.author_burst, clock_ms)
        self.joins = Buckets("join", c.join_rate, c.join_burst, clock_ms)
        self.applies = Buckets("apply", c.apply_rate, c.apply_burst, clock_ms)
        self.limited = 0

    async def refusal(self, over: Limited, *, close: bool = False) -> web.Response:
        """The 429 for a client over a bucket, after making it wait: its Retry-After, at most
        ``tarpit_seconds``. A client that honours Retry-After loses nothing by it; one that asks
        again at once (a flood) gets no more than its requests in flight answered per
        ``tarpit_seconds``, instead of keeping the event loop busy refusing it. ``close``: the
        connection is closed after the answer (the request's body was not read)."""
        wait = min(over.retry_after, self.config.tarpit_seconds)
        if wait > 0:
            await asyncio.sleep(wait)
        resp = limited_response(over)
        if close:
            resp.force_close()
        return resp

    # ---- who is asking -------------------------------------------------------------------------

    def address(self, request: web.BaseRequest) -> str:
        """The client's address as this node buckets it."""
        remote = request.remote or ""
        ip = _ip(remote)
        if ip is not None and self.proxies and self._trusted(ip):
            forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
            for part in reversed([p.strip() for p in forwarded.split(",") if p.strip()]):
                hop = _ip(part)
                if hop is None:
                    break  # a hop we cannot read: stop at the last one we trust
                ip = hop
                if not self._trusted(hop):
                    break
        if ip is None:
            return remote
        if ip.version == 6:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def _trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in self.proxies)

    # ---- checks and charges --------------------------------------------------------------------

    def _over(self, buckets: Buckets, key: Hashable, what: str) -> Limited | None:
        wait = buckets.retry_after(key)
        if wait is None:
            return None
        self.limited += 1
        self.metrics.rate_limited.labels(buckets.name).inc()
        return Limited(buckets.name, wait, f"{what}: retry in {max(1, math.ceil(wait))} s")

    def read(self, address: str) -> Limited | None:
        """A GET from ``address``: over its bucket, or charged one token."""
        over = self._over(self.reads, address, f"more than {self.config.read_rate:g} reads/s from this address")
        if over is None:
            self.reads.charge(address, 1)
        return over

    def answered(self, address: str, nbytes: int) -> None:
        """A read's answer was ``nbytes`` long: charge a token per started ``read_token_bytes``
        beyond its first (charged by ``read``), so a page of a thousand actions costs what it
        costs the node to build, not what a status query does."""
        self.reads.charge(address, -(-nbytes // self.config.read_token_bytes) - 1)

    def write(self, address: str) -> Limited | None:
        """Before reading a submission's body: is this address over its bucket?"""
        return self._over(self.writes, address, f"more than {self.config.write_rate:g} actions/s posted from this address")

    def posted(self, address: str, count: int) -> None:
        """A submission of ``count`` actions was read: charge the address (before validation)."""
        self.writes.charge(address, max(1, count))

    def admit(self, address: str, checked: Checked) -> Limited | None:
        """Before storing: is any author of these actions over their bucket, or would they start
        chains (applications, new co-ops) beyond this address's or a co-op's bucket?"""
        if self.authors.rate:
            for author in {a.env.author for a in checked.actions}:
                over = self._over(self.authors, author, f"more than {self.config.author_rate:g} actions/s from this author")
                if over is not None:
                    return over
        if not (self.joins.rate or self.applies.rate):
            return None
        joining = [a for a in checked.actions if _joins(a)]
        if joining:
            over = self._over(self.joins, address, "too many applications and new co-ops from this address")
            if over is not None:
                return over
            for coop in {a.coop for a in joining if a.env.coop is not None}:
                over = self._over(self.applies, coop, "too many applications to this co-op")
                if over is not None:
                    return over
        return None

    def charge(self, address: str, checked: Checked, outcome: Outcome) -> None:
        """After storing: each author pays for what was stored or held; each chain started (an
        application accepted, a co-op founded) costs its address and its co-op."""
        if not (self.authors.rate or self.joins.rate or self.applies.rate):
            return
        per_author: dict[bytes, int] = {}
        joins = 0
        for a, r in zip(checked.actions, outcome.results, strict=True):
            if r.status in ("accepted", "pending", "held"):
                per_author[a.env.author] = per_author.get(a.env.author, 0) + 1
                if r.status == "accepted" and _joins(a):
                    joins += 1
                    if a.env.coop is not None:
                        self.applies.charge(a.coop, 1)
        for author, n in per_author.items():
            self.authors.charge(author, n)
        if joins:
            self.joins.charge(address, joins)


def _joins(a: Action) -> bool:
    """An action that starts a chain a stranger may start: an application, or a genesis."""
    return a.env.seq == 1 and (a.env.coop is None or a.env.kind == APPLY_KIND)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(text.strip().strip("[]"))
        if ip.version == 6 and ip.ipv4_mapped is not None:  # type: ignore[union-attr]
            return ip.ipv4_mapped  # type: ignore[union-attr]
        return ip
    return None


SUBMIT_PATH = "/api/v1/actions"


def client_limit_middleware(
    admission: ClientAdmission,
) -> Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[web.StreamResponse]]:
    """The client API's buckets, on the request head: reads for GETs (``/api/...`` and
    ``/metrics``; ``/healthz`` is exempt, peers' routes have their own limits; a large answer
    costs more once it is known), and the write
    bucket for submissions, before their body is read: a client out of tokens would otherwise
    have the node take in (and reserve room for) up to ``max_request_bytes`` only to be told 429.
    Such a refusal closes the connection, so the unread body costs nothing either. Refusals wait
    (``ClientAdmission.refusal``); meanwhile the connection counts as idle, so it is among the
    first to make way when the node is at ``max_connections``."""

    @web.middleware
    async def limit_clients(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.method in ("GET", "HEAD") and (request.path.startswith("/api/") or request.path == "/metrics"):
            address = admission.address(request)
            over = admission.read(address)
            if over is not None:
                return await admission.refusal(over)
            resp = await handler(request)
            body = getattr(resp, "body", None)
            if isinstance(body, (bytes, bytearray)):
                admission.answered(address, len(body))
            return resp
        elif request.method == "POST" and request.path == SUBMIT_PATH:
            over = admission.write(admission.address(request))
            if over is not None:
                return await admission.refusal(over, close=True)
        return await handler(request)

    return limit_clients


def limited_response(over: Limited) -> web.Response:
    return web.json_response(
        {"error": RejectCode.RATE_LIMITED.value, "message": over.message},
        status=status_for(RejectCode.RATE_LIMITED),
        headers={"Retry-After": over.retry_header},
    )
