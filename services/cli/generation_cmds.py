"""Generation commands: model registry, adapter training, rendering, verification."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

import backlot
from backlot import generation as gen
from backlot.errors import InvalidInputError
from backlot.services.cli.output import EXIT_INTERRUPTED, emit_json, err, out, user_errors

model_app = typer.Typer(help="Base models: register local diffusers pipelines, or build the tiny stand-in.",
                        no_args_is_help=True)
adapter_app = typer.Typer(help="LoRA adapters trained on concept art.", no_args_is_help=True)

JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


def _progress(unit: str = "", quiet: bool = False) -> Progress:
    """A bar on stderr when it is a terminal: done/total UNIT and the time left; none when `quiet` (--json).
    Off a terminal it is disabled outright (a stopped Progress there prints an empty line)."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    TextColumn("{task.completed}/{task.total} " + unit), TimeRemainingColumn(), console=err,
                    transient=True, disable=quiet or not err.is_interactive)


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C: one line and exit 130, once the blocks inside have rolled back (nothing is published)
    and stopped their bar; the preview encoder helper ignores the terminal's SIGINT and is ended by us."""
    try:
        yield
    except KeyboardInterrupt:
        err.print("interrupted; nothing was published", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _done(version, json_: bool, what: str) -> None:
    if json_:
        emit_json(version.to_dict())
    else:
        out.print(f"{what} {version.ref}", markup=False)


@model_app.command("register")
def model_register(project: str, name: str, path: Path,
                   reference: bool = typer.Option(False, "--reference",
                                                  help="Leave the files where they are instead of copying them."),
                   json_: bool = JSON_OPT) -> None:
    """Register a local diffusers pipeline folder as a base_model version (its model family is
    detected from model_index.json and recorded)."""
    with user_errors(), err.status(f"hashing {path}"), backlot.session() as s:
        version = gen.register_model(s, project, name, path, copy=not reference)
    if json_:
        emit_json(version.to_dict())
    else:
        out.print(f"registered {version.ref} ({version.metadata.get('family')})", markup=False)


@model_app.command("tiny")
def model_tiny(project: str,
               name: Optional[str] = typer.Option(None, help="Asset name (default models/tiny for sd, "
                                                  "models/tiny_video for animatediff, models/tiny_FAMILY otherwise)."),
               seed: int = typer.Option(0, help="Weights seed: the same seed writes the same bytes."),
               family: Optional[str] = typer.Option(None, "--family",
                                                    help="Model family: sd (default), animatediff, sdxl, flux, wan, ltx."),
               video: bool = typer.Option(False, "--video", help="The AnimateDiff (video) variant: --family animatediff."),
               random_: bool = typer.Option(False, "--random",
                                            help="The sd stand-in with random weights (code paths only, pictures of noise)."),
               json_: bool = JSON_OPT) -> None:
    """Build a tiny stand-in base model offline and register it.

    By default the learned stand-in: a small sd model trained on a procedural film world
    (characters, sets, light), so renders show something; built once per seed (a few minutes
    on 2 cores) and cached in BACKLOT_HOME. With --family (or --random): that family's
    stand-in with seeded random weights, built in seconds."""
    with user_errors():
        if video and family not in (None, "animatediff"):
            raise InvalidInputError(f"--video is --family animatediff; it cannot be combined with --family {family}")
        chosen = "animatediff" if video else family or "sd"
        learned = family is None and not video and not random_
        what = "the learned stand-in (first build: a few minutes; cached after)" if learned else \
            f"the tiny {escape(chosen)} pipeline"
        with err.status(f"building {what}"), backlot.session() as s:
            version = gen.build_and_register_tiny(s, project, name, seed=seed, family=chosen, learned=learned)
    _done(version, json_, "registered")


@adapter_app.command("train")
def adapter_train(
    project: str,
    name: str,
    from_: List[str] = typer.Option(..., "--from", help="Concept-art version to train on, repeatable."),
    base: str = typer.Option(None, help="Base model version (default: PROJECT/models/tiny@approved)."),
    caption: List[str] = typer.Option([], help="One caption, or one per --from."),
    rank: int = typer.Option(4), steps: int = typer.Option(100), lr: float = typer.Option(1e-3),
    resolution: int = typer.Option(64), seed: int = typer.Option(0),
    override_clearance: Optional[str] = typer.Option(
        None, "--override-clearance", metavar="REASON",
        help="Train on art not cleared to train; the reason (and who) is recorded on the adapter."),
    json_: bool = JSON_OPT,
) -> None:
    """Train a LoRA on concept-art versions and publish it as an adapter version.

    Art whose consent to train is 'no' (or, where the project requires clearance, anything not
    'yes') is refused before the model loads, unless --override-clearance gives a reason."""
    settings = gen.TrainSettings(rank=rank, steps=steps, lr=lr, resolution=resolution, seed=seed)
    with _interruptible(), user_errors(), _progress("steps", quiet=json_) as bar, backlot.session() as s:
        task = bar.add_task(f"training {name}", total=steps)
        version = gen.train_adapter(s, project, name, from_, base_model=base or f"{project}/models/tiny@approved",
                                    captions=caption, settings=settings, clearance_override=override_clearance,
                                    progress=lambda step, loss: bar.update(task, completed=step,
                                                                           description=f"training {name} loss {loss:.4f}"))
    _done(version, json_, "trained")


def _parse_adapter(text: str) -> gen.AdapterUse:
    """PROJECT/ASSET@N[:WEIGHT] (references never contain ':')."""
    ref, sep, weight = text.partition(":")
    try:
        return gen.AdapterUse(ref, float(weight) if sep else 1.0)
    except ValueError:
        raise InvalidInputError(f"--adapter {text!r}: expected PROJECT/ASSET@N[:WEIGHT]") from None


def _parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise InvalidInputError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 64x64")
    return int(width), int(height)


def render(
    project: str,
    shot: str,
    prompt: str = typer.Option(..., help="What the shot shows."),
    adapter: List[str] = typer.Option([], help="PROJECT/ASSET@N[:WEIGHT], repeatable."),
    base: str = typer.Option(None, help="Base model version (default: PROJECT/models/tiny@approved)."),
    negative_prompt: str = typer.Option(""),
    seed: int = typer.Option(0), steps: int = typer.Option(8), guidance: float = typer.Option(5.0),
    size: str = typer.Option("64x64", help="WIDTHxHEIGHT."),
    frames: Optional[int] = typer.Option(None, help="Frame count (default: the shot's cut range with handles)."),
    no_continuity: bool = typer.Option(False, "--no-continuity", help="Do not continue from the previous shot."),
    output: str = typer.Option("main", help="Output name: the asset is shots/SHOT/OUTPUT."),
    json_: bool = JSON_OPT,
) -> None:
    """Render a shot (PNG frames, MP4 preview, thumbnail) and publish it as a shot_render version."""
    with _interruptible(), user_errors():
        width, height = _parse_size(size)
        settings = gen.RenderSettings(prompt=prompt, negative_prompt=negative_prompt, seed=seed, steps=steps,
                                      guidance_scale=guidance, width=width, height=height)
        with backlot.session() as s:
            plan = gen.plan_render(s, project, shot, settings, base_model=base or f"{project}/models/tiny@approved",
                                   adapters=[_parse_adapter(a) for a in adapter], frames=frames,
                                   continuity=not no_continuity, output=output)
            with _progress("frames", quiet=json_) as bar:
                task = bar.add_task(f"rendering {shot}", total=plan.frame_count)
                version = gen.publish_render(s, project, shot, plan, output=output,
                                             progress=lambda n: bar.update(task, completed=n))
    _done(version, json_, "rendered")


def verify(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"), json_: bool = JSON_OPT) -> None:
    """Re-render a version from its recipe in a fresh process and compare the bytes."""
    with user_errors(), err.status(f"re-rendering {ref}"), backlot.session() as s:
        result = gen.verify_version(s, ref)
    if json_:
        emit_json(result.__dict__)
    else:
        out.print(f"{result.ref}: {'identical' if result.identical else 'DIFFERENT'} ({result.detail})")
    if not result.identical:
        raise typer.Exit(1)


def rerender(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"), json_: bool = JSON_OPT) -> None:
    """A new version from the same recipe with current upstream (records regenerated_from)."""
    with user_errors(), backlot.session() as s, _progress() as bar:
        task = bar.add_task(f"re-rendering {ref}", total=None)
        version = gen.rerender_version(s, ref, progress=lambda n: bar.update(task, completed=n))
    _done(version, json_, "rendered")
