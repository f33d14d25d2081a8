"""node/statuses.py is the one table from codes to HTTP statuses; docs/PROTOCOL.md shows it."""

from __future__ import annotations

import re
from pathlib import Path

from node.statuses import AUTH_STATUS, HTTP_STATUS, REJECT_STATUS, status_for
from protocol import RejectCode
from protocol.peer import AuthCode
from tests.conftest import NodeClient, coop_id, make_genesis, member_key

PROTOCOL = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text()


def _table_after(header: str, start: str) -> dict[str, int]:
    """``| codes | status |`` rows of the first table after ``start`` whose header is ``header``."""
    text = PROTOCOL[PROTOCOL.index(start) :]
    text = text[text.index(header) :]
    out: dict[str, int] = {}
    for line in text.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        codes, status = (c.strip() for c in line.strip("|").split("|")[:2])
        for code in re.findall(r"`([a-z_]+)`", codes):
            out[code] = int(status)
    return out


def test_every_code_has_a_status() -> None:
    assert set(REJECT_STATUS) == set(RejectCode)
    assert set(AUTH_STATUS) == set(AuthCode)
    for code in (*RejectCode, *AuthCode, *HTTP_STATUS):
        assert 400 <= status_for(code) < 600


def test_the_same_text_in_two_vocabularies_keeps_its_own_status() -> None:
    assert status_for(RejectCode.BAD_SIGNATURE) == 422  # an action's signature
    assert status_for(AuthCode.BAD_SIGNATURE) == 401  # a peer request's signature
    assert status_for("bad_signature") == 422  # a plain string is a reject code
    assert status_for(RejectCode.UNKNOWN_COOP) == 422 and status_for(RejectCode.UNKNOWN_COOP, missing=True) == 404
    assert status_for("no_such_code") == 500


def test_the_client_api_table_in_the_docs_is_the_code_table() -> None:
    assert _table_after("| code | status |", "### 9.2") == {c.value: s for c, s in REJECT_STATUS.items()}


def test_the_peer_api_table_in_the_docs_is_the_code_table() -> None:
    docs = _table_after("| `error` | Status | When |", "### 10.1")
    for code, status in AUTH_STATUS.items():
        assert docs[code.value] == status, code
    for code in (RejectCode.MALFORMED, RejectCode.NOT_CANONICAL, RejectCode.TOO_LARGE, RejectCode.BAD_SCHEMA, RejectCode.OUT_OF_SCOPE):
        assert docs[code.value] == REJECT_STATUS[code], code
    assert docs["partitioned"] == HTTP_STATUS["partitioned"]


def test_every_reject_code_is_documented() -> None:
    section = PROTOCOL[PROTOCOL.index("## 7. Reject codes") : PROTOCOL.index("## 8. Test vectors")]
    for code in RejectCode:
        assert f"| `{code.value}` |" in section, code


async def test_every_http_layer_answers_with_the_tables_status(client: NodeClient) -> None:
    genesis = make_genesis(member_key(1))
    assert (await client.post([genesis])).status == 200
    coop = coop_id(genesis)
    unknown = "coop_" + "a" * 52
    for path, status, code in [
        (f"/api/v1/coops/{unknown}", 404, "unknown_coop"),  # the client API: a lookup of what is not here
        (f"/api/v1/coops/{unknown}/state", 404, "unknown_coop"),  # the governance API, the same
        (f"/api/v1/coops/{coop}/results/{'act_' + 'a' * 52}", 404, "not_found"),
        (f"/api/v1/coops/{coop}/actions?limit=0", 400, "bad_request"),
        ("/api/v1/actions/xyz", 400, "bad_id"),
    ]:
        reply = await client.get(path)
        assert (reply.status, reply.json["error"]) == (status, code), path
