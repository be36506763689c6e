"""A real Kitsu (Zou) server for the session, a Backlot production with shot renders, and a
TCP relay between them that a test can break (a server going away, an upload cut off)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image
from sqlalchemy.engine import make_url

import backlot
from tests.kitsu.zou_server import ADMIN_EMAIL, ADMIN_PASSWORD, ZouServer, ensure_venv, missing_requirements
from tests.worker.conftest import RedisServer

pytestmark = pytest.mark.kitsu


@pytest.fixture(scope="session")
def zou(pg_server):
    if reason := missing_requirements():
        pytest.skip(reason)
    ensure_venv()
    url = make_url(pg_server)
    database = f"zou_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    folder = Path(tempfile.mkdtemp(prefix="backlot-zou-"))
    redis = RedisServer(folder / "redis")
    (folder / "redis").mkdir()
    redis.start()
    server = ZouServer(folder / "zou", dict(host=url.host, port=url.port, user=url.username, password=url.password,
                                            database=database), redis.port)
    try:
        server.initialise()
        server.start()
        yield server
    finally:
        server.stop()
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)  # a short path of our own (socket paths), so ours to remove


@pytest.fixture
def kitsu_admin(zou):
    """Kitsu as a supervisor sees it (gazu, logged in as the admin)."""
    import gazu

    client = gazu.client.create_client(zou.url)
    gazu.log_in(ADMIN_EMAIL, ADMIN_PASSWORD, client=client)
    return client


@pytest.fixture
def login_env(monkeypatch):
    monkeypatch.setenv("BACKLOT_KITSU_PASSWORD", ADMIN_PASSWORD)


def _movie(folder: Path, seed: int) -> Path:
    from backlot.generation.encoder import encode_preview

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(6):
        path = folder / f"frame.{1001 + i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(path)
        frames.append(path)
    encode_preview(frames, folder / "preview.mp4", Fraction(24))
    return folder


@pytest.fixture
def production(db_url, tmp_path):
    """Project `film` (its Kitsu production gets a unique name), sequence sq010, three shots,
    one shot render each with a real MP4 preview; returns (project, production, refs)."""
    production = f"film-{uuid.uuid4().hex[:6]}"
    refs = []
    with backlot.session() as s:
        backlot.create_project(s, "film", name=production)
        for n, shot in enumerate(("sh0010", "sh0020", "sh0030")):
            backlot.create_shot(s, "film", shot, sequence="sq010", frames=24)
            media = _movie(tmp_path / shot, n)
            version = backlot.publish_version(
                s, "film", f"shots/{shot}/main", [media / "preview.mp4", media / "frame.1001.png"],
                kind="shot_render", shot=shot, names=["preview.mp4", "frames/frame.1001.png"])
            refs.append(version.ref)
    return "film", production, refs


class Relay:
    """Loopback TCP relay to Zou that can be stopped (the server "goes away") or set to cut
    off preview uploads after their request line (an upload that fails half-way)."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.port = None
        self.cut_uploads = False
        self._listener = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port or 0))
        self.port = self._listener.getsockname()[1]
        self._listener.listen(16)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener:
            self._listener.close()
            self._listener = None

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and (self.cut_uploads and b"/pictures/preview-files/" in data[:200]
                                    or self._listener is None):
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.fixture
def relay(zou):
    relay = Relay(zou.port)
    relay.start()
    yield relay
    relay.stop()
