"""Write the example node keys used by configs/federation-3/ (public seeds: demonstration only)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.keyfile import KeyFileError, write_key_file  # noqa: E402


def main() -> None:
    for n in "abc":
        path = ROOT / ".coopnet-data" / f"example-{n}" / "node.key"
        seed = hashlib.sha256(f"coopnet example node {n}".encode()).digest()
        try:
            key = write_key_file(path, "node", seed)
            print(f"wrote {path} ({key.public_key.hex()[:16]}...)")
        except KeyFileError as e:
            print(f"kept {path}: {e}")


if __name__ == "__main__":
    main()
