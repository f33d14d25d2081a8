"""The ``[admission]`` table and the pending limits: parsed, rendered and documented."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from node.admission import store_policy
from node.config import CONFIG_NAME, Admission, ConfigError, Limits, load_config, parse_config, render_config

OPERATIONS = (Path(__file__).resolve().parent.parent / "docs" / "OPERATIONS.md").read_text()


def parse(data: dict[str, Any], tmp_path: Path) -> Any:
    return parse_config(data, tmp_path / CONFIG_NAME, env={})


def test_defaults_render_and_load_back(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_NAME
    text = render_config()
    for f in fields(Admission):
        assert f"# {f.name} = " in text, f.name
    path.write_text(
        text.replace('# founding = "open"', 'founding = "invite"').replace(
            "# trusted_proxies = []", 'trusted_proxies = ["10.0.0.0/8", "::1"]'
        )
    )
    cfg = load_config(path, env={})
    assert cfg.admission == Admission(founding="invite", trusted_proxies=("10.0.0.0/8", "::1"))


def test_values_are_checked_with_the_key_named(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"founding": "maybe"}, "admission.founding"),
        ({"unknown_authors": "drop"}, "admission.unknown_authors"),
        ({"read_rate": -1}, "admission.read_rate"),
        ({"read_rate": "fast"}, "admission.read_rate"),
        ({"trusted_proxies": ["nginx"]}, "admission.trusted_proxies"),
        ({"trusted_proxies": "127.0.0.1"}, "admission.trusted_proxies"),
        ({"quarantine_per_author": 0}, "admission.quarantine_per_author"),
        ({"quota_node_bytes": -5}, "admission.quota_node_bytes"),
        ({"shiny": 1}, "shiny"),
    ]
    for table, key in cases:
        with pytest.raises(ConfigError, match=re.escape(key)):
            parse({"admission": table}, tmp_path)
    cfg = parse({"admission": {"read_rate": 0, "quota_node_bytes": 0, "join_rate": 1}}, tmp_path)
    assert cfg.admission.read_rate == 0.0 and cfg.admission.quota_node_bytes == 0 and cfg.admission.join_rate == 1.0


def test_the_store_policy_follows_the_config(tmp_path: Path) -> None:
    cfg = parse(
        {"admission": {"unknown_authors": "store", "quarantine_seconds": 60}, "limits": {"max_pending": 10, "pending_floor": 64}}, tmp_path
    )
    p = store_policy(cfg)
    assert p.hold_unknown is False and p.quarantine_ms == 60_000
    assert p.pending_floor == 10  # never above the node-wide bound it is a floor under
    assert store_policy(parse({}, tmp_path)).hold_unknown is True


@pytest.mark.parametrize("cls", [Admission, Limits])
def test_operations_documents_every_key_with_its_default(cls: type) -> None:
    block = OPERATIONS[OPERATIONS.index("```toml") : OPERATIONS.index("```", OPERATIONS.index("```toml") + 3)]
    for f in fields(cls):
        default = getattr(cls(), f.name)
        shown = {str: lambda v: f'"{v}"', tuple: lambda v: "[]" if not v else repr(list(v))}.get(type(default), repr)(default)
        assert re.search(rf"^{f.name} = {re.escape(shown)}\s", block, re.M), (f.name, shown)
