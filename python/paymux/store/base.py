"""The async store interface and the records it keeps. Callers never know which backend they have.

Every state change of a payment is written together with its event row (the outbox) in one
transaction, and an attempt row is written before its PSP call starts, so a crash never leaves a
charge that paymux has no record of.
"""

from __future__ import annotations

import abc
import enum
from typing import Any

import msgspec


class PaymentStatus(enum.StrEnum):
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


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
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    error: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None  # the routing decision (rule, strategy, order)
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
    created_at: float = 0.0
    updated_at: float = 0.0


class EventRecord(msgspec.Struct, kw_only=True):
    payment_id: str
    merchant_id: str
    type: str  # payment.created, attempt.started, attempt.finished, payment.captured, ...
    from_status: str | None = None
    to_status: str | None = None
    attempt_id: str | None = None
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
    status: str  # in_progress or completed
    created_at: float
    response_status: int | None = None
    response_body: bytes | None = None
    payment_id: str | None = None


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
    if record.status != "completed":
        return IdempotencyState.IN_PROGRESS
    return IdempotencyState.COMPLETED


class IdempotentResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The answer that completes an idempotency record: replayed exactly for the same key."""

    merchant_id: str
    key: str
    status: int
    body: bytes


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


class Store(abc.ABC):
    """Persistence for the gateway. Every method is a coroutine; writes are atomic per call."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # merchants and keys
    @abc.abstractmethod
    async def ensure_merchant(self, merchant: Merchant) -> None: ...

    @abc.abstractmethod
    async def get_merchant(self, merchant_id: str) -> Merchant | None: ...

    @abc.abstractmethod
    async def add_api_key(self, key: ApiKey) -> None: ...

    @abc.abstractmethod
    async def find_api_key(self, key_hash: str) -> ApiKey | None: ...

    @abc.abstractmethod
    async def list_api_keys(self, merchant_id: str) -> list[ApiKey]: ...

    # tokens
    @abc.abstractmethod
    async def insert_token(self, token: TokenRecord) -> None: ...

    @abc.abstractmethod
    async def get_token(self, merchant_id: str, token_id: str) -> TokenRecord | None: ...

    @abc.abstractmethod
    async def delete_token(self, merchant_id: str, token_id: str, now: float) -> bool: ...

    # idempotency
    @abc.abstractmethod
    async def begin_idempotent(
        self, merchant_id: str, key: str, request_hash: str, now: float, ttl_s: float
    ) -> tuple[IdempotencyState, IdempotencyRecord | None]: ...

    @abc.abstractmethod
    async def get_idempotent(
        self, merchant_id: str, key: str, now: float, ttl_s: float
    ) -> IdempotencyRecord | None:
        """The key's record unless it has expired (a read: claiming is a write's job)."""

    @abc.abstractmethod
    async def complete_idempotent(
        self, merchant_id: str, key: str, status: int, body: bytes
    ) -> None: ...

    @abc.abstractmethod
    async def release_idempotent(self, merchant_id: str, key: str) -> None:
        """Forget an in-progress key whose request did nothing (so the client may retry)."""

    @abc.abstractmethod
    async def forget_idempotent(self, merchant_id: str, key: str) -> None:
        """Drop a key's record whatever its state (its first request never got an answer out)."""

    @abc.abstractmethod
    async def stale_idempotency_records(self) -> list[IdempotencyRecord]:
        """In-progress keys left by a process that died (crash recovery)."""

    # payments and attempts
    @abc.abstractmethod
    async def create_payment(
        self,
        payment: PaymentRecord,
        token: TokenRecord | None,
        events: list[EventRecord],
        first_attempt: tuple[AttemptRecord, EventRecord] | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> None:
        """Insert the payment (and the token it vaulted).

        ``first_attempt`` is started in the same transaction (as ``start_attempt`` would), and
        ``claim`` claims its Idempotency-Key for this payment in it first (as
        ``begin_idempotent`` would), raising IdempotencyTaken, with nothing written, if the key
        is bound already: one commit before the first PSP call instead of three."""

    @abc.abstractmethod
    async def start_attempt(self, attempt: AttemptRecord, event: EventRecord) -> None:
        """Persist an attempt before its PSP call goes out."""

    @abc.abstractmethod
    async def finish_attempt(
        self,
        attempt: AttemptRecord,
        payment: PaymentRecord | None,
        events: list[EventRecord],
        idempotent_response: IdempotentResponse | None = None,
    ) -> None:
        """Record the attempt's outcome, and the payment's new state if it changed; with
        ``idempotent_response``, complete that idempotency record in the same transaction."""

    @abc.abstractmethod
    async def transition_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        events: list[EventRecord],
    ) -> None:
        """Write the payment if its stored status is one of ``expected_status``; else Conflict."""

    @abc.abstractmethod
    async def get_payment(self, merchant_id: str, payment_id: str) -> PaymentRecord | None: ...

    @abc.abstractmethod
    async def list_payments(self, merchant_id: str, flt: PaymentFilter) -> list[PaymentRecord]: ...

    @abc.abstractmethod
    async def list_attempts(self, payment_id: str) -> list[AttemptRecord]: ...

    @abc.abstractmethod
    async def list_events(self, payment_id: str) -> list[EventRecord]: ...

    @abc.abstractmethod
    async def payments_in_status(self, status: str) -> list[PaymentRecord]: ...

    @abc.abstractmethod
    async def unfinished_attempts(self) -> list[AttemptRecord]:
        """Attempts persisted as started whose PSP answer never arrived (crash recovery)."""

    # refunds
    @abc.abstractmethod
    async def reserve_refund(self, refund: RefundRecord, event: EventRecord) -> PaymentRecord:
        """Insert a pending refund if the captured amount still covers it; else Conflict."""

    @abc.abstractmethod
    async def finish_refund(self, refund: RefundRecord, event: EventRecord) -> PaymentRecord:
        """Record a refund's outcome and keep the payment's amount_refunded in step."""

    @abc.abstractmethod
    async def get_refund(self, merchant_id: str, refund_id: str) -> RefundRecord | None: ...

    @abc.abstractmethod
    async def list_refunds(self, payment_id: str) -> list[RefundRecord]: ...

    # routing versions (hot reload) and the reconciler's watch list. Not abstract: a backend
    # without them runs with the file's routing config and no background reconciliation.
    async def routing_versions(self) -> list[RoutingVersion]:
        raise NotImplementedError

    async def get_routing_version(self, version: int) -> RoutingVersion | None:
        raise NotImplementedError

    async def active_routing_version(self) -> RoutingVersion | None:
        raise NotImplementedError

    async def active_routing_version_id(self) -> int | None:
        """Cheap enough to poll every second from every worker."""
        raise NotImplementedError

    async def add_routing_version(
        self,
        config: dict[str, Any],
        source: str,
        now: float,
        activate: bool = True,
        unless_active_equals: bool = False,
    ) -> RoutingVersion:
        """Store a new version (made the active one if ``activate``). With
        ``unless_active_equals``, an active version with the same config is returned instead, in
        the same transaction: several workers reloading one file store it once."""
        raise NotImplementedError

    async def activate_routing_version(self, version: int) -> RoutingVersion | None:
        """Make ``version`` the only active one; None if it does not exist."""
        raise NotImplementedError

    async def watch_attempt(self, watch: ReconcileWatch) -> None:
        """Add (or re-open) an attempt on the reconciler's watch list."""
        raise NotImplementedError

    async def due_watches(self, now: float, limit: int = 100) -> list[ReconcileWatch]:
        raise NotImplementedError

    async def claim_watch(self, attempt_id: str, seen_next_check_at: float, until: float) -> bool:
        """Push a due row's next check to ``until`` if nobody else did since it was read: the
        worker that gets True checks it now."""
        raise NotImplementedError

    async def update_watch(self, watch: ReconcileWatch) -> None:
        raise NotImplementedError

    async def list_watches(self, payment_id: str) -> list[ReconcileWatch]:
        raise NotImplementedError
