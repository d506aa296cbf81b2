"""Locust load test for paymux: the flows a merchant's checkout backend runs, weighted like real
traffic, against a running gateway (`loadtests/run.py` starts one with the sandbox behind it).

Flows: authorize with automatic capture, authorize then capture, partial refunds, tokenize then
pay with the token, an idempotent retry (the same request twice under one key), reads (one
payment, a list), and a share of published decline test cards.

Business declines are not errors: a `402` whose payment is `failed` is marked a success and
reported under its own name, `POST /v1/payments [declined]`, and counted per decline code
(printed at the end and written to `<csv prefix>_declines.json` when `--csv` is given). An
approval where a decline was expected, or a decline where an approval was expected, is a failure.

    locust -f loadtests/locustfile.py --config loadtests/locust.conf --host http://127.0.0.1:8080
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import Counter
from typing import Any

from locust import FastHttpUser, between, events, task

API_KEY = os.environ.get("PAYMUX_API_KEY", "sk_test_paymux_demo_key")
APPROVED_CARDS = ("4242424242424242", "5555555555554444")  # Visa, Mastercard test numbers
# Published test cards the sandbox declines as the PSPs document them.
DECLINE_CARDS = {
    "4000000000009995": "insufficient_funds",
    "4000000000000002": "generic_decline",
}
CURRENCIES = ("EUR", "USD", "GBP")
RECENT_PAYMENTS = 50  # ids each user keeps for reads

DECLINES: Counter[str] = Counter()


def card(number: str) -> dict[str, Any]:
    return {"card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}


def new_key() -> str:
    return f"lt-{uuid.uuid4().hex}"


class MerchantCheckout(FastHttpUser):
    """One merchant backend calling paymux."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {API_KEY}"}
        self.recent: list[str] = []

    # -- helpers ---------------------------------------------------------------------------------

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        name: str,
        key: str | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> dict[str, Any] | None:
        headers = {**self.auth, "Idempotency-Key": key or new_key()}
        with self.client.post(
            path, json=body, headers=headers, name=name, catch_response=True
        ) as resp:
            if resp.status_code not in expect:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return None
            return resp.json()

    def _pay(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any] | None:
        """A payment expected to be approved."""
        payment = self._post("/v1/payments", body, "POST /v1/payments", key)
        if payment is not None:
            self._remember(payment["id"])
        return payment

    def _remember(self, payment_id: str) -> None:
        self.recent.append(payment_id)
        if len(self.recent) > RECENT_PAYMENTS:
            self.recent.pop(0)

    def _payment_body(self, number: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "amount": random.randint(100, 50_000),
            "currency": random.choice(CURRENCIES),
            "reference": f"order-{uuid.uuid4().hex[:12]}",
            "payment_method": card(number or random.choice(APPROVED_CARDS)),
            **extra,
        }

    # -- flows -------------------------------------------------------------------------------------

    @task(30)
    def authorize_with_automatic_capture(self) -> None:
        self._pay(self._payment_body())

    @task(10)
    def authorize_then_capture(self) -> None:
        payment = self._pay(self._payment_body(capture_method="manual"))
        if payment is None or payment["status"] != "requires_capture":
            return
        self._post(f"/v1/payments/{payment['id']}/capture", {}, "POST /v1/payments/[id]/capture")

    @task(6)
    def partial_refunds(self) -> None:
        body = self._payment_body()
        payment = self._pay(body)
        if payment is None or payment["status"] != "succeeded":
            return
        first = body["amount"] // 3 or 1
        for amount in (first, first):
            if amount > 0:
                self._post(
                    "/v1/refunds",
                    {"payment_id": payment["id"], "amount": amount},
                    "POST /v1/refunds",
                )

    @task(8)
    def tokenize_then_pay(self) -> None:
        token = self._post("/v1/tokens", card(random.choice(APPROVED_CARDS)), "POST /v1/tokens")
        if token is None:
            return
        body = self._payment_body()
        body["payment_method"] = {"token": token["id"]}
        self._pay(body)

    @task(6)
    def idempotent_retry(self) -> None:
        key = new_key()
        body = self._payment_body()
        first = self._pay(body, key)
        if first is None:
            return
        headers = {**self.auth, "Idempotency-Key": key}
        with self.client.post(
            "/v1/payments",
            json=body,
            headers=headers,
            name="POST /v1/payments [retry, same key]",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"replay answered HTTP {resp.status_code}")
            elif resp.headers.get("Idempotent-Replayed") != "true":
                resp.failure("retry was not replayed")
            elif resp.json()["id"] != first["id"]:
                resp.failure("retry created a second payment")

    @task(14)
    def get_payment(self) -> None:
        if not self.recent:
            return
        with self.client.get(
            f"/v1/payments/{random.choice(self.recent)}",
            headers=self.auth,
            name="GET /v1/payments/[id]",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")

    @task(6)
    def list_payments(self) -> None:
        with self.client.get(
            "/v1/payments?limit=10", headers=self.auth, name="GET /v1/payments", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")

    @task(10)
    def declined_card(self) -> None:
        number = random.choice(list(DECLINE_CARDS))
        headers = {**self.auth, "Idempotency-Key": new_key()}
        with self.client.post(
            "/v1/payments",
            json=self._payment_body(number),
            headers=headers,
            name="POST /v1/payments",
            catch_response=True,
        ) as resp:
            if resp.status_code != 402:
                resp.failure(f"expected a decline (402), got HTTP {resp.status_code}")
                return
            payment = resp.json()
            if payment.get("status") != "failed":
                resp.failure(f"402 with status {payment.get('status')}")
                return
            # A business outcome, not an error: its own row, counted per decline code.
            resp.request_meta["name"] = "POST /v1/payments [declined]"
            resp.success()
            error = payment.get("error") or {}
            DECLINES[error.get("code") or "declined"] += 1
            self._remember(payment["id"])


@events.quitting.add_listener
def report_declines(environment: Any, **_kw: Any) -> None:
    total = sum(DECLINES.values())
    print(f"business declines (402, status failed): {total} {dict(DECLINES)}")
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        with open(f"{prefix}_declines.json", "w") as fh:
            json.dump({"total": total, "by_code": dict(DECLINES)}, fh)
