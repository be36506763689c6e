"""`backlot provenance ...`, `backlot clearance REF`, `backlot rights ...`: Content Credentials
on generated files and the training-data clearance of concept art (docs/provenance.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperGroup

import backlot
from backlot.config import load_settings
from backlot.services.cli.output import emit_json, emit_table, err, escape, out, user_errors


class _RefOrCommand(TyperGroup):
    """`backlot provenance REF` reads a version's credentials; `backlot provenance init ...` and
    the other subcommands work as usual (a first word that is no subcommand is a REF)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RefOrCommand, no_args_is_help=True,
                  help="Content Credentials (C2PA) on generated files: `backlot provenance REF` reads and validates "
                       "them; init/use set a project's signer.")
rights_app = typer.Typer(help="Rights of concept art: owner, licence, consent to train.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


@app.command("init")
def init(
    project: str = typer.Argument(..., help="The project whose renders this signer signs."),
    organisation: str = typer.Option(..., "--organisation", "--org", help="Who signs (the studio's name)."),
    folder: Optional[Path] = typer.Option(None, help="Where to write it (default: BACKLOT_HOME/signers/PROJECT)."),
    algorithm: str = typer.Option("es256", help="es256 or ed25519."),
    force: bool = typer.Option(False, "--force", help="Replace a signer already in the folder."),
) -> None:
    """Make a local CA and a signer for a studio that has none, and use it for PROJECT.

    The credentials are valid C2PA but untrusted until the studio adds trust.pem to its readers'
    trust anchors. Keys are written mode 0600 and never enter the database."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        backlot.get_project(s, project)  # fail before writing keys for a project that does not exist
        target = folder or load_settings().home / "signers" / project
        info = provenance.init_signer(target, organisation=organisation, algorithm=algorithm, force=force)
        provenance.use_signer(s, project, info.folder)
    out.print(f"signer for {escape(project)}: {escape(info.subject)} ({info.algorithm}), issued by "
              f"{escape(info.issuer)}, in {escape(str(info.folder))}")
    err.print("It is valid but untrusted: add trust.pem from that folder to your readers' trust anchors.",
              markup=False)


@app.command("use")
def use(project: str = typer.Argument(...),
        folder: Path = typer.Argument(..., help="A folder with chain.pem (signer first) and signer.key (mode 0600).")
        ) -> None:
    """Sign PROJECT's renders with the studio's own certificate chain and key."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        info = provenance.use_signer(s, project, folder)
    out.print(f"{escape(project)} signs with {escape(info.subject)} ({info.algorithm}), valid until "
              f"{info.not_after:%Y-%m-%d}")


@app.command("policy")
def policy(project: str = typer.Argument(...),
           require_signer: Optional[bool] = typer.Option(None, "--require-signer/--no-require-signer",
                                                         help="Refuse renders that cannot be signed."),
           require_clearance: Optional[bool] = typer.Option(None, "--require-clearance/--no-require-clearance",
                                                            help="Train only on art with consent to train 'yes'.")
           ) -> None:
    """What PROJECT insists on (shown when no option is given)."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        row = provenance.set_policy(s, project, require_signer=require_signer, require_clearance=require_clearance)
        state = (row.require_signer, row.require_clearance)
    out.print(f"{escape(project)}: signing {'required' if state[0] else 'when a signer is set'}; clearance "
              f"{'required for all art' if state[1] else 'refuses art whose owner said no'}")


@app.command("show")
def show(ref: str = typer.Argument(..., help="A version: PROJECT/ASSET@N (or @latest, @approved)."),
         files: Optional[Path] = typer.Option(None, "--files", help="Check delivered copies in this folder "
                                              "(laid out as the version) instead of the stored signed copies."),
         json_: bool = JSON) -> None:
    """Read and validate the Content Credentials of a version's files and print their lineage."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        report = provenance.check_version(s, ref, files=files)
    if json_:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report) -> None:
    lineage = report.lineage
    out.print(f"[bold]{escape(report.ref)}[/bold]: " + ("Content Credentials valid" if report.ok else
                                                         "[red]Content Credentials NOT valid[/red]"))
    if lineage:
        out.print(f"  made by Backlot {escape(lineage['generator']['version'])}, signed by "
                  f"{escape(report.signer or 'unknown')}; generated content (trainedAlgorithmicMedia)")
        if lineage.get("base_model"):
            out.print(f"  base model {escape(lineage['base_model']['ref'])} ({lineage['base_model']['content_hash'][:12]})")
        for adapter in lineage.get("adapters", []):
            art = ", ".join(a["ref"] for a in adapter["training_data"]) or "nothing recorded"
            out.print(f"  adapter {escape(adapter['ref'])} at weight {adapter.get('weight')}, trained on {escape(art)}")
        if lineage.get("continuity"):
            out.print(f"  continues from {escape(lineage['continuity']['ref'])}")
        if lineage.get("regenerated_from"):
            out.print(f"  regenerated from {escape(lineage['regenerated_from']['ref'])}")
        out.print(f"  recipe {escape(str(lineage.get('recipe_sha256'))[:12])}")
    counts: dict[str, int] = {}
    for f in report.files:
        counts[f.state] = counts.get(f.state, 0) + 1
    out.print("  files: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for f in report.files:
        if f.state not in ("trusted", "valid"):
            out.print(f"  [red]{escape(f.state)}[/red] {escape(f.path)}: {escape('; '.join(f.problems))}")


@app.command("export")
def export(ref: str = typer.Argument(...), folder: Path = typer.Argument(..., help="Where to write the files."),
           json_: bool = JSON) -> None:
    """Write a version's files with their Content Credentials (what a vendor or distributor receives)."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        version = backlot.get_version(s, ref)
        signer = provenance.check_project_signer(s, version.project)
        written = provenance.export_signed(s, ref, folder, signer=signer)
    if json_:
        emit_json([str(p) for p in written])
        return
    out.print(f"{len(written)} files of {escape(ref)} written to {escape(str(folder))}")


def clearance(ref: str = typer.Argument(..., help="A shot (PROJECT/SHOT: its current render) or a version ref."),
              json_: bool = JSON,
              html: Optional[Path] = typer.Option(None, "--html", help="Also write a one-page HTML report here "
                                                  "(print it to PDF from a browser).")) -> None:
    """Every piece upstream of a shot with its rights: what a producer sends to legal."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        report = provenance.clearance_report(s, ref)
    if html is not None:
        html.write_text(provenance.report_html(report))
        err.print(f"report written to {html}", markup=False)
    if json_:
        emit_json(report.to_dict())
    else:
        for line in provenance.report_text(report):
            out.print(line, markup=False, soft_wrap=True)
    if not report.cleared:
        raise typer.Exit(1)


@rights_app.command("set")
def rights_set(ref: str = typer.Argument(..., help="A concept-art, reference or base-model version."),
               owner: str = typer.Option(..., help="Who holds the rights."),
               licence: str = typer.Option(..., help="The licence or agreement (e.g. 'work for hire', 'CC BY 4.0')."),
               consent: str = typer.Option(..., help="Consent to train: yes, no or unknown."),
               note: str = typer.Option("", help="Where the consent is documented."),
               json_: bool = JSON) -> None:
    """Record a version's rights (the earlier ones stay as history)."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        rights = provenance.set_rights(s, ref, owner=owner, licence=licence, consent=consent, note=note)
    if json_:
        emit_json(rights.to_dict())
        return
    out.print(f"{escape(ref)}: owner {escape(rights.owner)}, licence {escape(rights.licence)}, consent to train "
              f"{rights.consent}")


@rights_app.command("show")
def rights_show(ref: str = typer.Argument(...), json_: bool = JSON) -> None:
    """A version's rights and their history."""
    from backlot import provenance

    with user_errors(), backlot.session() as s:
        history = provenance.rights_history(s, ref)
    if json_:
        emit_json([r.to_dict() for r in history])
        return
    emit_table(f"rights of {ref}", ["owner", "licence", "consent", "note", "set by", "set at"],
               [(r.owner, r.licence, r.consent, r.note, r.set_by, r.set_at.strftime("%Y-%m-%d %H:%M"))
                for r in history])
