"""Lineage: the input graph of versions, and what is stale in it."""

from backlot.lineage.graph import LineageEdge, get_inputs, get_outputs
from backlot.lineage.graph import get_history
from backlot.lineage.regen import PlanItem, Swap, plan_regeneration
from backlot.lineage.stale import StaleReason, StaleVersion, find_stale_versions

__all__ = ["LineageEdge", "PlanItem", "Swap", "plan_regeneration", "StaleReason", "StaleVersion", "find_stale_versions", "get_inputs", "get_outputs", "get_history"]
