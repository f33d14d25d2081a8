"""protocol/archive.py: the co-op archive format (docs/PROTOCOL.md section 11), pure, no I/O.

A co-op is built from deterministic keys (chains with deps across authors, and one equivocation),
written, and read back whole and in pieces; then every kind of damage is made to a copy, with its
digest recomputed where the damage would otherwise only be caught there, and the reader must
name the reason.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol import Action, EquivocationProof, codec, make_proof, sign_action
from protocol.archive import (
    FORMAT,
    MAGIC,
    MAX_HEADER_BYTES,
    REASONS,
    ArchiveError,
    ArchiveHeader,
    ArchiveReader,
    archive_order,
    encode_archive,
    read_archive,
)
from tests.conftest import make_genesis, member_key

TS = 1_700_000_000_000


@dataclass
class Coop:
    genesis: Action
    actions: list[Action]  # every action, genesis included, in creation order (a causal order)
    proofs: list[EquivocationProof]
    other: Action  # the genesis of another co-op, and one of its actions
    stranger: Action

    def archive(self) -> bytes:
        return b"".join(encode_archive(self.genesis, self.actions, self.proofs))


def build(seed: int = 7, members: int = 5, steps: int = 60) -> Coop:
    """A co-op whose members extend their chains naming recent actions of others as deps."""
    rng = random.Random(seed)
    genesis = make_genesis(member_key(100), name="Archive Co-op")
    keys = [member_key(100)] + [member_key(101 + i) for i in range(members - 1)]
    heads: dict[int, Action | None] = {0: genesis, **{i: None for i in range(1, members)}}
    actions = [genesis]
    for step in range(steps):
        i = rng.randrange(members)
        prev = heads[i]
        seen = sorted({a.id for a in rng.sample(actions, k=min(len(actions), rng.randint(0, 3)))})
        a = sign_action(
            keys[i],
            coop=genesis.id,
            seq=prev.seq + 1 if prev else 1,
            prev=prev.id if prev else None,
            deps=seen,
            ts=TS + step,
            kind="test.note",
            body={"step": step},
        )
        heads[i] = a
        actions.append(a)
    # The founder equivocates: a second action at the seq of their last one.
    last = heads[0]
    assert last is not None
    twin = sign_action(keys[0], coop=genesis.id, seq=last.seq, prev=last.prev, deps=(), ts=TS, kind="test.note", body={"twin": True})
    other = make_genesis(member_key(200), name="Other")
    stranger = sign_action(member_key(201), coop=other.id, seq=1, prev=None, ts=TS, kind="test.note", body={})
    return Coop(genesis, actions, [make_proof(last, twin)], other, stranger)


COOP = build()


def frames(header: ArchiveHeader | bytes, raws: Sequence[bytes], proofs: Sequence[bytes] = (), *, digest: bytes | None = None) -> bytes:
    """An archive assembled by hand, with its digest computed unless given."""
    head = header.encode() if isinstance(header, ArchiveHeader) else header
    body = MAGIC + b"".join(len(x).to_bytes(4, "big") + x for x in [head, *raws, *proofs])
    return body + (digest if digest is not None else hashlib.sha256(body).digest())


def reason(data: bytes, chunk: int | None = None) -> str:
    reader = ArchiveReader()
    with pytest.raises(ArchiveError) as e:
        step = chunk or len(data) or 1
        for i in range(0, max(len(data), 1), step):
            reader.feed(data[i : i + step])
        reader.close()
    return e.value.reason


# ---- writing and reading --------------------------------------------------------------------------


def test_round_trip_keeps_every_action_and_proof() -> None:
    actions, proofs, summary = read_archive([COOP.archive()])
    assert {a.id for a in actions} == {a.id for a in COOP.actions}
    assert [p.id for p in proofs] == [p.id for p in COOP.proofs]
    assert summary.header == ArchiveHeader(COOP.genesis.id, len(COOP.actions), 1)
    assert summary.authors == 5 and summary.size == len(COOP.archive())
    assert summary.digest == hashlib.sha256(COOP.archive()[:-32]).digest()


def test_order_is_causal_and_deterministic() -> None:
    actions, _, _ = read_archive([COOP.archive()])
    assert actions[0] == COOP.genesis
    pos = {a.id: i for i, a in enumerate(actions)}
    for a in actions[1:]:
        assert a.prev is None or pos[a.prev] < pos[a.id]
        assert all(pos[d] < pos[a.id] for d in a.env.deps)
    shuffled = COOP.actions[:]
    random.Random(1).shuffle(shuffled)
    assert b"".join(encode_archive(COOP.genesis, shuffled, COOP.proofs * 2)) == COOP.archive()  # same bytes, proofs once


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_reading_in_pieces_gives_the_same_items(chunk: int) -> None:
    data = COOP.archive()
    reader = ArchiveReader()
    items = []
    for i in range(0, len(data), chunk):
        items += reader.feed(data[i : i + chunk])
    summary = reader.close()
    assert isinstance(items[0], ArchiveHeader) and items[0] == summary.header
    assert [x.id for x in items[1:]] == [a.id for a in archive_order(COOP.genesis, COOP.actions)] + [COOP.proofs[0].id]


def test_a_genesis_alone_is_an_archive() -> None:
    actions, proofs, _ = read_archive([b"".join(encode_archive(COOP.genesis, [], []))])
    assert actions == [COOP.genesis] and proofs == []


def test_random_histories_round_trip() -> None:
    for seed in range(8):  # a seeded generator: deterministic, modest
        coop = build(seed=seed, members=1 + seed % 5, steps=5 + 7 * seed)
        actions, _, _ = read_archive([coop.archive()])
        assert {a.id for a in actions} == {a.id for a in coop.actions}


# ---- damage -------------------------------------------------------------------------------------------


def ordered_raws() -> list[bytes]:
    return [a.raw for a in archive_order(COOP.genesis, COOP.actions)]


def header(n: int | None = None, proofs: int = 1) -> ArchiveHeader:
    return ArchiveHeader(COOP.genesis.id, len(COOP.actions) if n is None else n, proofs)


def proof_raws() -> list[bytes]:
    return [p.encode() for p in COOP.proofs]


def test_hand_assembly_matches_the_writer() -> None:
    assert frames(header(), ordered_raws(), proof_raws()) == COOP.archive()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_damage_without_a_new_digest_is_caught() -> None:
    data = COOP.archive()
    assert reason(b"PK\x03\x04" + data) == "not_an_archive"
    assert reason(flip(data, len(data) - 1)) == "bad_digest"
    assert reason(data + b"\x00") == "trailing_bytes"
    for cut in (0, 5, len(MAGIC) + 2, len(data) // 2, len(data) - 32, len(data) - 1):
        assert reason(data[:cut]) == "truncated", cut
    # A byte changed in the middle of an action: its signature or encoding fails first.
    assert reason(flip(data, len(data) // 2)) in ("bad_action", "bad_digest")


def forged(a: Action) -> bytes:
    sig = bytearray(a.sig)
    sig[40] ^= 0x01
    return codec.encode({"body": a.body, "env": a.env_bytes, "sig": bytes(sig)})


def test_damage_with_a_recomputed_digest_is_caught_with_its_reason() -> None:
    raws = ordered_raws()
    proofs = proof_raws()
    cases: dict[str, bytes] = {
        "bad_signature": frames(header(), [raws[0], forged(archive_order(COOP.genesis, COOP.actions)[1]), *raws[2:]], proofs),
        "no_genesis": frames(header(len(raws) - 1), raws[1:], proofs),
        "wrong_coop": frames(header(len(raws) + 1), [*raws, COOP.stranger.raw], proofs),
        "other_genesis": frames(header(len(raws) + 1), [*raws, COOP.other.raw], proofs),
        "duplicate": frames(header(len(raws) + 1), [*raws, raws[-1]], proofs),
        "chain_broken": frames(ArchiveHeader(SMALL[0].id, 2, 0), [SMALL[0].raw, SMALL[2].raw]),
        "swapped": frames(ArchiveHeader(SMALL[0].id, 4, 0), [SMALL[0].raw, SMALL[1].raw, *sorted((SMALL[2].raw, SMALL[3].raw))[::-1]]),
        "bogus_proof": frames(header(), raws, [codec.encode({"a": raws[1], "b": raws[1]})]),
        "proof_elsewhere": frames(header(), raws, [make_proof(COOP.stranger, sign_stranger_twin()).encode()]),
        "proofs_twice": frames(header(proofs=2), raws, proofs * 2),
        "format_2": frames(codec.encode({"actions": len(raws), "coop": COOP.genesis.id, "format": 2, "proofs": 1}), raws, proofs),
        "no_actions": frames(codec.encode({"actions": 0, "coop": COOP.genesis.id, "format": FORMAT, "proofs": 0}), [], []),
        "header_extra_key": frames(
            codec.encode({"actions": len(raws), "coop": COOP.genesis.id, "extra": 1, "format": FORMAT, "proofs": 1}), raws, proofs
        ),
        "header_not_canonical": frames(b"\x84" + header().encode()[1:][::-1], raws, proofs),
    }
    expected = {
        "bad_signature": "bad_action",
        "no_genesis": "no_genesis",
        "wrong_coop": "wrong_coop",
        "other_genesis": "wrong_coop",
        "duplicate": "duplicate",
        "chain_broken": "chain_broken",
        "swapped": "out_of_order",
        "bogus_proof": "bad_proof",
        "proof_elsewhere": "wrong_coop",
        "proofs_twice": "out_of_order",
        "format_2": "bad_header",
        "no_actions": "bad_header",
        "header_extra_key": "bad_header",
        "header_not_canonical": "bad_header",
    }
    for name, data in cases.items():
        assert reason(data) == expected[name], name


def small() -> list[Action]:
    """A genesis; x's seq 1 and 2; y's seq 1 (no deps): x2 and y1 both at height 2 and 1."""
    g = make_genesis(member_key(400), name="Small")
    x1 = sign_action(member_key(401), coop=g.id, seq=1, prev=None, ts=TS, kind="test.note", body={})
    x2 = sign_action(member_key(401), coop=g.id, seq=2, prev=x1.id, ts=TS, kind="test.note", body={})
    y1 = sign_action(member_key(402), coop=g.id, seq=1, prev=None, ts=TS, kind="test.note", body={})
    return [g, x1, x2, y1]


SMALL = small()


def sign_stranger_twin() -> Action:
    return sign_action(member_key(201), coop=COOP.other.id, seq=1, prev=None, ts=TS, kind="test.note", body={"twin": 1})


def test_a_dep_must_come_before_the_action_that_names_it() -> None:
    g = make_genesis(member_key(300), name="Deps")
    x = sign_action(member_key(301), coop=g.id, seq=1, prev=None, ts=TS, kind="test.note", body={})
    y = sign_action(member_key(302), coop=g.id, seq=1, prev=None, deps=[x.id], ts=TS, kind="test.note", body={})
    good = frames(ArchiveHeader(g.id, 3, 0), [g.raw, x.raw, y.raw])
    assert good == b"".join(encode_archive(g, [y, x], []))
    assert reason(frames(ArchiveHeader(g.id, 3, 0), [g.raw, y.raw, x.raw])) == "out_of_order"


def test_declared_sizes_are_bounded_before_anything_is_buffered() -> None:
    big = MAGIC + (10**6).to_bytes(4, "big")
    assert reason(big) == "too_large"
    huge_action = frames(header(), [COOP.genesis.raw])[: len(MAGIC)]
    head = header().encode()
    data = huge_action + len(head).to_bytes(4, "big") + head + (70_000).to_bytes(4, "big")
    assert reason(data) == "too_large"
    assert reason(MAGIC + (2**32 - 1).to_bytes(4, "big")) == "too_large"


def test_every_reason_the_reader_gives_is_listed() -> None:
    source = (Path(__file__).resolve().parent.parent / "protocol" / "archive.py").read_text()
    used = set(re.findall(r'ArchiveError\(\s*"([a-z_]+)"', source))
    assert used == set(REASONS)


def test_protocol_md_section_11_agrees_with_the_code() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 11. Co-op archives") :]
    assert MAGIC.hex() in doc and MAGIC.hex() in section
    flat = " ".join(section.split())
    for reason in REASONS:
        assert f"`{reason}`" in section, reason
    assert f"`format` = {FORMAT}" in flat and f"at most {MAX_HEADER_BYTES} bytes" in flat
    head = ArchiveHeader(SMALL[0].id, 4, 0).encode()
    assert head.hex() in "".join(section.split())
