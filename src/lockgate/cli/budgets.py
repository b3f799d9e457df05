"""`lockgate budgets`: spending limits and rate limits per key, principal or organisation."""

from __future__ import annotations

import typer
from rich.table import Table

from lockgate.cli.common import err, fail, open_store

app = typer.Typer(help="Budgets (USD) and rate limits (requests, tokens) per key, principal or org.",
                  no_args_is_help=True)


@app.command("set")
def set_(
    scope: str = typer.Option(..., "--scope", help="org | principal | key"),
    id: str = typer.Option(..., "--id", help="The org, principal or key id."),
    period: str = typer.Option(..., "--period", help="day | month (budgets); minute | day (rate limits)"),
    usd: float = typer.Option(None, "--usd", help="Budget in USD for the period."),
    requests: int = typer.Option(None, "--requests", help="Requests allowed in the period."),
    tokens: int = typer.Option(None, "--tokens", help="Tokens (in + out) allowed in the period."),
) -> None:
    """Set (or replace) a limit. Running gateways apply it within a second."""
    from lockgate.metering import budgets

    given = [(m, v) for m, v in (("usd", usd), ("requests", requests), ("tokens", tokens)) if v is not None]
    if len(given) != 1:
        fail("give exactly one of --usd, --requests, --tokens")
    metric, value = given[0]
    store = open_store()
    try:
        lim = budgets.set_limit(store, scope, id, period, metric, budgets.amount_of(metric, value))
    except ValueError as e:
        fail(str(e))
    err.print(f"limit set: {lim.describe()}")
    if budgets.unknown_subject(store, scope, id):
        err.print(f"[yellow]warning:[/] no {scope} {id!r} exists yet; the limit applies once one does (a typo?)")


@app.command("remove")
def remove(scope: str = typer.Option(..., "--scope"), id: str = typer.Option(..., "--id"),
           period: str = typer.Option(..., "--period"),
           metric: str = typer.Option("usd", "--metric", help="usd | requests | tokens")) -> None:
    """Remove a limit."""
    from lockgate.metering import budgets

    if not budgets.remove_limit(open_store(), scope, id, period, metric):
        fail("no such limit")
    err.print("limit removed")


@app.command("list")
def list_() -> None:
    """Limits with what is spent and reserved in the current period."""
    from lockgate.metering import budgets

    t = Table("scope", "id", "period", "limit", "spent", "reserved")
    fmt = lambda lim, a: f"${a / budgets.MICRO:,.4f}" if lim.metric == "usd" else f"{a:,} {lim.metric}"  # noqa: E731
    for lim, (spent, reserved) in budgets.counters(open_store()).items():
        t.add_row(lim.scope, lim.scope_id, lim.period, fmt(lim, lim.amount), fmt(lim, spent), fmt(lim, reserved))
    from rich.console import Console

    Console().print(t)
