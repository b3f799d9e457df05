"""ASGI app: the HTTP edge. Routes only translate wire formats and hand the request to the pipeline."""

from __future__ import annotations

import gc
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from sqlalchemy.exc import SQLAlchemyError
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lockgate.api import anthropic, openai
from lockgate.chat import Delta, Done, Event
from lockgate.config import Config
from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.gateway import Gateway
from lockgate.identity.stage import IdentityStage
from lockgate.store import Store

log = logging.getLogger("lockgate")
APIS = {"openai": openai, "anthropic": anthropic}
STARTED = int(time.time())


class ORJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(content)


def _api_of(request: Request) -> str:
    return "anthropic" if request.url.path.startswith("/v1/messages") or "anthropic-version" in request.headers else "openai"


def error_response(err: GatewayError, api: str, headers: dict | None = None) -> Response:
    return ORJSONResponse(err.body(api), status_code=err.status, headers={**(headers or {}), **err.headers})


async def read_json(request: Request, limit: int) -> dict:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"Request body is larger than the limit of {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"Request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as e:
        raise GatewayError(400, f"Request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "Request body must be a JSON object.")
    return body


def client_ip(request: Request, trusted: set[str]) -> str:
    peer = request.client.host if request.client else ""
    fwd = request.headers.get("x-forwarded-for")
    if fwd and peer in trusted:
        # Walk right to left past our own proxies; the first untrusted hop is the client.
        for hop in reversed([h.strip() for h in fwd.split(",") if h.strip()]):
            if hop not in trusted:
                return hop
    return peer


async def _collect(events: AsyncIterator[Event]) -> tuple[str, Done]:
    parts, done = [], Done()
    async for ev in events:
        if isinstance(ev, Delta):
            parts.append(ev.text)
        else:
            done = ev
    return "".join(parts), done


class LockgateApp(FastAPI):
    """FastAPI, with the two chat routes answered before its middleware and routing: those layers and
    dependency solving cost about a quarter of a request's CPU. The routes stay declared in FastAPI
    (docs, 405 for other methods); errors keep the shapes the exception handlers below give."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chat_routes: dict[str, tuple] = {}  # path -> (async handler(request, api name), api name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self.chat_routes.get(scope["path"])
            if route is not None:
                scope["app"] = self
                request = Request(scope, receive)
                try:
                    response = await route[0](request, route[1])
                except Exception:
                    log.exception("unhandled error on %s", scope["path"])
                    response = error_response(GatewayError(500, "Internal error in lockgate; see the gateway log."),
                                              route[1])
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(config: Config, store: Store) -> FastAPI:
    gw = Gateway(config, store)
    limit = config.server.max_body_bytes
    trusted = set(config.server.trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await gw.start()
        # What is loaded by now (torch, transformers, the app) lives as long as the process: keep it out of
        # the collector's full passes, which otherwise stall the event loop for ~100 ms now and then.
        gc.freeze()
        yield
        await gw.stop()

    app = LockgateApp(title="lockgate", version="0.1.0", lifespan=lifespan, docs_url="/admin/docs",
                  openapi_url="/admin/openapi.json", redoc_url=None)
    app.state.gateway = gw

    async def chat(request: Request, api_name: str) -> Response:
        api = APIS[api_name]
        ctx = None
        try:
            body = await read_json(request, limit)
            ctx = RequestContext(api.parse(body), client_ip(request, trusted), request.headers)
            events = await gw.pipeline.run(ctx)
            if ctx.req.stream:
                # Headers are final here: the routing stage has already seen the first upstream event.
                return StreamingResponse(api.stream(ctx, events), media_type="text/event-stream",
                                         headers={**ctx.response_headers(), "cache-control": "no-cache"})
            text, done = await _collect(events)
            return ORJSONResponse(api.render(ctx, text, done), headers=ctx.response_headers())
        except GatewayError as e:
            return error_response(e, api_name, ctx.response_headers() if ctx else None)
        except SQLAlchemyError as e:
            log.error("store unavailable: %s", e)
            return error_response(GatewayError(503, "The gateway's store is unavailable; try again shortly.",
                                               headers={"retry-after": "1"}), api_name)

    app.chat_routes = {"/v1/chat/completions": (chat, "openai"), "/v1/messages": (chat, "anthropic")}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await chat(request, "openai")

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await chat(request, "anthropic")

    identity = next(s for s in gw.pipeline.stages if isinstance(s, IdentityStage))

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        api_name = _api_of(request)
        ctx = RequestContext(None, client_ip(request, trusted), request.headers)  # type: ignore[arg-type]
        try:
            await identity.on_request(ctx)
        except GatewayError as e:
            return error_response(e, api_name)
        return ORJSONResponse(APIS[api_name].models_list(list(gw.catalog), STARTED))

    @app.get("/v1/models/{model_id:path}")
    async def model(request: Request, model_id: str) -> Response:  # the SDKs' models.retrieve
        api_name = _api_of(request)
        ctx = RequestContext(None, client_ip(request, trusted), request.headers)  # type: ignore[arg-type]
        try:
            await identity.on_request(ctx)
            if model_id not in gw.catalog:
                raise GatewayError(404, f"The model {model_id!r} does not exist or you do not have access to it.",
                                   param="model", code="model_not_found")
        except GatewayError as e:
            return error_response(e, api_name)
        return ORJSONResponse(APIS[api_name].models_list([model_id], STARTED)["data"][0])

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        upstreams = gw.ready()
        try:
            from anyio import to_thread

            await to_thread.run_sync(store.revision)
            store_ok = True
        except Exception:
            store_ok = False
        ok = store_ok and all(upstreams.values())
        return ORJSONResponse({"status": "ready" if ok else "starting", "store": store_ok, "upstreams": upstreams},
                              status_code=200 if ok else 503)

    from lockgate.admin.routes import router as admin_router

    app.include_router(admin_router)
    from lockgate.admin.directives import router as directives_router

    app.include_router(directives_router)
    from lockgate.admin.operations import router as operations_router

    app.include_router(operations_router)
    from lockgate.console import router as console_router

    app.include_router(console_router)  # /console: the web console, static files (docs/console.md)
    from lockgate.audit.metrics import router as metrics_router

    app.include_router(metrics_router)  # /metrics

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        msg = "Not found." if exc.status_code == 404 else str(exc.detail)
        return error_response(GatewayError(exc.status_code, msg), _api_of(request))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        path = ".".join(str(p) for p in err["loc"])
        return error_response(GatewayError(400, f"Invalid request: {path}: {err['msg']}"), _api_of(request))

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc, _api_of(request))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(GatewayError(500, "Internal error in lockgate; see the gateway log."), _api_of(request))

    return app


def from_environment() -> FastAPI:
    """The app of one worker process of `lockgate serve --workers N` (config path in LOCKGATE_SERVE_CONFIG)."""
    from lockgate import config as cfg
    from lockgate.store import open_store

    logging.basicConfig(level=os.environ.get("LOCKGATE_SERVE_LOG_LEVEL", "info").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    conf = cfg.load(os.environ.get("LOCKGATE_SERVE_CONFIG") or None)
    return create_app(conf, open_store(cfg.database_url(conf)))
