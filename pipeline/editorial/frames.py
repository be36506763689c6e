"""Exact frame math for editorial: rates as fractions, frames as integers.

OpenTimelineIO keeps times as (float value, float rate). Backlot turns them into integers
once, here, and never does arithmetic on floats afterwards. Conventions, stated in names:

- `*_in` is the first frame; `*_out_excl` is one past the last (exclusive); `*_out_incl`
  is the last frame (inclusive). Shot cut ranges (`Shot.cut_in`/`cut_out`) are inclusive.
- Record frames count from 00:00:00:00 at the cut's rate, so a cut that starts at
  01:00:00:00 at 24 fps starts at record frame 86400 (the record timecode offset is kept).
- Source frames count in the clip's media at the media's own rate.
- Shot frames are source frames moved to the shot's numbering (first frame 1001 by
  default): one shot frame per media frame, whatever the retime.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from backlot.errors import InvalidInputError

# Rates that players and NLEs write as decimals; matched within a tolerance, kept exact.
_STANDARD_RATES = [Fraction(n) for n in (12, 15, 24, 25, 30, 48, 50, 60, 72, 96, 100, 120)] + [
    Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120)]
_TIMECODE_RE = re.compile(r"^(\d{1,3}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


_RATE_OF_FLOAT: dict[float, Fraction] = {}  # edit files repeat the same few float rates thousands of times


def exact_rate(value: float | int | str | Fraction) -> Fraction:
    """A frame rate as an exact fraction: 23.976 and 23.976023976 both give 24000/1001."""
    if value.__class__ is float:
        known = _RATE_OF_FLOAT.get(value)  # type: ignore[call-overload]
        if known is not None:
            return known
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rate = _exact_rate(float(value))
        if len(_RATE_OF_FLOAT) < 256:
            _RATE_OF_FLOAT[float(value)] = rate
        return rate
    return _exact_rate(value)


def _exact_rate(value: float | str | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        rate = value
    else:
        text = str(value).strip()
        try:
            rate = Fraction(text) if "/" in text else Fraction(float(text))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise InvalidInputError(f"frame rate {value!r} is invalid: use e.g. 24, 25 or 24000/1001") from None
    if not rate > 0 or rate > 1000:
        raise InvalidInputError(f"frame rate {value!r} is out of range: it must be above 0 and at most 1000")
    for standard in _STANDARD_RATES:
        if abs(rate - standard) <= standard * Fraction(1, 20000):  # 23.976 vs 24000/1001 differ by 1e-6
            return standard
    return rate.limit_denominator(1001)


def same_rate(a: Fraction, b: Fraction) -> bool:
    """`a == b` for two Fractions, without Fraction.__eq__'s abstract-type checks (per clip, they add up)."""
    return a is b or (a.numerator == b.numerator and a.denominator == b.denominator)


def format_rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def nominal_fps(rate: Fraction) -> int:
    """The frames-per-second counted by timecode: 30 for 29.97, 24 for 23.976."""
    return round(rate)


def is_drop_frame_rate(rate: Fraction) -> bool:
    """Drop-frame timecode exists for 29.97 and 59.94 only."""
    return rate in (Fraction(30000, 1001), Fraction(60000, 1001))


def to_frames(value: float, value_rate: float | Fraction, rate: Fraction) -> int:
    """A time (OTIO value at value_rate) as a whole frame count at `rate`, rounded to nearest.

    Values OTIO reads from edit files are whole frames at their own rate; the conversion to
    another rate is exact in fractions and rounds only at the end (halves round up).
    """
    own = value_rate if value_rate.__class__ is Fraction else exact_rate(value_rate)
    if same_rate(own, rate) and (value.__class__ is int or (value.__class__ is float and value.is_integer())):
        return int(value)  # the common case: whole frames already at the wanted rate (never NaN/inf)
    if not math.isfinite(value):
        raise InvalidInputError(f"time value {value!r} is not a number")
    exact = Fraction(value) * rate / own
    return math.floor(exact + Fraction(1, 2))


# -- timecode --------------------------------------------------------------------------------


def _drop_counts(rate: Fraction) -> tuple[int, int, int]:
    """(frames dropped per minute, frames per minute, frames per ten minutes) for drop-frame."""
    fps = nominal_fps(rate)
    drop = fps // 15  # 2 at 29.97, 4 at 59.94
    per_minute = fps * 60 - drop
    return drop, per_minute, per_minute * 10 + drop


def frames_to_timecode(frame: int, rate: Fraction, drop_frame: bool | None = None) -> str:
    """HH:MM:SS:FF (non-drop) or HH:MM:SS;FF (drop-frame, 29.97/59.94 only) for a frame count."""
    if frame < 0:
        raise InvalidInputError(f"frame {frame} is negative: timecode starts at 00:00:00:00")
    fps = nominal_fps(rate)
    drop = is_drop_frame_rate(rate) if drop_frame is None else drop_frame
    if drop and not is_drop_frame_rate(rate):
        raise InvalidInputError(f"drop-frame timecode exists for 29.97 and 59.94 fps, not {format_rate(rate)}")
    counted = frame
    if drop:
        dropped, per_minute, per_ten = _drop_counts(rate)
        tens, rest = divmod(frame, per_ten)
        counted += dropped * 9 * tens
        if rest > dropped:
            counted += dropped * ((rest - dropped) // per_minute)
    seconds, ff = divmod(counted, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    width = max(2, len(str(fps - 1)))
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:0{width}d}"


def timecode_to_frames(timecode: str, rate: Fraction) -> int:
    """Frame count for HH:MM:SS:FF; a ';' (or '.'/',') before the frames means drop-frame."""
    match = _TIMECODE_RE.match(timecode.strip())
    if not match:
        raise InvalidInputError(f"timecode {timecode!r} is malformed: expected HH:MM:SS:FF")
    hh, mm, ss, sep, ff = match.groups()
    hh, mm, ss, ff = int(hh), int(mm), int(ss), int(ff)
    fps = nominal_fps(rate)
    if mm > 59 or ss > 59 or ff >= fps:
        raise InvalidInputError(f"timecode {timecode!r} is out of range at {format_rate(rate)} fps")
    total = ((hh * 60 + mm) * 60 + ss) * fps + ff
    if sep == ":":
        return total
    if not is_drop_frame_rate(rate):
        raise InvalidInputError(f"timecode {timecode!r} is drop-frame, which exists at 29.97 and 59.94 fps only")
    dropped, _, _ = _drop_counts(rate)
    if ss == 0 and ff < dropped and mm % 10:
        raise InvalidInputError(f"timecode {timecode!r} does not exist in drop-frame (frames 0-{dropped - 1} "
                                f"of each minute but every tenth are skipped)")
    minutes = hh * 60 + mm
    return total - dropped * (minutes - minutes // 10)


# -- retimes and shot frames -----------------------------------------------------------------


@dataclass(frozen=True)
class Retime:
    """How record frames sample source frames: media frame = source_in + floor(k * speed).

    `speed` is source frames per record frame (1 normal, 2 double speed, negative reverse);
    `freeze` holds the first frame.
    """

    speed: Fraction = Fraction(1)
    freeze: bool = False

    @property
    def is_identity(self) -> bool:
        return not self.freeze and self.speed == 1

    def label(self) -> str:
        if self is NORMAL_SPEED:  # nearly every clip: no Fraction comparison
            return "100%"
        if self.freeze:
            return "freeze"
        return "100%" if self.speed == 1 else f"{float(self.speed) * 100:g}%"


NORMAL_SPEED = Retime()


def used_source_range(source_in: int, record_in: int, record_out_excl: int, retime: Retime) -> tuple[int, int]:
    """(first, one past last) source frame sampled for record frames [record_in, record_out_excl).

    Record frames here are relative to the clip's first record frame (negative ones reach into
    a transition before the cut).
    """
    if record_out_excl <= record_in:
        raise InvalidInputError(f"record range {record_in}..{record_out_excl} is empty")
    if retime is NORMAL_SPEED:
        return source_in + record_in, source_in + record_out_excl
    if retime.freeze or retime.speed == 0:
        return source_in, source_in + 1
    first = source_in + math.floor(record_in * retime.speed)
    last = source_in + math.floor((record_out_excl - 1) * retime.speed)
    return (first, last + 1) if first <= last else (last, first + 1)


def shift_range(first: int, out_excl: int, delta: int) -> tuple[int, int]:
    return first + delta, out_excl + delta


def covers(covered: tuple[int, int] | None, needed: tuple[int, int]) -> bool:
    """Whether the inclusive range `covered` contains the inclusive range `needed`."""
    return covered is not None and covered[0] <= needed[0] and needed[1] <= covered[1]
