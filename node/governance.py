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
from dataclasses import dataclass, field

from protocol import decode_action, decode_proof
from protocol.governance import Fold, ForkConflict

from .gossip import Scope
from .store import Committed, Store

log = logging.getLogger("coopnet.governance")

CATCH_UP_PAGE = 5000


@dataclass
class _Handle:
    fold: Fold
    pos: int = 0  # the last arrival position folded
    proofs: set[bytes] = field(default_factory=set)
    ghosts: set[bytes] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Governance:
    def __init__(self, store: Store, scope: Scope) -> None:
        self.store = store
        self.scope = scope
        self._folds: dict[bytes, _Handle] = {}
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

    def _follow_federations(self, fold: Fold) -> None:
        self.scope.set_partners(fold.coop, set(fold.state.federations))

    async def refresh(self) -> None:
        """Fold every co-op this node replicates by its configuration, so that federation
        decisions reach the replication scope even when nobody reads governance state. A node
        replicating every co-op has nothing to follow (and spends no CPU on it)."""
        if self.scope.configured is None:
            return
        for coop in sorted(self.scope.configured):
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
