"""The payment and refund state machines of paymux.domain.lifecycle: the table move by move, then
a hypothesis state machine that drives one payment and its refunds through random sequences of
operations and outcomes, checking the money invariants after every step.

Only the public functions are called; a status or an amount is never set by hand once a test
payment exists (the fixtures below build a payment *in* a status, as a store would load it)."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)
from paymux.domain.lifecycle import (
    IN_FLIGHT,
    REFUND_TRANSITIONS,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Operation,
    Outcome,
    RefundStatus,
    Transition,
    mermaid,
    next_status,
    refund_mermaid,
    settle_attempt,
    transition,
    transition_refund,
)
from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import AttemptRecord, PaymentRecord, PaymentStatus, RefundRecord

S = PaymentStatus
O = Operation  # the same one-letter names as the table
R = Outcome
RS = RefundStatus

AMOUNT = 1000
RESERVED = 300  # refunds already pending on a succeeded fixture payment


def payment_in(status: str, *, amount: int = AMOUNT) -> PaymentRecord:
    """A payment as the store would load it in ``status``, with amounts consistent with it."""
    p = PaymentRecord(
        id="pay_1",
        merchant_id="m_1",
        status=status,
        amount=amount,
        currency="EUR",
        capture_method="manual",
    )
    if status in (S.REQUIRES_CAPTURE, S.CAPTURING, S.CANCELING):
        p.amount_capturable = amount
    elif status == S.SUCCEEDED:
        p.amount_received = amount
        p.amount_refunded = RESERVED
    return p


def refund_in(status: str, amount: int = RESERVED) -> RefundRecord:
    return RefundRecord(
        id="re_1",
        payment_id="pay_1",
        merchant_id="m_1",
        amount=amount,
        currency="EUR",
        status=status,
        connector="stripe",
        reference="ref_re_1",
    )


def attempt_in(status: str) -> AttemptRecord:
    return AttemptRecord(
        id="att_1",
        payment_id="pay_1",
        merchant_id="m_1",
        seq=1,
        connector="stripe",
        reference="ref_att_1",
        status=status,
        amount=AMOUNT,
        currency="EUR",
    )


def amount_for(status: str, op: Operation, outcome: Outcome) -> int | None:
    """The amount a caller passes with this move on a ``payment_in(status)``."""
    if op is O.CAPTURE or (status == S.CAPTURING and op is O.SYNC):
        return AMOUNT
    if op is O.REFUND:
        return RESERVED if outcome is not R.STARTED else AMOUNT - RESERVED
    return None


def snapshot(p: msgspec.Struct) -> dict:
    return msgspec.structs.asdict(p)


ALL_MOVES = list(itertools.product(S, O, R))
LEGAL = sorted(TRANSITIONS, key=str)
ILLEGAL = [k for k in ALL_MOVES if k not in TRANSITIONS]


# ---- the table -------------------------------------------------------------------------------


def test_the_table_speaks_only_its_own_vocabulary():
    for (frm, op, outcome), to in TRANSITIONS.items():
        assert isinstance(frm, PaymentStatus) and isinstance(to, PaymentStatus)
        assert isinstance(op, Operation) and isinstance(outcome, Outcome)
    for (frm, outcome), to in REFUND_TRANSITIONS.items():
        assert isinstance(frm, RefundStatus) and isinstance(to, RefundStatus)
        assert isinstance(outcome, Outcome)


def test_terminal_statuses_have_no_way_out():
    assert TERMINAL == {S.FAILED, S.CANCELED}
    assert not [k for k in TRANSITIONS if k[0] in TERMINAL]
    # succeeded only ever goes to itself (refunds move its amounts, not its status)
    assert {to for (frm, _, _), to in TRANSITIONS.items() if frm == S.SUCCEEDED} == {S.SUCCEEDED}


def test_every_status_is_reachable_from_the_two_starting_states():
    # A payment starts processing (/v1) or requires_confirmation (a drop-in front's intent).
    starts = {S.PROCESSING, S.REQUIRES_CONFIRMATION}
    seen, todo = set(starts), list(starts)
    while todo:
        frm = todo.pop()
        for (f, _, _), to in TRANSITIONS.items():
            if f == frm and to not in seen:
                seen.add(to)
                todo.append(to)
    assert seen == set(S)
    # and nothing leads back to requires_confirmation: it is a starting state only
    assert S.REQUIRES_CONFIRMATION not in set(TRANSITIONS.values())


def test_in_flight_statuses_resolve_both_ways_and_on_unknown_stay():
    for status in IN_FLIGHT:
        outs = {to for (f, _, _), to in TRANSITIONS.items() if f == status}
        assert len(outs - {status}) >= 2, status  # it can end well and badly
        assert any(
            f == status and r is R.UNKNOWN and to == status for (f, _, r), to in TRANSITIONS.items()
        ), f"{status}: an unknown answer keeps it in flight (ask again, never assume)"
        assert any(f == status and op is O.SYNC for (f, op, _) in TRANSITIONS), status


def test_unknown_never_fails_anything():
    for (frm, _, outcome), to in TRANSITIONS.items():
        if outcome is R.UNKNOWN:
            assert to == frm, (frm, to)
    for (frm, outcome), to in REFUND_TRANSITIONS.items():
        if outcome is R.UNKNOWN:
            assert to == frm


@pytest.mark.parametrize(("frm", "op", "outcome"), LEGAL, ids=lambda v: str(v))
def test_every_legal_move(frm, op, outcome):
    p = payment_in(frm)
    t = transition(p, op, outcome, amount=amount_for(frm, op, outcome), now=42.0)
    assert t == Transition(frm, TRANSITIONS[(frm, op, outcome)], op, outcome)
    assert p.status == TRANSITIONS[(frm, op, outcome)]
    assert p.updated_at == 42.0
    assert t.changed == (frm != p.status)
    assert next_status(frm, op, outcome) == p.status


def test_every_illegal_move_raises_and_changes_nothing():
    assert len(ILLEGAL) > len(LEGAL)
    for frm, op, outcome in ILLEGAL:
        p = payment_in(frm)
        before = snapshot(p)
        with pytest.raises(IllegalTransition) as exc:
            transition(p, op, outcome, amount=amount_for(frm, op, outcome) or 1, now=42.0)
        assert exc.value.code == "payment_unexpected_state", (frm, op, outcome)
        assert snapshot(p) == before, (frm, op, outcome)


@pytest.mark.parametrize("frm", sorted(TERMINAL))
def test_a_terminal_status_never_changes(frm):
    for op, outcome in itertools.product(O, R):
        p = payment_in(frm)
        with pytest.raises(IllegalTransition, match="final"):
            transition(p, op, outcome, amount=1)
        assert p.status == frm


def test_unknown_status_operation_or_outcome_is_illegal_not_a_crash():
    with pytest.raises(IllegalTransition):
        transition(payment_in("bogus"), O.AUTHORIZE, R.AUTHORIZED)
    with pytest.raises(IllegalTransition):
        transition(payment_in(S.PROCESSING), "teleport", R.AUTHORIZED)  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition):
        transition(payment_in(S.PROCESSING), O.AUTHORIZE, "maybe")  # type: ignore[arg-type]


def test_plain_strings_move_the_amounts_like_the_enum_members():
    # Statuses come back from the database as str; a caller passing str operation/outcome
    # must get the same amounts as with the enum members (it once got the status only).
    p = payment_in(S.PROCESSING)
    transition(p, "authorize", "authorized")  # type: ignore[arg-type]
    assert (p.status, p.amount_capturable) == (S.REQUIRES_CAPTURE, AMOUNT)
    transition(p, "capture", "started", amount=400)  # type: ignore[arg-type]
    t = transition(p, "capture", "succeeded", amount=400)  # type: ignore[arg-type]
    assert (p.status, p.amount_received, p.amount_capturable) == (S.SUCCEEDED, 400, 0)
    assert t.operation is O.CAPTURE and t.outcome is R.SUCCEEDED


# ---- amounts ---------------------------------------------------------------------------------


def test_authorize_holds_the_amount_and_automatic_capture_receives_it():
    p = payment_in(S.PROCESSING)
    transition(p, O.AUTHORIZE, R.AUTHORIZED)
    assert (p.amount_capturable, p.amount_received) == (AMOUNT, 0)
    p = payment_in(S.PROCESSING)
    transition(p, O.AUTHORIZE, R.CAPTURED)
    assert (p.status, p.amount_capturable, p.amount_received) == (S.SUCCEEDED, 0, AMOUNT)


@pytest.mark.parametrize("outcome", [R.DECLINED, R.NOT_FOUND, R.REQUIRES_ACTION, R.UNKNOWN])
def test_an_authorization_that_did_not_happen_holds_nothing(outcome):
    p = payment_in(S.PROCESSING)
    transition(p, O.AUTHORIZE, outcome)
    assert (p.amount_capturable, p.amount_received) == (0, 0)


def test_partial_capture_releases_the_rest():
    p = payment_in(S.PROCESSING)
    transition(p, O.AUTHORIZE, R.AUTHORIZED)
    transition(p, O.CAPTURE, R.STARTED, amount=400)
    assert (p.status, p.amount_capturable, p.amount_received) == (S.CAPTURING, AMOUNT, 0)
    transition(p, O.CAPTURE, R.SUCCEEDED, amount=400)
    assert (p.status, p.amount_capturable, p.amount_received) == (S.SUCCEEDED, 0, 400)
    # only what was captured can be refunded
    with pytest.raises(IllegalTransition) as exc:
        transition(p, O.REFUND, R.STARTED, amount=401)
    assert exc.value.code == "refund_exceeds_captured"
    transition(p, O.REFUND, R.STARTED, amount=400)
    assert p.amount_refunded == 400


def test_a_capture_settled_by_sync_moves_the_amounts_too():
    p = payment_in(S.CAPTURING)
    transition(p, O.SYNC, R.SUCCEEDED, amount=250)
    assert (p.status, p.amount_capturable, p.amount_received) == (S.SUCCEEDED, 0, 250)


@pytest.mark.parametrize("amount", [0, -1, None, AMOUNT + 1])
def test_a_capture_needs_a_positive_amount_within_the_authorization(amount):
    p = payment_in(S.REQUIRES_CAPTURE)
    before = snapshot(p)
    with pytest.raises(IllegalTransition) as exc:
        transition(p, O.CAPTURE, R.STARTED, amount=amount)
    assert exc.value.code == ("amount_too_large" if amount == AMOUNT + 1 else "amount_invalid")
    assert snapshot(p) == before


@pytest.mark.parametrize("outcome", [R.FAILED, R.NOT_FOUND])
def test_a_failed_capture_or_void_keeps_the_authorization(outcome):
    for op, in_flight in ((O.CAPTURE, S.CAPTURING), (O.VOID, S.CANCELING)):
        p = payment_in(S.REQUIRES_CAPTURE)
        transition(p, op, R.STARTED, amount=AMOUNT if op is O.CAPTURE else None)
        assert p.status == in_flight
        transition(p, op, outcome, amount=AMOUNT if op is O.CAPTURE else None)
        assert (p.status, p.amount_capturable, p.amount_received) == (
            S.REQUIRES_CAPTURE,
            AMOUNT,
            0,
        )


def test_void_releases_the_authorization():
    p = payment_in(S.REQUIRES_CAPTURE)
    transition(p, O.VOID, R.STARTED)
    assert (p.status, p.amount_capturable) == (S.CANCELING, AMOUNT)
    transition(p, O.VOID, R.SUCCEEDED)
    assert (p.status, p.amount_capturable, p.amount_received) == (S.CANCELED, 0, 0)


def test_an_expired_challenge_fails_and_holds_nothing():
    p = payment_in(S.REQUIRES_ACTION)
    transition(p, O.EXPIRE, R.EXPIRED)
    assert (p.status, p.amount_capturable) == (S.FAILED, 0)


def test_refunds_reserve_and_release():
    p = payment_in(S.PROCESSING)
    transition(p, O.AUTHORIZE, R.CAPTURED)
    transition(p, O.REFUND, R.STARTED, amount=600)
    assert p.amount_refunded == 600  # reserved while pending
    with pytest.raises(IllegalTransition) as exc:  # a concurrent one cannot take the rest twice
        transition(p, O.REFUND, R.STARTED, amount=600)
    assert exc.value.code == "refund_exceeds_captured"
    transition(p, O.REFUND, R.UNKNOWN, amount=600)  # still pending: still reserved
    assert p.amount_refunded == 600
    transition(p, O.REFUND, R.FAILED, amount=600)  # released
    assert p.amount_refunded == 0
    transition(p, O.REFUND, R.STARTED, amount=600)
    transition(p, O.REFUND, R.SUCCEEDED, amount=600)
    assert p.amount_refunded == 600
    transition(p, O.REFUND, R.STARTED, amount=400)
    transition(p, O.REFUND, R.NOT_FOUND, amount=400)  # the PSP never saw it: released
    assert (p.status, p.amount_refunded) == (S.SUCCEEDED, 600)


@pytest.mark.parametrize("amount", [0, -1, None, AMOUNT - RESERVED + 1])
def test_a_refund_needs_a_positive_amount_within_what_is_left(amount):
    p = payment_in(S.SUCCEEDED)
    before = snapshot(p)
    with pytest.raises((IllegalTransition, AssertionError)):
        transition(p, O.REFUND, R.STARTED, amount=amount)
    assert snapshot(p) == before


@pytest.mark.parametrize("amount", [0, -RESERVED, RESERVED + 1])
def test_a_release_never_frees_more_than_was_reserved(amount):
    p = payment_in(S.SUCCEEDED)
    before = snapshot(p)
    with pytest.raises(IllegalTransition):
        transition(p, O.REFUND, R.FAILED, amount=amount)
    assert snapshot(p) == before


def test_refund_statuses():
    for (frm, outcome), to in REFUND_TRANSITIONS.items():
        r = refund_in(frm)
        assert transition_refund(r, outcome, now=7.0) == frm
        assert (r.status, r.updated_at) == (to, 7.0)
    for frm, outcome in itertools.product(RS, R):
        if (frm, outcome) in REFUND_TRANSITIONS:
            continue
        r = refund_in(frm)
        with pytest.raises(IllegalTransition) as exc:
            transition_refund(r, outcome)
        assert exc.value.code == "refund_unexpected_state"
        assert r.status == frm
    with pytest.raises(IllegalTransition):
        transition_refund(refund_in("bogus"), R.SUCCEEDED)


def test_every_refund_outcome_has_its_payment_move():
    # A caller applies a refund's outcome to the refund and to its payment's amounts: whatever
    # the refund accepts, the succeeded payment accepts too.
    for _, outcome in REFUND_TRANSITIONS:
        assert (S.SUCCEEDED, O.REFUND, outcome) in TRANSITIONS, outcome


# ---- attempts --------------------------------------------------------------------------------


def test_an_unsettled_attempt_may_become_anything():
    for before in ("started", AttemptStatus.PENDING, AttemptStatus.FAILED):
        for status in AttemptStatus:
            a = attempt_in(before)
            settle_attempt(a, status)
            assert a.status == status


def test_a_hold_only_moves_to_its_release():
    a = attempt_in(AttemptStatus.AUTHORIZED)
    with pytest.raises(IllegalTransition):
        settle_attempt(a, AttemptStatus.DECLINED)
    settle_attempt(a, AttemptStatus.CAPTURED)
    settle_attempt(a, AttemptStatus.CAPTURED)  # the same word again is fine
    with pytest.raises(IllegalTransition):
        settle_attempt(a, AttemptStatus.VOIDED)  # captured money is refunded, not voided
    settle_attempt(a, AttemptStatus.REFUNDED)
    for status in AttemptStatus:
        if status != AttemptStatus.REFUNDED:
            with pytest.raises(IllegalTransition) as exc:
                settle_attempt(a, status)
            assert exc.value.code == "attempt_unexpected_state"
    assert a.status == AttemptStatus.REFUNDED


def test_a_late_authorization_after_a_decline_is_recorded():
    a = attempt_in(AttemptStatus.DECLINED)
    settle_attempt(a, AttemptStatus.AUTHORIZED)
    settle_attempt(a, AttemptStatus.VOIDED)
    assert a.status == AttemptStatus.VOIDED


# ---- the drawings ----------------------------------------------------------------------------


def test_mermaid_draws_every_move_between_two_statuses():
    text = mermaid()
    assert text.startswith("stateDiagram-v2\n") and text.endswith("\n")
    edges = {
        tuple(line.strip().split(": ")[0].split(" --> ")): line.split(": ", 1)[1].split(", ")
        for line in text.splitlines()[1:]
        if ": " in line
    }
    for (frm, op, outcome), to in TRANSITIONS.items():
        if frm != to:
            assert f"{op} {outcome}" in edges[(str(frm), str(to))], (frm, op, outcome)
    for final in (*TERMINAL, S.SUCCEEDED):
        assert f"    {final} --> [*]" in text.splitlines()
    assert mermaid() == text  # deterministic


def test_refund_mermaid_draws_every_move():
    text = refund_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    for (frm, outcome), to in REFUND_TRANSITIONS.items():
        if frm != to:
            assert f"    {frm} --> {to}: {outcome}" in text.splitlines()


# ---- random walks ----------------------------------------------------------------------------

BIG = 10**7
amount_kinds = st.sampled_from(["full", "partial", "zero", "negative", "too_large", "none"])


def draw_amount(data: st.DataObject, available: int) -> int | None:
    kind = data.draw(amount_kinds)
    if kind == "full":
        return available
    if kind == "partial":
        return data.draw(st.integers(1, max(1, available)))
    if kind == "zero":
        return 0
    if kind == "negative":
        return data.draw(st.integers(-BIG, -1))
    if kind == "too_large":
        return data.draw(st.integers(available + 1, available + BIG))
    return None


class PaymentMachine(RuleBasedStateMachine):
    """One payment, its refunds and a model of what the amounts must be.

    Every call either applies exactly the table's move (and the expected amounts) or raises
    IllegalTransition and leaves the payment as it was."""

    refunds = Bundle("refunds")

    def __init__(self) -> None:
        super().__init__()
        self.payment: PaymentRecord
        self.tracked: list[RefundRecord] = []
        self.capture_amount: int | None = None  # of the capture at the PSP (capturing)
        self.terminal: str | None = None
        self.received_when_succeeded: int | None = None

    @initialize(amount=st.integers(1, BIG), auto=st.booleans())
    def start(self, amount, auto):
        self.payment = PaymentRecord(
            id="pay_sm",
            merchant_id="m_1",
            status=S.PROCESSING,
            amount=amount,
            currency="EUR",
            capture_method="automatic" if auto else "manual",
        )

    # -- helpers

    def apply(self, op: Operation, outcome: Outcome, amount: int | None = None) -> bool:
        """Apply a move; check it did what the table says or nothing at all."""
        p = self.payment
        before = snapshot(p)
        key = (PaymentStatus(p.status), op, outcome)
        try:
            t = transition(p, op, outcome, amount=amount)
        except IllegalTransition:
            assert snapshot(p) == before, "a refused move changed the payment"
            return False
        assert key in TRANSITIONS, f"{key} is not in the table, yet it was applied"
        assert t.from_status == before["status"] and t.to_status == TRANSITIONS[key]
        assert p.status == TRANSITIONS[key]
        return True

    # -- authorization and its syncs

    @rule(outcome=st.sampled_from(R))
    def authorize(self, outcome):
        legal = (self.payment.status, O.AUTHORIZE, outcome) in TRANSITIONS
        assert self.apply(O.AUTHORIZE, outcome) == legal
        if legal and outcome is R.CAPTURED:
            assert self.payment.amount_received == self.payment.amount

    @rule(outcome=st.sampled_from(R))
    def sync(self, outcome):
        status = self.payment.status
        amount = self.capture_amount if status == S.CAPTURING else None
        legal = (status, O.SYNC, outcome) in TRANSITIONS
        assert self.apply(O.SYNC, outcome, amount) == legal
        if legal and status == S.CAPTURING and outcome is R.SUCCEEDED:
            assert self.payment.amount_received == self.capture_amount

    @rule(outcome=st.sampled_from(R))
    def expire(self, outcome):
        legal = (self.payment.status, O.EXPIRE, outcome) in TRANSITIONS
        assert self.apply(O.EXPIRE, outcome) == legal

    # -- capture

    @rule(data=st.data())
    def capture_start(self, data):
        p = self.payment
        amount = draw_amount(data, p.amount_capturable or p.amount)
        legal = (
            p.status == S.REQUIRES_CAPTURE
            and amount is not None
            and 0 < amount <= p.amount_capturable
        )
        assert self.apply(O.CAPTURE, R.STARTED, amount) == legal
        if legal:
            self.capture_amount = amount

    @rule(outcome=st.sampled_from(R))
    def capture_answer(self, outcome):
        p = self.payment
        status = p.status
        amount = self.capture_amount if status == S.CAPTURING else p.amount
        legal = (status, O.CAPTURE, outcome) in TRANSITIONS
        assert self.apply(O.CAPTURE, outcome, amount) == legal
        if legal and status == S.REQUIRES_CAPTURE:  # a started capture of the full amount
            self.capture_amount = amount
        if legal and outcome is R.SUCCEEDED:
            assert (p.amount_received, p.amount_capturable) == (self.capture_amount, 0)

    # -- void

    @rule(outcome=st.sampled_from(R))
    def void(self, outcome):
        legal = (self.payment.status, O.VOID, outcome) in TRANSITIONS
        assert self.apply(O.VOID, outcome) == legal

    # -- refunds

    @rule(target=refunds, data=st.data())
    def refund_start(self, data):
        p = self.payment
        left = p.amount_received - p.amount_refunded
        amount = draw_amount(data, left if left > 0 else p.amount)
        legal = p.status == S.SUCCEEDED and amount is not None and 0 < amount <= left
        if amount is None:  # a programming error, not a client's: it must not move anything
            before = snapshot(p)
            with pytest.raises((IllegalTransition, AssertionError)):
                transition(p, O.REFUND, R.STARTED, amount=None)
            assert snapshot(p) == before
            return None
        assert self.apply(O.REFUND, R.STARTED, amount) == legal
        if not legal:
            return None
        refund = RefundRecord(
            id=f"re_{len(self.tracked)}",
            payment_id=p.id,
            merchant_id=p.merchant_id,
            amount=amount,
            currency=p.currency,
            status=RS.PENDING,
            connector="stripe",
            reference=f"ref_re_{len(self.tracked)}",
        )
        self.tracked.append(refund)
        return refund

    @rule(refund=refunds, outcome=st.sampled_from(R))
    def refund_answer(self, refund, outcome):
        if refund is None:
            return
        before = refund.status
        try:
            transition_refund(refund, outcome)
        except IllegalTransition:
            assert refund.status == before
            assert (RefundStatus(before), outcome) not in REFUND_TRANSITIONS
            return
        # whatever the refund accepted, its payment's amounts must follow
        assert self.apply(O.REFUND, outcome, refund.amount), (before, outcome)

    @rule(refund=consumes(refunds), outcome=st.sampled_from([R.SUCCEEDED, R.FAILED]))
    def refund_settles(self, refund, outcome):
        self.refund_answer(refund, outcome)

    @rule(data=st.data(), outcome=st.sampled_from([R.FAILED, R.NOT_FOUND]))
    def release_more_than_reserved(self, data, outcome):
        p = self.payment
        amount = data.draw(
            st.one_of(
                st.integers(-BIG, 0),
                st.integers(p.amount_refunded + 1, p.amount_refunded + BIG),
            )
        )
        assert not self.apply(O.REFUND, outcome, amount)

    @rule(op=st.sampled_from(O), outcome=st.sampled_from(R), amount=st.integers(-BIG, BIG))
    def anything_else(self, op, outcome, amount):
        """Any move at all with any amount: refused, or the invariants still hold. (Refunds are
        left out: their amount is the refund's own, which the rules above pass.)"""
        if op is O.REFUND:
            return
        status = self.payment.status
        applied = self.apply(op, outcome, amount)
        if applied and status == S.REQUIRES_CAPTURE and op is O.CAPTURE:
            self.capture_amount = amount

    # -- invariants

    @invariant()
    def statuses_are_known(self):
        assert self.payment.status in set(PaymentStatus)
        for r in self.tracked:
            assert r.status in set(RefundStatus)

    @invariant()
    def money_adds_up(self):
        p = self.payment
        assert 0 <= p.amount_received <= p.amount
        assert 0 <= p.amount_refunded <= p.amount_received
        assert 0 <= p.amount_capturable <= p.amount
        reserved = sum(r.amount for r in self.tracked if r.status in (RS.PENDING, RS.SUCCEEDED))
        assert p.amount_refunded == reserved

    @invariant()
    def amounts_match_the_status(self):
        p = self.payment
        holds = p.status in (S.REQUIRES_CAPTURE, S.CAPTURING, S.CANCELING)
        assert (p.amount_capturable > 0) == holds, (p.status, p.amount_capturable)
        assert (p.amount_received > 0) == (p.status == S.SUCCEEDED), p.status
        if p.amount_refunded:
            assert p.status == S.SUCCEEDED

    @invariant()
    def final_stays_final(self):
        p = self.payment
        if self.terminal is not None:
            assert p.status == self.terminal
        elif p.status in TERMINAL:
            self.terminal = p.status
        if self.received_when_succeeded is not None:
            assert (p.status, p.amount_received) == (S.SUCCEEDED, self.received_when_succeeded)
        elif p.status == S.SUCCEEDED:
            self.received_when_succeeded = p.amount_received


PaymentMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_payment_state_machine = PaymentMachine.TestCase
