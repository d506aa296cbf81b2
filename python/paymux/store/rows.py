"""How records become rows, for every backend: which columns hold JSON, which never change after
their insert, and the row of a record. One place, so the backends cannot disagree."""

from __future__ import annotations

from typing import Any

import msgspec

_json_encode = msgspec.json.encode

#: Columns stored as JSON text.
JSON_COLUMNS = frozenset({"metadata", "error", "routing", "data"})

#: Columns a row never changes after its insert. An UPDATE leaves them out of its SET list, so
#: SQLite skips the indexes made only of them (attempts by time and connector, payments by
#: merchant and time) instead of rewriting their entries on every state change, and PostgreSQL
#: keeps such updates HOT. (confirm_payment writes a payment's card columns itself.)
FIXED_AT_INSERT = {
    "attempts": frozenset(
        {
            "id",
            "payment_id",
            "merchant_id",
            "seq",
            "connector",
            "reference",
            "amount",
            "currency",
            "fee",
            "card_brand",
            "card_bin",
            "billing_country",
            "created_at",
        }
    ),
    "payments": frozenset(
        {
            "id",
            "merchant_id",
            "amount",
            "currency",
            "capture_method",
            "token_id",
            "card_brand",
            "card_bin",
            "card_last4",
            "card_exp_month",
            "card_exp_year",
            "billing_country",
            "reference",
            "metadata",
            "routing",
            "front",
            "created_at",
        }
    ),
}


def to_row(record: msgspec.Struct) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if name in JSON_COLUMNS:
            value = None if value is None else _json_encode(value).decode()
        elif isinstance(value, bool):
            value = int(value)
        row[name] = value
    return row
