"""Shot mapping rules: the default pattern, the rule order, custom rules, and checking them."""

from __future__ import annotations

import opentimelineio as otio
import pytest

from backlot.editorial.mapping import DEFAULT_RULES, MappingRule, match_clip, parse_rules
from backlot.errors import InvalidInputError


def make_clip(name="clip", metadata=None, markers=(), comments=(), reel=None):
    clip = otio.schema.Clip(name=name)
    if metadata:
        clip.metadata.update(metadata)
    if comments or reel:
        clip.metadata["cmx_3600"] = {"comments": list(comments), **({"reel": reel} if reel else {})}
    for text in markers:
        clip.markers.append(otio.schema.Marker(name=text))
    return clip


@pytest.mark.parametrize("text, code, sequence", [
    ("sq010_sh0020", "sq010_sh0020", "sq010"),
    ("sq010_sh0020_comp_v003.mov", "sq010_sh0020", "sq010"),
    ("091_MJ_0020", "091_MJ_0020", "091_MJ"),
    ("039_KAK_0025_DRA_V0001 997 // 8-8 Match to edit", "039_KAK_0025", "039_KAK"),
    ("DD509_0020|D:97", "DD509_0020", "DD509"),
    ("B072_C036_0819GN", None, None),  # a camera roll, not a shot
    ("OAM1540_MP_V001_WR_GRD001.MOV", None, None),
    ("RFE_JRUN_0010_Anim_v09.mov", None, None),
])
def test_default_pattern(text, code, sequence):
    match = match_clip(make_clip(name=text), None, DEFAULT_RULES)
    assert (match.code, match.sequence) == (code, sequence) if code else match is None


def test_rules_apply_in_order():
    clip = make_clip(name="sq030_sh0010", metadata={"backlot": {"shot": "sq040_sh0010"}},
                     markers=["sq050_sh0010"], comments=["sq060_sh0010"], reel="sq070_sh0010")
    assert match_clip(clip, "sq070_sh0010", DEFAULT_RULES).rule == "metadata backlot.shot"
    order = []
    rules = list(DEFAULT_RULES)
    while rules:
        match = match_clip(clip, "sq070_sh0010", rules)
        order.append((match.rule, match.code))
        rules.pop(0)
    assert order == [("metadata backlot.shot", "sq040_sh0010"), ("marker", "sq050_sh0010"),
                     ("comment", "sq060_sh0010"), ("name", "sq030_sh0010"), ("reel", "sq070_sh0010")]


def test_custom_rules_and_invalid_codes():
    rules = parse_rules([{"kind": "name", "pattern": r"(?P<sequence>RFE_[A-Z]+)_(?P<n>\d{4})"},
                         {"kind": "marker", "pattern": r"^(?P<shot>[A-Z]{2}\d{4})"}])
    match = match_clip(make_clip(name="RFE_JRUN_0010_Anim_v09.mov"), None, rules)
    assert (match.code, match.sequence, match.rule) == ("RFE_JRUN_0010", "RFE_JRUN", "name")
    assert match_clip(make_clip(name="x", markers=["YA0010 check"]), None, rules).code == "YA0010"
    # A found text that is not a valid shot code is skipped, and the next rule is tried.
    bad_then_good = parse_rules([{"kind": "metadata", "key": "vfx.id"}, {"kind": "name"}])
    clip = make_clip(name="sq010_sh0010", metadata={"vfx": {"id": "not a code!"}})
    assert match_clip(clip, None, bad_then_good).rule == "name"
    assert MappingRule("metadata", key="vfx.id").to_dict() == {"kind": "metadata", "key": "vfx.id"}


@pytest.mark.parametrize("rules, message", [
    ([], "non-empty JSON list"),
    ([{"kind": "colour"}], "'kind' must be one of"),
    ([{"kind": "name", "pattern": "("}], "not a valid regular expression"),
    ([{"kind": "name", "key": "a.b"}], "for kind metadata only"),
    ([{"kind": "name", "extra": 1}], "unknown field"),
])
def test_bad_rules_are_refused(rules, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_rules(rules)
