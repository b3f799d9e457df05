"""`lockgate directive`: plan, apply, revoke, list, history, verify."""

from __future__ import annotations

import getpass
import os

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lockgate import config as cfg
from lockgate.cli.common import err, fail, open_store, print_json
from lockgate.directives import service
from lockgate.directives import store as dstore
from lockgate.directives.model import DirectiveError, load

app = typer.Typer(help="Directives: declarative rules (e.g. an export-control order), planned, signed and applied hot.",
                  no_args_is_help=True)
CONFIG = typer.Option(None, "--config", "-c", envvar="LOCKGATE_CONFIG", help="The gateway's config (for its catalog).")


def _conf(path: str | None) -> cfg.Config:
    try:
        return cfg.load(path)
    except cfg.ConfigError as e:
        fail(str(e))


def _actor() -> str:
    return os.environ.get("LOCKGATE_ACTOR") or f"cli:{getpass.getuser()}"


@app.command("plan")
def plan_(file: str, days: int = typer.Option(7, min=1, max=3650, help="Replay this many days of requests."), config: str = CONFIG,
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Validate a directive and report who would lose or change access. Changes nothing."""
    conf = _conf(config)
    try:
        d = load(file)
        store = open_store(config)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("reading principals", total=None)
            p = service.plan(store, conf, d, days, progress=lambda n: bar.advance(task, n))
    except DirectiveError as e:
        fail(str(e))
    if as_json:
        return print_json(p.to_dict())
    out = Console()
    out.print(f"[bold]{d.id}[/] — {d.title}\n{p.principals} principals in {p.groups} attribute groups; "
              f"[bold]{len(p._affected)}[/] would lose or change access.")
    for title, counter in (("change", p.changed), ("model", p.by_model), ("citizenship", p.by_citizenship),
                           ("organisation", p.by_org), ("replayed request change", p.replay_changed)):
        if counter:
            t = Table(title, "count", title=f"by {title}")
            for k, v in counter.most_common():
                t.add_row(k, str(v))
            out.print(t)
    out.print(f"replayed {p.replayed} logged request(s) from the last {days} day(s)")
    for n in p.notes:
        out.print(f"[yellow]note:[/] {n}")


@app.command("apply")
def apply_(file: str, config: str = CONFIG) -> None:
    """Validate, sign and apply a directive; running gateways enforce it within a second."""
    conf = _conf(config)
    try:
        d = load(file)
        row = service.apply(open_store(config), conf, d, _actor())
    except DirectiveError as e:
        fail(str(e))
    err.print(f"applied [bold]{row.directive_id}[/] as policy version {row.seq} (hash {row.hash[:16]}…)")
    if missing := [m for m in d.models if conf.model(m) is None]:  # applied: another replica's catalog may serve them
        err.print(f"[yellow]warning:[/] not in this catalog: {', '.join(missing)} (a typo, or another config than -c?)")


@app.command("revoke")
def revoke_(directive_id: str, config: str = CONFIG) -> None:
    """Withdraw a directive; access it restricted comes back within a second."""
    try:
        row = service.revoke(open_store(config), directive_id, _actor())
    except DirectiveError as e:
        fail(str(e))
    err.print(f"revoked [bold]{directive_id}[/] as policy version {row.seq}")


@app.command("list")
def list_(config: str = CONFIG, as_json: bool = typer.Option(False, "--json")) -> None:
    """Directives in force or scheduled."""
    state = dstore.load_state(open_store(config))
    rows = [d.model_dump(mode="json") for d in state.applied]
    if as_json:
        return print_json({"policy_version": state.version, "directives": rows})
    t = Table("id", "effect", "models", "fallback", "effective from", "until", title=f"policy version {state.version}")
    for d in state.applied:
        t.add_row(d.id, d.effect, ", ".join(d.models), d.fallback or "", str(d.effective_from or "-"),
                  str(d.effective_until or "-"))
    Console().print(t)


@app.command("history")
def history(directive_id: str = typer.Argument(None), config: str = CONFIG) -> None:
    """Every version: what, when, by whom, its hash and the previous one."""
    print_json([{"version": r.seq, "directive": r.directive_id, "action": r.action, "at": r.applied_at,
                 "by": r.applied_by, "digest": r.digest, "prev_hash": r.prev_hash, "hash": r.hash,
                 "signature": r.signature} for r in dstore.history(open_store(config), directive_id)])


@app.command("verify")
def verify(config: str = CONFIG) -> None:
    """Check the version chain and every signature."""
    problems = dstore.verify(open_store(config))
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        raise SystemExit(1)
    err.print("[green]✓[/] directive history intact")


@app.command("public-key")
def public_key() -> None:
    """Print the gateway's Ed25519 public key (PEM)."""
    from lockgate.audit.signing import public_key_pem

    typer.echo(public_key_pem().rstrip())
