"""The OpenAssetIO ManagerInterface for Backlot: a thin adapter over `backend.Backend`.

It turns EntityReferences and TraitsData into the backend's typed requests, its results
into TraitsData, and its per-element errors into BatchElementErrors. Each batch method
makes one backend call, so one SQL round trip, whatever the batch size (register: one
to check the batch, then `backlot.publish_version` per item). A database that cannot be
reached fails the whole call with `BacklotDatabaseError`; everything else is per element.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

from openassetio import EntityReference, constants
from openassetio.access import (
    DefaultEntityAccess,
    EntityTraitsAccess,
    PolicyAccess,
    PublishingAccess,
    RelationsAccess,
    ResolveAccess,
)
from openassetio.errors import BatchElementError, ConfigurationException
from openassetio.managerApi import EntityReferencePagerInterface, ManagerInterface
from openassetio.trait import TraitsData

from backlot.errors import BacklotError, DatabaseError

from backlot.integrations.openassetio import IDENTIFIER, traits as t
from backlot.integrations.openassetio.backend import (
    Backend,
    ElementError,
    ErrorKind,
    PluginSettings,
    PublishSpec,
    Relation,
    RelationRequest,
    VersionData,
)
from backlot.integrations.openassetio.errors import BacklotDatabaseError
from backlot.integrations.openassetio.queries import Need
from backlot.integrations.openassetio.references import PREFIX, is_reference, parse

Code = BatchElementError.ErrorCode
_CODES = {
    ErrorKind.malformed: Code.kMalformedEntityReference,
    ErrorKind.missing: Code.kEntityResolutionError,
    ErrorKind.access: Code.kEntityAccessError,
    ErrorKind.invalid_data: Code.kInvalidTraitSet,
    ErrorKind.invalid_hint: Code.kInvalidPreflightHint,
}
_CAPABILITIES = {
    ManagerInterface.Capability.kEntityReferenceIdentification,
    ManagerInterface.Capability.kManagementPolicyQueries,
    ManagerInterface.Capability.kEntityTraitIntrospection,
    ManagerInterface.Capability.kResolution,
    ManagerInterface.Capability.kExistenceQueries,
    ManagerInterface.Capability.kDefaultEntityReferences,
    ManagerInterface.Capability.kPublishing,
    ManagerInterface.Capability.kRelationshipQueries,
}


def _database_errors(method: Callable) -> Callable:
    """A database that cannot be reached fails the whole call, with a clear exception."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DatabaseError as exc:
            raise BacklotDatabaseError(f"Backlot: {exc}") from exc
    return wrapper


class BacklotManagerInterface(ManagerInterface):
    """Backlot as an OpenAssetIO manager: resolve, publish and query lineage."""

    def __init__(self) -> None:
        super().__init__()
        self._settings = PluginSettings()
        self._backend: Backend | None = None

    # -- identity and settings -------------------------------------------------------------

    def identifier(self) -> str:
        return IDENTIFIER

    def displayName(self) -> str:
        return "Backlot"

    def info(self) -> dict[str, Any]:
        # The prefix lets the host recognise references without calling into Python.
        return {constants.kInfoKey_EntityReferencesMatchPrefix: PREFIX}

    def settings(self, hostSession) -> dict[str, Any]:
        return self._settings.as_dict()

    def hasCapability(self, capability) -> bool:
        return capability in _CAPABILITIES

    @_database_errors
    def initialize(self, managerSettings, hostSession) -> None:
        try:
            settings = self._settings.merged(dict(managerSettings))
        except ValueError as exc:
            raise ConfigurationException(str(exc)) from None
        if self._backend is not None and settings == self._settings:
            return
        try:
            backend = Backend(settings)
        except DatabaseError:
            raise
        except BacklotError as exc:
            raise ConfigurationException(f"Backlot: {exc}") from None
        if self._backend is not None:
            self._backend.close()
        self._settings, self._backend = settings, backend

    def flushCaches(self, hostSession) -> None:
        """Drop every cached resolve (they are kept coherent anyway; see cache.py)."""
        if self._backend is not None:
            self._backend.flush_cache()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise ConfigurationException("the Backlot manager is not initialized: call initialize() first")
        return self._backend

    # -- references and policy -------------------------------------------------------------

    def isEntityReferenceString(self, someString: str, hostSession) -> bool:
        return is_reference(someString)

    def managementPolicy(self, traitSets, policyAccess, context, hostSession) -> list[TraitsData]:
        return [_policy(set(trait_set), policyAccess) for trait_set in traitSets]

    # -- queries ---------------------------------------------------------------------------

    @_database_errors
    def entityExists(self, entityReferences, context, hostSession, successCallback, errorCallback) -> None:
        results = self.backend.exists(_strings(entityReferences))
        _report(results, successCallback, errorCallback, lambda found: found)

    @_database_errors
    def entityTraits(self, entityReferences, entityTraitsAccess, context, hostSession, successCallback,
                     errorCallback) -> None:
        for_write = entityTraitsAccess == EntityTraitsAccess.kWrite
        results = self.backend.entity_kinds(_strings(entityReferences), for_write=for_write)
        _report(results, successCallback, errorCallback,
                lambda kind: set(t.KIND_TRAIT_SETS[kind] if kind else t.NEW_ASSET_TRAITS))

    @_database_errors
    def resolve(self, entityReferences, traitSet, resolveAccess, context, hostSession, successCallback,
                errorCallback) -> None:
        refs = _strings(entityReferences)
        if resolveAccess == ResolveAccess.kManagerDriven:
            self._working_locations(refs, set(traitSet), successCallback, errorCallback)
            return
        wanted = _wanted(frozenset(traitSet))
        if wanted <= _LOCATED_TRAITS:
            _resolve_located(self.backend, refs, wanted, successCallback, errorCallback)
            return
        results = self.backend.resolve(refs, _need(wanted))
        _report(results, successCallback, errorCallback, lambda version: _traits_for(version, wanted))

    def _working_locations(self, refs: list[str], trait_set: set[str], success: Callable, error: Callable) -> None:
        """Where a host should write before registering: a new folder per working reference."""
        if t.LocatableContentTrait_v1.kId not in trait_set:
            for idx in range(len(refs)):
                success(idx, TraitsData())
            return

        def location(url: str) -> TraitsData:
            data = TraitsData()
            content = t.LocatableContentTrait_v1(data)
            content.setLocation(url)
            content.setMimeType("inode/directory")
            content.setIsTemplated(False)
            return data

        _report(self.backend.working_locations(refs), success, error, location)

    @_database_errors
    def defaultEntityReference(self, traitSets, defaultEntityAccess, context, hostSession, successCallback,
                               errorCallback) -> None:
        # Only reading has defaults: the project's newest asset of the kind the trait set names.
        reading = defaultEntityAccess == DefaultEntityAccess.kRead
        refs = self.backend.default_refs([_default_kind(set(ts)) if reading else None for ts in traitSets])
        for idx, ref in enumerate(refs):
            successCallback(idx, self._createEntityReference(ref) if ref else None)

    @_database_errors
    def getWithRelationship(self, entityReferences, relationshipTraitsData, resultTraitSet, pageSize,
                            relationsAccess, context, hostSession, successCallback, errorCallback) -> None:
        refs = _strings(entityReferences)
        if relationsAccess != RelationsAccess.kRead:
            _fail_all(len(refs), errorCallback, Code.kEntityAccessError,
                      "Backlot relationships are read-only: lineage is recorded when a version is registered")
            return
        requests = [_relation(ref, relationshipTraitsData) for ref in refs]
        self._related(requests, resultTraitSet, pageSize, successCallback, errorCallback)

    @_database_errors
    def getWithRelationships(self, entityReference, relationshipTraitsDatas, resultTraitSet, pageSize,
                             relationsAccess, context, hostSession, successCallback, errorCallback) -> None:
        if relationsAccess != RelationsAccess.kRead:
            _fail_all(len(relationshipTraitsDatas), errorCallback, Code.kEntityAccessError,
                      "Backlot relationships are read-only: lineage is recorded when a version is registered")
            return
        ref = entityReference.toString()
        requests = [_relation(ref, data) for data in relationshipTraitsDatas]
        self._related(requests, resultTraitSet, pageSize, successCallback, errorCallback)

    def _related(self, requests: Sequence[RelationRequest | ElementError], resultTraitSet, pageSize: int,
                 successCallback, errorCallback) -> None:
        if pageSize < 1:
            raise ValueError(f"page size must be at least 1, not {pageSize}")
        valid = [(i, r) for i, r in enumerate(requests) if isinstance(r, RelationRequest)]
        found = self.backend.related([r for _, r in valid], t.kinds_having(set(resultTraitSet)))
        results: list[Any] = list(requests)
        for (i, _), result in zip(valid, found):
            results[i] = result
        _report(results, successCallback, errorCallback,
                lambda refs: BacklotPager([self._createEntityReference(r) for r in refs], pageSize))

    # -- publishing ------------------------------------------------------------------------

    @_database_errors
    def preflight(self, entityReferences, traitsHints, publishingAccess, context, hostSession, successCallback,
                  errorCallback) -> None:
        refs = _strings(entityReferences)
        if publishingAccess != PublishingAccess.kWrite:
            _fail_all(len(refs), errorCallback, Code.kEntityAccessError, _NO_CREATE_RELATED)
            return
        results = self.backend.preflight(refs, [tuple(t.kind_of(set(h.traitSet()))) for h in traitsHints])
        _report(results, successCallback, errorCallback, self._createEntityReference)

    @_database_errors
    def register(self, entityReferences, entityTraitsDatas, publishingAccess, context, hostSession,
                 successCallback, errorCallback) -> None:
        refs = _strings(entityReferences)
        if publishingAccess != PublishingAccess.kWrite:
            _fail_all(len(refs), errorCallback, Code.kEntityAccessError, _NO_CREATE_RELATED)
            return
        results = self.backend.register(refs, [_publish_spec(ref, data) for ref, data in zip(refs, entityTraitsDatas)])
        _report(results, successCallback, errorCallback, self._createEntityReference)


_NO_CREATE_RELATED = "Backlot publishes new versions only (PublishingAccess.kWrite); kCreateRelated is not supported"


class BacklotPager(EntityReferencePagerInterface):
    """Pages over references already fetched (the whole batch came in one query)."""

    def __init__(self, refs: list[EntityReference], page_size: int):
        super().__init__()
        self._refs = refs
        self._size = page_size
        self._start = 0

    def hasNext(self, hostSession) -> bool:
        return self._start + self._size < len(self._refs)

    def get(self, hostSession) -> list[EntityReference]:
        return self._refs[self._start:self._start + self._size]

    def next(self, hostSession) -> None:
        self._start = min(self._start + self._size, len(self._refs))

    def close(self, hostSession) -> None:
        self._refs = []


# -- adapters ------------------------------------------------------------------------------


def _strings(refs: Sequence[EntityReference]) -> list[str]:
    return [ref.toString() for ref in refs]


def _report(results: Sequence[Any], success: Callable, error: Callable, convert: Callable) -> None:
    for idx, result in enumerate(results):
        if isinstance(result, ElementError):
            error(idx, BatchElementError(_CODES[result.kind], result.message))
        else:
            success(idx, convert(result))


def _fail_all(count: int, error: Callable, code, message: str) -> None:
    for idx in range(count):
        error(idx, BatchElementError(code, message))


def _default_kind(trait_set: set[str]) -> str | None:
    kinds = t.kind_of(trait_set)
    return kinds[0] if len(kinds) == 1 else None


def _policy(trait_set: set[str], access) -> TraitsData:
    """Managed for entities; imbued with the traits Backlot resolves (read) or persists (write)."""
    policy = TraitsData()
    if t.EntityTrait_v1.kId not in trait_set:
        return policy
    if access == PolicyAccess.kRead:
        handled = trait_set & t.RESOLVABLE_TRAITS
    elif access == PolicyAccess.kWrite:
        handled = trait_set & t.PUBLISHABLE_TRAITS
    elif access in (PolicyAccess.kRequired, PolicyAccess.kManagerDriven):
        # kManagerDriven: Backlot gives a working folder to write into (then register it)
        handled = trait_set & {t.LocatableContentTrait_v1.kId}
    else:  # kCreateRelated: not supported
        return policy
    t.ManagedTrait_v1(policy).imbue()
    policy.addTraits(handled)
    return policy


@functools.lru_cache(maxsize=256)
def _need(wanted: frozenset[str]) -> Need:
    return Need(
        version=bool(wanted & {t.RecordTrait.kId, t.ArbitraryMetadataTrait_v1.kId}),
        files=bool(wanted & {t.LocatableContentTrait_v1.kId, t.FrameRangedTrait_v1.kId}),
        recipe=t.RecipeTrait.kId in wanted,
        inputs=t.InputsTrait.kId in wanted,
        outputs=t.OutputsTrait.kId in wanted,
        staleness=t.StalenessTrait.kId in wanted,
    )


# What the resolve fast path fills: the traits whose values come finished from the one statement.
_LOCATED_TRAITS = frozenset({
    t.EntityTrait_v1.kId, t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId, t.DisplayNameTrait_v1.kId,
    t.ImageTrait_v1.kId, *t.KIND_TRAITS.values(),
})
_LC, _VERSION, _NAME = t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId, t.DisplayNameTrait_v1.kId


@functools.lru_cache(maxsize=256)
def _wanted(trait_set: frozenset[str]) -> frozenset[str]:
    """The requested traits Backlot resolves (a host asks with the same few sets again and again)."""
    return trait_set & t.RESOLVABLE_TRAITS


def _resolve_located(backend: Backend, refs: list[str], wanted: frozenset[str], success: Callable,
                     error: Callable) -> None:
    """Resolve for `_LOCATED_TRAITS`: per reference, a copy of a prebuilt TraitsData (the
    entity's traits for its kind, with the batch-constant properties: mimeType,
    isTemplated) and the few properties that differ set on it directly."""
    rows, errors = backend.locate(refs, names=_NAME in wanted)
    for idx, element_error in errors:
        error(idx, BatchElementError(_CODES[element_error.kind], element_error.message))
    location, version, name = _LC in wanted, _VERSION in wanted, _NAME in wanted
    templates = _TEMPLATES
    set_property = TraitsData.setTraitProperty
    for idx, row in rows:
        _, kind, mime_type, templated, url, stable_tag, specified_tag, display, qualified, _, _, _, _ = row
        # The tags are few (latest, approved, small numbers): part of the template, not set per reference.
        key = (wanted, kind, mime_type, templated, specified_tag, stable_tag) if version else \
            (wanted, kind, mime_type, templated)
        template = templates.get(key)
        if template is None:
            if len(templates) >= 4096:
                templates.clear()
            template = templates[key] = _located_template(wanted, kind, mime_type, templated,
                                                          specified_tag if version else None, stable_tag)
        data = TraitsData(template)
        if location:
            set_property(data, _LC, "location", url)
        if name:
            if display is None:  # a row cached from a large batch, fetched without names
                display, qualified = _display_names(refs[idx], stable_tag)
            set_property(data, _NAME, "name", display)
            set_property(data, _NAME, "qualifiedName", qualified)
        success(idx, data)


def _display_names(ref: str, number: str) -> tuple[str, str]:
    """DisplayName's name and qualifiedName, as the statement builds them (`mara v3`, `film / characters/mara / v3`)."""
    parsed = parse(ref)
    return f"{parsed.asset.rsplit('/', 1)[-1]} v{number}", f"{parsed.project} / {parsed.asset} / v{number}"


# Prebuilt TraitsData by (wanted traits, kind, mime type, templated[, specified tag, stable
# tag]), kept across calls; never handed out, only copied.
_TEMPLATES: dict[tuple, TraitsData] = {}


def _located_template(wanted: frozenset[str], kind: str, mime_type: str, templated: bool,
                      specified_tag: str | None, stable_tag: str) -> TraitsData:
    data = TraitsData(set(wanted & t.KIND_TRAIT_SETS[kind]))
    if _LC in wanted:
        content = t.LocatableContentTrait_v1(data)
        content.setMimeType(mime_type)
        content.setIsTemplated(templated)
    if specified_tag is not None:
        data.setTraitProperty(_VERSION, "specifiedTag", specified_tag)
        data.setTraitProperty(_VERSION, "stableTag", stable_tag)
    return data


def _traits_for(version: VersionData, wanted: frozenset[str]) -> TraitsData:
    """The requested traits this version has, filled in."""
    data = TraitsData()
    have = wanted & t.KIND_TRAIT_SETS[version.kind]
    for trait_id in have:
        fill = _FILLERS.get(trait_id)
        if fill is None:
            data.addTrait(trait_id)  # a trait with no properties (Entity, Image, backlot:kind.*)
        else:
            fill(data, version)
    return data


def _fill_location(data: TraitsData, v: VersionData) -> None:
    trait = t.LocatableContentTrait_v1(data)
    trait.setLocation(v.content.url)
    trait.setMimeType(v.content.mime_type)
    trait.setIsTemplated(v.content.templated)


def _fill_version(data: TraitsData, v: VersionData) -> None:
    trait = t.VersionTrait_v1(data)
    trait.setSpecifiedTag(v.ref.tag_text)
    trait.setStableTag(str(v.number))


def _fill_name(data: TraitsData, v: VersionData) -> None:
    trait = t.DisplayNameTrait_v1(data)
    trait.setName(f"{v.ref.asset.rsplit('/', 1)[-1]} v{v.number}")
    trait.setQualifiedName(f"{v.ref.project} / {v.ref.asset} / v{v.number}")


def _fill_metadata(data: TraitsData, v: VersionData) -> None:
    t.ArbitraryMetadataTrait_v1(data).imbue()
    for key, value in (v.metadata or {}).items():
        primitive = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True)
        data.setTraitProperty(t.ArbitraryMetadataTrait_v1.kId, key, primitive)


def _fill_record(data: TraitsData, v: VersionData) -> None:
    t.RecordTrait(data).imbue()
    props = {"project": v.ref.project, "asset": v.ref.asset, "kind": v.kind, "number": v.number,
             "status": v.status, "contentHash": v.content_hash, "mediaType": v.media_type,
             "createdBy": v.created_by, "createdAt": v.created_at.isoformat() if v.created_at else None,
             "versionId": v.version_id}
    for key, value in props.items():
        if value is not None:
            data.setTraitProperty(t.RecordTrait.kId, key, value)


def _fill_inputs(data: TraitsData, v: VersionData) -> None:
    trait = t.InputsTrait(data)
    trait.imbue()
    trait.setInputs([(e.role, e.ref) for e in v.inputs or ()])


def _fill_outputs(data: TraitsData, v: VersionData) -> None:
    trait = t.OutputsTrait(data)
    trait.imbue()
    trait.setOutputs([(e.role, e.ref) for e in v.outputs or ()])


def _fill_recipe(data: TraitsData, v: VersionData) -> None:
    if v.recipe_sha256 is None:
        return  # not a generated version: the trait is left out
    t.RecipeTrait(data).setBody(v.recipe_body or {})
    data.setTraitProperty(t.RecipeTrait.kId, "sha256", v.recipe_sha256)


def _fill_staleness(data: TraitsData, v: VersionData) -> None:
    s = v.staleness
    t.StalenessTrait(data).imbue()
    data.setTraitProperty(t.StalenessTrait.kId, "stale", s.stale)
    if s.stale:
        data.setTraitProperty(t.StalenessTrait.kId, "input", s.input)
        data.setTraitProperty(t.StalenessTrait.kId, "depth", s.depth)
        if s.superseded_by:
            data.setTraitProperty(t.StalenessTrait.kId, "supersededBy", s.superseded_by)


def _fill_frames(data: TraitsData, v: VersionData) -> None:
    trait = t.FrameRangedTrait_v1(data)
    trait.imbue()
    trait.setFramesPerSecond(float(v.fps))
    if v.content.first_frame is not None:
        trait.setStartFrame(v.content.first_frame)
        trait.setEndFrame(v.content.last_frame)


_FILLERS: dict[str, Callable[[TraitsData, VersionData], None]] = {
    t.LocatableContentTrait_v1.kId: _fill_location,
    t.VersionTrait_v1.kId: _fill_version,
    t.DisplayNameTrait_v1.kId: _fill_name,
    t.ArbitraryMetadataTrait_v1.kId: _fill_metadata,
    t.RecordTrait.kId: _fill_record,
    t.InputsTrait.kId: _fill_inputs,
    t.OutputsTrait.kId: _fill_outputs,
    t.RecipeTrait.kId: _fill_recipe,
    t.StalenessTrait.kId: _fill_staleness,
    t.FrameRangedTrait_v1.kId: _fill_frames,
}


def _relation(ref: str, data: TraitsData) -> RelationRequest | ElementError:
    """The backend request for a relationship trait set (unknown ones give no results)."""
    trait_set = frozenset(data.traitSet())
    relation = Relation.none
    role, transitive, tag = None, False, None
    if trait_set == t.VERSIONS_RELATIONSHIP:
        relation, tag = Relation.versions, t.VersionTrait_v1(data).getSpecifiedTag()
    elif trait_set == t.STABLE_VERSIONS_RELATIONSHIP:
        relation, tag = Relation.stable_versions, t.VersionTrait_v1(data).getSpecifiedTag()
    elif trait_set == t.STABLE_REFERENCE_RELATIONSHIP:
        relation = Relation.stable
    elif t.RelationshipTrait_v1.kId in trait_set and trait_set - _RELATION_QUALIFIERS in _LINEAGE:
        (trait_id,) = trait_set - _RELATION_QUALIFIERS
        relation = Relation.inputs if trait_id == t.InputsTrait.kId else Relation.outputs
        view = t.InputsTrait(data) if relation is Relation.inputs else t.OutputsTrait(data)
        try:
            role, transitive = view.getRole(), view.getTransitive()
        except TypeError as exc:
            return ElementError(ErrorKind.invalid_data, f"{ref}: {exc}")
    return RelationRequest(ref, relation, role, transitive, tag)


_RELATION_QUALIFIERS = frozenset({t.RelationshipTrait_v1.kId, t.UnboundedTrait_v1.kId})
_LINEAGE = (frozenset({t.InputsTrait.kId}), frozenset({t.OutputsTrait.kId}))


def _publish_spec(ref: str, data: TraitsData) -> PublishSpec | ElementError:
    """Decode what register was given; a clear per-element error for anything malformed."""
    try:
        location = t.LocatableContentTrait_v1(data)
        metadata = {key: data.getTraitProperty(t.ArbitraryMetadataTrait_v1.kId, key)
                    for key in data.traitPropertyKeys(t.ArbitraryMetadataTrait_v1.kId)}
        inputs = t.InputsTrait(data).getInputs() if t.InputsTrait.isImbuedTo(data) else []
        recipe = t.RecipeTrait(data).getBody() if t.RecipeTrait.isImbuedTo(data) else None
        return PublishSpec(
            location=location.getLocation() if location.isImbued() else None,
            mime_type=location.getMimeType() if location.isImbued() else None,
            kinds=tuple(t.kind_of(set(data.traitSet()))), status=t.RecordTrait(data).getStatus(),
            inputs=tuple(inputs), recipe=recipe, metadata=metadata)
    except (TypeError, ValueError) as exc:
        return ElementError(ErrorKind.invalid_data, f"{ref}: {exc}")
