"""`lockgate retention`: purge stored prompts and answers past the retention window."""

from __future__ import annotations

import typer

from lockgate.cli.audit import parse_time
from lockgate.cli.common import err, fail, open_store

app = typer.Typer(help="Content retention (prompts and answers; the audit metadata stays).", no_args_is_help=True)


@app.command("purge")
def purge(
    days: float = typer.Option(None, "--days", help="Keep this many days [default: audit.content_days, or 30]."),
    config: str = typer.Option(None, "--config", "-c", help="Config file to read audit.content_days from."),
    now: str = typer.Option(None, "--now", help="Pretend it is this time (ISO 8601), e.g. to preview a purge."),
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
    n = content.purge(open_store(config), days, parse_time(now, "--now"))
    err.print(f"purged the content of {n} request(s) older than {days:g} day(s)")
