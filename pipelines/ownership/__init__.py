"""Who owns a service: Backstage catalog files, an owner declared in telemetry, a default team.

Shared by ``root_cause`` (team label of its metric) and ``alert_routing`` (who gets paged).

Use::

    ownership = Ownership(config, settings.telemetry, settings.logger)
    ownership.load()              # optional; start() loads if not done (raises CatalogError if no file loads)
    await ownership.start(host)   # reload task (every reload_interval)
    team = ownership.owner_of("payment", {"service.owner": "group:payments"})
    team.name, team.pagerduty_key
    await ownership.shutdown()

Precedence of ``owner_of``: ``resource_attribute`` (when configured and present) -> catalog Component
``spec.owner`` -> ``default_team``. Team names are normalised (``group:default/Payments`` -> ``payments``).
PagerDuty keys: the Component's ``pagerduty.com/integration-key`` annotation for alerts about that
service sent to the Component's owner, else the owning Group's annotation, else None.
"""

from pipelines.ownership.catalog import (
    PAGERDUTY_ANNOTATION,
    CatalogError,
    CatalogFile,
    CatalogProblem,
    CatalogSyntaxError,
    Component,
    Group,
    normalise_team,
    parse_catalog,
    read_catalog,
)
from pipelines.ownership.config import OwnershipConfig
from pipelines.ownership.resolver import Ownership, Team

__all__ = [
    "PAGERDUTY_ANNOTATION",
    "CatalogError",
    "CatalogFile",
    "CatalogProblem",
    "CatalogSyntaxError",
    "Component",
    "Group",
    "Ownership",
    "OwnershipConfig",
    "Team",
    "normalise_team",
    "parse_catalog",
    "read_catalog",
]
