"""Governance endpoints: a co-op's state as its members see it, computed by the fold.

``GET /api/v1/coops/{coop}/state|members|proposals|proposals/{id}|proposals/{id}/preview|
sanctions|federations|tips`` and ``GET /api/v1/coops/{coop}/results/{act}`` (an action's result,
in plain words). Ids are text, bodies JSON. Lists are paginated with ``?after=<id>&limit=``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from protocol import RejectCode
from protocol.governance import MEMBER, Fold, Proposal, Sanction, count_votes
from protocol.ids import IdKind, format_id, parse_id

from .governance import Governance
from .views import value_to_json

MAX_PREVIEW_DEPS = 64
DEFAULT_PAGE = 100
MAX_TIPS = 1024  # a client covering more tips posts member.seen actions (see node/acting.py)

# What each reject reason means, said to the member whose action it is (the CLI prints these).
EXPLAIN: dict[str, str] = {
    "status_none": "you are not a member of this co-op (apply first)",
    "status_applicant": "you have applied but are not a member yet",
    "status_member": "you are already a member",
    "status_left": "you have left this co-op (apply again to come back)",
    "status_expelled": "you were expelled from this co-op (you may only appeal)",
    "suspended": "you are suspended at this action's co-op time (you may appeal or leave)",
    "no_permission": "none of your roles in the charter allows this",
    "not_an_applicant": "the member named is not an applicant",
    "unknown_clause": "the charter has no such offence clause",
    "not_a_member": "the member named is not a member",
    "unknown_sanction": "there is no such sanction in force",
    "unknown_role": "the charter defines no such role",
    "self_federation": "a co-op cannot federate with itself",
    "not_federated": "there is no federation agreement with that co-op",
    "unknown_proposal": "there is no such proposal in this co-op",
    "proposal_not_in_deps": "your action does not show that you had seen the proposal",
    "proposal_void": "the proposal was opened by a member under a sanction you had seen",
    "proposal_closed": "the proposal was already decided when you acted",
    "voting_closed": "the proposal's voting window had closed",
    "not_in_electorate": "you were not a member in good standing when the proposal opened",
    "wrong_outcome": "the claimed outcome is not what the votes give",
    "second_genesis": "a founding action of another co-op",
}


def explain(reason: str | None) -> str | None:
    if reason is None:
        return None
    code, _, detail = reason.partition(":")
    text = EXPLAIN.get(code, reason)
    return f"{text} (it is {detail})" if detail else text


def _mem(b: bytes) -> str:
    return format_id(IdKind.MEMBER, b)


def _act(b: bytes | None) -> str | None:
    return format_id(IdKind.ACTION, b) if b is not None else None


def _sanction_id(x: Sanction, b: bytes | None) -> str | None:
    if b is None:
        return None
    return format_id(IdKind.PROOF if x.clause == "equivocation" and b == x.id else IdKind.ACTION, b)


def in_force(x: Sanction, now: int) -> bool:
    """A sanction that restricts its member at co-op time ``now`` (a warning never does)."""
    if x.lifted_by is not None or x.kind == "warning":
        return False
    return x.kind == "expel" or x.until is None or now < x.until


class GovApi:
    def __init__(
        self, governance: Governance, respond: Callable[[web.Request, dict[str, Any]], web.Response], error: type[Exception]
    ) -> None:
        self.gov = governance
        self.respond = respond
        self.error = error

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/coops/{coop}/state", self.state),
            web.get("/api/v1/coops/{coop}/members", self.members),
            web.get("/api/v1/coops/{coop}/proposals", self.proposals),
            web.get("/api/v1/coops/{coop}/proposals/{id}", self.proposal),
            web.get("/api/v1/coops/{coop}/proposals/{id}/preview", self.preview),
            web.get("/api/v1/coops/{coop}/sanctions", self.sanctions),
            web.get("/api/v1/coops/{coop}/federations", self.federations),
            web.get("/api/v1/coops/{coop}/results/{id}", self.result),
            web.get("/api/v1/coops/{coop}/tips", self.tips),
        ]

    def _fail(self, status: int, code: str, message: str) -> Exception:
        return self.error(status, code, message)  # type: ignore[call-arg]

    async def _fold(self, request: web.Request) -> Fold:
        coop = parse_id(IdKind.COOP, request.match_info["coop"])
        fold = await self.gov.fold(coop)
        if fold is None:
            raise self._fail(404, RejectCode.UNKNOWN_COOP.value, f"no co-op {request.match_info['coop']} here")
        return fold

    def _limit(self, request: web.Request, default: int = DEFAULT_PAGE, most: int = 1000) -> int:
        raw = request.query.get("limit", "")
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= most:
            raise self._fail(400, "bad_request", f"query parameter limit must be an integer from 1 to {most}, got {raw[:40]!r}")
        return int(raw)

    async def state(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        s = fold.state
        now = fold.now()
        _, _, counted, rejected = fold.final()
        statuses: dict[str, int] = {}
        for p in s.proposals.values():
            statuses[p.status] = statuses.get(p.status, 0) + 1
        finals = [fold.member_final(k) for k in s.members]
        return self.respond(
            request,
            {
                "coop": format_id(IdKind.COOP, fold.coop),
                "state_hash": fold.state_hash().hex(),
                "height": s.pos,
                "counted": counted,
                "rejected": rejected,
                "deferred": fold.deferred,
                "clock_ms": now,
                "members": sum(1 for m in finals if m is not None and m.status == MEMBER),
                "applicants": sum(1 for m in finals if m is not None and m.status == "applicant"),
                "proposals": statuses,
                "sanctions_active": sum(1 for x in s.sanctions.values() if in_force(x, now)),
                "federations": len(s.federations),
                "charter": value_to_json(s.charter),
            },
        )

    async def members(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        s = fold.state
        now = fold.now()
        after = parse_id(IdKind.MEMBER, request.query["after"]) if request.query.get("after") else None
        limit = self._limit(request)
        keys = [k for k in sorted(s.members) if after is None or k > after]
        page = keys[:limit]
        out = []
        for k in page:
            m = fold.member_final(k)
            if m is None:
                continue
            out.append(
                {
                    "member": _mem(k),
                    "status": m.status,
                    "in_good_standing": fold.in_good_standing(k, now),
                    "roles": sorted(m.roles),
                    "since": _act(m.since),
                    "sponsors": sorted(_mem(x) for x in fold.sponsors_final(m)),
                    "sanctions": [_sanction_id(s.sanctions[i], i) for i in s.sanctioned.get(k, [])],
                }
            )
        nxt = _mem(page[-1]) if len(keys) > limit else None
        return self.respond(request, {"members": out, "next": nxt})

    def _proposal_view(self, fold: Fold, p: Proposal, *, detail: bool) -> dict[str, Any]:
        now = fold.now()
        if p.decided_by is not None:
            counts, _ = count_votes(p, fold.frontier_since(p.decided_by, fold.height[p.id]), fold.vote_keeper_of(p.decided_by))
        else:
            counts = {"yes": 0, "no": 0, "abstain": 0, "block": 0}
            for votes in p.votes.values():
                counts[votes[-1][1]] += 1
        view: dict[str, Any] = {
            "id": _act(p.id),
            "type": p.type,
            "title": p.title,
            "author": _mem(p.author),
            "status": p.status,
            "decided_by": _act(p.decided_by),
            "rule": {"quorum": p.quorum, "threshold": p.threshold},
            "closes_ms": p.closes,
            "window_open": now < p.closes,
            "electorate": len(p.electorate),
            "voted": sum(counts.values()),
            "votes": counts,
        }
        if detail:
            view["payload"] = value_to_json(p.payload)
            view["ballots"] = {_mem(m): [{"seq": q, "choice": c} for q, c in v] for m, v in sorted(p.votes.items())}
            view["electors"] = sorted(_mem(m) for m in p.electorate)
            # Beside the electorate: an opening on stale deps fixes a smaller one (docs/GOVERNANCE.md,
            # "Dormant members decide among the members they knew"), and this is how it shows.
            view["members_now"] = sum(1 for m in fold.state.members if fold.in_good_standing(m, now))
            if p.decided_by is not None:
                acks, needed = fold.is_final(p)
                view["final"] = {"final": acks >= needed, "acknowledged": acks, "needed": needed}
            view["tallies"] = [_act(t) for t in fold.state.tallied.get(p.id, ())]
        return view

    async def proposals(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        items = sorted(fold.state.proposals.values(), key=lambda p: (fold.height[p.id], p.id))
        status = request.query.get("status")
        if status:
            items = [p for p in items if p.status == status]
        if request.query.get("after"):
            after = parse_id(IdKind.ACTION, request.query["after"])
            ids = [p.id for p in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = self._limit(request)
        page = items[:limit]
        nxt = _act(page[-1].id) if len(items) > limit else None
        return self.respond(request, {"proposals": [self._proposal_view(fold, p, detail=False) for p in page], "next": nxt})

    async def proposal(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        pid = parse_id(IdKind.ACTION, request.match_info["id"])
        p = fold.state.proposals.get(pid)
        if p is None:
            state, reason = fold.result(pid)
            raise self._fail(
                404, "not_found", f"no proposal {request.match_info['id']} in this co-op's state ({state}{': ' + reason if reason else ''})"
            )
        return self.respond(request, self._proposal_view(fold, p, detail=True))

    async def preview(self, request: web.Request) -> web.Response:
        """The outcome a tally with these parents (comma-separated act ids: the tallier's own head
        and the tally's deps) would have to claim."""
        fold = await self._fold(request)
        p = fold.state.proposals.get(parse_id(IdKind.ACTION, request.match_info["id"]))
        if p is None:
            raise self._fail(404, "not_found", "no such proposal in this co-op's state")
        texts = [t for t in request.query.get("deps", "").split(",") if t]
        if not texts or len(texts) > MAX_PREVIEW_DEPS:
            raise self._fail(400, "bad_request", f"deps: 1 to {MAX_PREVIEW_DEPS} comma-separated action ids")
        parents = []
        for t in texts:
            aid = parse_id(IdKind.ACTION, t)
            if aid not in fold.height:
                raise self._fail(409, "not_ready", f"{t} is not folded here yet")
            parents.append(aid)
        result, counts, closed = fold.preview(p.id, parents)
        decided = p.status != "open"
        return self.respond(
            request,
            {
                "outcome": p.status if decided else result,
                "votes": counts,
                "window_closed": closed,
                "status": p.status,
                "decided_by": _act(p.decided_by),
            },
        )

    async def sanctions(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        s = fold.state
        now = fold.now()
        offences = s.charter["offences"]
        out = []
        for x in sorted(s.sanctions.values(), key=lambda x: x.id):
            clause = offences.get(x.clause, {})
            out.append(
                {
                    "id": _sanction_id(x, x.id),
                    "member": _mem(x.member),
                    "kind": x.kind,
                    "until_ms": x.until,
                    "binds_after_seq": x.bound,
                    "clause": x.clause,
                    "clause_text": clause.get("text")
                    if x.clause != "equivocation"
                    else "signed two different actions at the same place in their chain",
                    "evidence": [_act(e) for e in x.evidence],
                    "imposed_by": _sanction_id(x, x.imposed_by),
                    "lifted_by": _act(x.lifted_by),
                    "active": in_force(x, now),
                    "appeal": "nothing to appeal: a recorded warning"
                    if x.kind == "warning"
                    else "open a proposal of type lift naming this sanction (allowed while sanctioned)",
                }
            )
        return self.respond(request, {"sanctions": out, "clock_ms": now})

    async def federations(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        out = []
        for partner, (terms, by) in sorted(fold.state.federations.items()):
            other = await self.gov.fold(partner)
            mutual = None if other is None else fold.coop in other.state.federations
            out.append({"coop": format_id(IdKind.COOP, partner), "terms": value_to_json(terms), "decided_by": _act(by), "mutual": mutual})
        return self.respond(request, {"federations": out})

    async def result(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        aid = parse_id(IdKind.ACTION, request.match_info["id"])
        state, reason = fold.result(aid)
        if state == "unknown":
            raise self._fail(404, "not_found", f"no action {request.match_info['id']} in this co-op's fold")
        out: dict[str, Any] = {"id": request.match_info["id"], "result": state, "reason": reason, "explanation": explain(reason)}
        if state == "deferred":
            waits = fold.waits_for(aid)
            out["waits_for"] = [_act(w) for w in waits]
            out["explanation"] = (
                f"waiting for {len(waits)} action(s) it depends on that this node does not hold; "
                "it is judged as soon as they arrive (an action of another co-op never will)"
            )
        elif state == "forked":
            out["explanation"] = "displaced from its author's chain by an equivocation: kept as evidence, not in the state"
        elif state == "applied" and aid in fold.state.proposals:
            p = fold.state.proposals[aid]
            out["proposal"] = {"status": p.status, "closes_ms": p.closes}
        x = fold.binding(aid)
        if x is not None:
            out["bound_by"] = _sanction_id(x, x.id)
        if state == "applied" and fold.items[aid].kind == "vote.cast":
            p = fold.state.proposals.get(fold.items[aid].body["proposal"])
            if p is not None and p.status != "open":
                out["proposal"] = {"status": p.status, "decided_by": _act(p.decided_by), "counted": fold.counted(p, aid)}
        return self.respond(request, out)

    async def tips(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        limit = self._limit(request, default=31, most=MAX_TIPS)
        return self.respond(request, {"tips": [_act(x) for x in fold.tips(limit)], "clock_ms": fold.now()})
