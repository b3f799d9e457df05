"""The official SDKs, unchanged, against lockgate in front of fake upstreams: translation both ways."""

from __future__ import annotations

import anthropic
import openai
import pytest


def oa(gw, key):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def an(gw, key):
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


@pytest.mark.parametrize("model,upstream_api", [("gpt-fake", "openai"), ("claude-fake", "anthropic")])
def test_openai_sdk_non_streaming(gateway, fake, model, upstream_api):
    key = gateway.key()
    r = oa(gateway, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        max_tokens=20, temperature=0)
    c = r.parse()
    assert c.choices[0].message.content == "echo: hello there"
    assert c.model == model
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens == 3
    assert r.headers["lockgate-served-model"] == model
    sent = fake.requests[-1]
    assert sent["api"] == upstream_api
    if upstream_api == "anthropic":  # system moved to the top-level field, max_tokens kept
        assert sent["body"]["system"] == "be brief"
        assert sent["body"]["max_tokens"] == 20
        assert all(m["role"] != "system" for m in sent["body"]["messages"])
        assert sent["headers"]["anthropic-version"]


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_openai_sdk_streaming_with_usage(gateway, model):
    key = gateway.key()
    chunks = list(oa(gateway, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert {c.model for c in chunks} == {model}


@pytest.mark.parametrize("model,upstream_api", [("gpt-fake", "openai"), ("claude-fake", "anthropic")])
def test_anthropic_sdk_non_streaming(gateway, fake, model, upstream_api):
    key = gateway.key()
    r = an(gateway, key).messages.with_raw_response.create(
        model=model, max_tokens=50, system="be brief", extra_body={"temperature": 0}, stop_sequences=["zzz"],
        messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                  {"role": "user", "content": [{"type": "text", "text": "second turn"}]}])
    m = r.parse()
    assert m.content[0].text == "echo: second turn"
    assert m.stop_reason == "end_turn"
    assert m.model == model
    assert m.usage.input_tokens > 0 and m.usage.output_tokens == 3
    sent = fake.requests[-1]["body"]
    if upstream_api == "openai":
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
        assert sent["stop"] == ["zzz"] and sent["max_tokens"] == 50


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_anthropic_sdk_streaming(gateway, model):
    key = gateway.key()
    with an(gateway, key).messages.stream(model=model, max_tokens=50,
                                          messages=[{"role": "user", "content": "stream me"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "echo: stream me"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3
    assert final.model == model


def test_models_list_both_sdks(gateway):
    key = gateway.key()
    assert {m.id for m in oa(gateway, key).models.list()} == {"gpt-fake", "claude-fake"}
    assert {m.id for m in an(gateway, key).models.list()} == {"gpt-fake", "claude-fake"}


def test_models_retrieve_both_sdks(gateway):
    key = gateway.key()
    assert oa(gateway, key).models.retrieve("gpt-fake").id == "gpt-fake"
    assert an(gateway, key).models.retrieve("claude-fake").display_name == "claude-fake"
    with pytest.raises(openai.NotFoundError):
        oa(gateway, key).models.retrieve("nope")
    with pytest.raises(anthropic.NotFoundError):
        an(gateway, key).models.retrieve("nope")
    with pytest.raises(openai.AuthenticationError):
        oa(gateway, "lg-wrong").models.retrieve("gpt-fake")


def test_tools_pass_through_same_api_only(gateway, fake):
    key = gateway.key()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    c = oa(gateway, key).chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": "hi"}],
                                                tools=tools)
    assert c.choices[0].message.content == "echo: hi"
    assert fake.requests[-1]["body"]["tools"] == tools  # passed through untouched
    with pytest.raises(openai.BadRequestError) as e:
        oa(gateway, key).chat.completions.create(model="claude-fake", messages=[{"role": "user", "content": "hi"}],
                                                tools=tools)
    assert "tools" in e.value.message and "same API" in e.value.message


def test_image_to_other_api_is_a_clear_400(gateway):
    key = gateway.key()
    with pytest.raises(anthropic.BadRequestError) as e:
        an(gateway, key).messages.create(model="gpt-fake", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "image" in e.value.body["error"]["message"]
