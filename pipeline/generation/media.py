"""Frames, previews and thumbnails: PNG sequences, an MP4 through PyAV, a thumbnail PNG."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

from pipeline.errors import InvalidInputError

THUMBNAIL_WIDTH = 256


def load_image(path: Path, size: tuple[int, int] | None = None):
    """An RGB image, resized to `size` when given; a clear error for anything that is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInputError(f"{path}: not a readable image ({exc})") from None
    if size and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return rgb


def write_frames(images: Sequence, folder: Path, first_frame: int) -> list[Path]:
    """frames/frame.1001.png ... — the frame number is the shot frame."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, image in enumerate(images):
        path = folder / f"frame.{first_frame + offset:04d}.png"
        image.save(path, format="PNG")
        paths.append(path)
    return paths


def write_preview(images: Sequence, path: Path, fps: Fraction) -> Path:
    """An H.264 MP4, encoded single-threaded so the same frames give the same bytes."""
    import av
    import numpy as np

    if not images:
        raise InvalidInputError("a preview needs at least one frame")
    width, height = images[0].size
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "18", "preset": "medium", "threads": "1"}
        container.metadata["comment"] = "backlot preview"
        stream.codec_context.time_base = Fraction(fps.denominator, fps.numerator)
        for index, image in enumerate(images):
            array = np.asarray(image.convert("RGB"))[: stream.height, : stream.width]
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(array), format="yuv420p")
            # Explicit timestamps: x264's rate control reads them, and unset ones made output vary.
            frame.pts, frame.time_base = index, stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def rgb_to_yuv420p(rgb):
    """BT.601 limited-range YUV 4:2:0 in integer arithmetic.

    Done here rather than by libswscale, whose SIMD paths round differently with the input
    buffer's alignment — which made the same frames encode to different bytes across runs.
    """
    import numpy as np

    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    h, w = y.shape

    def subsample(plane):
        return (plane.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) + 2) >> 2

    planes = [y.reshape(-1), subsample(u).reshape(-1), subsample(v).reshape(-1)]
    return np.concatenate(planes).clip(0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_thumbnail(image, path: Path) -> Path:
    from PIL import Image

    scale = THUMBNAIL_WIDTH / image.size[0]
    thumb = image.resize((THUMBNAIL_WIDTH, max(1, round(image.size[1] * scale))), Image.Resampling.NEAREST)
    thumb.save(path, format="PNG")
    return path
