"""The web console: three static files served at /console. The page needs no credential; every view it
shows comes from the admin API, which checks the admin key the page sends (see docs/console.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

HERE = Path(__file__).resolve().parent
FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
         "style.css": "text/css; charset=utf-8"}
# The page renders attacker-controlled text (principal names, prompts' traces): even if a bug let some of it
# through as markup, nothing but our own script may run, and nothing may frame the page.
HEADERS = {"content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                      "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                                      "frame-ancestors 'none'",
           "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _serve(name: str) -> FileResponse:
    return FileResponse(HERE / name, media_type=FILES[name], headers=HEADERS)


@router.get("/console")
@router.get("/console/")
async def index() -> FileResponse:
    return _serve("index.html")


@router.get("/console/app.js")
async def script() -> FileResponse:
    return _serve("app.js")


@router.get("/console/style.css")
async def style() -> FileResponse:
    return _serve("style.css")
