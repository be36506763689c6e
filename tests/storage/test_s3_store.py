"""The store on a real S3 HTTP API (moto's server): publish, read, version folders, settings,
and the review page's media route serving a file kept on S3."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

import backlot
from backlot.config import load_settings
from backlot.errors import InvalidInputError
from backlot.generation.models import version_folder
from backlot.storage import Store, plan_files


def test_publish_and_read_back_through_s3(db_url, s3, files):
    with backlot.session() as s:
        backlot.create_project(s, "film")
        v = backlot.publish_version(s, "film", "shots/sh010/main", [files("a.png", "first frame"),
                                    files("b.png", "second frame")], names=["frames/0001.png", "frames/0002.png"],
                                    kind="shot_render")
        again = backlot.publish_version(s, "film", "refs/same", [files("c.png", "first frame")], kind="reference")
    keys = s3.keys()
    objects = [k for k in keys if k.startswith("store/objects/")]
    assert len(objects) == 2, keys  # the third file has the same bytes as the first: stored once
    assert {f"store/versions/{v.content_hash}/frames/0001.png", f"store/versions/{v.content_hash}/frames/0002.png",
            f"store/versions/{again.content_hash}/c.png"} <= set(keys)
    assert not [k for k in keys if ".tmp-" in k], "no temporary keys left"
    store = s3.store()
    with store.open_object(v.files[1].sha256) as handle:
        assert handle.read() == b"second frame"
    folder = version_folder(v)  # a local, verified copy in the host's cache
    assert folder.is_dir() and not str(folder).startswith("s3:")
    assert (folder / "frames/0001.png").read_bytes() == b"first frame"
    assert (folder / "frames/0002.png").read_bytes() == b"second frame"
    assert str(folder).startswith(str(load_settings().home / "cache"))


def test_settings_come_from_backlot_toml(db_url, s3, files, monkeypatch, env):
    """No endpoint or region in the environment: the [store] table of backlot.toml gives them."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    (env / "backlot.toml").write_text(f'[store]\nendpoint_url = "{s3.endpoint}"\nregion = "eu-west-1"\n')
    options = load_settings().store_options
    assert (options.endpoint_url, options.region) == (s3.endpoint, "eu-west-1")
    store = Store(s3.url)
    content_hash, stored = store.put_version(plan_files([files("t.bin", b"toml")]))
    assert f"store/objects/{stored[0].sha256[:2]}/{stored[0].sha256}" in s3.keys()


def test_environment_wins_over_backlot_toml(db_url, s3, monkeypatch, env):
    (env / "backlot.toml").write_text('[store]\nendpoint_url = "http://127.0.0.1:9"\nregion = "us-west-2"\n')
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    options = load_settings().store_options
    assert (options.endpoint_url, options.region) == (s3.endpoint, "eu-west-1")


def test_bad_store_settings_are_one_line_errors(env, monkeypatch):
    (env / "backlot.toml").write_text('[cache]\nmax_gb = -3\n')
    with pytest.raises(InvalidInputError, match="max_gb"):
        load_settings()
    (env / "backlot.toml").write_text('store = "not a table"\n')
    with pytest.raises(InvalidInputError, match=r"\[store\] must be a table"):
        load_settings()


def test_a_half_copied_version_folder_is_completed(db_url, s3, files):
    store = s3.store()
    planned = plan_files([files("x.bin", b"x"), files("y.bin", b"y")])
    content_hash, _ = store.put_version(planned)
    s3.client().delete_object(Bucket=s3.bucket, Key=f"store/versions/{content_hash}/y.bin")  # a crash mid-copy
    store.put_version(planned)
    assert f"store/versions/{content_hash}/y.bin" in s3.keys()


def test_review_media_is_served_from_s3(db_url, s3, files, tmp_path):
    """The API streams S3 objects itself (with Range), so project scoping stays in one place."""
    from backlot import access
    from backlot.config import Settings
    from backlot.services.api import ApiSettings, create_app
    from backlot.services.api.config import WebhookSettings
    from tests.api.conftest import free_port, start_server

    payload = bytes(range(256)) * 64
    with backlot.session() as s:
        backlot.create_project(s, "film")
        v = backlot.publish_version(s, "film", "refs/clip", [files("clip.mp4", payload)], kind="reference")
        token = access.create_token(s, "film", "viewer", name="viewer-bot", actor="tests").secret
    settings = ApiSettings(backlot=Settings(home=tmp_path / "api-home", database_url=db_url, store_url=s3.url,
                                            user="api"), webhooks=WebhookSettings(enabled=False))
    server, thread = start_server(create_app(settings), port := free_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as c:
            whole = c.get(f"/api/projects/film/media/{v.files[0].sha256}")
            assert whole.status_code == 200 and whole.content == payload
            assert whole.headers["content-type"] == "video/mp4"
            part = c.get(f"/api/projects/film/media/{v.files[0].sha256}", headers={"Range": "bytes=1000-1999"})
            assert part.status_code == 206 and part.content == payload[1000:2000]
    finally:
        server.should_exit = True
        thread.join(10)


def test_frames_and_kitsu_previews_are_read_through_the_cache(db_url, s3, files):
    """Continuity figures and Kitsu uploads read local files: on S3 they come from the cache."""
    from backlot.generation.continuity import frame_paths
    from backlot.integrations.kitsu.push import PREVIEW, preview_path

    names = ["frames/0001.png", "frames/0002.png", PREVIEW]
    with backlot.session() as s:
        backlot.create_project(s, "film")
        v = backlot.publish_version(s, "film", "shots/sh020/main", [files(f"f{i}", f"bytes {i}") for i in range(3)],
                                    names=names, kind="shot_render")
    frames = frame_paths(v)
    assert [p.read_bytes() for p in frames] == [b"bytes 0", b"bytes 1"]
    preview = preview_path(v)
    assert preview.read_bytes() == b"bytes 2" and os.path.realpath(preview).startswith(str(load_settings().home))


def test_media_while_the_store_is_unreachable_is_a_503_with_a_reason(db_url, files, tmp_path, monkeypatch, env):
    """An S3 endpoint down: the API says so (503, retry) instead of a 500 or a broken stream."""
    from tests.api.conftest import free_port as api_port, start_server
    from tests.storage.conftest import S3, MotoS3
    from backlot import access
    from backlot.config import Settings
    from backlot.services.api import ApiSettings, create_app
    from backlot.services.api.config import WebhookSettings

    server_s3 = MotoS3()
    server_s3.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "backlot-test", "AWS_SECRET_ACCESS_KEY": "backlot-secret",
                        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": server_s3.endpoint}.items():
        monkeypatch.setenv(name, value)
    spec = S3(server_s3.endpoint, "down" + uuid.uuid4().hex[:10], "")
    spec.client().create_bucket(Bucket=spec.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    url = f"s3://{spec.bucket}/store"
    monkeypatch.setenv("BACKLOT_STORE", url)
    with backlot.session() as s:
        backlot.create_project(s, "film")
        v = backlot.publish_version(s, "film", "refs/clip", [files("clip.mp4", b"x" * 5000)], kind="reference")
        token = access.create_token(s, "film", "viewer", name="viewer-bot", actor="tests").secret
    settings = ApiSettings(backlot=Settings(home=tmp_path / "api-home", database_url=db_url, store_url=url,
                                            user="api"), webhooks=WebhookSettings(enabled=False))
    api, thread = start_server(create_app(settings), port := api_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as c:
            assert c.get(f"/api/projects/film/media/{v.files[0].sha256}").status_code == 200
            server_s3.stop()
            down = c.get(f"/api/projects/film/media/{v.files[0].sha256}")
            assert down.status_code == 503, down.text
            assert "file store cannot be reached" in down.json()["error"]
    finally:
        server_s3.stop()
        api.should_exit = True
        thread.join(10)
