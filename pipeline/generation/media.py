"""Frames, previews and thumbnails: PNG sequences, an MP4 through PyAV, a thumbnail PNG."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

from backlot.errors import InvalidInputError

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


class PreviewWriter:
    """An H.264 MP4 written frame by frame, so encoding overlaps rendering.

    Single-threaded x264 with explicit timestamps: the same frames give the same bytes,
    whether they arrive together or one at a time."""

    def __init__(self, path: Path, fps: Fraction, b_frames: bool = True):
        self.path, self.fps, self.b_frames = path, fps, b_frames
        self._container = self._stream = None
        self._count = 0

    def add(self, image) -> None:
        import av
        import numpy as np

        if self._stream is None:
            self._open(*image.size)
        stream = self._stream
        array = np.asarray(image.convert("RGB"))[: stream.height, : stream.width]
        frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(array), format="yuv420p")
        # Explicit timestamps: x264's rate control reads them, and unset ones made output vary.
        frame.pts, frame.time_base = self._count, stream.codec_context.time_base
        for packet in stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def close(self) -> Path:
        if self._stream is None:
            raise InvalidInputError("a preview needs at least one frame")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        return self.path

    def abort(self) -> None:
        """Close without finishing, and remove the partial file."""
        if self._container is not None:
            self._container.close()
        self.path.unlink(missing_ok=True)

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(str(self.path), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "18", "preset": "medium", "threads": "1", **({} if self.b_frames else {"bf": "0"})}
        self._container.metadata["comment"] = "backlot preview"
        stream.codec_context.time_base = Fraction(self.fps.denominator, self.fps.numerator)
        self._stream = stream


def write_preview(images: Sequence, path: Path, fps: Fraction) -> Path:
    """An H.264 MP4 of `images`, encoded single-threaded so the same frames give the same bytes."""
    writer = PreviewWriter(path, fps)
    try:
        for image in images:
            writer.add(image)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def review_copy(movie: Path, out: Path) -> Path:
    """The movie re-encoded without B-frames, for review trackers: Kitsu's ingest (Zou's
    ffmpeg trim with stream copy) drops a video stream whose first packets have negative
    decode timestamps, as B-frame H.264 has. The stored preview itself is left as it is."""
    import av

    with av.open(str(movie)) as source:
        stream = source.streams.video[0]
        fps = stream.average_rate or Fraction(24)
        writer = PreviewWriter(out, Fraction(fps), b_frames=False)
        try:
            for frame in source.decode(stream):
                writer.add(frame.to_image())
            return writer.close()
        except BaseException:
            writer.abort()
            raise


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


class ShotMediaWriter:
    """A shot's files written while it renders: each frame's PNG, streamed on to the MP4
    encoder, and the thumbnail, in a background thread, so the GPU never waits for disk or
    encoder. `finish` returns frames, preview and thumbnail, in that order."""

    def __init__(self, out: Path, first_frame: int, fps: Fraction, thumbnail_index: int):
        from concurrent.futures import ThreadPoolExecutor

        from backlot.generation.encoder import PreviewStream

        self._frames = out / "frames"
        self._frames.mkdir(parents=True, exist_ok=True)
        self._thumbnail, self._thumbnail_index = out / "thumbnail.png", thumbnail_index
        self._first, self._written = first_frame, []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shot-media")  # one thread: frames stay in order
        self._preview = PreviewStream(out / "preview.mp4", fps)

    def add(self, image) -> None:
        self._written.append(self._pool.submit(self._write, len(self._written), image))

    def finish(self) -> list[Path]:
        files = [future.result() for future in self._written]
        self._pool.shutdown()
        files.append(self._preview.close())
        if self._thumbnail_index < len(self._written):
            files.append(self._thumbnail)
        return files

    def abort(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._preview.abort()

    def _write(self, index: int, image) -> Path:
        path = self._frames / f"frame.{self._first + index:04d}.png"
        image.save(path, format="PNG")
        self._preview.add(path)
        if index == self._thumbnail_index:
            write_thumbnail(image, self._thumbnail)
        return path


def write_thumbnail(image, path: Path) -> Path:
    from PIL import Image

    scale = THUMBNAIL_WIDTH / image.size[0]
    thumb = image.resize((THUMBNAIL_WIDTH, max(1, round(image.size[1] * scale))), Image.Resampling.NEAREST)
    thumb.save(path, format="PNG")
    return path
