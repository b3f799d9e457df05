"""`lockgate principals`: add, list, show."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from lockgate.cli.common import err, fail, open_store, print_json
from lockgate.identity import keys, principals

app = typer.Typer(help="Principals: the people and services that keys and tokens stand for.", no_args_is_help=True)


@app.command("add")
def add(
    id: str = typer.Argument(..., help="Stable id, e.g. an email or employee number."),
    name: str = typer.Option("", help="Display name."),
    org: str = typer.Option(None, help="Organisation id."),
) -> None:
    """Add a principal."""
    try:
        p = principals.add_principal(open_store(), id, name, org)
    except principals.Exists as e:
        fail(str(e))
    err.print(f"added principal [bold]{p['id']}[/]")
    print_json(p)


@app.command("list")
def list_(org: str = typer.Option(None, help="Only this organisation."), as_json: bool = typer.Option(False, "--json")) -> None:
    """List principals."""
    rows = principals.list_principals(open_store(), org)
    if as_json:
        return print_json(rows)
    t = Table("id", "name", "org", "status", "created")
    for p in rows:
        t.add_row(p["id"], p["name"], p["org"] or "", p["status"], p["created_at"][:19])
    Console().print(t)



@app.command("show")
def show(id: str) -> None:
    """Show one principal and its keys."""
    store = open_store()
    try:
        p = principals.get_principal(store, id)
    except keys.NotFound as e:
        fail(str(e))
    p["keys"] = [k.to_dict() for k in keys.list_keys(store, id)]
    print_json(p)

