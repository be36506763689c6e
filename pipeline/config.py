"""Settings: environment variables first, then `BACKLOT_HOME/backlot.toml`, then defaults.

| setting        | env var        | default                         |
|----------------|----------------|---------------------------------|
| home           | BACKLOT_HOME   | ~/.backlot                      |
| database_url   | DATABASE_URL   | embedded PostgreSQL under home  |
| store_url      | BACKLOT_STORE  | HOME/store (or any fsspec URL)  |
| user           | BACKLOT_USER   | the login name                  |
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from backlot.errors import InvalidInputError


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None  # None: use the embedded server
    store_url: str
    user: str

    @property
    def embedded(self) -> bool:
        return self.database_url is None


def _read_toml(home: Path) -> dict:
    path = home / "backlot.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read settings ({exc}); fix or remove the file") from exc


def load_settings() -> Settings:
    home = Path(os.environ.get("BACKLOT_HOME") or Path.home() / ".backlot").expanduser()
    file = _read_toml(home)
    url = os.environ.get("DATABASE_URL") or file.get("database_url") or None
    if url and not url.startswith(("postgresql://", "postgresql+psycopg://")):
        raise InvalidInputError(
            f"DATABASE_URL {url!r} is not a PostgreSQL URL; use postgresql+psycopg://USER:PASS@HOST/DB"
        )
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    store = os.environ.get("BACKLOT_STORE") or file.get("store_url") or str(home / "store")
    user = os.environ.get("BACKLOT_USER") or file.get("user") or _login_name()
    return Settings(home=home, database_url=url, store_url=store, user=user)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
