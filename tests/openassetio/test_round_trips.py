"""One SQL round trip per batch, whatever its size.

Counted twice: statements, with a SQLAlchemy `before_cursor_execute` listener, and round
trips on the wire, from a libpq trace of the connections the batch used (each exchange
ends with the server's ReadyForQuery; BEGIN, COMMIT, pings and prepares would show up).
"""

from __future__ import annotations

import pytest
from openassetio.access import (
    DefaultEntityAccess,
    EntityTraitsAccess,
    PublishingAccess,
    RelationsAccess,
    ResolveAccess,
)
from openassetio.trait import TraitsData
from openassetio_mediacreation.specifications.lifecycle import (
    EntityVersionsRelationshipSpecification_v1,
    StableReferenceRelationshipSpecification_v1,
)

from backlot.integrations.openassetio import traits as t

from .conftest import REF, backlot_ref, traffic, written

SIZES = (1, 10, 500)


def batch(production, size: int) -> list[str]:
    """`size` references mixing every outcome: found, meta-versions, missing, malformed."""
    kinds = [f"{REF}/characters/mara", backlot_ref(production.adapter), f"{REF}/characters/mara?v=approved",
             backlot_ref(production.shot), f"{REF}/characters/ghost", "backlot:///nofilm/x?v=2",
             f"{REF}/characters/mara?v=9", "backlot:///film?v=1"]
    return [kinds[i % len(kinds)] for i in range(size)]


def noop(*_):
    pass


def calls(manager, strings):
    """Each batch method of the manager, on the same references."""
    context = manager.createContext()
    refs = [manager.createEntityReference(s) for s in strings]
    lineage = TraitsData({t.RelationshipTrait_v1.kId, t.InputsTrait.kId})
    t.InputsTrait(lineage).setTransitive(True)
    versions = EntityVersionsRelationshipSpecification_v1.create().traitsData()
    stable = StableReferenceRelationshipSpecification_v1.create().traitsData()
    hint = TraitsData({t.EntityTrait_v1.kId, t.LocatableContentTrait_v1.kId})
    kind_set = {t.EntityTrait_v1.kId, t.KIND_TRAITS["concept_art"]}
    return {
        "resolve": lambda: manager.resolve(refs, set(t.RESOLVABLE_TRAITS), ResolveAccess.kRead, context, noop, noop),
        "entityExists": lambda: manager.entityExists(refs, context, noop, noop),
        "entityTraits read": lambda: manager.entityTraits(refs, EntityTraitsAccess.kRead, context, noop, noop),
        "entityTraits write": lambda: manager.entityTraits(refs, EntityTraitsAccess.kWrite, context, noop, noop),
        "preflight": lambda: manager.preflight(refs, [hint] * len(refs), PublishingAccess.kWrite, context, noop, noop),
        "getWithRelationship versions": lambda: manager.getWithRelationship(
            refs, versions, 3, RelationsAccess.kRead, context, noop, noop),
        "getWithRelationship lineage": lambda: manager.getWithRelationship(
            refs, lineage, 3, RelationsAccess.kRead, context, noop, noop),
        "getWithRelationships": lambda: manager.getWithRelationships(
            refs[0], [versions, lineage, stable] * len(refs), 3, RelationsAccess.kRead, context, noop, noop),
        "defaultEntityReference": lambda: manager.defaultEntityReference(
            [kind_set] * len(refs), DefaultEntityAccess.kRead, context, noop, noop),
    }


@pytest.mark.parametrize("size", SIZES)
def test_every_batch_is_one_round_trip(watched, production, size):
    manager, interface = watched
    manager.initialize({"project": "film"})  # so default references query the database
    operations = calls(manager, batch(production, size))
    for name, call in operations.items():
        call()  # warm: the pool has its connection, the small-batch connection its prepared statements
        interface.backend.flush_cache()  # counted cold; the cache is tested in test_cache.py
        with traffic(interface.backend) as seen:
            call()
        assert len(seen.statements) == 1, (name, seen.statements)
        assert seen.round_trips == 1, name


def test_a_batch_of_only_malformed_references_does_not_touch_the_database(watched):
    manager, interface = watched
    refs = [manager.createEntityReference("backlot:///film?v=1")] * 20
    with traffic(interface.backend) as seen:
        manager.resolve(refs, {t.LocatableContentTrait_v1.kId}, ResolveAccess.kRead, manager.createContext(),
                        noop, noop)
    assert (seen.statements, seen.round_trips) == ([], 0)


def test_a_register_batch_is_checked_in_one_round_trip(watched, production, files):
    """Targets and inputs of the whole batch are checked in one query; a batch where every
    item fails stops there and writes nothing. Each item that passes is then published
    through backlot.publish_version (its own statements, in one transaction)."""
    manager, interface = watched
    data = TraitsData({t.EntityTrait_v1.kId})
    t.LocatableContentTrait_v1(data).setLocation(files("new.png").as_uri())
    t.InputsTrait(data).setInputs([("training_data", f"{REF}/characters/ghost"),
                                   ("base_model", backlot_ref(production.base_model))])
    strings = batch(production, 40)
    refs = [manager.createEntityReference(s) for s in strings]
    errors = {}
    before = written()
    with traffic(interface.backend) as seen:
        manager.register(refs, [data] * len(refs), PublishingAccess.kWrite, manager.createContext(),
                         lambda i, r: pytest.fail(f"registered {r.toString()}"), errors.__setitem__)
    assert len(errors) == len(refs)
    assert len(seen.statements) == 1 and seen.round_trips == 1
    assert written() == before
