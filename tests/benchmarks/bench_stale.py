"""Benchmark: the stale query at 100,000 and 1,000,000 versions.

    .venv/bin/python -m tests.benchmarks.bench_stale [--scales 100000,1000000] [--runs 50]

A synthetic production of sequences of 50 shots. Each sequence has a character
(concept art, 4 versions, the last approved) and an adapter trained on it (5 versions,
each on the art of its time, the last approved); every shot has 48 versions, each made
from the base model, the adapter and art of its time, its predecessor in the cut
(continuity) and its own previous version (regenerated_from): about 5 inputs a version.
The current versions are all fresh. Then one character gets a new approved version and
the stale query runs `--runs` times: median and p95 in ms, at each scale, and the ratio.

Side by side, the same answer from a naive recursive query (walk up from every current
version looking for a superseded input), which is what the cost would be without the
trigger-maintained live-input index.

Bulk loading uses COPY with triggers off (session_replication_role = replica), then the
set-based `backlot_rebuild_lineage_cache()`; the supersede itself goes through the normal
API and triggers. The server runs with fsync off to load faster; the query is read-only.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import backlot
from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres
from backlot.storage import Store

SHOTS_PER_SEQ = 50
SHOT_VERSIONS = 48
ART_VERSIONS = 4
ADAPTER_VERSIONS = 5
PER_SEQUENCE = ART_VERSIONS + ADAPTER_VERSIONS + SHOTS_PER_SEQ * SHOT_VERSIONS

NAIVE_SQL = text("""
WITH RECURSIVE current_versions AS (
    SELECT v.id FROM versions v JOIN assets a ON a.id = v.asset_id
    WHERE v.project_id = :p AND (v.number = a.latest_number OR v.number = a.approved_number)
), up(root, id) AS (
    SELECT c.id, vi.input_id FROM current_versions c
    JOIN version_inputs vi ON vi.version_id = c.id AND vi.role <> 'regenerated_from'
  UNION
    SELECT u.root, vi.input_id FROM up u
    JOIN version_inputs vi ON vi.version_id = u.id AND vi.role <> 'regenerated_from'
)
SELECT count(DISTINCT u.root) FROM up u JOIN versions iv ON iv.id = u.id JOIN assets ia ON ia.id = iv.asset_id
WHERE iv.number < ia.approved_number
""")


class Loader:
    """Builds the synthetic production as COPY text, assigning ids in creation order."""

    def __init__(self, sequences: int):
        self.sequences = sequences
        self.assets = io.StringIO()
        self.versions = io.StringIO()
        self.inputs = io.StringIO()
        self.next_asset = 0
        self.next_version = 0

    def asset(self, name: str, kind: str) -> int:
        self.next_asset += 1
        self.assets.write(f"{self.next_asset}\t1\t{name}\t{kind}\n")
        return self.next_asset

    def version(self, asset: int, number: int, status: str, inputs: list[tuple[int, str]]) -> int:
        self.next_version += 1
        vid = self.next_version
        self.versions.write(f"{vid}\t{asset}\t1\t{number}\t{vid:064x}\timage/png\t{status}\tbench\n")
        for input_id, role in inputs:
            self.inputs.write(f"{vid}\t{input_id}\t{role}\n")
        return vid

    def build(self) -> None:
        base = self.version(self.asset("models/base", "base_model"), 1, "approved", [])
        for seq in range(self.sequences):
            art_asset = self.asset(f"characters/c{seq:04d}", "concept_art")
            arts = [self.version(art_asset, n, "approved" if n == ART_VERSIONS else "wip", [])
                    for n in range(1, ART_VERSIONS + 1)]
            adapter_asset = self.asset(f"adapters/c{seq:04d}", "adapter")
            adapters = [self.version(adapter_asset, n, "approved" if n == ADAPTER_VERSIONS else "wip",
                                     [(arts[min(n, ART_VERSIONS) - 1], "training_data"), (base, "base_model")])
                        for n in range(1, ADAPTER_VERSIONS + 1)]
            shot_assets = [self.asset(f"shots/sq{seq:04d}_sh{s:04d}/main", "shot_render") for s in range(SHOTS_PER_SEQ)]
            previous_shot: list[int] = []
            for s, shot_asset in enumerate(shot_assets):
                mine = []
                for n in range(1, SHOT_VERSIONS + 1):
                    era = (n * ADAPTER_VERSIONS + SHOT_VERSIONS - 1) // SHOT_VERSIONS  # 1..5: whose tools it used
                    inputs = [(base, "base_model"), (adapters[era - 1], "adapter"),
                              (arts[min(era, ART_VERSIONS) - 1], "concept_art")]
                    if previous_shot:
                        inputs.append((previous_shot[n - 1], "continuity"))
                    if mine:
                        inputs.append((mine[-1], "regenerated_from"))
                    mine.append(self.version(shot_asset, n, "approved" if n == SHOT_VERSIONS else "wip", inputs))
                previous_shot = mine


def load(url: str, sequences: int) -> None:
    loader = Loader(sequences)
    loader.build()
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        conn.execute("SET session_replication_role = replica")  # bulk load: no per-row triggers
        conn.execute("INSERT INTO projects (id, code, name) VALUES (1, 'bench', 'bench')")
        for table, columns, buffer in (
            ("assets", "id, project_id, name, kind", loader.assets),
            ("versions", "id, asset_id, project_id, number, content_hash, media_type, status, created_by", loader.versions),
            ("version_inputs", "version_id, input_id, role", loader.inputs),
        ):
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        conn.execute("SET session_replication_role = origin")
        conn.execute("SELECT setval('assets_id_seq', (SELECT max(id) FROM assets))")
        conn.execute("SELECT setval('versions_id_seq', (SELECT max(id) FROM versions))")
        conn.execute("SELECT setval('projects_id_seq', 1)")
        conn.execute("SELECT backlot_rebuild_lineage_cache()")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_scale(server_url: str, versions: int, runs: int, naive_runs: int, store: Store, src: Path) -> dict:
    sequences = max(1, round(versions / PER_SEQUENCE))
    name = f"bench_{versions}"
    admin = make_url(server_url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate.upgrade(engine)
    started = time.perf_counter()
    load(url, sequences)
    load_s = time.perf_counter() - started
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM versions")).scalar()
        edges = conn.execute(text("SELECT count(*) FROM version_inputs")).scalar()

    art = src / f"new_look_{versions}.png"
    art.write_bytes(b"a new approved look")
    target = f"characters/c{sequences // 2:04d}"
    with Session(engine) as s, s.begin():
        assert backlot.find_stale_versions(s, "bench") == [], "the production starts fresh"
        started = time.perf_counter()
        version = backlot.publish_version(s, "bench", target, [art], store=store, actor="bench")
        backlot.set_status(s, version.ref, "approved", actor="bench")
        supersede_ms = (time.perf_counter() - started) * 1000

    timings = []
    with Session(engine) as s:
        for _ in range(runs + 3):
            started = time.perf_counter()
            stale = backlot.find_stale_versions(s, "bench")
            timings.append((time.perf_counter() - started) * 1000)
        s.rollback()
    timings = timings[3:]  # warm-up
    naive = []
    with engine.connect() as conn:
        for _ in range(naive_runs):
            started = time.perf_counter()
            naive_count = conn.execute(NAIVE_SQL, {"p": 1}).scalar()
            naive.append((time.perf_counter() - started) * 1000)
    assert naive_count == len(stale), f"naive query found {naive_count}, indexed {len(stale)}"
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return {"versions": total, "edges": edges, "stale": len(stale), "load_s": load_s, "supersede_ms": supersede_ms,
            "median": statistics.median(timings), "p95": percentile(timings, 0.95),
            "naive_median": statistics.median(naive) if naive else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="100000,1000000", help="version counts, comma-separated")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument("--database-url", help="a server to use instead of a temporary embedded one")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        url = args.database_url
        if not url:
            server = EmbeddedPostgres(Path(tmp) / "home",
                                      server_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                                                     "-c max_wal_size=4GB -c shared_buffers=512MB")
            url = server.start()
        try:
            store = Store(str(Path(tmp) / "store"))
            results = [run_scale(url, n, args.runs, args.naive_runs, store, Path(tmp)) for n in scales]
        finally:
            if server:
                server.stop()
    print(f"\nstale query after one concept-art version is superseded ({args.runs} runs, after 3 warm-up)")
    print(f"{'versions':>10} {'edges':>10} {'stale':>6} {'load s':>7} {'supersede ms':>13} "
          f"{'median ms':>10} {'p95 ms':>8} {'naive ms':>10} {'naive/indexed':>14}")
    for r in results:
        print(f"{r['versions']:>10,} {r['edges']:>10,} {r['stale']:>6} {r['load_s']:>7.1f} {r['supersede_ms']:>13.1f} "
              f"{r['median']:>10.2f} {r['p95']:>8.2f} {r['naive_median']:>10.1f} {r['naive_median'] / r['median']:>14.1f}")
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"ratio {last['versions']:,}/{first['versions']:,} versions: median {last['median'] / first['median']:.2f}, "
              f"p95 {last['p95'] / first['p95']:.2f}, naive {last['naive_median'] / first['naive_median']:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
