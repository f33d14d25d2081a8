"""How stored things look to people (JSON) and programs (msgpack).

Both forms carry the same fields. Ids are always text (``act_...``). Byte strings that are not
ids (signature, hashes, raw action bytes) are hex or base64 in JSON and bin in msgpack. A body
value is rendered as JSON with one tagged form for bin, ``{"$bin": "<base64>"}``, which
``json_to_value`` turns back into bytes; JSON floats are refused (the protocol has no floats).
"""

from __future__ import annotations

import base64
from typing import Any

from protocol import Action, RejectCode, ValidationError
from protocol.ids import IdKind, format_id

from .store import ChainRow, CoopRow, IngestResult, ProofRow, StoredAction


def value_to_json(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"$bin": base64.b64encode(v).decode("ascii")}
    if isinstance(v, (tuple, list)):
        return [value_to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: value_to_json(x) for k, x in v.items()}
    return v


def json_to_value(v: Any, where: str = "body") -> Any:
    if isinstance(v, float):
        raise ValidationError(RejectCode.BAD_SCHEMA, f"{where}: numbers must be integers (the protocol has no floats)")
    if isinstance(v, list):
        return [json_to_value(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        if set(v) == {"$bin"}:
            try:
                return base64.b64decode(v["$bin"], validate=True)
            except (ValueError, TypeError):
                raise ValidationError(RejectCode.BAD_SCHEMA, f"{where}: $bin must be base64") from None
        return {k: json_to_value(x, f"{where}.{k}") for k, x in v.items()}
    return v


def _bytes(b: bytes, binary: bool, *, b64: bool = False) -> Any:
    if binary:
        return b
    return base64.b64encode(b).decode("ascii") if b64 else b.hex()


def action_view(
    a: Action, *, binary: bool, status: str = "stored", pos: int | None = None, received_at: int | None = None
) -> dict[str, Any]:
    body = a.body_value() if a.body is not None else None
    return {
        "id": format_id(IdKind.ACTION, a.id),
        "coop": format_id(IdKind.COOP, a.coop),
        "author": format_id(IdKind.MEMBER, a.author),
        "seq": a.seq,
        "prev": format_id(IdKind.ACTION, a.prev) if a.prev is not None else None,
        "deps": [format_id(IdKind.ACTION, d) for d in a.env.deps],
        "ts": a.env.ts,
        "kind": a.kind,
        "body": (body if binary else value_to_json(body)) if a.body is not None else None,
        "body_present": a.body is not None,
        "body_hash": _bytes(a.env.body_hash, binary),
        "body_size": a.env.body_size,
        "sig": _bytes(a.sig, binary),
        "status": status,
        "pos": pos,
        "received_at": received_at,
        "raw": _bytes(a.raw, binary, b64=True),
    }


def stored_view(s: StoredAction, *, binary: bool) -> dict[str, Any]:
    return action_view(s.action(), binary=binary, status=s.status, pos=s.pos, received_at=s.received_at)


def coop_view(c: CoopRow) -> dict[str, Any]:
    return {
        "id": format_id(IdKind.COOP, c.id),
        "name": c.name,
        "founder": format_id(IdKind.MEMBER, c.founder),
        "created_ts": c.created_ts,
        "actions": c.actions,
    }


def chain_view(c: ChainRow) -> dict[str, Any]:
    return {
        "author": format_id(IdKind.MEMBER, c.author),
        "seq": c.head_seq,
        "head": format_id(IdKind.ACTION, c.head_id),
        "pending": c.pending,
    }


def proof_view(p: ProofRow, *, binary: bool) -> dict[str, Any]:
    return {
        "id": format_id(IdKind.PROOF, p.id),
        "coop": format_id(IdKind.COOP, p.coop),
        "author": format_id(IdKind.MEMBER, p.author),
        "seq": p.seq,
        "raw": _bytes(p.raw, binary, b64=True),
    }


def result_view(r: IngestResult) -> dict[str, Any]:
    out: dict[str, Any] = {"id": format_id(IdKind.ACTION, r.id) if r.id else None, "status": r.status}
    if r.code is not None:
        out["code"] = r.code.value
    if r.message is not None:
        out["message"] = r.message
    if r.proof is not None:
        out["proof"] = format_id(IdKind.PROOF, r.proof)
    return out
