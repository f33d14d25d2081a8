"""Every example config in configs/ loads, and says what its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import Limits, load_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


def test_there_are_examples() -> None:
    assert CONFIGS, "configs/ holds no example"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_loads(path: Path) -> None:
    cfg = load_config(path, env={})
    assert cfg.host == "127.0.0.1"
    assert cfg.source == path


def test_single_node_spells_out_the_defaults() -> None:
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "single-node.toml", env={})
    assert cfg.port == 8470
    assert cfg.limits == Limits()
    assert cfg.synchronous == "full"
