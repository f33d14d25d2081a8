"""One vocabulary of stable reject codes.

Peers and clients match on ``RejectCode`` values, never on message text. The codes carry no
HTTP status: only ``node/statuses.py`` maps a code to a status. Exception tree::

    ProtocolError (code, message)
    ├── DecodeError        bytes are not canonical msgpack within limits
    ├── ValidationError    well-formed bytes that break a schema, size or signature rule
    └── ChainError         an action that does not fit its author's chain
"""

from __future__ import annotations

from enum import StrEnum


class RejectCode(StrEnum):
    # encoding
    MALFORMED = "malformed"  # not decodable at all (truncated, bad UTF-8, wrong framing)
    NOT_CANONICAL = "not_canonical"  # decodable, but not the one canonical encoding
    TOO_LARGE = "too_large"  # a size, length, depth or count limit was exceeded
    # schema
    BAD_SCHEMA = "bad_schema"  # missing/extra field, wrong type, bad value
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_KEY = "bad_key"  # public key encoding rejected (non-canonical or small order)
    BAD_SIGNATURE = "bad_signature"
    BAD_BODY = "bad_body"  # carried body does not match body_hash / body_size
    BAD_ID = "bad_id"  # textual id with the wrong prefix or encoding
    # chain and store context
    CHAIN_GAP = "chain_gap"  # predecessor missing and cannot be held
    CHAIN_CONFLICT = "chain_conflict"  # position already taken by a different action
    UNKNOWN_COOP = "unknown_coop"
    OUT_OF_SCOPE = "out_of_scope"  # a co-op this node does not replicate (its configuration's choice)
    BOGUS_PROOF = "bogus_proof"  # an equivocation proof that proves nothing
    FOREIGN_DEP = "foreign_dep"  # a dep names an action of another co-op: it can never be in this co-op's past
    FROM_THE_FUTURE = "from_the_future"  # stamped further ahead of this node's clock than it allows (not the sender's fault)
    # admission: this node's own policy, never a fault of the action (another node may store it)
    UNKNOWN_AUTHOR = "unknown_author"  # not known in its co-op, and the quarantine is full for it
    QUOTA_EXCEEDED = "quota_exceeded"  # storing it would pass a byte quota of this node
    RATE_LIMITED = "rate_limited"  # the client, author or co-op is over its rate on this node
    BLOCKED = "blocked"  # the author is on this node's block list
    FOUNDING_REFUSED = "founding_refused"  # this node does not take new co-ops from this client


class ProtocolError(ValueError):
    """Base class: every protocol failure has a stable code and a human message."""

    code: RejectCode

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[RejectCode, str]]:
        # Errors cross process boundaries (validation workers): rebuild from code and message.
        return (type(self), (self.code, self.message))


class DecodeError(ProtocolError):
    pass


class ValidationError(ProtocolError):
    pass


class ChainError(ProtocolError):
    pass
