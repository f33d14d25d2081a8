"""Charters and the schemas of governance action bodies (intrinsic: decided from the bytes).

A charter is data, carried by the genesis and replaced only by a passed ``amend`` proposal::

    {"membership":  {"policy": "open" | "sponsored" | "vote", "sponsors": int >= 1},
     "decisions":   {"default": Rule, <proposal type>: Rule, ...},
                    Rule = {"quorum": 0-100, "threshold": T, "minutes"?: 1-525600 (voting window, default 10080: a week)}
     "roles":       {"member": [permission, ...], <role>: [...]},
     "offences":    {<clause>: {"sanction": "suspend" | "expel", "days": int >= 0, "text": str}},
     "equivocation": {"sanction": "suspend" | "expel" | "none", "days": int >= 0,
                      "forgive"?: 0-10 (first equivocations answered by a warning, default 0)}}

``T`` is ``majority`` (yes > no + block), ``two_thirds`` (3·yes >= 2·(yes + no + block), yes > 0)
or ``consent`` (no block, yes > 0). A permission is ``propose``, ``vote``, ``tally``, ``sponsor``,
or an application kind pattern: ``*`` (every application kind), ``ride.*``, ``ride.offer``.

Governance bodies are checked when an action is decoded, so a malformed proposal or vote is
refused at the door (``bad_body``) and never stored; whether its author *may* do it is the
fold's business (governance.py).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import RejectCode, ValidationError

POLICIES = ("open", "sponsored", "vote")
THRESHOLDS = ("majority", "two_thirds", "consent")
SANCTIONS = ("suspend", "expel")
CHOICES = ("yes", "no", "abstain", "block")
OUTCOMES = ("passed", "rejected", "open")
PROPOSAL_TYPES = ("admit", "amend", "sanction", "lift", "federate", "unfederate", "role", "text")
GOVERNANCE_PERMISSIONS = ("propose", "vote", "tally", "sponsor")

GENESIS = "coop.genesis"
APPLY = "member.apply"
SPONSOR = "member.sponsor"
LEAVE = "member.leave"
OPEN = "proposal.open"
VOTE = "vote.cast"
TALLY = "proposal.tally"
SEEN = "member.seen"  # records what its author has seen (its deps); changes nothing else
GOVERNANCE_KINDS = (GENESIS, APPLY, SPONSOR, LEAVE, OPEN, VOTE, TALLY, SEEN)
# Kinds under these prefixes are governance, reserved: an application may not use them.
RESERVED_PREFIXES = ("coop.", "member.", "proposal.", "vote.", "sanction.", "federation.")

MAX_TEXT = 4096
MAX_NAME = 64
MAX_EVIDENCE = 32
DEFAULT_WINDOW_MINUTES = 10_080  # a rule without "minutes" keeps its proposals open for votes for a week
MAX_WINDOW_MINUTES = 525_600  # a year
MAX_FORGIVE = 10
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_PATTERN_RE = re.compile(r"\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?")

# The charter of a co-op founded without one. Its answer to equivocation is proportionate: the
# honest cause (one person, two devices, a partition) is common, so the first time is a recorded
# warning and only a repeat suspends, for a week; a co-op that wants more says so in its charter.
DEFAULT_CHARTER: dict[str, Any] = {
    "decisions": {
        "amend": {"minutes": DEFAULT_WINDOW_MINUTES, "quorum": 50, "threshold": "two_thirds"},
        "default": {"minutes": DEFAULT_WINDOW_MINUTES, "quorum": 50, "threshold": "majority"},
        "sanction": {"minutes": DEFAULT_WINDOW_MINUTES, "quorum": 50, "threshold": "two_thirds"},
    },
    "equivocation": {"days": 7, "forgive": 1, "sanction": "suspend"},
    "membership": {"policy": "open", "sponsors": 1},
    "offences": {"misconduct": {"days": 30, "sanction": "suspend", "text": "Acting against the charter"}},
    "roles": {"member": ["propose", "vote", "tally", "sponsor", "*"]},
}


def _bad(msg: str) -> ValidationError:
    return ValidationError(RejectCode.BAD_BODY, msg)


def _map(v: object, where: str, keys: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    if not isinstance(v, dict):
        raise _bad(f"{where} must be a map")
    missing = keys - v.keys()
    extra = v.keys() - keys - optional
    if missing or extra:
        raise _bad(f"{where}: missing {sorted(missing)}, unexpected {sorted(extra)}")
    return v


def _int(v: object, where: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{where} must be an integer from {lo} to {hi}")
    return v


def _str(v: object, where: str, max_bytes: int = MAX_TEXT, *, allow_empty: bool = True) -> str:
    if not isinstance(v, str) or len(v.encode("utf-8", "surrogatepass")) > max_bytes or (not allow_empty and not v):
        raise _bad(f"{where} must be a string of at most {max_bytes} bytes")
    return v


def _name(v: object, where: str) -> str:
    if not isinstance(v, str) or len(v) > MAX_NAME or not _NAME_RE.fullmatch(v):
        raise _bad(f"{where} must be a lower-case name (a-z, 0-9, _), at most {MAX_NAME} characters")
    return v


def _id(v: object, where: str) -> bytes:
    if type(v) is not bytes or len(v) != 32:
        raise _bad(f"{where} must be a 32-byte id")
    return v


def check_charter(v: object) -> dict[str, Any]:
    c = _map(v, "charter", {"membership", "decisions", "roles", "offences", "equivocation"})
    m = _map(c["membership"], "charter.membership", {"policy", "sponsors"})
    if m["policy"] not in POLICIES:
        raise _bad(f"charter.membership.policy must be one of {POLICIES}")
    _int(m["sponsors"], "charter.membership.sponsors", 1, 1000)
    d = c["decisions"]
    if not isinstance(d, dict) or "default" not in d:
        raise _bad("charter.decisions must be a map with a 'default' rule")
    for t, rule in d.items():
        if t != "default" and t not in PROPOSAL_TYPES:
            raise _bad(f"charter.decisions: {t!r} is not a proposal type {PROPOSAL_TYPES}")
        r = _map(rule, f"charter.decisions.{t}", {"quorum", "threshold"}, {"minutes"})
        _int(r["quorum"], f"charter.decisions.{t}.quorum", 0, 100)
        if "minutes" in r:
            _int(r["minutes"], f"charter.decisions.{t}.minutes", 1, MAX_WINDOW_MINUTES)
        if r["threshold"] not in THRESHOLDS:
            raise _bad(f"charter.decisions.{t}.threshold must be one of {THRESHOLDS}")
    roles = c["roles"]
    if not isinstance(roles, dict) or "member" not in roles or len(roles) > 64:
        raise _bad("charter.roles must be a map with a 'member' role (at most 64 roles)")
    for role, perms in roles.items():
        _name(role, "charter.roles key")
        if not isinstance(perms, tuple) or len(perms) > 64:
            raise _bad(f"charter.roles.{role} must be an array of at most 64 permissions")
        for p in perms:
            if not isinstance(p, str) or not (p in GOVERNANCE_PERMISSIONS or _PATTERN_RE.fullmatch(p)):
                raise _bad(f"charter.roles.{role}: {p!r} is neither {GOVERNANCE_PERMISSIONS} nor a kind pattern")
    offences = c["offences"]
    if not isinstance(offences, dict) or len(offences) > 256:
        raise _bad("charter.offences must be a map of at most 256 clauses")
    for clause, o in offences.items():
        _name(clause, "charter.offences key")
        o = _map(o, f"charter.offences.{clause}", {"sanction", "days", "text"})
        if o["sanction"] not in SANCTIONS:
            raise _bad(f"charter.offences.{clause}.sanction must be one of {SANCTIONS}")
        _int(o["days"], f"charter.offences.{clause}.days", 0, 36500)
        _str(o["text"], f"charter.offences.{clause}.text")
    e = _map(c["equivocation"], "charter.equivocation", {"sanction", "days"}, {"forgive"})
    if e["sanction"] not in (*SANCTIONS, "none"):
        raise _bad("charter.equivocation.sanction must be suspend, expel or none")
    _int(e["days"], "charter.equivocation.days", 0, 36500)
    if "forgive" in e:
        _int(e["forgive"], "charter.equivocation.forgive", 0, MAX_FORGIVE)
    return c


def _check_payload(ptype: str, p: object) -> None:
    where = f"payload of a {ptype} proposal"
    if ptype == "admit":
        _id(_map(p, where, {"member"})["member"], f"{where}: member")
    elif ptype == "amend":
        check_charter(_map(p, where, {"charter"})["charter"])
    elif ptype == "sanction":
        m = _map(p, where, {"member", "clause", "evidence"})
        _id(m["member"], f"{where}: member")
        _name(m["clause"], f"{where}: clause")
        ev = m["evidence"]
        if not isinstance(ev, tuple) or len(ev) > MAX_EVIDENCE:
            raise _bad(f"{where}: evidence must be an array of at most {MAX_EVIDENCE} action ids")
        for x in ev:
            _id(x, f"{where}: evidence")
    elif ptype == "lift":
        _id(_map(p, where, {"sanction"})["sanction"], f"{where}: sanction")
    elif ptype == "federate":
        m = _map(p, where, {"coop", "terms"})
        _id(m["coop"], f"{where}: coop")
        if not isinstance(m["terms"], dict):
            raise _bad(f"{where}: terms must be a map")
    elif ptype == "unfederate":
        _id(_map(p, where, {"coop"})["coop"], f"{where}: coop")
    elif ptype == "role":
        m = _map(p, where, {"member", "role", "grant"})
        _id(m["member"], f"{where}: member")
        _name(m["role"], f"{where}: role")
        if type(m["grant"]) is not bool:
            raise _bad(f"{where}: grant must be true or false")
    elif ptype == "text":
        _map(p, where, set())


def check_governance_body(kind: str, body: object) -> None:
    """Intrinsic schema of a governance action's body; raise ``bad_body``. Genesis: see action.py."""
    if kind == GENESIS:
        g = body if isinstance(body, dict) else {}
        if "charter" in g:
            check_charter(g["charter"])
        if "founders" in g:
            f = g["founders"]
            if not isinstance(f, tuple) or len(f) > 64:
                raise _bad("genesis founders must be an array of at most 64 member ids")
            for x in f:
                _id(x, "genesis founders")
        if "purpose" in g:
            _str(g["purpose"], "genesis purpose")
    elif kind == APPLY:
        _str(_map(body, "member.apply body", set(), {"note"}).get("note", ""), "member.apply note")
    elif kind == SPONSOR:
        _id(_map(body, "member.sponsor body", {"member"})["member"], "member.sponsor member")
    elif kind == LEAVE:
        _map(body, "member.leave body", set())
    elif kind == SEEN:
        _map(body, "member.seen body", set())
    elif kind == OPEN:
        m = _map(body, "proposal.open body", {"type", "title", "payload"})
        if m["type"] not in PROPOSAL_TYPES:
            raise _bad(f"proposal type must be one of {PROPOSAL_TYPES}")
        _str(m["title"], "proposal title", 256, allow_empty=False)
        _check_payload(m["type"], m["payload"])
    elif kind == VOTE:
        m = _map(body, "vote.cast body", {"proposal", "choice"})
        _id(m["proposal"], "vote.cast proposal")
        if m["choice"] not in CHOICES:
            raise _bad(f"vote choice must be one of {CHOICES}")
    elif kind == TALLY:
        m = _map(body, "proposal.tally body", {"proposal", "outcome"})
        _id(m["proposal"], "proposal.tally proposal")
        if m["outcome"] not in OUTCOMES:
            raise _bad(f"tally outcome must be one of {OUTCOMES}")
    elif kind.startswith(RESERVED_PREFIXES):
        raise _bad(f"kind {kind!r} is reserved for governance and not defined in protocol version 1")


def window_minutes(rule: dict[str, Any]) -> int:
    return rule.get("minutes", DEFAULT_WINDOW_MINUTES)  # type: ignore[no-any-return]


def is_governance(kind: str) -> bool:
    return kind.startswith(RESERVED_PREFIXES)


def permits(patterns: tuple[str, ...] | list[str], kind: str) -> bool:
    """Does a role's permission list allow the application kind ``kind``?"""
    for p in patterns:
        if p == "*" or p == kind or (p.endswith(".*") and kind.startswith(p[:-1])):
            return True
    return False
