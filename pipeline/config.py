"""Settings: environment variables first, then `BACKLOT_HOME/backlot.toml`, then defaults.

| setting        | env var        | default                         |
|----------------|----------------|---------------------------------|
| home           | BACKLOT_HOME   | ~/.backlot                      |
| database_url   | DATABASE_URL   | embedded PostgreSQL under home  |
| store_url      | BACKLOT_STORE  | HOME/store (or any fsspec URL)  |
| user           | BACKLOT_USER   | the login name                  |
| store options  | AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, AWS_PROFILE | `[store]` table: endpoint_url, region, profile |
| cache_dir      | BACKLOT_CACHE_DIR    | HOME/cache (`[cache] dir`)   |
| cache_max_gb   | BACKLOT_CACHE_MAX_GB | 50 (`[cache] max_gb`)        |

Credentials for S3 come from botocore's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
the profile's files, an instance role), never from backlot.toml.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from backlot.errors import InvalidInputError


@dataclass(frozen=True)
class StoreOptions:
    """How to reach a remote (S3-compatible) store; None lets botocore decide."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None  # None: use the embedded server
    store_url: str
    user: str
    store_options: StoreOptions = field(default_factory=lambda: StoreOptions())
    cache_dir: Path | None = None  # None: HOME/cache
    cache_max_gb: float = 50.0

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
    cache = _table(file, "cache", home)
    cache_dir = os.environ.get("BACKLOT_CACHE_DIR") or cache.get("dir")
    return Settings(home=home, database_url=url, store_url=store, user=user, store_options=_store_options(file, home),
                    cache_dir=Path(cache_dir).expanduser() if cache_dir else None,
                    cache_max_gb=_cache_max_gb(os.environ.get("BACKLOT_CACHE_MAX_GB") or cache.get("max_gb", 50.0)))


def _table(file: dict, name: str, home: Path) -> dict:
    table = file.get(name, {})
    if not isinstance(table, dict):
        raise InvalidInputError(f"{home / 'backlot.toml'}: [{name}] must be a table (e.g. [{name}] on its own line)")
    return table


def _store_options(file: dict, home: Path) -> StoreOptions:
    """Environment first (the names AWS tools use), then the [store] table of backlot.toml."""
    table = _table(file, "store", home)
    env = os.environ.get
    return StoreOptions(
        endpoint_url=env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or table.get("endpoint_url"),
        region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or table.get("region"),
        profile=env("AWS_PROFILE") or table.get("profile"),
    )


def _cache_max_gb(value: object) -> float:
    try:
        size = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        size = -1.0
    if size <= 0:
        raise InvalidInputError(f"BACKLOT_CACHE_MAX_GB / [cache] max_gb {value!r} must be a positive number of GB")
    return size


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
