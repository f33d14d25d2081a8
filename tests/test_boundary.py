"""The protocol core stays pure: no I/O, clock, randomness or node code behind ``import protocol``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocol"

# Modules an ``import protocol`` must never pull in. (Some stdlib modules such as ``time``,
# ``random`` or ``os`` are imported by the interpreter or by cryptography/nacl/msgpack themselves,
# so they are policed statically below instead.)
FORBIDDEN_MODULES = ["asyncio", "aiohttp", "aiosqlite", "sqlite3", "_sqlite3", "socket", "selectors", "click", "rich"]

PROBE = (
    "import sys\nimport protocol\nmods = sorted(sys.modules)\nimport json\nprint(json.dumps({'mods': mods, 'file': protocol.__file__}))\n"
)


def imported_modules() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def probe() -> dict[str, object]:
    return imported_modules()


def test_probe_imports_this_checkout(probe: dict[str, object]) -> None:
    assert Path(str(probe["file"])).resolve().parent == PROTOCOL
    mods = probe["mods"]
    assert isinstance(mods, list)
    assert "protocol" in mods and "protocol.action" in mods and "msgpack" in mods


@pytest.mark.parametrize("name", FORBIDDEN_MODULES)
def test_forbidden_module_not_imported(probe: dict[str, object], name: str) -> None:
    mods = probe["mods"]
    assert isinstance(mods, list)
    assert name not in mods
    assert not [m for m in mods if m.startswith(name + ".")]


def test_no_node_module_imported(probe: dict[str, object]) -> None:
    mods = probe["mods"]
    assert isinstance(mods, list)
    assert [m for m in mods if m == "node" or m.startswith("node.")] == []


def test_probe_can_see_a_forbidden_import() -> None:
    """Control: the probe does notice a module when one is imported."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, sqlite3, protocol; print('sqlite3' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "True"


FORBIDDEN_TEXT = ["import time", "import random", "import asyncio", "import os", "sqlite", "aiohttp", "datetime"]
FORBIDDEN_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+(?:time|random|secrets|asyncio|os|socket|sqlite3|aiosqlite|aiohttp|datetime|uuid|subprocess|node)\b|"
    r"^\s*from\s+\.\.\s*node\b|^\s*from\s+\.\.+\s+import\b",
    re.MULTILINE,
)


def protocol_sources() -> list[Path]:
    files = sorted(PROTOCOL.rglob("*.py"))
    assert files, "no protocol sources found"
    return files


@pytest.mark.parametrize("path", protocol_sources(), ids=lambda p: p.name)
def test_protocol_source_has_no_forbidden_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for needle in FORBIDDEN_TEXT:
        assert needle not in text, f"{path.name} contains {needle!r}"
    found = FORBIDDEN_IMPORT.findall(text)
    assert not found, f"{path.name} imports {found}"


def test_static_patterns_catch_forbidden_imports() -> None:
    """Control: the patterns above would catch the usual spellings."""
    for line in (
        "import time",
        "from time import monotonic",
        "import os.path",
        "from datetime import datetime",
        "    import asyncio",
        "from node import store",
    ):
        assert FORBIDDEN_IMPORT.search(line) or any(n in line for n in FORBIDDEN_TEXT), line
    for line in ("from .codec import encode", "import hashlib"):
        assert not FORBIDDEN_IMPORT.search(line) and not any(n in line for n in FORBIDDEN_TEXT), line
