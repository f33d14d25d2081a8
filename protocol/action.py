"""Signed actions: the envelope, the wire form, intrinsic validation, equivocation proofs.

Theory of operation. An action travels as the canonical encoding of a map::

    {"body": bin?, "env": bin, "sig": bin}

``env`` holds the canonical encoding of the envelope map (version, co-op, author, seq, prev, deps,
ts, kind, body_hash, body_size). The signature covers the domain-tagged ``env`` bytes and the
action id is the SHA-256 of the domain-tagged ``env`` bytes, so neither needs re-encoding and the
id cannot be changed without breaking the signature. The body (the canonical encoding of any
value) travels beside the envelope and is bound to it only by ``body_hash`` and ``body_size``: a
node may drop it (redaction) and the action stays verifiable and keeps its id.

Intrinsic validity is everything that can be decided from the bytes alone: canonical encoding
within limits, schema, key and signature policy (see keys.py), body binding, deps sorted and
unique, and the genesis shape. Whether the action fits its author's chain needs the store and is
decided in chain terms by ``chain.py``; whether the author was allowed to do it is the fold's
business (a later layer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from operator import attrgetter
from typing import Any

from . import codec, domain
from .charter import check_governance_body, is_governance
from .errors import ProtocolError, RejectCode, ValidationError
from .ids import ID_BYTES
from .keys import SigningKey, check_key_encoding, verify_checked_key
from .limits import DEFAULT_ACTION_LIMITS, ActionLimits, DecodeLimits

PROTOCOL_VERSION = 1
GENESIS_KIND = "coop.genesis"
_KIND_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_ENV_KEYS = frozenset({"author", "body_hash", "body_size", "coop", "deps", "kind", "prev", "seq", "ts", "v"})
_MAX_ENV_BYTES = 4096


def _bad(message: str, code: RejectCode = RejectCode.BAD_SCHEMA) -> ValidationError:
    return ValidationError(code, message)


def _is_id(v: object) -> bool:
    return type(v) is bytes and len(v) == ID_BYTES


@dataclass(frozen=True, slots=True)
class Envelope:
    """The signed part of an action. Construction validates everything local to the envelope."""

    coop: bytes | None  # None only in a genesis action: the co-op's id is the genesis id
    author: bytes
    seq: int
    prev: bytes | None
    deps: tuple[bytes, ...]
    ts: int  # milliseconds since the Unix epoch, as claimed by the author
    kind: str
    body_hash: bytes
    body_size: int
    v: int = PROTOCOL_VERSION

    def check(self, limits: ActionLimits = DEFAULT_ACTION_LIMITS) -> None:
        if type(self.v) is not int:
            raise _bad("v must be an integer")
        if self.v != PROTOCOL_VERSION:
            raise _bad(f"protocol version {self.v} is not supported (this node speaks {PROTOCOL_VERSION})", RejectCode.UNSUPPORTED_VERSION)
        if not (self.coop is None or _is_id(self.coop)):
            raise _bad("coop must be nil or a 32-byte id")
        if type(self.author) is not bytes:
            raise _bad("author must be a 32-byte public key")
        check_key_encoding(self.author)  # on-curve is settled by the signature check (keys.verify)
        if type(self.seq) is not int or self.seq < 1:
            raise _bad("seq must be an integer >= 1")
        if self.seq == 1:
            if self.prev is not None:
                raise _bad("prev must be nil when seq is 1")
        elif not _is_id(self.prev):
            raise _bad("prev must be a 32-byte action id when seq > 1")
        deps = self.deps
        if type(deps) is not tuple:
            raise _bad("deps must be an array of 32-byte action ids")
        # Plain loops, not generators: this runs for every action received, mostly with 0-2 deps.
        for d in deps:
            if type(d) is not bytes or len(d) != ID_BYTES:
                raise _bad("deps must be an array of 32-byte action ids")
        if len(deps) > limits.max_deps:
            raise _bad(f"{len(deps)} deps exceeds the limit of {limits.max_deps}", RejectCode.TOO_LARGE)
        for i in range(1, len(deps)):
            if deps[i - 1] >= deps[i]:
                raise _bad("deps must be sorted ascending without repeats")
        if type(self.ts) is not int or self.ts < 0:
            raise _bad("ts must be a non-negative integer (milliseconds)")
        if type(self.kind) is not str or not _KIND_RE.fullmatch(self.kind):
            raise _bad("kind must be dotted lower-case words, e.g. 'ride.offer'")
        if len(self.kind) > limits.max_kind_bytes:
            raise _bad(f"kind longer than {limits.max_kind_bytes} bytes", RejectCode.TOO_LARGE)
        if not _is_id(self.body_hash):
            raise _bad("body_hash must be 32 bytes")
        if type(self.body_size) is not int or self.body_size < 0:
            raise _bad("body_size must be a non-negative integer")
        if self.body_size > limits.max_body_bytes:
            raise _bad(f"body of {self.body_size} bytes exceeds the limit of {limits.max_body_bytes}", RejectCode.TOO_LARGE)
        is_genesis = self.kind == GENESIS_KIND
        if is_genesis != (self.coop is None):
            raise _bad("a genesis action (kind coop.genesis) has coop nil, and only it does")
        if is_genesis and (self.seq != 1 or self.deps):
            raise _bad("a genesis action has seq 1 and no deps")

    def to_value(self) -> dict[str, object]:
        return {
            "author": self.author,
            "body_hash": self.body_hash,
            "body_size": self.body_size,
            "coop": self.coop,
            "deps": list(self.deps),
            "kind": self.kind,
            "prev": self.prev,
            "seq": self.seq,
            "ts": self.ts,
            "v": self.v,
        }

    @classmethod
    def from_value(cls, value: object) -> Envelope:
        if not isinstance(value, dict):
            raise _bad("env must encode a map")
        if "v" in value and value["v"] != PROTOCOL_VERSION and type(value["v"]) is int:
            raise _bad(f"protocol version {value['v']} is not supported", RejectCode.UNSUPPORTED_VERSION)
        keys = value.keys()
        if keys != _ENV_KEYS:
            missing = sorted(_ENV_KEYS - keys)
            extra = sorted(keys - _ENV_KEYS)
            raise _bad(f"env fields wrong: missing {missing}, unexpected {extra}")
        return cls(**value)


@dataclass(frozen=True, slots=True)
class Action:
    """A decoded, intrinsically valid action. ``raw`` is the exact wire encoding."""

    id: bytes
    env: Envelope
    env_bytes: bytes
    sig: bytes
    body: bytes | None
    raw: bytes = field(repr=False)

    @property
    def coop(self) -> bytes:
        """The co-op this action belongs to (a genesis belongs to the co-op it founds)."""
        return self.env.coop if self.env.coop is not None else self.id

    @property
    def is_genesis(self) -> bool:
        return self.env.coop is None

    @property
    def author(self) -> bytes:
        return self.env.author

    @property
    def seq(self) -> int:
        return self.env.seq

    @property
    def prev(self) -> bytes | None:
        return self.env.prev

    @property
    def kind(self) -> str:
        return self.env.kind

    def body_value(self) -> object:
        """The decoded body, or None when the body is not carried (redacted or withheld)."""
        if self.body is None:
            return None
        return codec.decode(self.body, _body_limits(DEFAULT_ACTION_LIMITS))

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Validated actions cross from worker processes in bulk; flat tuples pickle ~2.5x faster
        # than the default dataclass state, and the envelope, signature and body travel as places
        # in ``raw`` rather than as copies of its bytes. Nothing is re-validated: pickle is for
        # trusted hops. (``find`` may meet an equal run of bytes earlier: it is the same bytes.)
        raw = self.raw
        return (
            _rebuild_action,
            (
                self.id,
                raw,
                _place(raw, self.env_bytes),
                _place(raw, self.sig),
                None if self.body is None else _place(raw, self.body),
                len(self.env_bytes),
                0 if self.body is None else len(self.body),
                *_envelope_fields(self.env),
            ),
        )

    def without_body(self) -> Action:
        raw = codec.encode({"env": self.env_bytes, "sig": self.sig})
        return Action(self.id, self.env, self.env_bytes, self.sig, None, raw)


# Constructors for the hot paths (decoding, and unpickling worker results): a frozen dataclass's
# __init__ sets each field through object.__setattr__, which costs 2.5x what setting the slots
# directly does, on every action a node receives. Same objects, same immutability afterwards.
_new = object.__new__
_E_SET = tuple(getattr(Envelope, f.name).__set__ for f in fields(Envelope))  # in the order _envelope takes them
_A_SET = tuple(getattr(Action, f.name).__set__ for f in fields(Action))
_envelope_fields = attrgetter(*(f.name for f in fields(Envelope)))  # the values, in that same order


def _envelope(
    coop: bytes | None,
    author: bytes,
    seq: int,
    prev: bytes | None,
    deps: tuple[bytes, ...],
    ts: int,
    kind: str,
    body_hash: bytes,
    body_size: int,
    v: int,
) -> Envelope:
    e = _new(Envelope)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _E_SET
    s0(e, coop)
    s1(e, author)
    s2(e, seq)
    s3(e, prev)
    s4(e, deps)
    s5(e, ts)
    s6(e, kind)
    s7(e, body_hash)
    s8(e, body_size)
    s9(e, v)
    return e  # type: ignore[no-any-return]


def _action(id: bytes, env: Envelope, env_bytes: bytes, sig: bytes, body: bytes | None, raw: bytes) -> Action:
    a = _new(Action)
    s0, s1, s2, s3, s4, s5 = _A_SET
    s0(a, id)
    s1(a, env)
    s2(a, env_bytes)
    s3(a, sig)
    s4(a, body)
    s5(a, raw)
    return a  # type: ignore[no-any-return]


def _place(raw: bytes, part: bytes) -> int | bytes:
    """Where ``part`` lies in ``raw`` (as the int), or ``part`` itself if it is not there."""
    i = raw.find(part)
    return i if i >= 0 else part


def _cut(raw: bytes, where: int | bytes, size: int) -> bytes:
    return raw[where : where + size] if type(where) is int else where  # type: ignore[return-value]


def _rebuild_action(
    id: bytes,
    raw: bytes,
    env_at: int | bytes,
    sig_at: int | bytes,
    body_at: int | bytes | None,
    env_size: int,
    body_len: int,
    *env_fields: Any,  # Envelope's fields in order, as _envelope_fields gave them
) -> Action:
    env = _envelope(*env_fields)
    body = None if body_at is None else _cut(raw, body_at, body_len)
    return _action(id, env, _cut(raw, env_at, env_size), _cut(raw, sig_at, 64), body, raw)


def _body_limits(limits: ActionLimits) -> DecodeLimits:
    return _DEFAULT_BODY_LIMITS if limits is DEFAULT_ACTION_LIMITS else _derive_body_limits(limits)


def _wire_limits(limits: ActionLimits) -> DecodeLimits:
    return _DEFAULT_WIRE_LIMITS if limits is DEFAULT_ACTION_LIMITS else _derive_wire_limits(limits)


@lru_cache(maxsize=16)
def _derive_body_limits(limits: ActionLimits) -> DecodeLimits:
    return DecodeLimits(
        max_bytes=limits.max_body_bytes,
        max_depth=limits.body_depth,
        max_container_len=limits.body_container_len,
        max_str_bytes=limits.body_str_bytes,
        max_bin_bytes=limits.max_body_bytes,
    )


@lru_cache(maxsize=16)
def _derive_wire_limits(limits: ActionLimits) -> DecodeLimits:
    return DecodeLimits(
        max_bytes=limits.max_action_bytes,
        # Only depth 1 and 3 fields are valid; the slack lets a wrong shape be named (bad_schema).
        max_depth=4,
        max_container_len=16,
        max_str_bytes=256,
        max_bin_bytes=limits.max_action_bytes,
    )


_DEFAULT_BODY_LIMITS = _derive_body_limits(DEFAULT_ACTION_LIMITS)
_DEFAULT_WIRE_LIMITS = _derive_wire_limits(DEFAULT_ACTION_LIMITS)
_ENV_LIMITS = DecodeLimits(max_bytes=_MAX_ENV_BYTES, max_depth=2, max_container_len=64, max_str_bytes=256, max_bin_bytes=ID_BYTES)


def sign_action(
    key: SigningKey,
    *,
    coop: bytes | None,
    seq: int,
    prev: bytes | None,
    deps: tuple[bytes, ...] | list[bytes] = (),
    ts: int,
    kind: str,
    body: object,
    limits: ActionLimits = DEFAULT_ACTION_LIMITS,
) -> Action:
    """Build and sign an action. ``deps`` are sorted and de-duplicated here."""
    body_bytes = codec.encode(body)
    env = Envelope(
        coop=coop,
        author=key.public_key,
        seq=seq,
        prev=prev,
        deps=tuple(sorted(set(deps))),
        ts=ts,
        kind=kind,
        body_hash=domain.body_hash(body_bytes),
        body_size=len(body_bytes),
    )
    env.check(limits)
    env_bytes = codec.encode(env.to_value())
    sig = key.sign(domain.action_signing_input(env_bytes))
    raw = codec.encode({"body": body_bytes, "env": env_bytes, "sig": sig})
    if len(raw) > limits.max_action_bytes:
        raise _bad(f"action of {len(raw)} bytes exceeds the limit of {limits.max_action_bytes}", RejectCode.TOO_LARGE)
    action = Action(domain.action_id(env_bytes), env, env_bytes, sig, body_bytes, raw)
    if action.id in env.deps:
        raise _bad("an action cannot depend on itself")
    return action


def sign_genesis(key: SigningKey, *, ts: int, body: dict[str, object], limits: ActionLimits = DEFAULT_ACTION_LIMITS) -> Action:
    """Found a co-op: the genesis body carries at least its ``name``; its id is the co-op id."""
    check_genesis_body(body)
    return sign_action(key, coop=None, seq=1, prev=None, deps=(), ts=ts, kind=GENESIS_KIND, body=body, limits=limits)


_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_genesis_body(body: object) -> None:
    # The name rule is byte-simple on purpose (no Unicode white-space tables) so that every
    # implementation agrees: 1-128 UTF-8 bytes, no control characters, not only spaces.
    if not isinstance(body, dict):
        raise _bad("a genesis body is a map", RejectCode.BAD_BODY)
    name = body.get("name")
    if (
        not isinstance(name, str)
        or not 1 <= len(name.encode("utf-8", "surrogatepass")) <= 128
        or not name.strip(" ")
        or _CONTROL_RE.search(name)
    ):
        raise _bad("a genesis body needs a 'name': 1-128 UTF-8 bytes, no control characters, not only spaces", RejectCode.BAD_BODY)


def peek(data: bytes, limits: ActionLimits = DEFAULT_ACTION_LIMITS) -> tuple[bytes, bytes, int] | None:
    """(id, author, seq) read from an action's bytes without validating them; None if they do
    not even frame as an action. For skipping what a node already holds before paying for a
    signature check; never a substitute for ``decode_action``."""
    # No canonical checks: the id is the hash of the envelope bytes themselves, so an id that
    # matches a held action names exactly that envelope, however the bytes around it were framed.
    outer = _unpacked(data, _wire_limits(limits))
    env_bytes = outer.get("env") if type(outer) is dict else None
    env = _unpacked(env_bytes, _ENV_LIMITS) if type(env_bytes) is bytes else None
    if not isinstance(env, dict) or type(env.get("author")) is not bytes or type(env.get("seq")) is not int:
        return None
    return domain.action_id(env_bytes), env["author"], env["seq"]


def peek_scope(data: bytes, limits: ActionLimits = DEFAULT_ACTION_LIMITS) -> tuple[bytes, bytes, bytes, int] | None:
    """(id, coop, author, seq) read like ``peek``: where an action says it belongs, without
    validating it, so that a requester can drop what it did not ask for before paying for a
    signature check. The coop of a genesis is its own id. None if the bytes do not frame as an action."""
    outer = _unpacked(data, _wire_limits(limits))
    env_bytes = outer.get("env") if type(outer) is dict else None
    env = _unpacked(env_bytes, _ENV_LIMITS) if type(env_bytes) is bytes else None
    if not isinstance(env, dict) or type(env.get("author")) is not bytes or type(env.get("seq")) is not int:
        return None
    action_id = domain.action_id(env_bytes)
    coop = env.get("coop")
    if coop is None and "coop" in env:
        coop = action_id
    if type(coop) is not bytes:
        return None
    return action_id, coop, env["author"], env["seq"]


# Fast paths for the shapes every honest node sends. Each accepts exactly what ``codec.decode``
# plus the schema would accept, checking the same things more directly for a known shape (and
# skipping the general walk); anything else returns None and takes the general path, which then
# reports the precise error. Together they halve the Python cost of decoding an action.

_OUTER_ORDERS = (("env", "sig"), ("body", "env", "sig"))
_ENV_ORDER = tuple(sorted(_ENV_KEYS))  # all ASCII: str order is byte order
_SCALARS = (bytes, str, type(None), bool)


def _unpacked(data: bytes, limits: DecodeLimits) -> Any:
    """``data`` unpacked within ``limits`` but with no canonical checks; None if it does not unpack."""
    if not data or len(data) > limits.max_bytes:
        return None
    try:
        return codec.unpacker(limits)(data)
    except Exception:
        return None


def _plain_outer(data: bytes, limits: ActionLimits) -> dict[str, bytes] | None:
    v = _unpacked(data, _wire_limits(limits))
    if type(v) is not dict or tuple(v) not in _OUTER_ORDERS:
        return None
    for x in v.values():
        if type(x) is not bytes:
            return None
    return v if codec.pack(v) == data else None


def _plain_env(env_bytes: bytes) -> Envelope | None:
    v = _unpacked(env_bytes, _ENV_LIMITS)
    if type(v) is not dict or tuple(v) != _ENV_ORDER:
        return None
    for x in v.values():
        t = type(x)
        if t is int:
            if x > codec.INT_MAX:
                return None
        elif t is tuple:
            for y in x:
                if type(y) not in _SCALARS and not (type(y) is int and y <= codec.INT_MAX):
                    return None
        elif t not in _SCALARS:
            return None
    if codec.pack(v) != env_bytes:
        return None
    return _envelope(v["coop"], v["author"], v["seq"], v["prev"], v["deps"], v["ts"], v["kind"], v["body_hash"], v["body_size"], v["v"])


def decode_action(
    data: bytes, limits: ActionLimits = DEFAULT_ACTION_LIMITS, *, check_signature: bool = True, in_proof: bool = False
) -> Action:
    """Decode and intrinsically validate one action; raise ``ProtocolError`` with a code if invalid.

    ``in_proof``: the action is one half of an equivocation proof, where bodies are never carried,
    so a genesis without its body is acceptable there (and only there).
    """
    if type(data) is not bytes:
        data = bytes(data)
    outer = _plain_outer(data, limits)
    if outer is None:  # not the plain shape: the general decoder, and the checks the shape implies
        outer = codec.decode(data, _wire_limits(limits))
        if not isinstance(outer, dict):
            raise _bad("an action encodes a map {body?, env, sig}")
        if "env" not in outer or "sig" not in outer or not outer.keys() <= {"body", "env", "sig"}:
            raise _bad(f"action fields must be env, sig and optionally body; got {sorted(outer)}")
        if (
            type(outer["env"]) is not bytes
            or type(outer["sig"]) is not bytes
            or not (outer.get("body") is None or type(outer["body"]) is bytes)
        ):
            raise _bad("env, sig and body must be bin")
        if "body" in outer and outer["body"] is None:
            raise _bad("omit body rather than sending nil")
    env_bytes, sig, body = outer["env"], outer["sig"], outer.get("body")
    env = _plain_env(env_bytes) or Envelope.from_value(codec.decode(env_bytes, _ENV_LIMITS))
    env.check(limits)
    action_id = domain.action_id(env_bytes)
    if action_id in env.deps:
        raise _bad("an action cannot depend on itself")
    if body is not None:
        if len(body) != env.body_size or domain.body_hash(body) != env.body_hash:
            raise _bad("body does not match body_hash and body_size", RejectCode.BAD_BODY)
        body_value = codec.decode(body, _body_limits(limits))
        if env.coop is None:
            check_genesis_body(body_value)
        if is_governance(env.kind):
            check_governance_body(env.kind, body_value)
    elif is_governance(env.kind) and not in_proof:
        # Governance decides membership and sanctions: every node must see the same bodies, so
        # they can never be withheld or redacted (genesis included: it carries the charter).
        raise _bad(f"a {env.kind} action must carry its body", RejectCode.BAD_BODY)
    if check_signature:
        verify_checked_key(env.author, domain.action_signing_input(env_bytes), sig)  # env.check checked the key
    return _action(action_id, env, env_bytes, sig, body, data)


def decode_many(raws: list[bytes] | tuple[bytes, ...], limits: ActionLimits | None = None) -> list[Action | ProtocolError]:
    """``decode_action`` over a batch, each verdict in place: runs in validation worker processes,
    so it lives here, importing nothing but the protocol (``None`` means the default limits)."""
    limits = DEFAULT_ACTION_LIMITS if limits is None else limits
    out: list[Action | ProtocolError] = []
    for raw in raws:
        try:
            out.append(decode_action(raw, limits))
        except ProtocolError as e:
            # Kept without its traceback: the traceback holds this frame, which holds ``out``,
            # which holds the error: a cycle that kept each rejected input (up to a whole request
            # body) alive until the next full garbage collection.
            out.append(e.with_traceback(None))
    return out
