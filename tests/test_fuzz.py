"""Hostile and malformed bodies: never a 5xx, always an error in the shape of the API called."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_scalar = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=12)

message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "bogus", 3]),
                                 "content": json_value})
openai_body = st.fixed_dictionaries({"model": st.sampled_from(["gpt-fake", "claude-fake", "", "nope"]) | json_scalar,
                                     "messages": st.lists(message, max_size=3) | json_value},
                                    optional={"max_tokens": json_value, "temperature": json_value, "stream": json_value,
                                              "stop": json_value, "n": json_value, "tools": json_value,
                                              "stream_options": json_value})
anthropic_body = st.fixed_dictionaries({"model": st.sampled_from(["gpt-fake", "claude-fake"]) | json_scalar,
                                        "messages": st.lists(message, max_size=3) | json_value,
                                        "max_tokens": st.integers(-5, 50) | json_value},
                                       optional={"system": json_value, "stream": st.booleans() | json_value,
                                                 "stop_sequences": json_value, "temperature": json_value})

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def client(gateway):
    key = gateway.key("fuzzer")
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


def check(r: httpx.Response, api: str) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        j = r.json()
        if api == "openai":
            assert isinstance(j["error"]["message"], str) and j["error"]["type"]
        else:
            assert j["type"] == "error" and j["error"]["type"] and j["error"]["message"]


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_fuzz_openai(client):
    @FUZZ
    @given(openai_body | json_value)
    def run(body):
        check(client.post("/v1/chat/completions", json=body), "openai")

    run()


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_fuzz_anthropic(client):
    @FUZZ
    @given(anthropic_body | json_value)
    def run(body):
        check(client.post("/v1/messages", json=body), "anthropic")

    run()


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_fuzz_raw_bytes(client):
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=200), st.sampled_from(["/v1/chat/completions", "/v1/messages"]))
    def run(raw, path):
        check(client.post(path, content=raw, headers={"content-type": "application/json"}),
              "anthropic" if path == "/v1/messages" else "openai")

    run()
