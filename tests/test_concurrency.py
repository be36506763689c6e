"""Concurrent publishes on real PostgreSQL: numbers stay 1..n, no gaps, no duplicates, no lost files."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

import backlot
from backlot.storage import Store

pytestmark = pytest.mark.slow

WORKERS = 8
EACH = 25


def _publisher(worker: int, src: str, barrier) -> list[int]:
    numbers = []
    barrier.wait()  # start together, so the publishes really contend
    for i in range(EACH):
        path = Path(src) / f"w{worker}_{i}.png"
        path.write_bytes(f"frame from worker {worker}, publish {i}".encode())
        with backlot.session() as s:
            numbers.append(backlot.publish_version(s, "film", "shots/hot/main", [path], kind="shot_render",
                                                    metadata={"worker": worker, "i": i}).number)
    return numbers


def test_eight_processes_publishing_to_one_asset(db_url, tmp_path):
    with backlot.session() as s:
        backlot.create_project(s, "film")
    src = tmp_path / "src"
    src.mkdir()
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(WORKERS)
    with ctx.Pool(WORKERS) as pool:
        results = pool.starmap(_publisher, [(w, str(src), barrier) for w in range(WORKERS)])
    returned = sorted(n for numbers in results for n in numbers)
    assert returned == list(range(1, WORKERS * EACH + 1))

    with backlot.session() as s:
        versions = backlot.list_versions(s, "film", "shots/hot/main")
        assert [v.number for v in versions] == list(range(1, WORKERS * EACH + 1))
        assert backlot.get_asset(s, "film", "shots/hot/main").latest_number == WORKERS * EACH
    store = Store(os.environ["BACKLOT_STORE"])
    assert store.count_objects() == WORKERS * EACH
    for v in versions:
        with store.open_object(v.files[0].sha256) as handle:
            assert handle.read() == f"frame from worker {v.metadata['worker']}, publish {v.metadata['i']}".encode()
