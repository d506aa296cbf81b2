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
    IdempotentResponse,
    Merchant,
    PaymentFilter,
    PaymentRecord,
    ReconcileWatch,
    RefundRecord,
    RoutingVersion,
    TokenRecord,
)


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
