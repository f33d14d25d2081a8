"""Every example in configs/ loads, and says what its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import Admission, Limits, load_config, load_federation_file

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
NODE_CONFIGS = sorted(p for p in CONFIGS.rglob("*.toml") if p.name not in ("federation.toml", "cluster.toml"))


def test_there_are_examples() -> None:
    assert len(NODE_CONFIGS) >= 4, NODE_CONFIGS


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_node_example_loads(path: Path) -> None:
    cfg = load_config(path, env={})
    assert cfg.host == "127.0.0.1"
    assert cfg.source == path


def test_single_node_spells_out_the_defaults() -> None:
    cfg = load_config(CONFIGS / "single-node.toml", env={})
    assert cfg.port == 8470
    assert cfg.limits == Limits()
    assert cfg.admission == Admission()
    assert cfg.synchronous == "full"
    assert cfg.federation.peers == ()


def test_the_three_nodes_form_one_federation() -> None:
    fed = load_federation_file(CONFIGS / "federation-3" / "federation.toml")
    nodes = [load_config(CONFIGS / "federation-3" / f"node-{n}.toml", env={}) for n in "abc"]
    member_ids = {p.node_id for p in fed.peers}
    assert len(member_ids) == 3
    for cfg in nodes:
        assert cfg.federation.name == fed.name
        # each node lists the other two, at the ports the others listen on
        assert {p.node_id for p in cfg.federation.peers} < member_ids
        assert len(cfg.federation.peers) == 2
        assert f"http://{cfg.host}:{cfg.port}" not in {p.url for p in cfg.federation.peers}
    assert {f"http://{c.host}:{c.port}" for c in nodes} == {p.url for p in fed.peers}
