"""The tracker API against real PostgreSQL: projects, shots, assets, versions, review."""

from __future__ import annotations

from fractions import Fraction

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import backlot
from backlot.db.models import Event, Note, Version, VersionFile, VersionInput
from backlot.errors import ConflictError, InvalidInputError, NotFoundError


@pytest.fixture
def film(session):
    return backlot.create_project(session, "film", fps="24000/1001", name="The Film")


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_project_fps_is_an_exact_fraction(session, film):
    assert film.fps == Fraction(24000, 1001)
    assert backlot.get_project(session, "film").fps == Fraction(24000, 1001)
    assert backlot.create_project(session, "ntsc", fps="23.976").fps == Fraction(24000, 1001)
    assert [p.code for p in backlot.list_projects(session)] == ["film", "ntsc"]


@pytest.mark.parametrize("code", ["", "has space", "../up", "-lead", "x" * 65, "é"])
def test_bad_project_codes_are_refused(session, code):
    with pytest.raises(InvalidInputError, match="project code"):
        backlot.create_project(session, code)


def test_duplicate_project_is_a_conflict(session, film):
    with pytest.raises(ConflictError, match="already exists"):
        backlot.create_project(session, "film")


def test_project_codes_are_unique_without_regard_to_case(session, film, files):
    with pytest.raises(ConflictError, match="'FILM' clashes with the existing project 'film'"):
        backlot.create_project(session, "FILM")
    assert [p.code for p in backlot.list_projects(session)] == ["film"]
    # References name the project in any case and resolve to the stored code.
    version = backlot.publish_version(session, "Film", "art", [files("a.png")], kind="concept_art")
    assert version.ref == "film/art@1"
    assert backlot.get_version(session, "FILM/art@1").ref == "film/art@1"
    assert backlot.get_project(session, "fIlM").code == "film"
    # The database refuses it too, whoever writes.
    with pytest.raises(DBAPIError, match="uq_projects_lower_code"), session.begin_nested():
        session.execute(text("INSERT INTO projects (code, name) VALUES ('FILM', 'x')"))


@pytest.mark.parametrize("fps", ["0", "-24", "abc", "1/0"])
def test_bad_frame_rates_are_refused(session, fps):
    with pytest.raises(InvalidInputError, match="frame rate"):
        backlot.create_project(session, "p", fps=fps)


def test_shots_keep_editorial_order_and_sequences(session, film):
    backlot.create_shot(session, "film", "sq010_sh0020", sequence="sq010", frames=48)
    backlot.create_shot(session, "film", "sq010_sh0010", sequence="sq010", frames=24, handles=8)
    backlot.create_shot(session, "film", "sq020_sh0010", sequence="sq020")
    shots = backlot.list_shots(session, "film")
    assert [s.code for s in shots] == ["sq010_sh0020", "sq010_sh0010", "sq020_sh0010"]
    assert (shots[0].cut_in, shots[0].cut_out, shots[0].frame_count) == (1001, 1048, 48)
    assert shots[1].handles == 8
    assert [s.code for s in backlot.list_shots(session, "film", "sq020")] == ["sq020_sh0010"]
    assert [s.code for s in backlot.list_sequences(session, "film")] == ["sq010", "sq020"]
    with pytest.raises(ConflictError):
        backlot.create_shot(session, "film", "sq010_sh0010")
    with pytest.raises(InvalidInputError, match="frame count"):
        backlot.create_shot(session, "film", "bad", frames=0)
    with pytest.raises(NotFoundError, match="no project"):
        backlot.create_shot(session, "nope", "sh1")


def test_publish_records_files_inputs_recipe_and_event(session, film, files):
    art = backlot.publish_version(session, "film", "characters/mara", [files("mara.png")], kind="concept_art")
    assert (art.ref, art.number, art.status, art.media_type) == ("film/characters/mara@1", 1, "wip", "image/png")
    assert art.files[0].path == "mara.png" and art.files[0].size == len("content of mara.png")
    adapter = backlot.publish_version(
        session, "film", "adapters/mara", [files("w.safetensors")], kind="adapter",
        inputs=[("training_data", art.ref)], recipe={"steps": 10, "lr": 0.0001, "seed": 7},
        metadata={"note": "first try"})
    assert [(i.role, i.ref) for i in adapter.inputs] == [("training_data", "film/characters/mara@1")]
    assert adapter.recipe == {"lr": 0.0001, "seed": 7, "steps": 10}
    assert adapter.metadata == {"note": "first try"}
    _, body = backlot.canonical_recipe({"seed": 7, "steps": 10, "lr": 0.0001})
    assert body == adapter.recipe
    kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert [k.value for k in kinds].count("version_created") == 2


def test_same_recipe_is_stored_once(session, film, files):
    a = backlot.publish_version(session, "film", "a", [files("a")], kind="reference", recipe={"x": 1, "y": [1, 2]})
    b = backlot.publish_version(session, "film", "b", [files("b")], kind="reference", recipe={"y": [1, 2], "x": 1})
    assert a.recipe_sha256 == b.recipe_sha256
    assert session.scalar(text("SELECT count(*) FROM recipes")) == 1


def test_latest_approved_and_numbered_lookup(session, film, files):
    for n in range(3):
        backlot.publish_version(session, "film", "bg", [files(f"bg{n}.exr", f"bg {n}")], kind="reference")
    with pytest.raises(NotFoundError, match="no approved version"):
        backlot.get_version(session, "film/bg@approved")
    backlot.set_status(session, "film/bg@2", "approved", note="good")
    assert backlot.get_version(session, "film/bg@latest").number == 3
    assert backlot.get_version(session, "film/bg").number == 3
    assert backlot.get_version(session, "film/bg@approved").number == 2
    assert backlot.get_version(session, "film/bg@1").number == 1
    with pytest.raises(NotFoundError, match="no version 9"):
        backlot.get_version(session, "film/bg@9")
    assert [v.number for v in backlot.list_versions(session, "film", "bg")] == [1, 2, 3]
    notes = backlot.list_notes(session, "film/bg@2")
    assert [(n.body, n.status_change) for n in notes] == [("good", "approved")]


@pytest.mark.parametrize("ref", ["film", "film/", "film/bg@0", "film/bg@-1", "film/bg@newest", "fi lm/bg",
                                 "film/bg/../x", "film//bg"])
def test_malformed_references_are_refused(session, film, ref):
    with pytest.raises(InvalidInputError):
        backlot.get_version(session, ref)


def test_unknown_things_are_not_found(session, film, files):
    with pytest.raises(NotFoundError, match="no project 'nope'"):
        backlot.get_version(session, "nope/bg@1")
    with pytest.raises(NotFoundError, match="no asset 'bg'"):
        backlot.get_version(session, "film/bg@1")
    with pytest.raises(NotFoundError, match="pass a kind"):
        backlot.publish_version(session, "film", "newasset", [files("x")])


def test_failed_publish_writes_nothing(session, film, files, tmp_path):
    art = backlot.publish_version(session, "film", "art", [files("a")], kind="concept_art")
    before = {m: count(session, m) for m in (Version, VersionFile, VersionInput, Event)}
    bad_calls = [
        dict(files=[tmp_path / "missing.png"]),
        dict(files=[files("ok")], inputs=[("training_data", "film/art@7")]),
        dict(files=[files("ok")], inputs=[("bogus_role", art.ref)]),
        dict(files=[files("ok")], status="finished"),
        dict(files=[files("ok")], recipe={"bad": {1, 2}}),
        dict(files=[files("ok"), files("sub/ok")], names=["same", "same"]),
        dict(files=[files("ok")], names=["../escape"]),
        dict(files=[]),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidInputError if "inputs" not in call or "bogus" in str(call) else NotFoundError):
            backlot.publish_version(session, "film", "new", kind="reference", **call)
    with pytest.raises(ConflictError, match="is a concept_art"):
        backlot.publish_version(session, "film", "art", [files("b")], kind="adapter")
    assert {m: count(session, m) for m in before} == before
    assert backlot.list_assets(session, "film")[0].name == "art"


def test_invalid_status_is_refused(session, film, files):
    backlot.publish_version(session, "film", "bg", [files("a")], kind="reference")
    with pytest.raises(InvalidInputError, match="status 'done' is invalid"):
        backlot.set_status(session, "film/bg@1", "done")


def test_version_content_is_immutable_in_the_database(db_url, files):
    with backlot.session() as s:
        backlot.create_project(s, "film")
        art = backlot.publish_version(s, "film", "art", [files("a")], kind="concept_art")
        other = backlot.publish_version(s, "film", "other", [files("b")], kind="adapter",
                                         inputs=[("training_data", art.ref)], recipe={"steps": 1})
    statements = [
        f"UPDATE versions SET content_hash = 'x' WHERE id = {art.id}",
        f"UPDATE versions SET number = 5 WHERE id = {art.id}",
        f"UPDATE versions SET metadata = '{{\"a\": 1}}' WHERE id = {art.id}",
        f"UPDATE versions SET superseded = true WHERE id = {art.id}",
        f"DELETE FROM versions WHERE id = {art.id}",
        f"UPDATE version_files SET sha256 = 'x' WHERE version_id = {art.id}",
        f"DELETE FROM version_files WHERE version_id = {art.id}",
        f"DELETE FROM version_inputs",
        f"INSERT INTO version_inputs VALUES ({other.id}, {art.id}, 'concept_art')",
        f"UPDATE version_inputs SET role = 'adapter'",
        f"INSERT INTO version_files VALUES ({art.id}, 'extra.png', 'abc', 1)",
        f"UPDATE recipes SET body = '{{}}'",
    ]
    for sql in statements:
        with pytest.raises(ConflictError, match="immutable|derived"):
            with backlot.session() as s:
                s.execute(text(sql))
    with backlot.session() as s:
        s.execute(text(f"UPDATE versions SET status = 'review' WHERE id = {art.id}"))
        assert backlot.get_version(s, art.id).status == "review"
        assert backlot.get_version(s, art.id).content_hash == art.content_hash


def test_inputs_must_be_older_versions(session, film, files):
    a = backlot.publish_version(session, "film", "a", [files("a")], kind="concept_art")
    with pytest.raises(DBAPIError, match="input_is_older"):
        with session.begin_nested():
            session.execute(text(f"INSERT INTO version_inputs VALUES ({a.id}, {a.id}, 'concept_art')"))


def test_numbers_are_assigned_by_the_database(session, film, files):
    a = backlot.publish_version(session, "film", "a", [files("a")], kind="concept_art")
    with pytest.raises(DBAPIError, match="assigned by the database"):
        with session.begin_nested():
            session.execute(text(
                "INSERT INTO versions (asset_id, project_id, number, content_hash, media_type, status, created_by) "
                f"SELECT asset_id, project_id, 5, 'h', 't', 'wip', 'x' FROM versions WHERE id = {a.id}"))


def test_every_mutation_writes_an_event(session, film, files):
    backlot.create_shot(session, "film", "sh010", sequence="sq1")
    v = backlot.publish_version(session, "film", "shots/sh010/main", [files("f")], kind="shot_render", shot="sh010")
    backlot.set_status(session, v.ref, "approved")
    backlot.add_note(session, v.ref, "lovely")
    kinds = [k.value for k in session.scalars(select(Event.kind).order_by(Event.id))]
    assert kinds == ["project_created", "sequence_created", "shot_created", "asset_created", "version_created",
                     "status_changed", "note_added"]
    assert count(session, Note) == 1
    assert backlot.get_asset(session, "film", "shots/sh010/main").shot == "sh010"


def _media_of(session, version_id: int) -> tuple[str | None, str | None]:
    return session.execute(text(f"SELECT first_image, first_movie FROM versions WHERE id = {version_id}")).one()


def test_versions_know_their_first_image_and_movie(session, film, files):
    """Kept by the database as files are attached, in one statement or several (as a render's frames)."""
    names = ["notes.txt", "frames/frame.1010.png", "frames/frame.1002.PNG", "preview.mov", "a.mp4", "frames/x.png"]
    render = backlot.publish_version(session, "film", "shots/sh/main", [files(n, n) for n in names], names=names,
                                      kind="shot_render")
    assert _media_of(session, render.id) == ("frames/frame.1002.PNG", "a.mp4")
    session.execute(text(f"INSERT INTO version_files VALUES ({render.id}, 'frames/frame.0999.png', 'a', 1), "
                         f"({render.id}, 'frames/frame.1500.png', 'b', 1)"))
    assert _media_of(session, render.id) == ("frames/frame.0999.png", "a.mp4")
    art = backlot.publish_version(session, "film", "art", [files("a.txt")], kind="concept_art")
    assert _media_of(session, art.id) == (None, None)


def test_version_media_is_derived_not_written(db_url, files):
    with backlot.session() as s:
        backlot.create_project(s, "film")
        art = backlot.publish_version(s, "film", "art", [files("a.1001.png")], kind="concept_art")
    for sql in [f"UPDATE versions SET first_image = 'x.0001.png' WHERE id = {art.id}",
                f"UPDATE versions SET first_movie = 'x.mov' WHERE id = {art.id}"]:
        with pytest.raises(ConflictError, match="derived from the version's files"):
            with backlot.session() as s:
                s.execute(text(sql))
    with backlot.session() as s:
        s.add(Version(asset_id=s.get(Version, art.id).asset_id, project_id=1, content_hash="c", media_type="x",
                      status="wip", created_by="t", first_image="forged.0001.png"))
        s.flush()
        assert _media_of(s, s.scalar(select(func.max(Version.id)))) == (None, None)
        assert _media_of(s, art.id) == ("a.1001.png", None)
