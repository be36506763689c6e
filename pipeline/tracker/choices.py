"""Parsing the tracker's fixed vocabularies (kinds, statuses, roles, policies) with clear errors."""

from __future__ import annotations

import enum
from typing import TypeVar

from backlot.db.models import AssetKind, InputRole, StalePolicy, VersionStatus
from backlot.errors import InvalidInputError

E = TypeVar("E", bound=enum.Enum)


def parse_choice(enum_cls: type[E], value: str | E, what: str) -> E:
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(str(member.value) for member in enum_cls)
        raise InvalidInputError(f"{what} {value!r} is invalid: use one of {choices}") from None


def parse_kind(value: str | AssetKind) -> AssetKind:
    return parse_choice(AssetKind, value, "asset kind")


def parse_status(value: str | VersionStatus) -> VersionStatus:
    return parse_choice(VersionStatus, value, "status")


def parse_role(value: str | InputRole) -> InputRole:
    return parse_choice(InputRole, value, "input role")


def parse_policy(value: str | StalePolicy) -> StalePolicy:
    return parse_choice(StalePolicy, value, "stale policy")
