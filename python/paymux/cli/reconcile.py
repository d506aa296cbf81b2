"""`paymux reconcile`: paymux's records against each PSP's, and the in-flight ones settled.

    paymux reconcile [--since 24h] [--connector NAME] [--config FILE] [--json]

For every payment touched in the window it asks the PSP about the attempt that holds (or may
hold) its funds and about each capture, void and refund, by paymux's own references; when a
connector points at `paymux sandbox` it also reads the sandbox's ledger (amounts, and PSP
payments paymux never attempted or no longer relies on). Each disagreement is one line,

    pay_... stripe: paymux says captured 500, PSP says captured 1000  [amount_captured]

then a count per kind. What can be fixed safely is fixed through the state machine and said so:
an operation left in flight (capture, void, refund) that the PSP has settled, and a payment
left ``processing`` on an attempt the PSP now has an answer for. Then everything is checked
again. Exit status: 0 nothing left, 1 mismatches remain, 2 bad arguments or no usable
config/store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from paymux.api.analytics_params import parse_duration
from paymux.api.app import open_store
from paymux.api.views import HttpAnswers
from paymux.config import ConfigError, GatewayConfig, load_config
from paymux.connectors.base import (
    Connector,
    ConnectorResult,
    OperationSyncRequest,
    SyncRequest,
)
from paymux.connectors.registry import create_connector
from paymux.domain.lifecycle import Outcome, RefundStatus
from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import (
    AttemptRecord,
    OperationRecord,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
)
from paymux.payments.effects import operation_outcome
from paymux.payments.operations import OperationFlow
from paymux.payments.reconciler import Reconciler
from paymux.store.base import Store

PROG = "paymux reconcile"

#: The mismatch kinds, stable names (the JSON output and the counts use them).
KINDS = (
    "status",  # the payment's status is not what the PSP shows
    "amount_capturable",  # what is still authorized differs (ledger)
    "amount_captured",  # what was captured differs (ledger)
    "amount_refunded",  # what was refunded differs (ledger)
    "operation_state",  # a capture, void or refund: paymux and the PSP disagree on its outcome
    "unknown_at_psp",  # paymux records funds at a PSP that has no such payment
    "held_without_payment",  # the PSP holds funds for a reference paymux never attempted
    "double_authorization",  # funds held for an attempt the payment does not rely on
    "psp_unreachable",  # the PSP could not be asked
)

_HOLDS = (AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED)
_CANNOT_LOOK_UP = ("sync_unsupported", "unsupported_operation")
_UNSETTLED_ATTEMPT = ("started", AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION)
_CONCURRENCY = 8


class Unusable(Exception):
    """A config, store or argument the command cannot work with: one line, exit status 2."""


@dataclass
class Mismatch:
    kind: str
    payment_id: str | None  # None: a PSP payment paymux has no record of
    connector: str
    paymux: str
    psp: str
    subject: str | None = None  # the attempt, operation or PSP payment it is about
    fix: AttemptRecord | OperationRecord | RefundRecord | None = None

    @property
    def key(self) -> tuple[str, str | None, str, str | None]:
        return (self.kind, self.payment_id, self.connector, self.subject)

    def line(self) -> str:
        who = self.payment_id or f"({self.subject})"
        return (
            f"{who} {self.connector}: paymux says {self.paymux}, PSP says {self.psp}  [{self.kind}]"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "payment_id": self.payment_id,
            "connector": self.connector,
            "subject": self.subject,
            "paymux": self.paymux,
            "psp": self.psp,
            "fixable": self.fix is not None,
            "line": self.line(),
        }


@dataclass
class Fix:
    kind: str
    payment_id: str
    connector: str
    subject: str
    applied: bool
    message: str

    def line(self) -> str:
        return ("fixed: " if self.applied else "not fixed: ") + self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "payment_id": self.payment_id,
            "connector": self.connector,
            "subject": self.subject,
            "applied": self.applied,
            "message": self.message,
        }


# -- the sandbox's ledger -------------------------------------------------------------------------


@dataclass
class Ledger:
    """One PSP instance's side of the sandbox ledger."""

    url: str
    payments: list[dict[str, Any]]
    clock_s: float  # the sandbox's clock when it answered (event times are on it)
    read_at: float  # wall clock then
    by_reference: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.payments:
            if p.get("reference"):
                self.by_reference.setdefault(str(p["reference"]), []).append(p)

    def first_seen(self, p: dict[str, Any]) -> float | None:
        """Wall-clock time of the PSP payment's first event."""
        times: list[float] = [
            e["at_s"]
            for e in p.get("events") or []
            if isinstance(e, dict) and isinstance(e.get("at_s"), int | float)
        ]
        return self.read_at - (self.clock_s - min(times)) if times else None


def _capturable(p: dict[str, Any]) -> int:
    if p.get("voided") or p.get("status") not in ("authorized", "captured"):
        return 0
    return int(p.get("authorized", 0)) - int(p.get("captured", 0)) - int(p.get("released", 0))


def _holds(p: dict[str, Any]) -> bool:
    if p.get("voided"):
        return False
    return _capturable(p) > 0 or int(p.get("captured", 0)) - int(p.get("refunded", 0)) > 0


def _ledger_says(p: dict[str, Any]) -> str:
    status = str(p.get("status"))
    captured, refunded = int(p.get("captured", 0)), int(p.get("refunded", 0))
    if p.get("voided"):
        return f"voided {p.get('voided_amount', 0)}"
    if status == "authorized":
        return f"authorized {_capturable(p)}"
    if status in ("captured", "refunded"):
        return f"captured {captured}" + (f", refunded {refunded}" if refunded else "")
    return status


def _ledger_root(base_url: str) -> tuple[str, str]:
    """``http://h:p/stripe`` -> (``http://h:p``, ``stripe``): where a sandbox would answer."""
    parts = urlsplit(base_url.rstrip("/"))
    path, _, mount = parts.path.rpartition("/")
    return f"{parts.scheme}://{parts.netloc}{path}", mount


async def read_ledgers(connectors: dict[str, Connector]) -> dict[str, Ledger]:
    """The sandbox ledger of every connector whose base URL is a sandbox mount that answers."""
    roots: dict[str, dict[str, Any] | None] = {}
    ledgers: dict[str, Ledger] = {}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, connector in connectors.items():
            root, mount = _ledger_root(connector.config.base_url)
            if not mount or not root.startswith(("http://", "https://")):
                continue
            if root not in roots:
                roots[root] = None
                try:
                    async with session.get(root + "/_sandbox/ledger") as r:
                        if r.status == 200:
                            doc = await r.json(content_type=None)
                            if isinstance(doc, dict) and isinstance(doc.get("psps"), dict):
                                doc["_read_at"] = time.time()
                                roots[root] = doc
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
            doc = roots[root]
            if doc is None:
                continue
            for psp in doc["psps"].values():
                if isinstance(psp, dict) and str(psp.get("mount", "")).strip("/") == mount:
                    ledgers[name] = Ledger(
                        url=root + "/_sandbox/ledger",
                        payments=[p for p in psp.get("payments", []) if isinstance(p, dict)],
                        clock_s=float(doc.get("clock_s", 0.0)),
                        read_at=doc["_read_at"],
                    )
    return ledgers


# -- asking the PSPs ------------------------------------------------------------------------------


def _psp_says(result: ConnectorResult) -> str:
    status = result.status
    if status in (AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED, AttemptStatus.REFUNDED):
        return f"{status} {result.amount}" if result.amount is not None else str(status)
    if status is AttemptStatus.NOT_FOUND:
        return "not found"
    if status is AttemptStatus.DECLINED:
        code = result.raw_code or result.normalized_code
        return f"declined ({code})" if code else "declined"
    return str(status)


def _unreachable(result: ConnectorResult) -> bool:
    return result.status is AttemptStatus.FAILED and result.normalized_code not in _CANNOT_LOOK_UP


def _why(result: ConnectorResult) -> str:
    return f"nothing ({result.normalized_code or result.raw_code or 'no answer'})"


def _operation_kind(op: OperationRecord | RefundRecord) -> str:
    return op.kind if isinstance(op, OperationRecord) else "refund"


def _op_says(kind: str, outcome: Outcome, result: ConnectorResult) -> str:
    if outcome is Outcome.SUCCEEDED:
        done = {"capture": "captured", "void": "voided", "refund": "refunded"}[kind]
        return f"{done} {result.amount}" if result.amount is not None else done
    if outcome is Outcome.FAILED:
        return "refused"
    if outcome is Outcome.NOT_FOUND:
        return "not applied"
    return str(result.status)


class Checker:
    """One pass over the window: every mismatch found, nothing changed."""

    def __init__(
        self,
        store: Store,
        connectors: dict[str, Connector],
        ledgers: dict[str, Ledger],
        only: str | None,
        sync_timeout_s: float,
    ) -> None:
        self.store = store
        self.connectors = connectors
        self.ledgers = ledgers
        self.only = only
        self.sync_timeout_s = sync_timeout_s
        self.checked = 0
        self.in_flight = 0  # attempts and operations whose own request may still be running

    def still_in_flight(self, connector: str, created_at: float) -> bool:
        """Whether the request that started it may still be waiting for its PSP (its call and
        its sync are bounded by the connector's timeout and ``sync_timeout_s``): then the PSP
        may not have seen it yet, and its "not found" would be no verdict. Left alone."""
        known = self.connectors.get(connector)
        timeout_s = known.config.timeout_s if known is not None else 0.0
        if time.time() - created_at < timeout_s + self.sync_timeout_s + 1.0:
            self.in_flight += 1
            return True
        return False

    def wanted(self, connector: str | None) -> bool:
        return connector is not None and (self.only is None or connector == self.only)

    async def _ask(self, connector: Connector, call: Any) -> ConnectorResult:
        try:
            return await asyncio.wait_for(call, timeout=connector.config.timeout_s + 5.0)
        except Exception as exc:  # noqa: BLE001 - a PSP that cannot be asked is reported
            return ConnectorResult(
                status=AttemptStatus.FAILED,
                normalized_code="timeout" if isinstance(exc, TimeoutError) else "error",
                ambiguous=True,
                detail=type(exc).__name__,
            )

    async def sync(self, attempt: AttemptRecord) -> ConnectorResult | None:
        connector = self.connectors.get(attempt.connector)
        if connector is None:
            return None
        return await self._ask(
            connector,
            connector.sync(
                SyncRequest(
                    reference=attempt.reference,
                    connector_reference=attempt.connector_reference,
                    amount=attempt.amount,
                    currency=attempt.currency,
                )
            ),
        )

    async def sync_operation(
        self, payment: PaymentRecord, op: OperationRecord | RefundRecord
    ) -> ConnectorResult | None:
        connector = self.connectors.get(op.connector)
        if connector is None:
            return None
        return await self._ask(
            connector,
            connector.sync_operation(
                OperationSyncRequest(
                    operation=_operation_kind(op),
                    reference=op.reference,
                    connector_reference=payment.connector_reference or "",
                    amount=op.amount,
                    currency=op.currency,
                    operation_reference=op.connector_reference,
                )
            ),
        )

    async def run(self, since: float) -> list[Mismatch]:
        payments = await self.store.payments_touched_since(since, None)
        attempts_of = await self.store.list_attempts_of([p.id for p in payments])
        references = {a.reference for atts in attempts_of.values() for a in atts}
        selected = [
            p
            for p in payments
            if self.wanted(p.connector)
            or any(self.wanted(a.connector) for a in attempts_of.get(p.id, []))
        ]
        self.checked = len(selected)
        self.in_flight = 0
        found: dict[tuple[str, str | None, str, str | None], Mismatch] = {}
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(payment: PaymentRecord) -> list[Mismatch]:
            async with gate:
                return await self.check_payment(payment, attempts_of.get(payment.id, []))

        for batch in await asyncio.gather(*(one(p) for p in selected)):
            for m in batch:
                if self.wanted(m.connector):
                    found.setdefault(m.key, m)
        for name, ledger in self.ledgers.items():
            if not self.wanted(name):
                continue
            for lp in ledger.payments:
                seen = ledger.first_seen(lp)
                if seen is None or seen < since - 1.0 or not _holds(lp):
                    continue
                if lp.get("reference") in references:
                    continue
                m = Mismatch(
                    "held_without_payment",
                    None,
                    name,
                    "nothing",
                    _ledger_says(lp),
                    subject=str(lp.get("id")),
                )
                found.setdefault(m.key, m)
        return list(found.values())

    async def check_payment(
        self, payment: PaymentRecord, attempts: list[AttemptRecord]
    ) -> list[Mismatch]:
        out: list[Mismatch] = []
        status = payment.status
        holder = next(
            (
                a
                for a in attempts
                if payment.connector_reference is not None
                and status != PaymentStatus.FAILED
                and a.connector == payment.connector
                and a.connector_reference == payment.connector_reference
            ),
            None,
        )
        operations: list[OperationRecord | RefundRecord] = [
            *await self.store.list_operations(payment.id),
            *await self.store.list_refunds(payment.id),
        ]
        pending_refunds = sum(
            r.amount
            for r in operations
            if isinstance(r, RefundRecord) and r.status == RefundStatus.PENDING
        )

        def add(kind: str, connector: str, ours: str, theirs: str, **kw: Any) -> None:
            out.append(Mismatch(kind, payment.id, connector, ours, theirs, **kw))

        # 1. the attempt the payment relies on, at its PSP
        if status == PaymentStatus.PROCESSING:
            waiting = [
                a
                for a in attempts
                if a.connector == payment.connector
                and (a.status in _UNSETTLED_ATTEMPT or (a.status == "failed" and a.ambiguous))
            ]
            if (
                waiting
                and self.wanted(waiting[-1].connector)
                and not self.still_in_flight(waiting[-1].connector, waiting[-1].created_at)
            ):
                attempt = waiting[-1]
                result = await self.sync(attempt)
                if result is not None:
                    if result.status in (*_HOLDS, AttemptStatus.DECLINED, AttemptStatus.NOT_FOUND):
                        add(
                            "status",
                            attempt.connector,
                            "processing",
                            _psp_says(result),
                            subject=attempt.id,
                            fix=attempt,
                        )
                    elif _unreachable(result):
                        add("psp_unreachable", attempt.connector, "processing", _why(result))
        elif (
            holder is not None
            and status != PaymentStatus.REQUIRES_ACTION
            and self.wanted(holder.connector)
        ):
            result = await self.sync(holder)
            if result is not None:
                out += self._compare_holder(payment, holder, result)
        # 2. attempts the payment does not rely on, whose answer was never clear
        for attempt in attempts:
            if attempt is holder or status == PaymentStatus.PROCESSING:
                continue
            unclear = attempt.status in (*_UNSETTLED_ATTEMPT, AttemptStatus.NOT_FOUND) or (
                attempt.status == "failed" and attempt.ambiguous
            )
            if not unclear or not self.wanted(attempt.connector):
                continue
            if attempt.connector in self.ledgers:
                continue  # the ledger below shows every PSP payment of the attempt
            result = await self.sync(attempt)
            if result is not None and result.status in _HOLDS:
                add(
                    "double_authorization",
                    attempt.connector,
                    f"{status} (attempt {attempt.id} not relied on)",
                    _psp_says(result),
                    subject=attempt.id,
                )
        # 3. captures, voids and refunds
        for op in operations:
            if not self.wanted(op.connector):
                continue
            if op.status == "pending" and self.still_in_flight(op.connector, op.created_at):
                continue
            out += await self._compare_operation(payment, op, operations)
        # 4. the sandbox's ledger
        for attempt in attempts:
            ledger = self.ledgers.get(attempt.connector)
            if ledger is not None and self.wanted(attempt.connector):
                out += self._compare_ledger(
                    payment, attempt, attempt is holder, ledger, pending_refunds
                )
        return out

    def _compare_holder(
        self, payment: PaymentRecord, holder: AttemptRecord, result: ConnectorResult
    ) -> list[Mismatch]:
        status = payment.status
        if status == PaymentStatus.FAILED:
            return []
        expected_by_status: dict[str, set[AttemptStatus]] = {
            PaymentStatus.REQUIRES_CAPTURE: {AttemptStatus.AUTHORIZED},
            PaymentStatus.CAPTURING: {AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED},
            PaymentStatus.CANCELING: {AttemptStatus.AUTHORIZED, AttemptStatus.VOIDED},
            PaymentStatus.SUCCEEDED: {AttemptStatus.CAPTURED}
            | ({AttemptStatus.REFUNDED} if payment.amount_refunded else set()),
            PaymentStatus.CANCELED: {AttemptStatus.VOIDED},
        }
        expected = expected_by_status.get(status, set())
        ours = _paymux_says(payment)
        conn = holder.connector
        if result.status is AttemptStatus.NOT_FOUND:
            return [Mismatch("unknown_at_psp", payment.id, conn, ours, "not found", holder.id)]
        if _unreachable(result):
            return [Mismatch("psp_unreachable", payment.id, conn, ours, _why(result))]
        if result.status is AttemptStatus.PENDING or result.status in expected:
            return []
        return [Mismatch("status", payment.id, conn, ours, _psp_says(result), holder.id)]

    async def _compare_operation(
        self,
        payment: PaymentRecord,
        op: OperationRecord | RefundRecord,
        operations: list[OperationRecord | RefundRecord],
    ) -> list[Mismatch]:
        kind = _operation_kind(op)
        # Stripe tells a capture or void by the PaymentIntent's status: once another one of the
        # same kind succeeded, a failed one cannot be told apart from it.
        if (
            op.status == "failed"
            and kind != "refund"
            and any(
                _operation_kind(o) == kind and o.status == "succeeded" and o.id != op.id
                for o in operations
            )
        ):
            return []
        if payment.connector_reference is None:
            return []
        result = await self.sync_operation(payment, op)
        if result is None:
            return []
        outcome = operation_outcome(kind, result)
        ours = f"{kind} {op.id} {op.status} {op.amount}"
        if outcome is Outcome.UNKNOWN:
            if _unreachable(result):
                return [Mismatch("psp_unreachable", payment.id, op.connector, ours, _why(result))]
            return []
        theirs = _op_says(kind, outcome, result)
        if op.status == "pending":
            return [Mismatch("operation_state", payment.id, op.connector, ours, theirs, op.id, op)]
        agrees = (op.status == "succeeded") == (outcome is Outcome.SUCCEEDED)
        if agrees:
            return []
        return [Mismatch("operation_state", payment.id, op.connector, ours, theirs, op.id)]

    def _compare_ledger(
        self,
        payment: PaymentRecord,
        attempt: AttemptRecord,
        is_holder: bool,
        ledger: Ledger,
        pending_refunds: int,
    ) -> list[Mismatch]:
        out: list[Mismatch] = []
        conn = attempt.connector
        entries = ledger.by_reference.get(attempt.reference, [])
        status = payment.status
        own = None
        if is_holder:
            own = next(
                (e for e in entries if e.get("id") == attempt.connector_reference),
                entries[0] if entries else None,
            )
            if own is None:
                return [
                    Mismatch(
                        "unknown_at_psp",
                        payment.id,
                        conn,
                        _paymux_says(payment),
                        "no such payment (ledger)",
                        attempt.id,
                    )
                ]
        for entry in entries:
            if entry is own or not _holds(entry):
                continue
            # A PSP payment that holds funds for an attempt this payment does not rely on
            # (or a second one for the attempt it relies on).
            if status == PaymentStatus.PROCESSING:
                continue  # its answer is still being waited for: the processing check covers it
            out.append(
                Mismatch(
                    "double_authorization",
                    payment.id,
                    conn,
                    f"{status} (attempt {attempt.id} not relied on)",
                    f"{_ledger_says(entry)} ({entry.get('id')})",
                    str(entry.get("id")),
                )
            )
        if own is None or status in (
            PaymentStatus.PROCESSING,
            PaymentStatus.CAPTURING,
            PaymentStatus.CANCELING,
            PaymentStatus.REQUIRES_ACTION,
        ):
            return out  # in flight: the PSP checks above say what is unresolved
        lstatus = str(own.get("status"))
        ledger_by_status: dict[str, tuple[str, ...]] = {
            PaymentStatus.REQUIRES_CAPTURE: ("authorized",),
            PaymentStatus.SUCCEEDED: ("captured", "refunded"),
            PaymentStatus.CANCELED: ("voided", "canceled"),
        }
        expected = ledger_by_status.get(status, ())
        if status == PaymentStatus.CANCELED and own.get("voided"):
            lstatus = "voided"
        if expected and lstatus not in expected:
            out.append(
                Mismatch(
                    "status",
                    payment.id,
                    conn,
                    _paymux_says(payment),
                    f"{_ledger_says(own)} (ledger)",
                    attempt.id,
                )
            )
        if status in (
            PaymentStatus.REQUIRES_CAPTURE,
            PaymentStatus.CANCELED,
        ) and payment.amount_capturable != _capturable(own):
            out.append(
                Mismatch(
                    "amount_capturable",
                    payment.id,
                    conn,
                    f"capturable {payment.amount_capturable}",
                    f"capturable {_capturable(own)} (ledger)",
                    attempt.id,
                )
            )
        captured = int(own.get("captured", 0))
        if payment.amount_received != captured:
            out.append(
                Mismatch(
                    "amount_captured",
                    payment.id,
                    conn,
                    f"captured {payment.amount_received}",
                    f"captured {captured} (ledger)",
                    attempt.id,
                )
            )
        refunded = int(own.get("refunded", 0))
        settled = payment.amount_refunded - pending_refunds
        if not settled <= refunded <= payment.amount_refunded:
            ours = f"refunded {settled}" + (
                f" (+{pending_refunds} pending)" if pending_refunds else ""
            )
            out.append(
                Mismatch(
                    "amount_refunded",
                    payment.id,
                    conn,
                    ours,
                    f"refunded {refunded} (ledger)",
                    attempt.id,
                )
            )
        return out


def _paymux_says(payment: PaymentRecord) -> str:
    status = payment.status
    if status == PaymentStatus.REQUIRES_CAPTURE:
        return f"authorized {payment.amount_capturable}"
    if status == PaymentStatus.SUCCEEDED:
        refunded = f", refunded {payment.amount_refunded}" if payment.amount_refunded else ""
        return f"captured {payment.amount_received}{refunded}"
    if status == PaymentStatus.CANCELED:
        return "voided"
    return str(status)


# -- fixing what can be fixed ---------------------------------------------------------------------


async def apply_fix(
    store: Store, flow: OperationFlow, reconciler: Reconciler, mismatch: Mismatch
) -> Fix | None:
    target = mismatch.fix
    if target is None or mismatch.payment_id is None:
        return None
    pid, conn = mismatch.payment_id, mismatch.connector
    if isinstance(target, AttemptRecord):
        state = await reconciler.check_attempt_now(target)
        payment = await store.get_payment(target.merchant_id, pid)
        now = payment.status if payment is not None else "missing"
        applied = now != PaymentStatus.PROCESSING
        message = (
            f"{pid} attempt {target.id} {mismatch.psp} at the PSP; payment {now}"
            if applied
            else f"{pid} attempt {target.id}: still processing (watch {state})"
        )
        return Fix(mismatch.kind, pid, conn, target.id, applied, message)
    kind = _operation_kind(target)
    settled = await flow.settle_pending(target)
    payment = await store.get_payment(target.merchant_id, pid)
    rows: list[OperationRecord | RefundRecord] = [
        *(await store.list_operations(pid) if kind != "refund" else await store.list_refunds(pid))
    ]
    row = next((r for r in rows if r.id == target.id), None)
    op_status = row.status if row is not None else "missing"
    pay_status = payment.status if payment is not None else "missing"
    applied = settled and op_status != "pending"
    if applied:
        what = {
            "succeeded": "succeeded at the PSP",
            "failed": f"failed ({mismatch.psp} at the PSP)",
        }.get(op_status, op_status)
        message = f"{pid} {kind} {target.id} {what}; payment {pay_status}"
    else:
        message = f"{pid} {kind} {target.id}: still pending"
    return Fix(mismatch.kind, pid, conn, target.id, applied, message)


# -- the command ----------------------------------------------------------------------------------


@dataclass
class Report:
    since: float
    window: str
    connectors: list[str]
    ledgers: dict[str, str]
    checked: int
    in_flight: int
    found: list[Mismatch]
    fixes: list[Fix]
    remaining: list[Mismatch]

    @property
    def exit_status(self) -> int:
        return 1 if self.remaining else 0

    def counts(self) -> dict[str, dict[str, int]]:
        found = Counter(m.kind for m in self.found)
        fixed = Counter(f.kind for f in self.fixes if f.applied)
        left = Counter(m.kind for m in self.remaining)
        return {
            k: {"found": found[k], "fixed": fixed[k], "remaining": left[k]}
            for k in KINDS
            if found[k] or left[k]
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "window": self.window,
            "connectors": self.connectors,
            "ledgers": self.ledgers,
            "payments_checked": self.checked,
            "in_flight": self.in_flight,
            "mismatches": [m.to_json() for m in self.found],
            "fixes": [f.to_json() for f in self.fixes],
            "remaining": [m.to_json() for m in self.remaining],
            "counts": self.counts(),
            "exit_status": self.exit_status,
        }

    def render(self) -> str:
        ledger = ", ".join(sorted(set(self.ledgers.values()))) or "none"
        lines = [
            (
                f"paymux reconcile: {self.checked} payment{'s' if self.checked != 1 else ''} "
                f"touched in the last {self.window}, "
                f"connectors {', '.join(self.connectors)}; sandbox ledger: {ledger}"
            )
        ]
        if self.in_flight:
            lines.append(
                f"{self.in_flight} attempt(s) or operation(s) younger than their PSP call's "
                "timeout: left alone (run again later)"
            )
        lines += [m.line() for m in self.found]
        lines += [f.line() for f in self.fixes]
        if any(f.applied for f in self.fixes):
            fixed = sum(f.applied for f in self.fixes)
            lines.append(f"re-checked after {fixed} fix{'es' if fixed != 1 else ''}:")
            lines += [m.line() for m in self.remaining] or ["  nothing left"]
        counts = self.counts()
        if counts:
            lines.append(f"{'kind':<22}{'found':>6}{'fixed':>7}{'remaining':>11}")
            for kind, c in counts.items():
                lines.append(f"{kind:<22}{c['found']:>6}{c['fixed']:>7}{c['remaining']:>11}")
        fixed = sum(f.applied for f in self.fixes)
        lines.append(
            f"{len(self.found)} mismatch{'es' if len(self.found) != 1 else ''} found, "
            f"{fixed} fixed, {len(self.remaining)} remaining"
        )
        return "\n".join(lines)


async def reconcile(config: GatewayConfig, since: float, window: str, only: str | None) -> Report:
    path = config.storage.path
    if config.storage.backend == "sqlite" and not os.path.isfile(path):
        raise Unusable(
            f"no store at {path}: run the gateway first (paymux serve) or pass --config FILE"
        )
    if not config.connectors:
        raise Unusable("no connectors configured: pass --config FILE with [[connectors]]")
    names = [c.name for c in config.connectors]
    if only is not None and only not in names:
        raise Unusable(f"--connector {only!r} is not configured (configured: {', '.join(names)})")
    try:
        store = open_store(config)
        await store.open()
    except Exception as exc:  # noqa: BLE001 - any store that cannot be opened: one line
        raise Unusable(f"cannot open the store at {path}: {exc}") from None
    connectors: dict[str, Connector] = {}
    try:
        for entry in config.connectors:
            if only is not None and entry.name != only:
                continue
            try:
                connector = create_connector(entry.to_connector_config())
                await connector.start()
            except Exception as exc:  # noqa: BLE001 - a connector that cannot be built
                raise Unusable(f"connector {entry.name}: {exc}") from None
            connectors[entry.name] = connector
        ledgers = await read_ledgers(connectors)
        answers = HttpAnswers()
        flow = OperationFlow(config, store, connectors, answers)
        reconciler = Reconciler(store, connectors, config.reconciler, flow, answers)
        checker = Checker(store, connectors, ledgers, only, config.payments.sync_timeout_s)
        found = await checker.run(since)
        checked, in_flight = checker.checked, checker.in_flight
        fixes: list[Fix] = []
        tried: set[str] = set()
        for mismatch in found:
            if mismatch.fix is None or mismatch.fix.id in tried:
                continue
            tried.add(mismatch.fix.id)
            try:
                fix = await apply_fix(store, flow, reconciler, mismatch)
            except Exception as exc:  # noqa: BLE001 - a fix that fails is reported, not fatal
                fix = Fix(
                    mismatch.kind,
                    mismatch.payment_id or "",
                    mismatch.connector,
                    mismatch.subject or "",
                    False,
                    f"{mismatch.payment_id} {mismatch.subject}: {type(exc).__name__}: {exc}"[:200],
                )
            if fix is not None:
                fixes.append(fix)
        remaining = found
        if any(f.applied for f in fixes):
            if ledgers:
                checker.ledgers = await read_ledgers(connectors)
            remaining = await checker.run(since)
        return Report(
            since=since,
            window=window,
            connectors=list(connectors),
            ledgers={name: ledger.url for name, ledger in ledgers.items()},
            checked=checked,
            in_flight=in_flight,
            found=found,
            fixes=fixes,
            remaining=remaining,
        )
    finally:
        for connector in connectors.values():
            try:
                await connector.close()
            except Exception:  # noqa: BLE001, S110 - closing never hides the result
                pass
        await store.close()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit status 2
        self.exit(2, f"{PROG}: {message} (see {PROG} --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", default="24h", help="window ending now: 90s, 15m, 1h, 7d (24h)")
    parser.add_argument("--connector", help="only this configured connector")
    parser.add_argument("--config", help="gateway TOML config (its store and connectors)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    since_s = parse_duration(args.since)
    if since_s is None or since_s <= 0:
        print(
            f"{PROG}: --since must look like 90s, 15m, 1h or 7d, not {args.since!r}",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.config)
        result = asyncio.run(reconcile(config, time.time() - since_s, args.since, args.connector))
    except (ConfigError, Unusable) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        print(result.render())
    return result.exit_status


if __name__ == "__main__":
    sys.exit(main())
