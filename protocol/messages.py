"""Wire formats of request bodies that carry actions (client API now, peer API later).

A submission is the canonical encoding of ``{"actions": [bin, ...]}`` (a batch) or
``{"action": bin}`` (exactly one), each bin being one action's wire bytes. Each action is decoded
and validated on its own, so one bad action does not hide the verdict on the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec
from .errors import DecodeError, RejectCode
from .limits import DecodeLimits


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
