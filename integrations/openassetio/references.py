"""Backlot entity references: `backlot:///PROJECT/ASSET_PATH[?v=N|latest|approved]`.

No `v` means `latest`. A reference to a numbered version is stable (it always names the
same immutable data); `latest` and `approved` are meta-versions that move as versions are
published and approved. Only the asset itself (no `v`, or `v=latest`) can be published to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backlot.refs import ASSET_RE, CODE_RE

PREFIX = "backlot:///"
META_TAGS = ("latest", "approved")
FORM = "backlot:///PROJECT/ASSET_PATH?v=N|latest|approved"


# A reference already in its canonical form (`parse` accepts it and `format_ref` gives it back
# unchanged, or without `?v=latest`): checked in one C call, so a batch of them is validated
# without Python work per reference. Anything else goes through `parse`.
CANONICAL = re.compile(
    r"backlot:///[A-Za-z0-9][A-Za-z0-9_-]{0,63}"  # project code, at most 64
    r"/(?=[A-Za-z0-9_/-]{1,200}(?:\?|\Z))[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*"  # asset path, at most 200
    r"(?:\?v=(?:latest|approved|[1-9][0-9]{0,8}))?"
)
is_canonical = CANONICAL.fullmatch


class MalformedReference(ValueError):
    """The string starts with the Backlot prefix but is not a valid Backlot reference."""


@dataclass(frozen=True)
class EntityRef:
    project: str
    asset: str
    tag: int | str  # a version number, "latest" or "approved"

    @property
    def stable(self) -> bool:
        return isinstance(self.tag, int)

    @property
    def writable(self) -> bool:
        """Publishing makes a new version of the asset: only `latest` (the asset itself) takes one."""
        return self.tag == "latest"

    @property
    def tag_text(self) -> str:
        return str(self.tag)

    @property
    def pipeline_ref(self) -> str:
        return f"{self.project}/{self.asset}@{self.tag}"


def is_reference(text: str) -> bool:
    return text.startswith(PREFIX)


def parse(text: str) -> EntityRef:
    """The parts of a reference, or MalformedReference saying what is wrong."""
    if not text.startswith(PREFIX):
        raise MalformedReference(f"'{text}' is not a Backlot reference: expected {FORM}")
    path, _, query = text[len(PREFIX):].partition("?")
    project, _, asset = path.partition("/")
    # fullmatch: `$` alone would accept a trailing newline
    if not CODE_RE.fullmatch(project) or len(project) > 64:
        raise MalformedReference(f"'{text}' has no valid project code: expected {FORM}")
    if not ASSET_RE.fullmatch(asset) or len(asset) > 200:
        raise MalformedReference(f"'{text}' has no valid asset path: expected {FORM}")
    return EntityRef(project, asset, _parse_tag(text, query))


def _parse_tag(text: str, query: str) -> int | str:
    if not query:
        return "latest"
    key, _, value = query.partition("=")
    if key != "v" or "&" in value or ";" in value:
        raise MalformedReference(f"'{text}' has an invalid query: only ?v=N|latest|approved is allowed")
    if value in META_TAGS:
        return value
    if value.isascii() and value.isdigit() and not value.startswith("0") and len(value) <= 9:
        return int(value)
    raise MalformedReference(f"'{text}' has an invalid version {value!r}: use a number from 1, 'latest' or 'approved'")


def format_ref(project: str, asset: str, tag: int | str | None = None) -> str:
    """The reference string; `tag=None` gives the asset itself (the publishing target), without a query."""
    base = f"{PREFIX}{project}/{asset}"
    return base if tag is None else f"{base}?v={tag}"
