"""`lockgate keys`: create, list, revoke."""

from __future__ import annotations

from datetime import datetime

import typer

from lockgate.cli.common import err, fail, open_store, print_json
from lockgate.identity import keys, principals

app = typer.Typer(help="API keys: shown once at creation, stored hashed, revocable.", no_args_is_help=True)


@app.command("create")
def create(
    principal: str = typer.Option(..., "--principal", help="The principal the key acts for."),
    expires: str = typer.Option(None, "--expires", help="Expiry as ISO 8601, e.g. 2027-01-01T00:00:00Z."),
    name: str = typer.Option("", help="A label for the key."),
) -> None:
    """Create a key. The key is the only line on stdout; it cannot be shown again."""
    expires_at = None
    if expires:
        try:
            expires_at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--expires {expires!r} is not an ISO 8601 date-time")
    try:
        secret, info = keys.create_key(open_store(), principal, expires_at=expires_at, name=name)
    except (keys.NotFound, ValueError) as e:
        fail(str(e))
    err.print(f"created key [bold]{info.id}[/] for {principal}" + (f", expires {info.expires_at}" if expires_at else ""))
    typer.echo(secret)


@app.command("list")
def list_(principal: str = typer.Option(None, "--principal")) -> None:
    """List keys (never their secrets)."""
    store = open_store()
    if principal:
        try:  # a typo would print an empty list, as if the principal had no keys
            principals.get_principal(store, principal)
        except keys.NotFound as e:
            fail(str(e))
    print_json([k.to_dict() for k in keys.list_keys(store, principal)])


@app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key; running gateways refuse it within a second."""
    try:
        info = keys.revoke_key(open_store(), key_id)
    except keys.NotFound as e:
        fail(str(e))
    err.print(f"revoked key [bold]{info.id}[/]")
