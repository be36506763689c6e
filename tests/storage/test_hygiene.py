"""`backlot store gc` and `backlot store check` on S3 (and the reuse rule on a local store)."""

from __future__ import annotations

import json
import os
import threading
import time

import backlot
from backlot.db.provenance import SignedFile, VersionCredential
from backlot.storage import Store, plan_files
from backlot.store_hygiene import collect_garbage


def test_gc_removes_only_unreferenced_objects_and_folders(db_url, s3, files, run):
    store = s3.store()
    with backlot.session() as s:
        backlot.create_project(s, "film")
        v = backlot.publish_version(s, "film", "shots/a/main", [files("f.png", "kept")], kind="shot_render")
        # a signed copy, stored beside the unsigned bytes and referenced only by signed_files
        _, (signed,) = store.put_version(plan_files([files("signed.png", "signed bytes")]))
        s.add(VersionCredential(version_id=v.id, lineage={}, certificate_sha256="0" * 64, subject="tests"))
        s.flush()
        s.add(SignedFile(version_id=v.id, path="f.png", sha256=signed.sha256, size=signed.size,
                         source_sha256=v.files[0].sha256))
    orphan_hash, (orphan,) = store.put_version(plan_files([files("o.bin", "nobody wants me")]))
    kept = run("store", "gc", "--json")  # default grace: everything is young, nothing goes
    assert json.loads(kept.stdout)["removed_objects"] == []
    result = json.loads(run("store", "gc", "--grace", "0s", "--json").stdout)
    keys = s3.keys()
    assert f"store/objects/{orphan.sha256[:2]}/{orphan.sha256}" not in keys
    assert not [k for k in keys if k.startswith(f"store/versions/{orphan_hash}/")]
    assert f"store/objects/{v.files[0].sha256[:2]}/{v.files[0].sha256}" in keys
    assert f"store/objects/{signed.sha256[:2]}/{signed.sha256}" in keys, "signed copies are referenced"
    assert f"store/versions/{v.content_hash}/f.png" in keys
    assert [p.rsplit("/", 1)[-1] for p in result["removed_objects"]] == [orphan.sha256]
    assert len(result["removed_folders"]) == 2  # the orphan's folder and the one put_version made for the signed bytes
    run("store", "check")


def _publish_in_flight(files, started: threading.Event, release: threading.Event, out: dict) -> None:
    try:
        with backlot.session() as s:
            out["version"] = backlot.publish_version(s, "film", "shots/b/main", [files("new.png", "in flight")],
                                                     kind="shot_render")
            started.set()  # objects are in the store; the transaction has not committed
            release.wait(60)
    except BaseException as exc:  # reported by the test
        out["error"] = exc
        started.set()


def test_gc_during_a_publish_in_flight(db_url, s3, files, run):
    with backlot.session() as s:
        backlot.create_project(s, "film")
    started, release, out = threading.Event(), threading.Event(), {}
    worker = threading.Thread(target=_publish_in_flight, args=(files, started, release, out))
    worker.start()
    assert started.wait(60) and "error" not in out
    gc = json.loads(run("store", "gc", "--json").stdout)  # the default 24 h grace
    release.set()
    worker.join(60)
    assert "error" not in out and gc["removed_objects"] == [] and gc["kept_young"] >= 1
    assert run("store", "check").exit_code == 0


def test_gc_without_grace_would_break_a_publish_in_flight(db_url, s3, files, run):
    """The counter-proof: the grace period is what protects the publish above."""
    with backlot.session() as s:
        backlot.create_project(s, "film")
    started, release, out = threading.Event(), threading.Event(), {}
    worker = threading.Thread(target=_publish_in_flight, args=(files, started, release, out))
    worker.start()
    assert started.wait(60)
    run("store", "gc", "--grace", "0s")
    release.set()
    worker.join(60)
    checked = run("store", "check", code=1)
    assert "missing" in checked.stdout and "film/shots/b/main@1" in checked.stdout


def test_reusing_an_old_unreferenced_object_makes_it_young(db_url, files, tmp_path):
    """A publish that reuses bytes gc could remove refreshes their time (local store: backdated)."""
    store = Store(os.environ["BACKLOT_STORE"])
    _, (old,) = store.put_version(plan_files([files("old.png", "old bytes")]))
    two_days_ago = time.time() - 2 * 86400
    os.utime(store.object_path(old.sha256), (two_days_ago, two_days_ago))
    with backlot.session() as s:
        backlot.create_project(s, "film")
    with backlot.session() as s:
        backlot.publish_version(s, "film", "refs/again", [files("again.png", "old bytes")], kind="reference")
        with backlot.session() as gc_session:  # gc runs while that publish has not committed
            result = collect_garbage(gc_session, store)
    assert store.exists(old.sha256) and store.object_path(old.sha256) not in result.removed_objects


def test_check_reports_missing_and_altered_objects(db_url, s3, files, run):
    with backlot.session() as s:
        backlot.create_project(s, "film")
        a = backlot.publish_version(s, "film", "refs/a", [files("a.txt", "aaa")], kind="reference")
        b = backlot.publish_version(s, "film", "refs/b", [files("b.txt", "bbb")], kind="reference")
        backlot.publish_version(s, "film", "refs/c", [files("c.txt", "ccc")], kind="reference")
    assert "3 objects checked" in run("store", "check").stdout
    client = s3.client()
    client.delete_object(Bucket=s3.bucket, Key=f"store/objects/{a.files[0].sha256[:2]}/{a.files[0].sha256}")
    client.put_object(Bucket=s3.bucket, Key=f"store/objects/{b.files[0].sha256[:2]}/{b.files[0].sha256}", Body=b"bXb")
    report = json.loads(run("store", "check", "--json", code=1).stdout)
    problems = {(p["kind"], p["sha256"]): p["refs"] for p in report["problems"]}
    assert problems == {("missing", a.files[0].sha256): ["film/refs/a@1"],
                        ("altered", b.files[0].sha256): ["film/refs/b@1"]}
    quick = json.loads(run("store", "check", "--quick", "--json", code=1).stdout)
    assert [p["kind"] for p in quick["problems"]] == ["missing"]  # --quick does not read the bytes
