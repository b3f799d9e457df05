"""Audit trail: one chained record per request and admin action; tampering is detected and named;
exported bundles verify with the public key alone; content is purged after the retention window."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from support import fake_models, run_gateway
from lockgate.audit import chain, content, record_admin
from lockgate.audit.report import markdown
from lockgate.audit.verify import export, verify_bundle, verify_store
from lockgate.cli.main import app as cli

runner = CliRunner()


def chat(gw, key, stream=False, model="gpt-fake", text="hi", api="openai"):
    if api == "anthropic":
        return httpx.post(gw.url + "/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                          json={"model": model, "max_tokens": 16, "stream": stream,
                                "messages": [{"role": "user", "content": text}]}, timeout=30)
    return httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]},
                      timeout=30)


def records(store) -> list[dict]:
    with store.engine.connect() as c:
        return [json.loads(b) for (b,) in c.execute(sa.text("SELECT body FROM audit_records ORDER BY seq"))]


def audit_stage(gw):
    return gw.server.server.config.app.state.gateway.pipeline.stage("audit")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def trail(home, fake, store):
    """A gateway's trail with admin actions and a mix of APIs, streaming and not."""
    with run_gateway({"models": fake_models(fake.url)}, store) as gw:
        key = gw.key("alice", "acme", citizenships={"value": ["FR", "DE"], "source": "hr"})
        for api in ("openai", "anthropic"):
            for stream in (False, True):
                r = chat(gw, key, stream, "gpt-fake" if api == "openai" else "claude-fake", f"q-{api}-{stream}", api)
                assert r.status_code == 200, r.text
        assert chat(gw, "lg-wrong").status_code == 401
    return store  # leaving the block stops the gateway, which drains the queue and signs the tail


def test_every_request_and_admin_action_has_a_record(trail):
    recs = records(trail)
    kinds = [(r["type"], r.get("action") or r.get("status")) for r in recs]
    assert kinds[:2] == [("admin", "principal.add"), ("admin", "key.create")]
    reqs = [r for r in recs if r["type"] == "request"]
    assert [r["status"] for r in reqs] == [200, 200, 200, 200, 401]
    first = reqs[0]
    assert first["principal"] == "alice" and first["org"] == "acme" and first["key_id"].startswith("key_")
    assert first["model_requested"] == first["model_served"] == "gpt-fake"
    assert first["citizenships"] == ["DE", "FR"]
    # fake upstream: 7 tokens in, 2 out ("echo: ..."); gpt-fake costs $1 / $2 per Mtok
    assert (first["tokens_in"], first["tokens_out"], first["cost_micro_usd"]) == (7, 2, 7 * 1 + 2 * 2)
    assert [h["outcome"] for h in first["hops"]] == ["served"]
    assert all(r["content_sha256"] for r in reqs[:4]) and reqs[4]["content_sha256"] is None
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    rep = verify_store(trail)
    assert rep.ok and rep.records == len(recs) and rep.checkpoints >= 1, rep
    assert not rep.notes  # the gateway signed the tail when it stopped


def test_content_is_encrypted_and_matches_the_record(trail):
    rec = next(r for r in records(trail) if r["type"] == "request")
    with trail.engine.connect() as c:
        blob = c.execute(sa.text("SELECT blob FROM audit_content WHERE request_id = :r"),
                         {"r": rec["request_id"]}).scalar()
    assert b"q-openai-False" not in bytes(blob)
    doc, digest = content.open_sealed(rec["request_id"], bytes(blob), content.content_key())
    assert doc["messages"][0]["content"] == "q-openai-False" and doc["answer"] == "echo: q-openai-False"
    assert digest == rec["content_sha256"]


def _tamper(store, how: str, k: int) -> None:
    with store.engine.begin() as c:
        if how == "edit":
            body = c.execute(sa.text("SELECT body FROM audit_records WHERE seq = :k"), {"k": k}).scalar()
            c.execute(sa.text("UPDATE audit_records SET body = :b WHERE seq = :k"),
                      {"b": body.replace('"status":200', '"status":403'), "k": k})
        elif how == "delete":
            c.execute(sa.text("DELETE FROM audit_records WHERE seq = :k"), {"k": k})
        elif how == "reorder":  # swap records k and k+1, each keeping its own hash and links
            c.execute(sa.text("UPDATE audit_records SET seq = -1 WHERE seq = :k"), {"k": k})
            c.execute(sa.text("UPDATE audit_records SET seq = :k WHERE seq = :n"), {"k": k, "n": k + 1})
            c.execute(sa.text("UPDATE audit_records SET seq = :n WHERE seq = -1"), {"n": k + 1})
        elif how == "truncate":
            c.execute(sa.text("DELETE FROM audit_records WHERE seq >= :k"), {"k": k})
            c.execute(sa.text("UPDATE audit_head SET size = :s"), {"s": k - 1})
        elif how == "rewrite":  # edit, then recompute every later link: only the signatures can tell
            rows = c.execute(sa.text("SELECT seq, body, prev FROM audit_records WHERE seq >= :k ORDER BY seq"),
                             {"k": k}).all()
            prev = rows[0].prev
            for seq, body, _ in rows:
                if seq == k:
                    body = body.replace('"status":200', '"status":403')
                h = chain.link(prev, body)
                c.execute(sa.text("UPDATE audit_records SET body = :b, prev = :p, hash = :h WHERE seq = :s"),
                          {"b": body, "p": prev, "h": h, "s": seq})
                prev = h
            c.execute(sa.text("UPDATE audit_head SET hash = :h"), {"h": prev})


@pytest.mark.parametrize("how", ["edit", "delete", "reorder", "truncate", "rewrite"])
def test_verify_names_the_first_tampered_record(trail, how, monkeypatch):
    k = 4
    assert verify_store(trail).ok
    _tamper(trail, how, k)
    rep = verify_store(trail)
    assert not rep.ok
    word = {"edit": "edited", "delete": "missing", "reorder": "reordered", "truncate": "missing",
            "rewrite": "rewritten"}[how]
    assert word in rep.problem, rep.problem
    if how == "rewrite":  # links recomputed: named as the span since the last good checkpoint
        assert rep.seq <= k
    else:
        assert rep.seq == k and (f"record {k} " in rep.problem or f"records {k}.." in rep.problem)
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", trail.url)
    res = runner.invoke(cli, ["audit", "verify"])
    assert res.exit_code == 1 and word in res.output


def test_bundle_verifies_with_the_public_key_alone(trail, tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    m = export(trail, out)
    assert m["first_seq"] == 1 and m["last_seq"] == len(records(trail))
    # a third party: another home (no signing key), no store
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", "sqlite:////nonexistent/dir/x.db")
    res = runner.invoke(cli, ["audit", "verify-bundle", str(out)])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "elsewhere" / "signing.key").exists()
    lines = (out / "records.jsonl").read_text().splitlines()
    line = json.loads(lines[2])
    line["body"] = line["body"].replace('"status":200', '"status":500')
    lines[2] = json.dumps(line)
    (out / "records.jsonl").write_text("\n".join(lines) + "\n")
    rep = verify_bundle(out)
    assert not rep.ok and rep.seq == 3 and "edited" in rep.problem


def test_bundle_since_and_a_foreign_key_fail_cleanly(trail, tmp_path):
    recs = records(trail)
    since = datetime.fromisoformat(recs[3]["at"])
    out = tmp_path / "b"
    m = export(trail, out, since=since)
    assert m["first_seq"] >= 3 and verify_bundle(out).ok
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lockgate.audit import signing

    other = signing.public_key_pem(Ed25519PrivateKey.generate())
    rep = verify_bundle(out, other)
    assert not rep.ok and "signature" in rep.problem


def test_retention_purges_old_content_and_keeps_the_chain(home, fake, store, monkeypatch):
    now = datetime.now(timezone.utc)
    with run_gateway({"models": fake_models(fake.url), "audit": {"content_days": 30}}, store) as gw:
        key = gw.key()
        stage = audit_stage(gw)
        stage.clock = lambda: now - timedelta(days=31)
        assert chat(gw, key, text="old question").status_code == 200
        stage.clock = lambda: now - timedelta(days=29)
        assert chat(gw, key, text="recent question").status_code == 200
    old, recent = [r for r in records(store) if r["type"] == "request"]
    assert content.read(store, old["request_id"])["messages"][0]["content"] == "old question"
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", store.url)
    assert runner.invoke(cli, ["retention", "purge", "--days", "-1"]).exit_code == 2  # once, it deleted both
    res = runner.invoke(cli, ["retention", "purge", "--days", "30", "--dry-run"])
    assert res.exit_code == 0 and "would purge the content of 1 request" in res.output, res.output
    assert content.read(store, old["request_id"]) is not None
    res = runner.invoke(cli, ["retention", "purge", "--days", "30"])
    assert res.exit_code == 0 and "purged the content of 1 request" in res.output, res.output
    assert content.read(store, old["request_id"]) is None
    assert content.read(store, recent["request_id"])["answer"] == "echo: recent question"
    assert records(store)[-2]["content_sha256"] == old["content_sha256"]  # metadata stays
    assert verify_store(store).ok
    # moving the clock on: the second one goes too
    assert content.purge(store, 30, now + timedelta(days=2)) == 1
    assert content.read(store, recent["request_id"]) is None and verify_store(store).ok


def test_revocation_and_direct_calls_are_in_the_trail(home, fake, store):
    from lockgate.identity import keys

    with run_gateway({"models": fake_models(fake.url)}, store) as gw:
        gw.key("bob", None)
        kid = keys.list_keys(store, "bob")[0].id
        keys.revoke_key(store, kid)
        seq = record_admin(store, "ops@example", "directive.publish", "dir-1", {"version": 3})
    recs = records(store)
    assert [r["action"] for r in recs] == ["principal.add", "key.create", "key.revoke", "directive.publish"]
    assert recs[2]["target"] == kid and recs[3]["actor"] == "ops@example" and seq == 4
    assert verify_store(store).ok


def test_metrics_endpoint(home, fake, store):
    with run_gateway({"models": fake_models(fake.url)}, store) as gw:
        key = gw.key()
        assert chat(gw, key).status_code == 200
        assert chat(gw, key, model="nope").status_code == 404
        body = httpx.get(gw.url + "/metrics").text
    assert 'lockgate_requests_total{requested_model="gpt-fake",served_model="gpt-fake",status="200"}' in body
    assert 'status="404"' in body
    assert "lockgate_request_duration_seconds_bucket" in body
    assert 'lockgate_tokens_total{direction="output",served_model="gpt-fake"}' in body


def test_directive_report_aggregates_without_content(home, store, tmp_path, monkeypatch):
    t = datetime.now(timezone.utc)
    bodies = [
        {"type": "request", "at": chain.iso(t), "principal": "p1", "org": "acme", "citizenships": ["CN"],
         "model_requested": "big", "model_served": "small", "directives": ["export-2025"], "status": 200},
        {"type": "request", "at": chain.iso(t), "principal": "p2", "org": "acme", "citizenships": ["CN", "US"],
         "model_requested": "big", "model_served": None, "directives": ["export-2025"], "status": 403,
         "notice": "Not available under export rules."},
        {"type": "request", "at": chain.iso(t), "principal": "p3", "org": "other", "citizenships": ["FR"],
         "model_requested": "big", "model_served": "big", "directives": [], "status": 200},
    ]
    with store.engine.begin() as c:
        chain.append(c, [chain.Entry("request", t, b, f"req_{i}") for i, b in enumerate(bodies)])
    md = markdown(store, "export-2025")
    assert "Requests affected: **2**" in md and "Distinct principals affected: **2**" in md
    assert "| CN | 2 |" in md and "| US | 1 |" in md and "FR" not in md
    assert "| re-routed to small | 1 |" in md and "| denied | 1 |" in md and "| acme | 2 |" in md
    assert "p1" not in md and "p2" not in md
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", store.url)
    res = runner.invoke(cli, ["report", "directive", "export-2025", "--out", str(tmp_path / "r.md")])
    assert res.exit_code == 0 and "Requests affected: **2**" in (tmp_path / "r.md").read_text()


def test_sealed_content_gets_fresh_salts_and_nonces():
    key = bytes(32)
    blobs = [content.seal("req_x", {"messages": "same"}, key) for _ in range(600)]  # spans several refills
    assert len({b[:12] for b, _ in blobs}) == len(blobs)  # nonces
    assert len({d for _, d in blobs}) == len(blobs)  # salted digests
    assert content.open_sealed("req_x", blobs[-1][0], key)[0] == {"messages": "same"}
