"""The records paymux keeps, and the errors of writing them: plain data, no behaviour beyond
idempotency's comparison. The store persists them; every layer above reads them."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class PaymentStatus(enum.StrEnum):
    REQUIRES_CONFIRMATION = "requires_confirmation"  # created, not yet sent to any PSP
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_CAPTURE = "requires_capture"
    CAPTURING = "capturing"  # a capture is at the PSP, its answer not yet known
    CANCELING = "canceling"  # a void is at the PSP, its answer not yet known
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


#: Metadata keys paymux keeps for itself on a payment (a drop-in front's fields that have no
#: column): never shown to the merchant as its metadata, never sent to a PSP.
RESERVED_METADATA_PREFIX = "paymux_"


def merchant_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """A payment's metadata as the merchant (and its PSP) sees it: paymux's own keys left out."""
    if not any(k.startswith(RESERVED_METADATA_PREFIX) for k in metadata):
        return metadata
    return {k: v for k, v in metadata.items() if not k.startswith(RESERVED_METADATA_PREFIX)}


class Merchant(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: float


class ApiKey(msgspec.Struct, kw_only=True):
    id: str
    merchant_id: str
    key_hash: str  # SHA-256 of the full secret; the secret itself is never stored
    prefix: str  # enough to recognise a key in a list ("sk_test_4f9a")
    mode: str  # "test" or "live"
    created_at: float
    revoked_at: float | None = None


class TokenRecord(msgspec.Struct, kw_only=True):
    id: str
    merchant_id: str
    fingerprint: str
    ciphertext: bytes  # AES-256-GCM, bound to merchant, token id and key version
    key_version: int
    brand: str
    bin: str
    last4: str
    exp_month: int
    exp_year: int
    created_at: float
    deleted_at: float | None = None


class PaymentRecord(msgspec.Struct, kw_only=True):
    id: str
    merchant_id: str
    status: str
    amount: int
    currency: str
    capture_method: str
    amount_capturable: int = 0
    amount_received: int = 0
    amount_refunded: int = 0
    connector: str | None = None
    connector_reference: str | None = None
    token_id: str | None = None
    card_brand: str | None = None
    card_bin: str | None = None
    card_last4: str | None = None
    card_exp_month: int | None = None
    card_exp_year: int | None = None
    billing_country: str | None = None
    reference: str | None = None
    description: str | None = None  # sent to the PSP with the authorization
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    error: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None  # the routing decision (rule, strategy, order)
    front: str = "v1"  # the API it was created through ("v1", a drop-in front): its answers' shape
    created_at: float = 0.0
    updated_at: float = 0.0


class AttemptRecord(msgspec.Struct, kw_only=True):
    id: str
    payment_id: str
    merchant_id: str
    seq: int  # 1 for the first attempt of a payment, 2 for the first cascade, ...
    connector: str
    reference: str  # our per-attempt reference: the PSP's idempotency key
    status: str  # an AttemptStatus; "started" until the PSP answered
    amount: int
    currency: str
    connector_reference: str | None = None
    raw_code: str | None = None
    raw_message: str | None = None
    normalized_code: str | None = None
    decline_class: str | None = None
    advice_code: str | None = None
    latency_ms: float | None = None
    ambiguous: bool = False
    next_action: str | None = None  # why the next attempt was (or was not) tried
    fee: int | None = None  # estimated PSP fee in minor units
    card_brand: str | None = None
    card_bin: str | None = None
    billing_country: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class RefundRecord(msgspec.Struct, kw_only=True):
    id: str
    payment_id: str
    merchant_id: str
    amount: int
    currency: str
    status: str  # pending, succeeded, failed
    connector: str
    reference: str  # idempotency key sent to the PSP
    connector_reference: str | None = None
    raw_code: str | None = None
    reason: str | None = None
    front: str = "v1"  # the API that asked for it: the shape of its Idempotency-Key's answer
    created_at: float = 0.0
    updated_at: float = 0.0


class OperationRecord(msgspec.Struct, kw_only=True):
    """A capture or a void of a payment: persisted before its PSP call, with its own reference
    (the PSP's idempotency key), so that a crash or an ambiguous answer is resolved by asking the
    PSP about that reference. (Refunds are operations too; they keep their own table.)"""

    id: str
    payment_id: str
    merchant_id: str
    kind: str  # capture, void
    amount: int
    currency: str
    connector: str
    reference: str  # sent to the PSP as the idempotency key of this operation
    status: str  # pending (at the PSP, answer unknown), succeeded, failed
    connector_reference: str | None = None  # the PSP's id of the operation, when it has one
    raw_code: str | None = None
    normalized_code: str | None = None
    ambiguous: bool = False
    checks: int = 0  # syncs made so far
    front: str = "v1"  # the API that asked for it: the shape of its Idempotency-Key's answer
    created_at: float = 0.0
    updated_at: float = 0.0


class EventRecord(msgspec.Struct, kw_only=True):
    payment_id: str
    merchant_id: str
    type: str  # payment.created, attempt.started, attempt.finished, payment.captured, ...
    from_status: str | None = None
    to_status: str | None = None
    attempt_id: str | None = None
    operation_id: str | None = None  # the capture, void or refund that caused it
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float = 0.0
    id: int | None = None


class RoutingVersion(msgspec.Struct, kw_only=True):
    """One routing configuration as it was stored; exactly one version is active at a time."""

    version: int
    config: dict[str, Any]  # the `[routing]` table, as JSON
    created_at: float
    source: str  # "config" (the file), "admin" (PUT /admin/routing), "rollback"
    active: bool = False


class ReconcileWatch(msgspec.Struct, kw_only=True):
    """An attempt the reconciler keeps syncing until its PSP-side state is settled."""

    attempt_id: str
    payment_id: str
    merchant_id: str
    kind: str  # "pending": the payment waits on it; "late_auth": the payment moved on
    next_check_at: float
    until: float  # stop watching after this (state becomes "expired")
    state: str = "open"  # open, resolved, voided, expired
    checks: int = 0
    note: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class IdempotencyState(enum.StrEnum):
    NEW = "new"  # this request owns the key now
    IN_PROGRESS = "in_progress"  # another request with this key is running
    MISMATCH = "mismatch"  # the key was used with different parameters
    COMPLETED = "completed"  # replay the stored response


class IdempotencyRecord(msgspec.Struct, kw_only=True):
    merchant_id: str
    key: str
    request_hash: str
    status: str  # in_progress, provisional (answered, not settled yet) or completed
    created_at: float
    response_status: int | None = None
    response_body: bytes | None = None
    payment_id: str | None = None
    operation_id: str | None = None  # the capture, void or refund the key created


class StoredAnswer(msgspec.Struct, kw_only=True, frozen=True):
    """The answer that completes the Idempotency-Keys bound to one payment (``operation_id``
    None: the request that created it) or to one of its operations, written in the same
    transaction as the state it answers for. ``status`` and ``body`` come rendered from the API
    layer; the flow never looks inside them."""

    payment_id: str
    operation_id: str | None
    status: int
    body: bytes
    # False while what it answers for is unsettled (in flight, or waiting for the customer): a
    # provisional answer is replayed as it is, and replaced by the one that settles it.
    final: bool = True


class IdempotencyClaim(msgspec.Struct, kw_only=True, frozen=True):
    """A request's claim on an Idempotency-Key, made in the same transaction as what it creates."""

    merchant_id: str
    key: str
    request_hash: str
    now: float
    ttl_s: float


class IdempotencyTaken(Exception):
    """The key of a claim is bound already (in progress, completed, or other parameters)."""

    def __init__(self, state: IdempotencyState, record: IdempotencyRecord) -> None:
        super().__init__(f"idempotency key is {state}")
        self.state = state
        self.record = record


def idempotency_state(record: IdempotencyRecord, request_hash: str) -> IdempotencyState:
    """What a request with ``request_hash`` meets in a key's existing record."""
    if record.request_hash != request_hash:
        return IdempotencyState.MISMATCH
    if record.status not in ("completed", "provisional"):
        return IdempotencyState.IN_PROGRESS
    return IdempotencyState.COMPLETED


class PaymentFilter(msgspec.Struct, kw_only=True):
    status: str | None = None
    connector: str | None = None
    created_gte: float | None = None
    created_lt: float | None = None
    starting_after: str | None = None  # cursor: the last id of the previous page
    limit: int = 20


class Conflict(Exception):
    """A conditional write found the row in another state than the caller expected."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
