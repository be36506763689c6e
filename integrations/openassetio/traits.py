"""Traits Backlot speaks: OpenAssetIO-MediaCreation `_v1` traits, plus Backlot's own.

MediaCreation covers content location, versions, names, images, frame ranges and free
metadata. What it lacks, Backlot defines under the `backlot:` namespace:

| trait id                        | properties                                                        |
|---------------------------------|-------------------------------------------------------------------|
| `backlot:tracker.Record`        | project, asset, kind, number, status, contentHash, mediaType, createdBy, createdAt, versionId |
| `backlot:lineage.Inputs`        | inputs (JSON `[{"role", "ref"}]`), count; as a relationship: role, transitive |
| `backlot:lineage.Outputs`       | outputs (JSON `[{"role", "ref"}]`), count; as a relationship: role, transitive |
| `backlot:generation.Recipe`     | sha256, body (canonical JSON)                                      |
| `backlot:lineage.Staleness`     | stale, input, supersededBy, depth                                 |
| `backlot:kind.ConceptArt` etc.  | (none) what an asset is; says the kind of a new asset when publishing |

TraitsData holds primitive values only, so lists and recipes travel as JSON strings.
An entity's trait set follows from its asset kind, so it is the same for reading and for
publishing (`KIND_TRAIT_SETS`).
"""

from __future__ import annotations

import json
from typing import Any

from openassetio.trait import TraitsData
from openassetio_mediacreation.specifications.lifecycle import (
    EntityVersionsRelationshipSpecification_v1,
    StableEntityVersionsRelationshipSpecification_v1,
    StableReferenceRelationshipSpecification_v1,
)
from openassetio_mediacreation.traits.content import LocatableContentTrait_v1
from openassetio_mediacreation.traits.identity import DisplayNameTrait_v1
from openassetio_mediacreation.traits.lifecycle import StableTrait_v1, VersionTrait_v1
from openassetio_mediacreation.traits.managementPolicy import ManagedTrait_v1
from openassetio_mediacreation.traits.metadata import ArbitraryMetadataTrait_v1
from openassetio_mediacreation.traits.relationship import UnboundedTrait_v1
from openassetio_mediacreation.traits.timeDomain import FrameRangedTrait_v1
from openassetio_mediacreation.traits.twoDimensional import ImageTrait_v1
from openassetio_mediacreation.traits.usage import EntityTrait_v1, RelationshipTrait_v1

__all__ = [
    "ArbitraryMetadataTrait_v1", "DisplayNameTrait_v1", "EntityTrait_v1", "FrameRangedTrait_v1", "ImageTrait_v1",
    "InputsTrait", "KIND_TRAITS", "KIND_TRAIT_SETS", "LocatableContentTrait_v1", "ManagedTrait_v1", "OutputsTrait",
    "RecipeTrait", "RecordTrait", "RelationshipTrait_v1", "StalenessTrait", "StableTrait_v1", "UnboundedTrait_v1",
    "VersionTrait_v1",
    "kind_of",
]


class _BacklotTrait:
    """A typed view on one trait of a TraitsData, in the style of the MediaCreation views."""

    kId = ""

    def __init__(self, traitsData: TraitsData):
        self._data = traitsData

    @classmethod
    def isImbuedTo(cls, traitsData: TraitsData) -> bool:
        return traitsData.hasTrait(cls.kId)

    @classmethod
    def imbueTo(cls, traitsData: TraitsData) -> None:
        traitsData.addTrait(cls.kId)

    def isImbued(self) -> bool:
        return self._data.hasTrait(self.kId)

    def imbue(self) -> None:
        self._data.addTrait(self.kId)

    def _get(self, key: str, kind: type, default: Any = None) -> Any:
        value = self._data.getTraitProperty(self.kId, key)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{self.kId} property {key!r} must be a {kind.__name__}, not {type(value).__name__}")
        return value

    def _set(self, key: str, value: Any) -> None:
        self._data.setTraitProperty(self.kId, key, value)


class RecordTrait(_BacklotTrait):
    """What the tracker knows of a version. `status` is also read when publishing (default wip)."""

    kId = "backlot:tracker.Record"

    def getStatus(self, defaultValue: str | None = None) -> str | None:
        return self._get("status", str, defaultValue)

    def setStatus(self, status: str) -> None:
        self._set("status", status)

    def getKind(self) -> str | None:
        return self._get("kind", str)

    def getNumber(self) -> int | None:
        return self._get("number", int)

    def getContentHash(self) -> str | None:
        return self._get("contentHash", str)


class _EdgesTrait(_BacklotTrait):
    """A list of lineage edges `(role, reference)`, as JSON; as a relationship, `role` filters
    and `transitive` follows the whole chain."""

    _list_key = ""

    def getEdges(self) -> list[tuple[str, str]]:
        text = self._get(self._list_key, str)
        if text is None:
            return []
        try:
            items = json.loads(text)
            return [(str(item["role"]), str(item["ref"])) for item in items]
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{self.kId} {self._list_key!r} must be a JSON list of "
                             f"{{\"role\": ..., \"ref\": ...}} objects ({exc})") from None

    def setEdges(self, edges: list[tuple[str, str]]) -> None:
        self._set(self._list_key, json.dumps([{"role": role, "ref": ref} for role, ref in edges]))
        self._set("count", len(edges))

    def getRole(self) -> str | None:
        return self._get("role", str)

    def setRole(self, role: str) -> None:
        self._set("role", role)

    def getTransitive(self, defaultValue: bool = False) -> bool:
        return self._get("transitive", bool, defaultValue)

    def setTransitive(self, transitive: bool) -> None:
        self._set("transitive", transitive)


class InputsTrait(_EdgesTrait):
    """The versions a version was made from, with their roles (set it when publishing to record them)."""

    kId = "backlot:lineage.Inputs"
    _list_key = "inputs"

    getInputs = _EdgesTrait.getEdges
    setInputs = _EdgesTrait.setEdges


class OutputsTrait(_EdgesTrait):
    """The versions made from a version, with the role it played in each."""

    kId = "backlot:lineage.Outputs"
    _list_key = "outputs"

    getOutputs = _EdgesTrait.getEdges
    setOutputs = _EdgesTrait.setEdges


class RecipeTrait(_BacklotTrait):
    """How a generated version was made: canonical JSON and its sha256 (set `body` when publishing)."""

    kId = "backlot:generation.Recipe"

    def getBody(self) -> dict[str, Any] | None:
        text = self._get("body", str)
        if text is None:
            return None
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{self.kId} 'body' is not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise ValueError(f"{self.kId} 'body' must be a JSON object")
        return body

    def setBody(self, body: dict[str, Any]) -> None:
        self._set("body", json.dumps(body, sort_keys=True, separators=(",", ":")))

    def getSha256(self) -> str | None:
        return self._get("sha256", str)


class StalenessTrait(_BacklotTrait):
    """Whether a version is stale (an input, or an input's input, has been superseded) and why."""

    kId = "backlot:lineage.Staleness"

    def getStale(self) -> bool | None:
        return self._get("stale", bool)

    def getInput(self) -> str | None:
        return self._get("input", str)

    def getSupersededBy(self) -> str | None:
        return self._get("supersededBy", str)


KIND_TRAITS: dict[str, str] = {
    "concept_art": "backlot:kind.ConceptArt",
    "adapter": "backlot:kind.Adapter",
    "base_model": "backlot:kind.BaseModel",
    "shot_render": "backlot:kind.ShotRender",
    "reference": "backlot:kind.Reference",
}
_KIND_BY_TRAIT = {trait: kind for kind, trait in KIND_TRAITS.items()}

BASE_TRAITS = frozenset({
    EntityTrait_v1.kId, LocatableContentTrait_v1.kId, VersionTrait_v1.kId, DisplayNameTrait_v1.kId,
    ArbitraryMetadataTrait_v1.kId, RecordTrait.kId, InputsTrait.kId, OutputsTrait.kId, StalenessTrait.kId,
})
_KIND_EXTRAS = {
    "concept_art": {ImageTrait_v1.kId},
    "adapter": {RecipeTrait.kId},
    "base_model": set(),
    "shot_render": {RecipeTrait.kId, FrameRangedTrait_v1.kId},
    "reference": set(),
}
KIND_TRAIT_SETS: dict[str, frozenset[str]] = {
    kind: BASE_TRAITS | extras | {KIND_TRAITS[kind]} for kind, extras in _KIND_EXTRAS.items()
}
# What an asset with no versions yet (a publishing target) is known to have.
NEW_ASSET_TRAITS = frozenset({EntityTrait_v1.kId, LocatableContentTrait_v1.kId})
RESOLVABLE_TRAITS = frozenset().union(*KIND_TRAIT_SETS.values())
# What register reads from the data it is given.
PUBLISHABLE_TRAITS = frozenset({
    EntityTrait_v1.kId, LocatableContentTrait_v1.kId, ArbitraryMetadataTrait_v1.kId, RecordTrait.kId,
    InputsTrait.kId, RecipeTrait.kId, *KIND_TRAITS.values(),
})

VERSIONS_RELATIONSHIP = frozenset(EntityVersionsRelationshipSpecification_v1.kTraitSet)
STABLE_VERSIONS_RELATIONSHIP = frozenset(StableEntityVersionsRelationshipSpecification_v1.kTraitSet)
STABLE_REFERENCE_RELATIONSHIP = frozenset(StableReferenceRelationshipSpecification_v1.kTraitSet)


def kind_of(trait_set: set[str] | frozenset[str]) -> list[str]:
    """The asset kinds named by the `backlot:kind.*` traits of a trait set."""
    return [_KIND_BY_TRAIT[t] for t in trait_set if t in _KIND_BY_TRAIT]


def kinds_having(trait_set: set[str] | frozenset[str]) -> list[str] | None:
    """The kinds whose entities have every trait of `trait_set` (None: no filter, all kinds)."""
    if not trait_set:
        return None
    return sorted(kind for kind, traits in KIND_TRAIT_SETS.items() if trait_set <= traits)
