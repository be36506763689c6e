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
        for image in images:
            array = np.asarray(image.convert("RGB"))[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_thumbnail(image, path: Path) -> Path:
    from PIL import Image

    scale = THUMBNAIL_WIDTH / image.size[0]
    thumb = image.resize((THUMBNAIL_WIDTH, max(1, round(image.size[1] * scale))), Image.Resampling.NEAREST)
    thumb.save(path, format="PNG")
    return path
