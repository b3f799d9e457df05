"""`lockgate`: serve the gateway and manage what it enforces."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.markup import escape

from lockgate import config as cfg
from lockgate.cli import admins, demo, directive, keys, principals
from lockgate.cli import audit, budgets, report, retention, usage
from lockgate.cli import models
from lockgate.cli import incidents, monitor
from lockgate.cli.common import err, fail, open_store

app = typer.Typer(help="lockgate: a gateway that decides, per request, who may use which model under which rules.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(principals.app, name="principals")
app.add_typer(keys.app, name="keys")
app.add_typer(admins.app, name="admins")
app.add_typer(models.app, name="models")
app.add_typer(audit.app, name="audit")
app.add_typer(retention.app, name="retention")
app.add_typer(budgets.app, name="budgets")
app.add_typer(report.app, name="report")
app.command("usage")(usage.usage)
app.add_typer(directive.app, name="directive")
app.add_typer(demo.app, name="demo")
app.add_typer(incidents.app, name="incidents")
app.add_typer(monitor.app, name="monitor")

try:  # the safeguards CLI pulls in heavier dependencies; the gateway runs without it
    from lockgate.cli import safety

    app.add_typer(safety.app, name="safety")
except ImportError:  # pragma: no cover
    pass


@app.command()
def serve(
    config: str = typer.Option(None, "--config", "-c", help="Config file (YAML). Without it: the embedded default."),
    host: str = typer.Option(None, help="Bind address [default: 127.0.0.1, or server.host]."),
    port: int = typer.Option(None, min=1, max=65535, help="Port [default: 8080, or server.port]."),
    log_level: str = typer.Option("info", help="debug | info | warning | error"),
    workers: int = typer.Option(1, min=1, help="Processes serving the port. Each has its own caches, breakers, "
                                "jailbreak monitor and journal; the audit chain and budgets are shared in the store."),
) -> None:
    """Start the gateway."""
    import uvicorn

    from lockgate.app import create_app
    from lockgate.store import open_store as _open

    if log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        fail(f"--log-level must be one of debug, info, warning, error, critical, not {log_level!r}")
    log_level = log_level.lower()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conf = cfg.load(config)
    except cfg.ConfigError as e:
        fail(str(e))
    try:  # the safety classifier's environment, read when the app starts: say what is wrong before that
        from lockgate.safeguards.embed import check_environment

        check_environment()
    except ValueError as e:
        fail(str(e))
    url = cfg.database_url(conf)
    try:
        store = _open(url)
    except Exception as e:
        fail(f"cannot open the store at {url.split('@')[-1]}: {type(e).__name__}: {e}")
    h = host or conf.server.host
    p = port or conf.server.port
    err.print(escape(f"lockgate: {len(conf.models)} model(s) [{', '.join(m.name for m in conf.models)}], "
                     f"store {store.engine.dialect.name}, home {cfg.home()}, listening on http://{h}:{p}"),
              highlight=False)
    if workers == 1:
        uvicorn.run(create_app(conf, store), host=h, port=p, log_level=log_level, access_log=False)
        return
    # Several processes: uvicorn imports the app in each; they find the config through the environment.
    store.dispose()
    os.environ["LOCKGATE_SERVE_CONFIG"] = str(Path(config).resolve()) if config else ""
    os.environ["LOCKGATE_SERVE_LOG_LEVEL"] = log_level
    uvicorn.run("lockgate.app:from_environment", factory=True, workers=workers, host=h, port=p,
                log_level=log_level, access_log=False)


@app.command()
def migrate() -> None:
    """Bring the store's schema up to date (serve also does this on start)."""
    store = open_store()
    err.print(f"store at revision {store.revision()}, schema up to date ({store.engine.dialect.name})")


@app.command("check-config")
def check_config(path: str) -> None:
    """Validate a config file (and that local model files exist) and print the catalog."""
    try:
        conf = cfg.check(path)
    except cfg.ConfigError as e:
        fail(str(e))
    for m in conf.models:
        typer.echo(f"{m.name}: " + ", ".join(f"{d.provider}:{d.model}" for d in m.deployments))


def main() -> None:
    """The ``lockgate`` command. A file that cannot be read or written, text that is not UTF-8 or a number out of
    range, wherever a command meets it, is a one-line error, not a traceback (``LOCKGATE_DEBUG=1`` shows it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        app()
    except (OSError, UnicodeDecodeError, OverflowError) as e:
        if os.environ.get("LOCKGATE_DEBUG"):
            raise
        fail(f"a file is not UTF-8 text ({e.reason})" if isinstance(e, UnicodeDecodeError) else f"{type(e).__name__}: {e}")
