"""Media by content hash: the right type, ranges (what a video player asks for to seek), caching."""

from __future__ import annotations

from tests.api.conftest import DATA

MP4 = (DATA / "preview.mp4").read_bytes()


def test_types_and_whole_files(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        video = c.get(f"/api/projects/{p}/media/{production.sha['shots/sq010_sh0010/main@1/preview.mp4']}")
        assert video.status_code == 200 and video.content == MP4
        assert video.headers["content-type"] == "video/mp4" and video.headers["accept-ranges"] == "bytes"
        assert video.headers["content-length"] == str(len(MP4))
        image = c.get(f"/api/projects/{p}/media/{production.sha['shots/sq010_sh0010/main@1/thumbnail.png']}")
        assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
        weights = c.get(f"/api/projects/{p}/media/{production.sha['adapters/mara@1/lora.safetensors']}")
        assert weights.headers["content-type"] == "application/octet-stream"
        assert "sandbox" in weights.headers["content-security-policy"]
        assert weights.headers["x-content-type-options"] == "nosniff"


def test_ranges(live, production):
    p = production.code
    url = f"/api/projects/{p}/media/{production.sha['shots/sq010_sh0010/main@1/preview.mp4']}"
    size = len(MP4)
    with live.client(production.tokens["viewer"]) as c:
        head = c.get(url, headers={"Range": "bytes=0-99"})
        assert head.status_code == 206 and head.content == MP4[:100]
        assert head.headers["content-range"] == f"bytes 0-99/{size}" and head.headers["content-length"] == "100"
        middle = c.get(url, headers={"Range": "bytes=1000-"})
        assert middle.status_code == 206 and middle.content == MP4[1000:]
        assert middle.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
        tail = c.get(url, headers={"Range": "bytes=-64"})
        assert tail.status_code == 206 and tail.content == MP4[-64:]
        past_end = c.get(url, headers={"Range": "bytes=0-99999999"})
        assert past_end.status_code == 206 and past_end.content == MP4
        outside = c.get(url, headers={"Range": f"bytes={size}-"})
        assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
        several = c.get(url, headers={"Range": "bytes=0-1,5-9"})
        assert several.status_code == 200 and several.content == MP4  # allowed: ignore a multi-range request
        garbage = c.get(url, headers={"Range": "pages=1-2"})
        assert garbage.status_code == 200 and garbage.content == MP4
        stale_if_range = c.get(url, headers={"Range": "bytes=0-9", "If-Range": '"something-else"'})
        assert stale_if_range.status_code == 200 and stale_if_range.content == MP4


def test_caching_and_head(live, production):
    p = production.code
    sha = production.sha["shots/sq010_sh0010/main@1/thumbnail.png"]
    url = f"/api/projects/{p}/media/{sha}"
    with live.client(production.tokens["viewer"]) as c:
        first = c.get(url)
        assert first.headers["etag"] == f'"{sha}"' and "immutable" in first.headers["cache-control"]
        again = c.get(url, headers={"If-None-Match": f'"{sha}"'})
        assert again.status_code == 304 and again.content == b""
        head = c.head(url, headers={"Range": "bytes=0-9"})
        assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""
