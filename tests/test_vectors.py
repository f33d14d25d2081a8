"""The protocol test vectors (tests/vectors/*.json) checked against this implementation.

The vectors are the interoperability contract of docs/PROTOCOL.md: another implementation runs the
same files through its own codec, verifier and action decoder. The last tests re-run the generator
and require byte-identical files, so the committed vectors cannot drift from scripts/make_vectors.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol import (
    DecodeError,
    IdKind,
    ProtocolError,
    SigningKey,
    ValidationError,
    check_public_key,
    decode,
    decode_action,
    decode_proof,
    domain,
    encode,
    format_id,
    make_proof,
    parse_id,
    sign_action,
    sign_genesis,
    verify,
)
from protocol.keys import SMALL_ORDER_ENCODINGS

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
FILES = ("codec.json", "keys.json", "actions.json", "invalid_actions.json")


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


CODEC = load("codec.json")
KEYS = load("keys.json")
ACTIONS = load("actions.json")
INVALID = load("invalid_actions.json")


def untag(t: dict[str, Any], *, reverse_maps: bool = False) -> Any:
    """Tagged JSON -> Python value (arrays as tuples, maps as dicts)."""
    ((tag, v),) = t.items()
    if tag == "nil":
        assert v is None
        return None
    if tag == "bool":
        assert type(v) is bool
        return v
    if tag == "int":
        assert type(v) is str
        return int(v)
    if tag == "str":
        return v
    if tag == "bin":
        return bytes.fromhex(v)
    if tag == "array":
        return tuple(untag(x, reverse_maps=reverse_maps) for x in v)
    if tag == "map":
        pairs = [(k, untag(x, reverse_maps=reverse_maps)) for k, x in v]
        return dict(reversed(pairs) if reverse_maps else pairs)
    raise AssertionError(f"unknown tag {tag}")


def tag(v: Any) -> dict[str, Any]:
    """Python value as decoded -> tagged JSON; strict about types (a decoded array is a tuple)."""
    if v is None:
        return {"nil": None}
    if type(v) is bool:
        return {"bool": v}
    if type(v) is int:
        return {"int": str(v)}
    if type(v) is str:
        return {"str": v}
    if type(v) is bytes:
        return {"bin": v.hex()}
    if type(v) is tuple:
        return {"array": [tag(x) for x in v]}
    if type(v) is dict:
        return {"map": [[k, tag(x)] for k, x in v.items()]}
    raise AssertionError(f"unexpected decoded type {type(v).__name__}")


def by_name(items: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(item, id=item["name"]) for item in items]


# --- every file ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_file_header_and_unique_names(name: str) -> None:
    data = load(name)
    assert data["generator"] == "scripts/make_vectors.py"
    assert isinstance(data["description"], str) and data["description"]
    for key, items in data.items():
        if isinstance(items, list) and items and isinstance(items[0], dict) and "name" in items[0]:
            names = [i["name"] for i in items]
            assert len(names) == len(set(names)), f"{name}:{key} has duplicate vector names"


# --- codec.json ------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", by_name(CODEC["valid"]))
def test_codec_valid(vec: dict[str, Any]) -> None:
    value = untag(vec["value"])
    data = bytes.fromhex(vec["hex"])
    assert encode(value).hex() == vec["hex"]
    # The encoder sorts map keys itself: insertion order does not matter.
    assert encode(untag(vec["value"], reverse_maps=True)).hex() == vec["hex"]
    decoded = decode(data)
    assert tag(decoded) == vec["value"]


@pytest.mark.parametrize("vec", by_name(CODEC["invalid"]))
def test_codec_invalid(vec: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(vec["hex"]))
    assert info.value.code.value == vec["code"]


def test_codec_covers_every_format_byte_family() -> None:
    firsts = {bytes.fromhex(v["hex"])[0] for v in CODEC["valid"]}
    for b in (
        0xC0,
        0xC2,
        0xC3,
        0xC4,
        0xC5,
        0xCC,
        0xCD,
        0xCE,
        0xCF,
        0xD0,
        0xD1,
        0xD2,
        0xD3,
        0xD9,
        0xDA,
        0xDC,
        0xDE,
        0x00,
        0x80,
        0x90,
        0xA0,
        0xE0,
    ):
        assert b in firsts, f"no valid vector starts with 0x{b:02x}"
    bad = {bytes.fromhex(v["hex"])[:1] for v in CODEC["invalid"]}
    for b in (0xC1, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xDB, 0xDD, 0xDF):
        assert bytes([b]) in bad, f"no invalid vector starts with 0x{b:02x}"


# --- keys.json -------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", KEYS["keys"], ids=lambda v: v["seed"][:8])
def test_key_from_seed(vec: dict[str, Any]) -> None:
    key = SigningKey(bytes.fromhex(vec["seed"]))
    assert key.public_key.hex() == vec["public_key"]
    check_public_key(key.public_key)
    assert format_id(IdKind.MEMBER, key.public_key) == vec["member_id"]
    assert format_id(IdKind.NODE, key.public_key) == vec["node_id"]
    assert parse_id(IdKind.MEMBER, vec["member_id"]) == key.public_key
    assert parse_id(IdKind.NODE, vec["node_id"]) == key.public_key


@pytest.mark.parametrize("vec", by_name(KEYS["signatures"]))
def test_signature_policy(vec: dict[str, Any]) -> None:
    pk, msg, sig = (bytes.fromhex(vec[k]) for k in ("public_key", "message", "signature"))
    assert vec["valid"] is (vec["code"] is None)
    if vec["valid"]:
        verify(pk, msg, sig)
    else:
        with pytest.raises(ValidationError) as info:
            verify(pk, msg, sig)
        assert info.value.code.value == vec["code"]


def test_small_order_list() -> None:
    listed = {bytes.fromhex(v["hex"]) for v in KEYS["small_order"]}
    assert listed == SMALL_ORDER_ENCODINGS
    assert sorted(v["order"] for v in KEYS["small_order"]) == [1, 2, 4, 4, 8, 8, 8, 8]
    for enc in listed:
        with pytest.raises(ValidationError) as info:
            check_public_key(enc)
        assert info.value.code.value == "bad_key"


@pytest.mark.parametrize("vec", KEYS["ids"]["valid"], ids=lambda v: v["text"][:12])
def test_id_text_valid(vec: dict[str, Any]) -> None:
    kind = IdKind(vec["kind"])
    raw = bytes.fromhex(vec["hex"])
    assert format_id(kind, raw) == vec["text"]
    assert parse_id(kind, vec["text"]) == raw


@pytest.mark.parametrize("vec", by_name(KEYS["ids"]["invalid"]))
def test_id_text_invalid(vec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        parse_id(IdKind(vec["kind"]), vec["text"])
    assert info.value.code.value == vec["code"]


# --- actions.json ----------------------------------------------------------------------------


def _opt_id(kind: IdKind, text: str | None) -> bytes | None:
    return None if text is None else parse_id(kind, text)


def _resign(vec: dict[str, Any]) -> bytes:
    """Sign the vector's envelope and body again from its seed; return the wire bytes."""
    if vec["redaction_of"] is not None:
        (original,) = (a for a in ACTIONS["actions"] if a["name"] == vec["redaction_of"])
        return decode_action(_resign(original)).without_body().raw
    env = vec["env"]
    key = SigningKey(bytes.fromhex(vec["seed"]))
    body = untag(vec["body"])
    if env["coop"] is None:
        return sign_genesis(key, ts=env["ts"], body=body).raw
    return sign_action(
        key,
        coop=parse_id(IdKind.COOP, env["coop"]),
        seq=env["seq"],
        prev=_opt_id(IdKind.ACTION, env["prev"]),
        deps=[parse_id(IdKind.ACTION, d) for d in env["deps"]],
        ts=env["ts"],
        kind=env["kind"],
        body=body,
    ).raw


@pytest.mark.parametrize("vec", by_name(ACTIONS["actions"]))
def test_action_vector(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    act = decode_action(raw)
    assert act.raw == raw
    assert format_id(IdKind.ACTION, act.id) == vec["id"]
    assert format_id(IdKind.COOP, act.coop) == vec["coop"]
    assert act.env_bytes.hex() == vec["env_hex"]
    assert domain.action_signing_input(act.env_bytes).hex() == vec["signing_input_hex"]
    assert domain.action_id(act.env_bytes) == parse_id(IdKind.ACTION, vec["id"])
    assert act.sig.hex() == vec["sig_hex"]
    env = vec["env"]
    e = act.env
    assert e.v == env["v"] == 1
    assert e.coop == _opt_id(IdKind.COOP, env["coop"])
    assert e.author.hex() == env["author"]
    assert format_id(IdKind.MEMBER, e.author) == env["author_id"]
    assert SigningKey(bytes.fromhex(vec["seed"])).public_key == e.author
    assert e.seq == env["seq"]
    assert e.prev == _opt_id(IdKind.ACTION, env["prev"])
    assert list(e.deps) == [parse_id(IdKind.ACTION, d) for d in env["deps"]]
    assert e.ts == env["ts"]
    assert e.kind == env["kind"]
    assert e.body_hash.hex() == env["body_hash"] == vec["body_hash_hex"]
    assert e.body_size == env["body_size"]
    if vec["body_hex"] is None:
        assert act.body is None and vec["body"] is None
        assert vec["redaction_of"] is not None
    else:
        assert act.body is not None and act.body.hex() == vec["body_hex"]
        assert domain.body_hash(act.body).hex() == vec["body_hash_hex"]
        assert len(act.body) == env["body_size"]
        assert tag(act.body_value()) == vec["body"]
        assert encode(untag(vec["body"])) == act.body
    # The envelope re-encodes to exactly env_hex from its readable fields.
    readable = {
        "author": e.author,
        "body_hash": e.body_hash,
        "body_size": env["body_size"],
        "coop": e.coop,
        "deps": list(e.deps),
        "kind": env["kind"],
        "prev": e.prev,
        "seq": env["seq"],
        "ts": env["ts"],
        "v": env["v"],
    }
    assert encode(readable).hex() == vec["env_hex"]
    assert _resign(vec) == raw


def test_redaction_keeps_the_id() -> None:
    redacted = [a for a in ACTIONS["actions"] if a["redaction_of"] is not None]
    assert redacted
    for r in redacted:
        (original,) = (a for a in ACTIONS["actions"] if a["name"] == r["redaction_of"])
        assert r["id"] == original["id"] and r["env_hex"] == original["env_hex"] and r["sig_hex"] == original["sig_hex"]
        assert r["hex"] != original["hex"]


@pytest.mark.parametrize("vec", by_name(ACTIONS["proofs"]))
def test_proof_vector(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    proof = decode_proof(raw)
    assert proof.encode() == raw
    assert format_id(IdKind.PROOF, proof.id) == vec["id"]
    assert format_id(IdKind.ACTION, proof.a.id) == vec["a"]
    assert format_id(IdKind.ACTION, proof.b.id) == vec["b"]
    assert proof.a.id < proof.b.id
    assert format_id(IdKind.COOP, proof.coop) == vec["coop"]
    assert format_id(IdKind.MEMBER, proof.author) == vec["author"]
    assert proof.seq == vec["seq"]
    assert domain.proof_id(proof.b.id, proof.a.id) == proof.id
    # Built again from the full actions (with bodies, in either order), the proof is the same bytes.
    full = {a["id"]: decode_action(bytes.fromhex(a["hex"])) for a in ACTIONS["actions"] if a["body_hex"] is not None}
    x, y = full[vec["a"]], full[vec["b"]]
    assert make_proof(y, x).encode() == raw
    assert make_proof(x, y).encode() == raw


# --- invalid_actions.json --------------------------------------------------------------------


@pytest.mark.parametrize("vec", by_name(INVALID["actions"]))
def test_invalid_action(vec: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_action(bytes.fromhex(vec["hex"]))
    assert info.value.code.value == vec["code"]


@pytest.mark.parametrize("vec", by_name(INVALID["proofs"]))
def test_invalid_proof(vec: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_proof(bytes.fromhex(vec["hex"]))
    assert info.value.code.value == vec["code"]


# --- the vectors cannot drift ----------------------------------------------------------------


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_vectors.py"), "--out", str(tmp_path)], check=True, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert set(FILES) <= {p.name for p in VECTORS.glob("*.json")}  # other generators own the rest
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), f"{name} differs: run scripts/make_vectors.py"


def test_protocol_md_worked_example_matches_the_genesis_vector() -> None:
    doc = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    genesis = ACTIONS["actions"][0]
    assert genesis["env"]["kind"] == "coop.genesis"
    # The annotated dump in section 5.8: the hex before each line's annotation, concatenated.
    section = doc[doc.index("### 5.8") :]
    block = section[section.index("```\n") + 4 :]
    block = block[: block.index("```")]
    dumped = "".join(re.split(r"\s{2,}", line.strip())[0].replace(" ", "") for line in block.splitlines() if line.strip())
    assert dumped == genesis["hex"]
    assert genesis["id"] in section and genesis["coop"] in section
    assert genesis["body_hash_hex"] in section and genesis["env"]["author_id"] in section
