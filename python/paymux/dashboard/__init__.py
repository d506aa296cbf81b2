"""The operations dashboard: static page, script and style, and the charting library, served by paymux.

No external network: the page, its script and Plotly.js (from the installed `plotly` package) all
come from this process. The page holds no data; it calls `/admin/analytics/*` with the admin key the
operator typed (kept in sessionStorage for the tab, never in a cookie).
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent
ASSETS = {
    "dashboard.js": ("application/javascript", HERE / "dashboard.js"),
    "dashboard.css": ("text/css", HERE / "dashboard.css"),
}
# Only this process and the page itself: no CDN, no inline script, no outside connections.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

PLOTLY: web.AppKey[dict[str, bytes]] = web.AppKey("dashboard_plotly", dict)


def plotly_js_path() -> Path | None:
    """plotly.min.js inside the installed `plotly` package (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    return None


async def index(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=(HERE / "index.html").read_bytes(),
        content_type="text/html",
        charset="utf-8",
        headers={**_SECURITY, "Cache-Control": "no-cache"},
    )


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "plotly.min.js":
        return await _plotly(request)
    found = ASSETS.get(name)
    if found is None:
        raise web.HTTPNotFound()
    content_type, path = found
    return web.Response(
        body=path.read_bytes(),
        content_type=content_type,
        charset="utf-8",
        headers={**_SECURITY, "Cache-Control": "no-cache"},
    )


async def _plotly(request: web.Request) -> web.StreamResponse:
    cache = request.app[PLOTLY]
    if "raw" not in cache:
        path = plotly_js_path()
        if path is None:
            return web.Response(status=503, text="plotly is not installed (pip install plotly)")
        raw = await asyncio.to_thread(path.read_bytes)
        cache["gzip"] = await asyncio.to_thread(gzip.compress, raw, 6)
        cache["raw"] = raw
    headers = {**_SECURITY, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = cache["gzip"]
    else:
        body = cache["raw"]
    return web.Response(
        body=body, content_type="application/javascript", charset="utf-8", headers=headers
    )


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard" + (f"?{request.query_string}" if request.query_string else ""))


def add_dashboard_routes(app: web.Application) -> None:
    app[PLOTLY] = {}
    app.router.add_get("/dashboard", index)
    app.router.add_get("/dashboard/", redirect)
    app.router.add_get("/dashboard/assets/{name}", asset)
