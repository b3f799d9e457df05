"""Client mistakes get a 4xx in the shape of the API they called; upstream failures a 5xx with a body."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from lockgate.identity import keys


def post(gw, path, body=None, key=None, raw=None, headers=None):
    h = dict(headers or {})
    if key:
        h["authorization"] = f"Bearer {key}"
    return httpx.post(gw.url + path, json=body, content=raw, headers=h, timeout=30)


def openai_shape(r):
    e = r.json()["error"]
    assert isinstance(e["message"], str) and e["message"] and "Traceback" not in e["message"]
    assert e["type"]
    return e


def anthropic_shape(r):
    j = r.json()
    assert j["type"] == "error" and j["error"]["type"] and j["error"]["message"]
    return j["error"]


OK = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
OK_A = {"model": "gpt-fake", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_auth_errors(gateway):
    r = post(gateway, "/v1/chat/completions", OK)
    assert r.status_code == 401 and openai_shape(r)["type"] == "authentication_error"
    r = post(gateway, "/v1/messages", OK_A, headers={"x-api-key": "lg-nope"})
    assert r.status_code == 401 and anthropic_shape(r)["type"] == "authentication_error"


def test_expired_and_revoked_keys(gateway):
    gateway.key("bob")
    with pytest.raises(ValueError, match="already past"):  # a key born expired is a typo, refused
        keys.create_key(gateway.store, "bob", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    soon = datetime.now(timezone.utc) + timedelta(seconds=1)
    expired, _ = keys.create_key(gateway.store, "bob", expires_at=soon)
    while datetime.now(timezone.utc) <= soon:
        time.sleep(0.05)
    r = post(gateway, "/v1/chat/completions", OK, key=expired)
    assert r.status_code == 401 and "expired" in openai_shape(r)["message"]
    secret, info = keys.create_key(gateway.store, "bob")
    assert post(gateway, "/v1/chat/completions", OK, key=secret).status_code == 200
    keys.revoke_key(gateway.store, info.id)
    deadline = time.time() + 5  # the gateway notices within its poll interval
    while time.time() < deadline:
        r = post(gateway, "/v1/chat/completions", OK, key=secret)
        if r.status_code == 401:
            break
        time.sleep(0.05)
    assert r.status_code == 401 and "revoked" in openai_shape(r)["message"]


def test_unknown_model_404(gateway):
    key = gateway.key()
    r = post(gateway, "/v1/chat/completions", {**OK, "model": "nope"}, key=key)
    assert r.status_code == 404 and openai_shape(r)["code"] == "model_not_found"
    r = post(gateway, "/v1/messages", {**OK_A, "model": "nope"}, key=key)
    assert r.status_code == 404 and anthropic_shape(r)["type"] == "not_found_error"


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b"\xff\xfe", b""])
def test_malformed_json_400(gateway, raw):
    key = gateway.key()
    r = post(gateway, "/v1/chat/completions", raw=raw, key=key, headers={"content-type": "application/json"})
    assert r.status_code == 400 and openai_shape(r)
    r = post(gateway, "/v1/messages", raw=raw, key=key, headers={"content-type": "application/json"})
    assert r.status_code == 400 and anthropic_shape(r)["type"] == "invalid_request_error"


def test_invalid_fields_name_the_field(gateway):
    key = gateway.key()
    r = post(gateway, "/v1/chat/completions", {**OK, "temperature": "hot"}, key=key)
    assert r.status_code == 400 and "temperature" in openai_shape(r)["message"]
    r = post(gateway, "/v1/messages", {"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}]}, key=key)
    assert r.status_code == 400 and "max_tokens" in anthropic_shape(r)["message"]


def test_body_too_large_413(gateway):
    key = gateway.key()
    big = {**OK, "messages": [{"role": "user", "content": "x" * (1024 * 1024 + 10)}]}
    r = post(gateway, "/v1/chat/completions", big, key=key)
    assert r.status_code == 413 and openai_shape(r)
    r = post(gateway, "/v1/messages", {**OK_A, "messages": big["messages"]}, key=key)
    assert r.status_code == 413 and anthropic_shape(r)["type"] == "request_too_large"


def test_unknown_route_is_shaped(gateway):
    r = httpx.get(gateway.url + "/v1/nothing")
    assert r.status_code == 404 and openai_shape(r)


def test_health_and_ready(gateway):
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(gateway.url + "/readyz")
    assert r.status_code == 200 and r.json()["store"] is True


def test_crash_on_a_chat_route_is_a_shaped_500(gateway, monkeypatch):
    pipeline = gateway.server.server.config.app.state.gateway.pipeline

    async def boom(ctx):
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "run", boom)
    key = gateway.key()
    r = post(gateway, "/v1/chat/completions", OK, key)
    assert r.status_code == 500 and "Internal error" in openai_shape(r)["message"]
    r = post(gateway, "/v1/messages", OK_A, headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    assert r.status_code == 500 and "Internal error" in anthropic_shape(r)["message"]


def test_chat_routes_answer_other_methods_with_a_shaped_405(gateway):
    r = httpx.get(gateway.url + "/v1/chat/completions")
    assert r.status_code == 405 and openai_shape(r)


def test_a_malformed_content_part_is_named_not_called_untranslatable(gateway):
    key = gateway.key()
    bad_text = {**OK, "messages": [{"role": "user", "content": [{"type": "text"}]}]}
    r = post(gateway, "/v1/chat/completions", bad_text, key=key)
    assert r.status_code == 400 and openai_shape(r)["param"] == "messages.0.content.0.text", r.text
    untyped = {**OK_A, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    r = post(gateway, "/v1/messages", untyped, headers={"x-api-key": key})
    assert r.status_code == 400 and "needs a type" in anthropic_shape(r)["message"], r.text


def test_anthropic_messages_need_content_except_a_final_prefill(gateway):
    key = {"x-api-key": gateway.key()}
    for content in ("", []):
        body = {**OK_A, "messages": [{"role": "user", "content": content}]}
        r = post(gateway, "/v1/messages", body, headers=key)
        assert r.status_code == 400 and "messages.0: all messages must have non-empty content" in anthropic_shape(r)["message"]
    blank_block = {**OK_A, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}
    r = post(gateway, "/v1/messages", blank_block, headers=key)
    assert r.status_code == 400 and "messages.0.content.0: text content blocks must be non-empty" in r.text
    prefill = {**OK_A, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}
    assert post(gateway, "/v1/messages", prefill, headers=key).status_code == 200
