"""Decoding leaves nothing behind (issue #10, finding 10).

The codec caches one bound msgpack unpacker per set of decode limits. It used to key that cache
by ``id(limits)`` and keep the limits object alive in the entry, while several message decoders
built a fresh ``DecodeLimits`` per call: every decoded message then left an entry behind (~730 B).
"""

from __future__ import annotations

import gc
import tracemalloc

from protocol import codec
from protocol.limits import DecodeLimits
from protocol.messages import (
    Announce,
    FetchReply,
    FetchRequest,
    PeerPush,
    ReconcileRequest,
    Want,
    decode_announce,
    decode_coop_list,
    decode_fetch_reply,
    decode_fetch_request,
    decode_push,
    decode_reconcile_request,
    decode_submission,
    encode_announce,
    encode_coop_list,
    encode_fetch_reply,
    encode_fetch_request,
    encode_push,
    encode_reconcile_request,
    encode_submission,
)

MESSAGES = 100_000
GROWTH_BOUND = 256 * 1024  # bytes; the leak grew ~70 MB over the same count


def _decode_all(n: int) -> None:
    """``n`` decodes cycling through every message decoder, with varying sizes."""
    coop = bytes(range(32))
    reconcile = encode_reconcile_request(ReconcileRequest(coop, (), None, 0))
    fetch = encode_fetch_request(FetchRequest(coop, (Want(coop, 1, 2),), ()))
    fetch_reply = encode_fetch_reply(FetchReply((b"x",), (), False))
    announce = encode_announce(Announce(b"record", ()))
    coops = encode_coop_list([coop])
    for i in range(n):
        k = i % 7
        if k == 0:
            decode_reconcile_request(reconcile)
        elif k == 1:
            decode_fetch_request(fetch)
        elif k == 2:
            decode_fetch_reply(fetch_reply)
        elif k == 3:
            decode_announce(announce)
        elif k == 4:
            decode_coop_list(coops)
        elif k == 5:  # the body length is part of these limits: a different size every time
            decode_push(encode_push(PeerPush((b"a" * (i % 5000 + 1),), ())))
        else:
            decode_submission(encode_submission([b"s" * (i % 5000 + 1)]), max_actions=10)


def test_unpacker_cache_is_keyed_by_value_and_bounded() -> None:
    a = DecodeLimits(max_bytes=1234, max_depth=3)
    b = DecodeLimits(max_bytes=1234, max_depth=3)
    assert a is not b
    assert codec.unpacker(a) is codec.unpacker(b)  # equal limits share one entry
    for i in range(10 * codec.UNPACKER_CACHE_MAX):
        codec.decode(b"\x01", DecodeLimits(max_bytes=100 + i))
    assert codec.unpacker_cache_size() <= codec.UNPACKER_CACHE_MAX


def test_decoding_many_messages_does_not_grow_memory() -> None:
    _decode_all(2_000)  # warm every cache that is meant to stay
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        _decode_all(MESSAGES)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < GROWTH_BOUND, f"{after - before} bytes retained after {MESSAGES} decodes"
    assert codec.unpacker_cache_size() <= codec.UNPACKER_CACHE_MAX
