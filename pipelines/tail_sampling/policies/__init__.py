"""Sampling policies, one module each, behind one interface (:class:`~.base.Policy`), found by their contrib
``type`` in one table (:data:`~.registry.POLICIES`); :func:`build` makes a policy from its config entry."""

from __future__ import annotations

from pipelines.tail_sampling.policies.base import Decision, Placement, Policy, PolicyEvaluationError
from pipelines.tail_sampling.policies.registry import (
    POLICIES,
    Build,
    CompositeSubPolicyConfig,
    PolicyClass,
    PolicyConfig,
    SubPolicyConfig,
    build,
    names,
    policy_class,
    register,
)

__all__ = [
    "POLICIES", "Build", "CompositeSubPolicyConfig", "Decision", "Placement", "Policy", "PolicyClass",
    "PolicyConfig", "PolicyEvaluationError", "SubPolicyConfig", "build", "names", "policy_class", "register",
]
