"""What every CLI command shares: the store, output to stderr, clear failures."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

from rich.console import Console

from lockgate import config as cfg

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise SystemExit(code)


def open_store(config_path: str | None = None):
    from lockgate.store import open_store as _open

    try:
        conf = cfg.load(config_path) if config_path else None
        return _open(cfg.database_url(conf))
    except cfg.ConfigError as e:
        fail(str(e))
    except Exception as e:  # unreachable database, bad URL
        fail(f"cannot open the store: {type(e).__name__}: {e}")


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
