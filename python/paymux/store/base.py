"""The async store interface and the records it keeps. Callers never know which backend they have.

Every state change of a payment is written together with its event row (the outbox) in one
transaction, and an attempt row is written before its PSP call starts, so a crash never leaves a
charge that paymux has no record of.
"""

from __future__ import annotations

import abc
from typing import Any

from paymux.domain.records import (
    ApiKey,
    AttemptRecord,
    EventRecord,
    IdempotencyClaim,
    IdempotencyRecord,
    IdempotencyState,
    Merchant,
    OperationRecord,
    PaymentFilter,
    PaymentRecord,
    ReconcileWatch,
    RefundRecord,
    RoutingVersion,
    StoredAnswer,
    TokenRecord,
)


class StoreUnavailable(Exception):
    """The database cannot be reached right now (down, restarting, out of connections): the
    write did not happen, or its outcome is unknown and recovery settles it. The API answers 503
    with Retry-After; the pool reconnects by itself."""

    retry_after_s = 1


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
        answer: StoredAnswer | None = None,
    ) -> None:
        """Insert the payment (and the token it vaulted).

        ``first_attempt`` is started in the same transaction (as ``start_attempt`` would), and
        ``claim`` binds its Idempotency-Key to this payment in it first, raising
        IdempotencyTaken, with nothing written, if the key is bound already; ``answer``
        completes that key in the same transaction (a payment created unconfirmed)."""

    @abc.abstractmethod
    async def confirm_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        token: TokenRecord | None,
        events: list[EventRecord],
        first_attempt: tuple[AttemptRecord, EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> None:
        """Confirm a payment created unconfirmed, in one transaction: Conflict unless it is in
        ``expected_status``; write its card (and the token it vaulted), its new status and its
        first attempt (persisted before the PSP call); ``claim`` binds the key to the payment."""

    @abc.abstractmethod
    async def update_payment_details(self, payment: PaymentRecord, event: EventRecord) -> None:
        """Write a payment's merchant-side details (metadata, description), whatever its status."""

    @abc.abstractmethod
    async def start_attempt(self, attempt: AttemptRecord, event: EventRecord) -> None:
        """Persist an attempt before its PSP call goes out."""

    @abc.abstractmethod
    async def finish_attempt(
        self,
        attempt: AttemptRecord,
        payment: PaymentRecord | None,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
    ) -> None:
        """Record the attempt's outcome, and the payment's new state if it changed; ``answer``
        completes the Idempotency-Keys bound to the payment in the same transaction."""

    @abc.abstractmethod
    async def transition_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> None:
        """Write the payment if its stored status is one of ``expected_status``; else Conflict.
        ``claim`` binds a key to the payment first; ``answer`` completes the keys bound to it."""

    @abc.abstractmethod
    async def get_payment(self, merchant_id: str, payment_id: str) -> PaymentRecord | None: ...

    @abc.abstractmethod
    async def list_payments(self, merchant_id: str, flt: PaymentFilter) -> list[PaymentRecord]: ...

    @abc.abstractmethod
    async def list_attempts(self, payment_id: str) -> list[AttemptRecord]: ...

    @abc.abstractmethod
    async def list_attempts_of(self, payment_ids: list[str]) -> dict[str, list[AttemptRecord]]:
        """The attempts of several payments in one query, by payment id (for list pages)."""

    @abc.abstractmethod
    async def list_events(self, payment_id: str) -> list[EventRecord]: ...

    @abc.abstractmethod
    async def payments_in_status(self, status: str) -> list[PaymentRecord]: ...

    @abc.abstractmethod
    async def payments_touched_since(
        self, since: float, connector: str | None = None
    ) -> list[PaymentRecord]:
        """Payments created or changed since ``since`` (``paymux reconcile``)."""

    @abc.abstractmethod
    async def unfinished_attempts(self) -> list[AttemptRecord]:
        """Attempts persisted as started whose PSP answer never arrived (crash recovery)."""

    # captures and voids
    @abc.abstractmethod
    async def start_operation(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        operation: OperationRecord,
        events: list[EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> None:
        """Persist a capture or void before its PSP call, with the payment's in-flight state,
        in one transaction: Conflict if the payment is no longer in ``expected_status``;
        ``claim`` binds its Idempotency-Key to the operation (IdempotencyTaken if bound)."""

    @abc.abstractmethod
    async def finish_operation(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        operation: OperationRecord,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        release_claim: bool = False,
    ) -> None:
        """Record the operation's outcome and the payment's new state in one transaction, if
        the payment is still in ``expected_status`` and the operation still pending (else
        Conflict). ``answer`` completes the keys bound to the operation; ``release_claim``
        forgets them instead (a transient failure: the client's retry runs afresh)."""

    @abc.abstractmethod
    async def update_operation(self, operation: OperationRecord) -> None:
        """Note what a check learned about a still-pending operation (codes, check count)."""

    @abc.abstractmethod
    async def pending_operations(self) -> list[OperationRecord]: ...

    @abc.abstractmethod
    async def list_operations(self, payment_id: str) -> list[OperationRecord]: ...

    # refunds
    @abc.abstractmethod
    async def reserve_refund(
        self,
        refund: RefundRecord,
        events: list[EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> PaymentRecord:
        """Insert a pending refund and reserve its amount on the payment, atomically, if the
        payment is succeeded and its captured amount still covers it; else Conflict. Returns
        the payment as written."""

    @abc.abstractmethod
    async def finish_refund(
        self,
        refund: RefundRecord,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        release_claim: bool = False,
    ) -> PaymentRecord:
        """Record a pending refund's outcome (Conflict if it is not pending any more); a failed
        refund releases its reservation. Returns the payment as written."""

    @abc.abstractmethod
    async def update_refund(self, refund: RefundRecord) -> None:
        """Note what a check learned about a still-pending refund."""

    @abc.abstractmethod
    async def get_refund(self, merchant_id: str, refund_id: str) -> RefundRecord | None: ...

    @abc.abstractmethod
    async def list_refunds(self, payment_id: str) -> list[RefundRecord]: ...

    @abc.abstractmethod
    async def pending_refunds(self) -> list[RefundRecord]: ...

    # routing versions (hot reload) and the reconciler's watch list
    @abc.abstractmethod
    async def routing_versions(self) -> list[RoutingVersion]: ...

    @abc.abstractmethod
    async def get_routing_version(self, version: int) -> RoutingVersion | None: ...

    @abc.abstractmethod
    async def active_routing_version(self) -> RoutingVersion | None: ...

    @abc.abstractmethod
    async def active_routing_version_id(self) -> int | None:
        """Cheap enough to poll every second from every worker."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def activate_routing_version(self, version: int) -> RoutingVersion | None:
        """Make ``version`` the only active one; None if it does not exist."""

    @abc.abstractmethod
    async def watch_attempt(self, watch: ReconcileWatch) -> None:
        """Add (or re-open) an attempt on the reconciler's watch list."""

    @abc.abstractmethod
    async def due_watches(self, now: float, limit: int = 100) -> list[ReconcileWatch]: ...

    @abc.abstractmethod
    async def claim_watch(self, attempt_id: str, seen_next_check_at: float, until: float) -> bool:
        """Push a due row's next check to ``until`` if nobody else did since it was read: the
        worker that gets True checks it now."""

    @abc.abstractmethod
    async def update_watch(self, watch: ReconcileWatch) -> None: ...

    @abc.abstractmethod
    async def list_watches(self, payment_id: str) -> list[ReconcileWatch]: ...
