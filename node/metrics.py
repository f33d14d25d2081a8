"""Prometheus metrics, one registry per node (tests run several nodes in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, exposition, generate_latest

CONTENT_TYPE = exposition.CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.actions_stored = Counter("coopnet_actions_stored", "Actions newly stored", ["source"], registry=r)
        self.actions_rejected = Counter("coopnet_actions_rejected", "Actions rejected, by reason code", ["code", "source"], registry=r)
        self.actions_held = Counter(
            "coopnet_actions_held", "Actions quarantined: their authors are not known here yet", ["source"], registry=r
        )
        self.rate_limited = Counter("coopnet_rate_limited", "Client requests refused 429, by bucket", ["bucket"], registry=r)
        self.quarantine_actions = Gauge("coopnet_quarantine_actions", "Actions held in the quarantine now", registry=r)
        self.pending_actions = Gauge("coopnet_pending_actions", "Actions pending (waiting for a chain predecessor) now", registry=r)
        self.stored_bytes = Gauge("coopnet_stored_bytes", "Bytes of stored actions, every co-op together", registry=r)
        self.proofs_stored = Counter("coopnet_proofs_stored", "Equivocation proofs newly stored", registry=r)
        self.gossip_requests = Counter(
            "coopnet_gossip_requests",
            "Peer requests, by peer, direction (in/out), kind and outcome",
            ["peer", "direction", "kind", "outcome"],
            registry=r,
        )
        self.gossip_bytes = Counter(
            "coopnet_gossip_bytes", "Peer request and reply body bytes, by peer and direction", ["peer", "direction"], registry=r
        )
        self.reconcile_rounds = Counter("coopnet_reconcile_rounds", "Anti-entropy reconciliation rounds (messages exchanged)", registry=r)
        self.reconciliations = Counter("coopnet_reconciliations", "Anti-entropy reconciliations, by outcome", ["outcome"], registry=r)
        self.catchup_lag = Gauge("coopnet_catchup_lag_actions", "Actions known to exist at peers and not yet held here", registry=r)
        self.peers_reachable = Gauge("coopnet_peers_reachable", "Peers whose last request succeeded", registry=r)
        self.http_connections = Gauge("coopnet_http_connections", "Open HTTP connections", registry=r)
        self.http_connections_closed = Counter(
            "coopnet_http_connections_closed",
            "HTTP connections the node closed itself, by reason (evicted, refused, header_timeout, body_timeout, send_timeout)",
            ["reason"],
            registry=r,
        )
        self.http_bad_requests = Counter(
            "coopnet_http_bad_requests", "Requests the HTTP parser refused, by error code", ["code"], registry=r
        )
        self.http_accept_errors = Counter("coopnet_http_accept_errors", "accept() failures, by errno (EMFILE...)", ["errno"], registry=r)
        self.http_body_bytes_in_flight = Gauge("coopnet_http_body_bytes_in_flight", "Request body bytes reserved in the budget", registry=r)
        self.http_busy = Counter("coopnet_http_busy", "Requests answered 503 busy: no room in the request body budget", registry=r)
        self.peer_score = Gauge("coopnet_peer_score", "Behaviour score of each peer (refused below the threshold)", ["peer"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
