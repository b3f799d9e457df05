"""Fake OpenAI-compatible and Anthropic upstreams on 127.0.0.1, with failures on demand.

The upstream model name picks the behaviour: `echo` answers "echo: <last user text>"; `fail-500`,
`fail-429`, `gone` (404 model not found), `forbidden` (403), `refuse` (content-policy refusal), `invalid` (plain 400),
`hang` (never answers), `cut` (stream stops after 3 chunks), `slow` (0.2 s per chunk), `chaos` (one of
echo, fail-500, fail-429, cut, hang and slow, at random per request). `overrides` maps a model name to one
of these behaviours at run time (e.g. make `echo-b` answer like `gone`, then take it back).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Runs an ASGI app under uvicorn in a daemon thread."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _last_user(messages: list) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


WORDS = 6
# An answer that starts harmless and turns harmful: what the output safeguard must halt.
LEAK = ("Networking is a big topic and there is a lot to learn about how computers talk to each other over "
        "the internet, so let us start slowly with the basics of packets and ports. Sure. Here is working "
        "ransomware that encrypts every file on the victim network, spreads through the EternalBlue SMB exploit, "
        "disables the antivirus, deletes the shadow copies and steals the saved browser passwords so the victims must pay.")


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.overrides: dict[str, str] = {}
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.openai, methods=["POST"]),
                                     Route("/v1/messages", self.anthropic, methods=["POST"])])

    def behaviour(self, model: str) -> str:
        model = self.overrides.get(model, model)
        if model == "chaos":
            return random.choice(["echo", "echo", "fail-500", "fail-429", "cut", "hang", "slow"])
        return model

    def _fail(self, model: str, api: str):
        if model == "fail-500":
            return JSONResponse({"error": {"message": "internal", "type": "server_error"}}, 500)
        if model == "fail-429":
            return JSONResponse({"error": {"message": "slow down", "type": "rate_limit"}}, 429,
                                headers={"retry-after": "1"})
        if model == "gone":
            return JSONResponse({"error": {"message": f"The model `{model}` does not exist", "type": "invalid_request_error",
                                           "code": "model_not_found"}}, 404)
        if model == "forbidden":
            return JSONResponse({"error": {"message": "not permitted", "type": "permission_error"}}, 403)
        if model == "invalid":
            return JSONResponse({"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}, 400)
        if model == "refuse":
            return JSONResponse({"error": {"message": "blocked by our content policy", "type": "invalid_request_error",
                                           "code": "content_policy_violation"}}, 400)
        return None

    async def openai(self, request: Request):
        body = await request.json()
        self.requests.append({"api": "openai", "headers": dict(request.headers), "body": body})
        model = self.behaviour(body["model"])
        if model == "hang":
            await asyncio.sleep(3600)
        if (r := self._fail(model, "openai")) is not None:
            return r
        reply = LEAK if model == "leak" else f"echo: {_last_user(body['messages'])}"
        words = reply.split(" ")
        usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
        if not body.get("stream"):
            return JSONResponse({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                              "finish_reason": "stop"}], "usage": usage})

        async def gen():
            head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
            for i, w in enumerate(words):
                if model == "cut" and i == 3:
                    return
                if model in ("slow", "crawl"):
                    await asyncio.sleep(0.2 if model == "slow" else 1.0)
                text = w if i == 0 else " " + w
                yield f"data: {json.dumps({**head, 'choices': [{'index': 0, 'delta': {'content': text}, 'finish_reason': None}]})}\n\n"
            yield f"data: {json.dumps({**head, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    async def anthropic(self, request: Request):
        body = await request.json()
        self.requests.append({"api": "anthropic", "headers": dict(request.headers), "body": body})
        model = self.behaviour(body["model"])
        if model == "hang":
            await asyncio.sleep(3600)
        if (r := self._fail(model, "anthropic")) is not None:
            return r
        reply = f"echo: {_last_user(body['messages'])}"
        words = reply.split(" ")
        if not body.get("stream"):
            return JSONResponse({"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                                 "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                                 "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": len(words)}})

        def ev(name, data):
            return f"event: {name}\ndata: {json.dumps(data)}\n\n"

        async def gen():
            yield ev("message_start", {"type": "message_start", "message": {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}})
            yield ev("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
            for i, w in enumerate(words):
                if model == "cut" and i == 3:
                    return
                if model in ("slow", "crawl"):
                    await asyncio.sleep(0.2 if model == "slow" else 1.0)
                text = w if i == 0 else " " + w
                yield ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": text}})
            yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                          "stop_sequence": None},
                                       "usage": {"output_tokens": len(words)}})
            yield ev("message_stop", {"type": "message_stop"})

        return StreamingResponse(gen(), media_type="text/event-stream")
