"""The internal request/response model. Both wire formats translate to and from it at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Api = Literal["openai", "anthropic"]


@dataclass(slots=True)
class Message:
    role: str  # "user" | "assistant"
    content: str


@dataclass(slots=True)
class ChatRequest:
    api: Api
    model: str
    messages: list[Message]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    # The client's original body. Used as-is when the request carries things that cannot be
    # translated (tools, images) and the upstream speaks the client's API.
    raw: dict[str, Any] = field(default_factory=dict)
    passthrough_reason: str | None = None  # e.g. "tools", "image content"

    def text(self) -> str:
        """All conversation text, for classifiers and token estimates."""
        parts = [self.system] if self.system else []
        parts.extend(m.content for m in self.messages)
        return "\n".join(parts)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


# Events an upstream yields. Non-streaming calls yield the same events, all at once.
@dataclass(slots=True)
class Delta:
    text: str
    raw: dict | None = None  # passthrough chunk in the client's own wire format


@dataclass(slots=True)
class Done:
    # stop | length | stop_sequence | tool_calls | content_filter
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str | None = None
    raw: dict | None = None  # passthrough: the upstream's complete (non-streaming) body


Event = Delta | Done
