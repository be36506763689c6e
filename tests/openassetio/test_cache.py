"""The resolve cache: ?v=N kept, latest/approved invalidated by the database, bypassed when
the LISTEN connection is down; an approval in another process is seen within a second.

Statements are counted on the wire (conftest.traffic): a resolve served from the cache
sends nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest
from openassetio.access import PublishingAccess, ResolveAccess
from openassetio.errors import ConfigurationException
from openassetio.trait import TraitsData
from sqlalchemy.engine import make_url

import backlot
from backlot.integrations.openassetio import traits as t
from backlot.integrations.openassetio.cache import APPLICATION_NAME

from .conftest import REF, backlot_ref, traffic

TRAITS = {t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId}
APPROVED = f"{REF}/characters/mara?v=approved"
LATEST = f"{REF}/characters/mara"


def tags(manager, strings) -> list[str]:
    refs = [manager.createEntityReference(s) for s in strings]
    return [t.VersionTrait_v1(d).getStableTag() for d in manager.resolve(refs, TRAITS, ResolveAccess.kRead,
                                                                          manager.createContext())]


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_cached_resolve_sends_nothing(watched, production):
    manager, interface = watched
    strings = [backlot_ref(production.art_v1), LATEST, APPROVED, backlot_ref(production.shot)]
    first = tags(manager, strings)
    with traffic(interface.backend) as seen:
        again = tags(manager, strings)
        assert manager.entityExists([manager.createEntityReference(s) for s in strings], manager.createContext()) \
            == [True] * 4
    assert again == first == ["1", "3", "3", "1"]
    assert (seen.statements, seen.round_trips) == ([], 0)


def test_a_change_in_this_process_is_seen_by_the_next_resolve(watched, production, files):
    """No waiting for the notification: the ORM commit and register invalidate at once."""
    manager, interface = watched
    assert tags(manager, [APPROVED, LATEST]) == ["3", "3"]
    with backlot.session() as s:
        backlot.set_status(s, production.art_v3, "rejected")
    assert tags(manager, [APPROVED, LATEST]) == ["1", "3"]
    with backlot.session() as s:
        backlot.publish_version(s, "film", "characters/mara", [files("mara_v4.png")], status="approved")
    assert tags(manager, [APPROVED, LATEST]) == ["4", "4"]
    data = TraitsData({t.EntityTrait_v1.kId})
    t.LocatableContentTrait_v1(data).setLocation(files("mara_v5.png").as_uri())
    t.RecordTrait(data).setStatus("approved")
    manager.register(manager.createEntityReference(LATEST), data, PublishingAccess.kWrite, manager.createContext())
    assert tags(manager, [APPROVED, LATEST, f"{REF}/characters/mara?v=1"]) == ["5", "5", "1"]


APPROVER = textwrap.dedent("""
    import sys, time
    import backlot
    time.sleep(0.3)
    with backlot.session() as s:
        backlot.set_status(s, sys.argv[1], sys.argv[2])
    print(time.monotonic_ns(), flush=True)
""")


@pytest.mark.parametrize("status, expected", [("rejected", "1"), ("approved", "2")])
def test_an_approval_in_another_process_is_seen_within_a_second(manager, production, db_url, status, expected):
    """Another process changes the approved version (the newest approved one: v3 rejected
    gives v1; with v3 rejected, v2 approved gives v2) while this one resolves `approved`
    from its cache every millisecond."""
    if status == "approved":
        with backlot.session() as s:
            backlot.set_status(s, production.art_v3, "rejected")
    assert tags(manager, [APPROVED]) == ["3" if status == "rejected" else "1"]
    target = production.art_v3 if status == "rejected" else production.art_v2
    child = subprocess.Popen([sys.executable, "-c", APPROVER, target, status], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "DATABASE_URL": db_url})
    seen = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if tags(manager, [APPROVED]) == [expected]:
            seen = time.monotonic_ns()
            break
        time.sleep(0.001)
    committed = int(child.communicate(timeout=30)[0].split()[-1])
    assert child.returncode == 0
    assert seen is not None, "the approval was never seen"
    assert (seen - committed) / 1e9 < 1.0


def test_meta_versions_bypass_the_cache_while_the_listener_is_down(watched, production, db_url):
    manager, interface = watched
    backend = interface.backend
    assert tags(manager, [APPROVED, backlot_ref(production.art_v1)]) == ["3", "1"]
    backend._listener.stop()
    wait_for(lambda: not backend.cache.meta_usable())
    # A change no notification reaches and no ORM hook sees: raw SQL from elsewhere.
    with psycopg.connect(plain(db_url), autocommit=True) as conn:
        conn.execute("UPDATE versions SET status = 'rejected' WHERE number = 3 AND asset_id = "
                     "(SELECT id FROM assets WHERE name = 'characters/mara')")
    with traffic(backend) as seen:
        assert tags(manager, [APPROVED]) == ["1"]
        assert tags(manager, [APPROVED]) == ["1"]  # and again: nothing is stored meanwhile
    assert len(seen.statements) == 2
    with traffic(backend) as seen:
        assert tags(manager, [backlot_ref(production.art_v1)]) == ["1"]  # ?v=N: still cached
    assert seen.statements == []


def test_a_lost_listen_connection_reconnects_and_forgets_what_it_may_have_missed(watched, production, db_url):
    manager, interface = watched
    backend = interface.backend
    assert tags(manager, [APPROVED]) == ["3"]
    with psycopg.connect(plain(db_url), autocommit=True) as conn:
        killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = %s AND datname = current_database()",
                              (APPLICATION_NAME,)).fetchall()
        assert killed == [(True,)]
        conn.execute("UPDATE versions SET status = 'rejected' WHERE number = 3 AND asset_id = "
                     "(SELECT id FROM assets WHERE name = 'characters/mara')")
    assert tags(manager, [APPROVED]) == ["1"]
    wait_for(backend.cache.meta_usable)  # reconnected
    assert tags(manager, [APPROVED]) == ["1"]
    with traffic(backend) as seen:
        assert tags(manager, [APPROVED]) == ["1"]
    assert seen.statements == []  # cached again


def test_flush_caches_and_the_cache_setting(watched, production):
    manager, interface = watched
    tags(manager, [LATEST])
    manager.flushCaches()
    with traffic(interface.backend) as seen:
        tags(manager, [LATEST])
    assert len(seen.statements) == 1
    manager.initialize({"cache": "off"})
    backend = interface.backend
    assert backend.cache is None
    with traffic(backend) as seen:
        tags(manager, [LATEST, backlot_ref(production.art_v1)])
        tags(manager, [LATEST, backlot_ref(production.art_v1)])
    assert len(seen.statements) == 2
    with pytest.raises(ConfigurationException, match="'cache' must be 'on' or 'off', not 'sometimes'"):
        manager.initialize({"cache": "sometimes"})


def test_preload_caches_the_project_as_the_database_gives_it(watched, production):
    """`preload = project`: after initialize, the project's references resolve from the cache,
    with exactly what the database gives (a multi-file version included)."""
    manager, interface = watched
    strings = [backlot_ref(ref) for ref in (production.art_v1, production.art_v2, production.art_v3,
                                            production.base_model, production.adapter, production.shot)]
    strings += [LATEST, APPROVED, f"{REF}/characters/mara?v=latest", f"{REF}/shots/sq010_sh0010/main"]
    traits = {t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId, t.DisplayNameTrait_v1.kId}

    def resolved():
        refs = [manager.createEntityReference(s) for s in strings]
        return [{trait: {key: d.getTraitProperty(trait, key) for key in d.traitPropertyKeys(trait)}
                 for trait in d.traitSet()}
                for d in manager.resolve(refs, traits, ResolveAccess.kRead, manager.createContext())]

    manager.initialize({"cache": "off"})
    expected = resolved()
    manager.initialize({"cache": "on", "project": "film", "preload": "project"})
    assert interface.backend.preloaded.wait(10)
    with traffic(interface.backend) as seen:
        assert resolved() == expected
    assert seen.statements == []
    with pytest.raises(ConfigurationException, match="'preload' = 'project' needs a 'project'"):
        manager.initialize({"project": "", "preload": "project"})


def test_a_project_renamed_elsewhere_drops_even_numbered_versions(watched, production, db_url):
    """`*` (migration 0009): a rename or a delete can make a ?v=N reference name nothing."""
    manager, interface = watched
    v1 = backlot_ref(production.art_v1)
    assert tags(manager, [v1]) == ["1"]
    assert interface.backend.cache.stable
    with psycopg.connect(plain(db_url), autocommit=True) as conn:
        conn.execute("UPDATE projects SET code = 'film2' WHERE code = 'film'")
    wait_for(lambda: not interface.backend.cache.stable)
    [(code, message)] = [(e.code, e.message) for e in manager.resolve(
        [manager.createEntityReference(v1)], TRAITS, ResolveAccess.kRead, manager.createContext(),
        manager.BatchElementErrorPolicyTag.kVariant)]
    assert "no project 'film'" in message
