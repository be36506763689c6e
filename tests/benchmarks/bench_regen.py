"""Benchmark: regeneration planning and job writing at ~100,000 and ~300,000 versions.

    .venv/bin/python -m tests.benchmarks.bench_regen [--runs 7] [--sequences 60] [--shot-versions 33,100]

The production of bench_api (its `Loader` and `load()`, imported: 60 sequences of 50 shots,
a character's concept art and adapter per sequence, every shot with SHOT_VERSIONS versions
made from base model, adapter, art, continuity and its previous version), loaded twice into
fresh databases: with 33 versions per shot (~100k versions) and with 100 (~300k), the same
3,000 shots. The bulk loader writes no recipes, so every adapter version then gets a
`lora_training` recipe and every shot_render version a `shot_render` one (written with
triggers off, as the load), which makes them replayable.

Then, in the same database, two scenarios in turn:
  (a) one character gets a new approved look through the API: its adapter and its
      sequence's 50 shots are stale;
  (b) on top of (a), a new approved base model: every adapter and every shot is stale.
After each, `--runs` timed runs (after one warm-up) of what `regen run` does in one
transaction: `plan_regeneration(session, "bench")`, then `submit_regeneration(...)` writing
the plan's jobs. The transaction is rolled back and `jobs` vacuumed (outside the clock), so
every run starts from the same state, an empty jobs table; nothing is dispatched (no
broker). Printed: medians and p90 per scale, the plan's items by action, and the ratio
300k / 100k of each median (goal <= 1.3: the cost follows the affected set, not the
database). Goals: plan (a) under 100 ms, plan (b) under 2 s.

`--profile DIR` also writes a cProfile of one plan and one submit per scenario and scale.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import backlot
from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres
from backlot.services.worker.submit import submit_regeneration
from backlot.storage import Store
from backlot.tracker.versions import canonical_recipe
from tests.benchmarks import bench_api

ADAPTER_RECIPE = {"kind": "lora_training", "seed": 1234, "steps": 400, "rank": 8, "learning_rate": 1e-4}
SHOT_RECIPE = {"kind": "shot_render", "seed": 42, "steps": 25, "guidance": 7.0}
SERVER_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB "
                  "-c shared_buffers=512MB")


def plain(url: str, **parts) -> str:
    return make_url(url).set(drivername="postgresql", **parts).render_as_string(hide_password=False)


def add_recipes(url: str) -> dict[str, int]:
    """A replayable recipe on every adapter and shot_render version (versions are immutable:
    written with triggers off, like the bulk load)."""
    counts = {}
    with psycopg.connect(plain(url)) as conn:
        conn.execute("SET session_replication_role = replica")
        for kind, recipe in (("adapter", ADAPTER_RECIPE), ("shot_render", SHOT_RECIPE)):
            sha, body = canonical_recipe(recipe)
            recipe_id = conn.execute("INSERT INTO recipes (sha256, body) VALUES (%s, %s::jsonb) RETURNING id",
                                     (sha, psycopg.types.json.Jsonb(body))).fetchone()[0]
            counts[kind] = conn.execute(
                "UPDATE versions v SET recipe_id = %s FROM assets a WHERE a.id = v.asset_id AND a.kind = %s",
                (recipe_id, kind)).rowcount
        conn.execute("SET session_replication_role = origin")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE versions")
        conn.execute("VACUUM ANALYZE recipes")
    return counts


def approve_new(engine, store: Store, asset: str, path: Path) -> None:
    with Session(engine) as s, s.begin():
        new = backlot.publish_version(s, "bench", asset, [path], store=store, actor="bench")
        backlot.set_status(s, new.ref, "approved", actor="bench")


def vacuum_jobs(engine) -> None:
    """Drop the rolled-back job rows, so that each run inserts its idempotency keys into a clean index."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM jobs, job_dependencies")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(engine, runs: int, profile_to: Path | None) -> dict:
    """`runs` timed plan + submit transactions (after one warm-up), each rolled back."""
    plan_ms, submit_ms = [], []
    sizes = None
    for i in range(runs + 1):
        with Session(engine) as s:
            t0 = time.perf_counter()
            items = backlot.plan_regeneration(s, "bench")
            t1 = time.perf_counter()
            result = submit_regeneration(s, "bench", items, "bench-batch")
            t2 = time.perf_counter()
            s.rollback()
        vacuum_jobs(engine)
        if i == 0:  # warm-up
            actions = Counter(item.action for item in items)
            sizes = {"items": len(items), **{a: actions.get(a, 0) for a in ("retrain", "render", "manual")},
                     "blocked": sum(1 for item in items if item.blocked), "jobs": len(result.jobs),
                     "skipped": len(result.skipped), "kinds": dict(Counter(item.kind for item in items))}
            continue
        plan_ms.append((t1 - t0) * 1000)
        submit_ms.append((t2 - t1) * 1000)
    if profile_to is not None:
        with Session(engine) as s:
            profiler = cProfile.Profile()
            profiler.enable()
            items = backlot.plan_regeneration(s, "bench")
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.plan.prof")
            profiler = cProfile.Profile()
            profiler.enable()
            submit_regeneration(s, "bench", items, "bench-batch")
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.submit.prof")
            s.rollback()
        vacuum_jobs(engine)
    total_ms = [p + q for p, q in zip(plan_ms, submit_ms)]
    return {"sizes": sizes, **{name: {"median": statistics.median(v), "p90": percentile(v, 0.9)}
                               for name, v in (("plan", plan_ms), ("submit", submit_ms), ("total", total_ms))}}


def run_scale(server_url: str, tmp: Path, sequences: int, shot_versions: int, runs: int,
              profile: Path | None) -> dict:
    name = f"bench_regen_{shot_versions}"
    with psycopg.connect(plain(server_url, database="postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
        bench_api.SHOT_VERSIONS = shot_versions  # read by Loader.build
        started = time.perf_counter()
        counts = bench_api.load(url, sequences)
        recipes = add_recipes(url)
        load_s = time.perf_counter() - started
        store = Store(str(tmp / f"store_{shot_versions}"))
        target = sequences // 2
        look = tmp / "new_look.png"
        look.write_bytes(b"a new approved look")
        base = tmp / "new_base.safetensors"
        base.write_bytes(b"a new approved base model")
        results = {"counts": counts, "recipes": recipes, "load_s": load_s}
        for scenario, (asset, path) in (("a", (f"characters/c{target:04d}", look)), ("b", ("models/base", base))):
            approve_new(engine, store, asset, path)
            with Session(engine) as s:
                stale = len(backlot.find_stale_versions(s, "bench"))
            prof = profile / f"{scenario}_{shot_versions}" if profile else None
            results[scenario] = {"stale": stale, **measure(engine, runs, prof)}
            print(f"  {counts['versions']:,} versions, scenario ({scenario}): {stale} stale, "
                  f"plan {results[scenario]['plan']['median']:.1f} ms, "
                  f"submit {results[scenario]['submit']['median']:.1f} ms", file=sys.stderr, flush=True)
        return results
    finally:
        engine.dispose()
        with psycopg.connect(plain(server_url, database="postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per scenario and scale (after 1 warm-up)")
    parser.add_argument("--sequences", type=int, default=bench_api.SEQUENCES, help="of 50 shots each (60: 3,000)")
    parser.add_argument("--shot-versions", default="33,100", help="versions per shot: the small scale, the large")
    parser.add_argument("--profile", type=Path, help="write cProfile files of one plan and one submit here")
    args = parser.parse_args()
    scales = [int(x) for x in args.shot_versions.split(",")]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "home", server_options=SERVER_OPTIONS)
        url = server.start()
        try:
            for shot_versions in scales:
                print(f"loading {args.sequences * bench_api.SHOTS_PER_SEQ:,} shots x {shot_versions} versions...",
                      file=sys.stderr, flush=True)
                results[shot_versions] = run_scale(url, Path(tmp), args.sequences, shot_versions, args.runs,
                                                   args.profile)
        finally:
            server.stop()

    small, large = results[scales[0]], results[scales[-1]]
    print()
    for sv in scales:
        r = results[sv]
        c = r["counts"]
        print(f"{sv} versions/shot: {c['shots']:,} shots, {c['versions']:,} versions, {c['version_inputs']:,} input "
              f"edges; recipes on {r['recipes']['adapter']:,} adapter + {r['recipes']['shot_render']:,} shot versions; "
              f"loaded in {r['load_s']:.1f} s")
    print("\nplan sizes (items by action; blocked; jobs written; stale versions):")
    for scenario in ("a", "b"):
        for sv in scales:
            z = results[sv][scenario]["sizes"]
            print(f"  ({scenario}) {results[sv]['counts']['versions']:>9,} versions: {z['items']:>5} items = "
                  f"{z['retrain']} retrain + {z['render']} render + {z['manual']} manual; {z['blocked']} blocked; "
                  f"{z['jobs']} jobs; {results[sv][scenario]['stale']} stale; kinds {z['kinds']}")
    lv, sv_ = large["counts"]["versions"], small["counts"]["versions"]
    head = f"{'measure':<34} {'median ' + format(sv_, ','):>17} {'p90':>9} {'median ' + format(lv, ','):>17} " \
           f"{'p90':>9} {'ratio':>6}  goal"
    print(f"\n{head}\n{'-' * len(head)}")
    goals = {("a", "plan"): "< 100 ms", ("b", "plan"): "< 2,000 ms"}
    labels = {"plan": "plan_regeneration", "submit": "submit_regeneration (jobs)", "total": "plan + submit (regen run)"}
    for scenario in ("a", "b"):
        for measure_name in ("plan", "submit", "total"):
            s, big = small[scenario][measure_name], large[scenario][measure_name]
            print(f"{'(' + scenario + ') ' + labels[measure_name]:<34} {s['median']:>17.1f} {s['p90']:>9.1f} "
                  f"{big['median']:>17.1f} {big['p90']:>9.1f} {big['median'] / s['median']:>6.2f}  "
                  f"{goals.get((scenario, measure_name), '')}")
    print(f"\n(ms; {args.runs} runs after 1 warm-up, each a transaction rolled back; ratio = median at "
          f"{lv:,} / median at {sv_:,}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
