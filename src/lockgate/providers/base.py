"""The provider interface and the one place that classifies upstream failures."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import AsyncIterator

import httpx

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
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError("outage", 504, f"upstream timed out ({type(exc).__name__})")
    return UpstreamError("outage", 502, f"upstream unreachable ({type(exc).__name__}: {exc})")


def http_client(upstream: Upstream, headers: dict[str, str]) -> httpx.AsyncClient:
    t = upstream.timeout
    return httpx.AsyncClient(
        base_url=upstream.base_url or "",
        headers=headers,
        timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect),
        limits=httpx.Limits(max_connections=upstream.max_concurrency, max_keepalive_connections=upstream.max_concurrency),
    )


class HTTPProvider(Provider):
    """An upstream reached over HTTP: one pooled client, and transport failures classified in one place."""

    default_base_url = ""

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        if not upstream.base_url:
            upstream.base_url = self.default_base_url
        self.client = http_client(upstream, self.headers(upstream))

    def headers(self, upstream: Upstream) -> dict[str, str]:
        return {}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def generate(self, req: ChatRequest, *, default_max_tokens: int) -> AsyncIterator[Event]:
        self.check_translatable(req)
        try:
            async for ev in self.call(req, default_max_tokens):
                yield ev
        except GatewayError:
            raise
        except (httpx.HTTPError, OSError) as e:
            raise classify_exception(e) from None
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise UpstreamError("outage", 502, f"upstream sent a malformed response: {e}") from None

    @abstractmethod
    def call(self, req: ChatRequest, default_max_tokens: int) -> AsyncIterator[Event]:
        """The provider's request and response handling; may raise UpstreamError or let httpx errors out."""
