"""Canonical msgpack: one value, exactly one encoding.

Theory of operation. The value model is nil, bool, int (signed 64-bit range), str (UTF-8), bin,
array and map with str keys. The canonical encoding of a value is the msgpack encoding that uses
the shortest form for every int and every length, with map keys sorted by their UTF-8 bytes and
no duplicates. msgpack-python's packer already writes shortest forms, so encoding is: check the
types, sort the maps, pack.

Decoding untrusted bytes is the dangerous direction, and the msgpack library is lenient: it
accepts non-minimal ints and lengths, unsorted and duplicate keys, floats, ext types. So decode
is three steps: (1) unpack with the library's own length limits (it never allocates a claimed
length it has not checked), (2) walk the result iteratively, checking types, int range, depth and
that map keys arrive in strictly ascending order, (3) re-pack the value *in the order it arrived*
and require the same bytes. Step 3 catches every non-minimal form and every duplicate key (a
duplicate collapses in the dict, so the re-encoding is shorter). Maps are returned as dicts,
arrays as tuples, so decoded values are immutable enough to hash and share.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgpack

from .errors import DecodeError, RejectCode, ValidationError
from .limits import DEFAULT_DECODE_LIMITS, DecodeLimits

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

Value = Any  # None | bool | int | str | bytes | tuple[Value, ...] | dict[str, Value]


def _key_bytes(k: str) -> bytes:
    return k.encode("utf-8")


def canonicalize(value: Value, *, _depth: int = 0) -> Value:
    """Return ``value`` with maps sorted and arrays as tuples; raise on anything not allowed."""
    if _depth > 64:
        raise ValidationError(RejectCode.TOO_LARGE, "value nested deeper than 64 levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(RejectCode.BAD_SCHEMA, "string is not valid Unicode (lone surrogate)") from None
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ValidationError(RejectCode.BAD_SCHEMA, f"integer {value} outside signed 64-bit range")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, float):
        raise ValidationError(RejectCode.BAD_SCHEMA, "floats are not allowed; use an integer")
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(RejectCode.BAD_SCHEMA, f"map key {k!r} is not a string")
            try:
                kb = _key_bytes(k)
            except UnicodeEncodeError:
                raise ValidationError(RejectCode.BAD_SCHEMA, "map key is not valid Unicode (lone surrogate)") from None
            items.append((kb, k, canonicalize(v, _depth=_depth + 1)))
        items.sort(key=lambda t: t[0])
        return {k: v for _, k, v in items}
    if isinstance(value, Sequence):
        return tuple(canonicalize(v, _depth=_depth + 1) for v in value)
    raise ValidationError(RejectCode.BAD_SCHEMA, f"type {type(value).__name__} cannot be encoded")


def encode(value: Value) -> bytes:
    """The canonical encoding of ``value``."""
    return _packer().pack(canonicalize(value))


_local = threading.local()


def _packer() -> msgpack.Packer:
    # A Packer per thread: building one per call costs more than packing a small value.
    try:
        return _local.packer  # type: ignore[no-any-return]
    except AttributeError:
        _local.packer = msgpack.Packer(use_bin_type=True)
        return _local.packer  # type: ignore[no-any-return]


def _ext_hook(code: int, data: bytes) -> object:
    return _Ext(code)


UNPACKER_CACHE_MAX = 64  # distinct limits whose bound unpacker is kept; a node uses about a dozen
_UNPACKERS: dict[DecodeLimits, Callable[[bytes], Any]] = {}
_UNPACKERS_LOCK = threading.Lock()


def unpacker(limits: DecodeLimits) -> Callable[[bytes], Any]:
    """``msgpack.unpackb`` bound to ``limits`` (no canonical checks: see ``decode``). Binding the
    keyword arguments once saves building them on every call, which runs for every byte a peer sends.

    Cached by the limits' value, not their identity: a caller that builds equal limits per call
    shares one entry, and a cache entry never holds on to a limits object nobody else uses. The
    cache is bounded (oldest entry out first) for callers whose limits vary per message."""
    fn = _UNPACKERS.get(limits)
    if fn is not None:
        return fn
    fn = functools.partial(
        msgpack.unpackb, raw=False, use_list=False, strict_map_key=False, ext_hook=_ext_hook, timestamp=0, **limits.unpack_limits
    )
    with _UNPACKERS_LOCK:  # decode may run on several threads (the HTTP layer parses large bodies on one)
        while len(_UNPACKERS) >= UNPACKER_CACHE_MAX:
            del _UNPACKERS[next(iter(_UNPACKERS))]
        _UNPACKERS[limits] = fn
    return fn


def unpacker_cache_size() -> int:
    """How many bound unpackers are cached (at most ``UNPACKER_CACHE_MAX``)."""
    return len(_UNPACKERS)


def pack(value: Value) -> bytes:
    """msgpack of a value exactly as unpacked (maps in their order): for comparing with the input."""
    return _packer().pack(value)  # type: ignore[no-any-return]


class _Ext:
    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


def _walk(value: Value, limits: DecodeLimits) -> None:
    """Check types, int range, depth and key order of a freshly unpacked value.

    Iterative, and written for speed: it runs on every byte a peer sends.
    """
    t = type(value)
    if t is not tuple and t is not dict:
        _check_scalar(value)
        return
    max_depth = limits.max_depth
    stack: list[tuple[Value, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > max_depth:
            raise DecodeError(RejectCode.TOO_LARGE, f"containers nested deeper than {max_depth}")
        if type(v) is dict:
            prev: bytes | None = None
            for k in v:
                if type(k) is not str:
                    raise DecodeError(RejectCode.NOT_CANONICAL, f"map key {k!r} is not a string")
                kb = k.encode("utf-8")
                if prev is not None and kb <= prev:
                    raise DecodeError(RejectCode.NOT_CANONICAL, f"map key {k!r} out of order or repeated")
                prev = kb
            items = v.values()
        else:
            items = v
        for x in items:
            tx = type(x)
            if tx is str or tx is bytes or x is None or tx is bool:
                continue
            if tx is tuple or tx is dict:
                stack.append((x, depth + 1))
            else:
                _check_scalar(x)


def _check_scalar(x: Value) -> None:
    tx = type(x)
    if tx is int:
        if x > INT_MAX:
            raise DecodeError(RejectCode.NOT_CANONICAL, f"integer {x} above signed 64-bit range")
        return
    if x is None or tx is str or tx is bytes or tx is bool:
        return
    if tx is float:
        raise DecodeError(RejectCode.NOT_CANONICAL, "floats are not allowed")
    raise DecodeError(RejectCode.NOT_CANONICAL, "ext types are not allowed")


def decode(data: bytes, limits: DecodeLimits = DEFAULT_DECODE_LIMITS) -> Value:
    """Decode ``data``, which must be exactly the canonical encoding of one value."""
    if not isinstance(data, (bytes, bytearray)):
        raise DecodeError(RejectCode.MALFORMED, "input is not bytes")
    if len(data) > limits.max_bytes:
        raise DecodeError(RejectCode.TOO_LARGE, f"{len(data)} bytes exceeds the limit of {limits.max_bytes}")
    if not data:
        raise DecodeError(RejectCode.MALFORMED, "empty input")
    try:
        value = unpacker(limits)(data)
    except msgpack.ExtraData:
        raise DecodeError(RejectCode.NOT_CANONICAL, "trailing bytes after the value") from None
    except msgpack.StackError:
        raise DecodeError(RejectCode.TOO_LARGE, "nesting too deep") from None
    except UnicodeDecodeError:
        raise DecodeError(RejectCode.MALFORMED, "str is not valid UTF-8") from None
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        # A map or array used as a map key.
        raise DecodeError(RejectCode.NOT_CANONICAL, "map key is not a string") from None
    except ValueError as e:
        if "exceeds" in str(e):
            raise DecodeError(RejectCode.TOO_LARGE, f"length limit: {e}") from None
        raise DecodeError(RejectCode.MALFORMED, f"not msgpack: {e or type(e).__name__}") from None
    except Exception as e:  # FormatError and other library errors: framing is broken
        raise DecodeError(RejectCode.MALFORMED, f"not msgpack: {type(e).__name__} {e}".rstrip()) from None
    _walk(value, limits)
    if _packer().pack(value) != data:
        raise DecodeError(RejectCode.NOT_CANONICAL, "not the canonical encoding (non-minimal int or length, or duplicate key)")
    return value
