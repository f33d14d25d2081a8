"""configs/coopnet.service: the systemd unit has the keys OPERATIONS.md promises (no systemd
here: the file is parsed as systemd reads it, key by key, repeated keys kept in order)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "configs" / "coopnet.service"


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a key outside any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse(UNIT.read_text())


def one(unit: dict[str, dict[str, list[str]]], key: str, section: str = "Service") -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] has no {key}="
    return values[-1]


def test_sections(unit: dict[str, dict[str, list[str]]]) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one(unit, "WantedBy", "Install") == "multi-user.target"
    assert "network-online.target" in one(unit, "After", "Unit")


def test_runs_the_node_as_a_dedicated_user_on_its_data_dir(unit: dict[str, dict[str, list[str]]]) -> None:
    user = one(unit, "User")
    assert user and user != "root" and one(unit, "Group") == user
    argv = shlex.split(one(unit, "ExecStart"))
    assert Path(argv[0]).name == "coopnet" and argv[1] == "run"
    data_dir = argv[argv.index("--data-dir") + 1]
    assert one(unit, "ReadWritePaths") == data_dir == one(unit, "WorkingDirectory")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("UMask", "0077"),
    ],
)
def test_hardening(unit: dict[str, dict[str, list[str]]], key: str, value: str) -> None:
    assert one(unit, key) == value


def test_limits_and_system_calls(unit: dict[str, dict[str, list[str]]]) -> None:
    assert int(one(unit, "LimitNOFILE")) >= 4096
    assert one(unit, "MemoryMax").endswith(("M", "G"))
    filters = unit["Service"]["SystemCallFilter"]
    assert filters[0] == "@system-service" and all(f.startswith("~") for f in filters[1:])
    assert set(one(unit, "RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert int(one(unit, "TimeoutStopSec")) >= 10
