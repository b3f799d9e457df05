"""The Anthropic Messages API upstream."""

from __future__ import annotations

from typing import AsyncIterator

import orjson

from lockgate.chat import ChatRequest, Delta, Done, Event, Usage
from lockgate.errors import UpstreamError
from lockgate.providers import sse
from lockgate.providers.base import HTTPProvider, classify_http

FINISH = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop_sequence", "tool_use": "tool_calls",
          "refusal": "content_filter", "pause_turn": "stop"}
VERSION = "2023-06-01"


def to_body(req: ChatRequest, model: str, default_max_tokens: int) -> dict:
    if req.passthrough_reason:
        body = dict(req.raw)
        body["model"] = model
        return body
    body: dict = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in req.messages],
        "max_tokens": req.max_tokens or default_max_tokens,
    }
    if req.system:
        body["system"] = req.system
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is 0..1
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.stream:
        body["stream"] = True
    return body


class AnthropicProvider(HTTPProvider):
    api = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def headers(self, upstream) -> dict[str, str]:
        h = {"anthropic-version": VERSION}
        if upstream.api_key:
            h["x-api-key"] = upstream.api_key
        return h

    async def call(self, req: ChatRequest, default_max_tokens: int) -> AsyncIterator[Event]:
        body = orjson.dumps(to_body(req, self.upstream.model, default_max_tokens))
        if not req.stream:
            data = await self.post_json("/v1/messages", body)
            text = "".join(b.get("text", "") for b in data.get("content") or [] if b.get("type") == "text")
            u = data.get("usage") or {}
            yield Delta(text)
            yield Done(FINISH.get(data.get("stop_reason") or "end_turn", "stop"),
                       Usage(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)),
                       stop_sequence=data.get("stop_sequence"),
                       raw=data if req.passthrough_reason else None)
            return
        resp = await self.post("/v1/messages", body)
        try:
            if resp.status_code >= 400:
                await resp.aread()
                raise classify_http(resp.status_code, resp.text, resp.headers)
            usage, finish, stop_seq, ended = Usage(), "stop", None, False
            async for name, data in sse.events(resp):
                ev = orjson.loads(data)
                kind = ev.get("type") or name
                if kind == "error":
                    err = ev.get("error") or {}
                    raise UpstreamError("outage", 502, f"upstream stream error: {err.get('message', err)}")
                if kind == "message_start":
                    u = (ev.get("message") or {}).get("usage") or {}
                    usage.input_tokens = int(u.get("input_tokens") or 0)
                elif kind == "message_delta":
                    d = ev.get("delta") or {}
                    finish = FINISH.get(d.get("stop_reason") or "end_turn", "stop")
                    stop_seq = d.get("stop_sequence")
                    u = ev.get("usage") or {}
                    usage.output_tokens = int(u.get("output_tokens") or usage.output_tokens)
                    if u.get("input_tokens"):
                        usage.input_tokens = int(u["input_tokens"])
                elif kind == "message_stop":
                    ended = True
                text = ""
                if kind == "content_block_delta":
                    delta = ev.get("delta") or {}
                    text = delta.get("text", "") if delta.get("type") == "text_delta" else ""
                if req.passthrough_reason:
                    yield Delta(text, raw=ev)
                elif text:
                    yield Delta(text)
        finally:
            await resp.aclose()
        if not ended:
            raise UpstreamError("outage", 502, "upstream stream ended before message_stop")
        yield Done(finish, usage, stop_sequence=stop_seq)
