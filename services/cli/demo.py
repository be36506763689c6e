"""`backlot demo`: the main job — a small production end to end, through a real worker.

On the embedded defaults (Backlot's own PostgreSQL, which is also the Celery broker):
the learned stand-in base model (a small SD-family model trained on a procedural film
world, built once and cached under BACKLOT_HOME); the world's concept art for two characters
(a character sheet and the character in two scenes, v1, approved); one adapter per character trained on them by the
worker; the shipped cut of a ten-shot sequence imported; every shot rendered by the worker
in editorial order from its line of the script, each continuing from the one before, with
the continuity figures measured against renders without continuity; then a new costume for
one character → its adapter retrains → the regeneration plan says which shots are stale and
why → the worker remakes them, in order → which shots changed and why, a conformed timeline
and a before/after contact sheet. Everything it makes is printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn

import backlot
from backlot.services.cli.job_cmds import print_plan
from backlot.services.cli.output import emit_table, err, out, user_errors

CUT_FILE = Path(__file__).parent / "demo_data" / "sq010_cut_v001.otio"
CHARACTERS = ("mara", "ovid")
NEW_LOOK = "mara"  # the character whose costume changes
# The script: one scene of the stand-in's world per shot, in editorial order (None: nobody).
SCRIPT = {
    "sq010_sh0010": (None, "centre"), "sq010_sh0020": ("ovid", "right"), "sq010_sh0030": ("ovid", "centre"),
    "sq010_sh0040": ("mara", "left"), "sq010_sh0050": ("mara", "centre"), "sq010_sh0060": ("ovid", "right"),
    "sq010_sh0070": ("mara", "right"), "sq010_sh0080": ("ovid", "left"), "sq010_sh0090": ("mara", "left"),
    "sq010_sh0100": (None, "centre"),
}
SET, LIGHT = "square", "dusk"
# continuity_strength 0.3: a shot's first frame is its neighbour's last, lightly re-noised (1 of 6
# steps) toward its own prompt; the frames after it move on at frame_strength 0.5. Guidance 2:
# at 4 the stand-in's grain doubles (guidance amplifies where its two predictions disagree).
RENDER = {"steps": 6, "seed": 11, "guidance_scale": 2.0, "continuity_strength": 0.3}
# Rank 8 at lr 5e-4 paints the costume with the least change to the set and to other characters
# (at lr 1e-3 the whole picture turns green).
TRAIN = {"rank": 8, "steps": 300, "lr": 5e-4, "seed": 3}


def scene(shot: str):
    from backlot.generation.standin.world import Scene

    who, place = SCRIPT.get(shot, (None, "centre"))
    return Scene(who, SET, LIGHT, place)


def publish_concept_art(s, code: str, name: str, folder: Path, costume: bool = False) -> list[tuple[str, str]]:
    """The world's concept art for `name` (its sheet and it in two scenes; in its new costume when
    asked), published and approved: [(version ref, caption)]. Always the same pictures."""
    from PIL import Image

    from backlot.generation.standin import world

    published = []
    for label, picture, caption in world.concept_art(name, costume):
        path = folder / f"{name}_{label}{'_costume' if costume else ''}.png"
        Image.fromarray(picture).save(path)
        asset = f"characters/{name}" if label == "sheet" else f"characters/{name}_{label}"
        version = backlot.publish_version(s, code, asset, [path], kind="concept_art", names=[f"{label}.png"],
                                           metadata={"look": "new costume" if costume else "first look"})
        published.append((backlot.set_status(s, version.ref, "approved", note="look signed off").ref, caption))
    return published


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
    from backlot.editorial import conform_cut, import_cut

    base = _register_standin(code)
    with backlot.session() as s:
        art = {name: publish_concept_art(s, code, name, folder) for name in CHARACTERS}
        cut = import_cut(s, code, CUT_FILE, create_shots=True)
    out.print(f"[bold]project {code}[/]: learned stand-in base model {base}; concept art v1 approved; "
              f"cut imported ({len(cut.changes) if hasattr(cut, 'changes') else 'all'} shots)")
    adapters = {name: _train(code, base, art[name], f"adapters/{name}") for name in CHARACTERS}
    shots = _render_all(code, base, adapters)
    _report_continuity(code, base, adapters, shots)
    before = _current_renders(code, shots)
    with backlot.session() as s:
        new_art = publish_concept_art(s, code, NEW_LOOK, folder, costume=True)
    out.print(f"new costume for {NEW_LOOK} approved: {', '.join(ref for ref, _ in new_art)}")
    with backlot.session() as s:
        plan = backlot.plan_regeneration(s, code)
    print_plan(code, plan)
    out.print("adapter approval is [bold]auto[/] in this demo (`backlot project set-adapter-approval "
              f"{code} auto`): a retrained adapter is approved as soon as it is trained, so its shots follow at once")
    _regenerate(code)
    after = _current_renders(code, shots)
    _report_changes(code, shots, before, after, plan)
    with backlot.session() as s:
        conformed = conform_cut(s, code, folder / "sq010_conformed.otio", policy="latest")
        stale = backlot.find_stale_versions(s, code)
        left = backlot.plan_regeneration(s, code)
    sheet = _contact_sheet(before, after, folder / "contact_sheet.png")
    out.print(f"after regeneration: {len(stale)} stale version(s), {len(left)} item(s) left to regenerate")
    out.print(f"conformed cut:  {folder / 'sq010_conformed.otio'} ({len(getattr(conformed, 'clips', []) or [])} clips relinked)")
    out.print(f"contact sheet:  {sheet} (top: before, middle: after, bottom: where they differ)")
    out.print(f"worker log:     {folder / 'worker.log'}")
    out.print(f"store:          {backlot.config.load_settings().store_url}")
    out.print(f"look around:    backlot shot list {code} · backlot lineage {code}/shots/{shots[-1]}/main@latest · "
              f"backlot jobs --project {code} · backlot serve")


def _register_standin(code: str) -> str:
    """Build the learned stand-in (cached under BACKLOT_HOME after the first time) and register it."""
    from backlot import generation as gen
    from backlot import provenance
    from backlot.config import load_settings
    from backlot.generation.standin.learn import build_learned_pipeline

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        with err.status("building the learned stand-in base model (once; cached after)"):
            model = build_learned_pipeline(Path(tmp) / "standin", seed=0)
        with backlot.session() as s:
            backlot.create_project(s, code, name="Backlot demo", fps="24")
            # A demo has no reviewer: retrained adapters are approved as soon as they are trained.
            backlot.set_adapter_approval(s, code, "auto")
            # Every render the demo makes carries Content Credentials, signed by a local demo CA (docs/provenance.md).
            provenance.use_signer(s, code, provenance.init_signer(load_settings().home / "signers" / code,
                                                                 organisation="Backlot demo", force=True).folder)
            base = gen.register_model(s, code, "models/standin", model, metadata={"stand_in": "learned", "seed": 0})
    out.print(f"learned stand-in ready in {time.monotonic() - started:.0f}s")
    return base.ref


def _train(code: str, base: str, art: list[tuple[str, str]], name: str) -> str:
    from backlot.services.worker.submit import submit_training

    with backlot.session() as s:
        job = submit_training(s, code, name, [ref for ref, _ in art], base_model=base,
                              captions=[caption for _, caption in art], settings=TRAIN,
                              key=f"{code}:train:{name}")
    _dispatch()
    (done,) = _wait([job.id], f"training {name}")
    with backlot.session() as s:
        version = backlot.get_version(s, done.result_version_id)
        backlot.set_status(s, version.ref, "approved", note="adapter looks right")
    out.print(f"adapter {version.ref} trained by the worker (loss {version.recipe['eval_loss_before']:.3f} → "
              f"{version.recipe['eval_loss_after']:.3f}) and approved")
    return version.ref


def _shot_adapters(shot: str, adapters: dict[str, str]) -> list[dict]:
    who = scene(shot).character
    return [{"ref": adapters[who], "weight": 1.0}] if who in adapters else []


def _render_all(code: str, base: str, adapters: dict[str, str]) -> list[str]:
    from backlot.services.worker.submit import submit_render

    with backlot.session() as s:
        shots = [shot.code for shot in backlot.list_shots(s, code)]
        chain, previous = [], None
        for shot in shots:
            settings = dict(RENDER, prompt=scene(shot).caption)
            job = submit_render(s, code, shot, settings, base_model=base, adapters=_shot_adapters(shot, adapters),
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


def _report_continuity(code: str, base: str, adapters: dict[str, str], shots: list[str]) -> None:
    """Boundary and frame-to-frame differences of the renders, and the boundary each cut would
    have without continuity (the shot's first frame drawn from its prompt alone, same seed)."""
    from backlot import generation as gen
    from backlot.generation.continuity import frame_paths, mean_abs_difference, shot_continuity

    rows, joined, alone = [], [], []
    with backlot.session() as s, tempfile.TemporaryDirectory() as tmp:
        for index, shot in enumerate(shots):
            version = backlot.get_version(s, f"{code}/shots/{shot}/main@latest")
            figures = shot_continuity(s, version)
            without = None
            if figures.boundary is not None:
                settings = gen.RenderSettings(**dict(RENDER, prompt=scene(shot).caption))
                plan = gen.plan_render(s, code, shot, settings, base_model=base, frames=1, continuity=False,
                                       adapters=[gen.AdapterUse(a["ref"], a["weight"])
                                                 for a in _shot_adapters(shot, adapters)])
                files, _ = gen.render_frames(plan, Path(tmp) / shot)
                previous = backlot.get_version(s, figures.boundary_from)
                without = mean_abs_difference(frame_paths(previous)[-1], files[0])
                joined.append(figures.boundary)
                alone.append(without)
            rows.append((shot, scene(shot).caption, _figure(figures.boundary), _figure(without),
                         _figure(figures.within)))
    emit_table("Continuity (mean |difference| of 8-bit RGB, 0-255)",
               ["shot", "prompt", "cut: continuity", "cut: --no-continuity", "frame to frame"], rows)
    if joined:
        ratio = (sum(joined) / len(joined)) / (sum(alone) / len(alone))
        out.print(f"continuity: the mean difference at a cut is {sum(joined) / len(joined):.1f} with continuity and "
                  f"{sum(alone) / len(alone):.1f} without ({ratio:.2f}x); inside a shot, frame to frame, "
                  f"{_mean([r[4] for r in rows]):.1f}")


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _mean(values: list[str]) -> float:
    numbers = [float(v) for v in values if v != "–"]
    return sum(numbers) / len(numbers) if numbers else float("nan")


def _report_changes(code: str, shots: list[str], before: list[Path], after: list[Path], plan) -> None:
    """Which shots changed (their thumbnails, before against after) and why (the plan's reason)."""
    from backlot.generation.continuity import mean_abs_difference

    items = {item.shot: item for item in plan if getattr(item, "shot", None)}
    rows = []
    for shot, old, new in zip(shots, before, after):
        difference = mean_abs_difference(old, new)
        item = items.get(shot)
        if item is None:
            why = "not remade: nothing it uses changed"
        elif any(w.role == "adapter" for w in item.swaps):
            why = f"{scene(shot).character} is in it: uses the adapter retrained on the new costume"
        else:
            why = f"continues from the shot before it, which changed ({item.continuity.replace(f'{code}/', '')})"
            if difference < 0.05:  # frame after frame of img2img forgets where the shot started
                why += "; by its thumbnail frame the picture is the same again"
        rows.append((shot, scene(shot).caption, f"{difference:.1f}", "yes" if old != new else "no", why))
    emit_table("What changed (thumbnails, mean |difference| 0-255)", ["shot", "prompt", "difference", "remade", "why"],
               rows)


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
    """Before, after, and their difference (x3), one column per shot."""
    import numpy as np
    from PIL import Image

    old = [Image.open(p).convert("RGB").resize((96, 96), Image.NEAREST) for p in before]
    new = [Image.open(p).convert("RGB").resize((96, 96), Image.NEAREST) for p in after]
    diff = [Image.fromarray(np.clip(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)) * 3, 0, 255)
                            .astype(np.uint8)) for a, b in zip(old, new)]
    columns = len(before)
    sheet = Image.new("RGB", (columns * 100 + 4, 3 * 100 + 4), (20, 20, 20))
    for index, tile in enumerate(old + new + diff):
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
