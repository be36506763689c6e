"""Benchmark: Backlot's OpenAssetIO plugin against OpenAssetIO's reference manager BAL, one batch of 20,000.

    .venv/bin/pip install openassetio-manager-bal    # benchmark only, not a Backlot dependency
    .venv/bin/python -m tests.benchmarks.bench_openassetio_bal [--refs 20000] [--repeats 5]

A temporary embedded PostgreSQL (or --database-url, an empty migrated database; or --reuse DIR,
an embedded one kept in DIR between runs) holds `--refs` concept-art assets with two versions
each (v1 approved, v2 wip), each version with its own one-file content (`art.png`, a distinct
content hash), bulk-loaded with COPY and the tracker's set-based rebuild of its derived
columns (seconds; `--seed pipeline` publishes through the `backlot` API instead, ~2-3 min,
every version the same one file); then ANALYZE, as autovacuum would have done on a real
server. BAL (`org.openassetio.examples.manager.bal`, found through its entry point) gets an
equivalent JSON library in the same temp dir: one entity per asset, two
versions each, carrying the same LocatableContent location (the file:// URL Backlot resolves
for that version) and Version stable tag; `simulated_query_latency_ms` is 0, so BAL is a
pure in-memory lookup. Both managers are created the same way (ManagerFactory by identifier,
Python plugin system) and resolve LocatableContent + Version for one batch of `--refs`
references (one per asset, mixing ?v=1, ?v=latest, ?v=approved / its BAL equivalent ?v=1,
?v=2). After a checked warm-up (both must give the same location and stable tag for every
reference), the two are timed alternately; reported: median refs/s of each and Backlot/BAL.
Also reported: the batch's SQL statement alone (client-side, through the plugin's own fetch,
and the server's execution time from EXPLAIN ANALYZE); `--profile FILE` writes a cProfile of
one extra Backlot run.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import importlib.util
import io
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

PIP_HINT = ".venv/bin/pip install openassetio-manager-bal"
BAL_IDENTIFIER = "org.openassetio.examples.manager.bal"


def bal_library(urls: dict[str, tuple[str, str]]) -> dict:
    """A BAL library: each asset name -> versions [v1, v2] with location + Version stable tag."""
    loc, ver = "openassetio-mediacreation:content.LocatableContent", "openassetio-mediacreation:lifecycle.Version"
    return {
        "entities": {
            name: {"versions": [{"traits": {loc: {"location": url}, ver: {"stableTag": str(n)}}}
                                for n, url in enumerate(pair, start=1)]}
            for name, pair in urls.items()
        }
    }


def bulk_seed(url: str, assets: int) -> None:
    """`assets` concept-art assets (bench/art/aNNNNN), v1 approved and v2 wip, each version one
    file `art.png` with its own content hash; COPY with triggers off, then the tracker's rebuild
    of latest/approved numbers and lineage flags (what the triggers would have maintained)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from tests.benchmarks.bench_openassetio import PROJECT

    asset_rows, version_rows, file_rows = io.StringIO(), io.StringIO(), io.StringIO()
    vid = 0
    for n in range(1, assets + 1):
        asset_rows.write(f"{n}\t1\tart/a{n - 1:05d}\tconcept_art\n")
        for number, status in ((1, "approved"), (2, "wip")):
            vid += 1
            sha = hashlib.sha256(f"{n}/{number}".encode()).hexdigest()
            content = hashlib.sha256(json.dumps([["art.png", sha, 14]], separators=(",", ":")).encode()).hexdigest()
            version_rows.write(f"{vid}\t{n}\t1\t{number}\t{content}\timage/png\t{status}\tbench\n")
            file_rows.write(f"{vid}\tart.png\t{sha}\t14\n")
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        conn.execute("SET session_replication_role = replica")  # bulk load: no per-row triggers
        conn.execute("INSERT INTO projects (id, code, name) VALUES (1, %s, %s)", (PROJECT, PROJECT))
        for table, columns, buffer in (
            ("assets", "id, project_id, name, kind", asset_rows),
            ("versions", "id, asset_id, project_id, number, content_hash, media_type, status, created_by", version_rows),
            ("version_files", "version_id, path, sha256, size", file_rows),
        ):
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        conn.execute("SET session_replication_role = origin")
        for table in ("projects", "assets", "versions"):
            conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        conn.execute("SELECT backlot_rebuild_lineage_cache()")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def query_alone(backend, refs: list[str], repeats: int) -> tuple[float, float]:
    """(median s of the batch's statement through the backend's fetch, server execution ms)."""
    from backlot.integrations.openassetio import queries

    body = "\n".join(refs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = backend.fetch_located(body)
        times.append(time.perf_counter() - start)
        assert len(rows) == len(refs)
    with backend.engine.raw_connection() as raw:
        cur = raw.driver_connection.cursor()
        cur.execute("EXPLAIN (ANALYZE, TIMING OFF) " + queries.LOCATE, {"refs": body, "base": "file:///x/"})
        plan = "\n".join(r[0] for r in cur.fetchall())
    server_ms = float(re.search(r"Execution Time: ([0-9.]+) ms", plan).group(1))
    return statistics.median(times), server_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=20000, help="batch size = assets = BAL entities")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each manager")
    parser.add_argument("--database-url", help="an empty, migrated database to use instead of a temporary one")
    parser.add_argument("--reuse", metavar="DIR", help="keep the embedded database and store in DIR; seed only once")
    parser.add_argument("--seed", choices=("bulk", "pipeline"), default="bulk",
                        help="bulk: COPY (seconds); pipeline: backlot.publish_version per version (~2 min)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of one extra Backlot run to FILE")
    args = parser.parse_args()
    if importlib.util.find_spec("openassetio_manager_bal") is None:
        sys.exit(f"BAL (openassetio-manager-bal) is not installed; for this benchmark only, run:\n    {PIP_HINT}")

    from openassetio.access import ResolveAccess
    from openassetio.hostApi import ManagerFactory
    from openassetio.log import ConsoleLogger, SeverityFilter
    from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory
    from sqlalchemy import create_engine

    import backlot
    from backlot.db import migrate
    from backlot.db.embedded import EmbeddedPostgres

    from backlot.integrations.openassetio import IDENTIFIER
    from backlot.integrations.openassetio import traits as t
    from tests.benchmarks.bench_openassetio import PROJECT, TRAITS, BenchHost, seed

    size = args.refs
    logger = SeverityFilter(ConsoleLogger())
    logger.setSeverity(logger.Severity.kError)  # BAL's plugin-variable deprecation warning
    factory = PythonPluginSystemManagerImplementationFactory(logger)

    def manager_for(identifier: str, settings: dict):
        manager = ManagerFactory.createManagerForInterface(identifier, BenchHost(), factory, logger)
        manager.initialize(settings)
        return manager

    def resolve(manager, refs, context):
        return manager.resolve(refs, TRAITS, ResolveAccess.kRead, context)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(args.reuse) if args.reuse else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        marker = tmp / f"seeded-{args.seed}-{size}"
        server, url = None, args.database_url
        if not url:
            server = EmbeddedPostgres(tmp / "home", server_options="-c fsync=off -c synchronous_commit=off")
            url = server.start()
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        try:
            if marker.exists():
                print(f"reusing the {size:,} assets seeded in {tmp}", file=sys.stderr)
            else:
                if args.reuse and any(tmp.glob("seeded-*")):
                    sys.exit(f"{tmp} holds another seeding: use a fresh --reuse folder")
                start = time.perf_counter()
                if args.seed == "bulk":
                    bulk_seed(url, size)
                else:
                    seed(url, backlot.Store(str(tmp / "store")), size, tmp)
                print(f"seeded {size:,} assets x 2 versions ({args.seed}) in {time.perf_counter() - start:.1f}s",
                      file=sys.stderr)
                if args.reuse:
                    marker.touch()
            # Fresh planner statistics, as autovacuum would have by now on a real server.
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
            engine.dispose()
            # Cache off: every run reads the database (bench_openassetio_dcc measures the cache).
            backlot = manager_for(IDENTIFIER, {"database_url": url, "store_url": str(tmp / "store"), "cache": "off"})
            b_ctx = backlot.createContext()

            names = [f"{PROJECT}/art/a{i:05d}" for i in range(size)]
            urls = {}
            per_version = [resolve(backlot, [backlot.createEntityReference(f"backlot:///{n}?v={v}") for n in names], b_ctx)
                           for v in (1, 2)]
            for n, v1, v2 in zip(names, *per_version):
                urls[n] = (t.LocatableContentTrait_v1(v1).getLocation(), t.LocatableContentTrait_v1(v2).getLocation())
            library = tmp / "bal_library.json"
            library.write_text(json.dumps(bal_library(urls)))
            bal = manager_for(BAL_IDENTIFIER, {"library_path": str(library), "simulated_query_latency_ms": 0})
            bal_ctx = bal.createContext()

            # Same batch for both; BAL has no `approved`, its equivalent is the approved version (v1).
            tags = [("1", "1"), ("latest", "latest"), ("approved", "1"), ("2", "2")]
            b_refs = [backlot.createEntityReference(f"backlot:///{n}?v={tags[i % 4][0]}") for i, n in enumerate(names)]
            bal_refs = [bal.createEntityReference(f"bal:///{n}?v={tags[i % 4][1]}") for i, n in enumerate(names)]

            # Warm-up, checked: same location and stable tag for every reference.
            for b, a in zip(resolve(backlot, b_refs, b_ctx), resolve(bal, bal_refs, bal_ctx)):
                assert t.LocatableContentTrait_v1(b).getLocation() == t.LocatableContentTrait_v1(a).getLocation()
                assert t.VersionTrait_v1(b).getStableTag() == t.VersionTrait_v1(a).getStableTag()

            times: dict[str, list[float]] = {"backlot": [], "bal": []}
            for _ in range(args.repeats):
                for key, manager, refs, ctx in (("backlot", backlot, b_refs, b_ctx), ("bal", bal, bal_refs, bal_ctx)):
                    start = time.perf_counter()
                    results = resolve(manager, refs, ctx)
                    times[key].append(time.perf_counter() - start)
                    assert len(results) == size

            # The statement alone: the same batch through the backend's fetch (rows, no TraitsData).
            from backlot.integrations.openassetio.backend import Backend, PluginSettings
            backend = Backend(PluginSettings(database_url=url, store_url=str(tmp / "store")))
            strings = [r.toString() for r in b_refs]
            query_s, server_ms = query_alone(backend, strings, args.repeats)
            backend.close()

            if args.profile:
                profiler = cProfile.Profile()
                profiler.runcall(resolve, backlot, b_refs, b_ctx)
                profiler.dump_stats(args.profile)
                print(f"profile of one Backlot run written to {args.profile}", file=sys.stderr)
            del backlot
        finally:
            if server:
                server.stop()

    b_s, a_s = statistics.median(times["backlot"]), statistics.median(times["bal"])
    print(f"\nresolve LocatableContent + Version, one batch of {size:,} references "
          f"(median of {args.repeats} runs each, after a warm-up)")
    print(f"{'manager':<32} {'s/batch':>8} {'us/ref':>8} {'refs/s':>10}")
    print(f"{'Backlot (' + IDENTIFIER + ')':<32} {b_s:>8.3f} {b_s / size * 1e6:>8.1f} {size / b_s:>10,.0f}")
    print(f"{'BAL (in-memory JSON, 0 ms)':<32} {a_s:>8.3f} {a_s / size * 1e6:>8.1f} {size / a_s:>10,.0f}")
    print(f"ratio Backlot/BAL (refs/s): {a_s / b_s:.2f}  (goal >= 1.0, aim 1.5)")
    print(f"Backlot's SQL statement alone: {query_s:.3f} s/batch through the plugin's fetch "
          f"({query_s / b_s:.0%} of a resolve), server execution {server_ms:.0f} ms (EXPLAIN ANALYZE)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
