"""Bad input: each gets its own per-element error, or a clear exception; a failed register writes nothing."""

from __future__ import annotations

import socket

import pytest
from openassetio.access import (
    EntityTraitsAccess,
    PublishingAccess,
    RelationsAccess,
    ResolveAccess,
)
from openassetio.errors import BatchElementError, ConfigurationException
from openassetio.trait import TraitsData
from openassetio_mediacreation.specifications.lifecycle import EntityVersionsRelationshipSpecification_v1

from backlot.integrations.openassetio import traits as t
from backlot.integrations.openassetio.errors import BacklotDatabaseError

from .conftest import REF, backlot_ref, find_manager, written

Code = BatchElementError.ErrorCode
FORM = "expected backlot:///PROJECT/ASSET_PATH?v=N|latest|approved"


def outcomes(call, manager, strings, *args):
    """Per element: ("ok", value) or (error code, message)."""
    refs = [manager.createEntityReference(s) for s in strings]
    out = [None] * len(refs)
    call(refs, *args, manager.createContext(), lambda i, v: out.__setitem__(i, ("ok", v)),
         lambda i, e: out.__setitem__(i, (e.code, e.message)))
    return out


def resolve(manager, strings, traits=frozenset({t.LocatableContentTrait_v1.kId}), access=ResolveAccess.kRead):
    return outcomes(manager.resolve, manager, strings, set(traits), access)


def register(manager, strings, datas):
    return outcomes(manager.register, manager, strings, datas, PublishingAccess.kWrite)


def publish_data(location: str | None = None, *kinds: str, props: dict | None = None) -> TraitsData:
    """Data for register; `props` maps (trait id, property) to a value."""
    data = TraitsData({t.EntityTrait_v1.kId, *(t.KIND_TRAITS[k] for k in kinds)})
    if location is not None:
        t.LocatableContentTrait_v1(data).setLocation(location)
    for (trait_id, key), value in (props or {}).items():
        data.setTraitProperty(trait_id, key, value)
    return data


@pytest.mark.parametrize("string, why", [
    ("backlot:///", "has no valid project code"),
    ("backlot:///film", "has no valid asset path"),
    ("backlot:///film/", "has no valid asset path"),
    ("backlot:///film/characters//mara", "has no valid asset path"),
    ("backlot:///film/characters/../mara", "has no valid asset path"),
    ("backlot:///fi lm/characters/mara", "has no valid project code"),
    ("backlot:///film/characters/mara?v=0", "has an invalid version '0'"),
    ("backlot:///film/characters/mara?v=01", "has an invalid version '01'"),
    ("backlot:///film/characters/mara?v=-1", "has an invalid version '-1'"),
    ("backlot:///film/characters/mara?v=newest", "has an invalid version 'newest'"),
    ("backlot:///film/characters/mara?v=", "has an invalid version ''"),
    ("backlot:///film/characters/mara?x=1", "has an invalid query"),
    ("backlot:///film/characters/mara?v=1&v=2", "has an invalid query"),
])
def test_malformed_references(manager, string, why):
    [(code, message)] = resolve(manager, [string])
    assert code == Code.kMalformedEntityReference
    assert message.startswith(f"'{string}' {why}")
    [(code, _)] = outcomes(manager.entityExists, manager, [string])
    assert code == Code.kMalformedEntityReference


def test_unknown_projects_assets_and_versions(manager):
    strings = ["backlot:///nofilm/characters/mara", f"{REF}/characters/ghost", f"{REF}/characters/mara?v=9",
               f"{REF}/adapters/mara?v=approved", f"{REF}/characters/mara?v=latest"]
    results = resolve(manager, strings)
    assert results[:4] == [
        (Code.kEntityResolutionError, "backlot:///nofilm/characters/mara: no project 'nofilm' in Backlot"),
        (Code.kEntityResolutionError, f"{REF}/characters/ghost: project 'film' has no asset 'characters/ghost'"),
        (Code.kEntityResolutionError, f"{REF}/characters/mara?v=9: asset film/characters/mara has no version 9 "
                                      "(latest is 3)"),
        (Code.kEntityResolutionError, f"{REF}/adapters/mara?v=approved: asset film/adapters/mara has no approved "
                                      "version"),
    ]
    assert results[4][0] == "ok"  # the batch goes on around the failures
    assert [r[0] for r in outcomes(manager.entityTraits, manager, strings, EntityTraitsAccess.kRead)] == \
        [Code.kEntityResolutionError] * 4 + ["ok"]


def test_traits_the_manager_cannot_resolve_are_left_out(manager, production):
    art, adapter = f"{REF}/characters/mara", backlot_ref(production.adapter)
    [(_, unknown)] = resolve(manager, [art], {"studio:someTrait", "openassetio-mediacreation:twoDimensional.Deep"})
    assert unknown.traitSet() == set()
    # Concept art is no recipe's output; an adapter is no image.
    [(_, a), (_, b)] = resolve(manager, [art, adapter], {t.RecipeTrait.kId, t.ImageTrait_v1.kId})
    assert (a.traitSet(), b.traitSet()) == ({t.ImageTrait_v1.kId}, {t.RecipeTrait.kId})


def test_manager_driven_resolution_of_a_read_only_reference_is_refused(manager):
    """A working location is for publishing: only the asset (latest) takes one."""
    results = resolve(manager, [f"{REF}/characters/mara?v=3", f"{REF}/characters/mara?v=approved",
                                "backlot:///nofilm/x"], {t.LocatableContentTrait_v1.kId},
                      access=ResolveAccess.kManagerDriven)
    assert [code for code, _ in results] == [Code.kEntityAccessError] * 2 + [Code.kEntityResolutionError]
    assert "versions are immutable" in results[0][1] and "no project 'nofilm'" in results[2][1]


@pytest.mark.parametrize("string, what", [
    (f"{REF}/characters/mara?v=3", "versions are immutable"),
    (f"{REF}/characters/mara?v=approved", "'approved' follows review, not publishing"),
])
def test_read_only_references_refuse_writes(manager, files, string, what):
    expected = (Code.kEntityAccessError,
                f"{string} is read-only ({what}): publish to {REF}/characters/mara to make a new version")
    before = written()
    data = publish_data(files("x.png").as_uri())
    assert outcomes(manager.entityTraits, manager, [string], EntityTraitsAccess.kWrite) == [expected]
    assert outcomes(manager.preflight, manager, [string], [data], PublishingAccess.kWrite) == [expected]
    assert register(manager, [string], [data]) == [expected]
    assert written() == before


def test_other_access_modes_are_refused(manager, files):
    data = publish_data(files("x.png").as_uri())
    [(code, _)] = outcomes(manager.register, manager, [f"{REF}/characters/mara"], [data],
                           PublishingAccess.kCreateRelated)
    assert code == Code.kEntityAccessError
    [(code, _)] = outcomes(manager.getWithRelationship, manager, [f"{REF}/characters/mara"],
                           EntityVersionsRelationshipSpecification_v1.create().traitsData(), 10, RelationsAccess.kWrite)
    assert code == Code.kEntityAccessError


def test_failed_registers_write_nothing_and_do_not_stop_the_batch(manager, production, files):
    good = files("good.png").as_uri()
    mara = f"{REF}/characters/mara"
    cases = [
        (mara, publish_data(None), Code.kInvalidTraitSet, "the data has no LocatableContent location"),
        (mara, publish_data(files.root.as_uri() + "/missing.png"), Code.kInvalidTraitSet, "does not exist"),
        (mara, publish_data("https://example.com/x.png"), Code.kInvalidTraitSet, "is not a local file:// URL"),
        (mara, publish_data(good, "adapter"), Code.kInvalidTraitSet, "is a concept_art asset, but the traits say adapter"),
        (f"{REF}/props/new", publish_data(good), Code.kInvalidTraitSet, "does not exist yet: add a backlot:kind.*"),
        ("backlot:///nofilm/props/new", publish_data(good, "reference"), Code.kEntityResolutionError,
         "no project 'nofilm'"),
        (mara, publish_data(good, props={(t.InputsTrait.kId, "inputs"): "not json"}), Code.kInvalidTraitSet,
         "must be a JSON list"),
        (mara, publish_data(good, props={(t.InputsTrait.kId, "inputs"):
                                          '[{"role": "training_data", "ref": "backlot:///film/characters/ghost"}]'}),
         Code.kInvalidTraitSet, "input training_data=backlot:///film/characters/ghost cannot be used: "
                                "backlot:///film/characters/ghost: project 'film' has no asset"),
        (mara, publish_data(good, props={(t.InputsTrait.kId, "inputs"): '[{"role": "muse", "ref": "' + mara + '"}]'}),
         Code.kInvalidTraitSet, "input role 'muse' is invalid"),
        (mara, publish_data(good, props={(t.RecordTrait.kId, "status"): "final"}), Code.kInvalidTraitSet,
         "status 'final' is invalid"),
        (mara, publish_data(good, props={(t.RecipeTrait.kId, "body"): "[1, 2]"}), Code.kInvalidTraitSet,
         "'body' must be a JSON object"),
    ]
    before = written()
    results = register(manager, [c[0] for c in cases], [c[1] for c in cases])
    for (ref, _, code, text), result in zip(cases, results):
        assert result[0] == code and text in result[1], (ref, text, result)
    assert written() == before
    # A good item in the same batch as bad ones is published; the bad ones still write nothing.
    results = register(manager, [mara, mara], [publish_data(good), cases[1][1]])
    assert results[0] == ("ok", results[0][1]) and results[0][1].toString() == f"{mara}?v=4"
    assert results[1][0] == Code.kInvalidTraitSet
    versions, assets, events, objects = before
    assert written() == (versions + 1, assets, events + 1, objects + 1)


def test_bad_settings_are_a_configuration_error(production):
    manager = find_manager()
    with pytest.raises(ConfigurationException, match=r"unknown Backlot manager settings \['library_path'\]"):
        manager.initialize({"library_path": "/tmp/x.json"})
    with pytest.raises(ConfigurationException, match="'project' must be a string"):
        manager.initialize({"project": 3})
    with pytest.raises(ConfigurationException, match="is not a PostgreSQL URL"):
        manager.initialize({"database_url": "sqlite:///x.db"})


def test_unreachable_database_at_initialize(env):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manager = find_manager()
    with pytest.raises(BacklotDatabaseError, match=f"Backlot: cannot reach the database at .*127.0.0.1:{port}"):
        manager.initialize({"database_url": f"postgresql+psycopg://backlot:secret@127.0.0.1:{port}/backlot"})


def test_database_lost_after_initialize(manager, db_url, files):
    from tests.conftest import drop_database

    drop_database(db_url)  # kills the manager's connections and the database with them
    with pytest.raises(BacklotDatabaseError, match="Backlot: "):
        resolve(manager, [f"{REF}/characters/mara"])
    with pytest.raises(BacklotDatabaseError):
        register(manager, [f"{REF}/characters/mara"], [publish_data(files("late.png").as_uri())])
