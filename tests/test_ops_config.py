"""The operator-facing config keys: ``[admin] listen`` and ``[node] log_format``, and the docs
that describe them (docs/OPERATIONS.md shows every key with its default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.config import (
    CONFIG_NAME,
    DEFAULT_ADMIN_LISTEN,
    LOG_FORMATS,
    Admin,
    Config,
    ConfigError,
    load_config,
    parse_config,
    render_config,
)

ROOT = Path(__file__).resolve().parent.parent


def parse(data: dict[str, Any], tmp_path: Path) -> Config:
    return parse_config(data, tmp_path / CONFIG_NAME, env={})


def test_defaults(tmp_path: Path) -> None:
    cfg = parse({}, tmp_path)
    assert cfg.admin == Admin(DEFAULT_ADMIN_LISTEN) and cfg.admin.enabled
    assert (cfg.admin.host, cfg.admin.port) == ("127.0.0.1", 0)
    assert cfg.log_format == "text"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:8471", "127.0.0.1", 8471), ("127.0.0.1:0", "127.0.0.1", 0), ("[::1]:9000", "::1", 9000)],
)
def test_admin_listen(tmp_path: Path, listen: str, host: str, port: int) -> None:
    cfg = parse({"admin": {"listen": listen}}, tmp_path)
    assert cfg.admin.enabled and (cfg.admin.host, cfg.admin.port) == (host, port)


def test_admin_listen_empty_disables(tmp_path: Path) -> None:
    assert not parse({"admin": {"listen": ""}}, tmp_path).admin.enabled


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"admin": {"listen": "8471"}}, "admin.listen"),
        ({"admin": {"listen": 8471}}, "admin.listen"),
        ({"admin": {"token": "x"}}, "token"),
        ({"admin": "127.0.0.1:1"}, "[admin] must be a table"),
        ({"node": {"log_format": "xml"}}, "node.log_format must be one of text, json"),
        ({"node": {"log_format": 1}}, "node.log_format"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(data, tmp_path)
    assert key in str(e.value)


@pytest.mark.parametrize("fmt", ["json", "JSON", "text"])
def test_log_format(tmp_path: Path, fmt: str) -> None:
    assert parse({"node": {"log_format": fmt}}, tmp_path).log_format == fmt.lower()


def test_rendered_config_shows_the_new_keys_with_their_defaults(tmp_path: Path) -> None:
    text = render_config()
    assert f'listen = "{DEFAULT_ADMIN_LISTEN}"' in text and 'log_format = "text"' in text
    path = tmp_path / CONFIG_NAME
    path.write_text(render_config(admin_listen="127.0.0.1:9999"))
    assert load_config(path, env={}).admin.listen == "127.0.0.1:9999"


def test_operations_md_documents_the_keys() -> None:
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    assert f'listen = "{DEFAULT_ADMIN_LISTEN}"' in doc
    assert "log_format = " in doc
    for fmt in LOG_FORMATS:
        assert fmt in doc
