"""`lockgate retention`: purge stored prompts and answers past the retention window."""

from __future__ import annotations

import typer

from lockgate.cli.audit import parse_time
from lockgate.cli.common import err, fail, open_store

app = typer.Typer(help="Content retention (prompts and answers; the audit metadata stays).", no_args_is_help=True)


@app.command("purge")
def purge(
    days: float = typer.Option(None, "--days", min=0, max=36500,
                               help="Keep this many days [default: audit.content_days, or 30]."),
    config: str = typer.Option(None, "--config", "-c", help="Config file to read audit.content_days from."),
    now: str = typer.Option(None, "--now", help="Pretend it is this time (ISO 8601); with --dry-run, to see what a later purge takes."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be purged; delete nothing."),
) -> None:
    """Delete content older than the retention window. The chained records keep only its hash."""
    from lockgate import config as cfg
    from lockgate.audit import content
    from lockgate.audit.settings import AuditSettings

    if days is None:
        try:
            days = AuditSettings.of(cfg.load(config)).content_days if config else 30.0
        except cfg.ConfigError as e:
            fail(str(e))
    n = content.purge(open_store(config), days, parse_time(now, "--now"), dry_run=dry_run)
    err.print(f"{'would purge' if dry_run else 'purged'} the content of {n} request(s) older than {days:g} day(s)")
