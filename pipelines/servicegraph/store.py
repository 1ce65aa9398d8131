"""Half-seen edges of the service graph, keyed by (trace id, client span id), until the other side arrives
or ``ttl`` passes. Bounded by ``max_items``."""

from __future__ import annotations

import collections

CLIENT, SERVER = 0, 1


class Edge:
    """One call as seen so far: its client side, its server side, or both."""

    __slots__ = ("client", "client_dims", "client_latency", "connection_type", "expires", "failed", "peer",
                 "server", "server_dims", "server_latency", "server_root")

    def __init__(self, expires: float, connection_type: str) -> None:
        self.expires = expires
        self.connection_type = connection_type
        self.client = ""
        self.server = ""
        self.client_latency = -1.0  # seconds; -1: not seen
        self.server_latency = -1.0
        self.client_dims: tuple[str, ...] = ()
        self.server_dims: tuple[str, ...] = ()
        self.failed = False
        self.peer = ""  # the callee as the client names it (virtual node), "" if it does not
        self.server_root = False  # the server span has no parent: its caller is a user, not a service

    @property
    def complete(self) -> bool:
        return bool(self.client) and bool(self.server)


class EdgeStore:
    """Edges waiting for their other side, in order of expiry (``ttl`` after the first side arrived)."""

    def __init__(self, ttl: float, max_items: int) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._edges: dict[bytes, Edge] = {}
        self._order: collections.deque[tuple[float, bytes]] = collections.deque()

    def __len__(self) -> int:
        return len(self._edges)

    def upsert(self, key: bytes, connection_type: str, now: float) -> Edge | None:
        """The waiting edge of ``key``, or a new one; None when the store is full."""
        edge = self._edges.get(key)
        if edge is not None:
            return edge
        if len(self._edges) >= self.max_items:
            return None
        expires = now + self.ttl
        edge = self._edges[key] = Edge(expires, connection_type)
        self._order.append((expires, key))
        return edge

    def remove(self, key: bytes) -> None:
        self._edges.pop(key, None)

    def expired(self, now: float) -> list[Edge]:
        """Remove and return the edges whose ``ttl`` has passed."""
        out: list[Edge] = []
        order, edges = self._order, self._edges
        while order and order[0][0] <= now:
            _, key = order.popleft()
            edge = edges.get(key)
            if edge is not None and edge.expires <= now:
                del edges[key]
                out.append(edge)
        return out

    def drain(self) -> list[Edge]:
        """Remove and return every waiting edge."""
        out = list(self._edges.values())
        self._edges.clear()
        self._order.clear()
        return out
