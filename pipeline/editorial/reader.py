"""Reading edit files through OpenTimelineIO's adapters, with errors that say where.

Any format an installed OTIO adapter reads works (`.otio`, `.otioz`, CMX 3600 EDL, FCP 7
XML, FCP X XML, AAF, ALE, ...). Reader options pass through to the adapter when its read
function takes them (`rate`/`fps`, `ignore_timecode_mismatch`, or any `KEY=VALUE`).

Third-party parsers fail in many ways (their own errors, but also IndexError, KeyError,
UnicodeDecodeError, XML and JSON errors); everything an adapter raises becomes one
CutInputError naming the file and, for text formats, the line and event where possible.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import opentimelineio as otio

from backlot.editorial import otio_json
from backlot.editorial.errors import CutInputError, Where, file_label
from backlot.editorial.frames import exact_rate, format_rate
from backlot.errors import article

_EVENT_RE = re.compile(r"^\s*(\d{1,6})\s+(\S+)\s+(\S+)\s+(\S+)")
_EVENT_NUMBER_RE = re.compile(r"^\s*(\d{1,6})\s")
_DROP_FRAME_RE = re.compile(r"^FCM:\s*DROP FRAME|\d\d:\d\d:\d\d;\d\d", re.MULTILINE)
_BINARY_ADAPTERS = {"AAF", "otioz", "otiod", "maya_sequencer"}
_RATE_ARGS = ("rate", "fps")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file: the adapter (by default from the suffix) and its options."""

    adapter: str | None = None
    rate: Fraction | None = None  # for formats without a rate (EDL, ALE); else the rate expected
    ignore_timecode_mismatch: bool = False
    timeline: str | None = None  # which timeline of a file holding several
    extra: tuple[tuple[str, Any], ...] = ()  # other adapter arguments, passed as given

    def to_dict(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "rate": format_rate(self.rate) if self.rate else None,
                "ignore_timecode_mismatch": self.ignore_timecode_mismatch, "timeline": self.timeline,
                "extra": {k: v for k, v in self.extra}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReadOptions":
        rate = data.get("rate")
        return cls(adapter=data.get("adapter"), rate=exact_rate(rate) if rate else None,
                   ignore_timecode_mismatch=bool(data.get("ignore_timecode_mismatch")),
                   timeline=data.get("timeline"), extra=tuple(sorted((data.get("extra") or {}).items())))


@dataclass
class ReadResult:
    timeline: otio.schema.Timeline  # or an otio_json.Timeline, when read with `structs=True`
    path: Path
    label: str  # the file's name, for messages
    sha256: str
    size: int
    adapter: str
    rate: Fraction  # the cut's record rate
    options: ReadOptions  # with the adapter and rate actually used
    events: list[tuple[str, int]] = field(default_factory=list)  # EDL: (event number, line) of video events
    drop_frame: bool = False  # the file counts timecode in drop-frame (EDL FCM / ';' separators)

    def where(self, clip: str | None = None, ordinal: int | None = None) -> Where:
        """The place of the ordinal-th clip (0-based, first video track) when the format tells."""
        if ordinal is not None and ordinal < len(self.events):
            event, line = self.events[ordinal]
            return Where(self.label, line, event, clip)
        return Where(self.label, clip=clip)


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_cut_file(path: str | Path, options: ReadOptions = ReadOptions(),
                  default_rate: Fraction | None = None, data: bytes | None = None,
                  sha256: str | Callable[[], str] | None = None, structs: bool = False) -> ReadResult:
    """Read an edit file into an OTIO timeline; CutInputError when it cannot be used.

    `default_rate` (the project's) is given to formats that carry no rate of their own;
    `data` and `sha256`, when given, are the file's content already read and its hash (or a
    function that gives the hash once the file is read: one computed meanwhile in another thread).
    `structs`: a plain .otio may come back as otio_json's structs (for walking the cut, not
    for writing it), several times faster to read than OTIO's objects.
    """
    path = Path(path)
    label = file_label(path)
    data = _read_bytes(path, label) if data is None else _check_not_empty(data, label)
    adapter = _find_adapter(path, options.adapter, label)
    kwargs, rate_given = _adapter_arguments(adapter, options, default_rate, label)
    if structs and adapter.name == "otio_json" and not kwargs:
        timeline = otio_json.read_timeline(data, options.timeline)
        if timeline is not None:
            return _result(timeline, path, label, data, sha256, adapter, options, detect_rate(timeline, label))
    text = None
    if adapter.name not in _BINARY_ADAPTERS and not adapter.has_feature("read_from_file"):
        text = _decode_text(data, label, adapter.name)
    try:
        if text is not None:
            result = adapter.read_from_string(input_str=text, media_linker_name=otio.media_linker.MediaLinkingPolicy.DoNotLinkMedia, **kwargs)
        else:
            result = adapter.read_from_file(filepath=str(path), media_linker_name=otio.media_linker.MediaLinkingPolicy.DoNotLinkMedia, **kwargs)
    except Exception as exc:  # noqa: BLE001 - adapters raise anything; each becomes one clear error
        where = locate_problem(label, text, str(exc))
        raise CutInputError(where, f"cannot be read as {adapter.name} ({_describe(exc)}); "
                                   f"check the file, or pass --adapter / reader options") from None
    timeline = _pick_timeline(result, options.timeline, label)
    return _result(timeline, path, label, data, sha256, adapter, options, rate_given or detect_rate(timeline, label),
                   text)


def _result(timeline: Any, path: Path, label: str, data: bytes, sha256: str | Callable[[], str] | None,
            adapter: otio.adapters.Adapter,
            options: ReadOptions, rate: Fraction, text: str | None = None) -> ReadResult:
    if options.rate is not None and rate != options.rate:
        raise CutInputError(Where(label), f"runs at {format_rate(rate)} fps, not the {format_rate(options.rate)} "
                                          f"given with --rate ({adapter.name} files carry their own rate)")
    used = ReadOptions(adapter.name, rate, options.ignore_timecode_mismatch, options.timeline, options.extra)
    is_edl = adapter.name == "cmx_3600" and text is not None
    events = edl_video_events(text) if is_edl else []
    drop_frame = is_edl and bool(_DROP_FRAME_RE.search(text))
    sha = sha256() if callable(sha256) else sha256 or hash_bytes(data)
    return ReadResult(timeline, path, label, sha, len(data), adapter.name, rate, used, events, drop_frame)


def _read_bytes(path: Path, label: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CutInputError(Where(str(path)), "no such file") from None
    except IsADirectoryError:
        raise CutInputError(Where(str(path)), "is a folder, not an edit file") from None
    except OSError as exc:
        raise CutInputError(Where(str(path)), f"cannot be read ({exc.strerror})") from None
    return _check_not_empty(data, label)


def _check_not_empty(data: bytes, label: str) -> bytes:
    if not data.strip():
        raise CutInputError(Where(label), "is empty")
    return data


def _find_adapter(path: Path, name: str | None, label: str) -> otio.adapters.Adapter:
    try:
        adapter = otio.adapters.from_name(name) if name else otio.adapters.from_filepath(str(path))
    except Exception:  # noqa: BLE001 - OTIO raises NotSupportedError / NoKnownAdapter... variants
        readable = sorted(a.name for a in otio.plugins.ActiveManifest().adapters
                          if a.has_feature("read_from_file") or a.has_feature("read_from_string"))
        if name:
            problem = f"no OTIO adapter named {name!r}; installed readers: {', '.join(readable)}"
        else:
            suffixes = sorted({s for a in otio.plugins.ActiveManifest().adapters for s in a.suffixes
                               if a.name in readable})
            problem = (f"unknown format {path.suffix or '(no suffix)'!r}: OTIO reads "
                       f"{', '.join('.' + s for s in suffixes)}; name one with --adapter")
        raise CutInputError(Where(label), problem) from None
    if not (adapter.has_feature("read_from_file") or adapter.has_feature("read_from_string")):
        raise CutInputError(Where(label), f"the {adapter.name} adapter writes files but cannot read them")
    return adapter


def _adapter_arguments(adapter: otio.adapters.Adapter, options: ReadOptions, default_rate: Fraction | None,
                       label: str) -> tuple[dict[str, Any], Fraction | None]:
    """Keyword arguments the adapter's reader accepts, and the rate passed to it (if any)."""
    accepted = _reader_parameters(adapter)
    takes_any = "**" in accepted
    kwargs: dict[str, Any] = {}
    rate_given = None
    rate_arg = next((name for name in _RATE_ARGS if name in accepted), None)
    if rate_arg is not None:
        rate_given = options.rate or default_rate
        if rate_given is not None:
            kwargs[rate_arg] = float(rate_given)
    if options.ignore_timecode_mismatch:
        if "ignore_timecode_mismatch" not in accepted:
            raise CutInputError(Where(label), f"the {adapter.name} reader has no ignore_timecode_mismatch option")
        kwargs["ignore_timecode_mismatch"] = True
    for key, value in options.extra:
        if key not in accepted and not takes_any:
            raise CutInputError(Where(label), f"the {adapter.name} reader takes no option {key!r} "
                                              f"(it takes: {', '.join(sorted(accepted - {'**'})) or 'none'})")
        kwargs[key] = value
    return kwargs, rate_given


def _reader_parameters(adapter: otio.adapters.Adapter) -> set[str]:
    module = adapter.module()
    names: set[str] = set()
    for function in ("read_from_string", "read_from_file"):
        reader = getattr(module, function, None)
        if reader is None:
            continue
        for parameter in inspect.signature(reader).parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                names.add("**")
            elif parameter.name not in ("input_str", "filepath"):
                names.add(parameter.name)
    return names


def _decode_text(data: bytes, label: str, adapter: str) -> str:
    data = _strip_dos_padding(data)
    if b"\x00" in data:
        raise CutInputError(Where(label), f"is a binary file, not {article(adapter)} text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older EDLs are Latin-1/Windows text; decoding can't fail and no byte is lost.
        return data.decode("cp1252", errors="replace")


def _strip_dos_padding(data: bytes) -> bytes:
    """Old systems end text files with Ctrl-Z and pad the last block with NULs: that is not content."""
    end = data.find(b"\x1a")
    if end >= 0 and not data[end:].strip(b"\x1a\x00\r\n"):
        return data[:end]
    return data


def _pick_timeline(result: Any, wanted: str | None, label: str) -> otio.schema.Timeline:
    if isinstance(result, otio.schema.Timeline):
        timelines = [result]
    elif isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline, shallow_search=False)) \
            if hasattr(result, "find_children") else [c for c in result if isinstance(c, otio.schema.Timeline)]
    else:
        raise CutInputError(Where(label), f"holds {article(type(result).__name__)}, not a timeline")
    if wanted is not None:
        timelines = [t for t in timelines if t.name == wanted]
        if not timelines:
            raise CutInputError(Where(label), f"has no timeline named {wanted!r}")
    if len(timelines) != 1:
        names = ", ".join(repr(t.name) for t in timelines) or "none"
        raise CutInputError(Where(label), f"holds {len(timelines)} timelines ({names}): choose one with --timeline")
    return timelines[0]


def detect_rate(timeline: otio.schema.Timeline, label: str) -> Fraction:
    """The record rate of a timeline: of its start time, else of its first video items."""
    if timeline.global_start_time is not None:
        return exact_rate(timeline.global_start_time.rate)
    for track in timeline.video_tracks():
        for item in track:
            try:
                return exact_rate(item.duration().rate)
            except Exception:  # noqa: BLE001 - an item without a usable range: look further
                continue
    raise CutInputError(Where(label), "has no video: no video track in the timeline (audio only?)")


# -- locating problems in text formats ---------------------------------------------------------


def edl_video_events(text: str) -> list[tuple[str, int]]:
    """(event number, line) for each video event of an EDL, in order: one per OTIO clip on V."""
    events: list[tuple[str, int]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        match = _EVENT_RE.match(line)
        if not match or match.group(1) in seen:
            continue
        channel = match.group(3).upper()
        if channel.startswith("V") or channel == "B":
            events.append((match.group(1), number))
            seen.add(match.group(1))
    return events


def locate_problem(label: str, text: str | None, message: str) -> Where:
    """The line (and EDL event) a parser's message points at, when it can be found."""
    if text is None:
        return Where(label)
    lines = text.splitlines()
    line_no = _line_from_message(message, len(lines)) or _stray_header_line(message, lines)
    if line_no is None:
        squeezed = [" ".join(line.split()) for line in lines]  # messages collapse the file's spacing
        for needle in _needles(message):
            line_no = next((i for i, line in enumerate(squeezed, start=1) if needle in line), None)
            if line_no is not None:
                break
    if line_no is None:
        return Where(label)
    event = None
    for candidate in range(line_no, 0, -1):
        match = _EVENT_NUMBER_RE.match(lines[candidate - 1])
        if match:
            event = match.group(1)
            break
    return Where(label, line_no, event)


def _stray_header_line(message: str, lines: list[str]) -> int | None:
    """The CMX reader's "Unknown event type": a line before the first event that is not a header."""
    if "Unknown event type" not in message:
        return None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("TITLE:", "FCM")):
            continue
        return None if stripped[0].isdigit() else number
    return None


def _line_from_message(message: str, count: int) -> int | None:
    match = re.search(r"\bline[: ]+(\d+)", message)
    if match and 1 <= int(match.group(1)) <= count:
        return int(match.group(1))
    return None


def _needles(message: str) -> list[str]:
    """Strings from an error message worth looking for in the file: clip names, timecodes."""
    needles = [m.strip() for m in re.findall(r"for clip (.+?)\s*$", message) if m.strip()]
    needles += re.findall(r"\d{2}:\d{2}:\d{2}[:;]\d{2}", message)
    needles += [m for m in re.findall(r"'([^']{3,})'", message)]
    tail = " ".join(message.rsplit(": ", 1)[-1].split())  # "... in form statement: 000003 B080_C001"
    if len(tail) >= 4 and tail != " ".join(message.split()):
        needles.append(tail)
    return needles


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
