"""Helpers both wire formats share."""

from __future__ import annotations

from pydantic import ValidationError

from lockgate.errors import GatewayError


def validation_error(e: ValidationError) -> GatewayError:
    """The first problem, named by its JSON path, as a 400."""
    err = e.errors()[0]
    path = ".".join(str(p) for p in err["loc"]) or "body"
    more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    return GatewayError(400, f"Invalid request: {path}: {err['msg']}{more}", param=path)


def sse(data: bytes, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"


def content_text(content, where: str) -> tuple[str, str | None]:
    """Message content as text, or the reason it must pass through untranslated (images, tool blocks).
    Both APIs use a string or a list of typed parts with {"type": "text", "text": ...}."""
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if not isinstance(kind, str) or not kind:  # malformed, not something to pass through
            raise GatewayError(400, f"Invalid request: {where}.content.{j}: a content part needs a type",
                               param=f"{where}.content.{j}.type")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise GatewayError(400, f"Invalid request: {where}.content.{j}: a text part needs a string `text`",
                               param=f"{where}.content.{j}.text")
        if kind != "text":
            return "", f"{kind} content in {where}"
        texts.append(part["text"])
    return "".join(texts), None
