"""Benchmark: OpenAssetIO at the speed of a DCC, Backlot's plugin (with its cache) against BAL.

    .venv/bin/pip install openassetio-manager-bal    # benchmark only, not a Backlot dependency
    .venv/bin/python -m tests.benchmarks.bench_openassetio_dcc [--assets 20000] [--samples 1000] [--rounds 20]

One run, both managers side by side, on the data of bench_openassetio_bal (`--assets`
concept-art assets x 2 versions, v1 approved and v2 wip, bulk-loaded, ANALYZEd; BAL gets the
equivalent in-memory JSON library with the same locations and stable tags; both created by
identifier through the same host, resolving LocatableContent + Version):

1. single-reference resolve latency, median and p95 over `--samples` distinct references,
   each resolved alone (`manager.resolve([ref], ...)`), for ?v=N, latest and approved:
   warm (the reference was resolved before: Backlot's cache) and cold (Backlot's caches
   flushed before each sample, untimed: one prepared statement). BAL has no cache (a dict
   lookup in memory), so its one figure is both.
2. scene open: 1,000 distinct references (mixed tags), each resolved alone, one after the
   other: cold (a freshly flushed cache), warm (the scene opened again), and preloaded (a
   new manager with `preload = "project"`, once its background preload is done: what BAL
   does, which reads its whole library at initialize); total time.
3. the batch of `--assets` references (one call): cold (flushed before each run) and warm.
4. invalidation: another process resolves `?v=approved` of an asset in a loop (a host
   polling its scene, 1 ms apart); this one changes which version is approved and commits;
   measured from the commit's return to the first resolve in the other process that gives
   the new version (CLOCK_MONOTONIC, shared by processes on Linux), `--rounds` times.

Timings use perf_counter; nothing is asserted; ratios are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.bench_openassetio_bal import BAL_IDENTIFIER, PIP_HINT, bal_library, bulk_seed

SCENE = 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_each(resolve_one, refs, before=None) -> list[float]:
    """Seconds per single-reference resolve (each call timed alone; `before` runs untimed)."""
    out = []
    for ref in refs:
        if before is not None:
            before()
        start = time.perf_counter()
        resolve_one(ref)
        out.append(time.perf_counter() - start)
    return out


def watcher(url: str, store: str, ref: str, rounds: int) -> None:
    """The other process: resolve `ref` every millisecond; print (monotonic ns, stable tag) on each change."""
    from openassetio.access import ResolveAccess
    from openassetio.hostApi import ManagerFactory
    from openassetio.log import ConsoleLogger, SeverityFilter
    from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory

    from backlot.integrations.openassetio import IDENTIFIER
    from backlot.integrations.openassetio import traits as t
    from tests.benchmarks.bench_openassetio import TRAITS, BenchHost

    logger = SeverityFilter(ConsoleLogger())
    logger.setSeverity(logger.Severity.kError)
    manager = ManagerFactory.createManagerForInterface(
        IDENTIFIER, BenchHost(), PythonPluginSystemManagerImplementationFactory(logger), logger)
    manager.initialize({"database_url": url, "store_url": store})
    context = manager.createContext()
    entity = [manager.createEntityReference(ref)]
    last = None
    changes = 0
    print("ready", flush=True)
    while changes <= rounds:
        tag = t.VersionTrait_v1(manager.resolve(entity, TRAITS, ResolveAccess.kRead, context)[0]).getStableTag()
        if tag != last:
            print(f"{time.monotonic_ns()} {tag}", flush=True)
            last, changes = tag, changes + 1
        time.sleep(0.001)


def invalidation(url: str, store: str, rounds: int) -> list[float]:
    """Seconds from an approval's commit here to the changed resolve in another process."""
    import backlot
    from backlot.db.engine import session_scope
    from sqlalchemy import create_engine

    from tests.benchmarks.bench_openassetio import PROJECT

    asset = f"{PROJECT}/art/a00000"
    child = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_openassetio_dcc", "--watch", url, store,
                              f"backlot:///{asset}?v=approved", str(rounds)],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert child.stdout.readline().strip() == "ready"
    first = child.stdout.readline().split()  # the approved version as it starts: 1
    engine = create_engine(url)
    delays = []
    try:
        for n in range(rounds):
            # v2 approved (approved -> 2), then back to wip (approved -> 1), and so on.
            status = "approved" if n % 2 == 0 else "wip"
            with session_scope(engine) as s:
                backlot.set_status(s, f"{asset}@2", status, actor="bench")
            committed = time.monotonic_ns()
            seen_ns, tag = child.stdout.readline().split()
            assert tag == ("2" if status == "approved" else "1"), (first, tag)
            delays.append((int(seen_ns) - committed) / 1e9)
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
        engine.dispose()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=20000, help="assets = the batch size = BAL entities")
    parser.add_argument("--samples", type=int, default=1000, help="single-reference resolves per case")
    parser.add_argument("--rounds", type=int, default=20, help="approvals timed for invalidation")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the batch")
    parser.add_argument("--watch", nargs=4, help=argparse.SUPPRESS)  # the other process of the invalidation test
    args = parser.parse_args()
    if args.watch:
        url, store, ref, rounds = args.watch
        watcher(url, store, ref, int(rounds))
        return
    if importlib.util.find_spec("openassetio_manager_bal") is None:
        sys.exit(f"BAL (openassetio-manager-bal) is not installed; for this benchmark only, run:\n    {PIP_HINT}")

    from openassetio.access import ResolveAccess
    from openassetio.hostApi import ManagerFactory
    from openassetio.log import ConsoleLogger, SeverityFilter
    from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory
    from sqlalchemy import create_engine

    from backlot.db import migrate
    from backlot.db.embedded import EmbeddedPostgres

    from openassetio.hostApi import ManagerImplementationFactoryInterface

    from backlot.integrations.openassetio import IDENTIFIER, BacklotManagerPlugin
    from backlot.integrations.openassetio import traits as t
    from tests.benchmarks.bench_openassetio import PROJECT, TRAITS, BenchHost

    class _OneInterface(ManagerImplementationFactoryInterface):
        """Hands the host an interface we keep (to wait for its preload)."""

        def __init__(self, log, interface):
            super().__init__(log)
            self._interface = interface

        def identifiers(self):
            return [IDENTIFIER]

        def instantiate(self, identifier):
            return self._interface

    size, samples = args.assets, min(args.samples, args.assets)
    logger = SeverityFilter(ConsoleLogger())
    logger.setSeverity(logger.Severity.kError)
    factory = PythonPluginSystemManagerImplementationFactory(logger)

    def manager_for(identifier: str, settings: dict):
        manager = ManagerFactory.createManagerForInterface(identifier, BenchHost(), factory, logger)
        manager.initialize(settings)
        return manager

    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = EmbeddedPostgres(tmp / "home", server_options="-c fsync=off -c synchronous_commit=off")
        url = server.start()
        try:
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            bulk_seed(url, size)
            store = str(tmp / "store")
            backlot = manager_for(IDENTIFIER, {"database_url": url, "store_url": store})
            b_ctx = backlot.createContext()

            def b_resolve(refs):
                return backlot.resolve(refs, TRAITS, ResolveAccess.kRead, b_ctx)

            names = [f"{PROJECT}/art/a{i:05d}" for i in range(size)]
            per_version = [b_resolve([backlot.createEntityReference(f"backlot:///{n}?v={v}") for n in names])
                           for v in (1, 2)]
            urls = {n: (t.LocatableContentTrait_v1(a).getLocation(), t.LocatableContentTrait_v1(b).getLocation())
                    for n, a, b in zip(names, *per_version)}
            library = tmp / "bal_library.json"
            library.write_text(json.dumps(bal_library(urls)))
            bal = manager_for(BAL_IDENTIFIER, {"library_path": str(library), "simulated_query_latency_ms": 0})
            a_ctx = bal.createContext()

            def a_resolve(refs):
                return bal.resolve(refs, TRAITS, ResolveAccess.kRead, a_ctx)

            tags = [("1", "1"), ("latest", "latest"), ("approved", "1"), ("2", "2")]
            b_refs = [backlot.createEntityReference(f"backlot:///{n}?v={tags[i % 4][0]}") for i, n in enumerate(names)]
            a_refs = [bal.createEntityReference(f"bal:///{n}?v={tags[i % 4][1]}") for i, n in enumerate(names)]
            for b, a in zip(b_resolve(b_refs), a_resolve(a_refs)):  # checked: the same answers
                assert t.LocatableContentTrait_v1(b).getLocation() == t.LocatableContentTrait_v1(a).getLocation()
                assert t.VersionTrait_v1(b).getStableTag() == t.VersionTrait_v1(a).getStableTag()

            # 1. single-reference latency
            flush = backlot.flushCaches
            singles = {}
            for label, b_tag, a_tag in (("?v=N", "1", "1"), ("latest", "latest", "latest"), ("approved", "approved", "1")):
                picks = names[:samples]
                bs = [[backlot.createEntityReference(f"backlot:///{n}?v={b_tag}")] for n in picks]
                as_ = [[bal.createEntityReference(f"bal:///{n}?v={a_tag}")] for n in picks]
                time_each(a_resolve, as_[:50])  # warm-up of both code paths
                time_each(b_resolve, bs[:50], flush)
                cold = time_each(b_resolve, bs, flush)
                time_each(b_resolve, bs)  # fill the cache
                warm = time_each(b_resolve, bs)
                bal_t = time_each(a_resolve, as_)
                singles[label] = {"warm": warm, "cold": cold, "bal": bal_t}
            report["single"] = {label: {k: (statistics.median(v) * 1e6, pct(v, 0.95) * 1e6) for k, v in d.items()}
                                for label, d in singles.items()}

            # 2. scene open: SCENE distinct references, one call each
            scene_b = [[r] for r in b_refs[samples:samples + SCENE]] or [[r] for r in b_refs[:SCENE]]
            scene_a = [[r] for r in a_refs[samples:samples + SCENE]] or [[r] for r in a_refs[:SCENE]]
            flush()
            cold_s = sum(time_each(b_resolve, scene_b))
            warm_s = sum(time_each(b_resolve, scene_b))
            bal_s = sum(time_each(a_resolve, scene_a))
            start = time.perf_counter()
            interface = BacklotManagerPlugin.interface()
            preloaded = ManagerFactory.createManagerForInterface(IDENTIFIER, BenchHost(),
                                                                 _OneInterface(logger, interface), logger)
            preloaded.initialize({"database_url": url, "store_url": store, "project": PROJECT, "preload": "project"})
            interface.backend.preloaded.wait()
            preload_s = time.perf_counter() - start
            p_ctx = preloaded.createContext()
            pre_s = sum(time_each(lambda refs: preloaded.resolve(refs, TRAITS, ResolveAccess.kRead, p_ctx),
                                  [[preloaded.createEntityReference(r[0].toString())] for r in scene_b]))
            interface.backend.close()
            del preloaded
            report["scene"] = {"refs": len(scene_b), "cold": cold_s, "warm": warm_s, "bal": bal_s,
                               "preloaded": pre_s, "preload_s": preload_s}

            # 3. the whole batch, cold and warm, alternated with BAL
            batch = {"cold": [], "warm": [], "bal": []}
            for _ in range(args.repeats):
                flush()
                start = time.perf_counter()
                b_resolve(b_refs)
                batch["cold"].append(time.perf_counter() - start)
                start = time.perf_counter()
                b_resolve(b_refs)
                batch["warm"].append(time.perf_counter() - start)
                start = time.perf_counter()
                a_resolve(a_refs)
                batch["bal"].append(time.perf_counter() - start)
            report["batch"] = {k: statistics.median(v) for k, v in batch.items()}
            del backlot, bal

            # 4. invalidation across processes
            report["invalidation"] = invalidation(url, store, args.rounds)
        finally:
            server.stop()

    print(f"\nLocatableContent + Version; {size:,} assets x 2 versions; Backlot cache on; BAL in memory (0 ms latency)")
    print(f"\n1. single-reference resolve, {samples} distinct references each (us: median / p95)")
    print(f"{'reference':<10} {'Backlot warm':>16} {'Backlot cold':>16} {'BAL':>16} {'warm/BAL':>9} {'cold/BAL':>9}")
    for label, d in report["single"].items():
        (wm, wp), (cm, cp), (am, ap) = d["warm"], d["cold"], d["bal"]
        print(f"{label:<10} {wm:>7.1f} / {wp:>6.1f} {cm:>7.1f} / {cp:>6.1f} {am:>7.1f} / {ap:>6.1f} "
              f"{wm / am:>9.2f} {cm / am:>9.2f}")
    print("   goals: warm median <= BAL median; cold median <= 150 us")
    sc = report["scene"]
    print(f"\n2. scene open, {sc['refs']:,} distinct references one at a time (s): Backlot cold {sc['cold']:.3f}, "
          f"warm {sc['warm']:.3f}, preloaded {sc['preloaded']:.3f} (preload took {sc['preload_s']:.2f} s from "
          f"initialize); BAL {sc['bal']:.3f}; Backlot/BAL time: cold {sc['cold'] / sc['bal']:.2f}, "
          f"warm {sc['warm'] / sc['bal']:.2f}, preloaded {sc['preloaded'] / sc['bal']:.2f}  (goal <= 1.0)")
    ba = report["batch"]
    print(f"\n3. one batch of {size:,} (median of {args.repeats}, s): Backlot cold {ba['cold']:.3f}, "
          f"warm {ba['warm']:.3f}; BAL {ba['bal']:.3f}; Backlot/BAL refs/s: cold {ba['bal'] / ba['cold']:.2f}, "
          f"warm {ba['bal'] / ba['warm']:.2f}  (goal >= 3)")
    inv = report["invalidation"]
    print(f"\n4. approval commit -> changed `approved` resolve in another process, {len(inv)} approvals (ms): "
          f"median {statistics.median(inv) * 1e3:.1f}, p95 {pct(inv, 0.95) * 1e3:.1f}, max {max(inv) * 1e3:.1f}"
          f"  (goal < 1000)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
