"""Co-op archives: one file that carries a co-op's actions and equivocation proofs from one node
to another, and that anyone can verify offline (docs/PROTOCOL.md, section 11).

Theory of operation. An archive is a stream of length-prefixed frames between a magic string
and a SHA-256 digest::

    archive  = MAGIC || frame(header) || frame(action) * n || frame(proof) * m || digest
    frame(x) = uint32_be(len(x)) || x
    digest   = SHA-256(every byte before it, MAGIC included)

The header (canonical msgpack) names the co-op and the two counts. Actions come in one
deterministic causal order: the genesis first, then by (height, id), where an action's height is
one more than the highest of its parents (``prev`` and ``deps``) that the archive holds, the
genesis counting as a parent of every action. So every chain appears in seq order, every dep
before the action that names it, and two nodes holding the same actions and proofs write the
same bytes. Proofs follow, ascending by id.

Reading is sans-IO (``ArchiveReader.feed(bytes) -> items``, h11 style): memory is bounded by one
frame plus what verification must remember (each action's id and height, each chain's head),
and nothing is yielded before it is checked. The digest catches damage in transit; the
signatures are what make the content trustworthy, so each action is fully verified
(``decode_action``) and each proof too (``decode_proof``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import codec
from .action import Action, decode_action
from .chain import EquivocationProof, decode_proof
from .errors import ProtocolError
from .ids import ID_BYTES, IdKind, format_id
from .limits import DEFAULT_ACTION_LIMITS, ActionLimits, DecodeLimits

MAGIC = b"coopnet/v1/archive\x00"
FORMAT = 1
FRAME_LEN_BYTES = 4
DIGEST_BYTES = 32
MAX_HEADER_BYTES = 1024
MAX_COUNT = 2**32 - 1  # actions or proofs in one archive
# Why a reader refuses an archive (ArchiveError.reason), in the order the checks meet them.
REASONS = (
    "not_an_archive",  # no magic
    "truncated",  # the input ends before the digest
    "too_large",  # a frame declares more bytes than its limit
    "bad_header",
    "bad_action",  # an action that is not intrinsically valid (its reject code follows)
    "no_genesis",  # the first action is not the header's co-op's genesis
    "wrong_coop",  # an action or proof of another co-op
    "duplicate",
    "chain_broken",  # an action that does not extend its author's previous one in the archive
    "out_of_order",  # not in (height, id) order, a dep after the action naming it, proofs not ascending
    "bad_proof",
    "bad_digest",
    "trailing_bytes",
)
_HEADER_LIMITS = DecodeLimits(max_bytes=MAX_HEADER_BYTES, max_depth=1, max_container_len=8, max_str_bytes=16, max_bin_bytes=ID_BYTES)


class ArchiveError(ValueError):
    """An archive that does not verify. ``reason`` is a stable code (PROTOCOL.md 11.3)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ArchiveHeader:
    coop: bytes
    actions: int
    proofs: int

    def encode(self) -> bytes:
        return codec.encode({"actions": self.actions, "coop": self.coop, "format": FORMAT, "proofs": self.proofs})


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    header: ArchiveHeader
    digest: bytes
    authors: int
    size: int


def decode_header(data: bytes) -> ArchiveHeader:
    try:
        value = codec.decode(data, _HEADER_LIMITS)
    except ProtocolError as e:
        raise ArchiveError("bad_header", f"the header is not canonical msgpack: {e.message}") from None
    if not isinstance(value, dict) or set(value) != {"actions", "coop", "format", "proofs"}:
        raise ArchiveError("bad_header", "the header is a map {actions, coop, format, proofs}")
    if value["format"] != FORMAT or type(value["format"]) is not int:
        raise ArchiveError("bad_header", f"archive format {value['format']!r} is not supported (this reader knows {FORMAT})")
    coop = value["coop"]
    if type(coop) is not bytes or len(coop) != ID_BYTES:
        raise ArchiveError("bad_header", "coop must be a 32-byte id")
    for key in ("actions", "proofs"):
        n = value[key]
        if type(n) is not int or not 0 <= n <= MAX_COUNT:
            raise ArchiveError("bad_header", f"{key} must be a count from 0 to {MAX_COUNT}")
    if value["actions"] < 1:
        raise ArchiveError("bad_header", "an archive holds at least the co-op's genesis")
    return ArchiveHeader(coop, value["actions"], value["proofs"])


def _parents(a: Action) -> tuple[bytes, ...]:
    return (*a.env.deps, a.prev) if a.prev is not None else a.env.deps


def archive_order(genesis: Action, actions: Iterable[Action]) -> list[Action]:
    """``genesis`` then the other actions by (height, id) (see the module docstring)."""
    by_id = {a.id: a for a in actions if a.id != genesis.id}
    height: dict[bytes, int] = {genesis.id: 0}
    for start in by_id.values():
        if start.id in height:
            continue
        # Iterative depth-first walk: chains are long, Python's recursion is not deep.
        stack: list[tuple[Action, bool]] = [(start, False)]
        while stack:
            a, expanded = stack.pop()
            if a.id in height:
                continue
            if expanded:
                height[a.id] = 1 + max((height[p] for p in _parents(a) if p in height), default=0)
                continue
            stack.append((a, True))
            stack.extend((by_id[p], False) for p in _parents(a) if p in by_id and p not in height)
    return [genesis, *sorted(by_id.values(), key=lambda a: (height[a.id], a.id))]


def encode_archive(genesis: Action, actions: Iterable[Action], proofs: Iterable[EquivocationProof]) -> Iterator[bytes]:
    """The archive of a co-op, in chunks (write them in order); ``actions`` may hold the genesis."""
    if not genesis.is_genesis:
        raise ValueError("the first action of an archive is the co-op's genesis")
    ordered = archive_order(genesis, actions)
    sorted_proofs = sorted({p.id: p for p in proofs}.values(), key=lambda p: p.id)
    h = hashlib.sha256()

    def out(data: bytes) -> bytes:
        h.update(data)
        return data

    yield out(MAGIC)
    header = ArchiveHeader(genesis.id, len(ordered), len(sorted_proofs)).encode()
    yield out(len(header).to_bytes(FRAME_LEN_BYTES, "big") + header)
    for a in ordered:
        yield out(len(a.raw).to_bytes(FRAME_LEN_BYTES, "big") + a.raw)
    for p in sorted_proofs:
        data = p.encode()
        yield out(len(data).to_bytes(FRAME_LEN_BYTES, "big") + data)
    yield h.digest()


class ArchiveReader:
    """Feed an archive's bytes in any pieces; get back its verified header, actions and proofs.

    ``check_signatures=False`` skips only the Ed25519 checks (for a second pass over a file whose
    first pass verified them, the node verifying again as it stores); everything else is checked.
    """

    def __init__(self, limits: ActionLimits = DEFAULT_ACTION_LIMITS, *, check_signatures: bool = True) -> None:
        self.limits = limits
        self.check_signatures = check_signatures
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already parsed (dropped once per feed, not per frame)
        self._hash = hashlib.sha256()
        self._size = 0
        self._stage = "magic"
        self.header: ArchiveHeader | None = None
        self._actions = 0
        self._proofs = 0
        self._height: dict[bytes, int] = {}
        self._heads: dict[bytes, tuple[int, bytes]] = {}
        self._named_not_seen: set[bytes] = set()  # deps that name no action read so far
        self._last_key: tuple[int, bytes] | None = None
        self._last_proof: bytes | None = None
        self._digest: bytes | None = None

    # ---- input -------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Any]:
        """Verified items completed by ``data``: ArchiveHeader, then Actions, then EquivocationProofs."""
        if self._stage == "done":
            if data:
                raise ArchiveError("trailing_bytes", "bytes after the archive's digest")
            return []
        del self._buf[: self._pos]
        self._pos = 0
        self._buf += data
        self._size += len(data)
        out: list[Any] = []
        while True:
            item = self._step()
            if item is None:
                return out
            out.append(item)

    def close(self) -> ArchiveSummary:
        """The end of the input: the archive must be complete."""
        if self._stage != "done":
            raise ArchiveError("truncated", f"the archive ends early (while reading the {self._stage})")
        assert self.header is not None and self._digest is not None
        return ArchiveSummary(self.header, self._digest, len(self._heads), self._size)

    # ---- parsing -------------------------------------------------------------------------------

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes | None:
        if self._available() < n:
            return None
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return data

    def _frame(self, limit: int, what: str) -> bytes | None:
        if self._available() < FRAME_LEN_BYTES:
            return None
        n = int.from_bytes(self._buf[self._pos : self._pos + FRAME_LEN_BYTES], "big")
        if n > limit:
            raise ArchiveError("too_large", f"{what} declares {n} bytes, more than {limit}")
        if self._available() < FRAME_LEN_BYTES + n:
            return None
        frame = self._take(FRAME_LEN_BYTES + n)
        assert frame is not None
        self._hash.update(frame)
        return frame[FRAME_LEN_BYTES:]

    def _step(self) -> Any:
        if self._stage == "magic":
            got = bytes(self._buf[self._pos : self._pos + len(MAGIC)])
            if not MAGIC.startswith(got):
                raise ArchiveError("not_an_archive", "the file does not start with a coopnet archive's magic bytes")
            if self._take(len(MAGIC)) is None:
                return None
            self._hash.update(MAGIC)
            self._stage = "header"
        if self._stage == "header":
            data = self._frame(MAX_HEADER_BYTES, "the header")
            if data is None:
                return None
            self.header = decode_header(data)
            self._stage = "actions"
            return self.header
        assert self.header is not None
        if self._stage == "actions":
            if self._actions == self.header.actions:
                self._stage = "proofs"
            else:
                data = self._frame(self.limits.max_action_bytes, f"action {self._actions}")
                if data is None:
                    return None
                action = self._action(data)
                self._actions += 1
                return action
        if self._stage == "proofs":
            if self._proofs == self.header.proofs:
                self._stage = "digest"
            else:
                data = self._frame(2 * self.limits.max_action_bytes + 64, f"proof {self._proofs}")
                if data is None:
                    return None
                proof = self._proof(data)
                self._proofs += 1
                return proof
        if self._stage == "digest":
            digest = self._take(DIGEST_BYTES)
            if digest is None:
                return None
            expected = self._hash.digest()
            if digest != expected:
                raise ArchiveError(
                    "bad_digest", f"SHA-256 mismatch: the archive says {digest.hex()}, its content hashes to {expected.hex()}"
                )
            self._digest = digest
            self._stage = "done"
            if self._available():
                raise ArchiveError("trailing_bytes", "bytes after the archive's digest")
        return None

    # ---- verification --------------------------------------------------------------------------

    def _action(self, raw: bytes) -> Action:
        assert self.header is not None
        i = self._actions
        where = f"action {i}"
        try:
            a = decode_action(raw, self.limits, check_signature=self.check_signatures)
        except ProtocolError as e:
            raise ArchiveError("bad_action", f"{where}: {e.code.value}: {e.message}") from None
        where = f"action {i} ({format_id(IdKind.ACTION, a.id)})"
        coop = self.header.coop
        if i == 0:
            if not a.is_genesis or a.id != coop:
                raise ArchiveError("no_genesis", f"{where}: the first action must be the genesis of {format_id(IdKind.COOP, coop)}")
        elif a.is_genesis or a.coop != coop:
            raise ArchiveError("wrong_coop", f"{where}: not an action of {format_id(IdKind.COOP, coop)}")
        if a.id in self._height:
            raise ArchiveError("duplicate", f"{where}: appears twice")
        head_seq, head_id = self._heads.get(a.author, (0, None))
        if a.seq != head_seq + 1 or a.prev != head_id:
            raise ArchiveError(
                "chain_broken",
                f"{where}: seq {a.seq} of {format_id(IdKind.MEMBER, a.author)} does not extend its seq {head_seq} in this archive",
            )
        if a.id in self._named_not_seen:
            raise ArchiveError("out_of_order", f"{where}: an earlier action names it as a dep")
        height = 0 if i == 0 else 1 + max((self._height[p] for p in _parents(a) if p in self._height), default=0)
        key = (height, a.id)
        if self._last_key is not None and key <= self._last_key:
            raise ArchiveError("out_of_order", f"{where}: actions must be ordered by (height, id)")
        self._named_not_seen.update(d for d in a.env.deps if d not in self._height)
        self._height[a.id] = height
        self._heads[a.author] = (a.seq, a.id)
        self._last_key = key
        return a

    def _proof(self, data: bytes) -> EquivocationProof:
        assert self.header is not None
        where = f"proof {self._proofs}"
        try:
            p = decode_proof(data, self.limits)
        except ProtocolError as e:
            raise ArchiveError("bad_proof", f"{where}: {e.code.value}: {e.message}") from None
        if p.coop != self.header.coop:
            raise ArchiveError("wrong_coop", f"{where}: proves an equivocation in another co-op")
        if self._last_proof is not None and p.id <= self._last_proof:
            raise ArchiveError("out_of_order", f"{where}: proofs must be ordered by id, without repeats")
        self._last_proof = p.id
        return p


def read_archive(
    chunks: Iterable[bytes], limits: ActionLimits = DEFAULT_ACTION_LIMITS
) -> tuple[list[Action], list[EquivocationProof], ArchiveSummary]:
    """Verify a whole archive held in memory (tests, small archives)."""
    reader = ArchiveReader(limits)
    actions: list[Action] = []
    proofs: list[EquivocationProof] = []
    for chunk in chunks:
        for item in reader.feed(chunk):
            if isinstance(item, Action):
                actions.append(item)
            elif isinstance(item, EquivocationProof):
                proofs.append(item)
    return actions, proofs, reader.close()


__all__ = [
    "FORMAT",
    "MAGIC",
    "REASONS",
    "ArchiveError",
    "ArchiveHeader",
    "ArchiveReader",
    "ArchiveSummary",
    "archive_order",
    "decode_header",
    "encode_archive",
    "read_archive",
]
