"""Frame math: exact rates, timecode (drop-frame included), retimes. Property tests with hypothesis."""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backlot.editorial.frames import (
    Retime,
    exact_rate,
    frames_to_timecode,
    is_drop_frame_rate,
    timecode_to_frames,
    to_frames,
    used_source_range,
)
from backlot.errors import InvalidInputError

NTSC = Fraction(30000, 1001)
NTSC60 = Fraction(60000, 1001)
RATES = [Fraction(24), Fraction(25), Fraction(30), Fraction(48), Fraction(24000, 1001), NTSC, NTSC60, Fraction(50)]
DAY = 24 * 3600


@pytest.mark.parametrize("given_rate, exact", [
    (23.976, Fraction(24000, 1001)), (23.976023976023978, Fraction(24000, 1001)), ("24000/1001", Fraction(24000, 1001)),
    (29.97, NTSC), (59.94, NTSC60), (24.0, Fraction(24)), ("25", Fraction(25)), (12.5, Fraction(25, 2)),
])
def test_rates_are_exact_fractions(given_rate, exact):
    assert exact_rate(given_rate) == exact


@pytest.mark.parametrize("bad", ["0", "-24", "fast", "1/0", "nan", "2000"])
def test_bad_rates_are_refused(bad):
    with pytest.raises(InvalidInputError):
        exact_rate(bad)


@pytest.mark.parametrize("frame, timecode", [
    (0, "00:00:00;00"), (1799, "00:00:59;29"), (1800, "00:01:00;02"), (17981, "00:09:59;29"),
    (17982, "00:10:00;00"), (107892, "01:00:00;00"), (2589407, "23:59:59;29"),
])
def test_drop_frame_known_values(frame, timecode):
    assert frames_to_timecode(frame, NTSC) == timecode
    assert timecode_to_frames(timecode, NTSC) == frame


def test_drop_frame_labels_that_do_not_exist_are_refused():
    with pytest.raises(InvalidInputError, match="does not exist"):
        timecode_to_frames("00:01:00;00", NTSC)
    assert timecode_to_frames("00:10:00;00", NTSC) == 17982  # every tenth minute keeps its labels


def test_non_drop_counts_nominal_frames():
    assert frames_to_timecode(86400, Fraction(24)) == "01:00:00:00"
    assert timecode_to_frames("01:00:00:00", Fraction(24000, 1001)) == 86400  # 23.976 counts 24 a second
    assert frames_to_timecode(107892, NTSC, drop_frame=False) == "00:59:56:12"
    with pytest.raises(InvalidInputError):
        timecode_to_frames("00:00:00:24", Fraction(24))
    with pytest.raises(InvalidInputError, match="drop-frame"):
        timecode_to_frames("00:00:01;00", Fraction(24))


@settings(max_examples=300, deadline=None)
@given(rate=st.sampled_from(RATES), frame=st.integers(0, DAY * 60 - 1))
def test_timecode_round_trips(rate, frame):
    frame %= round(DAY * rate)  # stay within a day at this rate
    timecode = frames_to_timecode(frame, rate)
    assert timecode_to_frames(timecode, rate) == frame
    assert (";" in timecode) == is_drop_frame_rate(rate)


@settings(max_examples=200, deadline=None)
@given(rate=st.sampled_from(RATES), frame=st.integers(0, DAY * 24 - 2))
def test_timecode_is_monotonic_and_matches_otio(rate, frame):
    frame %= round(DAY * rate) - 1
    a, b = frames_to_timecode(frame, rate), frames_to_timecode(frame + 1, rate)
    assert a.replace(";", ":") < b.replace(";", ":")
    drop = is_drop_frame_rate(rate)
    assert a == otio.opentime.to_timecode(otio.opentime.RationalTime(frame, float(rate)), float(rate), drop)


@settings(max_examples=200, deadline=None)
@given(value=st.integers(-10**7, 10**7), src=st.sampled_from(RATES), dst=st.sampled_from(RATES))
def test_to_frames_is_exact_and_rounds_once(value, src, dst):
    frames = to_frames(float(value), float(src), dst)
    exact = Fraction(value) * dst / src
    assert abs(frames - exact) <= Fraction(1, 2)
    if src == dst:
        assert frames == value


@settings(max_examples=300, deadline=None)
@given(source_in=st.integers(-1000, 10**6), start=st.integers(-50, 500), length=st.integers(1, 500),
       speed=st.fractions(min_value=Fraction(-4), max_value=Fraction(4), max_denominator=48))
def test_used_source_range_samples_every_record_frame(source_in, start, length, speed):
    retime = Retime(speed, False)
    first, out_excl = used_source_range(source_in, start, start + length, retime)
    sampled = [source_in + (k * speed).__floor__() for k in range(start, start + length)]
    assert first == min(sampled) and out_excl == max(sampled) + 1
    if speed == 1:
        assert (first, out_excl) == (source_in + start, source_in + start + length)


def test_freeze_and_reverse():
    assert used_source_range(1001, 0, 48, Retime(Fraction(0), True)) == (1001, 1002)
    assert used_source_range(1001, 0, 48, Retime(Fraction(1, 2))) == (1001, 1025)  # 50%: 24 frames
    assert used_source_range(1001, 0, 24, Retime(Fraction(2))) == (1001, 1048)  # 200%: every other frame
    assert used_source_range(1100, 0, 10, Retime(Fraction(-1))) == (1091, 1101)  # reverse from the in point
    assert Retime(Fraction(1, 2)).label() == "50%" and Retime(Fraction(0), True).label() == "freeze"
