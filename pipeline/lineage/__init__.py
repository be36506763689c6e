"""Lineage: the input graph of versions, and what is stale in it."""

from pipeline.lineage.graph import LineageEdge, get_inputs, get_outputs
from pipeline.lineage.stale import StaleReason, StaleVersion, find_stale_versions

__all__ = ["LineageEdge", "StaleReason", "StaleVersion", "find_stale_versions", "get_inputs", "get_outputs"]
