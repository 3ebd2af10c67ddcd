"""The one HTTP server: health, metrics, the console's files, and the routes
the agent API and each connector contribute."""
from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from aggregator import metrics
from aggregator.http_errors import error_middleware
from connectors import files

if TYPE_CHECKING:
    from aggregator.app import Kefu

CONSOLE = resources.files("aggregator") / "console_static"
_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css",
          ".png": "image/png", ".svg": "image/svg+xml"}
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")  # nothing else names a console file
CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
       "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.startswith("/console"):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def build(kefu: "Kefu") -> web.Application:
    app = web.Application(client_max_size=kefu.settings.web.max_body_bytes,
                          middlewares=[metrics.count_requests, error_middleware, security_headers,
                                       kefu.api.require_agent])
    app.router.add_get("/healthz", lambda r: healthz(kefu))
    app.router.add_get("/metrics", lambda r: metrics_page(kefu))
    app.router.add_get("/", lambda r: web.HTTPFound("/console/"))
    app.router.add_get("/console", lambda r: web.HTTPFound("/console/"))
    app.router.add_get("/console/", console_file)
    app.router.add_get("/console/{name}", console_file)
    app.router.add_get("/files/{id}", files.serve(kefu.core.files))
    app.add_routes(kefu.api.routes())
    for conn in kefu.connectors.values():
        app.add_routes(conn.routes())
    return app


async def console_file(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "index.html")
    suffix = "." + name.rpartition(".")[2]
    if not _FILE_NAME.fullmatch(name) or suffix not in _TYPES:
        raise web.HTTPNotFound()
    try:
        body = (CONSOLE / name).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type=_TYPES[suffix], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def healthz(kefu: "Kefu") -> web.Response:
    health = await kefu.health()
    return web.json_response(health, status=200 if health["status"] == "ok" else 503)


async def metrics_page(kefu: "Kefu") -> web.Response:
    await metrics.refresh(kefu)
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})
