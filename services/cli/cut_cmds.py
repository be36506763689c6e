"""Editorial commands: `backlot cut import | diff | conform | list | show | settings`."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape

import backlot
from backlot.editorial import (
    ReadOptions,
    conform_cut,
    diff_revisions,
    get_settings,
    import_cut,
    list_items,
    list_revisions,
    set_settings,
)
from backlot.editorial.frames import exact_rate
from backlot.editorial.ingest import OMISSION_WARNING_SHARE
from backlot.errors import InvalidInputError
from backlot.services.cli.output import emit_json, emit_table, err, out, user_errors

app = typer.Typer(help="Editorial: import cuts, compare them, conform them to shot versions.", no_args_is_help=True)

JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


@app.command("import")
def import_(
    project: str,
    file: Path = typer.Argument(..., help="An edit file any installed OTIO adapter reads (.otio, .edl, .xml, .aaf...)."),
    adapter: Optional[str] = typer.Option(None, help="OTIO adapter name (default: from the file's suffix)."),
    rate: Optional[str] = typer.Option(None, help="Frame rate for formats without one (EDL): 24, 24000/1001..."),
    ignore_timecode_mismatch: bool = typer.Option(False, "--ignore-timecode-mismatch",
                                                  help="EDL: accept events whose source and record lengths differ."),
    reader_option: List[str] = typer.Option([], "--reader-option", help="KEY=VALUE for the adapter's reader."),
    timeline: Optional[str] = typer.Option(None, help="Which timeline of a file holding several."),
    tracks: Optional[str] = typer.Option(None, help="visible (top-most clips win), all, or a video track name/number."),
    first_frame: Optional[int] = typer.Option(None, help="Shot frame of a new shot's first frame (default 1001)."),
    handles: Optional[int] = typer.Option(None, help="Handles for the cut's shots (default: kept; new shots 8)."),
    create_shots: bool = typer.Option(True, "--create-shots/--no-create-shots",
                                      help="Create the shots the cut names that the project lacks (the default), "
                                           "or leave their clips without a shot."),
    name_unmatched: Optional[str] = typer.Option(None, help="Code for clips no rule maps, e.g. 'ed_{position:04d}'."),
    strict: bool = typer.Option(False, "--strict", help="Refuse a cut that omits more than "
                                f"{OMISSION_WARNING_SHARE:.0%} of the previous revision's shots (else: a warning)."),
    json_: bool = JSON_OPT,
) -> None:
    """Import a cut as the project's next revision: shots created or updated, change list stored."""
    with user_errors():
        options = ReadOptions(adapter, exact_rate(rate) if rate else None, ignore_timecode_mismatch, timeline,
                              tuple(sorted(_pairs(reader_option, "--reader-option"))))
        with err.status(escape(f"importing {file.name} into {project}")), backlot.session() as s:
            result = import_cut(s, project, file, options=options, track_policy=tracks, first_frame=first_frame,
                                handles=handles, create_shots=create_shots, name_unmatched=name_unmatched,
                                max_omitted_share=OMISSION_WARNING_SHARE if strict else None)
    warnings = _import_warnings(result, file.name)
    for warning in warnings:
        err.print(f"warning: {warning}", soft_wrap=True, markup=False)
    if json_:
        emit_json(result.to_dict() | {"summary": result.summary, "warnings": warnings})
        return
    r = result.revision
    if not result.created:
        out.print(f"{file.name} is already revision {r.number} of {project} (same file and settings): nothing to do",
                  markup=False, soft_wrap=True)
    else:
        out.print(f"revision {r.number} of {project}: {r.clip_count} clip(s) at {r.fps} fps from {r.start_timecode}; "
                  f"{r.matched_count} mapped to shots, {len(result.unmatched)} without a shot", soft_wrap=True, markup=False)
    if result.shots_created:
        out.print(f"created {len(result.shots_created)} shot(s): {', '.join(result.shots_created)}", soft_wrap=True,
                  markup=False)
    missing = sorted({u.code for u in result.unmatched if u.code})
    if missing:
        out.print(f"{len(missing)} shot(s) named by the cut are not in the project and were not created "
                  f"(--no-create-shots): {', '.join(missing)}", soft_wrap=True, markup=False)
    _print_changes(result.changes, r.previous, set(missing))
    if result.unmatched:
        emit_table(f"Clips without a shot ({len(result.unmatched)})", ["#", "clip", "reel", "record", "why"],
                   [(u.position, u.clip, u.reel, u.record_timecode, u.reason) for u in result.unmatched])


def _import_warnings(result: Any, label: str) -> list[str]:
    """What a person should look at before trusting the revision (a cut much shorter than the last)."""
    omitted, previous = result.omission
    if not result.created or not previous or omitted / previous <= OMISSION_WARNING_SHARE:
        return []
    return [f"{label} omits {omitted} of the {previous} shots of revision {result.revision.previous} "
            f"({omitted / previous:.0%}): check that the file is complete (--strict refuses such a cut)"]


@app.command("diff")
def diff(
    project: str,
    from_: Optional[int] = typer.Option(None, "--from", help="Older revision (default: the one before --to)."),
    to: Optional[int] = typer.Option(None, "--to", help="Newer revision (default: the latest)."),
    json_: bool = JSON_OPT,
    csv_: bool = typer.Option(False, "--csv", help="Print CSV on stdout."),
) -> None:
    """The change list between two revisions, per shot, with what must be re-rendered."""
    with user_errors():
        if json_ and csv_:
            raise InvalidInputError("choose --json or --csv, not both")
        with backlot.session() as s:
            result = diff_revisions(s, project, from_, to)
    if json_:
        emit_json(result.to_dict())
    elif csv_:
        _write_csv(result.changes)
    else:
        out.print(f"{project}: revision {result.from_revision or '-'} -> {result.to_revision}"
                  + ("" if result.stored else " (computed now)"), markup=False)
        _print_changes(result.changes, result.from_revision)


@app.command("conform")
def conform(
    project: str,
    out_file: Path = typer.Argument(..., help="Where to write; the suffix picks the format (.otio, .edl, .xml...)."),
    policy: str = typer.Option("approved", help="approved (else latest) or latest version of each shot."),
    revision: Optional[int] = typer.Option(None, help="Cut revision (default: the latest)."),
    adapter: Optional[str] = typer.Option(None, help="OTIO adapter to write with (default: from the suffix)."),
    media: str = typer.Option("auto", help="sequence, movie, or auto (sequences unless the format cannot hold them)."),
    writer_option: List[str] = typer.Option([], "--writer-option", help="KEY=VALUE for the adapter's writer."),
    json_: bool = JSON_OPT,
) -> None:
    """Write the cut back with every clip pointing at its shot's chosen version."""
    with user_errors(), backlot.session() as s:
        result = conform_cut(s, project, out_file, policy=policy, revision=revision, adapter=adapter, media=media,
                             writer_options=dict(_pairs(writer_option, "--writer-option")))
    if json_:
        emit_json(result.to_dict() | {"relinked": result.relinked})
        return
    out.print(f"wrote {result.output} ({result.adapter}): revision {result.revision}, {result.relinked} clip(s) "
              f"point at {result.policy} versions", markup=False, soft_wrap=True)
    if result.kept:
        emit_table(f"Clips that keep their media ({len(result.kept)})", ["#", "clip", "shot", "why", "version"],
                   [(c.position, c.clip, c.shot, c.status.replace("_", " "), c.version) for c in result.kept])


@app.command("list")
def list_(project: str, json_: bool = JSON_OPT) -> None:
    """The project's cut revisions."""
    with user_errors(), backlot.session() as s:
        rows = list_revisions(s, project)
    if json_:
        emit_json([r.to_dict() for r in rows])
        return
    emit_table(f"Cuts of {project}", ["rev", "file", "adapter", "fps", "start", "clips", "mapped", "by", "imported"],
               [(r.number, r.source_file, r.adapter, r.fps, r.start_timecode, r.clip_count, r.matched_count,
                 r.created_by, r.created_at.strftime("%Y-%m-%d %H:%M")) for r in rows])


@app.command("show")
def show(project: str, revision: Optional[int] = typer.Option(None, help="Default: the latest."),
         json_: bool = JSON_OPT) -> None:
    """The clips of a revision in editorial order, with their shots and shot frames."""
    with user_errors(), backlot.session() as s:
        items = list_items(s, project, revision)
    if json_:
        emit_json([i.to_dict() for i in items])
        return
    emit_table(None, ["#", "track", "clip", "record", "source", "retime", "shot", "cut in", "cut out", "by"],
               [(i.position, i.track, i.clip, i.record_timecode, f"{i.source_in}-{i.source_out_excl - 1}", i.retime,
                 i.shot, i.cut_in, i.cut_out_incl, i.matched_by) for i in items])


@app.command("settings")
def settings(
    project: str,
    rules: Optional[Path] = typer.Option(None, help="A JSON file: the ordered shot-mapping rules."),
    tracks: Optional[str] = typer.Option(None, help="visible, all, or a video track name/number."),
    first_frame: Optional[int] = typer.Option(None, help="Shot frame of a new shot's first frame."),
    handles: Optional[int] = typer.Option(None, help="Handles for new shots."),
    json_: bool = JSON_OPT,
) -> None:
    """Show or change how the project reads cuts (no option: show)."""
    with user_errors():
        rule_list = _read_rules(rules) if rules else None
        with backlot.session() as s:
            if rule_list is None and tracks is None and first_frame is None and handles is None:
                current = get_settings(s, project)
            else:
                current = set_settings(s, project, rules=rule_list, track_policy=tracks, first_frame=first_frame,
                                       handles=handles)
    if json_:
        emit_json(current.to_dict())
        return
    out.print(f"{project}: clips {current.track_policy}, first frame {current.first_frame}, "
              f"handles {current.handles}", markup=False)
    emit_table("Shot-mapping rules, in order", ["#", "looks at", "pattern"],
               [(n, r.describe(), r.pattern or "(default)") for n, r in enumerate(current.rules, start=1)])


# -- helpers ---------------------------------------------------------------------------------


def _print_changes(changes: list, previous: int | None, missing: set[str] = frozenset()) -> None:
    """`missing`: shot codes the cut names that the project has no shot for (nothing to render)."""
    if not changes:
        return
    changed = [c for c in changes if c.kinds != ("unchanged",)]
    title = f"Changes since revision {previous}" if previous else "Shots in this cut"
    emit_table(f"{title}: {len(changed)} changed, {len(changes) - len(changed)} unchanged",
               ["shot", "change", "range (shot frames)", "render?"],
               [(c.shot, c.explain() + (" (no shot in the project)" if c.shot in missing else ""), _range(c),
                 "no shot" if c.shot in missing else {True: "yes", False: "no", None: "?"}[c.needs_render])
                for c in changed])


def _range(change: Any) -> str:
    old = f"{change.old_cut_in}-{change.old_cut_out_incl}" if change.old_cut_in is not None else ""
    new = f"{change.new_cut_in}-{change.new_cut_out_incl}" if change.new_cut_in is not None else ""
    return f"{old} -> {new}" if old and new and old != new else (new or old)


def _write_csv(changes: list) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["shot", "kinds", "old_cut_in", "old_cut_out_incl", "new_cut_in", "new_cut_out_incl", "head",
                     "tail", "old_position", "new_position", "needs_render", "explanation"])
    for c in changes:
        writer.writerow([c.shot, "+".join(c.kinds), c.old_cut_in, c.old_cut_out_incl, c.new_cut_in,
                         c.new_cut_out_incl, c.head, c.tail, c.old_position, c.new_position,
                         "" if c.needs_render is None else str(c.needs_render).lower(), c.explain()])


def _pairs(items: list[str], option: str) -> list[tuple[str, Any]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{option} {item!r} is malformed: expected KEY=VALUE")
        try:
            pairs.append((key, json.loads(value)))
        except json.JSONDecodeError:
            pairs.append((key, value))
    return pairs


def _read_rules(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the rules ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: the rules are not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise InvalidInputError(f"{path}: the rules must be a JSON list")
    return data
