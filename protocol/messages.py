"""Wire formats of request bodies that carry actions (client API now, peer API later).

A submission is the canonical encoding of ``{"actions": [bin, ...]}`` (a batch) or
``{"action": bin}`` (exactly one), each bin being one action's wire bytes. Each action is decoded
and validated on its own, so one bad action does not hide the verdict on the others.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import pairwise

from . import codec, domain
from .action import peek_scope
from .errors import DecodeError, ProtocolError, RejectCode
from .limits import DEFAULT_ACTION_LIMITS, DecodeLimits


@dataclass(frozen=True, slots=True)
class Submission:
    actions: tuple[bytes, ...]
    single: bool  # sent as {"action": ...}: the HTTP answer carries that action's own status


def encode_submission(actions: list[bytes] | tuple[bytes, ...], *, single: bool = False) -> bytes:
    if single:
        if len(actions) != 1:
            raise ValueError("a single submission carries exactly one action")
        return codec.encode({"action": actions[0]})
    return codec.encode({"actions": list(actions)})


def check_submission(value: object, max_actions: int) -> Submission:
    """Check the shape of a decoded submission (from msgpack, or JSON once base64 is undone)."""
    if not isinstance(value, dict) or len(value) != 1 or not value.keys() <= {"action", "actions"}:
        raise DecodeError(RejectCode.BAD_SCHEMA, 'body must be {"actions": [...]} or {"action": ...}')
    if "action" in value:
        items: tuple[object, ...] = (value["action"],)
        single = True
    else:
        items = value["actions"]
        single = False
        if not isinstance(items, (tuple, list)):
            raise DecodeError(RejectCode.BAD_SCHEMA, '"actions" must be an array')
    if not items:
        raise DecodeError(RejectCode.BAD_SCHEMA, '"actions" is empty')
    if len(items) > max_actions:
        raise DecodeError(RejectCode.TOO_LARGE, f"{len(items)} actions exceeds the batch limit of {max_actions}")
    if not all(type(x) is bytes for x in items):
        raise DecodeError(RejectCode.BAD_SCHEMA, "each action must be bin (msgpack) or base64 text (JSON)")
    return Submission(tuple(items), single)  # type: ignore[arg-type]


def decode_submission(data: bytes, *, max_actions: int) -> Submission:
    """Decode a submission's frame. An oversized action is left for its own verdict (too_large)."""
    limits = DecodeLimits(
        max_bytes=len(data),  # the HTTP layer already capped the body
        max_depth=2,
        max_container_len=max(max_actions, 1),
        max_str_bytes=16,
        max_bin_bytes=max(len(data), 1),
    )
    return check_submission(codec.decode(data, limits), max_actions)


# ---- peer messages -----------------------------------------------------------------------------
#
# Every peer message body is the canonical encoding of one map. Decoders check shapes and bounds
# and raise DecodeError(bad_schema / too_large) with the offending field named.

ID = 32
MAX_RANGES = 256  # ranges in one reconcile message
MAX_LIST = 1024  # head entries listed in one reconcile reply
MAX_PROOF_IDS = 4096
MAX_WANTS = 1024  # chain segments asked for in one fetch
MAX_FETCH_IDS = 256  # actions asked for by id in one fetch (deps a fold waits for)
PUSH_MAX_ACTIONS = 500  # every node accepts pushes of up to this many actions, whatever its client limits
FETCH_MAX_ACTIONS = 2000  # a fetch reply holds at most this many actions
FETCH_MAX_BYTES = 8 * 1024 * 1024  # ... and at most this many bytes of them


def _bad(msg: str, code: RejectCode = RejectCode.BAD_SCHEMA) -> DecodeError:
    return DecodeError(code, msg)


def _is_id(v: object) -> bool:
    return type(v) is bytes and len(v) == ID


def _uint(v: object) -> bool:
    return type(v) is int and v >= 0


@dataclass(frozen=True, slots=True)
class Head:
    """One author's chain head in one co-op."""

    author: bytes
    seq: int
    head: bytes


@dataclass(frozen=True, slots=True)
class Range:
    """Authors ``lo <= author < hi`` (``hi`` None: no upper bound), with a fingerprint of the heads in it."""

    lo: bytes
    hi: bytes | None
    fp: bytes
    n: int


@dataclass(frozen=True, slots=True)
class Listing:
    """All the sender's heads in ``[lo, hi)``; ``hi`` None means up to the end."""

    lo: bytes
    hi: bytes | None
    heads: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    coop: bytes
    ranges: tuple[Range, ...]
    proofs_fp: bytes | None  # None after the first round: proof sets are compared once
    proofs_n: int


@dataclass(frozen=True, slots=True)
class ReconcileReply:
    examined: int  # how many of the request's ranges (a prefix) this reply answers; ask again for the rest
    ranges: tuple[Range, ...]  # differing ranges, split: the requester compares and asks again
    listings: tuple[Listing, ...]  # differing ranges small enough to list outright
    proof_ids: tuple[bytes, ...] | None  # all the responder's proof ids when the proof sets differ


def _range_value(r: Range) -> dict[str, object]:
    return {"fp": r.fp, "hi": r.hi, "lo": r.lo, "n": r.n}


def _range_from(v: object) -> Range:
    if not isinstance(v, dict) or v.keys() != {"fp", "hi", "lo", "n"}:
        raise _bad("a range is {fp, hi, lo, n}")
    lo, hi, fp, n = v["lo"], v["hi"], v["fp"], v["n"]
    if type(lo) is not bytes or len(lo) > ID or not (hi is None or (type(hi) is bytes and len(hi) <= ID)):
        raise _bad("range bounds are bin of at most 32 bytes (hi may be nil)")
    if hi is not None and hi <= lo:
        raise _bad("a range needs lo < hi")
    if type(fp) is not bytes or len(fp) != 16 or not _uint(n):
        raise _bad("a range fingerprint is 16 bytes and its count a non-negative integer")
    return Range(lo, hi, fp, n)


def _head_from(v: object) -> Head:
    if not isinstance(v, tuple) or len(v) != 3 or not _is_id(v[0]) or not (type(v[1]) is int and v[1] >= 1) or not _is_id(v[2]):
        raise _bad("a head is [author: bin32, seq: int >= 1, head: bin32]")
    return Head(v[0], v[1], v[2])


def encode_reconcile_request(m: ReconcileRequest) -> bytes:
    proofs = {"fp": m.proofs_fp, "n": m.proofs_n} if m.proofs_fp is not None else None
    return codec.encode({"coop": m.coop, "proofs": proofs, "ranges": [_range_value(r) for r in m.ranges]})


# Decode limits are built once per message type, not per message: each decode looks its bound
# unpacker up by the limits' value (protocol/codec.py), and building the limits cost more than that.
_RECONCILE_REQUEST_LIMITS = DecodeLimits(max_bytes=64 * 1024, max_depth=3, max_container_len=MAX_RANGES, max_str_bytes=16, max_bin_bytes=ID)
_RECONCILE_REPLY_LIMITS = DecodeLimits(
    max_bytes=2 * 1024 * 1024, max_depth=5, max_container_len=max(MAX_LIST, MAX_PROOF_IDS), max_str_bytes=16, max_bin_bytes=ID
)


def decode_reconcile_request(data: bytes) -> ReconcileRequest:
    v = codec.decode(data, _RECONCILE_REQUEST_LIMITS)
    if not isinstance(v, dict) or v.keys() != {"coop", "proofs", "ranges"}:
        raise _bad("a reconcile request is {coop, proofs, ranges}")
    if not _is_id(v["coop"]) or not isinstance(v["ranges"], tuple) or not (v["proofs"] is None or isinstance(v["proofs"], dict)):
        raise _bad("reconcile request fields have the wrong types")
    ranges = tuple(_range_from(r) for r in v["ranges"])
    p = v["proofs"]
    if p is None:
        return ReconcileRequest(v["coop"], ranges, None, 0)
    if p.keys() != {"fp", "n"} or type(p["fp"]) is not bytes or len(p["fp"]) != 16 or not _uint(p["n"]):
        raise _bad("proofs is nil or {fp: bin16, n: int}")
    return ReconcileRequest(v["coop"], ranges, p["fp"], p["n"])


def encode_reconcile_reply(m: ReconcileReply) -> bytes:
    return codec.encode(
        {
            "examined": m.examined,
            "listings": [{"heads": [[h.author, h.seq, h.head] for h in x.heads], "hi": x.hi, "lo": x.lo} for x in m.listings],
            "proof_ids": list(m.proof_ids) if m.proof_ids is not None else None,
            "ranges": [_range_value(r) for r in m.ranges],
        }
    )


def decode_reconcile_reply(data: bytes) -> ReconcileReply:
    v = codec.decode(data, _RECONCILE_REPLY_LIMITS)
    if not isinstance(v, dict) or v.keys() != {"examined", "listings", "proof_ids", "ranges"} or not _uint(v["examined"]):
        raise _bad("a reconcile reply is {examined, listings, proof_ids, ranges}")
    if not isinstance(v["ranges"], tuple) or len(v["ranges"]) > MAX_RANGES or not isinstance(v["listings"], tuple):
        raise _bad("reconcile reply ranges/listings have the wrong types or too many entries")
    listings = []
    total = 0
    for x in v["listings"]:
        if not isinstance(x, dict) or x.keys() != {"heads", "hi", "lo"} or not isinstance(x["heads"], tuple):
            raise _bad("a listing is {heads, hi, lo}")
        bounds = _range_from({"fp": b"\0" * 16, "hi": x["hi"], "lo": x["lo"], "n": 0})
        heads = tuple(_head_from(h) for h in x["heads"])
        total += len(heads)
        if any(a.author >= b.author for a, b in pairwise(heads)):
            raise _bad("listed heads must be sorted by author without repeats")
        if any(h.author < bounds.lo or (bounds.hi is not None and h.author >= bounds.hi) for h in heads):
            raise _bad("a listed head lies outside its range")
        listings.append(Listing(bounds.lo, bounds.hi, heads))
    if total > MAX_LIST:
        raise _bad(f"more than {MAX_LIST} heads listed in one reply", RejectCode.TOO_LARGE)
    ids = v["proof_ids"]
    if ids is not None and (not isinstance(ids, tuple) or not all(_is_id(i) for i in ids)):
        raise _bad("proof_ids is nil or an array of 32-byte ids")
    return ReconcileReply(v["examined"], tuple(_range_from(r) for r in v["ranges"]), tuple(listings), ids)


@dataclass(frozen=True, slots=True)
class Want:
    """Ask for ``author``'s actions with ``first <= seq <= last`` in the fetched co-op."""

    author: bytes
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class FetchRequest:
    coop: bytes
    wants: tuple[Want, ...]
    proofs: tuple[bytes, ...]  # proof ids
    ids: tuple[bytes, ...] = ()  # action ids asked for by id (deps a fold waits for); the key is sent only when non-empty


def encode_fetch_request(m: FetchRequest) -> bytes:
    v: dict[str, object] = {"coop": m.coop, "proofs": list(m.proofs), "wants": [[w.author, w.first, w.last] for w in m.wants]}
    if m.ids:
        v["ids"] = list(m.ids)
    return codec.encode(v)


_FETCH_REQUEST_LIMITS = DecodeLimits(
    max_bytes=256 * 1024, max_depth=3, max_container_len=max(MAX_WANTS, MAX_PROOF_IDS), max_str_bytes=16, max_bin_bytes=ID
)


def decode_fetch_request(data: bytes) -> FetchRequest:
    v = codec.decode(data, _FETCH_REQUEST_LIMITS)
    if (
        not isinstance(v, dict)
        or not {"coop", "proofs", "wants"} <= v.keys() <= {"coop", "ids", "proofs", "wants"}
        or not _is_id(v["coop"])
    ):
        raise _bad("a fetch request is {coop, ids?, proofs, wants}")
    ids = v.get("ids", ())
    if not isinstance(ids, tuple) or (not ids and "ids" in v) or len(ids) > MAX_FETCH_IDS or not all(_is_id(i) for i in ids):
        raise _bad(f"ids, when present, is an array of 1 to {MAX_FETCH_IDS} 32-byte action ids")
    if not isinstance(v["wants"], tuple) or len(v["wants"]) > MAX_WANTS:
        raise _bad(f"wants is an array of at most {MAX_WANTS}")
    if not isinstance(v["proofs"], tuple) or not all(_is_id(i) for i in v["proofs"]):
        raise _bad("proofs is an array of 32-byte proof ids")
    wants = []
    for w in v["wants"]:
        if (
            not isinstance(w, tuple)
            or len(w) != 3
            or not _is_id(w[0])
            or type(w[1]) is not int
            or type(w[2]) is not int
            or not 1 <= w[1] <= w[2]
        ):
            raise _bad("a want is [author: bin32, first: int >= 1, last: int >= first]")
        wants.append(Want(w[0], w[1], w[2]))
    return FetchRequest(v["coop"], tuple(wants), v["proofs"], ids)


@dataclass(frozen=True, slots=True)
class FetchReply:
    actions: tuple[bytes, ...]  # wire bytes, each author's in seq order
    proofs: tuple[bytes, ...]  # proof encodings
    more: bool  # the reply was cut at a size limit: ask again for the rest


def encode_fetch_reply(m: FetchReply) -> bytes:
    return codec.encode({"actions": list(m.actions), "more": m.more, "proofs": list(m.proofs)})


@functools.lru_cache(maxsize=16)
def _fetch_reply_limits(max_actions: int, max_bytes: int) -> DecodeLimits:
    limit = max(max_actions, MAX_PROOF_IDS, 8)  # the outer map and the proof list share the limit
    return DecodeLimits(max_bytes=max_bytes, max_depth=2, max_container_len=limit, max_str_bytes=16, max_bin_bytes=max_bytes)


def decode_fetch_reply(data: bytes, *, max_actions: int = FETCH_MAX_ACTIONS, max_bytes: int = FETCH_MAX_BYTES + 64 * 1024) -> FetchReply:
    v = codec.decode(data, _fetch_reply_limits(max_actions, max_bytes))
    if not isinstance(v, dict) or v.keys() != {"actions", "more", "proofs"} or type(v["more"]) is not bool:
        raise _bad("a fetch reply is {actions, more, proofs}")
    if not isinstance(v["actions"], tuple) or not all(type(x) is bytes for x in v["actions"]):
        raise _bad("actions is an array of bin")
    if not isinstance(v["proofs"], tuple) or not all(type(x) is bytes for x in v["proofs"]):
        raise _bad("proofs is an array of bin")
    return FetchReply(v["actions"], v["proofs"], v["more"])


def proof_scope(data: bytes) -> tuple[bytes, bytes] | None:
    """(proof id, coop) of a proof's bytes (6.3), read without verifying it (so that a requester
    can drop a proof it did not ask for before checking four signatures); None if the bytes do not
    frame as a proof (verification then refuses it)."""
    limits = DecodeLimits(
        max_bytes=2 * DEFAULT_ACTION_LIMITS.max_action_bytes + 64,
        max_depth=1,
        max_container_len=2,
        max_str_bytes=4,
        max_bin_bytes=DEFAULT_ACTION_LIMITS.max_action_bytes,
    )
    try:
        v = codec.decode(data, limits)
    except ProtocolError:
        return None
    if not isinstance(v, dict) or v.keys() != {"a", "b"} or type(v["a"]) is not bytes or type(v["b"]) is not bytes:
        return None
    a, b = peek_scope(v["a"]), peek_scope(v["b"])
    if a is None or b is None:
        return None
    return domain.proof_id(a[0], b[0]), a[1]


def keep_asked(
    reply: FetchReply, coop: bytes, wants: tuple[Want, ...], proofs: tuple[bytes, ...] | list[bytes], ids: tuple[bytes, ...] = ()
) -> tuple[FetchReply, int]:
    """A fetch reply with only what was asked (10.5): actions of ``coop`` by an author of ``wants``
    within its ``[first, last]`` or among the ``ids`` asked, proofs of ``coop`` among the proof ids
    asked. Returns the reply kept and how many items were dropped. Bytes that do not even frame as
    an action or a proof are kept: validation refuses them with their own code."""
    spans = {w.author: (w.first, w.last) for w in wants}
    by_id = set(ids)
    actions = []
    dropped = 0
    for raw in reply.actions:
        p = peek_scope(raw)
        if p is not None:
            span = spans.get(p[2])
            if p[1] != coop or ((span is None or not span[0] <= p[3] <= span[1]) and p[0] not in by_id):
                dropped += 1
                continue
        actions.append(raw)
    asked = set(proofs)
    kept_proofs = []
    for data in reply.proofs:
        q = proof_scope(data)
        if q is not None and (q[0] not in asked or q[1] != coop):
            dropped += 1
            continue
        kept_proofs.append(data)
    if not dropped:
        return reply, 0
    return FetchReply(tuple(actions), tuple(kept_proofs), reply.more), dropped


@dataclass(frozen=True, slots=True)
class PeerPush:
    """Newly stored actions and proofs, pushed eagerly to a few peers."""

    actions: tuple[bytes, ...]
    proofs: tuple[bytes, ...]


def encode_push(m: PeerPush) -> bytes:
    return codec.encode({"actions": list(m.actions), "proofs": list(m.proofs)})


def decode_push(data: bytes, *, max_actions: int = PUSH_MAX_ACTIONS) -> PeerPush:
    """Every node accepts pushes of up to PUSH_MAX_ACTIONS actions, whatever its client limits."""
    limit = max(max_actions, PUSH_MAX_ACTIONS, 8)
    v = codec.decode(
        data, DecodeLimits(max_bytes=len(data) or 1, max_depth=2, max_container_len=limit, max_str_bytes=16, max_bin_bytes=len(data) or 1)
    )
    if not isinstance(v, dict) or v.keys() != {"actions", "proofs"}:
        raise _bad("a push is {actions, proofs}")
    if not isinstance(v["actions"], tuple) or not all(type(x) is bytes for x in v["actions"]):
        raise _bad("actions is an array of bin")
    if not isinstance(v["proofs"], tuple) or not all(type(x) is bytes for x in v["proofs"]):
        raise _bad("proofs is an array of bin")
    return PeerPush(v["actions"], v["proofs"])


def encode_counts(counts: dict[str, int]) -> bytes:
    return codec.encode(counts)


@dataclass(frozen=True, slots=True)
class Announce:
    """A node's signed record, and (in a reply) the records of the peers it knows."""

    record: bytes
    peers: tuple[bytes, ...]


MAX_ANNOUNCED_PEERS = 256


def encode_announce(m: Announce) -> bytes:
    return codec.encode({"peers": list(m.peers), "record": m.record})


_ANNOUNCE_LIMITS = DecodeLimits(
    max_bytes=4 * 1024 * 1024, max_depth=2, max_container_len=MAX_ANNOUNCED_PEERS, max_str_bytes=16, max_bin_bytes=16 * 1024
)


def decode_announce(data: bytes) -> Announce:
    v = codec.decode(data, _ANNOUNCE_LIMITS)
    if not isinstance(v, dict) or v.keys() != {"peers", "record"} or type(v["record"]) is not bytes:
        raise _bad("an announce is {peers, record}")
    if not isinstance(v["peers"], tuple) or not all(type(x) is bytes for x in v["peers"]):
        raise _bad("peers is an array of bin (node records)")
    return Announce(v["record"], v["peers"])


def encode_coop_list(coops: list[bytes]) -> bytes:
    return codec.encode({"coops": coops})


_COOP_LIST_LIMITS = DecodeLimits(max_bytes=1024 * 1024, max_depth=2, max_container_len=16384, max_str_bytes=16, max_bin_bytes=ID)


def decode_coop_list(data: bytes) -> tuple[bytes, ...]:
    v = codec.decode(data, _COOP_LIST_LIMITS)
    if not isinstance(v, dict) or v.keys() != {"coops"} or not isinstance(v["coops"], tuple) or not all(_is_id(c) for c in v["coops"]):
        raise _bad("a co-op list is {coops: [bin32, ...]}")
    return v["coops"]
