"""Signing a member's next action the way an honest client must: what the CLI (and scripts) use.

A member's action names as deps what the member has seen. An honest client names everything it
knows to be part of the co-op's state: the co-op's *tips* (applied actions of members in good
standing that nothing applied builds on yet, ``GET /api/v1/coops/{coop}/tips``), never an action
of a stranger, a rejected or deferred action, nor an action of another co-op, so that one stray
action can never freeze what others build. An action names at most 32 deps; when there are more
tips than fit (a large co-op, or a tally of thousands of voters), the client first posts
``member.seen`` actions, each naming 32 of them: the member's chain then carries that knowledge,
and the final action sees all of it through its ``prev``. The node offers at most ``ALL_TIPS``
tips a request; while a page comes back full, the client covers the whole page and asks again (its
``member.seen`` actions now build on those tips, so the next page holds the rest).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import Action, SigningKey, sign_action
from protocol.charter import SEEN
from protocol.ids import IdKind, format_id, parse_id
from protocol.limits import DEFAULT_ACTION_LIMITS

from .client import Client, ClientError

MAX_DEPS = DEFAULT_ACTION_LIMITS.max_deps
SEEN_BATCH = 200  # member.seen actions posted per request
ALL_TIPS = 1024  # tips asked for in one request (the node's most, gov_api.MAX_TIPS)
MAX_TIP_PAGES = 1000  # bound on full pages of tips covered before acting (about a million tips)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ActingError(Exception):
    """The node refused something on the way (its code and message), or could not be reached."""

    def __init__(self, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.extra = code, message, extra or {}


@dataclass
class Actor:
    """One member acting in one co-op through one node."""

    client: Client
    key: SigningKey
    coop_text: str
    clock: Callable[[], int] = now_ms

    @property
    def coop(self) -> bytes:
        return parse_id(IdKind.COOP, self.coop_text)

    @property
    def member_text(self) -> str:
        return format_id(IdKind.MEMBER, self.key.public_key)

    def _get(self, path: str, **query: Any) -> dict[str, Any]:
        try:
            return self.client.get(path, **query)
        except ClientError as e:
            raise ActingError(e.code, e.message) from None

    def head(self) -> tuple[int, bytes | None]:
        try:
            seq, head = self.client.head(self.coop_text, self.member_text)
        except ClientError as e:
            raise ActingError(e.code, e.message) from None
        return seq, parse_id(IdKind.ACTION, head) if head else None

    def tips(self, limit: int = ALL_TIPS) -> list[bytes]:
        found = self._get(f"/api/v1/coops/{self.coop_text}/tips", limit=limit)["tips"]
        return [parse_id(IdKind.ACTION, t) for t in found]

    def check_deps(self, deps: list[bytes]) -> None:
        """Refuse to build on an action this node does not hold, one still waiting for its own deps,
        or one held in quarantine (its author unknown): the new action would wait for it, and so
        would every later action of this member (each names the one before as prev), for ever if
        it never arrives. An action of another co-op is left to the node, which refuses it at the
        door (foreign_dep)."""
        for d in dict.fromkeys(deps):
            text = format_id(IdKind.ACTION, d)
            try:
                found = self.client.get(f"/api/v1/actions/{text}")
            except ClientError as e:
                if e.code != "not_found":
                    raise ActingError(e.code, e.message) from None
                raise ActingError(
                    "unknown_dep",
                    f"{text} is not held by this node: an action depending on it would wait for it, "
                    "and so would every later action of yours",
                ) from None
            if found.get("coop") != self.coop_text:
                continue
            # pending: waiting for its predecessor; held: a stranger's, in quarantine, never folded.
            waiting = found.get("status") in ("pending", "held") or (found.get("fold") or {}).get("result") == "deferred"
            if waiting:
                raise ActingError(
                    "unknown_dep",
                    f"{text} is not part of this co-op's state here (it waits for actions this node does not hold, "
                    "or its author is unknown): an action depending on it would wait too, and so would every later action of yours",
                )

    def _sign(self, seq: int, prev: bytes | None, kind: str, body: Any, deps: list[bytes]) -> Action:
        return sign_action(self.key, coop=self.coop, seq=seq, prev=prev, deps=deps, ts=self.clock(), kind=kind, body=body)

    def _submit(self, actions: list[Action]) -> list[dict[str, Any]]:
        try:
            resp = self.client.submit([a.raw for a in actions], single=len(actions) == 1)
        except ClientError as e:
            raise ActingError(e.code, e.message, {"results": e.body.get("results", [])}) from None
        return list(resp["results"])

    def cover(self, deps: list[bytes], *, whole: bool = False) -> tuple[int, bytes | None, list[bytes]]:
        """Post ``member.seen`` actions until what is left of ``deps`` fits one action (``whole``:
        until nothing is left); returns the chain's new (seq, head) and the deps left to name."""
        seq, head = self.head()
        deps = [d for d in dict.fromkeys(deps) if d != head]
        pending: list[Action] = []
        while len(deps) > MAX_DEPS or (whole and deps):
            chunk, deps = deps[:MAX_DEPS], deps[MAX_DEPS:]
            a = self._sign(seq + 1, head, SEEN, {}, chunk)
            pending.append(a)
            seq, head = a.seq, a.id
            if len(pending) == SEEN_BATCH:
                self._post_seen(pending)
                pending = []
        if pending:
            self._post_seen(pending)
        return seq, head, deps

    def _post_seen(self, actions: list[Action]) -> None:
        for r in self._submit(actions):
            if r["status"] not in ("accepted", "known"):
                raise ActingError(r.get("code", r["status"]), r.get("message", "a member.seen action was not stored"))

    def act(
        self,
        kind: str,
        body: Any | Callable[[int, bytes | None, list[bytes]], Any],
        extra: list[bytes] = (),  # type: ignore[assignment]
        *,
        see_all: bool = True,
    ) -> dict[str, Any]:
        """Sign and submit ``kind`` as this member's next action, having seen ``extra`` and every
        tip of the co-op (without ``see_all``, as many as one action names: for an application,
        whose author cannot post ``member.seen`` yet). ``body`` may be a function of the final (seq, prev,
        deps), for a tally whose claim depends on exactly what it will have seen. Returns what the
        node said, with the co-op's verdict."""
        self.check_deps(list(extra))
        tips = self.tips(ALL_TIPS if see_all else MAX_DEPS)
        wanted = list(extra) + tips
        if see_all:
            for _ in range(MAX_TIP_PAGES):
                if len(tips) < ALL_TIPS:
                    break
                # A full page: there may be more tips than one request returns. Having seen this
                # page, the member's chain builds on it, so the next page holds what is left.
                self.cover(wanted, whole=True)
                tips = self.tips(ALL_TIPS)
                wanted = tips
            seq, head, deps = self.cover(wanted)
        else:
            seq, head = self.head()
            deps = [d for d in dict.fromkeys(wanted) if d != head][:MAX_DEPS]
        value = body(seq + 1, head, deps) if callable(body) else body
        action = self._sign(seq + 1, head, kind, value, deps)
        result = self._submit([action])[0]
        out: dict[str, Any] = {
            "id": format_id(IdKind.ACTION, action.id),
            "seq": action.seq,
            "kind": kind,
            "status": result["status"],
        }
        if result["status"] == "rejected":
            raise ActingError(result.get("code", "rejected"), result.get("message", "refused"), {"results": [result]})
        if result["status"] in ("held", "pending") and result.get("message"):
            out["message"] = result["message"]
        try:
            verdict = self.client.get(f"/api/v1/coops/{self.coop_text}/results/{out['id']}")
        except ClientError:
            return out
        out["fold"] = {k: verdict[k] for k in ("result", "reason", "explanation") if k in verdict}
        for k in ("waits_for", "bound_by", "proposal"):
            if k in verdict:
                out["fold"][k] = verdict[k]
        return out
