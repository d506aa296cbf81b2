"""Which connectors a payment may go to, and in what order.

The gateway's default: the configured order, filtered by each connector's declared capabilities.
Rule-based and dynamic routing replace `plan` and `observe`; the payment flow does not change.
"""

from __future__ import annotations

import msgspec

from paymux.connectors.base import Connector
from paymux.store.base import AttemptRecord, PaymentRecord


class RoutePlan(msgspec.Struct, kw_only=True):
    connectors: list[str]  # in the order to try them
    rule: str
    strategy: str


class Router:
    def __init__(self, connectors: dict[str, Connector], default_order: list[str]) -> None:
        self.connectors = connectors
        self.default_order = default_order or list(connectors)

    def eligible(self, payment: PaymentRecord, names: list[str]) -> list[str]:
        return [
            n
            for n in names
            if n in self.connectors
            and self.connectors[n].capabilities.supports(
                method="card",
                brand=payment.card_brand,
                currency=payment.currency,
                country=payment.billing_country,
            )
        ]

    def plan(self, payment: PaymentRecord, pinned: str | None = None) -> RoutePlan:
        if pinned is not None:
            return RoutePlan(connectors=self.eligible(payment, [pinned]), rule="pinned",
                             strategy="pinned")
        return RoutePlan(
            connectors=self.eligible(payment, self.default_order), rule="default",
            strategy="priority",
        )

    def fee(self, connector: str, payment: PaymentRecord) -> int | None:
        """The PSP's fee for this payment in minor units, when a fee table is configured."""
        return None

    def observe(self, attempt: AttemptRecord, payment: PaymentRecord) -> None:
        """Feed one attempt's outcome to the health windows (dynamic routing, breakers)."""
