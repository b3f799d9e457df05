"""Any OpenAI-compatible upstream: OpenAI, vLLM, llama.cpp server, Ollama."""

from __future__ import annotations

from typing import AsyncIterator

import orjson

from lockgate.chat import ChatRequest, Delta, Done, Event, Usage
from lockgate.errors import UpstreamError
from lockgate.providers import sse
from lockgate.providers.base import HTTPProvider, classify_http

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
          "content_filter": "content_filter"}


def to_body(req: ChatRequest, model: str) -> dict:
    if req.passthrough_reason:
        body = dict(req.raw)
        body["model"] = model
        if req.stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return body
    msgs = [{"role": "system", "content": req.system}] if req.system else []
    msgs += [{"role": m.role, "content": m.content} for m in req.messages]
    body: dict = {"model": model, "messages": msgs, "stream": req.stream}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop"] = req.stop
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _usage(u: dict | None) -> Usage:
    u = u or {}
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


class OpenAIProvider(HTTPProvider):
    api = "openai"
    default_base_url = "https://api.openai.com/v1"

    def headers(self, upstream) -> dict[str, str]:
        return {"authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}

    async def call(self, req: ChatRequest, default_max_tokens: int) -> AsyncIterator[Event]:
        body = orjson.dumps(to_body(req, self.upstream.model))
        if not req.stream:
            data = await self.post_json("/chat/completions", body)
            choice = (data.get("choices") or [{}])[0]
            text = (choice.get("message") or {}).get("content") or ""
            yield Delta(text)
            yield Done(FINISH.get(choice.get("finish_reason") or "stop", "stop"), _usage(data.get("usage")),
                       raw=data if req.passthrough_reason else None)
            return
        resp = await self.post("/chat/completions", body)
        try:
            if resp.status_code >= 400:
                await resp.aread()
                raise classify_http(resp.status_code, resp.text, resp.headers)
            finish, usage, ended = "stop", Usage(), False
            async for _, data in sse.events(resp):
                if data.strip() == "[DONE]":
                    ended = True  # keep reading to the end of the body, so the connection is reused
                    continue
                if ended:
                    continue
                chunk = orjson.loads(data)
                if "error" in chunk:
                    raise UpstreamError("outage", 502, f"upstream stream error: {chunk['error']}")
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or []:
                    if choice.get("finish_reason"):
                        finish = FINISH.get(choice["finish_reason"], "stop")
                text = "".join(((c.get("delta") or {}).get("content") or "") for c in chunk.get("choices") or [])
                if req.passthrough_reason:
                    yield Delta(text, raw=chunk)
                elif text:
                    yield Delta(text)
        finally:
            await resp.aclose()  # read to the end by then (after [DONE]): the connection goes back to the pool
        if not ended:
            raise UpstreamError("outage", 502, "upstream stream ended before [DONE]")
        yield Done(finish, usage)
