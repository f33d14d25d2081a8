"""node/config.py (the TOML config) and node/keyfile.py (key files)."""

from __future__ import annotations

import os
import stat
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from node.config import (
    CONFIG_NAME,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Config,
    ConfigError,
    Limits,
    apply_env,
    load_config,
    parse_config,
    render_config,
)
from node.keyfile import KeyFileError, read_key_file, write_key_file
from protocol.ids import IdKind, format_id
from protocol.limits import DEFAULT_ACTION_LIMITS

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / CONFIG_NAME
    path.write_text(text)
    return path


def parse(data: dict[str, Any], tmp_path: Path, env: dict[str, str] | None = None) -> Config:
    return parse_config(data, tmp_path / CONFIG_NAME, env=NO_ENV if env is None else env)


# ---- config ----------------------------------------------------------------------------------


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), env=NO_ENV)
    assert cfg == Config(data_dir=tmp_path, source=tmp_path / CONFIG_NAME)
    assert (cfg.host, cfg.port) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8470)
    assert cfg.log_level == "info" and cfg.synchronous == "full"
    assert cfg.limits == Limits()
    assert cfg.limits.max_action_bytes == DEFAULT_ACTION_LIMITS.max_action_bytes
    assert cfg.key_path == tmp_path / "node.key"
    assert cfg.database_path == tmp_path / "coopnet.sqlite3"
    assert cfg.url == "http://127.0.0.1:8470"


def test_render_config_loads_back_to_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, render_config()), env=NO_ENV)
    assert cfg == Config(data_dir=tmp_path, source=tmp_path / CONFIG_NAME)
    text = render_config()
    for f in fields(Limits):  # every limit is shown, with its default
        assert f"# {f.name} = {getattr(Limits(), f.name)}" in text


def test_render_config_with_arguments(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, render_config("0.0.0.0", 0, "debug")), env=NO_ENV)
    assert (cfg.host, cfg.port, cfg.log_level) == ("0.0.0.0", 0, "debug")


def test_uncommented_limits_load(tmp_path: Path) -> None:
    text = render_config().replace("# max_page = 1000", "max_page = 7").replace("# verify_workers = 2", "verify_workers = 0")
    cfg = load_config(write(tmp_path, text), env=NO_ENV)
    assert cfg.limits == Limits(max_page=7, verify_workers=0)


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = parse({"node": {"data_dir": "data", "key_file": "keys/n.key", "database": "db/x.sqlite3"}}, tmp_path)
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.key_path == tmp_path / "data" / "keys" / "n.key"
    assert cfg.database_path == tmp_path / "data" / "db" / "x.sqlite3"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8470", "127.0.0.1", 8470),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("localhost:65535", "localhost", 65535),
        ("[::1]:9000", "::1", 9000),
        ("0.0.0.0:1", "0.0.0.0", 1),
    ],
)
def test_listen_parsing(tmp_path: Path, listen: str, host: str, port: int) -> None:
    cfg = parse({"node": {"listen": listen}}, tmp_path)
    assert (cfg.host, cfg.port) == (host, port)


@pytest.mark.parametrize("listen", ["8470", "127.0.0.1", ":8470", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x", ""])
def test_bad_listen_is_refused(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError, match=r"node\.listen") as e:
        parse({"node": {"listen": listen}}, tmp_path)
    assert str(tmp_path / CONFIG_NAME) in str(e.value)


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        ("colour = 1\n", "", "colour"),
        ("[node]\nlisten_addr = '127.0.0.1:1'\n", "[node]", "listen_addr"),
        ("[store]\njournal = 'wal'\n", "[store]", "journal"),
        ("[limits]\nmax_pages = 3\n", "[limits]", "max_pages"),
        ("[peers]\nlist = []\n", "", "peers"),
    ],
)
def test_unknown_key_names_the_key_and_the_file(tmp_path: Path, text: str, where: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path, env=NO_ENV)
    message = str(e.value)
    assert str(path) in message
    assert f"unknown key {key!r}" in message
    assert where in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[node]\nlisten = 8470\n", "node.listen"),
        ("[node]\ndata_dir = 1\n", "node.data_dir"),
        ("[node]\nkey_file = true\n", "node.key_file"),
        ("[node]\ndatabase = ['a']\n", "node.database"),
        ("[node]\nlog_level = 10\n", "node.log_level"),
        ("[store]\nsynchronous = 2\n", "store.synchronous"),
        ("[limits]\nmax_page = '10'\n", "limits.max_page"),
        ("[limits]\nmax_pending = 1.5\n", "limits.max_pending"),
        ("[limits]\nmax_group = true\n", "limits.max_group"),
        ("[limits]\nmax_batch_actions = 0\n", "limits.max_batch_actions"),
        ("[limits]\nmax_request_bytes = -5\n", "limits.max_request_bytes"),
        ("[limits]\nverify_workers = -1\n", "limits.verify_workers"),
    ],
)
def test_wrong_type_or_range_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path, env=NO_ENV)
    assert key in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("text", ["node = 1\n", "store = 'x'\n", "limits = [1]\n"])
def test_section_that_is_not_a_table(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(write(tmp_path, text), env=NO_ENV)


def test_verify_workers_may_be_zero(tmp_path: Path) -> None:
    assert parse({"limits": {"verify_workers": 0}}, tmp_path).limits.verify_workers == 0


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "WARNING"])
def test_log_levels(tmp_path: Path, level: str) -> None:
    assert parse({"node": {"log_level": level}}, tmp_path).log_level == level.lower()


@pytest.mark.parametrize("level", ["verbose", "critical", ""])
def test_bad_log_level(tmp_path: Path, level: str) -> None:
    with pytest.raises(ConfigError, match=r"node\.log_level must be one of"):
        parse({"node": {"log_level": level}}, tmp_path)


@pytest.mark.parametrize(("mode", "expected"), [("full", "full"), ("normal", "normal"), ("NORMAL", "normal")])
def test_synchronous_modes(tmp_path: Path, mode: str, expected: str) -> None:
    assert parse({"store": {"synchronous": mode}}, tmp_path).synchronous == expected


@pytest.mark.parametrize("mode", ["off", "extra", "wal"])
def test_bad_synchronous(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.synchronous must be 'full' or 'normal'"):
        parse({"store": {"synchronous": mode}}, tmp_path)


def test_max_action_bytes_may_be_lowered_not_raised(tmp_path: Path) -> None:
    protocol_max = DEFAULT_ACTION_LIMITS.max_action_bytes
    assert parse({"limits": {"max_action_bytes": 1024}}, tmp_path).limits.max_action_bytes == 1024
    assert parse({"limits": {"max_action_bytes": protocol_max}}, tmp_path).limits.max_action_bytes == protocol_max
    with pytest.raises(ConfigError, match=r"limits\.max_action_bytes cannot exceed"):
        parse({"limits": {"max_action_bytes": protocol_max + 1}}, tmp_path)


def test_request_must_fit_an_action(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"limits\.max_request_bytes must be at least limits\.max_action_bytes"):
        parse({"limits": {"max_request_bytes": 1000}}, tmp_path)
    cfg = parse({"limits": {"max_request_bytes": 1000, "max_action_bytes": 1000}}, tmp_path)
    assert cfg.limits.max_request_bytes == 1000


def test_env_overrides_data_dir_and_port(tmp_path: Path) -> None:
    path = write(tmp_path, '[node]\nlisten = "127.0.0.1:9000"\ndata_dir = "here"\n')
    cfg = load_config(path, env={"COOPNET_DATA_DIR": "/srv/elsewhere", "COOPNET_PORT": "9123"})
    assert cfg.data_dir == Path("/srv/elsewhere")
    assert (cfg.host, cfg.port) == ("127.0.0.1", 9123)
    assert cfg.database_path == Path("/srv/elsewhere/coopnet.sqlite3")
    plain = load_config(path, env=NO_ENV)
    assert plain.data_dir == tmp_path / "here" and plain.port == 9000
    assert load_config(path, env={"COOPNET_DATA_DIR": "", "COOPNET_PORT": ""}) == plain  # empty means unset


def test_env_is_read_from_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOPNET_PORT", "9555")
    monkeypatch.delenv("COOPNET_DATA_DIR", raising=False)
    assert load_config(write(tmp_path, "")).port == 9555


@pytest.mark.parametrize("port", ["abc", "-1", "65536", "80.5", " 80", "0x50"])
def test_bad_coopnet_port(tmp_path: Path, port: str) -> None:
    with pytest.raises(ConfigError, match="COOPNET_PORT"):
        load_config(write(tmp_path, ""), env={"COOPNET_PORT": port})
    with pytest.raises(ConfigError, match="COOPNET_PORT"):
        apply_env(Config(), {"COOPNET_PORT": port})


@pytest.mark.parametrize("port", ["\u00b2", "\uff18\uff10"])
def test_non_ascii_digits_in_coopnet_port(port: str) -> None:
    with pytest.raises(ConfigError, match="COOPNET_PORT"):
        apply_env(Config(), {"COOPNET_PORT": port})


@pytest.mark.parametrize("port", ["\u00b2", "\uff18\uff10"])
def test_non_ascii_digits_in_listen(tmp_path: Path, port: str) -> None:
    with pytest.raises(ConfigError, match=r"node\.listen"):
        parse({"node": {"listen": "127.0.0.1:" + port}}, tmp_path)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml", env=NO_ENV)
    path = write(tmp_path, "[node\nlisten = ")
    with pytest.raises(ConfigError, match="not valid TOML") as e:
        load_config(path, env=NO_ENV)
    assert str(path) in str(e.value)


# ---- key files -------------------------------------------------------------------------------

SEED = bytes(range(32))


def test_key_file_is_written_0600_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "member.key"
    key = write_key_file(path, "member", SEED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert 'kind = "member"' in text and format_id(IdKind.MEMBER, key.public_key) in text
    again = read_key_file(path, "member")
    assert again.public_key == key.public_key and again.seed() == SEED
    assert read_key_file(path).public_key == key.public_key  # any kind


def test_key_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "node.key"
        write_key_file(path, "node")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "member.key"
    write_key_file(path, "member", SEED)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(path, "member", bytes(32))
    assert path.read_bytes() == before


def test_key_file_id_mismatch_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "member.key"
    key = write_key_file(path, "member", SEED)
    other = write_key_file(tmp_path / "other.key", "member", bytes(32))
    text = path.read_text().replace(format_id(IdKind.MEMBER, key.public_key), format_id(IdKind.MEMBER, other.public_key))
    path.write_text(text)
    with pytest.raises(KeyFileError, match="id does not match"):
        read_key_file(path, "member")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "member.key"
    write_key_file(path, "member", SEED)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="readable by others"):
        read_key_file(path, "member")


def test_key_file_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "member.key"
    write_key_file(path, "member", SEED)
    with pytest.raises(KeyFileError, match="is a member key, expected a node key"):
        read_key_file(path, "node")
    with pytest.raises(KeyFileError, match="key kind must be one of"):
        write_key_file(tmp_path / "x.key", "admin", SEED)
    assert not (tmp_path / "x.key").exists()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not toml [",
        'kind = "member"\n',
        'kind = "robot"\nid = "mem_x"\nseed = "00"\n',
        'kind = "member"\nid = "mem_x"\nseed = "zz"\n',
        'kind = "member"\nid = "mem_x"\nseed = "0011"\n',
    ],
)
def test_damaged_key_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "member.key"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        read_key_file(path, "member")


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file"):
        read_key_file(tmp_path / "absent.key")
