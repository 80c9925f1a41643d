"""The built web trading UI (`web/dist`) served at `/`: its files, and index.html for the
single-page app's own paths. Call `mount_web` after every API router is included: its
catch-all route answers only what no earlier route matched."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from gateway.errors import ApiError

# Where `make web` (tools/build_web.sh) puts the build, for the composition root.
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"

# First path segments that belong to the APIs even when no route of theirs exists yet, so an
# unknown API path is a JSON 404, never the app's index.html.
API_SEGMENTS = frozenset(
    {
        "auth",
        "accounts",
        "instruments",
        "events",
        "graphql",
        "ws",
        "health",
        "docs",
        "redoc",
        "openapi.json",
        "metrics",
        "api",
    }
)
# Hashed file names (Vite's `assets/`) never change content; everything else is revalidated.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

MISSING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tradecore: the web UI is not built</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:44em;margin:3em auto;padding:0 1em}}
code,pre{{background:#f2f2f2;padding:2px 4px;border-radius:3px}}</style></head>
<body><h1>The web UI is not built</h1>
<p>Tradecore is running, but there is no build of the trading UI in
<code>{dist}</code>.</p>
<p>Build it (Node.js 18 or newer with npm) from the repository root:</p>
<pre>make web</pre>
<p>or by hand:</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>then reload this page; no restart is needed. The API works without it:
<a href="/docs">/docs</a>, <a href="/health">/health</a>.</p>
</body></html>
"""


def mount_web(app: FastAPI, dist: Path) -> None:
    """Serve the single-page app built into ``dist`` at ``/``.

    A file of the build is served as it is; any other GET outside the APIs gets index.html
    (the app routes itself); when ``dist`` has no index.html, a page saying how to build it
    (503). The build is looked up per request, so building after start needs no restart."""
    root = dist.resolve()

    async def serve_web(request: Request, path: str) -> Response:
        first = path.split("/", 1)[0]
        if first in API_SEGMENTS or first in _route_segments(request.app.routes):
            raise ApiError(404, "not_found", f"no such path: /{path}")
        index = root / "index.html"
        if not index.is_file():
            page = MISSING_PAGE.format(dist=html.escape(str(root)))
            return HTMLResponse(page, status_code=503, headers={"Cache-Control": REVALIDATE})
        if path:
            candidate = (root / path).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():
                cache = IMMUTABLE if path.startswith("assets/") else REVALIDATE
                return FileResponse(candidate, headers={"Cache-Control": cache})
            if path.startswith("assets/"):  # a stale asset name: index.html would be wrong
                raise ApiError(404, "not_found", f"no such file: /{path}")
        return FileResponse(index, headers={"Cache-Control": REVALIDATE})

    app.add_api_route("/{path:path}", serve_web, methods=["GET", "HEAD"], include_in_schema=False)


def _route_segments(routes: list[BaseRoute]) -> set[str]:
    """The first path segment of every other route (the APIs this app has today)."""
    out = set()
    for route in routes:
        if isinstance(route, Route | WebSocketRoute | Mount):
            segment = route.path.lstrip("/").split("/", 1)[0]
            if segment and not segment.startswith("{"):
                out.add(segment)
    return out
