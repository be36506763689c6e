"""Fixtures for the OpenAssetIO plugin tests: a seeded production, a host and its manager.

The manager is found the way a host finds it (OpenAssetIO's plugin system, by identifier)
and initialized with no settings, so it uses Backlot's own configuration: the test's
DATABASE_URL (a fresh database) and BACKLOT_STORE.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from openassetio.hostApi import HostInterface, Manager, ManagerFactory, ManagerImplementationFactoryInterface
from openassetio.log import ConsoleLogger, SeverityFilter
from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory
from sqlalchemy import event, func, select

import backlot
from backlot.config import load_settings
from backlot.db.models import Asset, Event, Version
from backlot.integrations.openassetio import IDENTIFIER, BacklotManagerPlugin
from backlot.integrations.openassetio.manager import BacklotManagerInterface

PROJECT = "film"
REF = f"backlot:///{PROJECT}"


class TestHost(HostInterface):
    """What a DCC implements to talk to a manager."""

    __test__ = False  # not a test class

    def identifier(self) -> str:
        return "org.backlot.tests.host"

    def displayName(self) -> str:
        return "Backlot tests"


def make_logger() -> SeverityFilter:
    logger = SeverityFilter(ConsoleLogger())
    logger.setSeverity(logger.Severity.kWarning)
    return logger


@dataclass(frozen=True)
class Production:
    """What `production` seeded (pipeline references)."""

    art_v1: str
    art_v2: str
    art_v3: str
    base_model: str
    adapter: str
    shot: str


@pytest.fixture
def production(db_url, files) -> Production:
    """characters/mara v1 (approved), v2, v3 (approved); base_models/tiny v1; adapters/mara v1 trained
    on mara v1 (so stale); a three-frame shot render made with the adapter and the art."""
    with backlot.session() as s:
        backlot.create_project(s, PROJECT, fps="24")
        backlot.create_shot(s, PROJECT, "sq010_sh0010", sequence="sq010", frames=3)
        art1 = backlot.publish_version(s, PROJECT, "characters/mara", [files("mara_v1.png")], kind="concept_art",
                                        status="approved")
        art2 = backlot.publish_version(s, PROJECT, "characters/mara", [files("mara_v2.png")], kind="concept_art")
        art3 = backlot.publish_version(s, PROJECT, "characters/mara", [files("mara_v3.png")], kind="concept_art",
                                        metadata={"look": "final", "tags": ["hero"]})
        backlot.set_status(s, art3.ref, "approved")
        tiny = backlot.publish_version(s, PROJECT, "base_models/tiny", [files("tiny/model.json")],
                                        kind="base_model", status="approved")
        lora = backlot.publish_version(
            s, PROJECT, "adapters/mara", [files("mara.safetensors")], kind="adapter",
            inputs=[("training_data", art1.ref), ("base_model", tiny.ref)], recipe={"rank": 8, "seed": 7})
        frames = [files(f"render/frames/{n:04d}.png", f"frame {n}") for n in (1001, 1002, 1003)]
        shot = backlot.publish_version(
            s, PROJECT, "shots/sq010_sh0010/main", frames, names=[f"frames/{p.name}" for p in frames],
            kind="shot_render", shot="sq010_sh0010", recipe={"steps": 4},
            inputs=[("adapter", lora.ref), ("concept_art", art1.ref), ("base_model", tiny.ref)])
    return Production(art1.ref, art2.ref, art3.ref, tiny.ref, lora.ref, shot.ref)


def written() -> tuple[int, int, int, int]:
    """(versions, assets, events, stored objects): what a failed publish must leave unchanged."""
    with backlot.session() as s:
        counts = [s.scalar(select(func.count()).select_from(table)) for table in (Version, Asset, Event)]
    return (*counts, backlot.Store(load_settings().store_url).count_objects())


def backlot_ref(pipeline_ref: str) -> str:
    """backlot:///film/characters/mara?v=1 for film/characters/mara@1."""
    base, _, tag = pipeline_ref.partition("@")
    return f"backlot:///{base}?v={tag}"


def find_manager(**factory_args) -> Manager:
    logger = make_logger()
    factory = PythonPluginSystemManagerImplementationFactory(logger, **factory_args)
    return ManagerFactory.createManagerForInterface(IDENTIFIER, TestHost(), factory, logger)


@pytest.fixture
def manager(production) -> Manager:
    """The host-side Manager, found by identifier and initialized with Backlot's own configuration."""
    found = find_manager()
    found.initialize({})
    return found


class _OneInterfaceFactory(ManagerImplementationFactoryInterface):
    """Hands the host a manager interface the test keeps a handle on (to watch its engine)."""

    def __init__(self, logger, interface: BacklotManagerInterface):
        super().__init__(logger)
        self._interface = interface

    def identifiers(self) -> list[str]:
        return [IDENTIFIER]

    def instantiate(self, identifier: str) -> BacklotManagerInterface:
        return self._interface


@pytest.fixture
def watched(production) -> tuple[Manager, BacklotManagerInterface]:
    """A manager and the interface behind it."""
    interface = BacklotManagerPlugin.interface()
    logger = make_logger()
    found = ManagerFactory.createManagerForInterface(IDENTIFIER, TestHost(), _OneInterfaceFactory(logger, interface),
                                                     logger)
    found.initialize({})
    yield found, interface
    interface.backend.close()


@dataclass
class Traffic:
    statements: list[str]
    round_trips: int = 0
    parses: int = 0  # statements the server had to parse (a prepared one is parsed once per connection)


@contextlib.contextmanager
def traffic(backend) -> Iterator[Traffic]:
    """Counts the SQL statements sent and the round trips on the wire (libpq trace: one
    ReadyForQuery from the server ends each exchange), on the pool's connections checked
    out meanwhile and on the backend's prepared small-batch connection."""
    engine = backend.engine
    seen = Traffic([])
    trace = tempfile.TemporaryFile("w+")
    prepared_trace = tempfile.TemporaryFile("w+")
    traced = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        seen.statements.append(statement)

    def on_checkout(dbapi_connection, record, proxy):
        dbapi_connection.pgconn.trace(trace.fileno())
        traced.append(dbapi_connection)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine.pool, "checkout", on_checkout)
    backend.prepared.trace(prepared_trace.fileno())
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine.pool, "checkout", on_checkout)
        for connection in traced:
            if not connection.closed:
                connection.pgconn.untrace()
        try:
            backend.prepared.trace(None)
        except Exception:  # noqa: BLE001 - the connection may be gone (a test that drops the database)
            pass
        trace.seek(0)
        prepared_trace.seek(0)
        wire, prepared_wire = trace.read(), prepared_trace.read()
        seen.round_trips = len(re.findall(r"\tReadyForQuery\t", wire + prepared_wire))
        # Each statement on the prepared connection is one Bind from the client (F).
        seen.statements += ["(prepared)"] * len(re.findall(r"(?:^|\t)F\t\d+\tBind\t", prepared_wire, re.M))
        seen.parses = len(re.findall(r"(?:^|\t)F\t\d+\tParse\t", wire + prepared_wire, re.M))
        trace.close()
        prepared_trace.close()
