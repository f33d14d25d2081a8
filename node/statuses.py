"""The one table from error codes to HTTP statuses, for every HTTP layer (client, peer, governance).

Codes are the stable vocabulary (``protocol.RejectCode`` for actions and messages,
``protocol.peer.AuthCode`` for peer authentication, and a few codes of the HTTP layer itself);
statuses are only an HTTP rendering of them, decided here and nowhere else. A request that names
a resource in its path that is not here (``GET /api/v1/coops/{coop}`` of an unknown co-op) is
``404`` whatever the code says about it: ``status_for(code, missing=True)``.

``docs/PROTOCOL.md`` sections 9.2 and 10.1 show these tables; ``tests/test_statuses.py`` holds the
docs to them.
"""

from __future__ import annotations

from protocol import RejectCode
from protocol.peer import AuthCode

REJECT_STATUS: dict[RejectCode, int] = {
    RejectCode.MALFORMED: 400,
    RejectCode.NOT_CANONICAL: 400,
    RejectCode.BAD_ID: 400,
    RejectCode.TOO_LARGE: 413,
    RejectCode.BAD_SCHEMA: 422,
    RejectCode.UNSUPPORTED_VERSION: 422,
    RejectCode.BAD_KEY: 422,
    RejectCode.BAD_SIGNATURE: 422,
    RejectCode.BAD_BODY: 422,
    RejectCode.UNKNOWN_COOP: 422,
    RejectCode.OUT_OF_SCOPE: 422,
    RejectCode.BOGUS_PROOF: 422,
    RejectCode.CHAIN_CONFLICT: 409,
    RejectCode.CHAIN_GAP: 409,
    RejectCode.UNKNOWN_AUTHOR: 403,
    RejectCode.BLOCKED: 403,
    RejectCode.FOUNDING_REFUSED: 403,
    RejectCode.RATE_LIMITED: 429,
    RejectCode.QUOTA_EXCEEDED: 507,
    RejectCode.FOREIGN_DEP: 422,
    RejectCode.FROM_THE_FUTURE: 422,
}

# Peer authentication (PROTOCOL.md 10.1). Its ``bad_signature`` is a request's signature, not an
# action's: the same text as a RejectCode, another status, so this table is looked up by type.
AUTH_STATUS: dict[AuthCode, int] = {
    AuthCode.UNAUTHENTICATED: 401,
    AuthCode.MISADDRESSED: 421,
    AuthCode.STALE: 401,
    AuthCode.REPLAYED: 401,
    AuthCode.BAD_SIGNATURE: 401,
    AuthCode.UNKNOWN_NODE: 403,
    AuthCode.REFUSED: 403,
    AuthCode.RATE_LIMITED: 429,
    AuthCode.BUSY: 503,
}

# Codes of the HTTP layers themselves.
HTTP_STATUS: dict[str, int] = {
    "bad_request": 400,  # a query parameter out of range
    "unauthorized": 401,  # the admin API without its token
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_ready": 409,  # asked about something not folded yet
    "unsupported_media_type": 415,
    "internal": 500,
    "unavailable": 503,  # the store could not commit
    # The HTTP surface itself (node/http.py, PROTOCOL.md 9.1.1): before any route sees the request.
    "bad_http": 400,  # the request line or a header is malformed
    "bad_url": 400,  # the request target is not valid
    "timeout": 408,  # the body did not arrive within body_timeout
    "header_too_large": 431,  # a header line or the whole head is too long
    "busy": 503,  # no room for the body in the budget, or every connection is busy (Retry-After)
    "partitioned": 503,  # testing only: a fault hook pretends the caller is unreachable
}

MISSING_STATUS = 404


def status_for(code: RejectCode | AuthCode | str, *, missing: bool = False) -> int:
    """The HTTP status of an error answer with this code (500 for a code no table knows: a bug)."""
    if missing:
        return MISSING_STATUS
    if isinstance(code, AuthCode):
        return AUTH_STATUS[code]
    if isinstance(code, RejectCode):
        return REJECT_STATUS[code]
    if code in HTTP_STATUS:
        return HTTP_STATUS[code]
    try:
        return REJECT_STATUS[RejectCode(code)]
    except ValueError:
        return 500
