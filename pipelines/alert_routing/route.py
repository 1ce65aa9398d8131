"""The route tree, with Alertmanager's semantics (its label matchers: :mod:`pipelines.alert_routing.matchers`).

* An alert enters a route when every matcher of the route matches. It then goes down the children
  depth-first: the first child that takes it ends the search unless that child has ``continue: true``.
  A route none of whose children take the alert takes it itself.
* Children inherit ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and ``repeat_interval``
  from their parent when they do not set them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipelines.alert_routing.config import Config, RouteConfig
from pipelines.alert_routing.matchers import Matcher, parse_matcher

GROUP_BY_ALL = "..."  # group_by: [...] groups by every label (each distinct alert is its own group)


@dataclass(frozen=True)
class Timing:
    group_wait: float
    group_interval: float
    repeat_interval: float


class Route:
    """One node of the tree with every inherited setting resolved."""

    __slots__ = ("continue_", "group_by", "group_by_all", "key", "matchers", "receiver", "routes", "timing")

    def __init__(self, key: str, receiver: str, group_by: tuple[str, ...], timing: Timing,
                 matchers: Sequence[Matcher], continue_: bool) -> None:
        self.key = key  # unique in the tree, part of every group key ("{}" for the root)
        self.receiver = receiver
        self.group_by_all = GROUP_BY_ALL in group_by
        self.group_by = tuple(sorted(set(group_by) - {GROUP_BY_ALL}))
        self.timing = timing
        self.matchers = tuple(matchers)
        self.continue_ = continue_
        self.routes: tuple[Route, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that take an alert with ``labels`` (depth-first; [] when this route does not match)."""
        if not self.matches(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            taken = child.match(labels)
            if taken:
                found.extend(taken)
                if not child.continue_:
                    break
        return found or [self]

    def walk(self) -> list[Route]:
        """Every route, parents before children."""
        out: list[Route] = []
        stack: list[Route] = [self]
        while stack:
            r = stack.pop()
            out.append(r)
            stack.extend(reversed(r.routes))
        return out

    def __repr__(self) -> str:
        return f"Route({self.key!r} -> {self.receiver})"


def build_routes(config: Config) -> Route:
    """The resolved tree from a validated config (matchers parse, receivers exist)."""
    root_cfg = config.route
    timing = Timing(
        group_wait=float(root_cfg.group_wait if root_cfg.group_wait is not None else config.group_wait),
        group_interval=float(
            root_cfg.group_interval if root_cfg.group_interval is not None else config.group_interval
        ),
        repeat_interval=float(
            root_cfg.repeat_interval if root_cfg.repeat_interval is not None else config.repeat_interval
        ),
    )
    group_by = root_cfg.group_by if root_cfg.group_by is not None else config.group_by
    root = Route("{}", root_cfg.receiver, tuple(group_by), timing, [], False)
    _build_children(root, root_cfg)
    return root


def _build_children(parent: Route, parent_cfg: RouteConfig) -> None:
    # Iterative: a deep tree in config must not exhaust the stack.
    stack: list[tuple[Route, RouteConfig]] = [(parent, parent_cfg)]
    while stack:
        node, cfg = stack.pop()
        children: list[Route] = []
        seen: dict[str, int] = {}
        for child_cfg in cfg.routes:
            matchers = [parse_matcher(t) for t in child_cfg.matchers]
            base = node.key + "/{" + ",".join(str(m) for m in matchers) + "}"
            n = seen.get(base, 0)
            seen[base] = n + 1
            key = base if n == 0 else f"{base}/{n}"
            t = node.timing
            timing = Timing(
                group_wait=float(child_cfg.group_wait) if child_cfg.group_wait is not None else t.group_wait,
                group_interval=(
                    float(child_cfg.group_interval) if child_cfg.group_interval is not None else t.group_interval
                ),
                repeat_interval=(
                    float(child_cfg.repeat_interval) if child_cfg.repeat_interval is not None
                    else t.repeat_interval
                ),
            )
            group_by = child_cfg.group_by if child_cfg.group_by is not None else (
                (*node.group_by, GROUP_BY_ALL) if node.group_by_all else node.group_by
            )
            child = Route(key, child_cfg.receiver or node.receiver, tuple(group_by), timing, matchers,
                          child_cfg.continue_)
            children.append(child)
            stack.append((child, child_cfg))
        node.routes = tuple(children)


__all__ = ["GROUP_BY_ALL", "Route", "Timing", "build_routes"]
