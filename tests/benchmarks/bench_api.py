"""Benchmark: the HTTP API's contact sheet and stale routes under 16 concurrent clients.

    .venv/bin/python -m tests.benchmarks.bench_api [--requests 800] [--clients 16] [--max-seconds 90]

A production of 3,000 shots (60 sequences of 50) and about 100,000 versions, bulk-loaded with
COPY as in bench_stale: per sequence a character's concept art (4 versions) and its adapter
(5), and 33 versions of every shot, each made from the base model, the adapter and art of its
time, its predecessor in the cut and its own previous version; each shot version has a
thumbnail, a preview and a frame. Then one character gets a new approved look through the
API, which makes its adapter and its sequence's 50 shots stale.

`backlot serve` runs in its own process (uvicorn, one process); the clients are asyncio tasks
with keep-alive connections on loopback. Each route is timed three ways, side by side:
in-process (the same data through the Python API the route calls, no HTTP), over HTTP with
one client, and over HTTP with --clients clients at once (bounded by --requests and
--max-seconds). Last, the SQL statements one request runs (counted in-process on the app's
engine) for contact sheets of 50, 200 and 500 shots: constant, no N+1.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import backlot
from backlot import access
from backlot.config import Settings
from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres
from backlot.storage import Store

SEQUENCES, SHOTS_PER_SEQ, SHOT_VERSIONS, ART_VERSIONS, ADAPTER_VERSIONS = 60, 50, 33, 4, 5


class Loader:
    """The production as COPY text, ids assigned in creation order."""

    def __init__(self, sequences: int):
        self.sequences = sequences
        self.buffers = {name: io.StringIO() for name in ("sequences", "shots", "assets", "versions", "files", "inputs")}
        self.ids = {"asset": 0, "version": 0, "shot": 0, "sequence": 0}

    def next(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def asset(self, name: str, kind: str, shot: int | None = None) -> int:
        aid = self.next("asset")
        self.buffers["assets"].write(f"{aid}\t1\t{name}\t{kind}\t{shot if shot else chr(92) + 'N'}\n")
        return aid

    def version(self, asset: int, number: int, status: str, inputs: list[tuple[int, str]], shot: bool = False) -> int:
        vid = self.next("version")
        media = "multipart/mixed" if shot else "image/png"
        self.buffers["versions"].write(f"{vid}\t{asset}\t1\t{number}\t{vid:064x}\t{media}\t{status}\tbench\n")
        for input_id, role in inputs:
            self.buffers["inputs"].write(f"{vid}\t{input_id}\t{role}\n")
        if shot:
            for name, size in (("thumbnail.png", 4096), ("preview.mp4", 900_000), ("frames/frame.1001.png", 60_000)):
                self.buffers["files"].write(f"{vid}\t{name}\t{(vid * 7 + size):064x}\t{size}\n")
        return vid

    def build(self) -> None:
        base = self.version(self.asset("models/base", "base_model"), 1, "approved", [])
        order = 0
        for seq in range(self.sequences):
            seq_id = self.next("sequence")
            self.buffers["sequences"].write(f"{seq_id}\t1\tsq{seq:03d}0\n")
            art_asset = self.asset(f"characters/c{seq:04d}", "concept_art")
            arts = [self.version(art_asset, n, "approved" if n == ART_VERSIONS else "wip", [])
                    for n in range(1, ART_VERSIONS + 1)]
            adapter_asset = self.asset(f"adapters/c{seq:04d}", "adapter")
            adapters = [self.version(adapter_asset, n, "approved" if n == ADAPTER_VERSIONS else "wip",
                                     [(arts[min(n, ART_VERSIONS) - 1], "training_data"), (base, "base_model")])
                        for n in range(1, ADAPTER_VERSIONS + 1)]
            previous: list[int] = []
            for s in range(SHOTS_PER_SEQ):
                order += 1
                shot_id = self.next("shot")
                code = f"sq{seq:03d}0_sh{(s + 1) * 10:04d}"
                self.buffers["shots"].write(f"{shot_id}\t1\t{seq_id}\t{code}\t1001\t1048\t8\t{order}\n")
                shot_asset = self.asset(f"shots/{code}/main", "shot_render", shot_id)
                mine: list[int] = []
                for n in range(1, SHOT_VERSIONS + 1):
                    era = (n * ADAPTER_VERSIONS + SHOT_VERSIONS - 1) // SHOT_VERSIONS
                    inputs = [(base, "base_model"), (adapters[era - 1], "adapter"),
                              (arts[min(era, ART_VERSIONS) - 1], "concept_art")]
                    if previous:
                        inputs.append((previous[n - 1], "continuity"))
                    if mine:
                        inputs.append((mine[-1], "regenerated_from"))
                    status = "approved" if n == SHOT_VERSIONS else "wip"
                    mine.append(self.version(shot_asset, n, status, inputs, shot=True))
                previous = mine


def load(url: str, sequences: int) -> dict[str, int]:
    loader = Loader(sequences)
    loader.build()
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        conn.execute("SET session_replication_role = replica")  # bulk load: no per-row triggers
        conn.execute("INSERT INTO projects (id, code, name) VALUES (1, 'bench', 'bench')")
        for table, columns, key in (
            ("sequences", "id, project_id, code", "sequences"),
            ("shots", "id, project_id, sequence_id, code, cut_in, cut_out, handles, editorial_order", "shots"),
            ("assets", "id, project_id, name, kind, shot_id", "assets"),
            ("versions", "id, asset_id, project_id, number, content_hash, media_type, status, created_by", "versions"),
            ("version_files", "version_id, path, sha256, size", "files"),
            ("version_inputs", "version_id, input_id, role", "inputs"),
        ):
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(loader.buffers[key].getvalue())
        conn.execute("SET session_replication_role = origin")
        for table in ("projects", "sequences", "shots", "assets", "versions"):
            conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        conn.execute("SELECT backlot_rebuild_lineage_cache()")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("shots", "versions", "version_inputs", "version_files")}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(label: str, how: str, clients: int, timings: list[float], wall: float) -> dict:
    return {"route": label, "how": how, "clients": clients, "n": len(timings), "median": statistics.median(timings),
            "p95": percentile(timings, 0.95), "rps": len(timings) / wall}


def time_in_process(engine, label: str, call, runs: int) -> dict:
    timings = []
    started = time.perf_counter()
    with Session(engine) as s:
        for i in range(runs + 5):
            t0 = time.perf_counter()
            call(s)
            if i >= 5:  # warm-up
                timings.append((time.perf_counter() - t0) * 1000)
        s.rollback()
    return summary(label, "in-process", 1, timings, time.perf_counter() - started)


async def time_http(base: str, token: str, label: str, path: str, clients: int, total: int, max_s: float) -> dict:
    timings: list[float] = []
    issued = 0
    deadline = time.perf_counter() + max_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as client:
        for _ in range(clients):  # warm-up: open every connection
            (await client.get(path)).raise_for_status()

        async def worker():
            nonlocal issued
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                response = await client.get(path)
                timings.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return summary(label, "HTTP", clients, timings, wall)


def count_queries(settings: Settings, token: str, paths: dict[str, str]) -> dict[str, int]:
    """SQL statements per request, counted on the app's own engine (same code as the server)."""
    from backlot.services.api import ApiSettings, create_app
    from backlot.services.api.config import WebhookSettings

    app = create_app(ApiSettings(backlot=settings, webhooks=WebhookSettings(enabled=False)))
    counter = {"n": 0}
    event.listen(app.state.engine, "before_cursor_execute", lambda *a: counter.__setitem__("n", counter["n"] + 1))

    async def run() -> dict[str, int]:
        result = {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for label, path in paths.items():
                (await client.get(path)).raise_for_status()  # warm (pool pre-ping, first connect)
                counter["n"] = 0
                (await client.get(path)).raise_for_status()
                result[label] = counter["n"]
        return result

    counts = asyncio.run(run())
    app.state.engine.dispose()
    return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "serve", "--port", str(port), "--no-webhooks",
                               "--log-level", "warning"], env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("backlot serve did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="requests per route with all clients")
    parser.add_argument("--serial", type=int, default=200, help="requests per route in-process and with one client")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=90, help="time limit per route and mode")
    parser.add_argument("--sequences", type=int, default=SEQUENCES, help="of 50 shots each (60: 3,000 shots)")
    args = parser.parse_args()
    target = args.sequences // 2  # the sequence whose character gets a new look
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        server_pg = EmbeddedPostgres(home, server_options="-c fsync=off -c synchronous_commit=off "
                                                           "-c full_page_writes=off -c max_wal_size=4GB "
                                                           "-c shared_buffers=512MB -c max_connections=200")
        url = server_pg.start()
        api = None
        try:
            admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS bench_api WITH (FORCE)")
                conn.execute("CREATE DATABASE bench_api")
            url = make_url(url).set(database="bench_api").render_as_string(hide_password=False)
            engine = create_engine(url)
            migrate.upgrade(engine)
            started = time.perf_counter()
            sizes = load(url, args.sequences)
            load_s = time.perf_counter() - started
            settings = Settings(home=home, database_url=url, store_url=str(Path(tmp) / "store"), user="bench")
            art = Path(tmp) / "new_look.png"
            art.write_bytes(b"a new approved look")
            with Session(engine) as s, s.begin():
                new = backlot.publish_version(s, "bench", f"characters/c{target:04d}", [art],
                                               store=Store(settings.store_url), actor="bench")
                backlot.set_status(s, new.ref, "approved", actor="bench")
                token = access.create_token(s, "bench", "viewer", name="bench", actor="bench").secret
            sequence = f"sq{target:03d}0"
            with Session(engine) as s:
                stale = len(backlot.find_stale_versions(s, "bench"))

            from backlot.services.api import queries

            routes = {
                "contact sheet": (f"/review/bench/sequences/{sequence}",
                                  lambda s: queries.contact_sheet(s, "bench", 1, sequence, 200, 0)),
                "contact sheet (JSON)": (f"/api/projects/bench/contact-sheet?sequence={sequence}",
                                         lambda s: queries.contact_sheet(s, "bench", 1, sequence, 100, 0)),
                "stale": ("/api/projects/bench/stale", lambda s: backlot.find_stale_versions(s, "bench")),
            }
            results = [time_in_process(engine, label, call, args.serial) for label, (_, call) in routes.items()]
            queries_per_request = count_queries(settings, token, {
                "contact sheet, 1 sequence (50 shots)": f"/review/bench/sequences/{sequence}",
                "contact sheet JSON, 50 shots": "/api/projects/bench/contact-sheet?limit=50",
                "contact sheet JSON, 200 shots": "/api/projects/bench/contact-sheet?limit=200",
                "contact sheet JSON, 500 shots": "/api/projects/bench/contact-sheet?limit=500",
                "stale (51 stale versions)": "/api/projects/bench/stale",
            })
            env = os.environ | {"DATABASE_URL": url, "BACKLOT_HOME": str(home), "BACKLOT_STORE": settings.store_url}
            port = free_port()
            api = start_server(env, port)
            base = f"http://127.0.0.1:{port}"
            for label, (path, _) in routes.items():
                results.append(asyncio.run(time_http(base, token, label, path, 1, args.serial, args.max_seconds)))
                results.append(asyncio.run(time_http(base, token, label, path, args.clients, args.requests,
                                                     args.max_seconds)))
            engine.dispose()
        finally:
            if api is not None:
                api.terminate()
                api.wait(15)
            server_pg.stop()

    print(f"\nproduction: {sizes['shots']:,} shots, {sizes['versions']:,} versions, {sizes['version_inputs']:,} input "
          f"edges, {sizes['version_files']:,} files; loaded in {load_s:.1f} s; {stale} stale after one new look")
    print(f"\n{'route':<22} {'how':<11} {'clients':>7} {'requests':>8} {'median ms':>10} {'p95 ms':>8} {'req/s':>8} "
          f"{'median / in-process':>20}")
    base_median = {r["route"]: r["median"] for r in results if r["how"] == "in-process"}
    for r in sorted(results, key=lambda r: (list(routes).index(r["route"]), r["how"] != "in-process", r["clients"])):
        print(f"{r['route']:<22} {r['how']:<11} {r['clients']:>7} {r['n']:>8} {r['median']:>10.2f} {r['p95']:>8.2f} "
              f"{r['rps']:>8.1f} {r['median'] / base_median[r['route']]:>20.1f}")
    print("\nSQL statements per request (token check included):")
    for label, n in queries_per_request.items():
        print(f"  {label:<40} {n}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
