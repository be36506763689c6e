"""Benchmark: Backlot's OpenAssetIO plugin against OpenAssetIO's reference manager BAL, one batch of 20,000.

    .venv/bin/pip install openassetio-manager-bal    # benchmark only, not a Backlot dependency
    .venv/bin/python -m tests.benchmarks.bench_openassetio_bal [--refs 20000] [--repeats 5]

A temporary embedded PostgreSQL (or --database-url, an empty migrated database) holds
`--refs` concept-art assets with two versions each (v1 approved, v2 wip), published through
the pipeline API. BAL (`org.openassetio.examples.manager.bal`, found through its entry
point) gets an equivalent JSON library in the same temp dir: one entity per asset, two
versions each, carrying the same LocatableContent location (the file:// URL Backlot resolves
for that version) and Version stable tag; `simulated_query_latency_ms` is 0, so BAL is a
pure in-memory lookup. Both managers are created the same way (ManagerFactory by identifier,
Python plugin system) and resolve LocatableContent + Version for one batch of `--refs`
references (one per asset, mixing ?v=1, ?v=latest, ?v=approved / its BAL equivalent ?v=1,
?v=2). After a checked warm-up (both must give the same location and stable tag for every
reference), the two are timed alternately; reported: median refs/s of each and Backlot/BAL.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=20000, help="batch size = assets = BAL entities")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each manager")
    parser.add_argument("--database-url", help="an empty, migrated database to use instead of a temporary one")
    args = parser.parse_args()
    if importlib.util.find_spec("openassetio_manager_bal") is None:
        sys.exit(f"BAL (openassetio-manager-bal) is not installed; for this benchmark only, run:\n    {PIP_HINT}")

    from openassetio.access import ResolveAccess
    from openassetio.hostApi import ManagerFactory
    from openassetio.log import ConsoleLogger, SeverityFilter
    from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory
    from sqlalchemy import create_engine

    import pipeline
    from pipeline.db import migrate
    from pipeline.db.embedded import EmbeddedPostgres

    from integrations.openassetio import IDENTIFIER
    from integrations.openassetio import traits as t
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
        tmp = Path(tmp_name)
        server, url = None, args.database_url
        if not url:
            server = EmbeddedPostgres(tmp / "home", server_options="-c fsync=off -c synchronous_commit=off")
            url = server.start()
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        try:
            start = time.perf_counter()
            seed(url, pipeline.Store(str(tmp / "store")), size, tmp)
            print(f"seeded {size:,} assets x 2 versions in {time.perf_counter() - start:.1f}s", file=sys.stderr)
            backlot = manager_for(IDENTIFIER, {"database_url": url, "store_url": str(tmp / "store")})
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
    sys.stdout.flush()


if __name__ == "__main__":
    main()
