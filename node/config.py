"""Node configuration: one TOML file, every key known, every limit named.

The file lives in the data directory as ``coopnet.toml`` (``coopnet init`` writes it). Relative
paths in it are relative to the file's own folder. An unknown key or a value of the wrong type
or range is an error naming the file and the key. Two environment variables override the file:
``COOPNET_DATA_DIR`` (the data directory) and ``COOPNET_PORT`` (the listen port).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from protocol.ids import IdKind, parse_id
from protocol.limits import DEFAULT_ACTION_LIMITS
from protocol.peer import parse_origin

CONFIG_NAME = "coopnet.toml"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
# The admin listener (node/admin.py): loopback, and port 0 so that several nodes on one host never
# collide; the bound address is written to coopnet.admin-url, where ``coopnet admin`` finds it.
DEFAULT_ADMIN_LISTEN = "127.0.0.1:0"


class ConfigError(Exception):
    """A configuration problem, with the file and key it concerns in the message."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Node-side limits. Each is a key of the ``[limits]`` table."""

    max_request_bytes: int = 8 * 1024 * 1024  # HTTP request body
    max_batch_actions: int = 2000  # actions in one POST
    max_action_bytes: int = DEFAULT_ACTION_LIMITS.max_action_bytes  # may be lowered, not raised
    max_page: int = 1000  # items in one page of a listing
    max_pending: int = 10_000  # actions held waiting for a chain predecessor, node-wide
    max_pending_per_coop: int = 2000  # of those, in one co-op
    max_pending_per_author: int = 256  # of those, of one author in one co-op
    pending_floor: int = 64  # a co-op holding fewer is never refused for the node-wide bound
    pending_seconds: int = 86_400  # a pending action still waiting after this long is dropped
    max_group: int = 4096  # actions committed in one SQLite transaction
    verify_workers: int = 2  # processes validating large batches; 0 validates in the event loop
    max_clock_skew_ms: int = 600_000  # actions stamped further ahead of this node's clock are refused (held back by peers)
    # The HTTP surface (node/http.py): what a stranger's connections may cost.
    max_connections: int = 2048  # open HTTP connections; lowered to fit the open-file limit
    idle_timeout: float = 30.0  # seconds a keep-alive connection may wait for its next request
    header_timeout: float = 10.0  # seconds to send a complete request head
    body_timeout: float = 30.0  # seconds to send a request body
    max_header_bytes: int = 8190  # one request line or header line
    max_headers: int = 128  # header lines in one request
    max_head_bytes: int = 32 * 1024  # a whole request head: request line and every header
    max_body_bytes_in_flight: int = 32 * 1024 * 1024  # request bodies being read or decoded, node-wide
    body_budget_wait: float = 1.0  # seconds a body waits for room in that budget before 503 busy
    max_json_depth: int = 32  # containers nested in a JSON body
    log_repeat_interval: float = 10.0  # seconds between two log lines of one kind; the rest are counted
    # Readiness (GET /readyz): the node says it cannot take writes before it fails them.
    min_free_disk_bytes: int = 128 * 1024 * 1024  # free space on the data directory's filesystem
    writer_stall_timeout: float = 30.0  # seconds one group commit may run before the writer counts as stuck


FOUNDING_POLICIES = ("open", "invite", "closed")
UNKNOWN_AUTHOR_POLICIES = ("hold", "store")


@dataclass(frozen=True, slots=True)
class Admission:
    """The ``[admission]`` table: what this node takes from whom. Admission is local: it decides
    what this node stores, never what a stored action means (every node folds the same state)."""

    founding: str = "open"  # new co-ops from clients: open | invite (a token) | closed (federation.replicate only)
    unknown_authors: str = "hold"  # hold: quarantine actions of authors not known in their co-op; store: take them
    quarantine_per_author: int = 4  # held actions of one author in one co-op
    quarantine_per_coop: int = 256
    max_quarantine: int = 1024  # node-wide
    quarantine_seconds: int = 3600  # a held action whose author is still unknown after this long is dropped
    quota_author_bytes: int = 64 * 1024 * 1024  # stored bytes of one author in one co-op; 0: no quota
    quota_coop_bytes: int = 4 * 1024**3  # stored bytes of one co-op; 0: no quota
    quota_node_bytes: int = 16 * 1024**3  # stored bytes of every co-op together; 0: no quota
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For is believed
    # Client API token buckets: a rate per second and a burst; a rate of 0 turns the bucket off.
    read_rate: float = 20.0  # GET requests, per client address
    read_burst: int = 200
    read_token_bytes: int = 64 * 1024  # a read costs one token per started this many bytes of its answer
    write_rate: float = 100.0  # actions posted (a request costs its action count), per client address
    write_burst: int = 2000
    author_rate: float = 10.0  # actions stored, per author
    author_burst: int = 300
    join_rate: float = 0.02  # applications and new co-ops, per client address
    join_burst: int = 20
    apply_rate: float = 0.1  # applications, per co-op
    apply_burst: int = 30
    tarpit_seconds: float = 1.0  # a client over a bucket waits for its 429 (its Retry-After, at most this); 0: at once


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A bootstrap peer: where it listens and which node key it must prove it holds."""

    url: str
    node_id: str  # node_...


@dataclass(frozen=True, slots=True)
class Federation:
    """The ``[federation]`` table: whom this node replicates with, and what."""

    name: str = ""
    open: bool = False  # accept peer requests from nodes not listed in peers
    replicate: tuple[str, ...] | None = None  # co-op ids; None replicates every co-op it sees
    peers: tuple[PeerAddress, ...] = ()
    advertise_url: str = ""  # how peers reach this node; default http://<listen>
    fanout: int = 3  # peers each new action is pushed to
    anti_entropy_interval: float = 5.0  # seconds between reconciliations, jittered by +-50%
    request_timeout: float = 10.0  # seconds for one peer request
    max_peers: int = 64
    fetch_batch: int = 2000  # actions asked for in one fetch during catch-up
    refuse_seconds: float = 60.0  # how long a misbehaving peer is refused
    rate_limit: float = 50.0  # peer requests per second allowed from one peer (burst 2x)
    request_rate: float = 20.0  # peer requests per second this node sends to one peer (burst 2x)
    introductions: int = 4  # new nodes one peer may introduce per introduction_window
    introduction_window: float = 300.0  # seconds
    max_candidates: int = 64  # introduced nodes waiting to prove their key
    max_per_introducer: int = 8  # learned peers introduced by any one node
    max_per_network: int = 8  # learned peers in one /24 (IPv4), /48 (IPv6) or domain
    max_claims: int = 8  # co-ops new to this node, from one peer's list, checked per round
    forget_after: float = 7 * 24 * 3600.0  # seconds a learned peer may stay unreachable
    fault_hooks: bool = False  # cluster testing only: enables POST /_test/partition


@dataclass(frozen=True, slots=True)
class Admin:
    """The ``[admin]`` table: where the token-protected admin API listens ("" disables it)."""

    listen: str = DEFAULT_ADMIN_LISTEN

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def host(self) -> str:
        return _parse_listen(self.listen, "admin.listen")[0]

    @property
    def port(self) -> int:
        return _parse_listen(self.listen, "admin.listen")[1]


@dataclass(frozen=True, slots=True)
class Config:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path(".")
    key_file: Path = Path("node.key")  # relative to data_dir
    database: Path = Path("coopnet.sqlite3")  # relative to data_dir
    log_level: str = "info"
    log_format: str = "text"  # text | json (one object per line)
    synchronous: str = "full"
    limits: Limits = field(default_factory=Limits)
    federation: Federation = field(default_factory=Federation)
    admin: Admin = field(default_factory=Admin)
    admission: Admission = field(default_factory=Admission)
    source: Path | None = None  # the file this was loaded from

    @property
    def key_path(self) -> Path:
        return self.data_dir / self.key_file

    @property
    def database_path(self) -> Path:
        return self.data_dir / self.database

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _parse_listen(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: listen must look like '127.0.0.1:8470' (port 0: any free port), got {value!r}")
    return host.strip("[]"), int(port)


def _expect(where: str, value: Any, kind: type, *, minimum: int | None = None) -> Any:
    if kind is int:
        if type(value) is not int:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{where}: must be at least {minimum}, got {value}")
    elif not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _check_keys(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def parse_config(data: dict[str, Any], source: Path, env: dict[str, str] | None = None) -> Config:
    """Build a Config from parsed TOML; ``source`` names the file in errors and anchors paths."""
    env = dict(os.environ) if env is None else env
    name = str(source)
    _check_keys(name, data, {"node", "store", "limits", "federation", "admin", "admission"})
    node = data.get("node", {})
    store = data.get("store", {})
    limits_t = data.get("limits", {})
    fed_t = data.get("federation", {})
    admin_t = data.get("admin", {})
    adm_t = data.get("admission", {})
    tables = (("node", node), ("store", store), ("limits", limits_t), ("federation", fed_t), ("admin", admin_t), ("admission", adm_t))
    for section, table in tables:
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: [{section}] must be a table")
    _check_keys(f"{name}: [node]", node, {"listen", "data_dir", "key_file", "database", "log_level", "log_format"})
    _check_keys(f"{name}: [store]", store, {"synchronous"})
    _check_keys(f"{name}: [admin]", admin_t, {"listen"})
    limit_names = {f.name for f in fields(Limits)}
    _check_keys(f"{name}: [limits]", limits_t, limit_names)

    cfg = Config(source=source)
    base = source.parent
    if "listen" in node:
        host, port = _parse_listen(_expect(f"{name}: node.listen", node["listen"], str), f"{name}: node.listen")
        cfg = replace(cfg, host=host, port=port)
    data_dir = base / _expect(f"{name}: node.data_dir", node.get("data_dir", "."), str)
    cfg = replace(cfg, data_dir=data_dir)
    for key in ("key_file", "database"):
        if key in node:
            cfg = replace(cfg, **{key: Path(_expect(f"{name}: node.{key}", node[key], str))})
    if "log_level" in node:
        level = _expect(f"{name}: node.log_level", node["log_level"], str).lower()
        if level not in LOG_LEVELS:
            raise ConfigError(f"{name}: node.log_level must be one of {', '.join(LOG_LEVELS)}, got {node['log_level']!r}")
        cfg = replace(cfg, log_level=level)
    if "log_format" in node:
        fmt = _expect(f"{name}: node.log_format", node["log_format"], str).lower()
        if fmt not in LOG_FORMATS:
            raise ConfigError(f"{name}: node.log_format must be one of {', '.join(LOG_FORMATS)}, got {node['log_format']!r}")
        cfg = replace(cfg, log_format=fmt)
    if "listen" in admin_t:
        admin_listen = _expect(f"{name}: admin.listen", admin_t["listen"], str)
        if admin_listen:
            host, port = _parse_listen(admin_listen, f"{name}: admin.listen")
            admin_listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cfg = replace(cfg, admin=Admin(admin_listen))
    if "synchronous" in store:
        mode = _expect(f"{name}: store.synchronous", store["synchronous"], str).lower()
        if mode not in ("full", "normal"):
            raise ConfigError(f"{name}: store.synchronous must be 'full' or 'normal', got {store['synchronous']!r}")
        cfg = replace(cfg, synchronous=mode)
    lim = {k: _limit(f"{name}: limits.{k}", k, v) for k, v in limits_t.items()}
    limits = Limits(**lim)
    if limits.max_action_bytes > DEFAULT_ACTION_LIMITS.max_action_bytes:
        raise ConfigError(
            f"{name}: limits.max_action_bytes cannot exceed the protocol's {DEFAULT_ACTION_LIMITS.max_action_bytes}, got {limits.max_action_bytes}"
        )
    if limits.max_request_bytes < limits.max_action_bytes:
        raise ConfigError(f"{name}: limits.max_request_bytes must be at least limits.max_action_bytes")
    if limits.max_body_bytes_in_flight < limits.max_request_bytes:
        raise ConfigError(f"{name}: limits.max_body_bytes_in_flight must be at least limits.max_request_bytes")
    cfg = replace(
        cfg,
        limits=limits,
        federation=parse_federation(fed_t, f"{name}: federation"),
        admission=parse_admission(adm_t, f"{name}: admission"),
    )
    return apply_env(cfg, env)


def parse_admission(t: dict[str, Any], where: str) -> Admission:
    """Parse an ``[admission]`` table."""
    _check_keys(where, t, {f.name for f in fields(Admission)})
    kw: dict[str, Any] = {}
    for f in fields(Admission):
        if f.name not in t:
            continue
        v, at = t[f.name], f"{where}.{f.name}"
        if f.name == "founding" or f.name == "unknown_authors":
            allowed = FOUNDING_POLICIES if f.name == "founding" else UNKNOWN_AUTHOR_POLICIES
            if v not in allowed:
                raise ConfigError(f"{at} must be one of {', '.join(repr(x) for x in allowed)}, got {v!r}")
            kw[f.name] = v
        elif f.name == "trusted_proxies":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f'{at}: expected a list of addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8"]')
            for x in v:
                try:
                    ipaddress.ip_network(x, strict=False)
                except ValueError:
                    raise ConfigError(f"{at}: {x!r} is not an IP address or network") from None
            kw[f.name] = tuple(v)
        elif f.type == "float":
            if type(v) not in (int, float) or v < 0:
                what = "a number of seconds, 0 or more" if f.name == "tarpit_seconds" else "a rate of 0 (off) or more per second"
                raise ConfigError(f"{at}: expected {what}, got {v!r}")
            kw[f.name] = float(v)
        else:
            kw[f.name] = _expect(at, v, int, minimum=0 if f.name.startswith("quota_") else 1)
    return Admission(**kw)


_LIMIT_FLOATS = {f.name for f in fields(Limits) if isinstance(f.default, float)}


def _limit(where: str, key: str, value: Any) -> Any:
    if key in _LIMIT_FLOATS:  # seconds: any positive number
        if type(value) not in (int, float) or value <= 0:
            raise ConfigError(f"{where}: expected a positive number of seconds, got {value!r}")
        return float(value)
    return _expect(where, value, int, minimum=0 if key == "verify_workers" else 1)


_FED_FLOATS = {
    "anti_entropy_interval",
    "request_timeout",
    "refuse_seconds",
    "rate_limit",
    "request_rate",
    "introduction_window",
    "forget_after",
}
_FED_INTS = {"fanout", "max_peers", "fetch_batch", "introductions", "max_candidates", "max_per_introducer", "max_per_network", "max_claims"}


def _origin(where: str, url: str) -> str:
    """A peer or advertised URL: an origin (scheme://host:port); one trailing slash is dropped."""
    url = url[:-1] if url.endswith("/") and not url.endswith("//") else url
    try:
        parse_origin(url)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    return url


def parse_federation(t: dict[str, Any], where: str) -> Federation:
    """Parse a ``[federation]`` table (also the body of a federation file, minus node settings)."""
    allowed = {f.name for f in fields(Federation)} | {"coops"}
    _check_keys(where, t, allowed)
    kw: dict[str, Any] = {}
    if "name" in t:
        kw["name"] = _expect(f"{where}.name", t["name"], str)
    for key in ("open", "fault_hooks"):
        if key in t:
            kw[key] = _expect(f"{where}.{key}", t[key], bool)
    if "advertise_url" in t:
        url = _expect(f"{where}.advertise_url", t["advertise_url"], str)
        kw["advertise_url"] = _origin(f"{where}.advertise_url", url) if url else ""
    for key in _FED_INTS:
        if key in t:
            kw[key] = _expect(f"{where}.{key}", t[key], int, minimum=1 if key != "fanout" else 0)
    for key in _FED_FLOATS:
        if key in t:
            v = t[key]
            if type(v) not in (int, float) or v <= 0:
                raise ConfigError(f"{where}.{key}: expected a positive number of seconds, got {v!r}")
            kw[key] = float(v)
    if "replicate" in t and "coops" in t:
        raise ConfigError(f"{where}: give replicate or coops, not both")
    rep = t.get("replicate", t.get("coops", "all"))
    key = "replicate" if "replicate" in t else "coops"
    if rep == "all":
        kw["replicate"] = None
    else:
        if not isinstance(rep, list) or not all(isinstance(c, str) for c in rep):
            raise ConfigError(f'{where}.{key}: expected "all" or a list of co-op ids')
        for c in rep:
            try:
                parse_id(IdKind.COOP, c)
            except ValueError as e:
                raise ConfigError(f"{where}.{key}: {e}") from None
        kw["replicate"] = tuple(rep)
    if "peers" in t:
        peers = t["peers"]
        if not isinstance(peers, list):
            raise ConfigError(f"{where}.peers: expected a list of {{url, id}} tables")
        out = []
        for i, p in enumerate(peers):
            w = f"{where}.peers[{i}]"
            if not isinstance(p, dict):
                raise ConfigError(f"{w}: expected a table with url and id")
            _check_keys(w, p, {"url", "id"})
            url = _origin(f"{w}.url", _expect(f"{w}.url", p.get("url"), str))
            node_id = _expect(f"{w}.id", p.get("id"), str)
            try:
                parse_id(IdKind.NODE, node_id)
            except ValueError as e:
                raise ConfigError(f"{w}.id: {e}") from None
            out.append(PeerAddress(url, node_id))
        kw["peers"] = tuple(out)
    return Federation(**kw)


def apply_env(cfg: Config, env: dict[str, str]) -> Config:
    if env.get("COOPNET_DATA_DIR"):
        cfg = replace(cfg, data_dir=Path(env["COOPNET_DATA_DIR"]))
    if env.get("COOPNET_PORT"):
        port = env["COOPNET_PORT"]
        if not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
            raise ConfigError(f"environment COOPNET_PORT: expected a port number 0-65535, got {port!r}")
        cfg = replace(cfg, port=int(port))
    return cfg


def load_config(path: Path | str, env: dict[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (create one with 'coopnet init')") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, path, env)


def load_federation_file(path: Path | str) -> Federation:
    """A federation file: name, open, coops and bootstrap peers, as its members hand it out."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such federation file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    fed = parse_federation(data, str(path))
    if not fed.name:
        raise ConfigError(f"{path}: a federation file needs a name")
    return fed


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON strings are valid TOML basic strings


def render_federation(fed: Federation, advertise_url: str = "") -> str:
    """The ``[federation]`` table for ``fed``: every setting written out, so nothing from a
    federation file is lost on the way into a node's config."""
    replicate = '"all"' if fed.replicate is None else "[" + ", ".join(_toml_str(c) for c in fed.replicate) + "]"
    lines = [
        "[federation]",
        f"name = {_toml_str(fed.name)}",
        f"open = {'true' if fed.open else 'false'}          # true: any node with a valid record may join",
        f"replicate = {replicate}",
        f"advertise_url = {_toml_str(advertise_url or fed.advertise_url)}   # how peers reach this node; empty: the listen address",
        f"fanout = {fed.fanout}",
        f"anti_entropy_interval = {fed.anti_entropy_interval!r}",
        f"request_timeout = {fed.request_timeout!r}",
        f"max_peers = {fed.max_peers}",
        f"fetch_batch = {fed.fetch_batch}",
        f"refuse_seconds = {fed.refuse_seconds!r}",
        f"rate_limit = {fed.rate_limit!r}",
        f"request_rate = {fed.request_rate!r}           # requests/s this node sends to one peer; keep below the peers' rate_limit",
        f"introductions = {fed.introductions}              # new nodes one peer may introduce per introduction_window",
        f"introduction_window = {fed.introduction_window!r}",
        f"max_candidates = {fed.max_candidates}            # introduced nodes waiting to prove their key",
        f"max_per_introducer = {fed.max_per_introducer}          # learned peers introduced by any one node",
        f"max_per_network = {fed.max_per_network}             # learned peers in one /24, /48 or domain",
        f"max_claims = {fed.max_claims}                  # co-ops new to this node checked per round, from one peer's list",
        f"forget_after = {fed.forget_after!r}        # seconds a learned peer may stay unreachable before it is dropped",
    ]
    if fed.fault_hooks:
        lines.append("fault_hooks = true   # testing only")
    for p in fed.peers:
        lines += ["", "[[federation.peers]]", f"url = {_toml_str(p.url)}", f"id = {_toml_str(p.node_id)}"]
    return "\n".join(lines) + "\n"


def render_config(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "info",
    federation: Federation | None = None,
    advertise_url: str = "",
    admin_listen: str = DEFAULT_ADMIN_LISTEN,
) -> str:
    """The config file ``coopnet init`` writes: every setting shown with its default."""
    lim = Limits()
    limit_lines = "\n".join(f"# {f.name} = {getattr(lim, f.name)}" for f in fields(Limits))
    adm = Admission()
    admission_lines = "\n".join(f"# {f.name} = {_toml_default(getattr(adm, f.name))}" for f in fields(Admission))
    fed_text = render_federation(federation, advertise_url) if federation is not None else render_federation(Federation(), advertise_url)
    return f"""# coopnet node configuration. Paths are relative to this file's folder.
# Environment overrides: COOPNET_DATA_DIR, COOPNET_PORT.

[node]
listen = "{host}:{port}"
data_dir = "."
key_file = "node.key"          # the node's Ed25519 key (0600); never share it
database = "coopnet.sqlite3"
log_level = "{log_level}"        # debug | info | warning | error
log_format = "text"         # text | json (one JSON object per line: ts, level, logger, message, extras)

[admin]
# The admin API (coopnet admin ...): every request needs the token in admin.token (0600, in the
# data directory). Keep it on loopback. Port 0: any free port (see coopnet.admin-url); "" disables it.
listen = "{admin_listen}"

[store]
# full: every acknowledged action survives kill -9, power loss and OS crashes (fsync per commit).
# normal: survives kill -9 of the node; the last commits may be lost on power loss.
synchronous = "full"

[limits]
# Uncomment to change; the values shown are the defaults.
{limit_lines}

[admission]
# What this node takes from whom (docs/OPERATIONS.md, "Admission"). On a node reachable from the
# internet, set founding = "invite" or "closed", and trusted_proxies behind a reverse proxy.
{admission_lines}

{fed_text}"""


def _toml_default(v: object) -> str:
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_toml_str(x) for x in v) + "]"
    return repr(v)
