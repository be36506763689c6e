"""Benchmark: resolving through the OpenAssetIO plugin against a direct backlot.get_version loop.

    .venv/bin/python -m tests.benchmarks.bench_openassetio [--sizes 1,100,1000] [--assets 1000]

A temporary embedded PostgreSQL (or --database-url, an empty migrated database) holds
`--assets` concept-art assets with two versions each (v1 approved, v2 wip), published
through the `backlot` API. Batches of references mixing `?v=N`, `latest` and `approved` are
resolved for LocatableContent + Version through the whole OpenAssetIO stack (a host's
Manager, found by identifier: C++ core, Python plugin, one SQL statement, TraitsData
built per reference), and the same references are looked up one by one with
`backlot.get_version` in one session, which is what a script without the plugin does.
Per-reference cost is the median over repeated runs divided by the batch size; the ratio
is loop cost / plugin cost (above 1: the plugin is faster per reference).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openassetio.access import ResolveAccess
from openassetio.hostApi import HostInterface, ManagerFactory
from openassetio.log import ConsoleLogger, SeverityFilter
from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import backlot
from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres
from backlot.db.engine import session_scope

from backlot.integrations.openassetio import IDENTIFIER
from backlot.integrations.openassetio import traits as t

PROJECT = "bench"
TRAITS = {t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId}


class BenchHost(HostInterface):
    def identifier(self) -> str:
        return "org.backlot.bench"

    def displayName(self) -> str:
        return "Backlot benchmark"


def seed(url: str, store: backlot.Store, assets: int, src: Path) -> None:
    """`assets` concept-art assets, v1 approved and v2 wip, through the `backlot` API."""
    image = src / "art.png"
    image.write_bytes(b"\x89PNG benchmark")
    engine = create_engine(url)
    with session_scope(engine) as s:
        backlot.create_project(s, PROJECT)
        for n in range(assets):
            for status in ("approved", "wip"):
                backlot.publish_version(s, PROJECT, f"art/a{n:05d}", [image], kind="concept_art", status=status,
                                         store=store, actor="bench", new_version=True)  # same bytes: v2 on purpose
    engine.dispose()


def references(size: int, assets: int) -> list[tuple[str, str]]:
    """(plugin reference, pipeline reference) pairs over distinct assets, mixing selectors."""
    tags = ["1", "latest", "approved", "2"]
    out = []
    for i in range(size):
        asset, tag = f"art/a{i % assets:05d}", tags[i % len(tags)]
        out.append((f"backlot:///{PROJECT}/{asset}?v={tag}", f"{PROJECT}/{asset}@{tag}"))
    return out


def median_seconds(run, repeats: int) -> float:
    run()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_size(manager, session: Session, size: int, assets: int) -> dict:
    pairs = references(size, assets)
    refs = [manager.createEntityReference(p) for p, _ in pairs]
    context = manager.createContext()
    repeats = max(5, min(200, 2000 // size))

    def plugin() -> None:
        results = manager.resolve(refs, TRAITS, ResolveAccess.kRead, context)
        assert len(results) == size

    def loop() -> None:
        for _, ref in pairs:
            backlot.get_version(session, ref)

    plugin_s = median_seconds(plugin, repeats)
    loop_s = median_seconds(loop, max(3, repeats // 4))
    return {"size": size, "repeats": repeats, "plugin_us": plugin_s / size * 1e6, "loop_us": loop_s / size * 1e6}


def run(url: str, store_dir: Path, src: Path, sizes: list[int], assets: int) -> list[dict]:
    store = backlot.Store(str(store_dir))
    start = time.perf_counter()
    seed(url, store, assets, src)
    print(f"seeded {assets:,} assets x 2 versions in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    logger = SeverityFilter(ConsoleLogger())
    manager = ManagerFactory.createManagerForInterface(
        IDENTIFIER, BenchHost(), PythonPluginSystemManagerImplementationFactory(logger), logger)
    # Cache off: the runs repeat the same references, which the cache would answer from memory
    # (bench_openassetio_dcc measures the cache, warm and cold).
    manager.initialize({"database_url": url, "store_url": str(store_dir), "cache": "off"})
    engine = create_engine(url)
    with Session(engine) as session:
        results = [bench_size(manager, session, size, assets) for size in sizes]
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000", help="batch sizes, comma-separated")
    parser.add_argument("--assets", type=int, default=1000, help="assets to seed (two versions each)")
    parser.add_argument("--database-url", help="an empty, migrated database to use instead of a temporary one")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        server, url = None, args.database_url
        if not url:
            server = EmbeddedPostgres(Path(tmp) / "home", server_options="-c fsync=off -c synchronous_commit=off")
            url = server.start()
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        try:
            results = run(url, Path(tmp) / "store", Path(tmp), sizes, args.assets)
        finally:
            if server:
                server.stop()
    print(f"\nresolve LocatableContent + Version; per-reference cost (median of repeated runs)")
    print(f"{'batch':>6} {'runs':>5} {'plugin us/ref':>14} {'get_version us/ref':>19} {'loop/plugin':>12}")
    for r in results:
        print(f"{r['size']:>6,} {r['repeats']:>5} {r['plugin_us']:>14.1f} {r['loop_us']:>19.1f} "
              f"{r['loop_us'] / r['plugin_us']:>12.1f}")
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"plugin per-reference cost, batch {last['size']:,} / batch {first['size']:,}: "
              f"{last['plugin_us'] / first['plugin_us']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
