"""The peer layer without a network (issue #10, findings 5-7): node URLs are origins, records are
refused with the right consequence, the start floor of authentication, and the peer book's rules
for introductions, candidates, slots and forgetting, driven by an explicit clock.

The multi-node versions of these findings, against real nodes, are in tests/test_peer_hardening.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from node.cli import main as cli_main
from node.config import ConfigError, Federation, PeerAddress, parse_federation, render_federation
from node.metrics import Metrics
from node.peers import PENALTY, PeerBook, TokenBucket, network_group
from protocol import codec
from protocol.ids import IdKind, format_id
from protocol.keys import SigningKey
from protocol.peer import (
    NODE_RECORD,
    AuthCode,
    BadRecordSignature,
    NodeRecord,
    PeerAuthError,
    authenticate_request,
    decode_node_record,
    parse_origin,
    sign_node_record,
    sign_request,
)

TS = 1_700_000_000_000
FED = "book-test"


def key(n: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"test-peer-book:%d" % n).digest())


def text(k: SigningKey) -> str:
    return format_id(IdKind.NODE, k.public_key)


# ==== origins =====================================================================================

ORIGINS = [
    ("http://127.0.0.1:8470", ("http", "127.0.0.1", 8470)),
    ("https://node-a.example.org", ("https", "node-a.example.org", None)),
    ("https://Node-A.Example.org:443", ("https", "Node-A.Example.org", 443)),
    ("http://localhost:1", ("http", "localhost", 1)),
    ("http://[::1]:8470", ("http", "::1", 8470)),
    ("http://[2001:db8::1]", ("http", "2001:db8::1", None)),
    ("http://a:65535", ("http", "a", 65535)),
    ("http://0.0.0.0:80", ("http", "0.0.0.0", 80)),
]

NOT_ORIGINS = [
    "http://127.0.0.1:8470/",  # even the root path: the origin is written without it
    "http://127.0.0.1:8470/peer",
    "http://127.0.0.1:8470/admin?drop=1",
    "http://127.0.0.1:8470?x=1",
    "http://127.0.0.1:8470#frag",
    "http://user@127.0.0.1:8470",
    "http://user:pw@127.0.0.1",
    "ftp://127.0.0.1:8470",
    "HTTP://127.0.0.1",
    "http//127.0.0.1",
    "http://",
    "http://:8470",
    "http://127.0.0.1:",
    "http://127.0.0.1:0",
    "http://127.0.0.1:08470",
    "http://127.0.0.1:65536",
    "http://127.0.0.1:84a0",
    "http://256.1.1.1",
    "http://1.2.3",
    "http://01.2.3.4",
    "http://a..b",
    "http://-a.example",
    "http://a-.example",
    "http://a_b.example",
    "http://[::1",
    "http://[::1]x",
    "http://[fe80::1%eth0]",
    "http://[1.2.3.4]",
    "http://exämple.org",
    "http://a b",
    "http://" + "a." * 127 + "a",  # 255 bytes: above 253
    "",
]


@pytest.mark.parametrize(("url", "parts"), ORIGINS)
def test_origins_parse(url: str, parts: tuple[str, str, int | None]) -> None:
    o = parse_origin(url)
    assert (o.scheme, o.host, o.port) == parts


@pytest.mark.parametrize("url", NOT_ORIGINS)
def test_anything_but_an_origin_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_origin(url)


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(st.text(alphabet="htps:/[]@?#.%-_0123456789abcdef:ABC ", max_size=40))
def test_an_origin_never_carries_a_path_query_fragment_or_user(url: str) -> None:
    try:
        o = parse_origin(url)
    except ValueError:
        return
    rest = url.split("://", 1)[1]
    assert not any(c in rest for c in "/?#@%") and o.scheme in ("http", "https")


def _signed_record(k: SigningKey, url: str, *, ts: int = TS, federation: str = FED) -> bytes:
    """A record signed as given, bypassing ``sign_node_record``'s own checks (as an attacker would)."""
    content = {"all_coops": True, "coops": [], "federation": federation, "node": k.public_key, "ts": ts, "url": url}
    return codec.encode({"record": content, "sig": k.sign(NODE_RECORD + codec.encode(content))})


@pytest.mark.parametrize("url", NOT_ORIGINS[:8])
def test_the_record_decoder_refuses_urls_that_are_not_origins(url: str) -> None:
    data = _signed_record(key(1), url)
    with pytest.raises(ValueError) as info:
        decode_node_record(data)
    assert not isinstance(info.value, BadRecordSignature)  # a rule broken, not a forgery
    with pytest.raises(ValueError):
        sign_node_record(key(1), url=url, federation=FED, coops=[], all_coops=True, ts=TS)


def test_a_forged_record_is_told_apart_from_a_record_against_the_rules() -> None:
    good = _signed_record(key(1), "http://127.0.0.1:1")
    outer = codec.decode(good)
    content = dict(outer["record"])
    content["url"] = "http://127.0.0.1:2"  # altered after signing
    with pytest.raises(BadRecordSignature):
        decode_node_record(codec.encode({"record": content, "sig": outer["sig"]}))
    # Signed by another key than its node: forged too, whatever else is wrong with it.
    content = {"all_coops": True, "coops": [], "federation": FED, "node": key(1).public_key, "ts": TS, "url": "http://x/y"}
    with pytest.raises(BadRecordSignature):
        decode_node_record(codec.encode({"record": content, "sig": key(2).sign(NODE_RECORD + codec.encode(content))}))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8470//", "http://h/x", "http://h/x/", "http://h?q", "http://u@h", "ftp://h"])
def test_config_peer_and_advertised_urls_must_be_origins(url: str) -> None:
    with pytest.raises(ConfigError, match=r"origin|http"):
        parse_federation({"peers": [{"url": url, "id": text(key(1))}]}, "f")
    with pytest.raises(ConfigError, match=r"origin|http"):
        parse_federation({"advertise_url": url}, "f")


def test_config_urls_may_end_in_one_slash_which_is_dropped() -> None:
    fed = parse_federation({"peers": [{"url": "http://127.0.0.1:1/", "id": text(key(1))}], "advertise_url": "https://me.example/"}, "f")
    assert fed.peers[0].url == "http://127.0.0.1:1" and fed.advertise_url == "https://me.example"


# ==== the start floor (finding 7, sans-IO) ========================================================

ME = key(100)
SENDER = key(101)


def _auth(ts: int, now: int, not_before: int) -> bytes:
    headers = sign_request(SENDER, method="POST", path="/peer/v1/push", body=b"x", ts=ts, receiver=ME.public_key)
    sender, _, _ = authenticate_request(
        headers, method="POST", path="/peer/v1/push", body=b"x", receiver=ME.public_key, now=now, not_before=not_before
    )
    return sender


def test_a_request_signed_before_the_receiver_started_is_stale() -> None:
    assert _auth(TS, TS + 10, not_before=TS) == SENDER.public_key  # signed at the very start: fine
    with pytest.raises(PeerAuthError) as info:
        _auth(TS - 1, TS + 10, not_before=TS)  # within the window, but signed before the start
    assert info.value.code is AuthCode.STALE and "before this node started" in info.value.message
    assert _auth(TS - 1, TS + 10, not_before=0) == SENDER.public_key  # no floor: the window alone


# ==== the peer book ===============================================================================


class Clock:
    def __init__(self) -> None:
        self.now = TS

    def __call__(self) -> int:
        return self.now


def book(clock: Clock, *, peers: tuple[SigningKey, ...] = (), open_federation: bool = True, **fed: Any) -> PeerBook:
    federation = Federation(
        name=FED,
        open=open_federation,
        peers=tuple(PeerAddress(f"http://10.0.0.{i + 1}:8470", text(k)) for i, k in enumerate(peers)),
        **fed,
    )
    return PeerBook(ME.public_key, federation, clock, random.Random(0), Metrics())


def rec(n: int, url: str | None = None, *, ts: int = TS, federation: str = FED) -> NodeRecord:
    return sign_node_record(
        key(n), url=url or f"http://10.{n % 250}.{n // 250}.1:8470", federation=federation, coops=[], all_coops=True, ts=ts
    )


def prove_all(b: PeerBook) -> list[bytes]:
    """Every candidate proves its key (as a probe would find): returns those that took a slot."""
    out = []
    for c in b.take_candidates():
        if b.learn(c.record, introducer=c.introducer):
            out.append(c.record.node)
    return out


def test_network_groups() -> None:
    assert network_group("http://10.1.2.3:1") == network_group("http://10.1.2.200:9") == "10.1.2.0/24"
    assert network_group("http://10.1.3.3:1") != network_group("http://10.1.2.3:1")
    assert network_group("http://[2001:db8:1:2::5]:1") == network_group("http://[2001:db8:1:ffff::9]") == "2001:db8:1::/48"
    assert network_group("https://a.node.Example.org") == network_group("http://b.example.org:1") == "example.org"
    assert network_group("http://localhost:1") == "localhost"


def test_an_introducer_introduces_at_most_introductions_per_window() -> None:
    clock = Clock()
    b = book(clock, introductions=4, introduction_window=300.0)
    introducer = key(700).public_key
    taught = [b.introduce(rec(n), introducer) for n in range(1, 256)]
    assert taught.count(True) == 4 and len(b.candidates) == 4
    assert all(c.introducer == introducer for c in b.candidates.values())
    clock.now += 299_000
    assert not b.introduce(rec(300), introducer)  # still the same window
    assert b.introduce(rec(301), key(701).public_key)  # another introducer has its own budget
    clock.now += 2_000
    assert b.introduce(rec(302), introducer)  # the first introductions left the window
    # Nothing took a slot yet: a candidate is not a peer until it proves its key.
    assert b.peers == {}


def test_a_nodes_own_record_and_updates_of_known_peers_cost_no_budget() -> None:
    clock = Clock()
    b = book(clock, introductions=1)
    s = key(7).public_key
    assert b.introduce(rec(7), s)  # the sender's own record: a candidate, free
    assert b.introduce(rec(1), s)  # one introduction
    assert not b.introduce(rec(2), s)
    assert set(prove_all(b)) == {key(7).public_key, key(1).public_key}
    # A newer record of a peer at the URL it proved: taken at once, no probe, no budget.
    assert b.introduce(rec(1, ts=TS + 5), s)
    assert b.peers[key(1).public_key].record.ts == TS + 5 and not b.candidates  # type: ignore[union-attr]
    # At another URL: the peer keeps its proven URL until the new one is proven in turn.
    assert b.introduce(rec(1, "http://10.9.9.9:1", ts=TS + 6), s)
    assert b.peers[key(1).public_key].url == rec(1).url and key(1).public_key in b.candidates


def test_records_of_other_federations_and_strangers_of_a_closed_one_are_not_introduced() -> None:
    clock = Clock()
    b = book(clock, open_federation=False, peers=(key(1),))
    assert not b.introduce(rec(2), key(1).public_key)  # not listed
    assert not b.introduce(rec(1, federation="other"), key(1).public_key)
    assert not b.introduce(rec(100), key(1).public_key)  # this node itself
    assert not b.candidates


def test_candidates_are_bounded_and_a_flooding_introducer_gives_way_first() -> None:
    clock = Clock()
    b = book(clock, introductions=8, max_candidates=10)
    for n in range(1, 9):
        assert b.introduce(rec(n), key(500).public_key)
    for n in range(9, 11):
        assert b.introduce(rec(n), key(501).public_key)
    assert len(b.candidates) == 10
    assert b.introduce(rec(20), key(502).public_key)  # full: the oldest of the largest introducer leaves
    assert len(b.candidates) == 10 and key(1).public_key not in b.candidates
    assert {key(9).public_key, key(10).public_key, key(20).public_key} <= set(b.candidates)


def test_a_failed_probe_is_not_retried_within_the_window() -> None:
    clock = Clock()
    b = book(clock, introduction_window=60.0)
    assert b.introduce(rec(1), key(9).public_key)
    (c,) = b.take_candidates()
    b.probe_failed(c.record.node, c.record.ts)
    assert not b.introduce(rec(1), key(10).public_key) and not b.candidates
    clock.now += 60_001
    assert b.introduce(rec(1), key(10).public_key)
    (c,) = b.take_candidates()
    b.probe_failed(c.record.node, c.record.ts)
    # Someone relayed an old record (a URL it left): its own newer record is still tried at once.
    assert b.introduce(rec(1, "http://10.200.0.1:1", ts=TS + 1), key(1).public_key)


def test_peers_keep_their_introduction_budget_when_strangers_fill_the_memory_of_budgets() -> None:
    clock = Clock()
    b = book(clock, peers=(key(1),), max_peers=2)  # room for the budgets of 4 x 2 introducers
    strangers = [key(800 + i).public_key for i in range(8)]
    for i, s in enumerate(strangers):
        assert b.introduce(rec(300 + i), s)
    assert not b.introduce(rec(200), key(900).public_key)  # a ninth stranger: no room, try later
    assert b.introduce(rec(201), key(1).public_key)  # a configured peer always has its budget


def test_slots_keep_diversity_by_introducer_and_network() -> None:
    clock = Clock()
    b = book(clock, introductions=64, max_per_introducer=3, max_per_network=2)
    evil = key(600).public_key
    # One introducer, many networks: at most max_per_introducer slots.
    for n in range(1, 11):
        b.introduce(rec(n), evil)
    assert len(prove_all(b)) == 3
    # Many introducers, one network: at most max_per_network slots for that /24.
    for n in range(20, 26):
        b.introduce(rec(n, f"http://192.0.2.{n}:8470"), key(700 + n).public_key)
    assert len(prove_all(b)) == 2
    assert sum(p.introducer == evil for p in b.peers.values()) == 3
    assert sum(network_group(p.url) == "192.0.2.0/24" for p in b.peers.values()) == 2


def test_a_full_table_makes_room_from_its_most_crowded_group_never_from_configured_peers() -> None:
    clock = Clock()
    configured = tuple(key(n) for n in range(900, 904))
    b = book(clock, peers=configured, max_peers=12, introductions=64, max_per_introducer=8, max_per_network=8)
    evil = key(601).public_key
    for n in range(1, 9):  # 8 slots from one introducer, all on one /24
        b.introduce(rec(n, f"http://198.51.100.{n}:1"), evil)
    assert len(prove_all(b)) == 8 and len(b.peers) == 12
    honest = rec(50, "http://203.0.113.7:8470")
    assert b.introduce(honest, honest.node)  # it announced itself
    assert prove_all(b) == [honest.node]
    assert len(b.peers) == 12 and all(k.public_key in b.peers for k in configured)
    assert sum(p.introducer == evil for p in b.peers.values()) == 7
    # A second node of the same crowded group does not push out its own kind.
    same = rec(60, "http://198.51.100.60:1")
    b.introduce(same, evil)
    assert prove_all(b) == [] and same.node not in b.peers


def test_configured_peers_have_no_introducer_and_are_never_forgotten() -> None:
    clock = Clock()
    b = book(clock, peers=(key(1),), forget_after=10.0)
    b.introduce(rec(2), key(2).public_key)
    prove_all(b)
    c, learned = b.peers[key(1).public_key], b.peers[key(2).public_key]
    assert c.origin == "config" and c.introducer is None and learned.origin == "learned"
    b.failure(c, "down")
    b.failure(learned, "down")
    clock.now += 9_000
    assert b.forget_dead() == []
    clock.now += 1_001
    assert b.forget_dead() == [key(2).public_key]
    assert key(1).public_key in b.peers and b.peers[key(1).public_key].state(clock.now) in ("backoff", "retrying")
    assert [p["id"] for p in b.view()] == [text(key(1))]


def test_a_learned_peer_that_answers_is_kept_and_an_idle_inbound_entry_is_dropped() -> None:
    clock = Clock()
    b = book(clock, forget_after=10.0)
    b.introduce(rec(2), key(2).public_key)
    prove_all(b)
    b.seen_inbound(key(3).public_key)
    for _ in range(5):
        clock.now += 5_000
        b.success(b.peers[key(2).public_key])
    assert b.forget_dead() == [key(3).public_key]  # never called back within forget_after
    assert set(b.peers) == {key(2).public_key}


# ==== rate limits: an honest sender that slows down when told is never penalised ===================


def test_the_token_bucket_tells_when_to_retry_and_penalises_only_a_sender_that_does_not_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(5.0, clock)  # bursts of 10
    k = b"k" * 32
    assert all(bucket.check(k).ok for _ in range(10))
    v = bucket.check(k)
    assert not v.ok and not v.excessive and 0 < v.retry_after <= 1.0
    # A few requests already in flight arrive before the sender heard: still not penalised.
    assert [bucket.check(k).excessive for _ in range(3)] == [False] * 3
    # Waiting as told: served again.
    clock.now += int(bucket.check(k).retry_after * 1000) + 1
    assert bucket.check(k).ok
    assert not bucket.check(k).ok  # the burst it had saved is spent
    # A sender that ignores the answers runs up a debt; beyond a burst of it, each refusal is an offence.
    verdicts = [bucket.check(k) for _ in range(40)]
    assert not any(v.ok for v in verdicts)
    assert not verdicts[0].excessive and verdicts[-1].excessive
    assert sum(v.excessive for v in verdicts) <= 40 - 5  # a grace of a few in flight
    assert verdicts[-1].retry_after > verdicts[0].retry_after


# ==== the documents say what the code does =======================================================

ROOT = Path(__file__).resolve().parent.parent


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def test_every_federation_setting_is_documented_and_rendered_with_its_default() -> None:
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    block = ops[ops.index("\n[federation]\n") : ops.index("[[federation.peers]]")]
    rendered = render_federation(Federation(fault_hooks=True))
    defaults = Federation()
    for f in fields(Federation):
        if f.name in ("name", "peers", "replicate"):
            continue
        line = f"{f.name} = {_toml(getattr(defaults, f.name))}"
        assert re.search(rf"^{re.escape(line)}(\s|$)", block, re.M), f"docs/OPERATIONS.md lacks {line!r}"
        if f.name != "fault_hooks":
            assert re.search(rf"^{re.escape(line)}(\s|$)", rendered, re.M), f"coopnet init does not write {line!r}"


def test_the_penalty_table_is_the_code() -> None:
    doc = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    table = doc[doc.index("| Offence | When | Points |") :]
    rows: dict[str, float] = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = float(cells[-1])
    assert rows == {k: v for k, v in PENALTY.items() if k != "bad_key"}  # bad_key: counted as bad_signature
    assert PENALTY["bad_key"] == PENALTY["bad_signature"]


@pytest.mark.parametrize("url", ["http://me.example/coopnet", "https://me.example?x=1", "ftp://me.example"])
def test_init_refuses_an_advertised_url_that_is_not_an_origin_before_writing_anything(tmp_path: Path, url: str) -> None:
    result = CliRunner().invoke(cli_main, ["init", "--data-dir", str(tmp_path / "d"), "--advertise-url", url])
    assert result.exit_code != 0 and "--advertise-url" in result.output
    assert not (tmp_path / "d").exists()


def test_init_takes_an_advertised_origin(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_main, ["init", "--data-dir", str(tmp_path / "d"), "--advertise-url", "https://me.example:8443/"])
    assert result.exit_code == 0, result.output
    assert "https://me.example:8443" in (tmp_path / "d" / "coopnet.toml").read_text()
