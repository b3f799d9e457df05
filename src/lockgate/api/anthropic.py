"""Anthropic Messages wire format."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, AsyncIterator, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.api.common import content_text, sse, validation_error
from lockgate.chat import ChatRequest, Delta, Done, Event, Message
from lockgate.context import RequestContext
from lockgate.errors import GatewayError

STOP = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence", "tool_calls": "tool_use",
        "content_filter": "refusal"}


class _Msg(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[_Msg] = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=1_000_000)
    system: str | list[dict[str, Any]] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    stream: bool = False


def parse(body: dict) -> ChatRequest:
    try:
        b = _Body.model_validate(body)
    except ValidationError as e:
        raise validation_error(e) from None
    reason = "tools" if any(k in body for k in ("tools", "tool_choice")) else None
    system = None
    if b.system is not None:
        system, why = content_text(b.system, "system")
        reason = reason or why
    messages = []
    for i, m in enumerate(b.messages):
        _non_empty(m, i, last=i == len(b.messages) - 1)
        text, why = content_text(m.content, f"messages.{i}")
        reason = reason or why
        messages.append(Message(m.role, text))
    return ChatRequest(
        api="anthropic", model=b.model, messages=messages, system=system or None, max_tokens=b.max_tokens,
        temperature=b.temperature, top_p=b.top_p, stop=b.stop_sequences or [], stream=b.stream,
        raw=body, passthrough_reason=reason,
    )


def _non_empty(m: _Msg, i: int, *, last: bool) -> None:
    """Anthropic's rule: only a final assistant message (a prefill) may be empty, and no text block may be."""
    if not m.content and not (last and m.role == "assistant"):
        raise GatewayError(400, f"Invalid request: messages.{i}: all messages must have non-empty content except for "
                                "the optional final assistant message", param=f"messages.{i}.content")
    for j, part in enumerate(m.content if isinstance(m.content, list) else []):
        if part.get("type") == "text" and part.get("text") == "":
            raise GatewayError(400, f"Invalid request: messages.{i}.content.{j}: text content blocks must be non-empty",
                               param=f"messages.{i}.content.{j}.text")


def _mid(ctx: RequestContext) -> str:
    return "msg_" + ctx.request_id.removeprefix("req_")


def render(ctx: RequestContext, text: str, done: Done) -> dict:
    if done.raw is not None:
        return {**done.raw, "model": ctx.model}
    return {
        "id": _mid(ctx), "type": "message", "role": "assistant", "model": ctx.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": STOP.get(done.finish_reason, "end_turn"), "stop_sequence": done.stop_sequence,
        "usage": {"input_tokens": done.usage.input_tokens, "output_tokens": done.usage.output_tokens},
    }


async def stream(ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    dump = orjson.dumps
    try:
        started = False
        async for ev in events:
            if isinstance(ev, Delta) and ev.raw is not None:
                raw = ev.raw
                if raw.get("type") == "message_start":
                    raw = {**raw, "message": {**raw.get("message", {}), "model": ctx.model}}
                yield sse(dump(raw), raw.get("type"))
                continue
            # The events one internal event makes go out in one write (one syscall, one wake-up of the client).
            out = b""
            if not started and not ctx.req.passthrough_reason:
                started = True
                msg = {"id": _mid(ctx), "type": "message", "role": "assistant", "model": ctx.model, "content": [],
                       "stop_reason": None, "stop_sequence": None,
                       "usage": {"input_tokens": ctx.usage.input_tokens, "output_tokens": 0}}
                out = (sse(dump({"type": "message_start", "message": msg}), "message_start")
                       + sse(dump({"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}), "content_block_start"))
            if isinstance(ev, Delta):
                if ev.text:
                    out += sse(dump({"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": ev.text}}), "content_block_delta")
            elif isinstance(ev, Done) and not ctx.req.passthrough_reason:
                out += sse(dump({"type": "content_block_stop", "index": 0}), "content_block_stop")
                out += sse(dump({"type": "message_delta",
                                 "delta": {"stop_reason": STOP.get(ev.finish_reason, "end_turn"),
                                           "stop_sequence": ev.stop_sequence},
                                 "usage": {"input_tokens": ev.usage.input_tokens,
                                           "output_tokens": ev.usage.output_tokens}}), "message_delta")
                out += sse(dump({"type": "message_stop"}), "message_stop")
            if out:
                yield out
    except GatewayError as e:
        yield sse(dump(e.anthropic_body()), "error")


def models_list(names: list[str], created: int) -> dict:
    at = datetime.fromtimestamp(created, timezone.utc).isoformat().replace("+00:00", "Z")
    data = [{"type": "model", "id": n, "display_name": n, "created_at": at} for n in names]
    return {"data": data, "has_more": False, "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None}
