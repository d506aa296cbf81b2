"""Pass-through payments show in paymux's one view like /v1 traffic (marked by their front), and
paymux never acts on them itself: the merchant drives its PSP directly."""

from __future__ import annotations

import pytest
import requests

from tests.passthrough.conftest import vault
from tests.passthrough.test_sdks import adyen_payments, stripe_client

ADMIN_KEY = "adm_passthrough_analytics_key"


def _admin(gw, path: str) -> dict:
    r = requests.get(gw.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.gateway_config(admin_api_key=ADMIN_KEY)
def test_passthrough_payments_are_counted_by_analytics_and_left_to_the_merchant(gw):
    stripe_token, adyen_token = vault(gw), vault(gw)
    pi = stripe_client(gw).v1.payment_intents.create(params={
        "amount": 2500, "currency": "eur", "confirm": True,
        "payment_method_data": {"type": "card", "card": {"number": stripe_token, "cvc": "123"}},
    })  # fmt: skip
    assert pi.status == "succeeded"
    adyen = adyen_payments(gw).payments({
        "amount": {"value": 1700, "currency": "EUR"}, "reference": "order-pt-1",
        "merchantAccount": "ignored", "paymentMethod": {"type": "scheme", "number": adyen_token,
        "expiryMonth": "12", "expiryYear": "2034", "cvc": "737"},
    })  # fmt: skip
    assert adyen.message["resultCode"] == "Authorised"

    approvals = _admin(gw, "/admin/analytics/approvals")
    counted = {g["key"]["connector"]: g for g in approvals["groups"]}
    assert set(counted) == {"stripe", "adyen"}
    for group in counted.values():
        assert group["attempts"] == 1, group

    # Recorded as payments of the merchant, marked as pass-through, and never acted on by paymux.
    key = gw.keys["m_alpha:stripe"]
    listed = requests.get(
        gw.url + "/v1/payments", headers={"Authorization": f"Bearer {key}"}, timeout=5
    ).json()["data"]
    assert sorted(p["amount"] for p in listed) == [1700, 2500]
    assert all(p["attempts"][0]["next_action"] == "passthrough" for p in listed)
    held = next(p for p in listed if p["amount"] == 1700)
    r = requests.post(
        gw.url + f"/v1/payments/{held['id']}/cancel",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        data=b"{}",
        timeout=5,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "payment_managed_at_psp"
