"""Soak and faults: the rehearsal stack (tests/deploy/stack.py: PostgreSQL, redis-server, moto's
S3 server, worker hosts with their own homes and hostnames) under load for N minutes.

    .venv/bin/python -m tests.benchmarks.bench_soak [--minutes 5] [--publishers 8] [--clients 16] [--no-faults]

Load: `--publishers` processes publish small files with idempotency keys (four assets shared
by all, so version numbers are contended) and every tenth publish also submit a render job of
the tiny model; two worker hosts render; `--clients` threads (one process) read the HTTP API of
a `backlot serve` process: version lists, single versions and media. A third, idle worker host
(it consumes the `cpu` queue, which gets nothing) is watched for CPU while disconnected.

Faults (fractions of the run): Redis stopped and restarted at 25 % (down 10 s), PostgreSQL at
50 % (down 10 s), the S3 endpoint refused for 30 s at 70 %. A publisher whose call fails
retries the same publish (the same idempotency key) until it succeeds; the outcome must be
the same as without faults.

Checked and printed: throughput; versions numbered without gaps; each publish published
once and none lost; every submitted job done once (one version per job key); error responses
from the API outside the fault windows (none allowed) and inside them (reported); the
`kombu_message` table, the Redis queue and the job backlog bounded; each worker host back
(claiming a job) within a minute of each fault; the idle host under 5 % CPU during each
outage. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ASSETS = 4
RENDER_EVERY = 10
GRACE_S = 10  # after a fault ends, API errors are still counted as the fault's


# -- roles run in their own processes -----------------------------------------------------------

def run_publisher(index: int, until: float, out: Path, base_ref: str) -> None:
    import backlot
    from backlot.services.worker.app import create_app
    from backlot.services.worker.dispatch import dispatch
    from backlot.services.worker.submit import submit_render

    app = create_app()
    work = Path(tempfile.mkdtemp(prefix=f"soak-pub{index}-"))
    published, jobs_submitted, errors = [], [], []

    def retried(call):
        while True:  # the same call (same key) until it succeeds: an outage may hide a commit
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
                errors.append([time.time(), type(exc).__name__, str(exc).splitlines()[0][:160] if str(exc) else ""])
                time.sleep(1)

    n = 0
    while time.time() < until:
        key = f"soak:{index}:{n}"
        path = work / "data.bin"
        path.write_bytes(key.encode() + os.urandom(256))
        started = time.monotonic()

        def publish():
            with backlot.session() as s:
                v = backlot.publish_version(s, "soak", f"props/p{n % ASSETS}", [path], names=["data.bin"],
                                            kind="reference", idempotency_key=key)
                return v.id, v.number, v.asset
        vid, number, asset = retried(publish)
        published.append([key, vid, number, asset, time.monotonic() - started])
        if n % RENDER_EVERY == 0:
            job_key = f"soak-render:{index}:{n}"

            def submit():
                with backlot.session() as s:
                    return submit_render(s, "soak", f"s{index}", {"prompt": f"soak {n}", "steps": 2, "seed": n},
                                         base_model=base_ref, frames=2, continuity=False, key=job_key).id
            jobs_submitted.append([job_key, retried(submit)])
            try:
                dispatch(app)
            except Exception:  # noqa: BLE001 - broker down: the workers' dispatchers send it later
                pass
        n += 1
    out.write_text(json.dumps({"published": published, "jobs": jobs_submitted, "errors": errors}))


def run_clients(count: int, until: float, out: Path, base_url: str, token: str) -> None:
    import httpx

    results: list[list] = []  # [time, status or exception name, seconds, kind]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            while time.time() < until:
                t0 = time.monotonic()
                kind = "list"
                try:
                    page = http.get("/api/projects/soak/versions", params={"limit": 20})
                    status = page.status_code
                    items = page.json().get("items", []) if status == 200 else []
                    if items:
                        v = rng.choice(items)
                        kind, one = "version", http.get(f"/api/projects/soak/versions/{v['id']}")
                        status = one.status_code
                        if status == 200 and v.get("files"):
                            f = rng.choice(v["files"])
                            kind, media = "media", http.get(f"/api/projects/soak/media/{f['sha256']}")
                            status = media.status_code
                except Exception as exc:  # noqa: BLE001 - recorded as an error response
                    status = type(exc).__name__
                with lock:
                    results.append([time.time(), status, time.monotonic() - t0, kind])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.write_text(json.dumps(results))


# -- the orchestrator -----------------------------------------------------------------------------

class Sampler:
    """Every 2 s: the broker table, the Redis queue and the job backlog (skipped while a
    service is down)."""

    def __init__(self, stack):
        self.stack, self.samples, self._stop = stack, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import redis
        from sqlalchemy import text

        import backlot

        while not self._stop.wait(2):
            row = {"t": time.time()}
            try:
                with backlot.session() as s:
                    for table in ("kombu_message", "kombu_queue"):  # made by the database broker only
                        if s.execute(text(f"SELECT to_regclass('{table}')")).scalar() is not None:
                            row[table] = s.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                    row.update({f"jobs_{state}": n for state, n in s.execute(text(
                        "SELECT state::text, count(*) FROM jobs GROUP BY state"))})
            except Exception:  # noqa: BLE001 - database down
                pass
            try:
                row["redis_gpu"] = redis.Redis.from_url(self.stack.redis.url, socket_timeout=1).llen("gpu")
            except Exception:  # noqa: BLE001 - broker down
                pass
            self.samples.append(row)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join(10)

    def peak(self, name: str) -> int | str:
        seen = [s[name] for s in self.samples if name in s]
        return max(seen) if seen else "no table"


def outage(stack, name: str, down_s: float, idle) -> dict:
    """One fault: the service down for `down_s`; the idle host's CPU share meanwhile."""
    from tests.deploy.stack import cpu_seconds

    start = time.time()
    stop_service, start_service = {
        "redis": (stack.redis.stop, stack.redis.start),
        "postgres": (stack.pg.stop, lambda: stack.pg.start()),
        "s3": (stack.s3_server.stop, stack.s3_server.start),
    }[name]
    stop_service()
    time.sleep(min(3, down_s / 3))  # the loss noticed and the first retries made
    before, t0 = cpu_seconds(idle.pids()), time.monotonic()
    time.sleep(max(0.0, down_s - (time.time() - start)))
    cpu = (cpu_seconds(idle.pids()) - before) / (time.monotonic() - t0)
    start_service()
    return {"fault": name, "start": start, "end": time.time(), "idle_cpu": cpu}


def back_times(stack, faults: list[dict]) -> None:
    """Per fault and worker host: seconds from the fault's end to the host's next claimed job."""
    from sqlalchemy import select

    import backlot
    from backlot.db.jobs import Job

    with backlot.session() as s:
        claims = [(j.worker, j.started_at.timestamp()) for j in s.scalars(select(Job).where(Job.started_at.is_not(None)))]
    for fault in faults:
        fault["back"] = {}
        for host in stack.hosts:
            if host.queues != "gpu,cpu":
                continue
            after = [t for w, t in claims if host.signs(w) and t >= fault["end"]]
            fault["back"][host.name] = min(after) - fault["end"] if after else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--publishers", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--role", choices=["publisher", "clients"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arg", default="", help=argparse.SUPPRESS)
    parser.add_argument("--token", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        run_publisher(args.index, args.until, args.out, args.arg)
        return 0
    if args.role == "clients":
        run_clients(args.clients, args.until, args.out, args.arg, args.token)
        return 0
    return orchestrate(args)


def orchestrate(args) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import backlot
    from backlot import access
    from backlot import generation as gen
    from backlot.services.worker.process import stop_worker_process
    from tests.deploy.stack import NOT_INHERITED, build_stack, free_port, wait_for_port

    stack = build_stack(workers=2, pg_options="-c max_connections=300")
    idle = stack.add_host("idle-c")
    idle.queues = "cpu"
    for name in NOT_INHERITED:
        os.environ.pop(name, None)
    os.environ.update(stack.client_env())
    procs: list[subprocess.Popen] = []
    api = None
    try:
        tiny = gen.build_tiny_pipeline(stack.root / "tiny", seed=0)
        with backlot.session() as s:
            backlot.create_project(s, "soak")
            base = gen.register_model(s, "soak", "models/tiny", tiny)
            for i in range(args.publishers):
                backlot.create_shot(s, "soak", f"s{i}", sequence="sq010", frames=2)
            token = access.create_token(s, "soak", "viewer", name="soak", actor="soak").secret
        for host in stack.hosts:
            host.env["BACKLOT_WARM_MODEL"] = base.ref
            host.start()
        port = free_port()
        api = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "serve", "--port", str(port),
                                "--no-webhooks", "--log-level", "warning"], env=dict(os.environ),
                               stdout=open(stack.root / "api.log", "ab"), stderr=subprocess.STDOUT,
                               start_new_session=True)
        wait_for_port(port, timeout=120)
        stack.wait_ready()
        print(f"stack up in {stack.root}: PostgreSQL {stack.db_url.rsplit('@', 1)[-1]}, redis {stack.redis.url}, "
              f"S3 {stack.s3_server.endpoint}, hosts {[h.name for h in stack.hosts]} "
              f"(own hostnames: {all(h.own_name for h in stack.hosts)}), API :{port}", flush=True)

        began = time.time()
        until = began + args.minutes * 60
        me = [sys.executable, "-m", "tests.benchmarks.bench_soak", "--until", str(until)]
        outs = [stack.root / f"pub{i}.json" for i in range(args.publishers)]
        for i, out in enumerate(outs):
            procs.append(subprocess.Popen(me + ["--role", "publisher", "--index", str(i), "--out", str(out),
                                                "--arg", base.ref], env=dict(os.environ)))
        clients_out = stack.root / "clients.json"
        procs.append(subprocess.Popen(me + ["--role", "clients", "--clients", str(args.clients), "--out",
                                            str(clients_out), "--arg", f"http://127.0.0.1:{port}", "--token", token],
                                      env=dict(os.environ)))
        sampler = Sampler(stack)
        sampler.start()
        faults = []
        plan = [] if args.no_faults else [(0.25, "redis", 10), (0.5, "postgres", 10), (0.7, "s3", 30)]
        for fraction, name, down in plan:
            time.sleep(max(0.0, began + fraction * args.minutes * 60 - time.time()))
            print(f"  {time.time() - began:5.0f}s fault: {name} down {down}s", flush=True)
            faults.append(outage(stack, name, down, idle))
        for p in procs:
            p.wait(timeout=args.minutes * 60 + 600)
        ended = time.time()
        print(f"  {ended - began:5.0f}s load stopped; draining the job queue", flush=True)
        drained = drain(timeout=600)
        sampler.stop()
        back_times(stack, faults)
        return report(stack, args, began, ended, outs, clients_out, sampler, faults, drained)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if api is not None:
            stop_worker_process(api, timeout=10)
        print(f"(worker logs: {', '.join(str(h.log) for h in stack.hosts)} - removed now)")
        stack.close()


def drain(timeout: float) -> bool:
    from sqlalchemy import func, select

    import backlot
    from backlot.db.jobs import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with backlot.session() as s:
            left = s.scalar(select(func.count()).select_from(Job).where(
                Job.state.in_(["queued", "dispatched", "running"])))
        if left == 0:
            return True
        time.sleep(1)
    return False


def report(stack, args, began, ended, outs, clients_out, sampler, faults, drained) -> int:
    from sqlalchemy import select

    import backlot
    from backlot.db.jobs import Job
    from backlot.db.models import Asset, Version

    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            failures.append(what)

    pubs = [json.loads(o.read_text()) for o in outs]
    published = [p for r in pubs for p in r["published"]]
    submitted = [j for r in pubs for j in r["jobs"]]
    pub_errors = [e for r in pubs for e in r["errors"]]
    calls = json.loads(clients_out.read_text())
    seconds = ended - began
    with backlot.session() as s:
        rows = s.execute(select(Version.id, Version.number, Version.idempotency_key, Asset.name)
                         .join(Asset, Asset.id == Version.asset_id)).all()
        job_rows = list(s.scalars(select(Job)))
    print(f"\nsoak: {seconds / 60:.1f} min, {args.publishers} publishers, {args.clients} API clients, "
          f"{len([h for h in stack.hosts if h.queues == 'gpu,cpu'])} worker hosts (machine shared and loaded)")
    latencies = sorted(p[4] for p in published)
    print(f"  publishes: {len(published)} ({len(published) / seconds:.1f}/s; median {latencies[len(latencies) // 2]:.3f}s,"
          f" max {latencies[-1]:.1f}s incl. retries through faults); {len(pub_errors)} failed attempts retried")
    ok_calls = [c for c in calls if c[1] == 200]
    print(f"  API requests: {len(calls)} ({len(calls) / seconds:.1f}/s), by kind {dict(Counter(c[3] for c in calls))}")
    done_jobs = [j for j in job_rows if j.state.value == "done"]
    print(f"  render jobs: {len(submitted)} submitted, {len(done_jobs)} done "
          f"({len(done_jobs) / seconds * 60:.1f}/min), per host "
          f"{dict(Counter(next((h.name for h in stack.hosts if h.signs(j.worker)), '?') for j in done_jobs))}")

    by_asset: dict[str, list[int]] = {}
    for _, number, _, asset in rows:
        by_asset.setdefault(asset, []).append(number)
    check(all(sorted(n) == list(range(1, len(n) + 1)) for n in by_asset.values()),
          f"versions numbered without gaps ({len(rows)} versions, {len(by_asset)} assets)")
    keys = Counter(k for _, _, k, _ in rows if k and k.startswith("soak:"))
    check(set(keys) == {p[0] for p in published} and all(n == 1 for n in keys.values()),
          f"each of {len(published)} publishes stored once, none lost ({len(keys)} keys in the database)")
    by_key = {j.idempotency_key: j for j in job_rows}
    check(sorted(by_key) == sorted(k for k, _ in submitted) and len(job_rows) == len(submitted),
          f"each of {len(submitted)} submitted jobs recorded once")
    versions_by_key = Counter(k for _, _, k, _ in rows if k and k.startswith("job:"))
    check(drained and all(j.state.value == "done" for j in job_rows),
          f"every job done: {dict(Counter(j.state.value for j in job_rows))}"
          + "".join(f"; job {j.id}: {j.error}" for j in job_rows if j.state.value != "done")[:600])
    check(all(versions_by_key.get(f"job:{j.id}") == 1 for j in done_jobs) and
          all(j.attempts >= 1 for j in job_rows), "one version per job key")
    windows = [(f["start"], f["end"] + GRACE_S, f["fault"]) for f in faults]
    outside = [c for c in calls if c[1] != 200 and not any(a <= c[0] <= b for a, b, _ in windows)]
    for a, b, name in windows:
        inside = [c for c in calls if c[1] != 200 and a <= c[0] <= b]
        print(f"  API during {name} outage (+{GRACE_S}s): {len(inside)} error responses "
              f"{dict(Counter(str(c[1]) for c in inside))}")
    check(not outside, f"no API error outside fault windows ({len(outside)}: {dict(Counter(str(c[1]) for c in outside))})")
    check(len(ok_calls) > 0, f"API answered ({len(ok_calls)} of {len(calls)} requests 200)")
    peak_backlog = max((s.get("jobs_queued", 0) + s.get("jobs_dispatched", 0) for s in sampler.samples), default=0)
    kombu_peak = sampler.peak("kombu_message")
    check((kombu_peak == "no table" or kombu_peak <= len(submitted)) and sampler.peak("redis_gpu") <= len(submitted) + 10,
          f"queues bounded: kombu_message peak {sampler.peak('kombu_message')}, kombu_queue "
          f"{sampler.peak('kombu_queue')}, redis gpu list peak {sampler.peak('redis_gpu')}, job backlog peak {peak_backlog}")
    last = next((s for s in reversed(sampler.samples) if "jobs_done" in s or "redis_gpu" in s), {})
    check(last.get("redis_gpu") == 0 and last.get("kombu_message", 0) == 0,
          f"queues empty after the drain (redis gpu {last.get('redis_gpu')}, kombu_message {last.get('kombu_message')})")
    for f in faults:
        backs = f["back"]
        text = ", ".join(f"{h} {'-' if b is None else f'{b:.1f}s'}" for h, b in backs.items())
        check(all(b is not None and b < 60 for b in backs.values()), f"{f['fault']}: hosts claiming again within 60 s ({text})")
        check(f["idle_cpu"] < 0.05, f"{f['fault']}: idle disconnected host CPU {f['idle_cpu']:.1%} (< 5 %)")
    print(f"\n{'PASS' if not failures else f'{len(failures)} checks FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
