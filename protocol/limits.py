"""Every protocol limit, named, in one frozen object.

A node may be configured with tighter limits than these defaults, never looser than what the
protocol version allows a peer to rely on: an action within the defaults must be accepted by
every conforming node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds applied while decoding untrusted msgpack."""

    max_bytes: int = 64 * 1024  # whole input
    max_depth: int = 16  # containers nested in containers: a flat map is depth 1, a scalar 0
    max_container_len: int = 1024  # elements of one array or entries of one map
    max_str_bytes: int = 16 * 1024  # UTF-8 bytes of one str
    max_bin_bytes: int = 64 * 1024  # bytes of one bin
    # The msgpack unpacker's own limits, derived once: decode runs for every byte a peer sends.
    unpack_limits: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "unpack_limits",
            {
                "max_str_len": self.max_str_bytes,
                "max_bin_len": self.max_bin_bytes,
                "max_array_len": self.max_container_len,
                "max_map_len": self.max_container_len,
                "max_ext_len": self.max_bin_bytes,
            },
        )


@dataclass(frozen=True, slots=True)
class ActionLimits:
    """Bounds on a signed action (protocol version 1)."""

    max_action_bytes: int = 64 * 1024  # the encoded action, body included
    max_body_bytes: int = 48 * 1024  # the encoded body
    max_deps: int = 32
    max_kind_bytes: int = 64
    body_depth: int = 8  # nesting allowed inside the body value
    body_container_len: int = 1024
    body_str_bytes: int = 16 * 1024


DEFAULT_DECODE_LIMITS = DecodeLimits()
DEFAULT_ACTION_LIMITS = ActionLimits()
