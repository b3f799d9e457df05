"""`lockgate admins`: personal admin keys with a role (admin, compliance, security, viewer)."""

from __future__ import annotations

import typer

from lockgate.cli.common import err, fail, open_store, print_json
from lockgate.identity import keys, principals

app = typer.Typer(help="Admin access per person: keys bound to a principal, each with one role.", no_args_is_help=True)


@app.command("add")
def add(
    principal: str = typer.Argument(..., help="The person (created if missing)."),
    role: str = typer.Option(..., help="admin | compliance | security | viewer"),
    org: str = typer.Option(None, help="Organisation, when the principal is created."),
) -> None:
    """Issue an admin key. The key is the only line on stdout; it cannot be shown again."""
    from lockgate.admin.roles import ROLES

    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}")
    store = open_store()
    if role != "admin" and not keys.has_admin(store):
        # once a store has admin keys the CLI asks for one; a first key of a lesser role would lock everyone out
        fail("the first admin key must have --role admin: no other role may add admins afterwards")
    try:
        principals.add_principal(store, principal, principal, org)
    except principals.Exists:
        pass
    except principals.InvalidId as e:
        fail(str(e))
    secret, info = keys.create_key(store, principal, name=f"admin:{role}", role=role)
    err.print(f"created {role} key [bold]{info.id}[/] for {principal}")
    typer.echo(secret)


@app.command("list")
def list_() -> None:
    """Admin keys and their roles."""
    print_json([k.to_dict() for k in keys.list_keys(open_store()) if k.role])
