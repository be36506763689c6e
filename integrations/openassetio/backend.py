"""Backlot's side of the OpenAssetIO plugin: batched lookups and publishing over `backlot`.

Nothing here knows OpenAssetIO: it takes reference strings and typed requests and returns,
per element, a typed result or an `ElementError`. `manager.py` adapts it to the
ManagerInterface. Every read is one SQL statement for the whole batch, on an autocommit
connection (no BEGIN/COMMIT round trips): small batches (what a DCC sends) on one
connection with prepared statements (`prepared.py`), large ones on a pool without pre-ping;
a connection found dead is replaced and the statement retried once before the database is
reported unreachable. Resolved locations are cached, coherently (`cache.py`).
"""

from __future__ import annotations

import enum
import functools
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlparse

from sqlalchemy import TextClause, create_engine
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import backlot
from backlot.config import Settings, load_settings
from backlot.db.engine import ensure_schema, resolve_url, translate_db_error
from backlot.errors import BacklotError, ConflictError, DatabaseError, InvalidInputError, NotFoundError
from backlot.refs import check_code

from backlot.integrations.openassetio import queries
from backlot.integrations.openassetio.cache import Listener, RefCache, register_cache
from backlot.integrations.openassetio.prepared import SMALL_BATCH, PreparedReader, psycopg_sql
from backlot.integrations.openassetio.queries import Need
from backlot.integrations.openassetio.references import EntityRef, MalformedReference, format_ref, is_canonical, parse

T = TypeVar("T")
log = logging.getLogger(__name__)

PRELOAD_MAX = 200_000  # versions the `preload` setting caches at most
WORKING_TTL = 24 * 3600.0  # seconds before an unregistered working folder is swept


class ErrorKind(enum.Enum):
    malformed = "malformed"  # not a valid Backlot reference
    missing = "missing"  # unknown project, asset or version
    access = "access"  # e.g. publishing to an immutable version
    invalid_data = "invalid_data"  # the traits given to register cannot be published
    invalid_hint = "invalid_hint"  # the traits given to preflight cannot be published


@dataclass(frozen=True)
class ElementError:
    kind: ErrorKind
    message: str


# -- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginSettings:
    """The manager settings a host passes to `initialize`; empty means Backlot's own configuration."""

    database_url: str = ""  # default: DATABASE_URL / backlot.toml / the embedded server
    store_url: str = ""  # default: BACKLOT_STORE / backlot.toml / BACKLOT_HOME/store
    user: str = ""  # default: BACKLOT_USER / the login name; recorded on published versions
    project: str = ""  # the project default entity references come from (none: no defaults)
    cache: str = "on"  # "off": every resolve reads the database (see cache.py)
    preload: str = ""  # "project": fill the cache with the project's references after initialize

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(cls.__dataclass_fields__)

    def merged(self, values: dict[str, Any]) -> PluginSettings:
        """These settings updated with `values`; a clear ValueError for unknown keys or non-strings."""
        unknown = sorted(set(values) - set(self.keys()))
        if unknown:
            raise ValueError(f"unknown Backlot manager settings {unknown}: the settings are {list(self.keys())}")
        for key, value in values.items():
            if not isinstance(value, str):
                raise ValueError(f"Backlot manager setting {key!r} must be a string, not {type(value).__name__}")
        updated = replace(self, **values)
        if updated.cache not in ("on", "off"):
            raise ValueError(f"Backlot manager setting 'cache' must be 'on' or 'off', not {updated.cache!r}")
        if updated.preload not in ("", "project"):
            raise ValueError(f"Backlot manager setting 'preload' must be '' or 'project', not {updated.preload!r}")
        if updated.preload and not (updated.project and updated.cache == "on"):
            raise ValueError("Backlot manager setting 'preload' = 'project' needs a 'project' and the cache on")
        if updated.project:
            try:
                check_code(updated.project, "project")
            except InvalidInputError as exc:
                raise ValueError(f"Backlot manager setting 'project': {exc}") from None
        return updated

    def as_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in self.keys()}

    def backlot_settings(self) -> Settings:
        """Backlot's configuration with these settings laid over it."""
        base = load_settings()
        url = self.database_url or base.database_url
        if url and url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        if url and not url.startswith("postgresql+psycopg://"):
            raise InvalidInputError(f"database_url {url!r} is not a PostgreSQL URL: use postgresql+psycopg://USER:PASS@HOST/DB")
        return Settings(home=base.home, database_url=url, store_url=self.store_url or base.store_url,
                        user=self.user or base.user)


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    role: str
    ref: str  # stable Backlot reference of the far end


@dataclass(frozen=True)
class Staleness:
    stale: bool
    input: str | None = None  # the nearest superseded input (stable reference)
    superseded_by: str | None = None
    depth: int | None = None  # 1: a direct input


@dataclass(frozen=True)
class Content:
    """Where a version's files are: one file, a frame sequence (templated URL), or its folder."""

    url: str
    mime_type: str
    templated: bool = False
    first_frame: int | None = None
    last_frame: int | None = None


@dataclass(frozen=True)
class VersionData:
    """One resolved version; optional parts are None when the batch did not ask for them."""

    ref: EntityRef
    kind: str
    number: int
    version_id: int
    fps: Fraction
    status: str | None = None
    content_hash: str | None = None
    media_type: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    content: Content | None = None
    recipe_sha256: str | None = None
    recipe_body: dict[str, Any] | None = None
    inputs: tuple[Edge, ...] | None = None
    outputs: tuple[Edge, ...] | None = None
    staleness: Staleness | None = None

    @property
    def stable_ref(self) -> str:
        return format_ref(self.ref.project, self.ref.asset, self.number)


@dataclass(frozen=True)
class Target:
    """A publishing target: the asset (existing, with its kind, or to be created)."""

    ref: EntityRef
    kind: str | None  # None: the asset does not exist yet

    @property
    def working_ref(self) -> str:
        return format_ref(self.ref.project, self.ref.asset)


@dataclass(frozen=True)
class PublishSpec:
    """What a host gives to register, decoded from its traits."""

    location: str | None = None  # file:// URL of a file or a folder
    mime_type: str | None = None
    kinds: tuple[str, ...] = ()  # from backlot:kind.* traits
    status: str | None = None
    inputs: tuple[tuple[str, str], ...] = ()  # (role, reference)
    recipe: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Relation(enum.Enum):
    versions = "versions"  # all versions, the `latest` meta-version first
    stable_versions = "stable_versions"  # all concrete versions, newest first
    stable = "stable"  # the concrete version a (meta-)reference points at
    inputs = "inputs"
    outputs = "outputs"
    none = "none"  # a relationship Backlot does not know: no results


@dataclass(frozen=True)
class RelationRequest:
    ref: str
    relation: Relation
    role: str | None = None  # lineage: only edges with this role
    transitive: bool = False  # lineage: the whole chain, nearest first
    tag: str | None = None  # versions: only the one with this tag (N, latest, approved)


# -- the backend ---------------------------------------------------------------------------


class Backend:
    """Batched access to one Backlot database and store."""

    def __init__(self, settings: PluginSettings):
        self.settings = settings
        self.backlot = settings.backlot_settings()
        url = resolve_url(self.backlot)  # starts the embedded server when no URL is configured
        # No pre-ping and no server-side prepares: each would add a round trip to a batch.
        # JIT off for the session (startup option, no round trip): a batch's `unnest` makes the
        # planner's cost estimate large enough to JIT-compile, ~150 ms per 20,000-reference batch.
        self._writer = create_engine(url, pool_pre_ping=False, pool_size=2, max_overflow=8,
                                     connect_args={"prepare_threshold": None, "options": "-c jit=off"})
        self._reader = self._writer.execution_options(isolation_level="AUTOCOMMIT")
        try:
            ensure_schema(self._writer, auto_upgrade=self.backlot.embedded)
        except BacklotError:
            self._writer.dispose()
            raise
        self.store = backlot.Store(self.backlot.store_url)
        self._versions_url = self.store.url(self.store.version_dir("")).rstrip("/") + "/"
        connect = _connector(self._writer)
        self._small = PreparedReader(connect, warm=_WARM)
        self.cache: RefCache | None = None
        self._listener: Listener | None = None
        if settings.cache == "on":
            self.cache = RefCache()
            register_cache(self.cache)
            self._listener = Listener(connect, self.cache)
            self._listener.start()
        self.preloaded = threading.Event()  # set when the preload (if any) has finished
        if settings.preload == "project":
            threading.Thread(target=self._preload, name="backlot-openassetio-preload", daemon=True).start()
        else:
            self.preloaded.set()

    @property
    def engine(self) -> Engine:
        return self._writer

    def _preload(self) -> None:
        """Cache the project's references (every version newest first, up to PRELOAD_MAX, plus
        each asset's latest and approved), as a scene loader would resolve them, in batches on
        the pool. Rows fetched across an invalidation are not kept (RefCache.store)."""
        try:
            project, cache = self.settings.project, self.cache
            generation, flushes = cache.generation, cache.flushes
            rows = self._read(lambda conn: conn.execute(queries.PRELOAD, {"project": project,
                                                                           "limit": PRELOAD_MAX}).all())
            keys: list[str] = []
            for name, number, first, approved in rows:
                base = format_ref(project, name)
                keys.append(f"{base}?v={number}")
                if first:  # the asset's newest version: its meta-versions once
                    keys += [base, f"{base}?v=latest"] + ([f"{base}?v=approved"] if approved else [])
            for start in range(0, len(keys), 20000):
                chunk = keys[start:start + 20000]
                fetched = self.fetch_located("\n".join(chunk), True, len(chunk))
                if len(fetched) != len(chunk) or not all(row[4] is not None for row in fetched):
                    fetched, _ = self._fix_located(chunk, fetched, [])  # several files, or none
                cache.store(chunk, fetched, generation, flushes)
        except Exception as exc:  # noqa: BLE001 - a preload is an optimisation: resolves still work
            log.warning("Backlot OpenAssetIO: preloading project %r failed: %s", self.settings.project, exc)
        finally:
            self.preloaded.set()

    @property
    def prepared(self) -> PreparedReader:
        return self._small

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._small.close()
        self._writer.dispose()

    def __del__(self) -> None:
        # A host that drops the manager without closing it: the listener thread stops by itself.
        listener = getattr(self, "_listener", None)
        if listener is not None:
            listener.stop()

    def flush_cache(self) -> None:
        if self.cache is not None:
            self.cache.clear()

    # -- reads -----------------------------------------------------------------------------

    def resolve(self, refs: Sequence[str], need: Need) -> list[VersionData | ElementError]:
        """Each reference's version (with the parts `need` asks for), or why it has none."""
        parsed = _parse_all(refs)
        rows = self._targets(parsed, need)
        return [p if isinstance(p, ElementError) else self._version_or_error(p, rows.get(i), need)
                for i, p in enumerate(parsed)]

    def locate(self, refs: Sequence[str], *, names: bool = False
               ) -> tuple[list[tuple[int, tuple]], list[tuple[int, ElementError]]]:
        """The resolve fast path: what LocatableContent, Version and (with `names`) DisplayName
        hold for each reference, as `(idx, row)` pairs, one per reference found, in no
        particular order, where row is

            (_, kind, mime_type, templated, url, stable_tag, specified_tag, name, qualified_name,
             content_hash, path, miss, asset_id)

        (row[0] is not the index: rows may come from the cache), and (idx, error) for the
        others. Cached rows first; the rest in one statement, where PostgreSQL does the joins
        and builds the values, so the work per reference left here is a tuple.
        """
        errors: list[tuple[int, ElementError]] = []
        if not refs:
            return [], errors
        if all(map(is_canonical, refs)):  # the usual batch: validated in C, used as it is
            keys = refs
        else:
            keys = []
            for idx, text in enumerate(refs):
                try:
                    ref = parse(text)
                except MalformedReference as exc:
                    errors.append((idx, ElementError(ErrorKind.malformed, str(exc))))
                    keys.append("")  # matches nothing
                else:
                    keys.append(format_ref(ref.project, ref.asset, ref.tag))
        cache = self.cache
        found: list[tuple[int, tuple]] = []
        if cache is None or not (cache.stable or cache.meta):  # off, or empty: nothing to look up
            todo = [i for i, key in enumerate(keys) if key] if errors else range(len(keys))
        else:
            todo = []
            stable, meta = cache.stable, cache.meta
            if not cache.meta_usable():
                meta = {}
            for idx, key in enumerate(keys):
                row = stable.get(key) or meta.get(key)
                if row is not None:
                    found.append((idx, row))
                elif key:
                    todo.append(idx)
        if todo:
            self._locate_misses(keys, todo, names, found, errors)
        return found, errors

    def _locate_misses(self, keys: Sequence[str], todo: Sequence[int], names: bool, found: list[tuple[int, tuple]],
                       errors: list[tuple[int, ElementError]]) -> None:
        """Fetch the references at `todo` in one statement; keep what may be cached."""
        cache = self.cache
        wanted = keys if len(todo) == len(keys) else [keys[i] for i in todo]
        body = "\n".join(wanted)
        for _attempt in range(3):
            generation, flushes = (cache.generation, cache.flushes) if cache is not None else (0, 0)
            rows = self.fetch_located(body, names, len(wanted))
            if cache is None or cache.generation == generation:
                break
            # An invalidation arrived while the statement ran: its meta rows may predate it.
            if not any(_is_meta(key) for key in wanted):
                break
        missed: list[tuple[int, ElementError]] = []
        if len(rows) != len(wanted) or not all(row[4] is not None for row in rows):
            rows, missed = self._fix_located(wanted, rows, missed)
        for sub, error in missed:
            errors.append((todo[sub], error))
        found.extend((todo[row[0]], row) for row in rows)
        if cache is not None:
            cache.store(wanted, rows, generation, flushes)

    def fetch_located(self, body: str, names: bool = False, count: int | None = None) -> list[tuple]:
        """The rows of the fast-path statement for a batch (one line per reference)."""
        params = {"refs": body, "base": self._versions_url}
        if (count if count is not None else body.count("\n") + 1) <= SMALL_BATCH:
            # Always with names here (cheap for a few), so cached rows serve DisplayName too.
            fetched = self._small.fetch(queries.LOCATE_SMALL_NAMED, params)
            if fetched is not None:
                return fetched[1]
        statement = queries.LOCATE_NAMED if names else queries.LOCATE
        # The DBAPI cursor's own tuples: no Row objects for thousands of rows.
        return self._read(lambda conn: conn.exec_driver_sql(statement, params).cursor.fetchall())

    def _fix_located(self, refs: Sequence[str], rows: list[tuple], errors: list[tuple[int, ElementError]]
                     ) -> tuple[list[tuple], list[tuple[int, ElementError]]]:
        """The rows the statement could not finish: missing versions (errors), versions with
        several files or none (grouped here), file names that need percent-encoding."""
        reported = {idx for idx, _ in errors}
        files: dict[int, list[str]] = {}
        first: dict[int, tuple] = {}
        for row in rows:
            idx, path = row[0], row[10]
            if idx in reported:
                continue
            if idx not in first:
                first[idx] = row
                files[idx] = []
            if path is not None:
                files[idx].append(path)
        out: list[tuple] = []
        for idx, row in first.items():
            miss = row[11]
            if row[5] is None:  # no version
                ref = parse(refs[idx])
                found = _Fields(version_id=None, project_id=None if miss == -2 else 0,
                                asset_id=None if miss in (-1, -2) else 0, latest_number=miss)
                errors.append((idx, _missing_error(ref, found)))
                continue
            paths = files[idx]
            if len(paths) == 1 and row[4] is not None:
                out.append(row)
                continue
            content = self._content(row[9], sorted(paths), row[2])
            out.append((idx, row[1], content.mime_type, content.templated, content.url, *row[5:]))
        return out, errors

    def exists(self, refs: Sequence[str]) -> list[bool | ElementError]:
        """Whether each reference names a version (the fast path's rows, cached)."""
        rows, errors = self.locate(refs, names=True)
        out: list[bool | ElementError] = [True] * len(refs)
        for idx, error in errors:
            out[idx] = False if error.kind is ErrorKind.missing else error
        return out

    def entity_kinds(self, refs: Sequence[str], *, for_write: bool) -> list[str | None | ElementError]:
        """The asset kind of each entity (None: an asset yet to be created by publishing)."""
        if for_write:
            return [t if isinstance(t, ElementError) else t.kind for t in self.targets(refs)]
        rows, errors = self.locate(refs, names=True)
        out: list[str | None | ElementError] = [None] * len(refs)
        for idx, row in rows:
            out[idx] = row[1]
        for idx, error in errors:
            out[idx] = error
        return out

    def targets(self, refs: Sequence[str]) -> list[Target | ElementError]:
        """Where publishing each reference would go, or why it cannot."""
        parsed = _parse_targets(refs)
        rows = self._targets(parsed, Need())
        return [_target_or_error(p, rows.get(i)) for i, p in enumerate(parsed)]

    def preflight(self, refs: Sequence[str], kinds: Sequence[tuple[str, ...]]) -> list[str | ElementError]:
        """The working reference to register each item to (the asset), after checking it can be."""
        out: list[str | ElementError] = []
        for target, hint in zip(self.targets(refs), kinds):
            if isinstance(target, ElementError):
                out.append(target)
                continue
            kind = _publish_kind(target, hint)
            out.append(ElementError(ErrorKind.invalid_hint, kind.message) if isinstance(kind, ElementError)
                       else target.working_ref)
        return out

    # -- working locations (publishing from a host) -----------------------------------------

    @property
    def working_root(self) -> Path:
        """Where hosts write before registering: BACKLOT_HOME/working (never the store)."""
        return Path(self.backlot.home) / "working"

    def working_locations(self, refs: Sequence[str]) -> list[str | ElementError]:
        """For each publishing target, a new empty folder to write into (a `file://` URL ending
        in `/`). Registering a location inside it removes it; folders nobody registered are
        swept after WORKING_TTL. Nothing is written to the database or the store."""
        self.sweep_working()
        out: list[str | ElementError] = []
        for target in self.targets(refs):
            if isinstance(target, ElementError):
                out.append(target)
                continue
            folder = self.working_root / uuid.uuid4().hex
            folder.mkdir(parents=True)
            out.append(folder.as_uri() + "/")
        return out

    def sweep_working(self, older_than: float = WORKING_TTL) -> list[Path]:
        """Remove working folders untouched for `older_than` seconds (a host that never registered)."""
        if not self.working_root.is_dir():
            return []
        cutoff = time.time() - older_than
        removed = []
        for folder in self.working_root.iterdir():
            try:
                newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
            except OSError:
                continue
            if newest < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed

    def _discard_working(self, location: str | None) -> None:
        """After a commit: the working folder a registered location was in, if it was in one."""
        if not location:
            return
        path = Path(unquote(urlparse(location).path))
        try:
            token = path.relative_to(self.working_root).parts[0]
        except (ValueError, IndexError):
            return  # written elsewhere: the host's own file, left alone
        shutil.rmtree(self.working_root / token, ignore_errors=True)

    def related(self, requests: Sequence[RelationRequest], kinds: Sequence[str] | None) -> list[list[str] | ElementError]:
        """For each request, the related references in order (filtered to `kinds` when given)."""
        parsed = _parse_all([r.ref for r in requests])
        valid = [(i, p, requests[i]) for i, p in enumerate(parsed) if not isinstance(p, ElementError)]
        grouped: dict[int, list[Row]] = {}
        if valid:
            params = {
                "req": [i for i, _, _ in valid], "project": [p.project for _, p, _ in valid],
                "asset": [p.asset for _, p, _ in valid], "tag": [p.tag_text for _, p, _ in valid],
                "rel": [r.relation.value for _, _, r in valid], "role": [r.role for _, _, r in valid],
                "transitive": [r.transitive for _, _, r in valid], "kinds": list(kinds) if kinds is not None else None,
            }
            for row in self._fetch(queries.RELATIONS, params, len(valid)):
                grouped.setdefault(row.req, []).append(row)
        out: list[list[str] | ElementError] = []
        for i, p in enumerate(parsed):
            if isinstance(p, ElementError):
                out.append(p)
                continue
            rows = grouped[i]
            error = _missing_error(p, rows[0])
            out.append(error if error is not None else _related_refs(requests[i], rows))
        return out

    def default_refs(self, kinds: Sequence[str | None]) -> list[str | None]:
        """Per requested kind, the default reference in the configured project (None: no default)."""
        project = self.settings.project
        wanted = [(i, k) for i, k in enumerate(kinds) if k is not None]
        out: list[str | None] = [None] * len(kinds)
        if not project or not wanted:
            return out
        params = {"idx": [i for i, _ in wanted], "kind": [k for _, k in wanted], "project": project}
        for row in self._fetch(queries.DEFAULTS, params, len(wanted)):
            if row.name is not None:
                out[row.idx] = format_ref(project, row.name, "approved" if row.approved_number else "latest")
        return out

    # -- publishing ------------------------------------------------------------------------

    def register(self, refs: Sequence[str], specs: Sequence[PublishSpec | ElementError]) -> list[str | ElementError]:
        """Publish one new version per item, each all-or-nothing; the stable reference of each
        (an item identical to its asset's latest version gets that version's reference).

        The batch is checked first (targets and inputs in one query), then every item is
        published through `backlot.publish_version` in its own savepoint of one transaction.
        Results are returned only after the commit; if the database fails, nothing is.
        """
        plans = self._plan_publishes(refs, specs)
        results: list[str | ElementError] = [p if isinstance(p, ElementError) else "" for p in plans]
        todo = [(i, p) for i, p in enumerate(plans) if not isinstance(p, ElementError)]
        if not todo:
            return results
        try:
            with Session(self._writer, expire_on_commit=False) as session, session.begin():
                for i, plan in todo:
                    results[i] = self._publish_one(session, plan)
        except DBAPIError as exc:
            raise _as_database_error(exc) from exc
        for i, plan in todo:  # committed: the store has the files, the working copies can go
            if not isinstance(results[i], ElementError):
                self._discard_working(plan.spec.location)
        return results

    def _publish_one(self, session: Session, plan: _PublishPlan) -> str | ElementError:
        try:
            with session.begin_nested():
                record = backlot.publish_version(
                    session, plan.target.ref.project, plan.target.ref.asset, plan.files, names=plan.names,
                    kind=plan.kind, inputs=plan.inputs, recipe=plan.spec.recipe, metadata=plan.spec.metadata,
                    status=plan.spec.status or "wip", media_type=plan.spec.mime_type, store=self.store,
                    actor=self.backlot.user)
        except DBAPIError as exc:
            error = translate_db_error(exc)
            if not isinstance(error, BacklotError) or isinstance(error, DatabaseError):
                raise
            return _publish_error(plan.target, error)
        except BacklotError as exc:
            if isinstance(exc, DatabaseError):
                raise
            return _publish_error(plan.target, exc)
        return format_ref(record.project, record.asset, record.number)

    def _plan_publishes(self, refs: Sequence[str], specs: Sequence[PublishSpec | ElementError]) -> list[_PublishPlan | ElementError]:
        """Check the whole batch, targets and inputs, in one query."""
        targets = _parse_targets(refs)
        inputs = _parse_all([ref for spec in specs if isinstance(spec, PublishSpec) for _, ref in spec.inputs])
        rows = self._targets([*targets, *inputs], Need())
        found = iter(p if isinstance(p, ElementError) else self._version_or_error(p, rows[i], Need())
                     for i, p in enumerate(inputs, start=len(targets)))
        plans: list[_PublishPlan | ElementError] = []
        for i, (parsed, spec) in enumerate(zip(targets, specs)):
            spec_inputs = [next(found) for _ in spec.inputs] if isinstance(spec, PublishSpec) else []
            target = _target_or_error(parsed, rows.get(i))
            plans.append(target if isinstance(target, ElementError) else
                         spec if isinstance(spec, ElementError) else _plan(target, spec, spec_inputs))
        return plans

    # -- plumbing --------------------------------------------------------------------------

    def _targets(self, parsed: Sequence[EntityRef | ElementError], need: Need) -> dict[int, _Fields]:
        valid = [(i, p) for i, p in enumerate(parsed) if not isinstance(p, ElementError)]
        if not valid:
            return {}
        params = {"idx": [i for i, _ in valid], "project": [p.project for _, p in valid],
                  "asset": [p.asset for _, p in valid], "tag": [p.tag_text for _, p in valid]}
        return {row.idx: row for row in self._fetch(queries.targets_query(need), params, len(valid))}

    def _fetch(self, statement: TextClause, params: dict[str, Any], count: int) -> list[_Fields]:
        """A statement's rows as dicts: prepared, on the small-batch connection, for up to
        SMALL_BATCH references (when it is free), else on the pool."""
        if count <= SMALL_BATCH:
            fetched = self._small.fetch(psycopg_sql(statement.text), params)
            if fetched is not None:
                keys, rows = fetched
                return [_Fields(zip(keys, values)) for values in rows]

        def fetch(conn: Any) -> list[_Fields]:
            result = conn.execute(statement, params)
            keys = list(result.keys())
            return [_Fields(zip(keys, values)) for values in result.all()]

        return self._read(fetch)

    def _read(self, run: Callable[[Any], T]) -> T:
        """Run one read; a pooled connection found dead is replaced and the read retried once."""
        for attempt in (1, 2):
            try:
                with self._reader.connect() as conn:
                    return run(conn)
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise _as_database_error(exc) from exc
        raise AssertionError("unreachable")

    def _version_or_error(self, ref: EntityRef, row: _Fields, need: Need) -> VersionData | ElementError:
        error = _missing_error(ref, row)
        if error is not None:
            return error
        m = row
        return VersionData(
            ref=ref, kind=row.kind, number=row.number, version_id=row.version_id, fps=Fraction(row.fps_num, row.fps_den),
            status=m.get("status"), content_hash=m.get("content_hash"), media_type=m.get("media_type"),
            created_by=m.get("created_by"), created_at=m.get("created_at"), metadata=m.get("metadata"),
            content=self._content(m["content_hash"], m["files"], m["media_type"]) if need.files else None,
            recipe_sha256=m.get("recipe_sha256"), recipe_body=m.get("recipe_body"),
            inputs=_edges(m["inputs"]) if need.inputs else None,
            outputs=_edges(m["outputs"]) if need.outputs else None,
            staleness=_staleness(row) if need.staleness else None,
        )

    def _content(self, content_hash: str, files: Sequence[str], media_type: str) -> Content:
        base = f"{self._versions_url}{content_hash}/"
        if len(files) == 1:
            return Content(base + _quote(files[0]), media_type)
        sequence = _frame_sequence(files)
        if sequence is not None:
            template, first, last = sequence
            return Content(base + _quote(template), media_type, templated=True, first_frame=first, last_frame=last)
        return Content(base, "inode/directory")


# -- helpers -------------------------------------------------------------------------------


class _Fields(dict):
    """A result row as a plain dict (cheap to build for thousands of rows), readable as attributes."""

    __getattr__ = dict.__getitem__


@dataclass(frozen=True)
class _PublishPlan:
    target: Target
    spec: PublishSpec
    kind: str
    files: list[Path]
    names: list[str]
    inputs: list[tuple[str, int]]  # (role, version id), pinned to what was checked


# What the small-batch connection prepares as it opens: the statements behind resolve,
# exists, entityTraits, preflight/register checks, relationships and default references,
# with parameters of the types real calls pass.
_ONE = {"idx": [0], "project": ["x"], "asset": ["x"], "tag": ["latest"]}
_WARM = [
    (queries.LOCATE_SMALL_NAMED, {"refs": "", "base": ""}),
    (psycopg_sql(queries.targets_query(Need()).text), _ONE),
    (psycopg_sql(queries.RELATIONS.text), {"req": [0], "project": ["x"], "asset": ["x"], "tag": ["latest"],
                                           "rel": ["none"], "role": [None], "transitive": [False], "kinds": None}),
    (psycopg_sql(queries.DEFAULTS.text), {"idx": [0], "kind": ["x"], "project": "x"}),
]


def _is_meta(key: str) -> bool:
    """Whether a canonical reference names a meta-version (latest, approved), not `?v=N`."""
    return not key[-1].isdigit() or "?v=" not in key


def _connector(engine: Engine) -> Callable[..., Any]:
    """A function opening an autocommit psycopg connection to the engine's database (extra
    keyword arguments, e.g. `options`, go to `psycopg.connect`)."""
    import psycopg

    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    cparams = {key: value for key, value in cparams.items() if key not in ("prepare_threshold", "options")}
    return lambda **extra: psycopg.connect(*cargs, **cparams, **extra, autocommit=True, connect_timeout=10)


def _parse_all(refs: Sequence[str]) -> list[EntityRef | ElementError]:
    out: list[EntityRef | ElementError] = []
    for ref in refs:
        try:
            out.append(parse(ref))
        except MalformedReference as exc:
            out.append(ElementError(ErrorKind.malformed, str(exc)))
    return out


def _parse_targets(refs: Sequence[str]) -> list[EntityRef | ElementError]:
    return [p if isinstance(p, ElementError) else _check_writable(p) for p in _parse_all(refs)]


def _target_or_error(parsed: EntityRef | ElementError, row: _Fields | None) -> Target | ElementError:
    if isinstance(parsed, ElementError):
        return parsed
    if row.project_id is None:
        return ElementError(ErrorKind.missing, f"{_text(parsed)}: no project '{parsed.project}' in Backlot")
    return Target(parsed, row.kind)


def _text(ref: EntityRef) -> str:
    return format_ref(ref.project, ref.asset, None if ref.tag == "latest" else ref.tag)


def _missing_error(ref: EntityRef, row: Row | _Fields) -> ElementError | None:
    """Why a reference finds no version (None: it does)."""
    if row.version_id is not None:
        return None
    if row.project_id is None:
        why = f"no project '{ref.project}' in Backlot"
    elif row.asset_id is None:
        why = f"project '{ref.project}' has no asset '{ref.asset}'"
    elif ref.tag == "latest" or row.latest_number == 0:
        why = f"asset {ref.project}/{ref.asset} has no versions yet"
    elif ref.tag == "approved":
        why = f"asset {ref.project}/{ref.asset} has no approved version"
    else:
        why = f"asset {ref.project}/{ref.asset} has no version {ref.tag} (latest is {row.latest_number})"
    return ElementError(ErrorKind.missing, f"{_text(ref)}: {why}")


def _check_writable(ref: EntityRef) -> EntityRef | ElementError:
    if ref.writable:
        return ref
    what = "versions are immutable" if ref.stable else "'approved' follows review, not publishing"
    return ElementError(ErrorKind.access, f"{_text(ref)} is read-only ({what}): publish to "
                                          f"{format_ref(ref.project, ref.asset)} to make a new version")


def _publish_kind(target: Target, kinds: Sequence[str]) -> str | ElementError:
    """The kind the published version's asset has or gets, from the target and the backlot:kind.* traits."""
    if len(set(kinds)) > 1:
        return ElementError(ErrorKind.invalid_hint, f"{target.working_ref}: the traits name several kinds "
                                                   f"({', '.join(sorted(set(kinds)))}); give one")
    if target.kind is not None:
        if kinds and kinds[0] != target.kind:
            return ElementError(ErrorKind.invalid_hint, f"{target.working_ref} is a {target.kind} asset, "
                                                       f"but the traits say {kinds[0]}")
        return target.kind
    if not kinds:
        return ElementError(ErrorKind.invalid_hint, f"{target.working_ref} does not exist yet: add a "
                                                   "backlot:kind.* trait to say what kind of asset it is")
    return kinds[0]


def _plan(target: Target, spec: PublishSpec, inputs: Sequence[VersionData | ElementError]) -> _PublishPlan | ElementError:
    kind = _publish_kind(target, spec.kinds)
    if isinstance(kind, ElementError):
        return ElementError(ErrorKind.invalid_data, kind.message)
    files = _local_files(target, spec.location)
    if isinstance(files, ElementError):
        return files
    pinned: list[tuple[str, int]] = []
    for (role, ref), found in zip(spec.inputs, inputs):
        if isinstance(found, ElementError):
            return ElementError(ErrorKind.invalid_data, f"{target.working_ref}: input {role}={ref} cannot be used: "
                                                        f"{found.message}")
        pinned.append((role, found.version_id))
    paths, names = files
    return _PublishPlan(target, spec, kind, paths, names, pinned)


def _local_files(target: Target, location: str | None) -> tuple[list[Path], list[str]] | ElementError:
    """The files a file:// location names: the file, or every file under the folder."""
    def bad(why: str) -> ElementError:
        return ElementError(ErrorKind.invalid_data, f"{target.working_ref}: {why}")

    if not location:
        return bad("the data has no LocatableContent location: give the file:// URL of the file or folder to publish")
    url = urlparse(location)
    if url.scheme != "file" or url.netloc not in ("", "localhost"):
        return bad(f"location {location!r} is not a local file:// URL")
    path = Path(unquote(url.path))
    if path.is_file():
        return [path], [path.name]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            return bad(f"folder {path} has no files to publish")
        return files, [p.relative_to(path).as_posix() for p in files]
    return bad(f"{path} does not exist: write the file before registering it")


def _publish_error(target: Target, exc: BacklotError) -> ElementError:
    kind = {NotFoundError: ErrorKind.missing, ConflictError: ErrorKind.access}.get(type(exc), ErrorKind.invalid_data)
    return ElementError(kind, f"{target.working_ref}: {exc}")


def _as_database_error(exc: DBAPIError) -> DatabaseError:
    translated = translate_db_error(exc)
    if isinstance(translated, DatabaseError):
        return translated
    return DatabaseError(f"the Backlot database failed: {getattr(exc, 'orig', exc)}")


def _edges(items: list[list[Any]] | None) -> tuple[Edge, ...]:
    return tuple(Edge(role, format_ref(project, asset, number)) for role, project, asset, number in items or ())


def _staleness(row: _Fields) -> Staleness:
    if row.stale_number is None:
        return Staleness(False)
    superseded_by = (format_ref(row.stale_project, row.stale_asset, row.stale_superseded_by)
                     if row.stale_superseded_by else None)
    return Staleness(True, format_ref(row.stale_project, row.stale_asset, row.stale_number), superseded_by,
                     row.stale_depth)


def _related_refs(request: RelationRequest, rows: Sequence[Row]) -> list[str]:
    hits = [(r.hit_project, r.hit_asset, r.hit_tag) for r in rows if r.hit_project is not None]
    if request.tag is None or request.relation not in (Relation.versions, Relation.stable_versions):
        return [format_ref(p, a, tag) for p, a, tag in hits]
    # One version, chosen by its tag: a meta-version stays one unless stable ones are asked for.
    first, ref = rows[0], parse(request.ref)
    numbers = {tag for _, _, tag in hits if tag.isdigit()}
    pointer = {"latest": first.latest_number, "approved": first.approved_number}.get(request.tag)
    if request.tag in ("latest", "approved"):
        if not pointer:
            return []
        tag = request.tag if request.relation is Relation.versions else pointer
        return [format_ref(ref.project, ref.asset, tag)]
    return [format_ref(ref.project, ref.asset, request.tag)] if request.tag in numbers else []


# File names repeat across versions (frames/0001.png, model.safetensors): quote each once.
_quote = functools.lru_cache(maxsize=8192)(quote)

_FRAME_RE = re.compile(r"^(.*?)(\d+)(\.[^./]+)$")


def _frame_sequence(files: Sequence[str]) -> tuple[str, int, int] | None:
    """(`name.{frame:04d}.png`, first, last) when every file is one frame of one sequence."""
    parts = [_FRAME_RE.match(f) for f in files]
    if not all(parts):
        return None
    shapes = {(m.group(1), len(m.group(2)), m.group(3)) for m in parts}  # type: ignore[union-attr]
    if len(shapes) != 1:
        return None
    prefix, width, suffix = shapes.pop()
    frames = [int(m.group(2)) for m in parts]  # type: ignore[union-attr]
    return f"{prefix}{{frame:0{width}d}}{suffix}", min(frames), max(frames)
