"""coopnet's pure protocol core: encoding, keys, actions, chains.

No I/O, no clock, no randomness: callers pass bytes, seeds and timestamps in, and get values and
bytes out. ``node/`` does everything that touches the outside world.
"""

from .action import GENESIS_KIND, PROTOCOL_VERSION, Action, Envelope, decode_action, sign_action, sign_genesis
from .chain import EquivocationProof, Placement, decode_proof, make_proof, place
from .codec import decode, encode
from .errors import ChainError, DecodeError, ProtocolError, RejectCode, ValidationError
from .ids import IdKind, format_id, parse_id
from .keys import SigningKey, check_public_key, verify
from .limits import ActionLimits, DecodeLimits

__all__ = [
    "GENESIS_KIND",
    "PROTOCOL_VERSION",
    "Action",
    "ActionLimits",
    "ChainError",
    "DecodeError",
    "DecodeLimits",
    "Envelope",
    "EquivocationProof",
    "IdKind",
    "Placement",
    "ProtocolError",
    "RejectCode",
    "SigningKey",
    "ValidationError",
    "check_public_key",
    "decode",
    "decode_action",
    "decode_proof",
    "encode",
    "format_id",
    "make_proof",
    "parse_id",
    "place",
    "sign_action",
    "sign_genesis",
    "verify",
]
