"""The resolve fast path (LocatableContent, Version, DisplayName and the traits without
properties) gives exactly what the general path gives, element by element.

The general path runs when the requested traits include one the fast path does not fill
(here `backlot:tracker.Record`, left out of the comparison); both go through the host.
"""

from __future__ import annotations

import pytest
from openassetio.access import ResolveAccess
from openassetio.errors import BatchElementError

import backlot
from backlot.integrations.openassetio import traits as t
from backlot.integrations.openassetio.manager import _LOCATED_TRAITS
from backlot.integrations.openassetio.prepared import SMALL_BATCH

from .conftest import PROJECT, REF, backlot_ref, traffic

Code = BatchElementError.ErrorCode
FAST = {t.EntityTrait_v1.kId, t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId, t.DisplayNameTrait_v1.kId,
        t.ImageTrait_v1.kId, *t.KIND_TRAITS.values()}


def outcomes(manager, strings, traits):
    refs = [manager.createEntityReference(s) for s in strings]
    out = [None] * len(refs)
    manager.resolve(refs, set(traits), ResolveAccess.kRead, manager.createContext(),
                    lambda i, v: out.__setitem__(i, ("ok", v)), lambda i, e: out.__setitem__(i, (e.code, e.message)))
    return out


def properties(data, traits) -> dict:
    return {trait: {key: data.getTraitProperty(trait, key) for key in data.traitPropertyKeys(trait)}
            for trait in data.traitSet() if trait in traits}


@pytest.fixture
def odd_files(production, files) -> tuple[str, str]:
    """A version whose file name needs percent-encoding, and one that is a folder of unrelated files."""
    with backlot.session() as s:
        spaced = backlot.publish_version(s, PROJECT, "references/board", [files("mood board é #1.png")],
                                          kind="reference")
        folder = backlot.publish_version(s, PROJECT, "base_models/big", [files("big/config.json"),
                                          files("big/weights/model.safetensors")],
                                          names=["config.json", "weights/model.safetensors"], kind="base_model")
    return spaced.ref, folder.ref


def test_fast_path_equals_general_path(manager, production, odd_files):
    assert FAST == set(_LOCATED_TRAITS)
    spaced, folder = odd_files
    strings = [
        f"{REF}/characters/mara", f"{REF}/characters/mara?v=approved", backlot_ref(production.art_v1),
        f"{REF}/characters/mara?v=latest", f"{REF}/characters/mara?",  # not canonical, still valid
        backlot_ref(production.adapter), backlot_ref(production.base_model), backlot_ref(production.shot),
        backlot_ref(spaced), backlot_ref(folder), f"{REF}/characters/mara",  # repeated
        "backlot:///nofilm/characters/mara", f"{REF}/characters/ghost", f"{REF}/characters/mara?v=9",
        f"{REF}/adapters/mara?v=approved", "backlot:///film?v=1", f"{REF}/characters/mara?v=01",
        f"{REF}/characters/mara\n",
    ]
    fast = outcomes(manager, strings, FAST)
    general = outcomes(manager, strings, FAST | {t.RecordTrait.kId})
    assert len(fast) == len(general) == len(strings)
    for string, a, b in zip(strings, fast, general):
        assert a[0] == b[0], string
        if a[0] == "ok":
            assert properties(a[1], FAST) == properties(b[1], FAST), string
            assert a[1].traitSet() == b[1].traitSet() - {t.RecordTrait.kId}, string
        else:
            assert a[1] == b[1], string
    codes = [a[0] for a in fast]
    assert codes == ["ok"] * 11 + [Code.kEntityResolutionError] * 4 + [Code.kMalformedEntityReference] * 3
    shot = fast[7][1]
    assert t.LocatableContentTrait_v1(shot).getIsTemplated() is True
    assert t.LocatableContentTrait_v1(fast[8][1]).getLocation().endswith("/mood%20board%20%C3%A9%20%231.png")
    assert t.LocatableContentTrait_v1(fast[9][1]).getMimeType() == "inode/directory"


@pytest.mark.parametrize("traits", [
    {t.LocatableContentTrait_v1.kId},
    {t.VersionTrait_v1.kId},
    {t.DisplayNameTrait_v1.kId, t.ImageTrait_v1.kId},
    set(),
])
def test_fast_path_fills_only_what_is_asked(manager, production, traits):
    strings = [f"{REF}/characters/mara", backlot_ref(production.adapter), backlot_ref(production.shot)]
    fast = outcomes(manager, strings, traits)
    general = outcomes(manager, strings, traits | {t.RecordTrait.kId})
    for a, b in zip(fast, general):
        assert properties(a[1], FAST) == properties(b[1], FAST)
        assert a[1].traitSet() == b[1].traitSet() - {t.RecordTrait.kId}


@pytest.mark.parametrize("size", (1, 10, 500))
def test_fast_path_is_one_round_trip(watched, production, size):
    manager, interface = watched
    kinds = [f"{REF}/characters/mara", backlot_ref(production.adapter), backlot_ref(production.shot),
             f"{REF}/characters/ghost", "backlot:///nofilm/x?v=2", "backlot:///film?v=1", f"{REF}/characters/mara?"]
    refs = [manager.createEntityReference(kinds[i % len(kinds)]) for i in range(size)]
    traits = {t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId}
    context = manager.createContext()
    manager.resolve(refs, traits, ResolveAccess.kRead, context, lambda *_: None, lambda *_: None)  # warm
    interface.backend.flush_cache()  # a cold cache: every reference goes to the database
    with traffic(interface.backend) as seen:
        manager.resolve(refs, traits, ResolveAccess.kRead, context, lambda *_: None, lambda *_: None)
    assert len(seen.statements) == 1 and seen.round_trips == 1
    # Small batches run a statement prepared when the connection opened: nothing to parse.
    assert seen.parses == (0 if size <= SMALL_BATCH else 1)


def test_an_empty_batch_does_not_touch_the_database(watched):
    manager, interface = watched
    with traffic(interface.backend) as seen:
        assert manager.resolve([], {t.LocatableContentTrait_v1.kId}, ResolveAccess.kRead, manager.createContext()) == []
    assert (seen.statements, seen.round_trips) == ([], 0)


def test_names_of_rows_cached_by_a_large_batch(watched, production):
    """A batch over SMALL_BATCH asks the database for no names it was not asked for; its rows,
    cached, still give DisplayName exactly as the general path does."""
    manager, interface = watched
    strings = [backlot_ref(production.art_v1), f"{REF}/characters/mara", backlot_ref(production.shot),
               f"{REF}/characters/mara?"] * (SMALL_BATCH // 4 + 1)
    outcomes(manager, strings, {t.LocatableContentTrait_v1.kId})
    names = {t.DisplayNameTrait_v1.kId, t.VersionTrait_v1.kId}
    with traffic(interface.backend) as seen:
        fast = outcomes(manager, strings[:4], names)
    assert seen.statements == []  # from the cache
    general = outcomes(manager, strings[:4], names | {t.RecordTrait.kId})
    assert [properties(a[1], FAST) for a in fast] == [properties(b[1], FAST) for b in general]
