"""Who owns a service: Backstage catalog files, an owner declared in telemetry, a default team.

The ``ownership`` extension (:mod:`pipelines.ownership.extension`) holds one per process, shared by the
stages that name a team: ``root_cause`` (team label of its metric) and ``alert_routing`` (who gets paged)
reference it by id (``ownership: ownership``); an inline block is shorthand for a private one.

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

from collector.component import Factory, Kind, Settings
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
from pipelines.ownership.extension import (
    OwnershipExtension,
    OwnershipSetting,
    OwnershipSource,
    ownership_refs,
)
from pipelines.ownership.resolver import Ownership, Team


def create(settings: Settings, config: OwnershipConfig) -> OwnershipExtension:
    return OwnershipExtension(settings, config)


factory = Factory(
    "ownership", Kind.EXTENSION, OwnershipConfig, create,
    description="Service -> owning team from Backstage catalog files and telemetry, shared by the stages.",
)

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
    "OwnershipExtension",
    "OwnershipSetting",
    "OwnershipSource",
    "Team",
    "create",
    "factory",
    "normalise_team",
    "ownership_refs",
    "parse_catalog",
    "read_catalog",
]
