"""Keeps each co-op's governance fold (protocol.governance) up to date with the store.

The fold is brought up to date lazily, when someone reads governance state, from the actions
stored since it last looked (by arrival position), the proofs and the displaced forks it has not
seen: ingest never waits for governance. When an equivocation displaced stored actions (the
smaller-id fork won), that co-op's fold is rebuilt from the store, so it folds exactly the actions
every node keeps, with the displaced ones as ghosts. Co-ops that a co-op in scope has decided to
federate with join the replication scope.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol import decode_action, decode_proof
from protocol.governance import Fold, ForkConflict

from .gossip import Scope
from .store import Committed, Store

log = logging.getLogger("coopnet.governance")

CATCH_UP_PAGE = 5000
ASK_MAX = 256  # deps asked for by id in one sync (protocol.messages.MAX_FETCH_IDS)
HELD_DEPTH = 64  # links of strangers' actions (held in quarantine) followed to judge what names them
ASK_FIRST_MS = 1_000  # a dep a peer did not serve is asked of it again after this, doubling each time ...
ASK_AGAIN_MS = 600_000  # ... up to this


@dataclass
class _Handle:
    fold: Fold
    pos: int = 0  # the last arrival position folded
    proofs: set[bytes] = field(default_factory=set)
    ghosts: set[bytes] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Governance:
    def __init__(self, store: Store, scope: Scope, clock_ms: Callable[[], int] | None = None) -> None:
        self.store = store
        self.scope = scope
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._folds: dict[bytes, _Handle] = {}
        self._asked: dict[bytes, dict[tuple[bytes, bytes], tuple[int, int]]] = {}  # co-op -> (dep, peer) -> (next ask, asks so far)
        store.listeners.append(self._on_commit)

    def _on_commit(self, committed: Committed) -> None:
        for coop in committed.displaced:
            self._folds.pop(coop, None)  # rebuilt from the store on the next read

    async def fold(self, coop: bytes) -> Fold | None:
        """The co-op's fold, up to date with everything stored; None for an unknown co-op."""
        for attempt in range(2):
            handle = self._folds.get(coop)
            if handle is None:
                genesis = await self.store.get_action(coop)
                if genesis is None or genesis.status != "stored":
                    return None
                handle = self._folds.setdefault(coop, _Handle(Fold(genesis.action())))
            try:
                async with handle.lock:
                    await self._catch_up(coop, handle)
            except ForkConflict:
                # An equivocation displaced an action between two reads: fold again from the store.
                if self._folds.get(coop) is handle:
                    del self._folds[coop]
                if attempt:
                    raise
                log.info("co-op %s: a fork moved while folding; folding again from the store", coop.hex()[:16])
                continue
            self._follow_federations(handle.fold)
            return handle.fold
        return None

    async def _catch_up(self, coop: bytes, handle: _Handle) -> None:
        while True:
            rows = await self.store.list_actions(coop, after=handle.pos, limit=CATCH_UP_PAGE)
            if not rows:
                break
            handle.fold.add([decode_action(r.raw, check_signature=False) for r in rows])
            handle.pos = rows[-1].pos or handle.pos
            await asyncio.sleep(0)  # let requests through between pages of a long catch-up
        fresh = [p for p in await self.store.proofs(coop) if p.id not in handle.proofs]
        if fresh:
            handle.fold.add(proofs=[decode_proof(p.raw) for p in fresh])
            handle.proofs.update(p.id for p in fresh)
        forked = [r.action() for r in await self.store.forked(coop, handle.ghosts)]
        if forked:
            handle.fold.add(forked=forked)
            handle.ghosts.update(a.id for a in forked)
        for _ in range(HELD_DEPTH):
            # A member's action may name a stranger's as a dep. Nodes that store strangers fold it
            # (outside the state hash); a node that holds it in quarantine folds it too, as far as
            # something folded waits for it, so that both judge the member's action alike.
            held = await self.store.held_by_ids(coop, handle.fold.absent())
            if not held:
                break
            handle.fold.add(held)

    async def missing_deps(self, coop: bytes, peer: bytes = b"") -> list[bytes]:
        """The deps ``coop``'s fold waits for and does not hold, due to be asked of ``peer``:
        gossip asks for them by id (a dep on an action kept aside by an equivocation reaches a
        node by no chain). Each peer is asked on its own schedule, backing off from ASK_FIRST_MS
        to ASK_AGAIN_MS: a peer that lacked it a moment ago may have fetched it since, and an id
        nobody has (an action of another co-op) costs one small request now and then."""
        fold = await self.fold(coop) if coop in self._folds or self.scope(coop) else None
        if fold is None:
            return []
        now = self.clock_ms()
        asked = self._asked.setdefault(coop, {})
        out = []
        for x in fold.absent(ASK_MAX):
            due, tries = asked.get((x, peer), (0, 0))
            if now >= due:
                out.append(x)
                asked[(x, peer)] = (now + min(ASK_AGAIN_MS, ASK_FIRST_MS << tries), tries + 1)
        if len(asked) > 4 * ASK_MAX:
            self._asked[coop] = {k: v for k, v in asked.items() if v[0] > now}
        return out

    def _follow_federations(self, fold: Fold) -> None:
        self.scope.set_partners(fold.coop, set(fold.state.federations))

    async def consents(self, coop: bytes) -> frozenset[bytes]:
        """The co-ops ``coop`` has decided to federate with (empty if it is not held here)."""
        known = self.scope.consents(coop)
        if known is None:
            await self.fold(coop)
            known = self.scope.consents(coop)
        return known or frozenset()

    async def refresh(self) -> None:
        """Fold every co-op this node replicates by its configuration, and their partners, so that
        federation decisions reach the replication scope even when nobody reads governance state.
        A node replicating every co-op follows none (and spends no CPU on it): it folds a co-op when
        a peer asks for it and when someone reads it."""
        if self.scope.configured is None:
            return
        for coop in sorted(self.scope.configured | self.scope.partners):
            await self.fold(coop)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("governance refresh failed")
            await asyncio.sleep(interval)
