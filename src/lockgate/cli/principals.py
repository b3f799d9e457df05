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
    except (principals.Exists, principals.InvalidId) as e:
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


@app.command("import")
def import_(file: str = typer.Argument(..., help="CSV with columns " + ",".join(
        ["id", "name", "org", "citizenships", "permanent_residence", "protected_individual", "programs",
         "assurance", "verified_at", "expires_at"]))) -> None:
    """Upsert principals and their attested facts from a CSV (all rows or none)."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lockgate.identity.importer import ImportError_, import_csv, parse_rows

    path = Path(file)
    if not path.is_file():
        fail(f"{file}: {'a directory, not a CSV file' if path.is_dir() else 'no such file'}")
    store = open_store()
    try:
        total = len(parse_rows(path))
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("import", total=total)
            counts = import_csv(store, path, progress=lambda n: bar.advance(task, n))
    except ImportError_ as e:
        fail(f"{file}: {e}; nothing was imported")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text; nothing was imported")
    err.print(f"imported {counts['rows']} row(s): {counts['created']} created, {counts['updated']} updated")


@app.command("attest")
def attest(
    id: str,
    fact: str = typer.Option(..., help="citizenships | permanent_residence | protected_individual | programs"),
    value: str = typer.Option(..., help="e.g. US;CA for citizenships, US, true, glasswing"),
    assurance: str = typer.Option("org", help="self | org | kyc"),
    reference: str = typer.Option(None, help="Contract, HR record or KYC case the attestation rests on."),
    by: str = typer.Option(None, "--by", help="Who attests (an org admin)."),
    expires: str = typer.Option(None, help="ISO 8601 expiry."),
) -> None:
    """Record an attested fact about a principal, with its provenance."""
    from datetime import datetime

    from pydantic import ValidationError

    from lockgate.identity.attributes import AttestationIn

    try:
        when = datetime.fromisoformat(expires.replace("Z", "+00:00")) if expires else None
    except ValueError:
        fail(f"--expires {expires!r} is not an ISO 8601 date or time")
    option = {"expires_at": "expires", "attested_by": "by"}  # the model's field -> this command's option
    try:
        a = AttestationIn(fact=fact, value=value, assurance=assurance, reference=reference, attested_by=by,
                          source=f"attestation:{by or 'cli'}", expires_at=when)
        p = principals.attest(open_store(), id, a)
    except ValidationError as e:  # the API's wording: the option, then what it must be
        fail("; ".join(f"--{option.get(str(x['loc'][0]), x['loc'][0]) if x['loc'] else 'value'}: "
                       f"{x['msg'].removeprefix('Value error, ')}" for x in e.errors()))
    except ValueError as e:
        fail(str(e))
    except keys.NotFound as e:
        fail(str(e))
    err.print(f"attested {fact} for [bold]{id}[/] at {assurance} level")
    print_json(p)
