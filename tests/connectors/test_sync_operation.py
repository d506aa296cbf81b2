"""``sync_operation`` of each connector against canned PSP answers on a loopback server.

Found / not found / declined / pending, and every answer that says nothing (garbage, 5xx,
timeout, reset, refused connection, an authentication error): FAILED and ambiguous, never
NOT_FOUND and never an exception. Also the shared HTTP status classifier.
"""

from __future__ import annotations

import orjson
import pytest
from paymux.connectors.base import (
    CaptureRequest,
    OperationSyncRequest,
    RefundRequest,
    VoidRequest,
)
from paymux.connectors.http import classify_status, classify_unreadable
from paymux.domain.outcomes import AttemptStatus, DeclineClass

from .conftest import CLASSES, Canned, free_port, make_config

PI = "pi_3Punit"
ADYEN_PSP = "8815123456789012"
CKO_PAY = "pay_unit1"


def op(
    operation: str,
    *,
    reference: str = "op_ref_1",
    payment: str = PI,
    amount: int = 500,
    operation_reference: str | None = None,
) -> OperationSyncRequest:
    return OperationSyncRequest(
        operation=operation,
        reference=reference,
        connector_reference=payment,
        amount=amount,
        currency="EUR",
        operation_reference=operation_reference,
    )


def pi(status: str, **extra) -> dict:
    body = {
        "id": PI,
        "object": "payment_intent",
        "amount": 1099,
        "amount_received": 0,
        "currency": "eur",
        "status": status,
        "metadata": {},
    }
    body.update(extra)
    return body


def refund(status: str = "succeeded", ref: str = "op_ref_1", rid: str = "re_1", amount=500):
    return {
        "id": rid,
        "object": "refund",
        "amount": amount,
        "currency": "eur",
        "payment_intent": PI,
        "status": status,
        "metadata": {"paymux_reference": ref},
    }


def refund_list(*refunds: dict, has_more: bool = False) -> dict:
    return {"object": "list", "data": list(refunds), "has_more": has_more, "url": "/v1/refunds"}


# Answers that say nothing about the operation, whatever the connector.
UNREADABLE = [
    pytest.param(
        Canned(200, "<html><h1>502 Bad Gateway</h1></html>", content_type="text/html"),
        "invalid_response",
        id="html",
    ),
    pytest.param(
        Canned(200, b'{"id": "x", "status": "succ', content_type="application/json"),
        "invalid_response",
        id="truncated-json",
    ),
    pytest.param(Canned(200, b"", content_type="application/json"), "invalid_response", id="empty"),
    pytest.param(
        Canned(500, b'{"error": {"type": "api_error"}}', content_type="application/json"),
        "psp_server_error",
        id="500",
    ),
    pytest.param(
        Canned(503, "<html>Service Unavailable</html>", content_type="text/html"),
        "psp_server_error",
        id="503",
    ),
    pytest.param(Canned(502, b""), "psp_server_error", id="502-empty"),
    pytest.param(Canned(200, {}, delay_s=2.0), "timeout", id="timeout"),
    pytest.param(Canned(reset=True), "connection_error", id="reset"),
    pytest.param(Canned(200, b'{"id": "x"', cut_short=True), "connection_error", id="cut-short"),
    pytest.param(
        Canned(401, {"error": {"type": "invalid_request_error"}}), "authentication_failed", id="401"
    ),
    pytest.param(Canned(429, b""), "rate_limited", id="429"),
]

# Where each connector's sync_operation asks, per operation (the first request it makes).
SYNC_PATH = {
    "stripe": {
        "capture": f"/v1/payment_intents/{PI}",
        "void": f"/v1/payment_intents/{PI}",
        "refund": "/v1/refunds",
    },
    "adyen": {
        "capture": f"/v72/payments/{PI}/captures",
        "void": f"/v72/payments/{PI}/cancels",
        "refund": f"/v72/payments/{PI}/refunds",
    },
    "checkout": {k: f"/payments/{PI}/actions" for k in ("capture", "void", "refund")},
}


def cannot_tell(result, code: str | None = None) -> None:
    assert result.status is AttemptStatus.FAILED, result
    assert result.ambiguous is True, result
    assert result.decline_class is DeclineClass.TECHNICAL, result
    if code is not None:
        assert result.normalized_code == code, result


@pytest.mark.parametrize("operation", ["capture", "void", "refund"])
@pytest.mark.parametrize(("canned", "code"), UNREADABLE)
async def test_an_answer_that_says_nothing_is_cannot_tell(
    psp, any_connector, operation, canned, code
):
    psp.on("GET", SYNC_PATH[any_connector.kind][operation], canned)
    psp.on("POST", SYNC_PATH[any_connector.kind][operation], canned)
    result = await any_connector.sync_operation(op(operation))
    cannot_tell(result, code)


async def test_a_refused_connection_is_cannot_tell_not_a_verdict():
    for kind, cls in CLASSES.items():
        conn = cls(make_config(kind, f"http://127.0.0.1:{free_port()}"))
        await conn.start()
        try:
            for operation in ("capture", "void", "refund"):
                cannot_tell(await conn.sync_operation(op(operation)), "connection_error")
        finally:
            await conn.close()


async def test_an_unknown_operation_is_cannot_tell(any_connector):
    cannot_tell(await any_connector.sync_operation(op("chargeback")), "unsupported_operation")


# --- the shared classifier -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fixed", "unreadable"),
    [
        (200, None, ("invalid_response", True)),
        (201, None, ("invalid_response", True)),
        (400, None, ("invalid_response", False)),
        (401, ("authentication_failed", False), ("authentication_failed", False)),
        (403, ("authentication_failed", False), ("authentication_failed", False)),
        (404, None, ("invalid_response", False)),
        (409, ("idempotency_conflict", True), ("idempotency_conflict", True)),
        (422, None, ("invalid_response", False)),
        (429, ("rate_limited", False), ("rate_limited", False)),
        (500, ("psp_server_error", True), ("psp_server_error", True)),
        (502, ("psp_server_error", True), ("psp_server_error", True)),
        (504, ("psp_server_error", True), ("psp_server_error", True)),
    ],
)
def test_one_status_classifier(status, fixed, unreadable):
    assert classify_status(status) == fixed
    assert classify_unreadable(status) == unreadable


AUTHORIZE_PATH = {
    "stripe": "/v1/payment_intents",
    "adyen": "/v72/payments",
    "checkout": "/payments",
}


@pytest.mark.parametrize(
    ("status", "code", "ambiguous"),
    [
        (401, "authentication_failed", False),
        (403, "authentication_failed", False),
        (429, "rate_limited", False),
        (500, "psp_server_error", True),
        (503, "psp_server_error", True),
    ],
)
async def test_every_connector_gives_a_status_the_same_meaning(
    psp, any_connector, status, code, ambiguous
):
    from .conftest import authorize_request

    bodies = {
        "stripe": {"error": {"type": "invalid_request_error", "message": "no"}},
        "adyen": {"status": status, "errorCode": "000", "message": "no", "errorType": "security"},
        "checkout": {"request_id": "r", "error_type": "x", "error_codes": ["x"]},
    }
    psp.on("POST", AUTHORIZE_PATH[any_connector.kind], Canned(status, bodies[any_connector.kind]))
    result = await any_connector.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED, result
    assert (result.normalized_code, result.ambiguous) == (code, ambiguous), result


# --- Stripe ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "pi_status", "expected", "amount"),
    [
        ("capture", "succeeded", AttemptStatus.CAPTURED, 400),
        ("capture", "requires_capture", AttemptStatus.NOT_FOUND, None),
        ("capture", "canceled", AttemptStatus.DECLINED, None),
        ("capture", "processing", AttemptStatus.PENDING, None),
        ("void", "canceled", AttemptStatus.VOIDED, 500),
        ("void", "requires_capture", AttemptStatus.NOT_FOUND, None),
        ("void", "succeeded", AttemptStatus.DECLINED, None),
        ("void", "processing", AttemptStatus.PENDING, None),
    ],
)
async def test_stripe_capture_and_void_are_told_by_the_intent_status(
    psp, stripe, operation, pi_status, expected, amount
):
    psp.on("GET", f"/v1/payment_intents/{PI}", Canned(200, pi(pi_status, amount_received=400)))
    result = await stripe.sync_operation(op(operation))
    assert result.status is expected, result
    assert result.amount == amount and result.raw_code == pi_status
    assert result.connector_reference == PI
    assert [r.method for r in psp.requests] == ["GET"]


async def test_stripe_intent_unknown_to_stripe_is_not_found(psp, stripe):
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such payment_intent: '{PI}'",
        }
    }
    psp.on("GET", f"/v1/payment_intents/{PI}", Canned(404, body))
    assert (await stripe.sync_operation(op("capture"))).status is AttemptStatus.NOT_FOUND


async def test_stripe_an_object_that_is_not_an_intent_is_cannot_tell(psp, stripe):
    psp.on("GET", f"/v1/payment_intents/{PI}", Canned(200, {"object": "charge", "id": "ch_1"}))
    cannot_tell(await stripe.sync_operation(op("capture")), "invalid_response")


async def test_stripe_refund_create_sends_the_reference_in_metadata_and_as_the_key(psp, stripe):
    psp.on("POST", "/v1/refunds", Canned(200, refund()))
    result = await stripe.refund(
        RefundRequest(reference="op_ref_1", connector_reference=PI, amount=500, currency="EUR")
    )
    assert result.status is AttemptStatus.REFUNDED and result.connector_reference == "re_1"
    sent = psp.requests[0]
    assert sent.headers["Idempotency-Key"] == "op_ref_1"
    assert sent.form() == {
        "payment_intent": PI,
        "amount": "500",
        "metadata[paymux_reference]": "op_ref_1",
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", AttemptStatus.REFUNDED),
        ("pending", AttemptStatus.PENDING),
        ("requires_action", AttemptStatus.PENDING),
        ("failed", AttemptStatus.DECLINED),
        ("canceled", AttemptStatus.DECLINED),
    ],
)
async def test_stripe_refund_by_its_id(psp, stripe, status, expected):
    psp.on("GET", "/v1/refunds/re_1", Canned(200, refund(status)))
    result = await stripe.sync_operation(op("refund", operation_reference="re_1"))
    assert result.status is expected, result
    assert result.connector_reference == "re_1" and result.amount == 500
    assert [r.path for r in psp.requests] == ["/v1/refunds/re_1"]


async def test_stripe_refund_by_reference_in_the_intents_refund_list(psp, stripe):
    others = [refund(ref=f"op_other_{i}", rid=f"re_o{i}") for i in range(3)]
    psp.on(
        "GET", "/v1/refunds", Canned(200, refund_list(*others, refund(rid="re_ours", amount=300)))
    )
    result = await stripe.sync_operation(op("refund", amount=300))
    assert result.status is AttemptStatus.REFUNDED, result
    assert (result.connector_reference, result.amount) == ("re_ours", 300)
    assert psp.requests[0].query == {"payment_intent": PI, "limit": "100"}


async def test_stripe_refund_list_is_paged_until_the_reference_is_found(psp, stripe):
    first = refund_list(
        refund(ref="op_a", rid="re_a"), refund(ref="op_b", rid="re_b"), has_more=True
    )
    second = refund_list(refund(rid="re_ours", status="pending"))
    psp.on("GET", "/v1/refunds", Canned(200, first), Canned(200, second))
    result = await stripe.sync_operation(op("refund"))
    assert result.status is AttemptStatus.PENDING and result.connector_reference == "re_ours"
    assert psp.requests[1].query == {"payment_intent": PI, "limit": "100", "starting_after": "re_b"}


async def test_stripe_refund_missing_from_the_list_is_not_found(psp, stripe):
    psp.on("GET", "/v1/refunds", Canned(200, refund_list(refund(ref="op_someone_else"))))
    assert (await stripe.sync_operation(op("refund"))).status is AttemptStatus.NOT_FOUND


async def test_stripe_refund_with_an_id_stripe_does_not_know_falls_back_to_the_list(psp, stripe):
    missing = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such refund: 're_gone'",
        }
    }
    psp.on("GET", "/v1/refunds/re_gone", Canned(404, missing))
    psp.on("GET", "/v1/refunds", Canned(200, refund_list(refund(rid="re_ours"))))
    result = await stripe.sync_operation(op("refund", operation_reference="re_gone"))
    assert result.status is AttemptStatus.REFUNDED and result.connector_reference == "re_ours"


async def test_stripe_refund_list_that_is_not_a_list_is_cannot_tell(psp, stripe):
    psp.on("GET", "/v1/refunds", Canned(200, {"object": "refund", "id": "re_1"}))
    cannot_tell(await stripe.sync_operation(op("refund")), "invalid_response")


async def test_stripe_refund_list_garbage_on_a_later_page_is_cannot_tell(psp, stripe):
    first = refund_list(refund(ref="op_a", rid="re_a"), has_more=True)
    psp.on("GET", "/v1/refunds", Canned(200, first), Canned(502, "<html>bad gateway</html>"))
    cannot_tell(await stripe.sync_operation(op("refund")), "psp_server_error")


# --- Adyen -----------------------------------------------------------------------------------


def received(action: str, **extra) -> dict:
    body = {
        "merchantAccount": "PaymuxECOM",
        "paymentPspReference": ADYEN_PSP,
        "pspReference": "99MOD00000000001",
        "reference": "op_ref_1",
        "status": "received",
    }
    body.update(extra)
    return body


@pytest.mark.parametrize(
    ("operation", "path", "expected"),
    [
        ("capture", "captures", AttemptStatus.CAPTURED),
        ("void", "cancels", AttemptStatus.VOIDED),
        ("refund", "refunds", AttemptStatus.REFUNDED),
    ],
)
async def test_adyen_resends_the_identical_modification_with_the_same_key(
    psp, adyen, operation, path, expected
):
    route = f"/v72/payments/{ADYEN_PSP}/{path}"
    psp.on("POST", route, Canned(201, received(path)))
    call = {
        "capture": lambda: adyen.capture(
            CaptureRequest(
                reference="op_ref_1", connector_reference=ADYEN_PSP, amount=500, currency="EUR"
            )
        ),
        "void": lambda: adyen.void(
            VoidRequest(
                reference="op_ref_1", connector_reference=ADYEN_PSP, amount=500, currency="EUR"
            )
        ),
        "refund": lambda: adyen.refund(
            RefundRequest(
                reference="op_ref_1", connector_reference=ADYEN_PSP, amount=500, currency="EUR"
            )
        ),
    }[operation]
    first = await call()
    result = await adyen.sync_operation(op(operation, payment=ADYEN_PSP))
    assert first.status is expected and result.status is expected, result
    assert result.raw_code == "received"
    original, resent = psp.requests
    assert (resent.method, resent.path) == (original.method, original.path) == ("POST", route)
    assert resent.body == original.body  # byte for byte: Adyen replays only an identical body
    assert resent.headers["Idempotency-Key"] == original.headers["Idempotency-Key"] == "op_ref_1"
    body = resent.json()
    assert body["reference"] == "op_ref_1" and body["merchantAccount"] == "PaymuxECOM"
    if operation == "void":
        assert "amount" not in body
    else:
        assert body["amount"] == {"value": 500, "currency": "EUR"}
        assert result.amount == 500
    expected_ref = "99MOD00000000001" if operation == "refund" else ADYEN_PSP
    assert result.connector_reference == expected_ref


async def test_adyen_a_resent_modification_refused_on_its_merits_is_declined(psp, adyen):
    body = {
        "status": 422,
        "errorCode": "167",
        "errorType": "validation",
        "message": "Original pspReference required for this operation",
    }
    psp.on("POST", f"/v72/payments/{ADYEN_PSP}/captures", Canned(422, body))
    result = await adyen.sync_operation(op("capture", payment=ADYEN_PSP))
    assert result.status is AttemptStatus.DECLINED and result.raw_code == "167", result


async def test_adyen_an_idempotency_conflict_is_cannot_tell(psp, adyen):
    # 704: the first request with this key is still being processed.
    body = {
        "status": 422,
        "errorCode": "704",
        "errorType": "validation",
        "message": "request already processed or in progress",
    }
    psp.on("POST", f"/v72/payments/{ADYEN_PSP}/refunds", Canned(422, body))
    cannot_tell(await adyen.sync_operation(op("refund", payment=ADYEN_PSP)), "idempotency_conflict")


async def test_adyen_an_answer_other_than_received_is_pending(psp, adyen):
    psp.on("POST", f"/v72/payments/{ADYEN_PSP}/captures", Canned(201, received("x", status="?")))
    result = await adyen.sync_operation(op("capture", payment=ADYEN_PSP))
    assert result.status is AttemptStatus.PENDING


# --- Checkout.com ----------------------------------------------------------------------------


def action(
    kind: str,
    reference: str | None = "op_ref_1",
    approved: bool | None = True,
    amount: int = 500,
    aid: str = "act_1",
) -> dict:
    body: dict = {"id": aid, "type": kind, "processed_on": "2025-01-01T00:00:00Z", "amount": amount}
    if approved is not None:
        body["approved"] = approved
    if approved is True:
        body.update(response_code="10000", response_summary="Approved")
    elif approved is False:
        body.update(response_code="20051", response_summary="Insufficient Funds")
    if reference is not None:
        body["reference"] = reference
    return body


AUTH = action("Authorization", reference="att_1", aid="act_auth", amount=1099)


@pytest.mark.parametrize(
    ("operation", "kind", "expected"),
    [
        ("capture", "Capture", AttemptStatus.CAPTURED),
        ("void", "Void", AttemptStatus.VOIDED),
        ("refund", "Refund", AttemptStatus.REFUNDED),
    ],
)
async def test_checkout_finds_the_action_with_our_reference(
    psp, checkout, operation, kind, expected
):
    actions = [
        action(kind, reference="op_other", aid="act_other", amount=100),
        action(kind, aid="act_ours", amount=400),
        AUTH,
    ]
    psp.on("GET", f"/payments/{CKO_PAY}/actions", Canned(200, actions))
    result = await checkout.sync_operation(op(operation, payment=CKO_PAY))
    assert result.status is expected, result
    assert result.amount == 400
    assert result.connector_reference == ("act_ours" if operation == "refund" else CKO_PAY)


async def test_checkout_an_unapproved_action_is_declined(psp, checkout):
    psp.on(
        "GET", f"/payments/{CKO_PAY}/actions", Canned(200, [action("Refund", approved=False), AUTH])
    )
    result = await checkout.sync_operation(op("refund", payment=CKO_PAY))
    assert result.status is AttemptStatus.DECLINED and result.raw_code == "20051", result


async def test_checkout_an_action_without_a_verdict_yet_is_pending(psp, checkout):
    psp.on("GET", f"/payments/{CKO_PAY}/actions", Canned(200, [action("Capture", approved=None)]))
    result = await checkout.sync_operation(op("capture", payment=CKO_PAY))
    assert result.status is AttemptStatus.PENDING


async def test_checkout_no_action_with_our_reference_or_type_is_not_found(psp, checkout):
    # A Capture with our reference does not make a Refund, and an auto-capture has no reference.
    actions = [action("Capture"), action("Capture", reference=None), AUTH]
    psp.on("GET", f"/payments/{CKO_PAY}/actions", Canned(200, actions))
    assert (await checkout.sync_operation(op("refund", payment=CKO_PAY))).status is (
        AttemptStatus.NOT_FOUND
    )


async def test_checkout_payment_unknown_is_not_found(psp, checkout):
    psp.on("GET", f"/payments/{CKO_PAY}/actions", Canned(404, b""))
    assert (await checkout.sync_operation(op("void", payment=CKO_PAY))).status is (
        AttemptStatus.NOT_FOUND
    )


async def test_checkout_actions_that_are_not_a_list_are_cannot_tell(psp, checkout):
    psp.on("GET", f"/payments/{CKO_PAY}/actions", Canned(200, {"data": []}))
    cannot_tell(await checkout.sync_operation(op("capture", payment=CKO_PAY)), "invalid_response")


async def test_checkout_capture_void_refund_bodies_send_our_reference(psp, checkout):
    accepted = Canned(202, {"action_id": "act_x", "reference": "op_ref_1"})
    for path in ("captures", "voids", "refunds"):
        psp.on("POST", f"/payments/{CKO_PAY}/{path}", accepted)
    kw = {"connector_reference": CKO_PAY, "amount": 500, "currency": "EUR"}
    await checkout.capture(CaptureRequest(reference="op_c", **kw))
    await checkout.void(VoidRequest(reference="op_v", **kw))
    await checkout.refund(RefundRequest(reference="op_r", **kw))
    sent = [
        (
            r.path.rsplit("/", 1)[1],
            orjson.loads(r.body)["reference"],
            r.headers["Cko-Idempotency-Key"],
        )
        for r in psp.requests
    ]
    assert sent == [
        ("captures", "op_c", "op_c"),
        ("voids", "op_v", "op_v"),
        ("refunds", "op_r", "op_r"),
    ]


async def test_checkout_403_on_an_action_is_the_psps_not_allowed_elsewhere_authentication(
    psp, checkout
):
    from .conftest import authorize_request

    psp.on("POST", f"/payments/{CKO_PAY}/captures", Canned(403, b""))
    psp.on("POST", "/payments", Canned(403, b""))
    capture = await checkout.capture(
        CaptureRequest(reference="op_c", connector_reference=CKO_PAY, amount=5, currency="EUR")
    )
    assert (capture.status, capture.normalized_code, capture.ambiguous) == (
        AttemptStatus.FAILED,
        "invalid_state",
        False,
    )
    assert capture.raw_code == "action_not_allowed"
    auth = await checkout.authorize(authorize_request())
    assert (auth.normalized_code, auth.ambiguous) == ("authentication_failed", False)
