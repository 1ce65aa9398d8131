"""``tracetriage loadgen``: realistic OTLP traffic from a topology, with faults and ground truth."""

from bench.loadgen.faults import Fault, FaultPlan, Scenario, load_plan, parse_fault, plan_from_faults
from bench.loadgen.generate import Batch, GeneratedTrace, Generator
from bench.loadgen.topology import Topology, load_topology, parse_topology
from bench.loadgen.truth import RootCause, Truth

__all__ = [
    "Batch", "Fault", "FaultPlan", "GeneratedTrace", "Generator", "RootCause", "Scenario", "Topology", "Truth",
    "load_plan", "load_topology", "parse_fault", "parse_topology", "plan_from_faults",
]
