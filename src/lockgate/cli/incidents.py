"""`lockgate incidents`: what the jailbreak monitor opened, its evidence, and resolving it."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from lockgate.cli.common import err, fail, open_store, print_json
from lockgate.monitor import incidents

app = typer.Typer(help="Incidents opened by the jailbreak monitor (flag, throttle, suspend).", no_args_is_help=True)


@app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="Resolved incidents too."),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """List open incidents."""
    rows = incidents.list_incidents(open_store(), None if all_ else "open")
    if as_json:
        return print_json(rows)
    t = Table("id", "subject", "org", "state", "level", "contained", "hits", "opened", "updated")
    for r in rows:
        t.add_row(str(r["id"]), f"{r['scope']}:{r['subject']}", r["org"] or "", r["state"], r["level"],
                  "yes" if r["contained"] else "", str(r["hits"]), r["opened_at"][:19], r["updated_at"][:19])
    Console().print(t)


@app.command("show")
def show(id: int) -> None:
    """One incident with its evidence (request ids in the audit trail, scores, matched templates) and history."""
    try:
        print_json(incidents.get_incident(open_store(), id))
    except incidents.NotFound as e:
        fail(str(e))


@app.command("resolve")
def resolve(id: int, note: str = typer.Option("", "--note", help="Why; kept on the incident and in the audit trail."),
            lift: bool = typer.Option(False, "--lift", help="Also end its throttle and suspension.")) -> None:
    """Resolve an incident; with --lift the principal (or key) gets its access back."""
    try:
        inc = incidents.resolve(open_store(), id, note, lift)
    except incidents.NotFound as e:
        fail(str(e))
    lifted = inc["history"][-1]["action"].endswith("+lift")
    err.print(f"incident {id} resolved" + (", containment lifted" if lifted else
                                           (" (throttle/suspension still in force: --lift ends it)"
                                            if inc["contained"] else "")))
    print_json({k: v for k, v in inc.items() if k != "evidence"})
