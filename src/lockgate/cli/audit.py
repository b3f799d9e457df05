"""`lockgate audit`: verify the trail, export it for a third party, verify an exported bundle."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer

from lockgate.cli.common import err, fail, open_store, print_json

app = typer.Typer(help="The signed, hash-chained audit trail.", no_args_is_help=True)


def _show(rep, json_out: bool) -> None:
    if json_out:
        print_json({"ok": rep.ok, "records": rep.records, "checkpoints": rep.checkpoints, "first_bad_seq": rep.seq,
                    "problem": rep.problem, "notes": rep.notes})
    if rep.ok:
        err.print(f"[green]ok[/]: {rep.records} record(s), {rep.checkpoints} signed checkpoint(s) verified")
        for n in rep.notes:
            err.print(f"note: {n}")
    else:
        err.print(f"[bold red]FAILED[/]: {rep.problem}", highlight=False)
        raise SystemExit(1)


def parse_time(value: str | None, flag: str) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{flag} {value!r} is not an ISO 8601 date or date-time")
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@app.command("verify")
def verify(
    public_key: Path = typer.Option(None, "--public-key", help="PEM to verify with [default: this gateway's key]."),
    json_out: bool = typer.Option(False, "--json", help="Also print the result as JSON on stdout."),
) -> None:
    """Recompute the chain and check every signed checkpoint; name the first bad record. Exit 1 on failure."""
    from lockgate.audit import signing
    from lockgate.audit.verify import verify_store

    try:
        pub = signing.load_public_key(public_key.read_text()) if public_key else None
    except (OSError, ValueError) as e:  # missing, a directory, not PEM
        fail(f"--public-key {public_key}: not a readable PEM public key: {e}")
    if pub is None and not signing.key_path().exists():
        fail(f"no signing key at {signing.key_path()}: pass --public-key")
    _show(verify_store(open_store(), pub), json_out)


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="Directory to write the bundle to."),
    since: str = typer.Option(None, "--since", help="First record time, ISO 8601 [default: all]."),
) -> None:
    """Write records, signed checkpoints and the public key: everything a third party needs to verify."""
    from lockgate.audit.verify import export as run

    try:
        m = run(open_store(), out, parse_time(since, "--since"))
    except OSError as e:  # exists and is not an empty directory, or cannot be created
        fail(f"--out {out}: {e.strerror or e}")
    err.print(f"exported records {m['first_seq']}..{m['last_seq']} ({m['records']}) to {out}")


@app.command("verify-bundle")
def verify_bundle(
    path: Path = typer.Argument(..., help="A directory written by `lockgate audit export`."),
    public_key: Path = typer.Option(None, "--public-key", help="PEM obtained independently [default: the bundle's]."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Verify an exported bundle; needs no store and no gateway."""
    from lockgate.audit.verify import verify_bundle as run

    try:
        rep = run(path, public_key.read_text() if public_key else None)
    except (OSError, ValueError, KeyError) as e:
        fail(f"{path}: not a readable bundle: {e}")
    _show(rep, json_out)


@app.command("public-key")
def public_key() -> None:
    """Print the gateway's Ed25519 public key (PEM), to publish or hand to auditors."""
    from lockgate.audit import signing

    typer.echo(signing.public_key_pem(), nl=False)


@app.command("show")
def show(request_id: str) -> None:
    """Print a request's record, and its content while still retained (checked against the record's hash)."""
    import json

    from sqlalchemy import select

    from lockgate.audit import content
    from lockgate.audit.tables import CONTENT, RECORDS

    store = open_store()
    with store.engine.connect() as c:
        body = c.execute(select(RECORDS.c.body).where(RECORDS.c.request_id == request_id)).scalar()
        blob = c.execute(select(CONTENT.c.blob).where(CONTENT.c.request_id == request_id)).scalar()
    if body is None:
        fail(f"no record for {request_id}")
    rec = json.loads(body)
    if blob is not None:
        from lockgate.audit import record_admin

        record_admin(store, None, "content.read", request_id, {"via": "cli"})  # every read of content is audited
        doc, digest = content.open_sealed(request_id, blob, content.content_key())
        rec["content"] = doc
        rec["content_matches_hash"] = digest == rec.get("content_sha256")
    print_json(rec)
