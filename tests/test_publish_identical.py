"""Publishing identical content returns the asset's latest version: nothing is written twice."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, func, select, text

import backlot
from backlot.db.models import Event, Recipe, Version, VersionFile, VersionInput
from backlot.storage import Store
from tests.test_cli import rows


@pytest.fixture
def film(session, files):
    backlot.create_project(session, "film")
    return backlot.publish_version(session, "film", "models/base", [files("base.bin")], kind="base_model")


def counts(session) -> dict:
    return {m.__tablename__: session.scalar(select(func.count()).select_from(m))
            for m in (Version, VersionFile, VersionInput, Event, Recipe)}


def test_identical_publish_returns_the_latest_version_and_writes_nothing(session, film, files, tmp_path):
    store = Store(str(tmp_path / "store"))
    kw = dict(kind="adapter", inputs=[("base_model", film.ref)], recipe={"rank": 8, "seed": 1},
              metadata={"artist": "kim", "steps": 400}, store=store)
    first = backlot.publish_version(session, "film", "adapters/mara", [files("w.safetensors", "weights")], **kw)
    assert first.reused is False and first.to_dict()["reused"] is False
    before, stored = counts(session), sorted(p.name for p in (tmp_path / "store" / "versions").iterdir())

    class NoWrites(Store):
        def put_version(self, *args, **kwargs):
            raise AssertionError("identical content must not be stored again")

    again = backlot.publish_version(session, "film", "adapters/mara", [files("copy/w.safetensors", "weights")],
                                    names=["w.safetensors"], **(kw | {"store": NoWrites(str(tmp_path / "store")),
                                                                      "recipe": {"seed": 1, "rank": 8}}))
    assert (again.reused, again.id, again.number, again.ref) == (True, first.id, 1, "film/adapters/mara@1")
    assert again.to_dict()["reused"] is True
    assert again.files == first.files and again.inputs == first.inputs
    assert counts(session) == before, "no version, file, input, recipe or event row"
    assert sorted(p.name for p in (tmp_path / "store" / "versions").iterdir()) == stored
    assert backlot.get_version(session, again.ref).reused is False, "only the publish call says it reused"
    assert backlot.get_asset(session, "film", "adapters/mara").latest_number == 1


@pytest.mark.parametrize("change", [
    dict(content="other weights"),
    dict(name="renamed.safetensors"),
    dict(inputs=[]),
    dict(inputs=[("base_model", "film/models/base@1"), ("init_image", "film/models/base@1")]),
    dict(inputs=[("training_data", "film/models/base@1")]),  # same version, another role
    dict(metadata={"artist": "kim", "steps": 401}),
    dict(metadata={"artist": "kim", "steps": True}),  # jsonb: true is not 1
    dict(metadata=None),
    dict(recipe={"rank": 4, "seed": 1}),
    dict(recipe=None),
    dict(media_type="application/x-safetensors"),
    dict(new_version=True),
])
def test_any_difference_makes_a_new_version(session, film, files, change):
    base = dict(content="weights", name="w.safetensors", inputs=[("base_model", film.ref)],
                metadata={"artist": "kim", "steps": 400}, recipe={"rank": 8, "seed": 1}, media_type=None)

    def publish(content, name, **kw):
        return backlot.publish_version(session, "film", "adapters/mara", [files(name, content)], kind="adapter", **kw)

    first = publish(**base)
    before = counts(session)["versions"]
    second = publish(**(base | change))
    assert (second.reused, second.number) == (False, 2)
    assert counts(session)["versions"] == before + 1
    if "new_version" in change:
        assert second.content_hash == first.content_hash and second.inputs == first.inputs


def test_only_the_latest_version_is_compared(session, film, files):
    a = backlot.publish_version(session, "film", "bg", [files("bg.png", "A")], kind="reference")
    b = backlot.publish_version(session, "film", "bg", [files("bg.png", "B")])
    back = backlot.publish_version(session, "film", "bg", [files("bg.png", "A")])
    assert (a.number, b.number, back.number, back.reused) == (1, 2, 3, False)
    assert back.content_hash == a.content_hash
    assert backlot.publish_version(session, "film", "bg", [files("bg.png", "A")]).number == 3


def test_identical_content_with_another_status_keeps_the_existing_status(session, film, files):
    wip = backlot.publish_version(session, "film", "art", [files("a.png")], kind="concept_art")
    events = counts(session)["events"]
    same = backlot.publish_version(session, "film", "art", [files("a.png")], status="approved")
    assert (same.reused, same.number, same.status) == (True, 1, "wip")
    assert counts(session)["events"] == events
    backlot.set_status(session, wip.ref, "approved")
    assert backlot.publish_version(session, "film", "art", [files("a.png")]).status == "approved"
    with pytest.raises(backlot.InvalidInputError, match="status 'done' is invalid"):
        backlot.publish_version(session, "film", "art", [files("a.png")], status="done")
    forced = backlot.publish_version(session, "film", "art", [files("a.png")], status="review", new_version=True)
    assert (forced.reused, forced.number, forced.status) == (False, 2, "review")


def test_publish_in_place_is_compared_the_same_way(session, film, files):
    first = backlot.publish_version(session, "film", "plates/a", [files("plate.exr")], kind="reference",
                                    copy_files=False, metadata={"where": "/mnt/plates"})
    again = backlot.publish_version(session, "film", "plates/a", [files("plate.exr")], copy_files=False,
                                    metadata={"where": "/mnt/plates"})
    assert (again.reused, again.id) == (True, first.id)


def test_idempotency_key_keeps_its_behaviour(session, film, files):
    first = backlot.publish_version(session, "film", "shots/a", [files("f.png", "1")], kind="shot_render",
                                    idempotency_key="job-1")
    retry = backlot.publish_version(session, "film", "shots/a", [files("f.png", "other bytes")],
                                    idempotency_key="job-1")
    assert (retry.id, retry.reused) == (first.id, False)
    # A new key on identical content: the latest version is returned, no row carries the new key.
    same = backlot.publish_version(session, "film", "shots/a", [files("f.png", "1")], idempotency_key="job-2")
    assert (same.id, same.reused) == (first.id, True)
    assert session.scalar(select(func.count()).where(Version.idempotency_key == "job-2")) == 0


def test_the_kind_is_still_checked(session, film, files):
    backlot.publish_version(session, "film", "art", [files("a.png")], kind="concept_art")
    with pytest.raises(backlot.ConflictError, match="is a concept_art"):
        backlot.publish_version(session, "film", "art", [files("a.png")], kind="adapter")


def test_two_sessions_publishing_the_same_content_make_one_version(db_url, files):
    """Reuse is decided under the asset's row lock: the second publisher waits and finds the first."""
    import threading

    with backlot.session() as s:
        backlot.create_project(s, "film")
        backlot.publish_version(s, "film", "art", [files("a.png", "old")], kind="concept_art")
    path = files("new.png", "new")
    first_locked, results = threading.Event(), []

    def second():
        first_locked.wait(10)
        with backlot.session() as s:
            results.append(backlot.publish_version(s, "film", "art", [path]))

    thread = threading.Thread(target=second)
    with backlot.session() as s:
        results.append(backlot.publish_version(s, "film", "art", [path]))
        thread.start()
        first_locked.set()
        thread.join(0.5)  # it is now waiting on the asset's row lock
        assert thread.is_alive()
    thread.join(10)
    assert [(r.number, r.reused) for r in results] == [(2, False), (2, True)]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM versions")).scalar() == 2
    engine.dispose()


# -- the CLI -------------------------------------------------------------------------------


def test_cli_says_unchanged_and_new_version_forces(run, files, db_url):
    run("project", "create", "film")
    art = files("mara.png")
    first = json.loads(run("publish", "film", "characters/mara", art, "--kind", "concept_art", "--meta", "k=v",
                           "--json").stdout)
    assert first["reused"] is False and first["number"] == 1
    events = rows(db_url, "SELECT count(*) FROM events")
    result = run("publish", "film", "characters/mara", art, "--meta", "k=v")
    assert result.stdout.strip() == ("film/characters/mara@1 unchanged: same files and inputs as the latest version "
                                     "(use --new-version to publish anyway)")
    again = json.loads(run("publish", "film", "characters/mara", art, "--meta", "k=v", "--json").stdout)
    assert (again["reused"], again["number"], again["id"]) == (True, 1, first["id"])
    status = run("publish", "film", "characters/mara", art, "--meta", "k=v", "--status", "approved").stdout
    assert "@1 unchanged" in status and "it stays wip (change that with `backlot set-status`)" in status
    assert rows(db_url, "SELECT count(*) FROM events") == events
    assert "published film/characters/mara@2" in run("publish", "film", "characters/mara", art, "--meta", "k=v",
                                                     "--new-version").stdout
    assert "published film/characters/mara@3" in run("publish", "film", "characters/mara", art).stdout
    assert rows(db_url, "SELECT count(*) FROM versions") == 3


