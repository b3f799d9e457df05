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


# What each command needs (see admin/roles.py). A command missing here needs the admin role: fail closed.
NEEDS = {
    "migrate": None, "demo june-12": None,
    "principals add": "principals.write", "principals import": "principals.write", "principals attest": "principals.write",
    "principals list": "principals.read", "principals show": "principals.read",
    "keys create": "keys.write", "keys revoke": "keys.write", "keys list": "keys.read", "admins add": "admins.write", "admins list": "keys.read",
    "directive plan": "directives.read", "directive list": "directives.read", "directive history": "directives.read",
    "directive verify": "directives.read", "directive apply": "directives.write", "directive revoke": "directives.write",
    "audit verify": "audit.read", "audit export": "audit.read", "audit show": "content.read",
    "usage": "usage.read", "budgets list": "usage.read", "budgets set": "budgets.write", "budgets remove": "budgets.write",
    "report directive": "reports.read", "retention purge": "retention.write",
    "incidents list": "incidents.read", "incidents show": "incidents.read", "incidents resolve": "incidents.write",
    "models status": "models.read", "models restore": "models.write",
}


def _command() -> str:
    try:  # typer vendors click from 0.2x on; older releases use click itself
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover
        from click import get_current_context

    names, ctx = [], get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:  # the root's name is the program's: skip it
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def authorize(store, command: str | None = None) -> str:
    """The CLI enforces the same roles as the admin API. Until the store has its first admin key, the local
    operator is a bootstrap admin; after that, LOCKGATE_ADMIN_KEY must hold a key whose role allows it."""
    import getpass
    import os

    from sqlalchemy import select

    from lockgate.admin import roles
    from lockgate.store.models import ApiKey

    command = _command() if command is None else command
    need = NEEDS.get(command, "admin.*")
    if need is None:
        return f"cli:{getpass.getuser()}"
    secret = os.environ.get("LOCKGATE_ADMIN_KEY")
    if not secret:
        with store.session() as s:
            has_admins = s.scalars(select(ApiKey.id).where(ApiKey.role.is_not(None),
                                                           ApiKey.revoked_at.is_(None)).limit(1)).first()
        if has_admins is None:
            return os.environ.get("LOCKGATE_ACTOR") or f"cli:{getpass.getuser()}"
        fail(f"`lockgate {command}` needs {need}: this store has admins, so set LOCKGATE_ADMIN_KEY to your admin key")
    try:
        actor = roles.authenticate(store, secret)
    except roles.Unauthenticated as e:
        fail(f"LOCKGATE_ADMIN_KEY: {e}")
    if not actor.may(need):
        roles.denied(store, actor, need, f"cli: lockgate {command}")
        fail(f"role {actor.role!r} may not {need} (`lockgate {command}`); the attempt was recorded")
    os.environ["LOCKGATE_ACTOR"] = actor.id  # admin records made by this command name the person
    return actor.id


def open_store(config_path: str | None = None, check: bool = True):
    """The store of $LOCKGATE_HOME / LOCKGATE_DATABASE_URL (or the config's), after the role check."""
    from lockgate.store import open_store as _open

    try:
        conf = cfg.load(config_path) if config_path else None
        store = _open(cfg.database_url(conf))
    except cfg.ConfigError as e:
        fail(str(e))
    except Exception as e:  # unreachable database, bad URL
        fail(f"cannot open the store: {type(e).__name__}: {e}")
    if check:
        authorize(store)
    return store


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
