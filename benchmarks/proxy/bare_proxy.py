"""The bare pass-through proxy the benchmark compares paymux with: aiohttp server on uvloop, one
pooled ClientSession to the upstream, the body and the four headers that matter passed as is.
No logging, no parsing, no storage: the floor for any aiohttp-based gateway.

    python benchmarks/proxy/bare_proxy.py --port 8081 --upstream http://127.0.0.1:8090
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web

FORWARDED = ("Authorization", "Content-Type", "Accept", "Idempotency-Key")


def build(upstream: str) -> web.Application:
    app = web.Application()
    session: dict[str, aiohttp.ClientSession] = {}

    async def start(app: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    async def stop(app: web.Application) -> None:
        await session["s"].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {h: v for h in FORWARDED if (v := request.headers.get(h)) is not None}
        async with session["s"].request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            payload = await resp.read()
            return web.Response(status=resp.status, body=payload, content_type=resp.content_type)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="bare aiohttp pass-through proxy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8090")
    args = parser.parse_args()
    uvloop.install()
    web.run_app(
        build(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
