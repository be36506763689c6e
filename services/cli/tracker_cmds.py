"""Tracker commands: projects, shots, assets, publish, versions, review, lineage, stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

import backlot
from backlot.errors import InvalidInputError
from backlot.lineage.graph import parse_roles
from backlot.services.cli.output import emit_json, emit_table, err, escape, out, user_errors

project_app = typer.Typer(help="Projects (films).", no_args_is_help=True)
shot_app = typer.Typer(help="Shots and sequences.", no_args_is_help=True)

JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


# -- projects ------------------------------------------------------------------------------


@project_app.command("create")
def project_create(
    code: str,
    fps: str = typer.Option("24", help="Frame rate, exact: 24, 25, 24000/1001."),
    name: Optional[str] = typer.Option(None, help="Display name (default: the code)."),
    width: int = typer.Option(1920, min=1),
    height: int = typer.Option(1080, min=1),
    stale_policy: str = typer.Option("approved", help="What supersedes an input: 'approved' or 'latest'."),
    json_: bool = JSON_OPT,
) -> None:
    """Create a project."""
    with user_errors(), backlot.session() as s:
        project = backlot.create_project(s, code, name=name, fps=fps, width=width, height=height,
                                          stale_policy=stale_policy)
    if json_:
        emit_json(project.to_dict())
    else:
        out.print(f"created project {project.code} ({project.fps} fps, {project.width}x{project.height})",
                  markup=False)


@project_app.command("list")
def project_list(json_: bool = JSON_OPT) -> None:
    """List projects."""
    with user_errors(), backlot.session() as s:
        projects = backlot.list_projects(s)
    if json_:
        emit_json([p.to_dict() for p in projects])
        return
    emit_table("Projects", ["code", "name", "fps", "resolution", "stale policy", "adapter approval"],
               [(p.code, p.name, p.fps, f"{p.width}x{p.height}", p.stale_policy, p.adapter_approval)
                for p in projects])


@project_app.command("set-policy")
def project_set_policy(code: str, policy: str = typer.Argument(..., help="'approved' or 'latest'.")) -> None:
    """Choose what supersedes an input: a newer approved version, or any newer one."""
    with user_errors(), backlot.session() as s:
        backlot.set_stale_policy(s, code, policy)
    out.print(f"{code}: stale policy is now {policy}", markup=False)


@project_app.command("set-adapter-approval")
def project_set_adapter_approval(code: str, mode: str = typer.Argument(..., help="'review' or 'auto'.")) -> None:
    """How a regeneration approves the adapters it retrains: 'review' (the shots that use one wait
    until a person approves it; the default) or 'auto' (approved as soon as it is trained)."""
    with user_errors(), backlot.session() as s:
        backlot.set_adapter_approval(s, code, mode)
    what = "wait for review" if mode == "review" else "are approved as soon as they are trained"
    out.print(f"{code}: adapters retrained by a regeneration now {what}", markup=False)


# -- shots ---------------------------------------------------------------------------------


@shot_app.command("create")
def shot_create(
    project: str,
    code: str,
    sequence: Optional[str] = typer.Option(None, help="Sequence code (created when missing)."),
    frames: int = typer.Option(100, help="Frame count of the cut range."),
    first_frame: int = typer.Option(1001, help="First frame of the cut range."),
    handles: int = typer.Option(0, help="Extra frames at each end."),
    json_: bool = JSON_OPT,
) -> None:
    """Create a shot."""
    with user_errors(), backlot.session() as s:
        shot = backlot.create_shot(s, project, code, sequence=sequence, frames=frames, first_frame=first_frame,
                                    handles=handles)
    if json_:
        emit_json(shot.to_dict())
    else:
        out.print(f"created shot {project}/{shot.code}: frames {shot.cut_in}-{shot.cut_out}", markup=False)


@shot_app.command("list")
def shot_list(project: str, sequence: Optional[str] = typer.Option(None), json_: bool = JSON_OPT) -> None:
    """List shots in editorial order."""
    with user_errors(), backlot.session() as s:
        shots = backlot.list_shots(s, project, sequence)
    if json_:
        emit_json([x.to_dict() for x in shots])
        return
    emit_table(f"Shots of {project}", ["#", "shot", "sequence", "cut in", "cut out", "handles"],
               [(x.editorial_order, x.code, x.sequence, x.cut_in, x.cut_out, x.handles) for x in shots])


# -- assets and versions -------------------------------------------------------------------


def assets(project: str, kind: Optional[str] = typer.Option(None), json_: bool = JSON_OPT) -> None:
    """List the assets of a project."""
    with user_errors(), backlot.session() as s:
        rows = backlot.list_assets(s, project, kind)
    if json_:
        emit_json([a.to_dict() for a in rows])
        return
    emit_table(f"Assets of {project}", ["asset", "kind", "shot", "latest", "approved"],
               [(a.name, a.kind, a.shot, a.latest_number, a.approved_number) for a in rows])


def publish(
    project: str,
    asset: str,
    files: List[Path] = typer.Argument(..., help="The files of the version."),
    kind: Optional[str] = typer.Option(None, help="Asset kind; required when the asset is new."),
    input_: List[str] = typer.Option([], "--input", help="ROLE=PROJECT/ASSET@N, repeatable."),
    status: Optional[str] = typer.Option(None, help="wip (the default), review, approved or rejected."),
    recipe: Optional[Path] = typer.Option(None, help="A JSON file with the recipe that made it."),
    meta: List[str] = typer.Option([], "--meta", help="KEY=VALUE metadata, repeatable."),
    shot: Optional[str] = typer.Option(None, help="The shot a new shot_render asset belongs to."),
    new_version: bool = typer.Option(False, "--new-version",
                                     help="Publish a new number even when the latest version is identical."),
    owner: Optional[str] = typer.Option(None, help="Rights of concept art, references, base models: who holds them."),
    licence: Optional[str] = typer.Option(None, help="Rights: the licence or agreement (with --owner, --consent)."),
    consent: Optional[str] = typer.Option(None, help="Rights: consent to train, yes, no or unknown."),
    json_: bool = JSON_OPT,
) -> None:
    """Publish a new version of an asset.

    When the latest version has the same files, inputs, recipe, metadata and media type, that
    version is kept and reported ("unchanged"): nothing is written, its status is left as it is.
    --owner, --licence and --consent record the version's rights in the same transaction
    (as `backlot rights set` does; training-data clearance, docs/provenance.md).
    """
    with user_errors():
        rights = _rights_options(owner, licence, consent)
        inputs = [_split_pair(spec, "--input", "ROLE=REF") for spec in input_]
        metadata = dict(_split_pair(item, "--meta", "KEY=VALUE") for item in meta)
        recipe_body = _read_json(recipe) if recipe else None
        with err.status(escape(f"publishing {len(files)} file(s) to {project}/{asset}")), backlot.session() as s:
            version = backlot.publish_version(s, project, asset, files, kind=kind, inputs=inputs, recipe=recipe_body,
                                               metadata=metadata, status="wip" if status is None else status, shot=shot,
                                               new_version=new_version)
            if rights:
                _record_rights(s, version, rights)
    if json_:
        emit_json(version.to_dict())
    elif version.reused:
        kept = f"; it stays {version.status} (change that with `backlot set-status`)" \
            if status is not None and version.status != status else ""
        out.print(f"{version.ref} unchanged: same files and inputs as the latest version{kept} "
                  "(use --new-version to publish anyway)", soft_wrap=True, markup=False)
    else:
        out.print(f"published {version.ref} ({len(version.files)} file(s), {version.status})", markup=False)


def _rights_options(owner: str | None, licence: str | None, consent: str | None) -> dict[str, str] | None:
    given = {"owner": owner, "licence": licence, "consent": consent}
    if all(v is None for v in given.values()):
        return None
    missing = [f"--{k}" for k, v in given.items() if v is None]
    if missing:
        raise InvalidInputError(f"rights need --owner, --licence and --consent together: add {', '.join(missing)}")
    return given


def _record_rights(session, version, rights: dict[str, str]) -> None:
    """Rights of the published (or kept) version; a kept version whose rights are already these is left alone."""
    from backlot import provenance

    current = provenance.get_rights(session, version.id)
    if current and (current.owner, current.licence, current.consent) == (
            rights["owner"].strip(), rights["licence"].strip(), rights["consent"].strip().lower()):
        return
    provenance.set_rights(session, version.ref, **rights)


def versions(asset_ref: str = typer.Argument(..., metavar="PROJECT/ASSET"), json_: bool = JSON_OPT) -> None:
    """List the versions of an asset."""
    with user_errors():
        ref = backlot.parse_asset_ref(asset_ref)
        with backlot.session() as s:
            rows = backlot.list_versions(s, ref.project, ref.asset)
    if json_:
        emit_json([v.to_dict() for v in rows])
        return
    emit_table(f"Versions of {asset_ref}", ["v", "status", "files", "inputs", "by", "created"],
               [(v.number, v.status, len(v.files), ", ".join(f"{i.role}={i.ref}" for i in v.inputs), v.created_by,
                 v.created_at.strftime("%Y-%m-%d %H:%M")) for v in rows])


def show(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"), json_: bool = JSON_OPT) -> None:
    """Show one version: files, inputs, recipe, notes."""
    with user_errors(), backlot.session() as s:
        version = backlot.get_version(s, ref)
        notes = backlot.list_notes(s, version.id)
    if json_:
        emit_json(version.to_dict() | {"notes": [n.to_dict() for n in notes]})
        return
    out.print(f"[bold]{escape(version.ref)}[/]  " + escape(f"{version.status}  {version.media_type}  by "
                                                         f"{version.created_by}"), soft_wrap=True)
    lines = [f"content {version.content_hash}"]
    lines += [f"  file   {f.path}  {f.size} bytes  {f.sha256[:12]}" for f in version.files]
    lines += [f"  input  {i.role}: {i.ref}" for i in version.inputs]
    if version.recipe:
        lines.append(f"  recipe {json.dumps(version.recipe, sort_keys=True)}")
    lines += [f"  note   {n.created_at:%Y-%m-%d %H:%M} {n.author}: {n.body}" for n in notes]
    for line in lines:  # stored text: never markup
        out.print(line, markup=False, soft_wrap=True)


def approve(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"),
            note: Optional[str] = typer.Option(None, help="Why.")) -> None:
    """Approve a version."""
    _set_status(ref, "approved", note)


def reject(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"),
           note: str = typer.Option(..., help="What is wrong (required).")) -> None:
    """Reject a version, with a note."""
    _set_status(ref, "rejected", note)


def set_status(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"),
               status: str = typer.Argument(..., help="wip, review, approved or rejected."),
               note: Optional[str] = typer.Option(None)) -> None:
    """Set any review status on a version."""
    _set_status(ref, status, note)


def note(ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"), text: str = typer.Argument(...)) -> None:
    """Add a review note to a version."""
    with user_errors(), backlot.session() as s:
        backlot.add_note(s, ref, text)
    out.print(f"noted on {ref}", markup=False)


def _set_status(ref: str, status: str, note_text: Optional[str]) -> None:
    with user_errors():
        if status == "rejected" and not (note_text or "").strip():
            raise InvalidInputError("a rejection needs a --note saying what is wrong")
        with backlot.session() as s:
            version = backlot.set_status(s, ref, status, note=note_text)
    out.print(f"{version.ref} is {version.status}", markup=False)


def lineage(
    ref: str = typer.Argument(..., metavar="PROJECT/ASSET@N"),
    up: bool = typer.Option(False, "--up", help="Inputs (what it was made from); the default."),
    down: bool = typer.Option(False, "--down", help="Outputs (what was made from it)."),
    direct: bool = typer.Option(False, "--direct", help="One level only (default: the whole chain)."),
    roles: Optional[str] = typer.Option(
        None, "--roles", metavar="ROLE,...",
        help="Follow only these input roles (default: every role but regenerated_from)."),
    json_: bool = JSON_OPT,
) -> None:
    """Show the lineage of a version, upstream (--up) or downstream (--down).

    The walk follows production inputs (training data, base model, adapter, concept art, init
    image, continuity); the regeneration history (regenerated_from) is printed on its own line.
    --json prints the list of edges walked; `--roles regenerated_from` walks the history.
    """
    with user_errors():
        if up and down:
            raise InvalidInputError("choose --up or --down, not both")
        wanted = parse_roles([r.strip() for r in roles.split(",")]) if roles is not None else None
        with backlot.session() as s:
            walk = backlot.get_outputs if down else backlot.get_inputs
            edges = walk(s, ref, transitive=not direct, roles=wanted)
            show_history = not json_ and "regenerated_from" not in (wanted or ())
            history = backlot.get_history(s, ref, downstream=down) if show_history else []
            root = backlot.get_version(s, ref).ref
    if json_:
        emit_json([e.to_dict() for e in edges])
        return
    title = f"{'Outputs' if down else 'Inputs'} of {root}"
    emit_table(title, ["depth", "version", "role", "input", "status"],
               [(e.depth, e.version, e.role, e.input, e.status) for e in edges])
    if history:
        out.print(f"history: {format_history(root, history, down)}", soft_wrap=True, markup=False)


def format_history(root: str, edges, down: bool) -> str:
    """`film/sh@3 regenerated from @2, from @1` (up) or `film/sh@1 regenerated as @2, as @3` (down).

    References in the same asset as `root` are shortened to `@N`."""
    asset = root.rsplit("@", 1)[0]

    def brief(other: str) -> str:
        return "@" + other.rsplit("@", 1)[1] if other.rsplit("@", 1)[0] == asset else other

    word = "as" if down else "from"
    return f"{root} regenerated " + ", ".join(f"{word} {brief(e.version if down else e.input)}" for e in edges)


def stale(project: str, json_: bool = JSON_OPT) -> None:
    """List the current versions that are stale, and why."""
    with user_errors(), backlot.session() as s:
        rows = backlot.find_stale_versions(s, project)
    if json_:
        emit_json([r.to_dict() for r in rows])
        return
    emit_table(f"Stale versions of {project}", ["version", "status", "superseded input", "by", "path", "remake"],
               [(short(r.ref), r.status, short(r.reason.input), short(r.reason.superseded_by),
                 " <- ".join(map(short, r.reason.path)),
                 f"fresh @{r.awaiting_review.rsplit('@', 1)[1]} awaiting review" if r.awaiting_review else "")
                for r in rows])
    if not rows:
        out.print("nothing is stale")
    elif any(r.awaiting_review for r in rows):
        out.print("a stale version with a fresh remake awaiting review is left out of `backlot regen`: "
                  "approve (or reject) the remake")


def short(ref: str) -> str:
    """A reference without its project, for tables that are about one project."""
    return ref.split("/", 1)[1] if "/" in ref else ref


def _split_pair(text: str, option: str, form: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise InvalidInputError(f"{option} {text!r} is malformed: expected {form}")
    return key, value


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the recipe ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: the recipe is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: the recipe must be a JSON object")
    return data
