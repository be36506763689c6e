"""Fixtures for the HTTP API tests: one real uvicorn server on 127.0.0.1 for the session, against
its own migrated database; every test builds its own production (a fresh project code) so tests
never see each other's data.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import uvicorn

import backlot
from backlot import access
from backlot.config import Settings
from backlot.db.engine import _engine_for, session_scope
from backlot.storage import Store
from backlot.services.api import ApiSettings, create_app
from backlot.services.api.config import WebhookSettings
from tests.api.images import png
from tests.conftest import create_database, drop_database

DATA = Path(__file__).parent / "data"
ROLES = ("viewer", "artist", "supervisor", "admin")
UPLOAD_LIMIT = 4 << 20
# Distinct thumbnail colours, one per shot, so a screenshot shows which thumbnail is where.
COLOURS = {"sq010_sh0010": (220, 40, 40), "sq010_sh0020": (40, 200, 60), "sq010_sh0030": None,
           "sq010_sh0040": (40, 90, 230), "sq020_sh0010": (230, 200, 30)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    settings: ApiSettings
    app: object

    def client(self, token: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


def start_server(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return server, thread


@pytest.fixture(scope="session")
def api_db(template_url) -> Iterator[str]:
    url = create_database(template_url, "api")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def api_settings(api_db, tmp_path_factory) -> ApiSettings:
    home = tmp_path_factory.mktemp("api-home")
    backlot = Settings(home=home, database_url=api_db, store_url=str(home / "store"), user="api-tests")
    # Webhooks are delivered by explicit passes in their tests, not by a background thread here.
    return ApiSettings(backlot=backlot, max_upload_bytes=UPLOAD_LIMIT, webhooks=WebhookSettings(enabled=False))


@pytest.fixture(scope="session")
def live(api_settings) -> Iterator[LiveServer]:
    """A real uvicorn server in this process, on a free loopback port."""
    app = create_app(api_settings)
    port = free_port()
    server, thread = start_server(app, port)
    yield LiveServer(f"http://127.0.0.1:{port}", api_settings, app)
    server.should_exit = True
    thread.join(10)


@dataclass
class Production:
    """A small production made through the `backlot` API, with a token per role."""

    code: str
    tokens: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # "asset@N" -> id
    sha: dict[str, str] = field(default_factory=dict)  # file label -> sha256

    def vid(self, ref: str) -> int:
        return self.versions[ref]


def engine_for(settings: ApiSettings):
    return _engine_for(settings.backlot.database_url)


def build_production(settings: ApiSettings, work: Path) -> Production:
    """Concept art → adapter → four shots chained by continuity (one without a thumbnail), and a
    second sequence; then a new approved look for the art, which makes the adapter and shots stale."""
    code = "p" + uuid.uuid4().hex[:10]
    prod = Production(code)
    store = Store(settings.backlot.store_url)
    work.mkdir(parents=True, exist_ok=True)

    def file(name: str, content: bytes) -> Path:
        path = work / f"{uuid.uuid4().hex[:8]}-{name.replace('/', '_')}"
        path.write_bytes(content)
        return path

    def publish(s, asset, files: dict[str, bytes], **kw):
        names = list(files)
        record = backlot.publish_version(s, code, asset, [file(n, files[n]) for n in names], names=names,
                                          store=store, actor="tests", **kw)
        prod.versions[f"{asset}@{record.number}"] = record.id
        for f in record.files:
            prod.sha[f"{asset}@{record.number}/{f.path}"] = f.sha256
        return record

    with session_scope(engine_for(settings)) as s:
        backlot.create_project(s, code, fps="24", actor="tests")
        art = publish(s, "characters/mara", {"sheet.png": png(64, 36, (200, 80, 160))}, kind="concept_art",
                      status="approved")
        adapter = publish(s, "adapters/mara", {"lora.safetensors": b"weights" * 100}, kind="adapter",
                          inputs=[("training_data", art.ref)], status="approved", recipe={"rank": 8, "seed": 1})
        previous = None
        for shot, colour in COLOURS.items():
            sequence = shot.split("_")[0]
            backlot.create_shot(s, code, shot, sequence=sequence, frames=24, handles=4, actor="tests")
            files = {"frames/frame.1001.exr": b"EXR" + shot.encode()}
            if colour:
                files = {"thumbnail.png": png(160, 90, colour), "preview.mp4": (DATA / "preview.mp4").read_bytes(),
                         "frames/frame.1001.png": png(16, 9, (0, 0, 0))}
            inputs = [("adapter", adapter.ref), ("concept_art", art.ref)]
            if previous and sequence == "sq010":
                inputs.append(("continuity", previous))
            render = publish(s, f"shots/{shot}/main", files, kind="shot_render", shot=shot, inputs=inputs,
                             status="review")
            previous = render.ref
        # A second take of the first shot, so it has a history.
        publish(s, "shots/sq010_sh0010/main", {"thumbnail.png": png(160, 90, COLOURS["sq010_sh0010"]),
                                               "preview.mp4": (DATA / "preview.mp4").read_bytes()},
                inputs=[("adapter", adapter.ref), ("concept_art", art.ref),
                        ("regenerated_from", f"{code}/shots/sq010_sh0010/main@1")], status="review")
        # A file no other production has, to prove media by hash stays inside its project.
        publish(s, "refs/brief", {"brief.txt": f"brief for {code}".encode()}, kind="reference")
        new_look = publish(s, "characters/mara", {"sheet.png": png(64, 36, (90, 80, 220))})
        backlot.set_status(s, new_look.ref, "approved", actor="tests")
        for role in ROLES:
            prod.tokens[role] = access.create_token(s, code, role, name=f"{role}-bot", actor="tests").secret
    return prod


@pytest.fixture
def production(api_settings, tmp_path) -> Production:
    return build_production(api_settings, tmp_path / "files")


@pytest.fixture
def other(api_settings, tmp_path) -> Production:
    """A second production: what its tokens can reach must never include the first one's data."""
    return build_production(api_settings, tmp_path / "other-files")


def table_counts(settings: ApiSettings) -> dict[str, int]:
    """Row counts (and status mix) of every table a write could touch: 'nothing written' is checked with it."""
    from sqlalchemy import text

    tables = ["projects", "sequences", "shots", "assets", "versions", "version_files", "version_inputs", "recipes",
              "notes", "events", "api_tokens", "webhook_subscribers", "webhook_deliveries", "webhook_attempts", "art_rights"]
    with engine_for(settings).connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}
        counts["approved"] = conn.execute(text("SELECT count(*) FROM versions WHERE status = 'approved'")).scalar()
        counts["policies"] = conn.execute(text("SELECT string_agg(stale_policy::text, ',' ORDER BY id) FROM projects")).scalar()
        counts["active_subscribers"] = conn.execute(text("SELECT count(*) FROM webhook_subscribers WHERE active")).scalar()
    return counts
