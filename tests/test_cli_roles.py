"""The CLI enforces the admin API's roles once a store has admins; refusals are audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select

from lockgate.audit.tables import AuditRecord


def cli(home, url, *args, key=None):
    env = {**os.environ, "LOCKGATE_HOME": str(home), "LOCKGATE_DATABASE_URL": url}
    env.pop("LOCKGATE_ADMIN_KEY", None)
    if key:
        env["LOCKGATE_ADMIN_KEY"] = key
    return subprocess.run([sys.executable, "-m", "lockgate", *args], env=env, capture_output=True, text=True, timeout=120)


def test_bootstrap_then_roles(store, store_url, tmp_path):
    assert cli(tmp_path, store_url, "principals", "add", "boss").returncode == 0  # no admins yet: bootstrap
    r = cli(tmp_path, store_url, "admins", "add", "boss", "--role", "admin")
    assert r.returncode == 0
    boss = r.stdout.strip()
    assert boss.startswith("lg-") and len(r.stdout.strip().splitlines()) == 1
    r = cli(tmp_path, store_url, "principals", "add", "x")  # admins exist now: a key is required
    assert r.returncode != 0 and "LOCKGATE_ADMIN_KEY" in r.stderr
    viewer = cli(tmp_path, store_url, "admins", "add", "vic", "--role", "viewer", key=boss).stdout.strip()
    assert viewer.startswith("lg-")
    r = cli(tmp_path, store_url, "principals", "add", "y", key=viewer)
    assert r.returncode != 0 and "may not" in r.stderr
    assert cli(tmp_path, store_url, "directive", "list", "--json", key=viewer).returncode == 0
    r = cli(tmp_path, store_url, "principals", "add", "z", key=boss)
    assert r.returncode == 0, r.stderr
    with store.session() as s:
        bodies = [json.loads(b) for b in s.scalars(select(AuditRecord.body).where(AuditRecord.kind == "admin"))]
    assert any(b["action"] == "admin.denied" and b["actor"] == "vic" for b in bodies)
    assert any(b["action"] == "principal.add" and b["target"] == "z" and b["actor"] == "boss" for b in bodies)
