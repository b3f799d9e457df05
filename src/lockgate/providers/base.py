"""The provider interface and the one place that classifies upstream failures."""

from __future__ import annotations

import functools
import importlib
import os
import ssl
from abc import ABC, abstractmethod
from typing import AsyncIterator

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from lockgate.chat import ChatRequest, Event
from lockgate.config import Upstream
from lockgate.errors import GatewayError, UpstreamError

# provider name in config -> module:class
REGISTRY = {
    "local": "lockgate.providers.local:LocalProvider",
    "openai": "lockgate.providers.openai:OpenAIProvider",
    "anthropic": "lockgate.providers.anthropic:AnthropicProvider",
}

_REFUSAL_HINTS = ("content_policy", "content_filter", "content policy", "safety system", "refus")


class Provider(ABC):
    """Calls one upstream deployment. `generate` yields Delta events then one Done."""

    api: str = ""  # the wire format it speaks upstream: "openai" | "anthropic" | "local"

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        # Calls routed here and not yet finished (queued ones included); routing compares it with
        # upstream.max_concurrency to answer 429 instead of queueing without bound.
        self.inflight = 0

    @property
    def label(self) -> str:
        return f"{self.upstream.provider}:{self.upstream.model}"

    async def start(self) -> None:
        """Heavy setup (loading weights) runs here, off the import path."""

    def ready(self) -> bool:
        return True

    @abstractmethod
    def generate(self, req: ChatRequest, *, default_max_tokens: int) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None:
        pass

    def check_translatable(self, req: ChatRequest) -> None:
        if req.passthrough_reason and req.api != self.api:
            raise GatewayError(
                400,
                f"This request uses {req.passthrough_reason}, which lockgate passes through only to an upstream "
                f"that speaks the same API; model {req.model!r} is served by a {self.upstream.provider} upstream.",
                code="untranslatable_request",
            )


def make_provider(upstream: Upstream) -> Provider:
    path = REGISTRY.get(upstream.provider)
    if path is None:
        raise ValueError(f"unknown provider {upstream.provider!r}")
    mod, _, cls = path.partition(":")
    return getattr(importlib.import_module(mod), cls)(upstream)


def classify_http(status: int, body: str, headers: httpx.Headers | None = None) -> UpstreamError:
    """Decides outage | withdrawn | refusal | client from an upstream HTTP error, for every provider."""
    low = body.lower()[:2000]
    retry_after = None
    if headers is not None and headers.get("retry-after"):
        try:
            retry_after = float(headers["retry-after"])
        except ValueError:
            retry_after = None
    snippet = body[:300]
    if status == 429 or status >= 500 or status in (401, 408):
        # 401 upstream means our credentials are wrong: the operator's fault, not the caller's.
        return UpstreamError("outage", 503 if status == 429 else 502, f"upstream error {status}: {snippet}",
                             upstream_status=status, retry_after=retry_after)
    if status in (403, 404):
        return UpstreamError("withdrawn", 503, f"upstream withdrew the model ({status}): {snippet}", upstream_status=status)
    if any(h in low for h in _REFUSAL_HINTS):
        return UpstreamError("refusal", 400, f"upstream refused on content policy: {snippet}", upstream_status=status)
    return UpstreamError("client", 400 if status != 413 else 413, f"upstream rejected the request ({status}): {snippet}",
                         upstream_status=status)


def classify_exception(exc: Exception) -> UpstreamError:
    # httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout: only a real timeout
    # underneath (aiohttp's are TimeoutError subclasses) is one; a dropped connection is unreachable.
    cause = exc.__cause__ or exc
    if isinstance(exc, httpx.TimeoutException) and isinstance(cause, (TimeoutError, httpx.TimeoutException)):
        return UpstreamError("outage", 504, f"upstream timed out ({type(cause).__name__})")
    return UpstreamError("outage", 502, f"upstream unreachable ({type(cause).__name__}: {cause})")


def _env_proxy() -> bool:
    return any(k.lower().endswith("_proxy") and k.lower() != "no_proxy" and v for k, v in os.environ.items())


@functools.cache
def _ssl_context() -> ssl.SSLContext:  # httpx's defaults (certifi, SSL_CERT_FILE); ~50 ms to build, so shared
    return httpx.create_ssl_context()


def http_transport(upstream: Upstream) -> AiohttpTransport:
    """aiohttp's connection pool under httpx (httpx-aiohttp): httpcore's pool polled every idle connection
    on every request and cost more CPU than all of lockgate's stages together."""
    n = upstream.max_concurrency
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    ssl_context = _ssl_context()

    def session() -> aiohttp.ClientSession:  # made on first use, inside the running event loop
        connector = aiohttp.TCPConnector(limit=n, keepalive_timeout=limits.keepalive_expiry, ssl=ssl_context)
        # HTTP(S)_PROXY is honoured as httpx did; without one, aiohttp skips reading the environment per request.
        return aiohttp.ClientSession(connector=connector, trust_env=_env_proxy())

    return AiohttpTransport(verify=ssl_context, limits=limits, client=session)


def http_client(upstream: Upstream, headers: dict[str, str], transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    t = upstream.timeout
    return httpx.AsyncClient(
        base_url=upstream.base_url or "",
        headers=headers,
        timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect),
        transport=transport,
    )


class HTTPProvider(Provider):
    """An upstream reached over HTTP: one pooled client, and transport failures classified in one place."""

    default_base_url = ""

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        if not upstream.base_url:
            upstream.base_url = self.default_base_url
        self.transport = http_transport(upstream)
        self.client = http_client(upstream, self.headers(upstream), self.transport)
        self._post_headers = httpx.Headers({**self.client.headers, "content-type": "application/json"})
        self._timeout = {"timeout": self.client.timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}

    def headers(self, upstream: Upstream) -> dict[str, str]:
        return {}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(self, path: str, body: bytes) -> httpx.Response:
        """POSTs a JSON body to base_url + path; the response's body is not read yet (aread / aiter_lines,
        then aclose). Straight to the client's transport: an API upstream needs none of the client's
        cookie jar, auth or redirect handling, which cost more than the call itself."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self.client.base_url.join(path.lstrip("/"))
        req = httpx.Request("POST", url, headers=self._post_headers, content=body, extensions=self._timeout)
        return await self.transport.handle_async_request(req)

    async def post_json(self, path: str, body: bytes) -> dict:
        """POSTs and reads the whole answer as JSON; the connection goes back to the pool before the
        caller's first event, whatever it does next. An error status raises its UpstreamError."""
        resp = await self.post(path, body)
        try:
            await resp.aread()
        finally:
            await resp.aclose()
        if resp.status_code >= 400:
            raise classify_http(resp.status_code, resp.text, resp.headers)
        return orjson.loads(resp.content)

    async def generate(self, req: ChatRequest, *, default_max_tokens: int) -> AsyncIterator[Event]:
        self.check_translatable(req)
        try:
            async for ev in self.call(req, default_max_tokens):
                yield ev
        except GatewayError:
            raise
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as e:  # aiohttp's: those httpx-aiohttp leaves unmapped
            raise classify_exception(e) from None
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise UpstreamError("outage", 502, f"upstream sent a malformed response: {e}") from None

    @abstractmethod
    def call(self, req: ChatRequest, default_max_tokens: int) -> AsyncIterator[Event]:
        """The provider's request and response handling; may raise UpstreamError or let httpx errors out."""
