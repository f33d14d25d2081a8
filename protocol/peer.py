"""Node-to-node authentication and signed node records.

Theory of operation. Every peer request carries three headers::

    Coopnet-From: node_...      the sender's node id (its Ed25519 public key)
    Coopnet-To:   node_...      the receiver's node id
    Coopnet-Ts:   1700000000000 the sender's clock, milliseconds since the epoch
    Coopnet-Sig:  <128 hex>     Ed25519 signature by the sender

The signature covers the domain-tagged canonical encoding of
``{"body": SHA-256(body), "from", "method", "path", "to", "ts"}``, so it binds the request to
one receiver (it cannot be replayed against another node), one method and path (query string
included), one body, and one moment. The receiver accepts a timestamp within ``window_ms`` of its
own clock and, once it has admitted the sender, remembers the signatures it accepted within that
window per sender, so a request cannot be replayed later or twice. ``Coopnet-To`` is sent in clear only so that a misaddressed request can be
told apart from a forged one; it is covered by the signature like everything else.

A node record is a node's signed statement of where it listens and what it replicates; peers
pass records on, so a federation learns its members from a few bootstrap addresses. Where it
listens is an *origin* (``scheme://host[:port]``, nothing else): a peer's requests go to fixed
paths under it, so a record cannot steer signed requests to a path, query or user of its choosing.

A receiver that keeps its replay memory in RAM also refuses every request signed before it started
(``not_before``): a request captured before a restart is stale afterwards, and honest senders sign
every retry anew.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from . import codec
from .ids import ID_BYTES, IdKind, format_id, parse_id
from .keys import SigningKey, verify
from .limits import DecodeLimits

PEER_REQUEST = b"coopnet/v1/peer-request\x00"
NODE_RECORD = b"coopnet/v1/node-record\x00"

HEADER_FROM = "Coopnet-From"
HEADER_TO = "Coopnet-To"
HEADER_TS = "Coopnet-Ts"
HEADER_SIG = "Coopnet-Sig"

DEFAULT_WINDOW_MS = 60_000
MAX_URL_BYTES = 512
MAX_RECORD_COOPS = 256
MAX_HOST_BYTES = 253  # a DNS name, dots included


class AuthCode(StrEnum):
    UNAUTHENTICATED = "unauthenticated"  # headers missing or malformed
    MISADDRESSED = "misaddressed"  # Coopnet-To is another node
    STALE = "stale_request"  # timestamp outside the window
    REPLAYED = "replayed"  # this exact signed request was already accepted
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_NODE = "unknown_node"  # a valid signature from a node this one does not federate with
    REFUSED = "refused"  # a known node currently refused for misbehaviour
    RATE_LIMITED = "rate_limited"  # a sender over its rate, or flooding the replay memory
    BUSY = "busy"  # too many distinct senders at once: not this sender's fault, try later


class PeerAuthError(Exception):
    def __init__(self, code: AuthCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


def body_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def request_signing_input(*, method: str, path: str, body: bytes, ts: int, sender: bytes, receiver: bytes) -> bytes:
    return PEER_REQUEST + codec.encode(
        {"body": body_digest(body), "from": sender, "method": method.upper(), "path": path, "to": receiver, "ts": ts}
    )


def sign_request(key: SigningKey, *, method: str, path: str, body: bytes, ts: int, receiver: bytes) -> dict[str, str]:
    """The headers that authenticate one request from ``key``'s node to ``receiver``."""
    sig = key.sign(request_signing_input(method=method, path=path, body=body, ts=ts, sender=key.public_key, receiver=receiver))
    return {
        HEADER_FROM: format_id(IdKind.NODE, key.public_key),
        HEADER_TO: format_id(IdKind.NODE, receiver),
        HEADER_TS: str(ts),
        HEADER_SIG: sig.hex(),
    }


class ReplayGuard:
    """The signatures each sender had accepted within the window, per sender, bounded.

    Entries leave once their timestamp is more than ``window_ms`` behind the clock. A sender
    whose memory is full (``per_sender`` requests within one window: a flood, far above any rate
    limit) is refused ``rate_limited`` until entries expire; no other sender is affected, and a
    request is never accepted twice. At most ``max_senders`` senders are remembered at once; a
    new sender beyond that is told ``busy`` (not its fault: it is not penalised).
    """

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, per_sender: int = 8192, max_senders: int = 10_000) -> None:
        self.window_ms = window_ms
        self.per_sender = per_sender
        self.max_senders = max_senders
        self._seen: dict[bytes, OrderedDict[bytes, int]] = {}

    def check_and_remember(self, sender: bytes, sig: bytes, ts: int, now: int) -> None:
        seen = self._seen.get(sender)
        if seen is None:
            if len(self._seen) >= self.max_senders:
                self._expire_all(now)
                if len(self._seen) >= self.max_senders:
                    raise PeerAuthError(AuthCode.BUSY, "too many peers sending at once; try again later")
            seen = self._seen[sender] = OrderedDict()
        self._expire(seen, now)
        if sig in seen:
            raise PeerAuthError(AuthCode.REPLAYED, "this signed request was already accepted")
        if len(seen) >= self.per_sender:
            raise PeerAuthError(AuthCode.RATE_LIMITED, f"more than {self.per_sender} requests within {self.window_ms} ms")
        seen[sig] = ts

    def _expire(self, seen: OrderedDict[bytes, int], now: int) -> None:
        horizon = now - self.window_ms
        while seen:
            sig, ts = next(iter(seen.items()))
            if ts >= horizon:
                break
            del seen[sig]

    def _expire_all(self, now: int) -> None:
        for sender in list(self._seen):
            self._expire(self._seen[sender], now)
            if not self._seen[sender]:
                del self._seen[sender]


def authenticate_request(
    headers: dict[str, str] | object,
    *,
    method: str,
    path: str,
    body: bytes,
    receiver: bytes,
    now: int,
    window_ms: int = DEFAULT_WINDOW_MS,
    not_before: int = 0,
) -> tuple[bytes, bytes, int]:
    """Check headers, addressing, signature and time window; return (sender, signature, ts).

    ``not_before``: the receiver's clock when it started. Its replay memory holds nothing signed
    before then, so such a request could be one it accepted before a restart: it is stale.

    Replay is checked separately (``ReplayGuard``), after the receiver's admission policy, so
    that nodes it does not admit cannot fill its replay memory.
    """
    get = headers.get  # type: ignore[attr-defined]
    sender_text, to_text, ts_text, sig_hex = get(HEADER_FROM), get(HEADER_TO), get(HEADER_TS), get(HEADER_SIG)
    if not (sender_text and to_text and ts_text and sig_hex):
        raise PeerAuthError(AuthCode.UNAUTHENTICATED, f"peer requests need {HEADER_FROM}, {HEADER_TO}, {HEADER_TS} and {HEADER_SIG}")
    try:
        sender = parse_id(IdKind.NODE, sender_text)
        to = parse_id(IdKind.NODE, to_text)
    except ValueError as e:
        raise PeerAuthError(AuthCode.UNAUTHENTICATED, str(e)) from None
    if to != receiver:
        raise PeerAuthError(AuthCode.MISADDRESSED, f"this request is addressed to {to_text}, not to this node")
    if not (ts_text.isascii() and ts_text.isdigit()) or len(ts_text) > 19:
        raise PeerAuthError(AuthCode.UNAUTHENTICATED, f"{HEADER_TS} must be milliseconds since the epoch")
    if len(sig_hex) != 128:
        raise PeerAuthError(AuthCode.UNAUTHENTICATED, f"{HEADER_SIG} must be 128 hex digits")
    try:
        sig = bytes.fromhex(sig_hex)
    except ValueError:
        raise PeerAuthError(AuthCode.UNAUTHENTICATED, f"{HEADER_SIG} must be 128 hex digits") from None
    ts = int(ts_text)
    try:
        verify(sender, request_signing_input(method=method, path=path, body=body, ts=ts, sender=sender, receiver=receiver), sig)
    except ValueError as e:
        raise PeerAuthError(AuthCode.BAD_SIGNATURE, f"request signature does not verify: {e}") from None
    if abs(now - ts) > window_ms:
        raise PeerAuthError(AuthCode.STALE, f"timestamp {ts} is more than {window_ms} ms from this node's clock {now}")
    if ts < not_before:
        raise PeerAuthError(AuthCode.STALE, f"timestamp {ts} is before this node started ({not_before}): sign the request anew")
    return sender, sig, ts


def verify_request(
    headers: dict[str, str] | object,
    *,
    method: str,
    path: str,
    body: bytes,
    receiver: bytes,
    now: int,
    guard: ReplayGuard,
    not_before: int = 0,
) -> bytes:
    """``authenticate_request`` then the replay check, for callers with no admission policy."""
    sender, sig, ts = authenticate_request(
        headers, method=method, path=path, body=body, receiver=receiver, now=now, window_ms=guard.window_ms, not_before=not_before
    )
    guard.check_and_remember(sender, sig, ts, now)
    return sender


# ---- origins -----------------------------------------------------------------------------------

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_IPV4 = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a node listens: ``scheme://host[:port]``. ``host`` is a DNS name (as written), a dotted
    IPv4 address, or an IPv6 address without its brackets; ``port`` None means the scheme's default."""

    scheme: str
    host: str
    port: int | None

    @property
    def is_ip(self) -> bool:
        return _IPV4.fullmatch(self.host) is not None or ":" in self.host


def parse_origin(url: str) -> Origin:
    """Parse a node URL, which MUST be an origin: ``http`` or ``https``, ``://``, a host, an
    optional port, and nothing else (no path, not even ``/``; no query, fragment or user info).
    Raise ``ValueError`` naming the rule broken."""
    if type(url) is not str or not url.isascii() or len(url) > MAX_URL_BYTES:
        raise ValueError(f"a node URL is ASCII text of at most {MAX_URL_BYTES} bytes")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"a node URL starts with http:// or https://, got {url!r}")
    if any(c in rest for c in "/?#@"):
        raise ValueError(f"a node URL is an origin, scheme://host:port, without path, query, fragment or user info; got {url!r}")
    if rest.startswith("["):
        inner, close, tail = rest[1:].partition("]")
        try:
            if not close or "%" in inner:
                raise ValueError
            host = str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise ValueError(f"a node URL's bracketed host must be an IPv6 address, got {url!r}") from None
        if tail and not tail.startswith(":"):
            raise ValueError(f"a node URL has nothing after its host but :port, got {url!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_ = rest.partition(":")
        port_text = port_text_ if colon else None
        labels = host.split(".")
        if not host or len(host) > MAX_HOST_BYTES or not all(_LABEL.fullmatch(x) for x in labels):
            raise ValueError(f"a node URL's host is a DNS name, an IPv4 address or a bracketed IPv6 address, got {url!r}")
        if labels[-1].isdigit() and (_IPV4.fullmatch(host) is None or any(int(x) > 255 for x in labels)):
            raise ValueError(f"a node URL's numeric host must be a dotted IPv4 address, got {url!r}")
    port = None
    if port_text is not None:
        if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
            raise ValueError(f"a node URL's port is 1-65535 without leading zeros, got {url!r}")
        port = int(port_text)
    return Origin(scheme, host, port)


# ---- node records ------------------------------------------------------------------------------


class BadRecordSignature(ValueError):
    """A node record whose signature does not verify: forged or altered, never relayed by an honest
    node (each verifies a record before passing it on). Other refusals (a field against the rules)
    can be a sender's misconfiguration or an older version's rules."""


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node: bytes
    url: str
    federation: str
    coops: tuple[bytes, ...]  # the co-ops this node replicates, sorted; empty with all_coops
    all_coops: bool
    ts: int
    sig: bytes

    def encode(self) -> bytes:
        return codec.encode(
            {"record": _record_content(self.node, self.url, self.federation, self.coops, self.all_coops, self.ts), "sig": self.sig}
        )

    @property
    def node_text(self) -> str:
        return format_id(IdKind.NODE, self.node)


def _record_content(node: bytes, url: str, federation: str, coops: tuple[bytes, ...], all_coops: bool, ts: int) -> dict[str, object]:
    return {"all_coops": all_coops, "coops": list(coops), "federation": federation, "node": node, "ts": ts, "url": url}


def sign_node_record(
    key: SigningKey, *, url: str, federation: str, coops: list[bytes] | tuple[bytes, ...], all_coops: bool, ts: int
) -> NodeRecord:
    coops_t = tuple(sorted(set(coops)))
    content = _record_content(key.public_key, url, federation, coops_t, all_coops, ts)
    record = NodeRecord(key.public_key, url, federation, coops_t, all_coops, ts, key.sign(NODE_RECORD + codec.encode(content)))
    _check_record_fields(record)
    return record


def _check_record_fields(r: NodeRecord) -> None:
    if len(r.url.encode()) > MAX_URL_BYTES:
        raise ValueError(f"node record url must be an http(s) URL of at most {MAX_URL_BYTES} bytes")
    parse_origin(r.url)
    if len(r.coops) > MAX_RECORD_COOPS or any(type(c) is not bytes or len(c) != ID_BYTES for c in r.coops):
        raise ValueError(f"node record coops must be at most {MAX_RECORD_COOPS} co-op ids")
    if not isinstance(r.federation, str) or len(r.federation.encode()) > 128:
        raise ValueError("node record federation must be a name of at most 128 bytes")
    if type(r.ts) is not int or r.ts < 0 or type(r.all_coops) is not bool:
        raise ValueError("node record ts must be a non-negative integer and all_coops a bool")


_RECORD_LIMITS = DecodeLimits(
    max_bytes=16 * 1024, max_depth=3, max_container_len=MAX_RECORD_COOPS, max_str_bytes=MAX_URL_BYTES, max_bin_bytes=64
)


def decode_node_record(data: bytes) -> NodeRecord:
    """Decode and verify a node record; raise ``ValueError`` (a ProtocolError for codec failures)."""
    outer = codec.decode(data, _RECORD_LIMITS)
    if (
        not isinstance(outer, dict)
        or outer.keys() != {"record", "sig"}
        or not isinstance(outer["record"], dict)
        or type(outer["sig"]) is not bytes
    ):
        raise ValueError("a node record is {record: map, sig: bin}")
    content = outer["record"]
    if content.keys() != {"all_coops", "coops", "federation", "node", "ts", "url"}:
        raise ValueError("node record fields are all_coops, coops, federation, node, ts, url")
    if type(content["node"]) is not bytes or not isinstance(content["coops"], tuple) or not isinstance(content["url"], str):
        raise ValueError("node record has fields of the wrong type")
    coops = content["coops"]
    if any(type(c) is not bytes or len(c) != ID_BYTES for c in coops):
        raise ValueError("node record coops must be 32-byte co-op ids")
    if any(a >= b for a, b in pairwise(coops)):
        raise ValueError("node record coops must be sorted without repeats")
    record = NodeRecord(content["node"], content["url"], content["federation"], coops, content["all_coops"], content["ts"], outer["sig"])
    try:
        verify(record.node, NODE_RECORD + codec.encode(content), record.sig)
    except ValueError as e:
        raise BadRecordSignature(f"node record signature: {e}") from None
    _check_record_fields(record)
    return record
