"""Governance endpoints: a co-op's state as its members see it, computed by the fold.

``GET /api/v1/coops/{coop}/state|members|proposals|proposals/{id}|sanctions|federations`` and
``GET /api/v1/coops/{coop}/results/{act}`` (an action's fold result). Ids are text, bodies JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from protocol import RejectCode
from protocol.governance import MEMBER, Fold, Proposal, outcome
from protocol.ids import IdKind, format_id, parse_id

from .governance import Governance
from .views import value_to_json


def _mem(b: bytes) -> str:
    return format_id(IdKind.MEMBER, b)


def _act(b: bytes | None) -> str | None:
    return format_id(IdKind.ACTION, b) if b is not None else None


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
        ]

    async def _fold(self, request: web.Request) -> Fold:
        coop = parse_id(IdKind.COOP, request.match_info["coop"])
        fold = await self.gov.fold(coop)
        if fold is None:
            raise self.error(404, RejectCode.UNKNOWN_COOP.value, f"no co-op {request.match_info['coop']} here")  # type: ignore[call-arg]
        return fold

    async def state(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        s = fold.state
        statuses: dict[str, int] = {}
        for p in s.proposals.values():
            statuses[p.status] = statuses.get(p.status, 0) + 1
        return self.respond(
            request,
            {
                "coop": format_id(IdKind.COOP, fold.coop),
                "state_hash": s.hash().hex(),
                "height": s.applied,
                "rejected": s.rejected,
                "deferred": fold.deferred,
                "members": sum(1 for m in s.members.values() if m.status == MEMBER),
                "applicants": sum(1 for m in s.members.values() if m.status == "applicant"),
                "proposals": statuses,
                "sanctions_active": sum(1 for x in s.sanctions.values() if x.lifted_by is None),
                "federations": len(s.federations),
                "charter": value_to_json(s.charter),
            },
        )

    async def members(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        s = fold.state
        now = max(fold.ctime.values(), default=0)
        out = [
            {
                "member": _mem(k),
                "status": m.status,
                "in_good_standing": s.in_good_standing(k, now),
                "roles": sorted(m.roles),
                "since": _act(m.since),
                "sponsors": sorted(_mem(x) for x in m.sponsors),
                "sanctions": [format_id(IdKind.ACTION, i) for i in s.sanctioned.get(k, [])],
            }
            for k, m in sorted(s.members.items())
        ]
        return self.respond(request, {"members": out})

    def _proposal_view(self, fold: Fold, p: Proposal, *, detail: bool) -> dict[str, Any]:
        counts: dict[str, int]
        if p.decided_by is not None:
            _, counts = outcome(p, fold.frontier_since(p.decided_by, fold.height[p.id]))
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
            "electorate": len(p.electorate),
            "votes": counts,
        }
        if detail:
            view["payload"] = value_to_json(p.payload)
            view["ballots"] = {_mem(m): [{"seq": q, "choice": c} for q, c in v] for m, v in sorted(p.votes.items())}
            view["electors"] = sorted(_mem(m) for m in p.electorate)
        return view

    async def proposals(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        items = sorted(fold.state.proposals.values(), key=lambda p: (fold.height[p.id], p.id))
        status = request.query.get("status")
        return self.respond(
            request, {"proposals": [self._proposal_view(fold, p, detail=False) for p in items if not status or p.status == status]}
        )

    async def proposal(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        pid = parse_id(IdKind.ACTION, request.match_info["id"])
        p = fold.state.proposals.get(pid)
        if p is None:
            state, reason = fold.result(pid)
            raise self.error(
                404, "not_found", f"no proposal {request.match_info['id']} in this co-op's state ({state}{': ' + reason if reason else ''})"
            )  # type: ignore[call-arg]
        return self.respond(request, self._proposal_view(fold, p, detail=True))

    async def preview(self, request: web.Request) -> web.Response:
        """The outcome a tally with these deps (comma-separated act ids) would have to claim."""
        fold = await self._fold(request)
        p = fold.state.proposals.get(parse_id(IdKind.ACTION, request.match_info["id"]))
        if p is None:
            raise self.error(404, "not_found", "no such proposal in this co-op's state")  # type: ignore[call-arg]
        texts = [t for t in request.query.get("deps", "").split(",") if t]
        if not texts or len(texts) > 33:
            raise self.error(400, "bad_request", "deps: 1 to 33 comma-separated action ids")  # type: ignore[call-arg]
        merged: dict[bytes, int] = {}
        for t in texts:
            aid = parse_id(IdKind.ACTION, t)
            if aid not in fold.height:
                raise self.error(409, "not_ready", f"{t} is not folded here yet")  # type: ignore[call-arg]
            for author, top in fold.frontier_since(aid, fold.height[p.id]).items():
                merged[author] = max(top, merged.get(author, 0))
        result, counts = outcome(p, merged)
        return self.respond(request, {"outcome": result if p.status == "open" else p.status, "votes": counts, "status": p.status})

    async def sanctions(self, request: web.Request) -> web.Response:
        fold = await self._fold(request)
        s = fold.state
        offences = s.charter["offences"]
        out = []
        for x in sorted(s.sanctions.values(), key=lambda x: x.id):
            clause = offences.get(x.clause, {})
            out.append(
                {
                    "id": format_id(IdKind.ACTION if x.clause != "equivocation" else IdKind.PROOF, x.id),
                    "member": _mem(x.member),
                    "kind": x.kind,
                    "until_ms": x.until,
                    "clause": x.clause,
                    "clause_text": clause.get("text")
                    if x.clause != "equivocation"
                    else "signed two different actions at the same place in their chain",
                    "evidence": [_act(e) for e in x.evidence],
                    "imposed_by": format_id(IdKind.ACTION if x.clause != "equivocation" else IdKind.PROOF, x.imposed_by),
                    "lifted_by": _act(x.lifted_by),
                    "active": x.lifted_by is None
                    and (x.kind == "expel" or x.until is None or x.until > max(fold.ctime.values(), default=0)),
                    "appeal": "open a proposal of type lift naming this sanction (allowed while sanctioned)",
                }
            )
        return self.respond(request, {"sanctions": out})

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
            raise self.error(404, "not_found", f"no action {request.match_info['id']} in this co-op's fold")  # type: ignore[call-arg]
        return self.respond(request, {"id": request.match_info["id"], "result": state, "reason": reason})
