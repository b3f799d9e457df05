"""`lockgate report`: transparency reports built from the audit trail."""

from __future__ import annotations

from pathlib import Path

import typer

from lockgate.cli.audit import parse_time
from lockgate.cli.common import err, fail, open_store

app = typer.Typer(help="Transparency reports (Markdown, aggregates only).", no_args_is_help=True)


@app.command("directive")
def directive(
    directive_id: str = typer.Argument(..., help="The directive id."),
    out: Path = typer.Option(None, "--out", help="Write here [default: stdout]."),
    since: str = typer.Option(None, "--since", help="Only requests from this time (ISO 8601)."),
) -> None:
    """What a directive changed, how many requests and principals it touched, by citizenship and org."""
    from lockgate.audit.report import UnknownDirective, markdown

    try:
        text = markdown(open_store(), directive_id, parse_time(since, "--since"))
    except UnknownDirective as e:
        fail(str(e))
    if out is None:
        typer.echo(text)
    else:
        try:
            out.write_text(text)
        except OSError as e:  # a directory, or a folder that does not exist
            fail(f"--out {out}: {e.strerror}")
        err.print(f"wrote {out}")
