"""OpenAI Chat Completions wire format."""

from __future__ import annotations

from typing import Any, AsyncIterator, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.api.common import content_text, sse, validation_error
from lockgate.chat import ChatRequest, Delta, Done, Event, Message
from lockgate.context import RequestContext
from lockgate.errors import GatewayError

FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls",
          "content_filter": "content_filter"}


class _Msg(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[_Msg] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=1)


def parse(body: dict) -> ChatRequest:
    try:
        b = _Body.model_validate(body)
    except ValidationError as e:
        raise validation_error(e) from None
    reason = "tools" if any(k in body for k in ("tools", "functions", "tool_choice")) else None
    system, messages = [], []
    for i, m in enumerate(b.messages):
        text, why = content_text(m.content, f"messages.{i}")
        reason = reason or why
        if m.role in ("tool", "function") or (m.model_extra or {}).get("tool_calls"):
            reason = reason or "tool calls"
        if m.role in ("system", "developer"):
            system.append(text)
        elif m.role in ("user", "assistant"):
            messages.append(Message(m.role, text))
    if not messages and not reason:
        raise GatewayError(400, "Invalid request: messages must contain at least one user message", param="messages")
    stop = [b.stop] if isinstance(b.stop, str) else (b.stop or [])
    return ChatRequest(
        api="openai", model=b.model, messages=messages, system="\n\n".join(system) or None,
        max_tokens=b.max_completion_tokens or b.max_tokens, temperature=b.temperature, top_p=b.top_p,
        stop=stop, stream=b.stream, include_usage=bool((b.stream_options or {}).get("include_usage")),
        raw=body, passthrough_reason=reason,
    )


def _cid(ctx: RequestContext) -> str:
    return "chatcmpl-" + ctx.request_id.removeprefix("req_")


def _usage(done: Done) -> dict:
    u = done.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def render(ctx: RequestContext, text: str, done: Done) -> dict:
    if done.raw is not None:
        return {**done.raw, "model": ctx.model}
    return {
        "id": _cid(ctx), "object": "chat.completion", "created": int(ctx.wall_time), "model": ctx.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": FINISH.get(done.finish_reason, "stop")}],
        "usage": _usage(done),
    }


async def stream(ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    head = {"id": _cid(ctx), "object": "chat.completion.chunk", "created": int(ctx.wall_time), "model": ctx.model}
    dump = orjson.dumps
    try:
        started = False
        async for ev in events:
            if isinstance(ev, Delta):
                if ev.raw is not None:
                    if ev.raw.get("usage") and not ev.raw.get("choices") and not ctx.req.include_usage:
                        continue  # we asked the upstream for usage; the client did not
                    yield sse(dump({**ev.raw, "model": ctx.model}))
                    continue
                # The chunks one event makes go out in one write (one syscall, one wake-up of the client).
                out = b""
                if not started:
                    started = True
                    out = sse(dump({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                         "logprobs": None, "finish_reason": None}]}))
                yield out + sse(dump({**head, "choices": [{"index": 0, "delta": {"content": ev.text},
                                                           "logprobs": None, "finish_reason": None}]}))
            elif isinstance(ev, Done):
                out = b""
                if not ctx.req.passthrough_reason:
                    out = sse(dump({**head, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                                         "finish_reason": FINISH.get(ev.finish_reason, "stop")}]}))
                    if ctx.req.include_usage:
                        out += sse(dump({**head, "choices": [], "usage": _usage(ev)}))
                yield out + b"data: [DONE]\n\n"
    except GatewayError as e:
        # After the first byte the status line is gone: the error travels as a chunk the SDKs raise on.
        yield sse(dump(e.openai_body()))


def models_list(names: list[str], created: int) -> dict:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "lockgate"}
                                       for n in names]}
