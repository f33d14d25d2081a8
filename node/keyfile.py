"""Key files: a member's or a node's Ed25519 seed, readable by its owner only.

Format (TOML, so a person can see what the file is)::

    # coopnet member key. Anyone who can read this file can act as this member.
    kind = "member"
    id = "mem_..."
    seed = "<64 hex digits>"

The file is created with mode 0600 and never overwritten. Loading checks that ``id`` matches the
seed, so a hand-edited or truncated file is caught rather than signing as someone else.
"""

from __future__ import annotations

import os
import secrets
import stat
import tomllib
from pathlib import Path

from protocol import SigningKey
from protocol.ids import IdKind, format_id

KINDS = {"member": IdKind.MEMBER, "node": IdKind.NODE}


class KeyFileError(Exception):
    pass


def generate_seed() -> bytes:
    return secrets.token_bytes(32)


def write_key_file(path: Path | str, kind: str, seed: bytes | None = None) -> SigningKey:
    """Create a new key file; refuse to overwrite an existing one."""
    if kind not in KINDS:
        raise KeyFileError(f"key kind must be one of {sorted(KINDS)}")
    path = Path(path)
    key = SigningKey(seed if seed is not None else generate_seed())
    text = (
        f"# coopnet {kind} key. Anyone who can read this file can act as this {kind}: keep it private.\n"
        f'kind = "{kind}"\n'
        f'id = "{format_id(KINDS[kind], key.public_key)}"\n'
        f'seed = "{key.seed().hex()}"\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return key


def read_key_file(path: Path | str, kind: str | None = None) -> SigningKey:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except tomllib.TOMLDecodeError as e:
        raise KeyFileError(f"{path}: not a coopnet key file: {e}") from None
    file_kind, text_id, seed_hex = data.get("kind"), data.get("id"), data.get("seed")
    if file_kind not in KINDS or not isinstance(text_id, str) or not isinstance(seed_hex, str):
        raise KeyFileError(f"{path}: not a coopnet key file (needs kind, id and seed)")
    if kind is not None and file_kind != kind:
        raise KeyFileError(f"{path}: is a {file_kind} key, expected a {kind} key")
    try:
        seed = bytes.fromhex(seed_hex)
        key = SigningKey(seed)
    except ValueError:
        raise KeyFileError(f"{path}: seed must be 64 hex digits") from None
    if format_id(KINDS[file_kind], key.public_key) != text_id:
        raise KeyFileError(f"{path}: id does not match the seed; the file is damaged")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: readable by others (mode {stat.filemode(mode)}); run: chmod 600 {path}")
    return key
