"""Requests per second of the sandbox on one core with zero latency. Prints figures, asserts nothing.

Run: .venv/bin/python benchmarks/bench_sandbox.py [seconds] [concurrency]
The sandbox runs on uvloop in this process's main thread; a separate process drives load with
aiohttp keep-alive connections so the client does not share the server's core.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time

import aiohttp
import orjson
import uvloop
from aiohttp import web
from paymux.sandbox import build_app
from paymux.sandbox.scenario import DEFAULT_CREDENTIALS

PORT = 18777
CASES = {
    "stripe create+confirm": ("POST", "/stripe/v1/payment_intents",
        {"Authorization": f"Bearer {DEFAULT_CREDENTIALS['stripe']['api_key']}",
         "Content-Type": "application/x-www-form-urlencoded"},
        (b"amount=1000&currency=eur&confirm=true&payment_method=pm_card_visa"
         b"&metadata[paymux_reference]=att_1")),
    "adyen /payments": ("POST", "/adyen/v72/payments",
        {"X-API-Key": DEFAULT_CREDENTIALS["adyen"]["api_key"], "Content-Type": "application/json"},
        orjson.dumps({"amount": {"value": 1000, "currency": "EUR"}, "reference": "r",
                      "merchantAccount": DEFAULT_CREDENTIALS["adyen"]["merchant_account"],
                      "paymentMethod": {"type": "scheme", "number": "4111111111111111",
                                        "expiryMonth": "03", "expiryYear": "2030"}})),
    "checkout /payments": ("POST", "/checkout/payments",
        {"Authorization": f"Bearer {DEFAULT_CREDENTIALS['checkout']['api_key']}",
         "Content-Type": "application/json"},
        orjson.dumps({"source": {"type": "card", "number": "4242424242424242", "expiry_month": 12,
                                 "expiry_year": 2030}, "amount": 1000, "currency": "EUR",
                      "reference": "r"})),
}  # fmt: skip


def serve() -> None:
    uvloop.install()
    web.run_app(build_app(), host="127.0.0.1", port=PORT, access_log=None, print=None)


async def drive(seconds: float, concurrency: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        for name, (method, path, headers, body) in CASES.items():
            done = 0
            deadline = time.perf_counter() + seconds

            async def worker(
                method: str, url: str, headers: dict, body: bytes, deadline: float
            ) -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    async with s.request(method, url, headers=headers, data=body) as r:
                        await r.read()
                        assert r.status in (200, 201), r.status
                    done += 1

            start = time.perf_counter()
            url = f"http://127.0.0.1:{PORT}{path}"
            await asyncio.gather(
                *(worker(method, url, headers, body, deadline) for _ in range(concurrency))
            )
            elapsed = time.perf_counter() - start
            print(f"{name:<24} {done / elapsed:8.0f} req/s  ({done} requests, {concurrency} conns)")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    server = multiprocessing.Process(target=serve, daemon=True)
    server.start()
    time.sleep(1.0)
    try:
        uvloop.run(drive(seconds, concurrency))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
