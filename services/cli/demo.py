"""`backlot demo`: the main job — a small production end to end, through a real worker.

On the embedded defaults (Backlot's own PostgreSQL, which is also the Celery broker):
a tiny base model; procedural concept art for two characters (v1, approved); an adapter
trained on it by the worker; the shipped cut of a ten-shot sequence imported; every shot
rendered by the worker in editorial order, each continuing from the one before; then a new
look for one character → a new adapter → the regeneration plan says which shots are stale
and why → the worker remakes them, in order → a conformed timeline and a before/after
contact sheet are written. Everything it makes is printed at the end.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn

import backlot
from backlot.services.cli.job_cmds import print_plan
from backlot.services.cli.output import err, out, user_errors

CUT_FILE = Path(__file__).parent / "demo_data" / "sq010_cut_v001.otio"
CHARACTERS = {"mara": (200, 85, 61), "ovid": (45, 125, 210)}
RENDER = {"prompt": "{shot}: mara and ovid in the square, dusk", "steps": 6, "seed": 11}


def concept_art(path: Path, name: str, seed: int) -> Path:
    """A character sheet drawn from a seed: the same seed draws the same picture."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{name}:{seed}")
    colour = CHARACTERS[name]
    if seed > 1:  # the new look: a warmer palette
        colour = tuple(min(255, c + 60) for c in colour[::-1])
    image = Image.new("RGB", (64, 64), (244, 241, 222))
    draw = ImageDraw.Draw(image)
    for _ in range(10):
        x, y, r = rng.randint(4, 60), rng.randint(4, 60), rng.randint(3, 14)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    image.save(path)
    return path


def demo(project: Optional[str] = typer.Option(None, help="Project code (default: demo, demo2, ...)."),
         output: Optional[Path] = typer.Option(None, help="Folder for the conformed cut and contact sheet.")) -> None:
    """Build a small production end to end through a real worker, and show what changed."""
    with user_errors():
        started = time.monotonic()
        with backlot.session() as s:
            code = project or _free_code(s, "demo")
        folder = (output or backlot.config.load_settings().home / "demo" / code).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        worker = _start_worker(folder / "worker.log")
        try:
            _run(code, folder)
        finally:
            _stop_worker(worker)
        out.print(f"done in {time.monotonic() - started:.0f}s")


def _run(code: str, folder: Path) -> None:
    from backlot import generation as gen
    from backlot.editorial import conform_cut, import_cut
    from backlot import provenance
    from backlot.config import load_settings

    with backlot.session() as s:
        backlot.create_project(s, code, name="Backlot demo", fps="24")
        # A demo has no reviewer: retrained adapters are approved as soon as they are trained.
        backlot.set_adapter_approval(s, code, "auto")
        # Every render the demo makes carries Content Credentials, signed by a local demo CA (docs/provenance.md).
        provenance.use_signer(s, code, provenance.init_signer(load_settings().home / "signers" / code,
                                                             organisation="Backlot demo", force=True).folder)
        base = gen.build_and_register_tiny(s, code)
        art = {name: _publish_art(s, code, name, folder, seed=1) for name in CHARACTERS}
        cut = import_cut(s, code, CUT_FILE, create_shots=True)
    out.print(f"[bold]project {code}[/]: tiny base model {base.ref}; concept art v1 approved; "
              f"cut imported ({len(cut.changes) if hasattr(cut, 'changes') else 'all'} shots)")
    adapter1 = _train(code, base.ref, list(art.values()), "adapters/cast", key="v1")
    shots = _render_all(code, base.ref, adapter1)
    before = _current_renders(code, shots)
    with backlot.session() as s:
        new_art = _publish_art(s, code, "mara", folder, seed=2)
    out.print(f"new look for mara approved: {new_art}")
    with backlot.session() as s:
        plan = backlot.plan_regeneration(s, code)
    print_plan(code, plan)
    out.print("adapter approval is [bold]auto[/] in this demo (`backlot project set-adapter-approval "
              f"{code} auto`): a retrained adapter is approved as soon as it is trained, so its shots follow at once")
    _regenerate(code)
    after = _current_renders(code, shots)
    with backlot.session() as s:
        conformed = conform_cut(s, code, folder / "sq010_conformed.otio", policy="latest")
        stale = backlot.find_stale_versions(s, code)
        left = backlot.plan_regeneration(s, code)
    sheet = _contact_sheet(before, after, folder / "contact_sheet.png")
    out.print(f"after regeneration: {len(stale)} stale version(s), {len(left)} item(s) left to regenerate")
    out.print(f"conformed cut:  {folder / 'sq010_conformed.otio'} ({len(getattr(conformed, 'clips', []) or [])} clips relinked)")
    out.print(f"contact sheet:  {sheet} (top: before, bottom: after)")
    out.print(f"worker log:     {folder / 'worker.log'}")
    out.print(f"store:          {backlot.config.load_settings().store_url}")
    out.print(f"look around:    backlot shot list {code} · backlot lineage {code}/shots/{shots[-1]}/main@latest · "
              f"backlot jobs --project {code} · backlot serve")


def _publish_art(s, code: str, name: str, folder: Path, seed: int) -> str:
    path = concept_art(folder / f"{name}_v{seed}.png", name, seed)
    version = backlot.publish_version(s, code, f"characters/{name}", [path], kind="concept_art", names=["sheet.png"],
                                       metadata={"seed": seed})
    return backlot.set_status(s, version.ref, "approved", note="look signed off").ref


def _train(code: str, base: str, art: list[str], name: str, key: str) -> str:
    from backlot.services.worker.submit import submit_training

    with backlot.session() as s:
        job = submit_training(s, code, name, art, base_model=base, captions=["mara and ovid"],
                              settings={"steps": 60, "lr": 1e-3, "seed": 3}, key=f"{code}:train:{key}")
    _dispatch()
    (done,) = _wait([job.id], f"training {name}")
    with backlot.session() as s:
        version = backlot.get_version(s, done.result_version_id)
        backlot.set_status(s, version.ref, "approved", note="adapter looks right")
    out.print(f"adapter {version.ref} trained by the worker (loss {version.recipe['eval_loss_before']:.3f} → "
              f"{version.recipe['eval_loss_after']:.3f}) and approved")
    return version.ref


def _render_all(code: str, base: str, adapter: str) -> list[str]:
    from backlot.services.worker.submit import submit_render

    with backlot.session() as s:
        shots = [shot.code for shot in backlot.list_shots(s, code)]
        chain, previous = [], None
        for shot in shots:
            settings = dict(RENDER, prompt=RENDER["prompt"].format(shot=shot))
            job = submit_render(s, code, shot, settings, base_model=base, adapters=[{"ref": adapter, "weight": 1.0}],
                                key=f"{code}:render:{shot}", depends_on=previous)
            chain.append(job)
            previous = job.id
    _dispatch()  # the first shot goes now; each next one when the one before it is done
    done = _wait([j.id for j in chain], f"rendering {len(shots)} shots in editorial order")
    with backlot.session() as s:
        for record in done:
            backlot.set_status(s, record.result_version_id, "approved", note="first pass approved")
    out.print(f"{len(shots)} shots rendered by the worker with continuity, and approved")
    return shots


def _regenerate(code: str) -> None:
    """One `regen run`: the adapter retrains on the new look, then the shots re-render in order."""
    from backlot.services.worker.app import create_app
    from backlot.services.worker.submit import regenerate

    result = regenerate(create_app(), code)
    done = _wait([j.id for j in result.jobs], f"regenerating {len(result.jobs)} stale versions")
    with backlot.session() as s:
        shots = [r for r in done if r.kind == "rerender"]
        for record in shots:
            backlot.set_status(s, record.result_version_id, "approved", note="new look approved")
        adapters = [backlot.get_version(s, r.result_version_id).ref for r in done if r.kind == "retrain_adapter"]
    out.print(f"regenerated by the worker: adapter {', '.join(adapters)} retrained on the new look, then "
              f"{len(shots)} shots re-rendered with it in editorial order (each with a regenerated_from input); "
              "shots approved")


def _current_renders(code: str, shots: list[str]) -> list[Path]:
    from backlot.generation.models import version_folder

    paths = []
    with backlot.session() as s:
        for shot in shots:
            version = backlot.get_version(s, f"{code}/shots/{shot}/main@latest")
            paths.append(version_folder(version) / "thumbnail.png")
    return paths


def _contact_sheet(before: list[Path], after: list[Path], path: Path) -> Path:
    from PIL import Image

    tiles = [Image.open(p).convert("RGB").resize((96, 96)) for p in before + after]
    columns = len(before)
    sheet = Image.new("RGB", (columns * 100 + 4, 2 * 100 + 4), (20, 20, 20))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, (4 + (index % columns) * 100, 4 + (index // columns) * 100))
    sheet.save(path)
    return path


def _dispatch() -> None:
    from backlot.services.worker.app import create_app
    from backlot.services.worker.dispatch import dispatch

    dispatch(create_app())


def _wait(ids: list[int], what: str, timeout: float = 900):
    from backlot import jobs

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  console=err, transient=True) as bar:
        task = bar.add_task(what, total=len(ids))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with backlot.session() as s:
                records = [jobs.get_job(s, i) for i in ids]
            bar.update(task, completed=sum(r.progress for r in records))
            if all(r.state in ("done", "failed", "cancelled") for r in records):
                failed = [r for r in records if r.state != "done"]
                if failed:
                    raise backlot.BacklotError(f"{what}: job {failed[0].id} {failed[0].state}: {failed[0].error}")
                return records
            time.sleep(0.3)
    raise backlot.BacklotError(f"{what} did not finish in {timeout:.0f}s; see `backlot jobs`")


def _start_worker(log: Path) -> subprocess.Popen:
    from backlot.services.worker.process import start_worker_process

    return start_worker_process(log, env=dict(os.environ, BACKLOT_DISPATCH_EVERY_S="1"))


def _stop_worker(worker: subprocess.Popen) -> None:
    from backlot.services.worker.process import stop_worker_process

    stop_worker_process(worker)


def _free_code(session, wanted: str) -> str:
    taken = {p.code for p in backlot.list_projects(session)}
    code, n = wanted, 1
    while code in taken:
        n += 1
        code = f"{wanted}{n}"
    return code
