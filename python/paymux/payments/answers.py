"""The port through which the flow gets the answer it stores for an Idempotency-Key.

A key's stored answer must be committed in the same transaction as the state it answers for,
so the flow needs the answer's bytes at that moment; but what an answer looks like (statuses,
JSON) is the API layer's business. The API layer implements this protocol and hands it to the
flow; the flow passes what it returns to the store and back to the caller, without looking in.
"""

from __future__ import annotations

from typing import Protocol

from paymux.domain.errors import Refusal
from paymux.domain.records import AttemptRecord, PaymentRecord, RefundRecord

Answer = tuple[int, bytes]  # rendered by the API layer; opaque to the flow


class Answers(Protocol):
    """``front`` names the API the request came through (``"v1"``, or a drop-in front such as
    the Stripe-compatible one): the record's own ``front``, so that whoever settles it (the
    request itself, the reconciler, crash recovery) answers in the shape its client expects."""

    def payment(self, front: str, payment: PaymentRecord, attempts: list[AttemptRecord]) -> Answer:
        """The answer that shows a payment as it stands (in flight, succeeded, failed...)."""
        ...

    def refund(self, front: str, refund: RefundRecord) -> Answer: ...

    def refusal(self, front: str, refusal: Refusal) -> Answer:
        """The answer of an operation the PSP refused (a definitive answer worth replaying)."""
        ...
