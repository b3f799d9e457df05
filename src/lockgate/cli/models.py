"""`lockgate models`: which deployments an upstream has withdrawn, and putting them back."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from lockgate import config as cfg
from lockgate.cli.common import err, fail, open_store, print_json

app = typer.Typer(help="Catalog models: deployments withdrawn by their upstream, and restoring them.",
                  no_args_is_help=True)

CONFIG = typer.Option(None, "--config", "-c", help="Config file: also list the catalog's healthy deployments.")


@app.command("status")
def status(config: str = CONFIG, as_json: bool = typer.Option(False, "--json")) -> None:
    """Withdrawn (and previously restored) deployments, as every gateway sharing this store sees them."""
    from lockgate.routing import withdrawn
    from lockgate.routing.balancer import deployment_key

    rows = withdrawn.list_states(open_store(config))
    if config:
        try:
            conf = cfg.load(config)
        except cfg.ConfigError as e:
            fail(str(e))
        known = {(r["model"], r["deployment"]) for r in rows}
        for m in conf.models:
            for up in m.deployments:
                if (m.name, deployment_key(up)) not in known:
                    rows.append({"model": m.name, "deployment": deployment_key(up), "state": "available",
                                 "reason": "", "upstream_status": None, "changed_at": None, "changed_by": "",
                                 "incidents": 0})
        rows.sort(key=lambda r: (r["model"], r["deployment"]))
    if as_json:
        return print_json(rows)
    if not rows:
        err.print("no deployment has been withdrawn")
        return
    t = Table("model", "deployment", "state", "since", "by", "incidents", "reason")
    for r in rows:
        style = "red" if r["state"] == "withdrawn" else None
        t.add_row(r["model"], r["deployment"], r["state"], (r["changed_at"] or "")[:19], r["changed_by"],
                  str(r["incidents"]), (r["reason"] or "")[:80], style=style)
    Console().print(t)


@app.command("restore")
def restore(
    name: str = typer.Argument(..., help="Catalog model name."),
    deployment: str = typer.Option(None, help="Only this deployment (as `models status` shows it)."),
    config: str = typer.Option(None, "--config", "-c", help="Config file (for its database_url)."),
) -> None:
    """Route to a withdrawn model again; running gateways notice within a second."""
    from lockgate.routing import withdrawn

    done = withdrawn.restore(open_store(config), name, deployment, by="cli")
    if not done:
        fail(f"model {name!r} has no withdrawn deployment" + (f" {deployment!r}" if deployment else ""))
    for d in done:
        err.print(f"restored [bold]{name}[/] deployment {d}")
