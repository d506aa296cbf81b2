"""The simulator's state and decisions: issuer and acquirer outcomes, the ledger, idempotency.

Wire-format modules parse and render; everything that decides an outcome or records money lives
here, so the three PSP dialects cannot disagree about what happened.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, NamedTuple

from paymux.sandbox import cards, declines
from paymux.sandbox.scenario import (
    CompiledPsp,
    CompiledScenario,
    ResolvedBehaviour,
    Scenario,
    compile_scenario,
    pick,
)

#: Idempotency keys kept per PSP instance before the oldest are forgotten (real PSPs: 24h-7d).
IDEMPOTENCY_CAPACITY = 200_000


def unit(*parts: object) -> float:
    """A uniform draw in [0, 1) that is a pure function of its parts (and so of the seed)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


def token(length: int, alphabet: str, *parts: object) -> str:
    """A deterministic identifier of `length` characters drawn from `alphabet`."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=64).digest()
    size = len(alphabet)
    return "".join([alphabet[b % size] for b in digest[:length]])


class Decision(NamedTuple):
    """What the PSP does with one request, decided before any answer is written."""

    outcome: str  # approved | declined | challenge | error | none (outage: nothing processed)
    decline: declines.Decline | None
    # normal | timeout | reset; for modifications also error_after (applied, answered 5xx) and
    # garbage_html | garbage_truncated | garbage_empty (applied, answered with an unreadable body)
    delivery: str
    latency_s: float
    hold_s: float  # timeouts: how long the answer is held back
    timeout_mode: str  # late | drop
    source: str = ""  # issuer | acquirer | test_card | psp_test | outage | technical


class Payment:
    """One payment at one PSP instance, as the ledger shows it (masked card only)."""

    __slots__ = (
        "amount",
        "authorized",
        "auto_capture",
        "captured",
        "card",
        "created",
        "created_s",
        "currency",
        "decline",
        "delivery",
        "events",
        "extra",
        "id",
        "idempotency_key",
        "metadata",
        "psp",
        "reference",
        "refunded",
        "released",
        "status",
        "voided",
        "wire",
    )  # fmt: skip
    # Set from the constructor's keywords by each wire format's handler.
    id: str
    psp: str
    wire: str
    status: str
    amount: int
    currency: str
    auto_capture: bool
    created: float
    created_s: float

    def __init__(self, **kw: Any) -> None:
        self.authorized = self.captured = self.refunded = self.released = 0
        self.voided = False
        self.decline: declines.Decline | None = None
        self.delivery = "normal"
        self.events: list[dict[str, Any]] = []
        self.metadata: dict[str, str] = {}
        self.extra: dict[str, Any] = {}
        self.reference: str | None = None
        self.idempotency_key: str | None = None
        self.card: cards.Card | None = None
        for k, v in kw.items():
            setattr(self, k, v)

    @property
    def capturable(self) -> int:
        """What is still authorized and neither captured, released nor voided."""
        if self.voided or self.status not in ("authorized", "captured"):
            return 0
        return self.authorized - self.captured - self.released

    @property
    def voided_amount(self) -> int:
        """What voids released, as applied (the sum of the void events)."""
        return sum(e["amount"] for e in self.events if e["type"] == "void")

    def to_ledger(self) -> dict[str, Any]:
        card = self.card
        return {
            "id": self.id,
            "psp": self.psp,
            "wire": self.wire,
            "reference": self.reference,
            "idempotency_key": self.idempotency_key,
            "amount": self.amount,
            "currency": self.currency,
            "card": card.masked if card else None,
            "brand": card.brand if card else None,
            "issuer_country": card.country if card else None,
            "status": self.status,
            "authorized": self.authorized,
            "captured": self.captured,
            "refunded": self.refunded,
            "released": self.released,
            "voided": self.voided,
            "voided_amount": self.voided_amount,
            "decline_code": self.decline.name if self.decline else None,
            "decline_class": self.decline.decline_class if self.decline else None,
            "delivery": self.delivery,
            "metadata": self.metadata,
            "events": self.events,
        }


class StoredResponse(NamedTuple):
    fingerprint: bytes
    status: int
    body: bytes
    headers: dict[str, str]


class PspState:
    """One PSP instance: its compiled behaviour, payments, idempotency store and counters."""

    def __init__(self, config: CompiledPsp, sandbox: Sandbox) -> None:
        self.config = config
        self.sandbox = sandbox
        self.name = config.name
        self.wire = config.wire
        self.reset()

    def reset(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.by_reference: dict[str, list[str]] = {}
        self.idempotency: dict[str, StoredResponse] = {}
        self.draws = 0
        self.ids = 0
        self.stats = dict.fromkeys(
            ("requests", "authorized", "declined", "challenged", "errors", "outage_failures",
             "timeouts", "resets", "captures", "voids", "refunds", "idempotent_replays",
             "modification_errors", "modification_errors_after_apply", "modification_timeouts",
             "modification_resets", "modification_garbage"),
            0,
        )  # fmt: skip

    # --- identifiers --------------------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 24, alphabet: str = "") -> str:
        self.ids += 1
        alphabet = alphabet or "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        return prefix + token(length, alphabet, self.sandbox.seed, self.name, prefix, self.ids)

    # --- idempotency ----------------------------------------------------------------------------

    def remember(self, key: str, stored: StoredResponse) -> None:
        store = self.idempotency
        store[key] = stored
        if len(store) > IDEMPOTENCY_CAPACITY:
            del store[next(iter(store))]

    # --- payments -------------------------------------------------------------------------------

    def add_payment(self, payment: Payment) -> None:
        self.payments[payment.id] = payment
        if payment.reference:
            self.by_reference.setdefault(payment.reference, []).append(payment.id)

    def find_by_reference(self, reference: str) -> list[Payment]:
        return [self.payments[i] for i in self.by_reference.get(reference, ())]

    def event(self, payment: Payment, kind: str, amount: int, **extra: Any) -> dict[str, Any]:
        ev = {"type": kind, "amount": amount, "at_s": round(self.sandbox.now_s(), 4), **extra}
        payment.events.append(ev)
        return ev

    # --- decisions ------------------------------------------------------------------------------

    def behaviour(self, card: cards.Card | None, currency: str, amount: int) -> ResolvedBehaviour:
        if card is None:
            return self.config.default
        return self.config.behaviour(card.brand, card.country, currency, amount)

    def decide(
        self,
        card: cards.Card | None,
        amount: int,
        currency: str,
        *,
        authorizing: bool = True,
        psp_forced: declines.Decline | None = None,
        operation: str | None = None,
    ) -> Decision:
        """Draw everything one request needs: outage, technical error, 3DS, issuer, acquirer.

        A modification (``authorizing=False``; ``operation`` capture | void | refund) sees the
        outages and the PSP's ``modifications`` faults only, never the authorization faults.
        """
        self.stats["requests"] += 1
        self.draws += 1
        n, seed, name = self.draws, self.sandbox.seed, self.name
        b = self.behaviour(card, currency, amount)
        latency = b.latency_fn(unit(seed, name, n, "latency"))
        outage = self.config.outage_at(self.sandbox.now_s())
        if outage is not None and unit(seed, name, n, "outage") < outage.error_rate:
            self.stats["outage_failures"] += 1
            kind = outage.kind
            if kind == "error":
                return Decision("error", None, "normal", latency, 0.0, "late", "outage")
            delivery = "timeout" if kind == "timeout" else "reset"
            return Decision("none", None, delivery, latency, b.timeout_s, "drop", "outage")
        if not authorizing:
            return self.modification_decision(operation, latency, b)
        if unit(seed, name, n, "error") < b.error_rate:
            self.stats["errors"] += 1
            return Decision("error", None, "normal", latency, 0.0, "late", "technical")
        delivery = "normal"
        if unit(seed, name, n, "timeout") < b.timeout_rate:
            delivery = "timeout"
        elif unit(seed, name, n, "reset") < b.reset_rate:
            delivery = "reset"
        assert card is not None
        forced = self.sandbox.test_card_outcome(card)
        if forced == "challenge" or (
            forced is None and unit(seed, name, n, "3ds") < b.challenge_rate
        ):
            return Decision("challenge", None, delivery, latency, b.timeout_s, b.timeout_mode)
        outcome, decline, source = self.authorize_outcome(card, amount, currency, b, psp_forced)
        return Decision(outcome, decline, delivery, latency, b.timeout_s, b.timeout_mode, source)

    def modification_decision(
        self, operation: str | None, latency: float, b: ResolvedBehaviour
    ) -> Decision:
        """A capture, void or refund: applied, unless the ``modifications`` faults say a 5xx
        before applying; the other faults change only how the applied answer is delivered."""
        m = self.config.modifications
        n, seed, name = self.draws, self.sandbox.seed, self.name
        fault = m.fault(operation, unit(seed, name, n, "modification"))
        if fault is None:
            return Decision("approved", None, "normal", latency, b.timeout_s, b.timeout_mode)
        if fault == "error":
            self.stats["modification_errors"] += 1
            return Decision("error", None, "normal", latency, 0.0, "late", "technical")
        if fault == "garbage":
            self.stats["modification_garbage"] += 1
            kind = m.garbage
            if kind == "mixed":
                kind = "html" if unit(seed, name, n, "garbage") < 0.5 else "truncated"
            delivery = f"garbage_{kind}"
        else:
            self.stats[
                {
                    "error_after": "modification_errors_after_apply",
                    "timeout": "modification_timeouts",
                    "reset": "modification_resets",
                }[fault]
            ] += 1
            delivery = fault
        return Decision("approved", None, delivery, latency, m.timeout_s, m.timeout_mode)

    def authorize_outcome(
        self,
        card: cards.Card,
        amount: int,
        currency: str,
        b: ResolvedBehaviour | None = None,
        psp_forced: declines.Decline | None = None,
    ) -> tuple[str, declines.Decline | None, str]:
        """Issuer first (shared by all PSPs), then this PSP's acquirer."""
        issuer = self.sandbox.issuer_decline(card, amount, currency)
        if issuer is not None:
            return "declined", issuer[0], issuer[1]
        if psp_forced is not None:
            return "declined", psp_forced, "psp_test"
        if b is None:
            b = self.behaviour(card, currency, amount)
        self.draws += 1
        n = self.draws
        if unit(self.sandbox.seed, self.name, n, "acquirer") >= b.approval_rate:
            decline = pick(b.declines, unit(self.sandbox.seed, self.name, n, "acquirer_code"))
            return "declined", decline, "acquirer"
        return "approved", None, ""

    def record_decision(self, payment: Payment, decision: Decision, **extra: Any) -> None:
        """Apply an authorization decision to a payment and the ledger."""
        payment.delivery = decision.delivery
        if decision.delivery == "timeout":
            self.stats["timeouts"] += 1
        elif decision.delivery == "reset":
            self.stats["resets"] += 1
        if decision.outcome == "approved":
            self.stats["authorized"] += 1
            payment.status = "authorized"
            payment.authorized = payment.amount
            self.event(
                payment, "authorization", payment.amount, delivery=decision.delivery, **extra
            )
            if payment.auto_capture:
                payment.captured = payment.amount
                payment.status = "captured"
                self.stats["captures"] += 1
                self.event(payment, "capture", payment.amount, **extra)
        elif decision.outcome == "declined":
            self.stats["declined"] += 1
            payment.status = "declined"
            payment.decline = decision.decline
            assert decision.decline is not None
            self.event(
                payment,
                "decline",
                payment.amount,
                decline_code=decision.decline.name,
                decline_class=decision.decline.decline_class,
                source=decision.source,
                delivery=decision.delivery,
                **extra,
            )
        elif decision.outcome == "challenge":
            self.stats["challenged"] += 1
            payment.status = "challenged"
            self.event(payment, "challenge", payment.amount, delivery=decision.delivery, **extra)


class Sandbox:
    """All PSP instances of one sandbox, the shared issuers and the clock."""

    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self.seed = seed
        self.started = time.monotonic()
        self.load(scenario)

    def load(self, scenario: Scenario) -> None:
        compiled: CompiledScenario = compile_scenario(scenario)
        old = getattr(self, "psps", None)
        if old is not None and {n: p.config.mount for n, p in old.items()} != {
            n: p.mount for n, p in compiled.psps.items()
        }:
            raise ValueError(
                "PSP instances and their mounts are fixed while the sandbox runs; "
                "restart it to add, remove or move a PSP"
            )
        self.scenario = scenario
        self.issuer = compiled.issuer
        if old is None:
            self.psps = {name: PspState(cfg, self) for name, cfg in compiled.psps.items()}
        else:
            for name, cfg in compiled.psps.items():
                old[name].config = cfg

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.started = time.monotonic()
        for psp in self.psps.values():
            psp.reset()

    def now_s(self) -> float:
        return time.monotonic() - self.started

    def card(self, pan: str, exp_month: int, exp_year: int) -> cards.Card:
        issuer = self.issuer
        return cards.make_card(
            pan, exp_month, exp_year, issuer.bin_countries, issuer.default_country
        )

    def test_card_outcome(self, card: cards.Card) -> str | None:
        if not self.issuer.test_cards:
            return None
        return cards.TEST_CARD_OUTCOMES.get(card.pan)

    def issuer_decline(
        self, card: cards.Card, amount: int, currency: str
    ) -> tuple[declines.Decline, str] | None:
        """The issuer's answer for this card, amount and moment: the same at every PSP."""
        forced = self.test_card_outcome(card)
        if forced is not None and forced != "challenge":
            return declines.NORMALIZED[forced], "test_card"
        rate, mix = self.issuer.behaviour(card.brand, card.country, currency, amount)
        if rate <= 0.0:
            return None
        moment = int(self.now_s() // self.issuer.moment_s)
        if unit(self.seed, "issuer", card.pan, amount, currency, moment) < rate:
            code = pick(mix, unit(self.seed, "issuer_code", card.pan, amount, currency, moment))
            return code, "issuer"
        return None

    def ledger(self, psp: str | None = None, reference: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "clock_s": round(self.now_s(), 3), "psps": {}}
        for name, state in self.psps.items():
            if psp is not None and name != psp:
                continue
            payments = (
                state.find_by_reference(reference)
                if reference is not None
                else list(state.payments.values())
            )
            totals = {"authorized": 0, "captured": 0, "refunded": 0, "voided": 0}
            for p in state.payments.values():
                totals["authorized"] += p.authorized
                totals["captured"] += p.captured
                totals["refunded"] += p.refunded
                totals["voided"] += p.voided_amount
            out["psps"][name] = {
                "wire": state.wire,
                "mount": state.config.mount,
                "stats": dict(state.stats),
                "totals": totals,
                "payments": [p.to_ledger() for p in payments],
            }
        return out
