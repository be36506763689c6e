"""Review in Kitsu against a real Zou server: link, push previews, pull statuses and notes,
and the faults (wrong URL or credentials, missing shots, a server that goes away, an
upload cut off) — each finished by the next sync, with nothing duplicated."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

import backlot
from backlot.integrations.kitsu import sync_project
from backlot.integrations.kitsu.client import KitsuError
from backlot.integrations.kitsu.push import MARKER
from backlot.db.review_sync import ReviewLink, ReviewUpload
from backlot.generation.models import version_folder
from tests.kitsu.zou_server import ADMIN_EMAIL, ADMIN_PASSWORD, free_port

pytestmark = pytest.mark.kitsu


def link(run, url, production, *extra, code=0):
    return run("kitsu", "link", "film", "--url", url, "--login", ADMIN_EMAIL, "--production", production,
               "--create", *extra, code=code)


def sync(run, *extra, code=0):
    result = run("kitsu", "sync", "film", "--json", *extra, code=code)
    return json.loads(result.stdout) if code == 0 or result.stdout.strip().startswith("{") else None


def marked_comments(client, task_id):
    import gazu

    return [c for c in gazu.task.all_comments_for_task(task_id, client=client) if (c["text"] or "").startswith(MARKER)]


def test_link_refuses_a_wrong_url_and_wrong_credentials_and_writes_nothing(run, zou, production, monkeypatch):
    monkeypatch.setenv("BACKLOT_KITSU_PASSWORD", ADMIN_PASSWORD)
    _, name, _ = production
    nowhere = link(run, f"http://127.0.0.1:{free_port()}", name, code=2)
    assert "nothing answers" in nowhere.stderr or "cannot be reached" in nowhere.stderr
    monkeypatch.setenv("BACKLOT_KITSU_PASSWORD", "wrong")
    refused = link(run, zou.url, name, code=2)
    assert "refused the credentials" in refused.stderr
    missing = run("kitsu", "sync", "film", code=2)
    assert "not linked to Kitsu" in missing.stderr
    with backlot.session() as s:
        assert s.scalar(select(func.count()).select_from(ReviewLink)) == 0


def test_push_uploads_each_version_once_and_pull_brings_review_back(run, zou, production, kitsu_admin, login_env):
    import gazu

    _, name, refs = production
    linked = json.loads(link(run, zou.url, name, "--json").stdout)
    assert linked["production_name"] == name and linked["task_type"] == "Animation"
    missing = sync(run, "--push", code=2)  # each version fails alone, with the sequence to create named
    assert len(missing["failures"]) == 3 and missing["pushed"] == []
    assert "has no sequence 'sq010'" in missing["failures"][0] and "--create-missing" in missing["failures"][0]

    dry = sync(run, "--push", "--create-missing", "--dry-run")
    assert [i["ref"] for i in dry["to_push"]] == refs and dry["pushed"] == []
    report = sync(run, "--push", "--create-missing")
    assert [p["version"] for p in report["pushed"]] == refs and not report["failures"]
    for pushed in report["pushed"]:
        (comment,) = marked_comments(kitsu_admin, pushed["task"])
        assert comment["text"].splitlines()[0] == f"{MARKER} {pushed['version']}"
        (preview,) = comment["previews"]
        assert preview["extension"] == "mp4" and preview["status"] != "broken"
        task = gazu.task.get_task(pushed["task"], client=kitsu_admin)
        assert task["task_status"]["short_name"] == "wfa"
    assert sync(run, "--push")["pushed"] == []  # idempotent: nothing is sent twice

    first, second = report["pushed"][0], report["pushed"][1]
    statuses = {s["short_name"]: s for s in gazu.task.all_task_statuses(client=kitsu_admin)}
    gazu.task.add_comment(first["task"], statuses["done"], "Lovely light, approved", client=kitsu_admin)
    gazu.task.add_comment(second["task"], statuses["retake"], "Hair pops on frame 12", client=kitsu_admin)
    pulled = sync(run, "--pull")
    assert {(c["version"], c["to"]) for c in pulled["statuses"]} == {(refs[0], "approved"), (refs[1], "rejected")}
    with backlot.session() as s:
        assert backlot.get_version(s, refs[0]).status == "approved"
        assert backlot.get_version(s, refs[1]).status == "rejected"
        assert backlot.get_version(s, refs[2]).status == "review"  # sent for review, nobody answered yet
        (note,) = backlot.list_notes(s, refs[1])
    assert note.body == "Hair pops on frame 12" and note.author == "Super Admin (Kitsu)"
    again = sync(run, "--pull")
    assert again["notes"] == [] and again["statuses"] == []  # each comment comes back once


def test_a_new_version_is_a_new_revision_and_comments_go_to_the_newest(run, zou, production, kitsu_admin, login_env,
                                                                       tmp_path):
    import gazu

    _, name, refs = production
    link(run, zou.url, name)
    sync(run, "--push", "--create-missing")
    with backlot.session() as s:
        old = backlot.get_version(s, refs[0])
        files = [f for f in version_folder(old).rglob("*") if f.is_file()]
        newer = backlot.publish_version(s, "film", "shots/sh0010/main", [files[0]], kind="shot_render",
                                         shot="sh0010", names=["preview.mp4"], recipe={"take": 2})
    (pushed,) = sync(run, "--push")["pushed"]
    assert pushed["version"] == newer.ref and pushed["revision"] == 2
    statuses = {s["short_name"]: s for s in gazu.task.all_task_statuses(client=kitsu_admin)}
    gazu.task.add_comment(pushed["task"], statuses["approved"], "", client=kitsu_admin)
    sync(run, "--pull")
    with backlot.session() as s:
        assert backlot.get_version(s, newer.ref).status == "approved"
        assert backlot.get_version(s, refs[0]).status == "review"


def test_a_server_that_goes_away_mid_sync_is_finished_by_the_next_sync(db_url, production, relay, kitsu_admin,
                                                                         login_env, run):
    _, name, refs = production
    link(run, relay.url, name)

    def stop_after_first(stage, done, total, label):
        if stage == "push" and done == 1:
            relay.stop()

    with pytest.raises(KitsuError, match="cannot be reached.*1 of 3 previews were sent"):
        sync_project("film", pull=False, create_missing=True, progress=stop_after_first)
    with backlot.session() as s:
        assert s.scalar(select(func.count()).where(ReviewUpload.preview_id.is_not(None))) == 1
    relay.start()  # the same address again
    finished = sync(run, "--push", "--create-missing")
    assert [p["version"] for p in finished["pushed"]] == refs[1:]
    for pushed in finished["pushed"]:
        assert len(marked_comments(kitsu_admin, pushed["task"])) == 1


def test_an_upload_cut_off_is_attached_to_the_same_comment_next_time(db_url, production, relay, kitsu_admin,
                                                                      login_env, run):
    _, name, refs = production
    link(run, relay.url, name)
    relay.cut_uploads = True
    with pytest.raises(KitsuError, match="cannot be reached.*0 of 1 previews"):
        sync_project("film", pull=False, versions=[refs[0]], create_missing=True)
    with backlot.session() as s:
        (upload,) = s.scalars(select(ReviewUpload)).all()
        assert upload.comment_id and upload.preview_id is None
    relay.cut_uploads = False
    dry = sync(run, "--push", "--version", refs[0], "--dry-run")
    assert [i["action"] for i in dry["to_push"]] == ["attach"]
    (pushed,) = sync(run, "--push", "--version", refs[0])["pushed"]
    (comment,) = marked_comments(kitsu_admin, pushed["task"])
    assert comment["id"] == upload.comment_id and len(comment["previews"]) == 1


def test_a_bearer_token_links_too(run, zou, production, kitsu_admin):
    """A Kitsu bot authenticates with a bearer token; Zou's bot creation wants a real mail
    domain (checked over DNS, which this sandbox has none of), so the admin's own access
    token stands in for the bot's: the same `--bot-token` code path."""
    _, name, _ = production
    token = kitsu_admin.tokens["access_token"]
    result = run("kitsu", "link", "film", "--url", zou.url, "--bot-token", token, "--production", name, "--create",
                 "--json")
    assert json.loads(result.stdout)["auth"] == "bot-token"
    bad = run("kitsu", "link", "film", "--url", zou.url, "--bot-token", "not-a-token", "--production", name, code=2)
    assert "refused the credentials" in bad.stderr


def test_watch_pulls_when_the_event_stream_reports_a_comment(run, zou, production, kitsu_admin, login_env):
    """Polling is set to ten minutes: only Kitsu's event stream can bring the approval back."""
    import threading
    import time

    import gazu

    from backlot.integrations.kitsu.watch import watch_project

    _, name, refs = production
    link(run, zou.url, name, "--events-url", zou.events_url)
    sync(run, "--push", "--create-missing")
    stop, listening, reports = threading.Event(), threading.Event(), []
    watcher = threading.Thread(target=watch_project, args=("film",), daemon=True,
                               kwargs=dict(poll_seconds=600, stop=stop, listening=listening,
                                           on_report=lambda report, why: reports.append((why, report))))
    watcher.start()
    try:
        assert listening.wait(30), "the event stream did not connect"
        with backlot.session() as s:
            task_id = s.scalar(select(ReviewUpload.task_id).where(ReviewUpload.version_id ==
                                                                  backlot.get_version(s, refs[0]).id))
        statuses = {s["short_name"]: s for s in gazu.task.all_task_statuses(client=kitsu_admin)}
        gazu.task.add_comment(task_id, statuses["done"], "Final", client=kitsu_admin)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(why == "event" for why, _ in reports):
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join(10)
    (event_report,) = [r for why, r in reports if why == "event"]
    assert [(c["version"], c["to"]) for c in event_report.pulled.statuses] == [(refs[0], "approved")]


def test_the_review_movie_pushed_is_signed_and_what_zou_serves_is_its_transcode(run, zou, production, kitsu_admin,
                                                                                 login_env, env, tmp_path, monkeypatch):
    """The review copy goes out signed with the version's lineage (read back from what the push sent);
    Zou stores a transcode of it, which carries no manifest (docs/provenance.md says so)."""
    import io
    import shutil

    import c2pa
    import gazu

    from backlot import provenance
    from backlot.integrations.kitsu import push
    from backlot.provenance.credentials import LINEAGE_LABEL

    _, name, refs = production
    with backlot.session() as s:
        provenance.use_signer(s, "film", provenance.init_signer(env / "signers" / "film", organisation="Studio").folder)
    sent = {}

    def keep_what_is_sent(session, version, path, dest, file_name):  # the real signing, its output kept aside
        signed = provenance.sign_for_delivery(session, version, path, dest, file_name)
        sent[version.ref] = shutil.copy(signed, tmp_path / f"sent-{version.id}.mp4")
        return signed

    monkeypatch.setattr(push, "sign_for_delivery", keep_what_is_sent)
    link(run, zou.url, name)
    report = sync(run, "--push", "--create-missing")
    assert [p["version"] for p in report["pushed"]] == refs and not report["failures"]
    first = report["pushed"][0]
    with backlot.session() as s:
        lineage = provenance.build_lineage(s, backlot.get_version(s, first["version"]))
    with c2pa.Reader("video/mp4", io.BytesIO(open(sent[first["version"]], "rb").read())) as reader:
        assert reader.get_validation_state() == "Valid"
        carried = next(a["data"] for a in reader.get_active_manifest()["assertions"] if a["label"] == LINEAGE_LABEL)
    assert {k: v for k, v in carried.items() if k != "file"} == lineage
    assert carried["file"]["path"] == "review/preview.mp4"
    served = tmp_path / "served.mp4"
    gazu.files.download_preview_movie(first["preview"], str(served), client=kitsu_admin)
    data = served.read_bytes()
    assert data[4:8] == b"ftyp" and data != open(sent[first["version"]], "rb").read()
    # Zou serves its own transcode: no manifest survives. If a Zou upgrade keeps it, update docs/provenance.md.
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("video/mp4", io.BytesIO(data))
