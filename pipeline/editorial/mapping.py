"""Mapping clips to shots: an ordered list of rules per project, the first match wins.

Each rule looks at one place of a clip and applies a regular expression; the named group
`shot` is the shot code (the whole match when there is none) and an optional group
`sequence` names its sequence. The default order:

1. `metadata`: a clip metadata key (dotted path, default `backlot.shot`), whole value;
2. `marker`: marker / locator text (EDL `* LOC:` lines);
3. `comment`: EDL comment lines (`*091_MJ_0020`);
4. `name`: the clip name;
5. `reel`: the reel or source name.

The default pattern finds codes like `sq010_sh0020` (sequence `sq010`) and `091_MJ_0020`
(sequence `091_MJ`). A found code that is not a valid shot code is skipped, and the next
rule is tried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Callable, NamedTuple, Sequence

from backlot.editorial import otio_values
from backlot.errors import InvalidInputError
from backlot.refs import CODE_RE

KINDS = ("metadata", "marker", "comment", "name", "reel")
# Letters+digits then an optional `sh` (sq010_sh0020), or digits_letters (091_MJ_0020); camera
# roll names (B072_C036) and versions (V001) do not match.
DEFAULT_PATTERN = (r"(?<![A-Za-z0-9])(?P<shot>(?P<sequence>[A-Za-z]{2,4}\d{2,4}|\d{2,4}_[A-Za-z]{2,4})"
                   r"_(?:sh|SH)?\d{3,5})(?![0-9])")
WHOLE_VALUE = r"^\s*(?P<shot>\S+?)\s*$"
DEFAULT_METADATA_KEY = "backlot.shot"


@dataclass(frozen=True)
class MappingRule:
    kind: str  # metadata | marker | comment | name | reel
    pattern: str | None = None  # regex with a `shot` group; default: whole value for metadata, else DEFAULT_PATTERN
    key: str | None = None  # metadata only: dotted path into the clip's metadata

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("kind", self.kind), ("pattern", self.pattern), ("key", self.key)) if v is not None}

    @property
    def regex(self) -> re.Pattern[str]:
        default = WHOLE_VALUE if self.kind == "metadata" else DEFAULT_PATTERN
        return _compile(self.pattern or default)

    def describe(self) -> str:
        if self.kind == "metadata":
            return f"metadata {self.key or DEFAULT_METADATA_KEY}"
        return self.kind


DEFAULT_RULES: tuple[MappingRule, ...] = (
    MappingRule("metadata", key=DEFAULT_METADATA_KEY),
    MappingRule("marker"),
    MappingRule("comment"),
    MappingRule("name"),
    MappingRule("reel"),
)


class ShotMatch(NamedTuple):  # a named tuple: one per clip, thousands per cut
    code: str
    sequence: str | None
    rule: str  # which rule found it (MappingRule.describe)
    value: str  # the text it was found in


def parse_rules(data: Any) -> tuple[MappingRule, ...]:
    """Rules from JSON data (a list of {"kind", "pattern"?, "key"?}), checked."""
    if not isinstance(data, list) or not data:
        raise InvalidInputError("mapping rules must be a non-empty JSON list of {\"kind\": ..., \"pattern\": ...}")
    rules = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict) or item.get("kind") not in KINDS:
            raise InvalidInputError(f"mapping rule {index}: 'kind' must be one of {', '.join(KINDS)}")
        unknown = set(item) - {"kind", "pattern", "key"}
        if unknown:
            raise InvalidInputError(f"mapping rule {index}: unknown field(s) {', '.join(sorted(unknown))}")
        pattern, key = item.get("pattern"), item.get("key")
        if pattern is not None:
            check_pattern(pattern, f"mapping rule {index}")
        if key is not None and (item["kind"] != "metadata" or not isinstance(key, str) or not key.strip(".")):
            raise InvalidInputError(f"mapping rule {index}: 'key' is a dotted metadata path, for kind metadata only")
        rules.append(MappingRule(item["kind"], pattern, key))
    return tuple(rules)


def check_pattern(pattern: Any, what: str) -> None:
    if not isinstance(pattern, str):
        raise InvalidInputError(f"{what}: 'pattern' must be a string")
    try:
        _compile(pattern)
    except re.error as exc:
        raise InvalidInputError(f"{what}: pattern {pattern!r} is not a valid regular expression ({exc})") from None


@lru_cache(maxsize=64)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def match_clip(clip: Any, reel: str | None, rules: Sequence[MappingRule]) -> ShotMatch | None:
    """The first rule that finds a valid shot code in the clip, or None."""
    return clip_matcher(rules)(clip, reel)


def clip_matcher(rules: Sequence[MappingRule]) -> Callable[[Any, str | None], ShotMatch | None]:
    """match_clip with these rules, prepared once for the clips of a cut."""
    return partial(_match, _prepared(tuple(rules)))


def _match(prepared: tuple[tuple[MappingRule, re.Pattern[str], str], ...], clip: Any,
           reel: str | None) -> ShotMatch | None:
    metadata = _Metadata(clip.metadata)
    for rule, regex, description in prepared:
        for value in _candidates(clip, metadata, reel, rule):
            found = _search(regex, value)
            if found is not None:
                code, sequence = found
                return ShotMatch(code, sequence, description, value)
    return None


@lru_cache(maxsize=16)
def _prepared(rules: tuple[MappingRule, ...]) -> tuple[tuple[MappingRule, re.Pattern[str], str], ...]:
    """Each rule with its compiled pattern and description, worked out once per rule list, not per clip."""
    return tuple((rule, rule.regex, rule.describe()) for rule in rules)


def _search(regex: re.Pattern[str], value: str) -> tuple[str, str | None] | None:
    for match in regex.finditer(value):
        groups = match.groupdict()
        code = groups.get("shot") or match.group(0)
        if code and CODE_RE.match(code) and len(code) <= 64:
            sequence = groups.get("sequence") or default_sequence(code)
            return code, sequence if sequence and CODE_RE.match(sequence) else None
    return None


def default_sequence(code: str) -> str | None:
    """The sequence the default pattern sees in a code (`sq010_sh0020` -> `sq010`), if any."""
    match = _compile(DEFAULT_PATTERN).fullmatch(code)
    return match.group("sequence") if match else None


class _Metadata:
    """A clip's metadata, its top-level keys read once (each read of an OTIO dictionary's keys costs)."""

    __slots__ = ("mapping", "_keys")

    def __init__(self, mapping: Any):
        self.mapping = mapping
        self._keys: set[Any] | None = None

    def path(self, dotted: str) -> Any:
        first, _, rest = dotted.partition(".")
        if isinstance(self.mapping, dict):  # a plain dict (otio_json's clips) answers `in` cheaply
            if first not in self.mapping:
                return None
        else:
            if self._keys is None:
                self._keys = set(otio_values.keys(self.mapping))
            if first not in self._keys:
                return None
        value = self.mapping[first]
        return _metadata_path(value, rest) if rest else value


def _candidates(clip: Any, metadata: _Metadata, reel: str | None, rule: MappingRule) -> Sequence[str]:
    if rule.kind == "name":
        return (str(clip.name),) if clip.name else ()
    if rule.kind == "reel":
        return (reel,) if reel else ()
    if rule.kind == "comment":
        return _strings(metadata.path("cmx_3600.comments")) + _strings(metadata.path("comment"))
    if rule.kind == "marker":
        markers = clip.markers
        if not len(markers):
            return ()
        found = []
        for marker in otio_values.elements(markers):
            if marker.name:
                found.append(str(marker.name))
            if getattr(marker, "comment", None):
                found.append(str(marker.comment))
        return found
    return _strings(metadata.path(rule.key or DEFAULT_METADATA_KEY))


def _metadata_path(metadata: Any, dotted: str) -> Any:
    value = metadata
    for part in dotted.split("."):
        value = otio_values.get(value, part)
        if value is None:
            return None
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or isinstance(value, bool):
        return ()
    if isinstance(value, (str, int)):
        return (str(value),)
    if isinstance(value, dict) or hasattr(value, "keys"):
        return ()  # a mapping holds no text to look in
    try:
        return tuple(str(v) for v in otio_values.elements(value) if isinstance(v, (str, int)))
    except TypeError:
        return ()
