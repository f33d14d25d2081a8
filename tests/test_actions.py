"""protocol/action.py and protocol/chain.py: signed actions, chain placement, equivocation proofs.

Invalid actions are built by hand (codec.encode of an envelope map, signed over
domain.action_signing_input) so that each case breaks exactly one rule and is otherwise valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, domain
from protocol.action import GENESIS_KIND, PROTOCOL_VERSION, Action, decode_action, sign_action, sign_genesis
from protocol.chain import EquivocationProof, Placement, decode_proof, make_proof, place
from protocol.errors import DecodeError, ProtocolError, RejectCode, ValidationError
from protocol.keys import SMALL_ORDER_ENCODINGS, SigningKey
from protocol.limits import DEFAULT_ACTION_LIMITS

KEY = SigningKey(bytes([1]) * 32)
OTHER = SigningKey(bytes([2]) * 32)
TS = 1_700_000_000_000


def fake_id(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


GENESIS = sign_genesis(KEY, ts=TS, body={"name": "Ride Co-op", "rules": ["be kind"]})
COOP = GENESIS.id
PREV = fake_id("prev")
DEP_LO, DEP_HI = sorted((fake_id("dep1"), fake_id("dep2")))
BODY_VALUE = {"seats": 3, "from": "Ghent"}
BODY = codec.encode(BODY_VALUE)
GENESIS_BODY = codec.encode({"name": "Ride Co-op"})

MISSING: Any = object()  # remove the field
OMIT: Any = object()  # leave the body out of the wire map


def env_fields(**changes: Any) -> dict[str, Any]:
    """A valid non-genesis envelope (seq 2 in COOP) with ``changes`` applied."""
    env: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "coop": COOP,
        "author": KEY.public_key,
        "seq": 2,
        "prev": PREV,
        "deps": [DEP_LO, DEP_HI],
        "ts": TS,
        "kind": "ride.offer",
        "body_hash": domain.body_hash(BODY),
        "body_size": len(BODY),
    }
    return _apply(env, changes)


def genesis_fields(body: bytes = GENESIS_BODY, **changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "coop": None,
        "author": KEY.public_key,
        "seq": 1,
        "prev": None,
        "deps": [],
        "ts": TS,
        "kind": GENESIS_KIND,
        "body_hash": domain.body_hash(body),
        "body_size": len(body),
    }
    return _apply(env, changes)


def _apply(env: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for k, v in changes.items():
        if v is MISSING:
            del env[k]
        else:
            env[k] = v
    return env


def wire(
    env: dict[str, Any] | bytes, body: Any, *, key: SigningKey = KEY, sig: bytes | None = None, extra: dict[str, Any] | None = None
) -> bytes:
    """The wire bytes of an action whose env is ``env`` (a map, or exact env bytes), signed by ``key``."""
    env_bytes = env if isinstance(env, bytes) else codec.encode(env)
    if sig is None:
        sig = key.sign(domain.action_signing_input(env_bytes))
    outer: dict[str, Any] = {"env": env_bytes, "sig": sig}
    if body is not OMIT:
        outer["body"] = body
    outer.update(extra or {})
    return codec.encode(outer)


def body_env(body_value: Any, **changes: Any) -> tuple[dict[str, Any], bytes]:
    body = codec.encode(body_value)
    return env_fields(body_hash=domain.body_hash(body), body_size=len(body), **changes), body


def rejected(data: bytes, code: RejectCode) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_action(data)
    assert info.value.code is code, f"expected {code}, got {info.value.code}: {info.value.message}"
    return info.value


def sign_x(
    key: SigningKey = KEY,
    *,
    coop: bytes = COOP,
    seq: int = 2,
    prev: bytes | None = None,
    body: Any = None,
    kind: str = "ride.offer",
    deps: tuple[bytes, ...] = (),
) -> Action:
    if prev is None and seq > 1:
        prev = GENESIS.id
    return sign_action(key, coop=coop, seq=seq, prev=prev, deps=deps, ts=TS, kind=kind, body=body if body is not None else {"n": 0})


# ---------------------------------------------------------------------------------------------
# Signing and decoding valid actions
# ---------------------------------------------------------------------------------------------


def test_hand_built_wire_matches_sign_action() -> None:
    """The helpers below build exactly what sign_action builds, so the invalid cases differ in one rule only."""
    action = sign_action(KEY, coop=COOP, seq=2, prev=PREV, deps=[DEP_HI, DEP_LO], ts=TS, kind="ride.offer", body=BODY_VALUE)
    assert wire(env_fields(), BODY) == action.raw
    assert (
        wire(genesis_fields(codec.encode({"name": "Ride Co-op", "rules": ["be kind"]})), codec.encode(GENESIS.body_value())) == GENESIS.raw
    )


def test_genesis_round_trip() -> None:
    decoded = decode_action(GENESIS.raw)
    assert decoded == GENESIS
    assert decoded.id == GENESIS.id == domain.action_id(GENESIS.env_bytes)
    assert decoded.id == hashlib.sha256(b"coopnet/v1/action-id\x00" + decoded.env_bytes).digest()
    assert decoded.is_genesis
    assert decoded.coop == decoded.id  # a genesis belongs to the co-op it founds
    assert decoded.env.coop is None
    assert decoded.seq == 1 and decoded.prev is None and decoded.kind == GENESIS_KIND
    assert decoded.author == KEY.public_key
    assert decoded.body_value() == {"name": "Ride Co-op", "rules": ("be kind",)}


def test_action_round_trip() -> None:
    action = sign_action(KEY, coop=COOP, seq=2, prev=GENESIS.id, deps=[DEP_HI, DEP_LO, DEP_HI], ts=TS, kind="ride.offer", body=BODY_VALUE)
    assert action.env.deps == (DEP_LO, DEP_HI)  # sorted and de-duplicated
    decoded = decode_action(action.raw)
    assert decoded == action
    assert decoded.id == action.id
    assert decoded.coop == COOP and not decoded.is_genesis
    assert decoded.seq == 2 and decoded.prev == GENESIS.id and decoded.kind == "ride.offer"
    assert decoded.body_value() == BODY_VALUE
    assert decoded.env_bytes == codec.encode(decoded.env.to_value())
    assert decode_action(bytearray(action.raw)) == action  # type: ignore[arg-type]


def test_ids_depend_on_every_envelope_field() -> None:
    base = sign_x()
    variants = [
        sign_x(body={"n": 1}),
        sign_x(seq=3),
        sign_x(kind="ride.cancel"),
        sign_x(coop=fake_id("other coop")),
        sign_x(OTHER),
        sign_x(deps=(DEP_LO,)),
        sign_x(prev=PREV),
        sign_action(KEY, coop=COOP, seq=2, prev=GENESIS.id, ts=TS + 1, kind="ride.offer", body={"n": 0}),
    ]
    ids = {base.id} | {v.id for v in variants}
    assert len(ids) == len(variants) + 1


def test_first_action_of_a_member_has_seq_1_and_no_prev() -> None:
    action = decode_action(wire(env_fields(seq=1, prev=None), BODY))
    assert action.seq == 1 and action.prev is None and action.coop == COOP


def test_limits_at_the_edge_are_accepted() -> None:
    deps = sorted(fake_id(f"d{i}") for i in range(DEFAULT_ACTION_LIMITS.max_deps))
    decode_action(wire(env_fields(deps=deps), BODY))
    decode_action(wire(env_fields(kind="a" * DEFAULT_ACTION_LIMITS.max_kind_bytes), BODY))
    decode_action(wire(env_fields(kind="a1_.b2_.c", deps=[]), BODY))
    decode_action(wire(env_fields(ts=0), BODY))
    empty = codec.encode(None)
    decode_action(wire(env_fields(body_hash=domain.body_hash(empty), body_size=len(empty)), empty))


def test_sign_action_refuses_invalid_input() -> None:
    with pytest.raises(ValidationError) as info:
        sign_action(KEY, coop=COOP, seq=2, prev=GENESIS.id, ts=TS, kind="Bad Kind", body=None)
    assert info.value.code is RejectCode.BAD_SCHEMA
    with pytest.raises(ValidationError) as info:
        sign_action(KEY, coop=COOP, seq=2, prev=GENESIS.id, ts=TS, kind="x", body=b"\x00" * (DEFAULT_ACTION_LIMITS.max_body_bytes + 1))
    assert info.value.code is RejectCode.TOO_LARGE
    with pytest.raises(ValidationError) as info:
        sign_action(KEY, coop=COOP, seq=2, prev=GENESIS.id, ts=TS, kind="x", body=1.5)
    assert info.value.code is RejectCode.BAD_SCHEMA
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 129}, {"name": 5}):
        with pytest.raises(ValidationError) as info:
            sign_genesis(KEY, ts=TS, body=body)
        assert info.value.code is RejectCode.BAD_BODY


# ---------------------------------------------------------------------------------------------
# Every schema rule, broken one at a time
# ---------------------------------------------------------------------------------------------

ENV_KEYS = ["author", "body_hash", "body_size", "coop", "deps", "kind", "prev", "seq", "ts", "v"]

CASES: list[Any] = [
    # version
    pytest.param(lambda: wire(env_fields(v=2), BODY), RejectCode.UNSUPPORTED_VERSION, id="v=2"),
    pytest.param(lambda: wire(env_fields(v=0), BODY), RejectCode.UNSUPPORTED_VERSION, id="v=0"),
    pytest.param(lambda: wire(env_fields(v=2, extra_field=1), BODY), RejectCode.UNSUPPORTED_VERSION, id="v=2 with other fields"),
    pytest.param(
        lambda: wire(env_fields(v=2, seq=MISSING, kind=MISSING), BODY), RejectCode.UNSUPPORTED_VERSION, id="v=2 with fields missing"
    ),
    pytest.param(lambda: wire(env_fields(v=2, seq=0), BODY), RejectCode.UNSUPPORTED_VERSION, id="v=2 before other rules"),
    pytest.param(lambda: wire(genesis_fields(v=2), GENESIS_BODY), RejectCode.UNSUPPORTED_VERSION, id="genesis v=2"),
    pytest.param(lambda: wire(env_fields(v="1"), BODY), RejectCode.BAD_SCHEMA, id="v as str"),
    pytest.param(lambda: wire(env_fields(v=True), BODY), RejectCode.BAD_SCHEMA, id="v as bool"),
    # fields
    *[pytest.param(lambda k=k: wire(env_fields(**{k: MISSING}), BODY), RejectCode.BAD_SCHEMA, id=f"missing {k}") for k in ENV_KEYS],
    pytest.param(lambda: wire(env_fields(extra=1), BODY), RejectCode.BAD_SCHEMA, id="extra env field"),
    pytest.param(lambda: wire(env_fields(body=None), BODY), RejectCode.BAD_SCHEMA, id="extra env field body"),
    # coop
    pytest.param(lambda: wire(env_fields(coop=COOP[:31]), BODY), RejectCode.BAD_SCHEMA, id="coop 31 bytes"),
    pytest.param(lambda: wire(env_fields(coop="coop"), BODY), RejectCode.BAD_SCHEMA, id="coop as str"),
    # author
    pytest.param(lambda: wire(env_fields(author=sorted(SMALL_ORDER_ENCODINGS)[0]), BODY), RejectCode.BAD_KEY, id="author small order"),
    pytest.param(lambda: wire(env_fields(author=KEY.public_key[:31]), BODY), RejectCode.BAD_KEY, id="author 31 bytes"),
    pytest.param(lambda: wire(env_fields(author=KEY.public_key.hex()[:32]), BODY), RejectCode.BAD_SCHEMA, id="author as str"),
    # seq and prev
    pytest.param(lambda: wire(env_fields(seq=0, prev=None), BODY), RejectCode.BAD_SCHEMA, id="seq 0"),
    pytest.param(lambda: wire(env_fields(seq=0), BODY), RejectCode.BAD_SCHEMA, id="seq 0 with prev"),
    pytest.param(lambda: wire(env_fields(seq=-1), BODY), RejectCode.BAD_SCHEMA, id="seq -1"),
    pytest.param(lambda: wire(env_fields(seq="2"), BODY), RejectCode.BAD_SCHEMA, id="seq as str"),
    pytest.param(lambda: wire(env_fields(seq=True, prev=None), BODY), RejectCode.BAD_SCHEMA, id="seq as bool"),
    pytest.param(lambda: wire(env_fields(seq=1), BODY), RejectCode.BAD_SCHEMA, id="prev present at seq 1"),
    pytest.param(lambda: wire(env_fields(prev=None), BODY), RejectCode.BAD_SCHEMA, id="prev missing at seq 2"),
    pytest.param(lambda: wire(env_fields(prev=PREV[:31]), BODY), RejectCode.BAD_SCHEMA, id="prev 31 bytes"),
    pytest.param(lambda: wire(env_fields(prev=[PREV]), BODY), RejectCode.BAD_SCHEMA, id="prev as array"),
    # deps
    pytest.param(lambda: wire(env_fields(deps=[DEP_HI, DEP_LO]), BODY), RejectCode.BAD_SCHEMA, id="unsorted deps"),
    pytest.param(lambda: wire(env_fields(deps=[DEP_LO, DEP_LO]), BODY), RejectCode.BAD_SCHEMA, id="duplicate deps"),
    pytest.param(lambda: wire(env_fields(deps=[DEP_LO, DEP_HI, DEP_HI]), BODY), RejectCode.BAD_SCHEMA, id="duplicate deps at the end"),
    pytest.param(
        lambda: wire(env_fields(deps=sorted(fake_id(f"d{i}") for i in range(DEFAULT_ACTION_LIMITS.max_deps + 1))), BODY),
        RejectCode.TOO_LARGE,
        id="too many deps",
    ),
    pytest.param(lambda: wire(env_fields(deps=[DEP_LO[:31]]), BODY), RejectCode.BAD_SCHEMA, id="dep 31 bytes"),
    pytest.param(lambda: wire(env_fields(deps=DEP_LO), BODY), RejectCode.BAD_SCHEMA, id="deps as bin"),
    pytest.param(lambda: wire(env_fields(deps=None), BODY), RejectCode.BAD_SCHEMA, id="deps nil"),
    pytest.param(lambda: wire(env_fields(deps=["x" * 32]), BODY), RejectCode.BAD_SCHEMA, id="dep as str"),
    # ts
    pytest.param(lambda: wire(env_fields(ts=-1), BODY), RejectCode.BAD_SCHEMA, id="negative ts"),
    pytest.param(lambda: wire(env_fields(ts=str(TS)), BODY), RejectCode.BAD_SCHEMA, id="ts as str"),
    pytest.param(lambda: wire(env_fields(ts=None), BODY), RejectCode.BAD_SCHEMA, id="ts nil"),
    # kind
    *[
        pytest.param(lambda kind=kind: wire(env_fields(kind=kind), BODY), RejectCode.BAD_SCHEMA, id=f"kind {kind!r}")
        for kind in [
            "",
            "Ride.offer",
            "ride.Offer",
            "ride..offer",
            ".ride",
            "ride.",
            "1ride",
            "ride.1x",
            "_ride",
            "ride-offer",
            "ride offer",
            "ride.offer\n",
            "r\u00eede",
            "ride/offer",
            "ride.offer ",
        ]
    ],
    pytest.param(lambda: wire(env_fields(kind=5), BODY), RejectCode.BAD_SCHEMA, id="kind as int"),
    pytest.param(lambda: wire(env_fields(kind=b"ride.offer"), BODY), RejectCode.BAD_SCHEMA, id="kind as bin"),
    pytest.param(
        lambda: wire(env_fields(kind="a" * (DEFAULT_ACTION_LIMITS.max_kind_bytes + 1)), BODY), RejectCode.TOO_LARGE, id="kind too long"
    ),
    # body binding
    pytest.param(lambda: wire(env_fields(), codec.encode({"seats": 4, "from": "Ghent"})), RejectCode.BAD_BODY, id="body mismatch"),
    pytest.param(lambda: wire(env_fields(body_size=len(BODY) + 1), BODY), RejectCode.BAD_BODY, id="body_size mismatch"),
    pytest.param(lambda: wire(env_fields(body_size=len(BODY) - 1), BODY), RejectCode.BAD_BODY, id="body_size too small"),
    pytest.param(lambda: wire(env_fields(), BODY + b"\xc0"), RejectCode.BAD_BODY, id="body with trailing byte"),
    pytest.param(lambda: wire(env_fields(body_hash=BODY), BODY), RejectCode.BAD_SCHEMA, id="body_hash not 32 bytes"),
    pytest.param(lambda: wire(env_fields(body_hash=None), BODY), RejectCode.BAD_SCHEMA, id="body_hash nil"),
    pytest.param(lambda: wire(env_fields(body_size=-1), OMIT), RejectCode.BAD_SCHEMA, id="negative body_size"),
    pytest.param(lambda: wire(env_fields(body_size="9"), BODY), RejectCode.BAD_SCHEMA, id="body_size as str"),
    pytest.param(
        lambda: wire(env_fields(body_size=DEFAULT_ACTION_LIMITS.max_body_bytes + 1), OMIT),
        RejectCode.TOO_LARGE,
        id="body_size over the limit",
    ),
    pytest.param(
        lambda: wire(env_fields(body_hash=domain.body_hash(b"\xcc\x05"), body_size=2), b"\xcc\x05"),
        RejectCode.NOT_CANONICAL,
        id="body hashes right but is not canonical",
    ),
    pytest.param(lambda: wire(*body_env([[[[[[[[[1]]]]]]]]])), RejectCode.TOO_LARGE, id="body nested too deep"),
    # genesis shape
    pytest.param(lambda: wire(genesis_fields(), OMIT), RejectCode.BAD_BODY, id="genesis without body"),
    pytest.param(lambda: wire(genesis_fields(), codec.encode({"name": "Other"})), RejectCode.BAD_BODY, id="genesis body mismatch"),
    *[
        pytest.param(lambda b=b: wire(genesis_fields(codec.encode(b)), codec.encode(b)), RejectCode.BAD_BODY, id=f"genesis body {b!r}"[:60])
        for b in [{}, {"title": "x"}, {"name": ""}, {"name": " \t"}, {"name": "x" * 129}, {"name": b"bin"}, ["name"], "name", None]
    ],
    pytest.param(lambda: wire(genesis_fields(coop=COOP), GENESIS_BODY), RejectCode.BAD_SCHEMA, id="genesis with coop set"),
    pytest.param(lambda: wire(env_fields(coop=None), BODY), RejectCode.BAD_SCHEMA, id="non-genesis with coop nil"),
    pytest.param(
        lambda: wire(env_fields(coop=None, seq=1, prev=None, deps=[]), BODY), RejectCode.BAD_SCHEMA, id="non-genesis founding shape"
    ),
    pytest.param(lambda: wire(genesis_fields(seq=2, prev=PREV), GENESIS_BODY), RejectCode.BAD_SCHEMA, id="genesis at seq 2"),
    pytest.param(lambda: wire(genesis_fields(deps=[DEP_LO]), GENESIS_BODY), RejectCode.BAD_SCHEMA, id="genesis with deps"),
    # signature
    pytest.param(lambda: wire(env_fields(), BODY, key=OTHER), RejectCode.BAD_SIGNATURE, id="signed by another key"),
    pytest.param(
        lambda: wire(env_fields(), BODY, sig=KEY.sign(codec.encode(env_fields()))), RejectCode.BAD_SIGNATURE, id="signed without domain tag"
    ),
    pytest.param(
        lambda: wire(env_fields(), BODY, sig=KEY.sign(domain.ACTION_ID + codec.encode(env_fields()))),
        RejectCode.BAD_SIGNATURE,
        id="signed under another domain tag",
    ),
    pytest.param(
        lambda: wire(env_fields(), BODY, sig=KEY.sign(domain.action_signing_input(codec.encode(env_fields(ts=TS + 1))))),
        RejectCode.BAD_SIGNATURE,
        id="signature of another envelope",
    ),
    pytest.param(
        lambda: wire(env_fields(), BODY, sig=KEY.sign(domain.action_signing_input(codec.encode(env_fields())))[:63]),
        RejectCode.BAD_SIGNATURE,
        id="signature 63 bytes",
    ),
    pytest.param(lambda: wire(env_fields(), BODY, sig=bytes(64)), RejectCode.BAD_SIGNATURE, id="zero signature"),
    pytest.param(lambda: wire(genesis_fields(), GENESIS_BODY, key=OTHER), RejectCode.BAD_SIGNATURE, id="genesis signed by another key"),
    # the wire map
    pytest.param(lambda: wire(env_fields(), None), RejectCode.BAD_SCHEMA, id="body present as nil"),
    pytest.param(lambda: wire(env_fields(), OMIT, extra={"x": b""}), RejectCode.BAD_SCHEMA, id="extra top-level field"),
    pytest.param(lambda: wire(env_fields(), BODY, extra={"x": b""}), RejectCode.BAD_SCHEMA, id="extra top-level field beside body"),
    pytest.param(lambda: wire(env_fields(), OMIT, extra={"bodY": BODY}), RejectCode.BAD_SCHEMA, id="misspelt body field"),
    pytest.param(lambda: codec.encode({"env": codec.encode(env_fields()), "body": BODY}), RejectCode.BAD_SCHEMA, id="missing sig"),
    pytest.param(lambda: codec.encode({"sig": bytes(64), "body": BODY}), RejectCode.BAD_SCHEMA, id="missing env"),
    pytest.param(lambda: codec.encode({"body": BODY, "env": "env", "sig": bytes(64)}), RejectCode.BAD_SCHEMA, id="env as str"),
    pytest.param(lambda: codec.encode({"body": BODY, "env": codec.encode(env_fields()), "sig": 5}), RejectCode.BAD_SCHEMA, id="sig as int"),
    pytest.param(lambda: wire(env_fields(), "body"), RejectCode.BAD_SCHEMA, id="body as str"),
    pytest.param(lambda: wire(env_fields(), 5), RejectCode.BAD_SCHEMA, id="body as int"),
    pytest.param(lambda: wire(env_fields(), [BODY]), RejectCode.BAD_SCHEMA, id="body as array"),
    pytest.param(lambda: wire(env_fields(), {"b": BODY}), RejectCode.BAD_SCHEMA, id="body as map"),
    pytest.param(lambda: codec.encode([codec.encode(env_fields()), bytes(64)]), RejectCode.BAD_SCHEMA, id="wire array"),
    pytest.param(lambda: codec.encode(7), RejectCode.BAD_SCHEMA, id="wire int"),
    pytest.param(lambda: wire(codec.encode([1, 2]), BODY), RejectCode.BAD_SCHEMA, id="env encodes an array"),
    pytest.param(lambda: wire(codec.encode("env"), BODY), RejectCode.BAD_SCHEMA, id="env encodes a str"),
    # non-canonical bytes anywhere
    pytest.param(
        lambda: wire(msgpack.packb(dict(reversed(list(env_fields().items()))), use_bin_type=True), BODY),
        RejectCode.NOT_CANONICAL,
        id="signed env with unsorted keys",
    ),
    pytest.param(
        lambda: wire(codec.encode(env_fields()).replace(b"\xa3seq\x02", b"\xa3seq\xcc\x02"), BODY),
        RejectCode.NOT_CANONICAL,
        id="signed env with a non-minimal int",
    ),
    pytest.param(
        lambda: msgpack.packb(
            {"sig": KEY.sign(domain.action_signing_input(codec.encode(env_fields()))), "env": codec.encode(env_fields()), "body": BODY},
            use_bin_type=True,
        ),
        RejectCode.NOT_CANONICAL,
        id="wire map with unsorted keys",
    ),
    pytest.param(lambda: wire(env_fields(), BODY) + b"\x00", RejectCode.NOT_CANONICAL, id="trailing byte"),
    pytest.param(lambda: b"", RejectCode.MALFORMED, id="empty"),
    pytest.param(lambda: wire(env_fields(), BODY)[:-1], RejectCode.MALFORMED, id="truncated"),
]


@pytest.mark.parametrize(("build", "code"), CASES)
def test_schema_rule(build: Callable[[], bytes], code: RejectCode) -> None:
    rejected(build(), code)


def test_non_minimal_env_case_really_changed_the_bytes() -> None:
    env = codec.encode(env_fields())
    assert b"\xa3seq\x02" in env


def test_check_signature_false_skips_only_the_signature() -> None:
    data = wire(env_fields(), BODY, key=OTHER)
    action = decode_action(data, check_signature=False)
    assert action.env.author == KEY.public_key
    rejected(data, RejectCode.BAD_SIGNATURE)
    with pytest.raises(ProtocolError) as info:
        decode_action(wire(env_fields(seq=0), BODY, key=OTHER), check_signature=False)
    assert info.value.code is RejectCode.BAD_SCHEMA


# ---------------------------------------------------------------------------------------------
# Redaction: the body is detachable, the id is not affected
# ---------------------------------------------------------------------------------------------


def test_action_without_body_decodes_with_same_id() -> None:
    action = decode_action(wire(env_fields(), BODY))
    bare = decode_action(wire(env_fields(), OMIT))
    assert bare.id == action.id
    assert bare.env == action.env and bare.sig == action.sig and bare.env_bytes == action.env_bytes
    assert bare.body is None and bare.body_value() is None
    assert bare.raw != action.raw
    assert action.without_body() == bare
    assert decode_action(action.without_body().raw) == bare


def test_redacted_genesis_is_refused() -> None:
    """decode_action documents that a genesis must carry its body (the charter)."""
    rejected(GENESIS.without_body().raw, RejectCode.BAD_BODY)


# ---------------------------------------------------------------------------------------------
# Mutations of a signed action
# ---------------------------------------------------------------------------------------------

MUTATION_TARGETS = [
    GENESIS,
    sign_action(KEY, coop=COOP, seq=2, prev=GENESIS.id, deps=[DEP_LO, DEP_HI], ts=TS, kind="ride.offer", body=BODY_VALUE),
    sign_action(KEY, coop=COOP, seq=3, prev=PREV, ts=TS, kind="x", body=BODY_VALUE).without_body(),
]


def check_mutant(original: Action, data: bytes) -> bool:
    """decode_action(data) raises ProtocolError, or returns the same id, env and sig with a body that matches."""
    try:
        got = decode_action(data)
    except ProtocolError:
        return False
    assert got.id == original.id
    assert got.env == original.env
    assert got.env_bytes == original.env_bytes
    assert got.sig == original.sig
    if got.body is not None:
        assert domain.body_hash(got.body) == got.env.body_hash
        assert len(got.body) == got.env.body_size
    return True


@pytest.mark.parametrize("index", range(len(MUTATION_TARGETS)))
def test_every_bit_flip_and_deletion_is_rejected_or_harmless(index: int) -> None:
    original = MUTATION_TARGETS[index]
    raw = original.raw
    assert decode_action(raw) == original
    for i in range(len(raw) * 8):
        data = bytearray(raw)
        data[i // 8] ^= 1 << (i % 8)
        check_mutant(original, bytes(data))
    for i in range(len(raw)):
        check_mutant(original, raw[:i] + raw[i + 1 :])
    for i in range(len(raw) + 1):
        for b in (0x00, 0xC0, 0xFF):
            check_mutant(original, raw[:i] + bytes([b]) + raw[i:])


@st.composite
def mutations(draw: st.DrawFn) -> tuple[int, bytes]:
    index = draw(st.integers(0, len(MUTATION_TARGETS) - 1))
    raw = bytearray(MUTATION_TARGETS[index].raw)
    op = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
    pos = draw(st.integers(0, len(raw) - (op != "insert")))
    if op == "flip":
        raw[pos] ^= 1 << draw(st.integers(0, 7))
    elif op == "set":
        raw[pos] = draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    elif op == "insert":
        raw.insert(pos, draw(st.integers(0, 255)))
    else:
        del raw[pos]
    return index, bytes(raw)


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_any_single_byte_mutation_is_rejected_or_harmless(case: tuple[int, bytes]) -> None:
    index, data = case
    assert data != MUTATION_TARGETS[index].raw
    check_mutant(MUTATION_TARGETS[index], data)


# ---------------------------------------------------------------------------------------------
# place()
# ---------------------------------------------------------------------------------------------


def test_place_append() -> None:
    assert place(GENESIS, 0, None, None) is Placement.APPEND
    second = sign_x(seq=2, prev=GENESIS.id)
    assert place(second, 1, GENESIS.id, None) is Placement.APPEND
    member_first = sign_x(OTHER, seq=1)
    assert member_first.prev is None
    assert place(member_first, 0, None, None) is Placement.APPEND


def test_place_pending() -> None:
    assert place(sign_x(seq=3, prev=PREV), 1, GENESIS.id, None) is Placement.PENDING
    assert place(sign_x(seq=2, prev=GENESIS.id), 0, None, None) is Placement.PENDING
    assert place(sign_x(seq=10, prev=PREV), 5, fake_id("head"), None) is Placement.PENDING


def test_place_fork() -> None:
    assert place(sign_x(seq=2, prev=PREV), 1, GENESIS.id, None) is Placement.FORK
    assert place(sign_x(seq=4, prev=fake_id("not head")), 3, fake_id("head"), None) is Placement.FORK


def test_place_equivocation() -> None:
    action = sign_x(seq=2, prev=GENESIS.id)
    assert place(action, 2, fake_id("other at 2"), fake_id("other at 2")) is Placement.EQUIVOCATION
    assert place(action, 7, fake_id("head"), fake_id("other at 2")) is Placement.EQUIVOCATION
    member_second_first = sign_x(OTHER, seq=1)
    assert place(member_second_first, 1, fake_id("first"), fake_id("first")) is Placement.EQUIVOCATION


def test_place_hole_below_head_is_a_broken_store() -> None:
    with pytest.raises(AssertionError):
        place(sign_x(seq=2, prev=GENESIS.id), 3, fake_id("head"), None)


def test_placement_values_are_stable() -> None:
    assert {p.value for p in Placement} == {"append", "pending", "equivocation", "fork"}


# ---------------------------------------------------------------------------------------------
# Equivocation proofs
# ---------------------------------------------------------------------------------------------

FORK_X = sign_x(seq=2, prev=GENESIS.id, body={"n": 1})
FORK_Y = sign_x(seq=2, prev=GENESIS.id, body={"n": 2})
FORK_Z = sign_x(seq=2, prev=PREV, body={"n": 1})  # same seq, another prev: also a fork


def proof_bytes(a: bytes, b: bytes) -> bytes:
    return codec.encode({"a": a, "b": b})


def bogus(fn: Callable[[], object]) -> None:
    with pytest.raises(ValidationError) as info:
        fn()
    assert info.value.code is RejectCode.BOGUS_PROOF, info.value.message


def corrupt_sig(raw: bytes) -> bytes:
    outer = dict(codec.decode(raw))
    sig = bytearray(outer["sig"])
    sig[5] ^= 0x01
    outer["sig"] = bytes(sig)
    return codec.encode(outer)


@pytest.mark.parametrize(("x", "y"), [(FORK_X, FORK_Y), (FORK_X, FORK_Z), (FORK_Y, FORK_Z)])
def test_real_fork_is_a_valid_proof_that_round_trips(x: Action, y: Action) -> None:
    proof = make_proof(x, y)
    assert proof == make_proof(y, x)
    assert proof.a.id < proof.b.id
    assert {proof.a.id, proof.b.id} == {x.id, y.id}
    assert proof.a.body is None and proof.b.body is None
    assert proof.id == domain.proof_id(x.id, y.id) == domain.proof_id(y.id, x.id)
    assert proof.coop == COOP and proof.author == KEY.public_key and proof.seq == 2
    data = proof.encode()
    decoded = decode_proof(data)
    assert decoded == proof
    assert decoded.encode() == data
    assert isinstance(decoded, EquivocationProof)


def test_fork_against_the_genesis_round_trips() -> None:
    """The founder's chain starts with the genesis at seq 1; a second seq-1 action by the founder in
    the same co-op forks it. place() calls that an equivocation and make_proof accepts the pair, so
    the proof it builds must also pass decode_proof, or honest nodes gossip proofs peers refuse."""
    rival = sign_x(seq=1, kind="note.join", body={"role": "founder"})
    assert rival.coop == GENESIS.coop and rival.author == GENESIS.author and rival.seq == GENESIS.seq
    assert place(rival, 1, GENESIS.id, GENESIS.id) is Placement.EQUIVOCATION
    proof = make_proof(GENESIS, rival)
    assert decode_proof(proof.encode()) == proof


def test_genesis_with_its_body_in_a_proof_is_bogus() -> None:
    rival = sign_x(seq=1, kind="note.join", body={"role": "founder"})
    proof = make_proof(GENESIS, rival)
    with_body = {GENESIS.id: GENESIS.raw, rival.id: rival.without_body().raw}
    bogus(lambda: decode_proof(proof_bytes(with_body[proof.a.id], with_body[proof.b.id])))


def test_same_action_twice_is_bogus() -> None:
    bogus(lambda: make_proof(FORK_X, FORK_X))
    bogus(lambda: make_proof(FORK_X, FORK_X.without_body()))
    bare = FORK_X.without_body().raw
    bogus(lambda: decode_proof(proof_bytes(bare, bare)))


def test_different_seq_is_bogus() -> None:
    later = sign_x(seq=3, prev=FORK_X.id)
    bogus(lambda: make_proof(FORK_X, later))
    a, b = sorted((FORK_X.without_body(), later.without_body()), key=lambda act: act.id)
    bogus(lambda: decode_proof(proof_bytes(a.raw, b.raw)))


def test_different_author_is_bogus() -> None:
    theirs = sign_x(OTHER, seq=2, prev=GENESIS.id, body={"n": 1})
    bogus(lambda: make_proof(FORK_X, theirs))
    a, b = sorted((FORK_X.without_body(), theirs.without_body()), key=lambda act: act.id)
    bogus(lambda: decode_proof(proof_bytes(a.raw, b.raw)))


def test_different_coop_is_bogus() -> None:
    elsewhere = sign_x(coop=fake_id("another coop"), seq=2, prev=GENESIS.id, body={"n": 1})
    bogus(lambda: make_proof(FORK_X, elsewhere))
    a, b = sorted((FORK_X.without_body(), elsewhere.without_body()), key=lambda act: act.id)
    bogus(lambda: decode_proof(proof_bytes(a.raw, b.raw)))


def test_two_geneses_by_one_author_are_not_an_equivocation() -> None:
    other_genesis = sign_genesis(KEY, ts=TS, body={"name": "Another Co-op"})
    assert other_genesis.id != GENESIS.id and other_genesis.seq == GENESIS.seq == 1
    bogus(lambda: make_proof(GENESIS, other_genesis))


@pytest.mark.parametrize("which", ["a", "b"])
def test_proof_with_one_corrupted_signature_is_bogus(which: str) -> None:
    proof = make_proof(FORK_X, FORK_Y)
    a, b = proof.a.raw, proof.b.raw
    if which == "a":
        a = corrupt_sig(a)
    else:
        b = corrupt_sig(b)
    assert decode_proof(proof_bytes(proof.a.raw, proof.b.raw)) == proof  # the uncorrupted control
    bogus(lambda: decode_proof(proof_bytes(a, b)))


def test_proof_with_bodies_is_bogus() -> None:
    x, y = sorted((FORK_X, FORK_Y), key=lambda act: act.id)
    bogus(lambda: decode_proof(proof_bytes(x.raw, y.raw)))
    bogus(lambda: decode_proof(proof_bytes(x.without_body().raw, y.raw)))
    bogus(lambda: decode_proof(proof_bytes(x.raw, y.without_body().raw)))


def test_proof_in_wrong_order_is_bogus() -> None:
    proof = make_proof(FORK_X, FORK_Y)
    bogus(lambda: decode_proof(proof_bytes(proof.b.raw, proof.a.raw)))


def test_malformed_proofs() -> None:
    proof = make_proof(FORK_X, FORK_Y)
    bogus(lambda: decode_proof(codec.encode({"a": proof.a.raw})))
    bogus(lambda: decode_proof(codec.encode({"a": proof.a.raw, "c": proof.b.raw})))
    bogus(lambda: decode_proof(codec.encode({"a": proof.a.raw, "b": "text"})))
    bogus(lambda: decode_proof(codec.encode([proof.a.raw, proof.b.raw])))
    bogus(lambda: decode_proof(codec.encode({"a": b"", "b": proof.b.raw})))
    with pytest.raises(DecodeError) as info:
        decode_proof(msgpack.packb({"b": proof.b.raw, "a": proof.a.raw}, use_bin_type=True))
    assert info.value.code is RejectCode.NOT_CANONICAL
    with pytest.raises(DecodeError) as info:
        decode_proof(codec.encode({"a": proof.a.raw, "b": proof.b.raw, "c": b""}))
    assert info.value.code is RejectCode.TOO_LARGE  # the proof map allows 2 entries
    with pytest.raises(DecodeError):
        decode_proof(proof.encode() + b"\x00")


def test_bit_flips_across_a_proof_are_rejected_or_harmless() -> None:
    proof = make_proof(FORK_X, FORK_Y)
    data = proof.encode()
    for i in range(len(data)):
        mutated = bytearray(data)
        mutated[i] ^= 1 << (i % 8)  # one bit in every byte, cycling through the bit positions
        try:
            got = decode_proof(bytes(mutated))
        except ProtocolError:
            continue
        assert got == proof


# ---- the decoder's fast paths agree with the general path -----------------------------------------

_ENV_FIELDS = ("author", "body_hash", "body_size", "coop", "deps", "kind", "prev", "seq", "ts", "v")
_odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=40),
    st.text(max_size=8),
    st.lists(st.one_of(st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1), st.lists(st.none(), max_size=1)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.none(), max_size=2),
)


def _verdict(data: bytes) -> tuple[str, ...]:
    try:
        a = decode_action(data, check_signature=False)
    except ProtocolError as e:
        return ("error", e.code.value)
    return ("ok", a.id.hex(), repr(a.env))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.data(),
    st.permutations(_ENV_FIELDS),
    st.sets(st.sampled_from(_ENV_FIELDS), max_size=3),
    st.booleans(),
    st.permutations(["body", "env", "sig"]),
)
def test_the_fast_decoding_paths_give_the_general_paths_verdict(
    data: st.DataObject, order: list[str], odd: set[str], with_body: bool, outer_order: list[str]
) -> None:
    """Real envelopes with some fields replaced by values of any type, keys in any order, as
    any encoding: decode_action must answer exactly as it does with its fast paths turned off."""
    key = SigningKey.from_seed(bytes(32))
    good = sign_action(
        key,
        coop=fake_id("coop"),
        seq=3,
        prev=fake_id("prev"),
        deps=[fake_id("d1"), fake_id("d2")],
        ts=1_700_000_000_000,
        kind="ride.offer",
        body={"seats": 2},
    )
    env = dict(codec.decode(good.env_bytes))  # type: ignore[arg-type]
    for k in odd:
        env[k] = data.draw(_odd_values)
    canonical_order = data.draw(st.booleans())
    env_map = {k: env[k] for k in (sorted(env) if canonical_order else order)}
    env_bytes = msgpack.packb(env_map, use_bin_type=True)
    outer = {"env": env_bytes, "sig": good.sig}
    if with_body:
        outer["body"] = good.body
    keys = sorted(outer) if data.draw(st.booleans()) else [k for k in outer_order if k in outer]
    raw = msgpack.packb({k: outer[k] for k in keys}, use_bin_type=True)
    fast, general = _both_paths(raw)
    assert fast == general


def _both_paths(raw: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    import protocol.action as action_module

    fast = _verdict(raw)
    saved = action_module._plain_outer, action_module._plain_env
    action_module._plain_outer, action_module._plain_env = (lambda d, lim: None), (lambda e: None)
    try:
        return fast, _verdict(raw)
    finally:
        action_module._plain_outer, action_module._plain_env = saved


@pytest.mark.parametrize(
    "field, value",
    [
        ("ts", 2**63),
        ("seq", 2**64 - 1),
        ("body_size", 2**63),
        ("v", 2**63),
        ("ts", 1.5),
        ("deps", [2**63]),
        ("deps", [[b"x"]]),
        ("deps", [1.0]),
        ("kind", {"a": None}),
        ("prev", ["nested"]),
        ("author", 7),
    ],
)
def test_the_fast_decoding_paths_refuse_what_the_general_walk_refuses(field: str, value: object) -> None:
    key = SigningKey.from_seed(bytes(32))
    good = sign_action(key, coop=fake_id("coop"), seq=3, prev=fake_id("prev"), ts=1_700_000_000_000, kind="ride.offer", body={})
    env = dict(codec.decode(good.env_bytes))  # type: ignore[arg-type]
    env[field] = value
    raw = msgpack.packb({"env": msgpack.packb(env, use_bin_type=True), "sig": good.sig}, use_bin_type=True)
    fast, general = _both_paths(raw)
    assert fast == general and fast[0] == "error"


def test_peek_reads_id_author_and_seq_without_validating() -> None:
    from protocol.action import peek

    key = SigningKey.from_seed(bytes(32))
    a = sign_action(key, coop=fake_id("coop"), seq=4, prev=fake_id("prev"), ts=1_700_000_000_000, kind="ride.offer", body={})
    assert peek(a.raw) == (a.id, a.author, 4)
    # the same envelope framed non-canonically (keys out of order) still names the same action
    reframed = msgpack.packb({"sig": a.sig, "env": a.env_bytes}, use_bin_type=True)
    assert peek(reframed) == (a.id, a.author, 4)
    for junk in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"env": 5}), msgpack.packb({"env": b"\x93"}), b"\xff" * 70_000):
        assert peek(junk) is None


def test_actions_survive_the_trip_from_a_verify_worker() -> None:
    """Actions cross from worker processes by pickle, their parts sent as places in ``raw``."""
    import pickle

    key = SigningKey.from_seed(bytes(32))
    a = sign_action(key, coop=fake_id("coop"), seq=2, prev=fake_id("prev"), ts=1_700_000_000_000, kind="ride.offer", body={"n": 1})
    g = sign_genesis(key, ts=1_700_000_000_000, body={"name": "x"})
    # an action whose parts are not all inside its raw bytes still travels whole
    odd = Action(a.id, a.env, a.env_bytes, a.sig, b"\x80", a.without_body().raw)
    for x in (a, a.without_body(), g, decode_action(a.raw), odd):
        y = pickle.loads(pickle.dumps(x, protocol=5))
        assert (y.id, y.env, y.env_bytes, y.sig, y.body, y.raw) == (x.id, x.env, x.env_bytes, x.sig, x.body, x.raw)
    blob = pickle.dumps(a)
    assert blob.count(a.env_bytes) == blob.count(a.sig) == 1  # inside raw, and not sent again
