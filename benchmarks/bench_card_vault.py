"""Per-call cost of the card and vault hot path: Rust through Python vs the pure-Python reference.

Build the release extension first (`make build-prod`, i.e. `maturin develop --release`), then run
`python benchmarks/bench_card_vault.py`. Figures are the best of several `timeit` repeats, in
microseconds per call, Rust and reference measured in the same run; the ratio is reference / Rust.
Nothing here asserts a time. `run()` returns the rows so `bench_core.py` can combine benchmarks.

The tokenize reference (validate + brand + HMAC fingerprint + token id + AES-256-GCM) uses
pyca/cryptography's AESGCM (itself OpenSSL, in C) when it is installed; without it that reference
row is skipped. Its token id is base64url, not base58 (no base58 in the standard library), which
flatters the reference slightly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
import timeit
from collections.abc import Callable
from typing import Any

from paymux import _core
from paymux.reference import card as ref

# Published test numbers only.
NUMBERS = ("4242424242424242", "5555555555554444", "378282246310005", "6011111111111117")
TENANT = "m_bench"
NOW = (2026, 5)
REPEATS = 7
TARGET_TOKENIZE_US = 5.0


def _best_us(fn: Callable[[], Any], number: int) -> float:
    """Best of REPEATS runs of `number` calls, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def _cycle(fn: Callable[[str], Any]) -> Callable[[], Any]:
    numbers = NUMBERS

    def call_all() -> None:
        for n in numbers:
            fn(n)

    return call_all


def _reference_tokenizer() -> Callable[[str], Any] | None:
    """validate + brand + fingerprint + token id + encrypt in Python, same layout as the vault."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    aesgcm = AESGCM(os.urandom(32))
    fp_mac = hmac.new(os.urandom(32), digestmod=hashlib.sha256)
    header = struct.pack(">BI", 1, 1)
    tenant = TENANT.encode()
    tenant_part = struct.pack(">I", len(tenant)) + tenant

    def tokenize(number: str) -> tuple[str, str, bytes, ref.CardInfo]:
        info = ref.inspect_card(number)
        month, year = ref.check_expiry(12, 30, *NOW)
        digits = number.replace(" ", "").replace("-", "")
        mac = fp_mac.copy()
        mac.update(b"paymux.fp.v1" + tenant_part + digits.encode())
        fingerprint = "fp_" + mac.hexdigest()
        token_id = "tok_" + base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()
        nonce = os.urandom(12)
        token = token_id.encode()
        aad = header + tenant_part + struct.pack(">I", len(token)) + token
        record = bytes((1, month)) + struct.pack(">H", year) + digits.encode()
        ciphertext = header + nonce + aesgcm.encrypt(nonce, record, aad)
        return token_id, fingerprint, ciphertext, info

    return tokenize


def run(loops: int = 20_000) -> list[dict[str, Any]]:
    """One row per operation: rust_us, reference_us (None if unavailable), ratio, note."""
    vault = _core.Vault({1: os.urandom(32)}, os.urandom(32))
    per = len(NUMBERS)
    rows: list[dict[str, Any]] = []

    def row(
        name: str,
        rust: Callable[[str], Any],
        reference: Callable[[str], Any] | None,
        note: str = "",
    ) -> None:
        rust_us = _best_us(_cycle(rust), loops // per) / per
        ref_us = _best_us(_cycle(reference), loops // per) / per if reference else None
        rows.append(
            {
                "benchmark": name,
                "rust_us": rust_us,
                "reference_us": ref_us,
                "ratio": (ref_us / rust_us) if ref_us else None,
                "note": note,
            }
        )

    row("card: inspect_card (luhn + brand + lengths)", _core.inspect_card, ref.inspect_card)
    row("card: luhn_valid", _core.luhn_valid, ref.luhn_valid)
    row("card: mask_pan", _core.mask_pan, ref.mask_pan)

    def rust_tokenize(number: str) -> Any:
        return vault.tokenize(TENANT, number, 12, 30, *NOW)

    reference = _reference_tokenizer()
    row(
        "vault: tokenize (validate + fingerprint + token + encrypt)",
        rust_tokenize,
        reference,
        note=f"target <= {TARGET_TOKENIZE_US:g} us"
        + ("" if reference else "; reference skipped: `cryptography` not installed"),
    )

    token = rust_tokenize(NUMBERS[0])
    row(
        "vault: reveal (decrypt + parse)",
        lambda _n: vault.reveal(TENANT, token.token_id, token.ciphertext),
        None,
        note="no reference",
    )
    return rows


def main() -> None:
    rows = run()
    print(f"{'benchmark':<60} {'rust µs':>9} {'python µs':>10} {'ratio':>7}  note")
    for r in rows:
        ref_us = f"{r['reference_us']:10.3f}" if r["reference_us"] is not None else f"{'-':>10}"
        ratio = f"{r['ratio']:6.1f}x" if r["ratio"] is not None else f"{'-':>7}"
        print(f"{r['benchmark']:<60} {r['rust_us']:9.3f} {ref_us} {ratio}  {r['note']}")


if __name__ == "__main__":
    main()
