"""Version references: `PROJECT/ASSET@N`, `PROJECT/ASSET@latest`, `PROJECT/ASSET@approved`.

Asset names are letters, digits, `_` and `-`, with `/` for grouping (`characters/mara`).
A reference without `@` means `@latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backlot.errors import InvalidInputError

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
ASSET_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
SELECTORS = ("latest", "approved")


def check_code(code: str, what: str) -> str:
    if not isinstance(code, str) or not CODE_RE.fullmatch(code) or len(code) > 64:
        raise InvalidInputError(
            f"{what} code {code!r} is invalid: use letters, digits, '_' and '-' (starting with a letter or digit, at most 64)"
        )
    return code


def check_asset_name(name: str) -> str:
    if not isinstance(name, str) or not ASSET_RE.fullmatch(name) or len(name) > 200:
        raise InvalidInputError(
            f"asset name {name!r} is invalid: use letters, digits, '_', '-' and '/' between parts (e.g. characters/mara)"
        )
    return name


@dataclass(frozen=True)
class AssetRef:
    project: str
    asset: str

    def __str__(self) -> str:
        return f"{self.project}/{self.asset}"


@dataclass(frozen=True)
class VersionRef:
    project: str
    asset: str
    selector: int | str  # a version number, "latest" or "approved"

    def __str__(self) -> str:
        return f"{self.project}/{self.asset}@{self.selector}"

    @property
    def asset_ref(self) -> AssetRef:
        return AssetRef(self.project, self.asset)


def parse_asset_ref(text: str) -> AssetRef:
    if not isinstance(text, str) or "/" not in text:
        raise InvalidInputError(f"asset reference {text!r} is malformed: expected PROJECT/ASSET")
    project, asset = text.split("/", 1)
    return AssetRef(check_code(project, "project"), check_asset_name(asset))


def parse_version_ref(text: str) -> VersionRef:
    if not isinstance(text, str):
        raise InvalidInputError(f"version reference {text!r} is malformed: expected PROJECT/ASSET@N|latest|approved")
    base, _, selector = text.partition("@")
    try:
        asset_ref = parse_asset_ref(base)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"version reference {text!r} is malformed: expected PROJECT/ASSET@N|latest|approved ({exc})"
        ) from None
    if "@" not in text:
        selector = "latest"
    if selector in SELECTORS:
        return VersionRef(asset_ref.project, asset_ref.asset, selector)
    if selector.isdigit() and int(selector) >= 1:
        return VersionRef(asset_ref.project, asset_ref.asset, int(selector))
    raise InvalidInputError(
        f"version reference {text!r} has an invalid version {selector!r}: use a number from 1, 'latest' or 'approved'"
    )
