"""`backlot demo`: a small production built end to end with what Backlot does today.

It uses the tracker only: procedural concept art for two characters (SVG, made from a
seed), storyboard frames for an eight-shot sequence drawn from that art and chained for
continuity, then a new approved look for one character, and the stale set it causes.
Generation (adapters, rendered shots) joins the demo when that part of Backlot lands.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress

import pipeline
from services.cli.output import emit_table, out, user_errors
from services.cli.tracker_cmds import short

CHARACTERS = {"mara": "#c8553d", "ovid": "#2d7dd2"}
SHOTS = [f"sq010_sh{n:04d}" for n in range(10, 90, 10)]


def concept_art_svg(name: str, colour: str, seed: int) -> str:
    """A character sheet: the same seed draws the same picture."""
    rng = random.Random(f"{name}:{seed}")
    shapes = "".join(
        f'<circle cx="{rng.randint(40, 216)}" cy="{rng.randint(40, 216)}" r="{rng.randint(8, 40)}" '
        f'fill="{colour}" fill-opacity="{rng.uniform(0.3, 0.9):.2f}"/>'
        for _ in range(12)
    )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">'
            f'<rect width="256" height="256" fill="#f4f1de"/>{shapes}'
            f'<text x="8" y="248" font-size="14">{name} v{seed}</text></svg>\n')


def storyboard_svg(shot: str, characters: list[str], seed: int) -> str:
    rng = random.Random(f"{shot}:{seed}")
    figures = "".join(
        f'<rect x="{rng.randint(10, 400)}" y="{rng.randint(40, 160)}" width="60" height="100" '
        f'fill="{CHARACTERS[c]}"/>' for c in characters
    )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="480" height="270">'
            f'<rect width="480" height="270" fill="#3d405b"/>{figures}'
            f'<text x="8" y="262" fill="white" font-size="14">{shot}</text></svg>\n')


def _free_code(session, wanted: str) -> str:
    taken = {p.code for p in pipeline.list_projects(session)}
    code, n = wanted, 1
    while code in taken:
        n += 1
        code = f"{wanted}{n}"
    return code


def demo(project: Optional[str] = typer.Option(None, help="Project code (default: demo, demo2, ...).")) -> None:
    """Build a small production end to end and show its lineage and stale set."""
    with user_errors(), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with pipeline.session() as s:
            code = project or _free_code(s, "demo")
            pipeline.create_project(s, code, name="Backlot demo", fps="24")
        out.print(f"[bold]project {code}[/]")
        art = _publish_concept_art(code, work, seed=1)
        _publish_storyboards(code, work, art)
        with pipeline.session() as s:
            stale_before = pipeline.find_stale_versions(s, code)
        out.print(f"stale before the new look: {len(stale_before)}")
        new_art = _publish_concept_art(code, work, seed=2, only=["mara"])
        out.print(f"approved a new look for mara: {new_art['mara']}")
        with pipeline.session() as s:
            stale_after = pipeline.find_stale_versions(s, code)
            chain = pipeline.get_inputs(s, f"{code}/storyboards/{SHOTS[-1]}@latest", transitive=True)
        emit_table("Stale after the new look", ["version", "superseded input", "by", "path"],
                   [(short(r.ref), short(r.reason.input), short(r.reason.superseded_by),
                     " <- ".join(map(short, r.reason.path))) for r in stale_after])
        out.print(f"{SHOTS[-1]} depends on {len({e.input for e in chain})} upstream versions "
                  f"(continuity chain back to {SHOTS[0]})")
        out.print(f"done: `backlot stale {code}` and `backlot lineage {code}/storyboards/{SHOTS[-1]}@1` show more")


def _publish_concept_art(code: str, work: Path, seed: int, only: list[str] | None = None) -> dict[str, str]:
    refs = {}
    with pipeline.session() as s:
        for name, colour in CHARACTERS.items():
            if only and name not in only:
                continue
            path = work / f"{name}_v{seed}.svg"
            path.write_text(concept_art_svg(name, colour, seed))
            version = pipeline.publish_version(s, code, f"characters/{name}", [path], kind="concept_art",
                                               names=["sheet.svg"], metadata={"seed": seed})
            refs[name] = pipeline.set_status(s, version.ref, "approved", note="look signed off").ref
    return refs


def _publish_storyboards(code: str, work: Path, art: dict[str, str]) -> None:
    previous: str | None = None
    with Progress(transient=True) as progress, pipeline.session() as s:
        task = progress.add_task("storyboarding", total=len(SHOTS))
        for index, shot in enumerate(SHOTS):
            pipeline.create_shot(s, code, shot, sequence="sq010", frames=24 + 8 * index, handles=8)
            cast = ["mara", "ovid"] if index % 3 == 0 else [list(CHARACTERS)[index % 2]]
            path = work / f"{shot}.svg"
            path.write_text(storyboard_svg(shot, cast, seed=1))
            inputs = [("concept_art", art[c]) for c in cast] + ([("continuity", previous)] if previous else [])
            version = pipeline.publish_version(s, code, f"storyboards/{shot}", [path], kind="reference",
                                               names=["board.svg"], inputs=inputs, shot=shot,
                                               recipe={"drawn_by": "backlot.demo", "seed": 1, "cast": cast})
            previous = version.ref
            progress.advance(task)
