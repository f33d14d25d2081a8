#!/usr/bin/env python3
"""Write coopnet's peer-protocol test vectors (tests/vectors/peer.json).

Deterministic: node keys come from fixed seeds (``bytes([0x31 + i]) * 32``), head, author and
proof ids are SHA-256 of fixed labels, every timestamp is a constant, nothing reads a clock or a
random source, and JSON is written with a fixed layout. Running this script twice writes
byte-identical files; tests/test_peer_protocol.py re-runs it and compares.

What the vectors pin (docs/PROTOCOL.md section 10):

- ``requests``: the signing input and headers of a signed peer request, the same request with one
  field changed at a time (each MUST be refused with the stated code), and a replay sequence;
- ``records``: signed node records, and records that MUST be refused;
- ``fingerprints`` / ``proof_fingerprints``: the range fingerprints of a few head lists;
- ``reconcile``: whole reconciliations, every request and reply as bytes, with what the initiator
  derives from them (wants, probes, proof wants);
- ``messages``: fetch, push, counts, announce and co-op list encodings.

The expected codes of the invalid requests are written out by hand from the specification; the
reconciliation exchanges are produced by running the reference initiator against the reference
responder, and tests/test_peer_protocol.py checks them against the rules of section 10.4.

Usage: python scripts/make_peer_vectors.py [--out DIR]   (default: tests/vectors next to this script)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from make_vectors import tagged, write  # noqa: E402  (the same JSON forms for every vector file)

from protocol import codec  # noqa: E402
from protocol.action import sign_action, sign_genesis  # noqa: E402
from protocol.chain import make_proof  # noqa: E402
from protocol.ids import IdKind, format_id  # noqa: E402
from protocol.keys import SigningKey  # noqa: E402
from protocol.messages import (  # noqa: E402
    Announce,
    FetchReply,
    FetchRequest,
    Head,
    PeerPush,
    Want,
    decode_reconcile_reply,
    decode_reconcile_request,
    encode_announce,
    encode_coop_list,
    encode_counts,
    encode_fetch_reply,
    encode_fetch_request,
    encode_push,
    encode_reconcile_reply,
    encode_reconcile_request,
)
from protocol.peer import NODE_RECORD, PEER_REQUEST, request_signing_input, sign_node_record, sign_request  # noqa: E402
from protocol.reconcile import PROOFS_FP, RECONCILE_FP, HeadSet, Reconciliation, fingerprint, proofs_fingerprint, respond  # noqa: E402

GENERATOR = "scripts/make_peer_vectors.py"
TS = 1_700_000_000_000
WINDOW_MS = 60_000


# --------------------------------------------------------------------------------------------
# Helpers


def node_seed(i: int) -> bytes:
    return bytes([0x31 + i]) * 32


def node_key(i: int) -> SigningKey:
    return SigningKey(node_seed(i))


def node_text(key: SigningKey | bytes) -> str:
    return format_id(IdKind.NODE, key.public_key if isinstance(key, SigningKey) else key)


def label(*parts: object) -> bytes:
    return hashlib.sha256(("coopnet-peer-vector:" + ":".join(str(p) for p in parts)).encode()).digest()


def author(i: int) -> bytes:
    return label("author", i)


def head_id(i: int, seq: int, variant: str = "") -> bytes:
    return label("head", i, seq, variant)


def proof_id(i: int) -> bytes:
    return label("proof", i)


def heads_json(heads: list[Head]) -> list[list[Any]]:
    return [[h.author.hex(), h.seq, h.head.hex()] for h in heads]


# --------------------------------------------------------------------------------------------
# Signed requests


def request_vectors() -> dict[str, Any]:
    sender, receiver, other = node_key(0), node_key(1), node_key(2)
    method, path = "POST", "/peer/v1/fetch?after=act_x%2Fy&limit=5"
    body = encode_fetch_request(FetchRequest(label("coop", 0), (Want(author(0), 1, 3),), ()))
    headers = sign_request(sender, method=method, path=path, body=body, ts=TS, receiver=receiver.public_key)
    signed_map = {
        "body": hashlib.sha256(body).digest(),
        "from": sender.public_key,
        "method": method,
        "path": path,
        "to": receiver.public_key,
        "ts": TS,
    }
    signing_input = request_signing_input(
        method=method, path=path, body=body, ts=TS, sender=sender.public_key, receiver=receiver.public_key
    )
    assert signing_input == PEER_REQUEST + codec.encode(signed_map)

    def case(**kw: Any) -> dict[str, Any]:
        """The base request as the receiver sees it, with some fields replaced."""
        c: dict[str, Any] = {
            "method": method,
            "path": path,
            "body": body.hex(),
            "receiver": node_text(receiver),
            "now": TS,
            "headers": dict(headers),
        }
        c.update(kw)
        return c

    def resigned(**kw: Any) -> dict[str, str]:
        args: dict[str, Any] = {"method": method, "path": path, "body": body, "ts": TS, "receiver": receiver.public_key}
        key = kw.pop("key", sender)
        args.update(kw)
        return sign_request(key, **args)

    empty_headers = sign_request(sender, method="POST", path="/peer/v1/coops", body=b"", ts=TS, receiver=receiver.public_key)
    valid = [
        {
            "name": "signed fetch request with a query string",
            "sender_seed": node_seed(0).hex(),
            "sender": node_text(sender),
            "receiver_seed": node_seed(1).hex(),
            "receiver": node_text(receiver),
            "method": method,
            "path": path,
            "body": body.hex(),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "ts": TS,
            "now": TS,
            "signed_map": tagged(signed_map),
            "signing_input": signing_input.hex(),
            "headers": headers,
        },
        {
            "name": "empty body (co-op list request)",
            "sender_seed": node_seed(0).hex(),
            "sender": node_text(sender),
            "receiver_seed": node_seed(1).hex(),
            "receiver": node_text(receiver),
            "method": "POST",
            "path": "/peer/v1/coops",
            "body": "",
            "body_sha256": hashlib.sha256(b"").hexdigest(),
            "ts": TS,
            "now": TS,
            "signed_map": tagged(
                {
                    "body": hashlib.sha256(b"").digest(),
                    "from": sender.public_key,
                    "method": "POST",
                    "path": "/peer/v1/coops",
                    "to": receiver.public_key,
                    "ts": TS,
                }
            ),
            "signing_input": request_signing_input(
                method="POST", path="/peer/v1/coops", body=b"", ts=TS, sender=sender.public_key, receiver=receiver.public_key
            ).hex(),
            "headers": empty_headers,
        },
    ]
    accepted = [
        {"name": "receiver clock equal to ts", **case()},
        {"name": "receiver clock 60000 ms after ts (edge of the window)", **case(now=TS + WINDOW_MS)},
        {"name": "receiver clock 60000 ms before ts (edge of the window)", **case(now=TS - WINDOW_MS)},
        {"name": "method given in lower case by the HTTP layer (signed upper case)", **case(method="post")},
        {"name": "ts equal to the receiver's start (not_before)", **case(now=TS + 5000, not_before=TS)},
    ]

    def without(name: str) -> dict[str, str]:
        h = dict(headers)
        del h[name]
        return h

    def changed(name: str, value: str) -> dict[str, str]:
        h = dict(headers)
        h[name] = value
        return h

    flipped = bytearray(bytes.fromhex(headers["Coopnet-Sig"]))
    flipped[40] ^= 0x01
    invalid = [
        {"name": "missing Coopnet-From", **case(headers=without("Coopnet-From")), "code": "unauthenticated"},
        {"name": "missing Coopnet-To", **case(headers=without("Coopnet-To")), "code": "unauthenticated"},
        {"name": "missing Coopnet-Ts", **case(headers=without("Coopnet-Ts")), "code": "unauthenticated"},
        {"name": "missing Coopnet-Sig", **case(headers=without("Coopnet-Sig")), "code": "unauthenticated"},
        {"name": "no headers at all", **case(headers={}), "code": "unauthenticated"},
        {
            "name": "Coopnet-From is a member id, not a node id",
            **case(headers=changed("Coopnet-From", format_id(IdKind.MEMBER, sender.public_key))),
            "code": "unauthenticated",
        },
        {"name": "Coopnet-Ts negative", **case(headers=changed("Coopnet-Ts", "-1")), "code": "unauthenticated"},
        {"name": "Coopnet-Ts with a decimal point", **case(headers=changed("Coopnet-Ts", f"{TS}.0")), "code": "unauthenticated"},
        {"name": "Coopnet-Ts of 20 digits", **case(headers=changed("Coopnet-Ts", "1" * 20)), "code": "unauthenticated"},
        {
            "name": "Coopnet-Sig of 126 hex digits",
            **case(headers=changed("Coopnet-Sig", headers["Coopnet-Sig"][:126])),
            "code": "unauthenticated",
        },
        {"name": "Coopnet-Sig not hex", **case(headers=changed("Coopnet-Sig", "zz" * 64)), "code": "unauthenticated"},
        {"name": "addressed to another node", **case(receiver=node_text(other)), "code": "misaddressed"},
        {"name": "receiver clock 60001 ms after ts", **case(now=TS + WINDOW_MS + 1), "code": "stale_request"},
        {"name": "receiver clock 60001 ms before ts", **case(now=TS - WINDOW_MS - 1), "code": "stale_request"},
        {
            "name": "signed 1 ms before the receiver started (not_before), inside the window",
            **case(now=TS + 5000, not_before=TS + 1),
            "code": "stale_request",
        },
        {"name": "method changed (GET)", **case(method="GET"), "code": "bad_signature"},
        {"name": "path changed", **case(path="/peer/v1/push?after=act_x%2Fy&limit=5"), "code": "bad_signature"},
        {"name": "query string changed", **case(path="/peer/v1/fetch?after=act_x%2Fy&limit=6"), "code": "bad_signature"},
        {"name": "query string dropped", **case(path="/peer/v1/fetch"), "code": "bad_signature"},
        {"name": "body changed (one byte)", **case(body=(body[:-1] + bytes([body[-1] ^ 1])).hex()), "code": "bad_signature"},
        {"name": "body empty", **case(body=""), "code": "bad_signature"},
        {"name": "Coopnet-Ts changed by 1 ms", **case(headers=changed("Coopnet-Ts", str(TS + 1))), "code": "bad_signature"},
        {
            "name": "Coopnet-From changed to another node",
            **case(headers=changed("Coopnet-From", node_text(other))),
            "code": "bad_signature",
        },
        {
            "name": "Coopnet-To rewritten to this node, signed for another",
            **case(headers=resigned(receiver=other.public_key) | {"Coopnet-To": node_text(receiver)}),
            "code": "bad_signature",
        },
        {"name": "signature bit flipped", **case(headers=changed("Coopnet-Sig", flipped.hex())), "code": "bad_signature"},
        {
            "name": "signed by another key than Coopnet-From",
            **case(headers=resigned(key=other) | {"Coopnet-From": node_text(sender)}),
            "code": "bad_signature",
        },
    ]
    replay = {
        "name": "the same signed request twice, then a fresh one",
        "steps": [
            {**case(), "result": "ok"},
            {**case(now=TS + 1000), "result": "replayed"},
            {**case(now=TS + 2000, headers=resigned(ts=TS + 2000)), "result": "ok"},
            {**case(now=TS + WINDOW_MS + 1), "result": "stale_request"},
        ],
    }
    return {"window_ms": WINDOW_MS, "valid": valid, "accepted": accepted, "invalid": invalid, "replay": replay}


# --------------------------------------------------------------------------------------------
# Node records


def record_vectors() -> dict[str, Any]:
    key = node_key(0)
    coops = [label("coop", i) for i in (2, 0, 1)]  # given unsorted: the signer sorts them
    valid = []
    for name, url, fed, cs, all_coops in (
        ("replicates every co-op", "https://node-a.example.org:8470", "example-federation", [], True),
        ("replicates three co-ops", "http://127.0.0.1:8470", "example-federation", coops, False),
    ):
        r = sign_node_record(key, url=url, federation=fed, coops=cs, all_coops=all_coops, ts=TS)
        content = {"all_coops": r.all_coops, "coops": list(r.coops), "federation": r.federation, "node": r.node, "ts": r.ts, "url": r.url}
        valid.append(
            {
                "name": name,
                "seed": node_seed(0).hex(),
                "node": node_text(key),
                "url": r.url,
                "federation": r.federation,
                "coops": [c.hex() for c in r.coops],
                "all_coops": r.all_coops,
                "ts": r.ts,
                "signing_input": (NODE_RECORD + codec.encode(content)).hex(),
                "sig": r.sig.hex(),
                "hex": r.encode().hex(),
                "value": tagged({"record": content, "sig": r.sig}),
            }
        )

    base = {
        "all_coops": False,
        "coops": sorted(coops),
        "federation": "example-federation",
        "node": key.public_key,
        "ts": TS,
        "url": "http://127.0.0.1:8470",
    }

    def signed(content: dict[str, Any], *, sign_as: dict[str, Any] | None = None, outer: dict[str, Any] | None = None) -> str:
        sig = key.sign(NODE_RECORD + codec.encode(content if sign_as is None else sign_as))
        return codec.encode({"record": content, "sig": sig, **(outer or {})}).hex()

    invalid = [
        {"name": "url changed after signing", "hex": signed(base | {"url": "http://127.0.0.1:8471"}, sign_as=base)},
        {"name": "ts changed after signing", "hex": signed(base | {"ts": TS + 1}, sign_as=base)},
        {"name": "a co-op added after signing", "hex": signed(base | {"coops": sorted([*coops, label("coop", 3)])}, sign_as=base)},
        {"name": "coops unsorted (signed as sent)", "hex": signed(base | {"coops": coops})},
        {"name": "coops repeated (signed as sent)", "hex": signed(base | {"coops": sorted([*coops, coops[0]])})},
        {"name": "url not http(s) (signed)", "hex": signed(base | {"url": "ftp://127.0.0.1:8470"})},
        {"name": "url of 513 bytes (signed)", "hex": signed(base | {"url": "http://" + "a" * 506})},
        # A node URL is an origin (10.2): nothing after the host and port.
        {"name": "url with a path (signed)", "hex": signed(base | {"url": "http://127.0.0.1:8470/peer"})},
        {"name": "url with the root path / (signed)", "hex": signed(base | {"url": "http://127.0.0.1:8470/"})},
        {"name": "url with a query (signed)", "hex": signed(base | {"url": "http://127.0.0.1:8470?drop=1"})},
        {"name": "url with a fragment (signed)", "hex": signed(base | {"url": "http://127.0.0.1:8470#x"})},
        {"name": "url with user info (signed)", "hex": signed(base | {"url": "http://admin@127.0.0.1:8470"})},
        {"name": "url with port 0 (signed)", "hex": signed(base | {"url": "http://127.0.0.1:0"})},
        {"name": "url with a port with a leading zero (signed)", "hex": signed(base | {"url": "http://127.0.0.1:08470"})},
        {"name": "url host an IPv4 address out of range (signed)", "hex": signed(base | {"url": "http://256.0.0.1:8470"})},
        {"name": "257 co-ops (signed)", "hex": signed(base | {"coops": sorted(label("coop", i) for i in range(257))})},
        {"name": "a co-op id of 31 bytes (signed)", "hex": signed(base | {"coops": [b"\x01" * 31]})},
        # Types are checked before order: comparing a bin with an int is not a crash.
        {"name": "coops mixing a bin and an int (signed)", "hex": signed(base | {"coops": [sorted(coops)[0], 5]})},
        {"name": "coops mixing an int and a bin (signed)", "hex": signed(base | {"coops": [5, sorted(coops)[0]]})},
        {"name": "federation name of 129 bytes (signed)", "hex": signed(base | {"federation": "f" * 129})},
        {"name": "ts negative (signed)", "hex": signed(base | {"ts": -1})},
        {"name": "all_coops an int (signed)", "hex": signed(base | {"all_coops": 1})},
        {"name": "extra field in the record (signed)", "hex": signed(base | {"version": 1})},
        {"name": "missing field in the record (signed)", "hex": signed({k: v for k, v in base.items() if k != "federation"})},
        {"name": "extra field next to record and sig", "hex": signed(base, outer={"ttl": 5})},
        {"name": "node of 31 bytes", "hex": signed(base | {"node": key.public_key[:31]})},
    ]
    return {"valid": valid, "invalid": invalid}


# --------------------------------------------------------------------------------------------
# Reconciliation


def chain_heads(indices: range) -> list[Head]:
    """Author ``i``'s chain ends at seq ``i % 7 + 1``."""
    return [Head(author(i), i % 7 + 1, head_id(i, i % 7 + 1)) for i in indices]


def fingerprint_vectors() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cases = [
        ("no heads", []),
        ("one head", [Head(author(0), 1, head_id(0, 1))]),
        ("three heads in author order", sorted(chain_heads(range(3)), key=lambda h: h.author)),
        ("a seq above 2^32 (8-byte big-endian)", [Head(author(5), 2**32 + 5, head_id(5, 2**32 + 5))]),
    ]
    fps = [{"name": n, "heads": heads_json(hs), "fp": fingerprint(hs).hex()} for n, hs in cases]
    pcases = [("no proofs", []), ("one proof", [proof_id(0)]), ("three proofs in byte order", sorted(proof_id(i) for i in range(3)))]
    pfps = [{"name": n, "ids": [i.hex() for i in ids], "fp": proofs_fingerprint(ids).hex()} for n, ids in pcases]
    return fps, pfps


def exchange(name: str, coop: bytes, a: list[Head], b: list[Head], pa: list[bytes], pb: list[bytes]) -> dict[str, Any]:
    rec = Reconciliation(coop, HeadSet(a), pa)
    mine_b = HeadSet(b)
    rounds = []
    while (req := rec.next_request()) is not None:
        req_bytes = encode_reconcile_request(req)
        got = decode_reconcile_request(req_bytes)
        reply = respond(got, mine_b, pb if got.proofs_fp is not None else ())
        reply_bytes = encode_reconcile_reply(reply)
        rec.receive(decode_reconcile_reply(reply_bytes))
        rounds.append({"request": req_bytes.hex(), "reply": reply_bytes.hex()})
    return {
        "name": name,
        "coop": coop.hex(),
        "initiator": {"heads": heads_json(sorted(a, key=lambda h: h.author)), "proof_ids": sorted(i.hex() for i in pa)},
        "responder": {"heads": heads_json(sorted(b, key=lambda h: h.author)), "proof_ids": sorted(i.hex() for i in pb)},
        "rounds": rounds,
        "wants": [[w.author.hex(), w.first, w.last] for w in sorted(rec.wants.values(), key=lambda w: w.author)],
        "probes": [[p.author.hex(), p.seq, p.head.hex()] for p in sorted(rec.probes, key=lambda p: p.author)],
        "proof_wants": [i.hex() for i in rec.proof_wants],
    }


def reconcile_vectors() -> list[dict[str, Any]]:
    coop = label("coop", 0)
    out = []

    same = chain_heads(range(10))
    out.append(exchange("identical sets: one fingerprint, nothing to do", coop, same, list(same), [proof_id(0)], [proof_id(0)]))

    # A small difference, listed outright: 10 authors each side.
    a = chain_heads(range(10))
    b = list(a)
    b[3] = Head(author(3), a[3].seq + 2, head_id(3, a[3].seq + 2))  # the responder is ahead
    b[6] = Head(author(6), a[6].seq, head_id(6, a[6].seq, "fork"))  # same seq, another head: a fork
    b[8] = Head(author(8), 1, head_id(8, 1))  # the responder is behind: a probe
    del b[9]  # only the initiator has author 9: the responder is behind, nothing to ask
    b.append(Head(author(10), 4, head_id(10, 4)))  # only the responder has author 10
    out.append(exchange("small difference: listed in one round", coop, a, b, [proof_id(0)], [proof_id(0), proof_id(1)]))

    out.append(exchange("empty initiator against 40 heads: listed although above 32", coop, [], chain_heads(range(40)), [], []))

    a = chain_heads(range(200))
    b = list(a)
    b[17] = Head(author(17), a[17].seq + 5, head_id(17, a[17].seq + 5))  # the responder is ahead
    b[101] = Head(author(101), a[101].seq, head_id(101, a[101].seq, "fork"))  # a fork at the same seq
    assert a[150].seq == 4
    b[150] = Head(author(150), 3, head_id(150, 3))  # the responder is behind: a probe
    out.append(exchange("200 heads against 200 with 3 differences: split, then listed", coop, a, b, [], []))
    return out


# --------------------------------------------------------------------------------------------
# Other messages


def message_vectors(records: dict[str, Any]) -> list[dict[str, Any]]:
    founder, member = SigningKey(bytes([0x41]) * 32), SigningKey(bytes([0x42]) * 32)
    genesis = sign_genesis(founder, ts=TS, body={"name": "Peer Vector Co-op"})
    coop = genesis.id
    f2 = sign_action(founder, coop=coop, seq=2, prev=genesis.id, ts=TS + 1, kind="test.note", body={"n": 2})
    m1 = sign_action(member, coop=coop, seq=1, prev=None, deps=(f2.id,), ts=TS + 2, kind="test.note", body={"n": 1})
    m1b = sign_action(member, coop=coop, seq=1, prev=None, ts=TS + 3, kind="test.note", body={"n": "other"})
    proof = make_proof(m1, m1b)

    def msg(name: str, kind: str, data: bytes, value: Any) -> dict[str, Any]:
        assert codec.encode(value) == data
        return {"name": name, "kind": kind, "hex": data.hex(), "value": tagged(value)}

    fetch_req = FetchRequest(coop, (Want(founder.public_key, 1, 2), Want(member.public_key, 1, 1)), (proof.id,))
    fetch_reply = FetchReply((genesis.raw, f2.raw, m1.raw), (proof.encode(),), False)
    cut_reply = FetchReply((genesis.raw,), (), True)
    push = PeerPush((m1.raw,), (proof.encode(),))
    counts = {"accepted": 1, "known": 0, "pending": 0, "rejected": 0}
    rec_a = bytes.fromhex(records["valid"][0]["hex"])
    rec_b = sign_node_record(
        node_key(1), url="http://127.0.0.1:8471", federation="example-federation", coops=[], all_coops=True, ts=TS
    ).encode()
    return [
        msg(
            "fetch request: the founder's chain 1..2, a member's seq 1, one proof",
            "fetch_request",
            encode_fetch_request(fetch_req),
            {"coop": coop, "proofs": [proof.id], "wants": [[founder.public_key, 1, 2], [member.public_key, 1, 1]]},
        ),
        msg(
            "fetch reply: the founder's chain first, then the member's action, and the proof",
            "fetch_reply",
            encode_fetch_reply(fetch_reply),
            {"actions": [genesis.raw, f2.raw, m1.raw], "more": False, "proofs": [proof.encode()]},
        ),
        msg(
            "fetch reply cut after one action (more)",
            "fetch_reply",
            encode_fetch_reply(cut_reply),
            {"actions": [genesis.raw], "more": True, "proofs": []},
        ),
        msg("push: one action and one proof", "push", encode_push(push), {"actions": [m1.raw], "proofs": [proof.encode()]}),
        msg("push reply: counts", "counts", encode_counts(counts), counts),
        msg(
            "announce: the sender's record and one known peer's",
            "announce",
            encode_announce(Announce(rec_a, (rec_b,))),
            {"peers": [rec_b], "record": rec_a},
        ),
        msg("co-op list", "coop_list", encode_coop_list(sorted([coop, label("coop", 0)])), {"coops": sorted([coop, label("coop", 0)])}),
    ]


# --------------------------------------------------------------------------------------------


def peer_vectors() -> dict[str, Any]:
    records = record_vectors()
    fps, pfps = fingerprint_vectors()
    return {
        "description": (
            "Peer protocol vectors (docs/PROTOCOL.md section 10). requests: a signed request (signing input, headers), "
            "'accepted' variants that MUST verify, 'invalid' variants that MUST be refused with 'code' (a fresh replay "
            "memory per vector, window_ms 60000, and the receiver's start 'not_before' where given, else 0), and a "
            "replay sequence run against one memory. records: signed node "
            "records that MUST decode to the stated fields, and records that MUST be refused. fingerprints: range and "
            "proof-set fingerprints. reconcile: complete exchanges (each round's request and reply bytes) with the "
            "initiator's resulting wants, probes and proof wants. messages: fetch, push, counts, announce and co-op "
            "list encodings with their values in tagged JSON."
        ),
        "generator": GENERATOR,
        "nodes": [
            {"seed": node_seed(i).hex(), "public_key": node_key(i).public_key.hex(), "node_id": node_text(node_key(i))} for i in range(3)
        ],
        "tags": {
            "PEER_REQUEST": PEER_REQUEST.hex(),
            "NODE_RECORD": NODE_RECORD.hex(),
            "RECONCILE_FP": RECONCILE_FP.hex(),
            "PROOFS_FP": PROOFS_FP.hex(),
        },
        "requests": request_vectors(),
        "records": records,
        "fingerprints": fps,
        "proof_fingerprints": pfps,
        "reconcile": reconcile_vectors(),
        "messages": message_vectors(records),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "vectors")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write(out, "peer.json", peer_vectors())


if __name__ == "__main__":
    main()
