"""The governance commands of ``coopnet``: membership, proposals and votes, sanctions, federation.

Every acting command names the co-op's tips as what its author has seen (node/acting.py), prints
whether the co-op's rules applied the action or why they rejected it in plain words, and exits 1
when they rejected it (as it does when the node refused it at the door).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from protocol.charter import OPEN, TALLY, VOTE
from protocol.ids import IdKind, format_id

from .cli import Ctx, Table, _act, _acting, _fail, _finish, _json_body, _out, _parse, _plain, _print_acted, console, main, pass_ctx
from .client import ClientError


def _get(c: Ctx, path: str, **query: Any) -> dict[str, Any]:
    try:
        return c.client.get(path, **query)
    except ClientError as e:
        _fail(e.code, e.message, c.as_json)


def _proposal(c: Ctx, coop_text: str, proposal_id: str) -> dict[str, Any]:
    """The proposal's view in this co-op. An id of another co-op's proposal (a wrong --coop) is
    said so in plain words: a vote or tally naming it would be refused at the door (foreign_dep)."""
    try:
        return c.client.get(f"/api/v1/coops/{coop_text}/proposals/{proposal_id}")
    except ClientError as e:
        if e.code != "not_found":
            _fail(e.code, e.message, c.as_json)
        try:
            other = c.client.get(f"/api/v1/actions/{proposal_id}")["coop"]
        except ClientError:
            other = coop_text
        if other != coop_text:
            _fail("foreign_dep", f"{proposal_id} is an action of co-op {other}, not of {coop_text} (check --coop)", c.as_json)
        _fail(e.code, e.message, c.as_json)


def _open(c: Ctx, coop_text: str, key_file: Path, ptype: str, title: str, payload: dict[str, Any]) -> None:
    _finish(c, _act(c, key_file, coop_text, OPEN, {"payload": payload, "title": title, "type": ptype}))


def _when(ms: int | None) -> str:
    if ms is None:
        return "not set"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


# ---- membership -------------------------------------------------------------------------------


@main.group()
def member() -> None:
    """Membership: apply, sponsor an applicant, propose admitting one, leave."""


@member.command("apply")
@_acting
@click.option("--note", default="", help="A word to the members.")
@pass_ctx
def member_apply(c: Ctx, coop_text: str, key_file: Path, note: str) -> None:
    """Apply to join the co-op (an open co-op admits you at once)."""
    body = {"note": note} if note else {}
    _finish(c, _act(c, key_file, coop_text, "member.apply", body, see_all=False))


@member.command("sponsor")
@_acting
@click.argument("applicant")
@pass_ctx
def member_sponsor(c: Ctx, coop_text: str, key_file: Path, applicant: str) -> None:
    """Sponsor an applicant (a sponsored co-op admits them after enough sponsors)."""
    _finish(c, _act(c, key_file, coop_text, "member.sponsor", {"member": _parse(c, IdKind.MEMBER, applicant)}))


@member.command("admit")
@_acting
@click.argument("applicant")
@click.option("--title", default="", help="Proposal title (default: Admit <member>).")
@pass_ctx
def member_admit(c: Ctx, coop_text: str, key_file: Path, applicant: str, title: str) -> None:
    """Open a proposal to admit an applicant (co-ops that admit by vote)."""
    _open(c, coop_text, key_file, "admit", title or f"Admit {applicant[:16]}…", {"member": _parse(c, IdKind.MEMBER, applicant)})


@member.command("leave")
@_acting
@pass_ctx
def member_leave(c: Ctx, coop_text: str, key_file: Path) -> None:
    """Leave the co-op."""
    _finish(c, _act(c, key_file, coop_text, "member.leave", {}))


# ---- proposals --------------------------------------------------------------------------------


@main.group()
def proposal() -> None:
    """Proposals: open one, vote, tally, show."""


@proposal.command("open")
@_acting
@click.option(
    "--type",
    "ptype",
    type=click.Choice(["admit", "amend", "sanction", "lift", "federate", "unfederate", "role", "text"]),
    default="text",
    show_default=True,
)
@click.option("--title", required=True)
@click.option(
    "--payload",
    "payload_json",
    default="{}",
    show_default=True,
    help="The proposal's payload as JSON (ids as their text forms are not converted: use the dedicated commands).",
)
@pass_ctx
def proposal_open(c: Ctx, coop_text: str, key_file: Path, ptype: str, title: str, payload_json: str) -> None:
    """Open a proposal (text proposals, charter amendments with --type amend --payload '{"charter": ...}')."""
    _open(c, coop_text, key_file, ptype, title, _json_body(c, payload_json, "--payload"))


def _decided(view: dict[str, Any]) -> str:
    return f"the proposal was already decided: {view['status']} (by {view['decided_by']})"


@proposal.command("vote")
@_acting
@click.argument("proposal_id")
@click.argument("choice", type=click.Choice(["yes", "no", "abstain", "block"]))
@pass_ctx
def proposal_vote(c: Ctx, coop_text: str, key_file: Path, proposal_id: str, choice: str) -> None:
    """Vote on a proposal; voting again replaces your earlier vote while the window is open."""
    pid = _parse(c, IdKind.ACTION, proposal_id)
    view = _proposal(c, coop_text, proposal_id)
    if view["status"] != "open":
        _fail("proposal_closed", _decided(view) + "; a vote now would be rejected", c.as_json)
    if not view["window_open"]:
        _fail("voting_closed", f"the voting window closed at {_when(view['closes_ms'])} (co-op time)", c.as_json)
    _finish(c, _act(c, key_file, coop_text, VOTE, {"choice": choice, "proposal": pid}, [pid]))


@proposal.command("tally")
@_acting
@click.argument("proposal_id")
@pass_ctx
def proposal_tally(c: Ctx, coop_text: str, key_file: Path, proposal_id: str) -> None:
    """Tally a proposal: having seen everything this node holds (every voter's latest vote, however
    many), claim the outcome the node computes for exactly that causal past; every node checks it."""
    pid = _parse(c, IdKind.ACTION, proposal_id)
    view = _proposal(c, coop_text, proposal_id)
    if view["status"] != "open":
        out = {"status": "not_signed", "outcome": view["status"], "decided_by": view["decided_by"], "votes": view["votes"]}
        _out(out, c.as_json, lambda o: console.print(_decided(view) + "; nothing to tally"))
        return
    preview: dict[str, Any] = {}

    def claim(seq: int, prev: bytes | None, deps: list[bytes]) -> dict[str, Any]:
        # The tally's causal past is its prev (the member's chain, which now holds everything the
        # member.seen actions named) and its deps: preview exactly that.
        parents = [*deps, *([prev] if prev is not None else [])]
        preview.update(
            _get(
                c, f"/api/v1/coops/{coop_text}/proposals/{proposal_id}/preview", deps=",".join(format_id(IdKind.ACTION, x) for x in parents)
            )
        )
        return {"outcome": preview["outcome"], "proposal": pid}

    out = _act(c, key_file, coop_text, TALLY, claim, [pid])
    out["outcome"] = preview.get("outcome")
    out["votes"] = preview.get("votes")
    out["window_closed"] = preview.get("window_closed")

    def readable(o: dict[str, Any]) -> None:
        _print_acted(o)
        v = o["votes"] or {}
        console.print(
            f"  outcome [bold]{o['outcome']}[/]: yes {v.get('yes', 0)}, no {v.get('no', 0)}, abstain {v.get('abstain', 0)}, block {v.get('block', 0)}"
        )
        if o["outcome"] == "open":
            console.print("  (the window is still open and not every elector has voted: nothing is decided yet)")

    _finish(c, out, readable)


@proposal.command("show")
@click.option("--coop", "coop_text", required=True)
@click.argument("proposal_id")
@pass_ctx
def proposal_show(c: Ctx, coop_text: str, proposal_id: str) -> None:
    """A proposal with its votes, window and outcome."""
    view = _proposal(c, coop_text, proposal_id)

    def readable(o: dict[str, Any]) -> None:
        v = o["votes"]
        console.print(f"[bold]{_plain(o['title'])}[/] ({o['type']}) — {o['status']}")
        console.print(f"  rule: quorum {o['rule']['quorum']}%, {o['rule']['threshold']}; electorate {o['electorate']}")
        if o["status"] != "open":
            console.print(f"  window: closed by the decision (it was to close at {_when(o['closes_ms'])}, co-op time)")
        else:
            console.print(f"  window: {'open until' if o['window_open'] else 'closed at'} {_when(o['closes_ms'])} (co-op time)")
        console.print(f"  votes: yes {v['yes']}, no {v['no']}, abstain {v['abstain']}, block {v['block']}")
        if o["decided_by"]:
            fin = o.get("final") or {}
            state = (
                "final"
                if fin.get("final")
                else f"not final yet ({fin.get('acknowledged', 0)} of {fin.get('needed', '?')} acknowledgements)"
            )
            console.print(f"  decided by {o['decided_by']}, {state}")

    _out(view, c.as_json, readable)


# ---- sanctions --------------------------------------------------------------------------------


@main.group()
def sanction() -> None:
    """Sanctions: propose one under a charter clause, lift one (an appeal), list them."""


@sanction.command("propose")
@_acting
@click.argument("member_id")
@click.option("--clause", required=True, help="The charter offence clause.")
@click.option("--evidence", multiple=True, help="An action id showing the offence (repeatable).")
@click.option("--title", default="")
@pass_ctx
def sanction_propose(c: Ctx, coop_text: str, key_file: Path, member_id: str, clause: str, evidence: tuple[str, ...], title: str) -> None:
    """Open a proposal to sanction a member as the charter clause says."""
    ev = [_parse(c, IdKind.ACTION, e) for e in evidence]
    payload = {"clause": clause, "evidence": ev, "member": _parse(c, IdKind.MEMBER, member_id)}
    _open(c, coop_text, key_file, "sanction", title or f"Sanction under {clause}", payload)


@sanction.command("lift")
@_acting
@click.argument("sanction_id")
@click.option("--title", default="", help="Why it should be lifted (an appeal, if it is your own).")
@pass_ctx
def sanction_lift(c: Ctx, coop_text: str, key_file: Path, sanction_id: str, title: str) -> None:
    """Open a proposal to lift a sanction; the sanctioned member may do this (appeal)."""
    sid = _parse(c, IdKind.PROOF if sanction_id.startswith("eqv_") else IdKind.ACTION, sanction_id)
    _open(c, coop_text, key_file, "lift", title or "Lift a sanction", {"sanction": sid})


@sanction.command("list")
@click.option("--coop", "coop_text", required=True)
@pass_ctx
def sanction_list(c: Ctx, coop_text: str) -> None:
    """Sanctions with their clause, evidence and state (due process)."""
    view = _get(c, f"/api/v1/coops/{coop_text}/sanctions")

    def readable(o: dict[str, Any]) -> None:
        t = Table("sanction", "member", "kind", "until", "clause", "in force")
        for x in o["sanctions"]:
            t.add_row(
                x["id"][:20] + "…",
                x["member"][:20] + "…",
                x["kind"],
                _when(x["until_ms"]) if x["kind"] == "suspend" else "-",
                _plain(f"{x['clause']}: {x['clause_text']}"),
                "yes" if x["active"] else "no",
            )
        console.print(t)

    _out(view, c.as_json, readable)


# ---- federation -------------------------------------------------------------------------------


@main.group()
def federate() -> None:
    """Federation agreements between co-ops: propose one, end one, list them."""


@federate.command("propose")
@_acting
@click.argument("other_coop")
@click.option("--terms", "terms_json", default="{}", help="Reciprocity terms as JSON.")
@pass_ctx
def federate_propose(c: Ctx, coop_text: str, key_file: Path, other_coop: str, terms_json: str) -> None:
    """Open a proposal to federate with another co-op (it must pass on both sides)."""
    other = _parse(c, IdKind.COOP, other_coop)
    payload = {"coop": other, "terms": _json_body(c, terms_json, "--terms")}
    _open(c, coop_text, key_file, "federate", f"Federate with {other_coop[:16]}…", payload)


@federate.command("end")
@_acting
@click.argument("other_coop")
@pass_ctx
def federate_end(c: Ctx, coop_text: str, key_file: Path, other_coop: str) -> None:
    """Open a proposal to end a federation agreement."""
    other = _parse(c, IdKind.COOP, other_coop)
    _open(c, coop_text, key_file, "unfederate", f"End federation with {other_coop[:16]}…", {"coop": other})


@federate.command("list")
@click.option("--coop", "coop_text", required=True)
@pass_ctx
def federate_list(c: Ctx, coop_text: str) -> None:
    """This co-op's federation decisions, and whether the other side agreed."""
    view = _get(c, f"/api/v1/coops/{coop_text}/federations")

    def readable(o: dict[str, Any]) -> None:
        if not o["federations"]:
            console.print("no federations")
        for f in o["federations"]:
            mutual = {True: "mutual", False: "not mutual yet", None: "the other co-op is not held here"}[f["mutual"]]
            console.print(f"{f['coop']}  {mutual}")

    _out(view, c.as_json, readable)
