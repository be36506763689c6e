"""`backlot store gc` and `backlot store check`: store hygiene (docs/storage.md)."""

from __future__ import annotations

from dataclasses import asdict

import typer

import backlot
from backlot.config import load_settings
from backlot.services.cli.output import emit_json, emit_table, err, escape, out, user_errors

app = typer.Typer(help="The file store: remove unreferenced objects (gc), verify referenced ones (check).",
                  no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


@app.command("gc")
def gc(
    grace: str = typer.Option("24h", "--grace", help="Keep unreferenced objects younger than this (e.g. 24h, 90m, "
                              "3600s); it must exceed your longest publish."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
    as_json: bool = JSON,
) -> None:
    """Remove objects and version folders no version, signed copy or cut refers to."""
    from backlot.store_hygiene import collect_garbage, parse_grace

    with user_errors():
        seconds = parse_grace(grace)
        store = backlot.Store(load_settings().store_url)
        with backlot.session() as s:
            result = collect_garbage(s, store, grace_s=seconds, dry_run=dry_run)
    if as_json:
        emit_json(asdict(result))
        return
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {len(result.removed_objects)} objects and {len(result.removed_folders)} version folders "
              f"({result.freed_bytes / 1e6:.1f} MB of objects) from {escape(store.root)}; "
              f"kept {result.kept_young} unreferenced younger than {escape(grace)}")


@app.command("check")
def check(
    quick: bool = typer.Option(False, "--quick", help="Only check presence; do not read and hash every object."),
    as_json: bool = JSON,
) -> None:
    """Verify every referenced object is in the store and hashes to its name; exit 1 if not."""
    from backlot.store_hygiene import check_store

    with user_errors():
        store = backlot.Store(load_settings().store_url)
        with backlot.session() as s:
            result = check_store(s, store, full=not quick)
    if as_json:
        emit_json({"checked": result.checked, "ok": result.ok, "problems": [asdict(p) for p in result.problems]})
    elif result.ok:
        out.print(f"{result.checked} objects checked in {escape(store.root)}: all present"
                  + ("" if quick else " and intact"))
    else:
        emit_table(f"{len(result.problems)} problems in {store.root}", ["problem", "sha256 / folder", "needed by"],
                   [(p.kind, p.sha256, "; ".join(p.refs) + (f" ({p.detail})" if p.detail else ""))
                    for p in result.problems])
        err.print("Restore the missing objects from a backup, or republish the versions named above.", markup=False)
    if not result.ok:
        raise typer.Exit(1)
