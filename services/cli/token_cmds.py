"""`backlot token ...`: API tokens for the HTTP API, scoped to a project and a role."""

from __future__ import annotations

from typing import Optional

import typer

import backlot
from backlot import access
from backlot.services.cli.output import emit_json, emit_table, err, out, user_errors

app = typer.Typer(help="API tokens for the HTTP API (scoped to a project and a role).", no_args_is_help=True)


@app.command("create")
def create(
    project: str = typer.Option(..., help="The project the token may see."),
    role: str = typer.Option(..., help="viewer, artist, supervisor or admin."),
    expires: Optional[str] = typer.Option(None, help="Expiry: 90m, 12h, 30d, 2w, a date (2027-01-31) or an ISO time."),
    name: Optional[str] = typer.Option(None, help="Who or what holds it (default: your user name)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON on stdout (nothing else)."),
) -> None:
    """Create a token; its secret is printed once and never stored."""
    with user_errors(), backlot.session() as s:
        issued = access.create_token(s, project, role, name=name, expires=expires)
    if json_:
        emit_json(issued.record.to_dict() | {"token": issued.secret})
        return
    err.print(f"token {issued.record.id} for {project} ({issued.record.role}, held by {issued.record.name}"
              f"{', expires ' + issued.record.expires_at.isoformat() if issued.record.expires_at else ''}); "
              "copy it now, it is not shown again:", markup=False, soft_wrap=True)
    out.print(issued.secret, soft_wrap=True, markup=False)


@app.command("list")
def list_(project: Optional[str] = typer.Option(None, help="Only this project's tokens."),
          json_: bool = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")) -> None:
    """List tokens (never their secrets)."""
    with user_errors(), backlot.session() as s:
        tokens = access.list_tokens(s, project)
    if json_:
        emit_json([t.to_dict() | {"state": t.state()} for t in tokens])
        return
    emit_table("API tokens", ["id", "prefix", "project", "role", "name", "state", "expires", "created"],
               [(t.id, t.prefix + "…", t.project, t.role, t.name, t.state(),
                 t.expires_at.strftime("%Y-%m-%d %H:%M") if t.expires_at else "never",
                 t.created_at.strftime("%Y-%m-%d %H:%M")) for t in tokens])


@app.command("revoke")
def revoke(token: str = typer.Argument(..., help="The token's id or its prefix (blt_xxxxxxxx).")) -> None:
    """Revoke a token: requests with it are refused from now on."""
    with user_errors(), backlot.session() as s:
        record = access.revoke_token(s, token)
    out.print(f"token {record.id} ({record.prefix}…, {record.project}/{record.role}) is revoked", markup=False)
