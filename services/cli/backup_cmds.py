"""`backlot backup DIR` and `backlot restore DIR`: the database as a pg_dump, with a manifest of
the store objects it references (and, with --with-store, a copy of them)."""

from __future__ import annotations

from pathlib import Path

import typer

from backlot.db import backup as backups
from backlot.services.cli.output import emit_json, err, out, user_errors

JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


def backup(folder: Path = typer.Argument(..., metavar="DIR", help="A new (or empty) folder for the backup."),
           with_store: bool = typer.Option(False, "--with-store",
                                           help="Also copy every store object the database references."),
           json_: bool = JSON_OPT) -> None:
    """Back up the database (pg_dump) with a manifest of the store objects it references."""
    with user_errors():
        result = backups.backup(folder, with_store=with_store, progress=None if json_ else _say)
    manifest = result.manifest
    if json_:
        emit_json({"folder": str(result.folder), "copied_objects": result.copied_objects} | manifest.to_dict()
                  | {"folders": len(manifest.folders)})
        return
    objects = manifest.objects()
    out.print(f"backed up {_counts(manifest.counts)} at schema revision {manifest.schema_revision} to "
              f"{result.folder}", markup=False, soft_wrap=True)
    kept = "copied into the backup" if with_store else "listed in manifest.json (not copied: add --with-store)"
    out.print(f"store: {len(objects)} objects, {_size(sum(objects.values()))}, {kept}", markup=False, soft_wrap=True)


def restore(folder: Path = typer.Argument(..., metavar="DIR", help="A folder written by `backlot backup`."),
            force: bool = typer.Option(False, "--force", help="Replace a database that already holds data."),
            json_: bool = JSON_OPT) -> None:
    """Restore a backup into the configured database (a fresh BACKLOT_HOME gets a new embedded one).

    The dump is restored into a new database beside the target and swapped in only when it is
    complete; the store objects a backup carries are put into the configured store."""
    with user_errors():
        result = backups.restore(folder, force=force, progress=None if json_ else _say)
    if json_:
        emit_json(result.__dict__)
    else:
        upgraded = f", migrated to {result.migrated_to}" if result.migrated_to else ""
        out.print(f"restored {_counts(result.counts)} into {result.database} (schema revision "
                  f"{result.schema_revision}{upgraded}{', replacing what it held' if result.replaced else ''})",
                  markup=False, soft_wrap=True)
        if result.stored_objects:
            out.print(f"store: {result.stored_objects} objects put into the store", markup=False)
    if result.missing_objects:
        err.print(f"warning: {len(result.missing_objects)} object(s) the database references are not in the store "
                  f"(first: {result.missing_objects[0]}); copy the store over, or restore a backup made with "
                  "--with-store", markup=False, soft_wrap=True)


def _say(message: str) -> None:
    err.print(message, markup=False, soft_wrap=True)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items()) or "an empty database"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
