"""The web console at /console: its files are served as they should be, its script calls only admin API
routes that exist, renders data as text only, and the read-only endpoints added for it obey the roles."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from starlette.routing import Match
from support import fake_models

from lockgate import config as cfg
from lockgate.app import create_app
from lockgate.identity import keys, principals
from lockgate.routing import withdrawn

CONSOLE = Path(__file__).resolve().parent.parent / "src" / "lockgate" / "console"
JS = (CONSOLE / "app.js").read_text()
CALL = re.compile(r"""\bapi\(\s*"(GET|POST|PUT|DELETE)",\s*"(/admin/v1/[^"]*)\"""")
DIRECTIVE = """id: t-1
title: test
models: [gpt-fake]
when: "!principal.us_person"
effect: deny
"""


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "home"))  # the signing key lives there


def admin(gateway, role: str) -> dict:
    pid = f"{role}-person"
    principals.add_principal(gateway.store, pid, pid, "ops")
    secret, _ = keys.create_key(gateway.store, pid, role=role)
    return {"authorization": f"Bearer {secret}"}


def js_calls(source: str) -> list[tuple[str, str]]:
    """(method, path) of every admin API call; each path literal in the script must be one of them, so a call
    written another way (concatenation, a helper) cannot slip past the route check."""
    calls = CALL.findall(source)
    assert source.count("/admin/v1/") == len(calls), "an admin path in the script is not a literal api(...) call"
    return calls


def missing_routes(calls, app) -> list[tuple[str, str]]:
    """Calls no route of the app answers: asked of the routes themselves, as a request would be routed."""
    def routed(method: str, path: str) -> bool:
        scope = {"type": "http", "method": method, "path": re.sub(r"\{\w+\}", "1", path), "root_path": "",
                 "query_string": b"", "headers": []}
        return any(r.matches(scope)[0] == Match.FULL for r in app.routes)

    return [c for c in calls if not routed(*c)]


def test_console_files_are_served_without_a_key(gateway):
    for path, ctype in [("/console", "text/html"), ("/console/", "text/html"), ("/console/app.js", "text/javascript"),
                        ("/console/style.css", "text/css")]:
        r = httpx.get(gateway.url + path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"].startswith(ctype), (path, r.headers["content-type"])
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    page = httpx.get(gateway.url + "/console").text
    assert '<script src="/console/app.js"' in page and 'href="/console/style.css"' in page
    assert httpx.get(gateway.url + "/console/secret.py").status_code == 404
    assert httpx.get(gateway.url + "/console/__init__.py").status_code == 404


def test_console_fetches_nothing_from_the_network():
    for f in ("index.html", "app.js", "style.css"):
        text = (CONSOLE / f).read_text()
        assert not re.search(r"https?://|//cdn|@import|url\(", text), f


def test_script_renders_data_as_text_only():
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "localStorage"):
        assert sink not in JS, sink
    assert "sessionStorage" in JS


def test_script_and_page_agree():
    page = (CONSOLE / "index.html").read_text()
    ids = set(re.findall(r'\bid="([\w-]+)"', page))
    used = set(re.findall(r'\$\("([\w-]+)"\)', JS))
    assert used and used <= ids, used - ids
    views = set(re.findall(r'data-view="(\w+)"', page))
    assert views == set(re.findall(r"^  (\w+): \{ title:", JS, re.MULTILINE)) == {"directives", "audit", "incidents", "usage",
                                                                          "models"}


def test_every_admin_call_in_the_script_is_a_route(store):
    app = create_app(cfg.Config.model_validate({"models": fake_models("http://127.0.0.1:9")}), store)
    calls = js_calls(JS)
    assert len(calls) >= 12
    assert missing_routes(calls, app) == []
    # the check itself fails on a path or method the API does not have
    bogus = 'api("GET", "/admin/v1/nothing"); api("DELETE", "/admin/v1/usage"); api("GET", "/admin/v1/incidents/{id}/x")'
    assert len(missing_routes(js_calls(bogus), app)) == 3
    with pytest.raises(AssertionError):
        js_calls('fetch("/admin/v1/" + what)')


def test_data_endpoints_still_need_a_key(gateway):
    for method, path in set(js_calls(JS)):
        url = gateway.url + re.sub(r"\{\w+\}", "1", path)
        for headers in ({}, {"authorization": "Bearer nonsense"}):
            r = httpx.request(method, url, headers=headers, content=DIRECTIVE if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["error"]["type"] == "authentication_error"


# (path, permission) of the read-only endpoints added for the console
NEW = [("/admin/v1/audit/records", "audit.read"), ("/admin/v1/models", "models.read"),
       ("/admin/v1/directives/verify", "directives.read")]


@pytest.mark.parametrize("role", ["admin", "compliance", "security", "viewer"])
def test_new_endpoints_follow_the_roles(gateway, role):
    from lockgate.admin.roles import Actor

    h = admin(gateway, role)
    me = httpx.get(gateway.url + "/admin/v1/whoami", headers=h).json()
    assert me["id"] == f"{role}-person" and me["role"] == role
    for path, perm in NEW:
        r = httpx.get(gateway.url + path, headers=h)
        if Actor(me["id"], role).may(perm):
            assert r.status_code == 200, (role, path, r.text)
        else:
            assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error", (role, path, r.text)


def test_whoami_for_the_bootstrap_token_and_plain_keys(gateway, monkeypatch):
    monkeypatch.setenv("LOCKGATE_ADMIN_TOKEN", "break-glass-token")
    me = httpx.get(gateway.url + "/admin/v1/whoami", headers={"authorization": "Bearer break-glass-token"}).json()
    assert me == {"id": "bootstrap-token", "role": "admin", "permissions": ["*"]}
    plain = gateway.key("alice")
    assert httpx.get(gateway.url + "/admin/v1/whoami", headers={"authorization": f"Bearer {plain}"}).status_code == 401


def test_audit_records_newest_first_without_content(gateway):
    h = admin(gateway, "security")
    key = gateway.key("alice", "acme")
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                   json={"model": "gpt-fake", "messages": [{"role": "user", "content": "<img src=x onerror=alert(1)>"}]})
    assert r.status_code == 200, r.text
    rid = r.headers["lockgate-request-id"]
    deadline = time.time() + 10
    while True:  # the audit writer may still be flushing
        rows = httpx.get(gateway.url + "/admin/v1/audit/records", headers=h, params={"kind": "request"}).json()["data"]
        if rows or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [x["record"]["request_id"] for x in rows] == [rid]
    assert rows[0]["record"]["principal"] == "alice" and "onerror" not in str(rows[0])  # decisions, never content
    everything = httpx.get(gateway.url + "/admin/v1/audit/records", headers=h, params={"limit": 500}).json()["data"]
    seqs = [x["seq"] for x in everything]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 2
    older = httpx.get(gateway.url + "/admin/v1/audit/records", headers=h, params={"before": seqs[0], "limit": 1})
    assert [x["seq"] for x in older.json()["data"]] == [seqs[1]]
    assert httpx.get(gateway.url + "/admin/v1/audit/records", headers=h, params={"limit": 0}).status_code == 400


def test_models_status_shows_breakers_and_withdrawals(gateway):
    h = admin(gateway, "admin")
    res = httpx.get(gateway.url + "/admin/v1/models", headers=h).json()
    assert res["catalog"] == ["claude-fake", "gpt-fake"]
    assert {(d["model"], d["state"], d["breaker"]) for d in res["data"]} == {("claude-fake", "available", "closed"),
                                                                            ("gpt-fake", "available", "closed")}
    dep = next(d["deployment"] for d in res["data"] if d["model"] == "gpt-fake")
    withdrawn.mark_withdrawn(gateway.store, "gpt-fake", dep, "model_not_found", 404)
    row = next(d for d in httpx.get(gateway.url + "/admin/v1/models", headers=h).json()["data"]
               if d["model"] == "gpt-fake")
    assert row["state"] == "withdrawn" and row["withdrawn"] and row["reason"] == "model_not_found"
    assert row["breaker"] == "closed" and row["max_concurrency"] >= 1


def test_directive_verify_reports_a_tampered_signature(gateway):
    h = admin(gateway, "compliance")
    assert httpx.post(gateway.url + "/admin/v1/directives", headers=h, content=DIRECTIVE).status_code == 201
    assert httpx.get(gateway.url + "/admin/v1/directives/verify", headers=h).json() == {"ok": True, "problems": []}
    with gateway.store.engine.begin() as c:
        c.execute(sa.text("UPDATE directive_versions SET signature = 'AAAA'"))
    res = httpx.get(gateway.url + "/admin/v1/directives/verify", headers=h).json()
    assert res["ok"] is False and res["problems"] == ["version 1 (t-1): bad signature"]
