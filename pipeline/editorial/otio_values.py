"""Reading OTIO metadata quickly.

OTIO's dictionaries and lists end an iteration, and report a missing key, by raising from
C++, which costs microseconds each time; over thousands of clips that dominates an import.
These helpers walk by length and index instead, so nothing is raised.
"""

from __future__ import annotations

from typing import Any


def keys(mapping: Any) -> list[Any]:
    if isinstance(mapping, dict):
        return list(mapping)
    it = iter(mapping)
    return [next(it) for _ in range(len(mapping))]


def get(mapping: Any, key: str, default: Any = None) -> Any:
    """mapping[key], or `default` when absent or when `mapping` is not a mapping."""
    if isinstance(mapping, dict):
        return mapping.get(key, default)
    if not hasattr(mapping, "keys") or isinstance(mapping, (str, bytes)):
        return default
    return mapping[key] if key in keys(mapping) else default


def elements(sequence: Any) -> list[Any]:
    """The items of an OTIO list (AnyVector, markers, effects) or a Python one."""
    if isinstance(sequence, (list, tuple)):
        return list(sequence)
    return [sequence[i] for i in range(len(sequence))]

