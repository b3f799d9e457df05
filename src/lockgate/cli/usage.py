"""`lockgate usage`: requests, tokens and spend, grouped as asked."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from lockgate.cli.common import fail, open_store, print_json


def usage(
    by: str = typer.Option("org,principal,model", "--by", help="Comma list of org, principal, key, model, day."),
    since: str = typer.Option(None, "--since", help="First day, YYYY-MM-DD."),
    until: str = typer.Option(None, "--until", help="Last day, YYYY-MM-DD."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Spend by org / principal / model (rollups are written about once a second)."""
    from lockgate.metering.usage import GROUPS, BadDay, report

    groups = [g.strip() for g in by.split(",") if g.strip()]
    if bad := [g for g in groups if g not in GROUPS]:
        fail(f"--by: unknown {', '.join(bad)} (choose from {', '.join(GROUPS)})")
    try:
        rows = report(open_store(), groups, since, until)
    except BadDay as e:
        fail(f"--{e}")
    if json_out:
        print_json([{**r, "cost_usd": r["cost_micro"] / 1e6} for r in rows])
        return
    t = Table(*groups, "requests", "tokens in", "tokens out", "cost (USD)")
    for r in rows:
        t.add_row(*(str(r[g]) for g in groups), f"{r['requests']:,}", f"{r['tokens_in']:,}", f"{r['tokens_out']:,}",
                  f"{r['cost_micro'] / 1e6:,.6f}")
    Console().print(t)
