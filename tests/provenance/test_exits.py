"""Exit paths: the review copy Kitsu receives is signed; the review page shows the mark."""

from __future__ import annotations

import io
from datetime import datetime

import c2pa

import backlot
from backlot import generation as gen
from backlot.db.provenance import VersionCredential
from backlot.generation.media import review_copy
from backlot.generation.models import version_folder
from backlot.provenance import sign_for_delivery
from backlot.provenance.credentials import LINEAGE_LABEL
from backlot.services.api.review import render as review
from tests.provenance.conftest import api_client


def _render(s, shot="sh010"):
    return gen.render_shot(s, "film", shot, gen.RenderSettings(prompt="mara <b>walks</b>", steps=4),
                           base_model="film/models/tiny@approved")


def test_the_review_copy_kitsu_receives_carries_the_versions_credentials(signed_production, tmp_path):
    with backlot.session() as s:
        version = _render(s)
        copy = review_copy(version_folder(version) / "preview.mp4", tmp_path / "sh010.unsigned.mp4")
        sent = sign_for_delivery(s, version, copy, tmp_path / "sh010.mp4", "review/preview.mp4")
        stored = s.get(VersionCredential, version.id).lineage
    assert sent == tmp_path / "sh010.mp4"
    with c2pa.Reader("video/mp4", io.BytesIO(sent.read_bytes())) as reader:
        assert reader.get_validation_state() == "Valid"  # untrusted local CA: valid, not trusted
        lineage = next(a["data"] for a in reader.get_active_manifest()["assertions"] if a["label"] == LINEAGE_LABEL)
    assert {k: v for k, v in lineage.items() if k != "file"} == stored
    assert lineage["file"]["path"] == "review/preview.mp4"


def test_without_a_signer_the_review_copy_goes_out_as_it_is(production, tmp_path):
    with backlot.session() as s:
        version = _render(s)
        copy = review_copy(version_folder(version) / "preview.mp4", tmp_path / "a.mp4")
        assert sign_for_delivery(s, version, copy, tmp_path / "b.mp4", "review/preview.mp4") == copy


def test_the_review_page_shows_the_content_credentials_mark_with_its_lineage(signed_production):
    with backlot.session() as s:
        first = _render(s, "sh010")
        second = _render(s, "sh020")
        lineage = s.get(VersionCredential, second.id).lineage
    view = review.VersionView(id=second.id, number=1, status="wip", created_by="t", created_at=datetime.now(),
                              thumbnail=None, preview=None, stale_reason=None, notes=[], href="/x",
                              credentials=lineage)
    unsigned = review.VersionView(**{**view.__dict__, "credentials": None})
    html = review.history([view], 1)
    assert f'data-credentials-for="{second.id}"' in html and "Content Credentials" in html
    assert f"continues from {first.ref}" in html and "base model film/models/tiny@1" in html
    assert "credentials" not in review.history([unsigned], 1)
    assert "credentials" in review.media_pane(view, "selected")


def _carried(data: bytes, mime: str) -> tuple[str, dict]:
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        manifest = reader.get_active_manifest()
        return reader.get_validation_state(), next(a["data"] for a in manifest["assertions"]
                                                    if a["label"] == LINEAGE_LABEL)


def test_media_downloads_and_the_review_page_serve_signed_copies_with_the_versions_lineage(signed_production):
    import re

    from backlot.provenance.credentials import content_without_manifest
    from backlot.storage import Store
    from backlot.config import load_settings

    with backlot.session() as s:
        first = _render(s, "sh010")
        again = gen.rerender_version(s, first.ref)  # the same bytes, its own lineage (regenerated_from)
        lineage = {v.id: s.get(VersionCredential, v.id).lineage for v in (first, again)}
    frame = next(f for f in first.files if f.path.endswith(".png") and f.path.startswith("frames/"))
    assert frame.sha256 in {f.sha256 for f in again.files}
    stored = Store(load_settings().store_url).open_object(frame.sha256).read()
    client, token = api_client()
    with client:
        url = f"/api/projects/film/media/{frame.sha256}"
        served = {}
        for query, version in (("", first), (f"?version={again.id}", again)):
            got = served[version.id] = client.get(url + query)
            assert got.status_code == 200 and got.content != stored
            state, carried = _carried(got.content, "image/png")
            assert state == "Valid"  # untrusted local CA
            assert {k: v for k, v in carried.items() if k != "file"} == lineage[version.id]
            assert carried["file"] == {"path": frame.path, "sha256": frame.sha256}
            assert content_without_manifest(got.content, "image/png") == stored  # what `verify` compares
            assert got.headers["etag"] != f'"{frame.sha256}"' and got.headers["content-length"] == str(len(got.content))
        assert carried["regenerated_from"]["ref"] == first.ref
        part = client.get(url, headers={"Range": "bytes=0-99"})  # ranges and ETag are the signed copy's
        assert part.status_code == 206 and part.content == served[first.id].content[:100]
        assert part.headers["content-range"] == f"bytes 0-99/{len(served[first.id].content)}"
        assert client.get(url, headers={"If-None-Match": served[first.id].headers["etag"]}).status_code == 304
        assert client.get(url + "?version=0").status_code == 422
        assert client.get(url + "?version=999999").status_code == 404  # no such version holds this content
        # the review page points at each version's own signed copies
        client.cookies.set("backlot_token", token)  # as the login form sets it
        page = client.get("/review/film/shots/sh010").text
        media = re.findall(r'/api/projects/film/media/[0-9a-f]{64}\?version=(\d+)', page)
        assert {str(first.id), str(again.id)} <= set(media)
        thumb = next(f for f in again.files if f.path == "thumbnail.png")
        shown = client.get(f"/api/projects/film/media/{thumb.sha256}?version={again.id}")
        state, carried = _carried(shown.content, "image/png")
        assert state == "Valid" and carried["ref"] == again.ref and carried["file"]["path"] == "thumbnail.png"
        mp4 = next(f for f in again.files if f.path == "preview.mp4")
        state, carried = _carried(client.get(f"/api/projects/film/media/{mp4.sha256}?version={again.id}").content,
                                  "video/mp4")
        assert state == "Valid" and {k: v for k, v in carried.items() if k != "file"} == lineage[again.id]
    with backlot.session() as s:
        assert gen.verify_version(s, again.ref).identical  # the stored bytes are untouched


def test_media_of_an_unsigned_project_is_the_stored_bytes(production):
    from backlot.config import load_settings
    from backlot.storage import Store

    with backlot.session() as s:
        version = _render(s)
    thumb = next(f for f in version.files if f.path == "thumbnail.png")
    client, _ = api_client()
    with client:
        got = client.get(f"/api/projects/film/media/{thumb.sha256}")
    assert got.content == Store(load_settings().store_url).open_object(thumb.sha256).read()
    assert got.headers["etag"] == f'"{thumb.sha256}"'
