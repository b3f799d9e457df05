"""`lockgate demo june-12`: the June-12 order, end to end, on the bundled model."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.table import Table

from lockgate.cli.common import err, fail

app = typer.Typer(help="Guided tours.", no_args_is_help=True)

PEOPLE = [  # id, who, org, citizenships, permanent residence, protected, programs, assurance, expired?
    ("ava", "US citizen", "acme", "US", "", "false", "", "kyc", False),
    ("bo", "US + Canadian citizen living in Toronto", "acme", "US;CA", "CA", "false", "", "kyc", False),
    ("chen", "Chinese citizen, provider employee in San Francisco", "provider", "CN", "", "false", "", "org", False),
    ("dana", "German citizen with a US green card", "acme", "DE", "US", "false", "", "kyc", False),
    ("eli", "no attestation", "", "", "", "", "", "self", False),
    ("fay", "US citizen in a Glasswing organisation", "shieldworks", "US", "", "false", "glasswing", "kyc", False),
    ("gus", "Indian citizen in a Glasswing organisation", "shieldworks", "IN", "", "false", "glasswing", "org", False),
    ("hana", "US citizen whose KYC expired last month", "acme", "US", "", "false", "", "kyc", True),
]


def _example(name: str) -> Path:
    here = Path(__file__).resolve().parents[3] / "examples" / name
    if here.is_dir():
        return here
    return Path(str(resources.files("lockgate") / "examples" / name))


def _csv(path: Path) -> None:
    now = datetime.now(timezone.utc)
    rows = ["id,name,org,citizenships,permanent_residence,protected_individual,programs,assurance,verified_at,expires_at"]
    for pid, _, org, cit, lpr, prot, prog, level, expired in PEOPLE:
        exp = now - timedelta(days=30) if expired else now + timedelta(days=365)
        rows.append(f"{pid},{pid.title()},{org},{cit},{lpr},{prot},{prog},{level},{(now - timedelta(days=400)).isoformat()},"
                    f"{exp.isoformat() if pid != 'eli' else ''}")
    path.write_text("\n".join(rows) + "\n")


@app.command("june-12")
def june_12(port: int = typer.Option(0, help="Port for the demo gateway (0: any free port).")) -> None:
    """Start a gateway, create principals, send requests before and after the order and after its revocation."""
    import uvicorn

    example = _example("june-12")
    home = Path(tempfile.mkdtemp(prefix="lockgate-demo-"))
    os.environ["LOCKGATE_HOME"] = str(home)
    os.environ.pop("LOCKGATE_DATABASE_URL", None)
    from lockgate import config as cfg
    from lockgate.app import create_app
    from lockgate.directives import model as dmodel
    from lockgate.directives import service
    from lockgate.identity import keys
    from lockgate.identity.importer import import_csv
    from lockgate.store import open_store

    conf = cfg.load(example / "lockgate.yaml")
    store = open_store(cfg.database_url(conf))
    _csv(home / "people.csv")
    import_csv(store, home / "people.csv")
    secrets = {p[0]: keys.create_key(store, p[0])[0] for p in PEOPLE}
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(conf, store), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    err.print(f"demo gateway on {url} (home {home}); loading the bundled model…")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        fail("the demo gateway did not become ready")

    def ask(pid: str, model: str) -> str:
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {secrets[pid]}"},
                       json={"model": model, "max_tokens": 4, "temperature": 0,
                             "messages": [{"role": "user", "content": "Hello"}]}, timeout=60)
        if r.status_code != 200:
            return f"{r.status_code} {r.json()['error']['message'][:40]}"
        served, why = r.headers.get("lockgate-served-model"), r.headers.get("lockgate-directives")
        return served + (f" ({why})" if why else "")

    directive = dmodel.load(example / "directive.yaml")
    phases = {}
    phases["before"] = {p[0]: (ask(p[0], "fable-5"), ask(p[0], "mythos-5")) for p in PEOPLE}
    row = service.apply(store, conf, directive, "demo")
    err.print(f"applied {directive.id} (policy version {row.seq}); waiting for the gateway to pick it up…")
    time.sleep(0.6)
    phases["order in force"] = {p[0]: (ask(p[0], "fable-5"), ask(p[0], "mythos-5")) for p in PEOPLE}
    service.revoke(store, directive.id, "demo")
    time.sleep(0.6)
    phases["after revocation"] = {p[0]: (ask(p[0], "fable-5"), ask(p[0], "mythos-5")) for p in PEOPLE}
    server.should_exit = True

    out = Console(width=max(Console().width, 132))
    for phase, answers in phases.items():
        t = Table("who", "facts", "asked fable-5 → served", "asked mythos-5 → served", title=f"June-12: {phase}")
        for pid, who, *_ in PEOPLE:
            t.add_row(pid, who, *answers[pid])
        out.print(t)
    out.print(f"notice given to re-routed clients: [italic]{directive.notice}[/]")
    out.print("All three models are backed by the bundled SmolLM2-135M in this demo; only the routing is real.")
