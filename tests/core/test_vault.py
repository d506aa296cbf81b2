"""Vault through the Python bindings: round trips, tamper detection, rotation, fingerprints, leaks."""

from __future__ import annotations

import os
import re
import struct
from typing import Any

import pytest
from paymux import _core

from .test_card import GOLDEN

# Untyped handle for calls that pass wrong types on purpose.
UNTYPED: Any = _core

NOW = (2026, 5)
TOKEN_ID = re.compile(r"^tok_[1-9A-HJ-NP-Za-km-z]{21,22}$")  # base58 of 16 bytes
FINGERPRINT = re.compile(r"^fp_[0-9a-f]{64}$")

K1, K2, FP_KEY = os.urandom(32), os.urandom(32), os.urandom(32)


@pytest.fixture
def vault() -> _core.Vault:
    return _core.Vault({1: K1}, FP_KEY)


@pytest.fixture
def rotated() -> _core.Vault:
    return _core.Vault({1: K1, 2: K2}, FP_KEY)


def tokenize(vault: _core.Vault, number: str, tenant: str = "m_1") -> _core.TokenizedCard:
    return vault.tokenize(tenant, number, 12, 30, *NOW)


def vault_code(call) -> str:
    with pytest.raises(_core.VaultError) as err:
        call()
    return err.value.code


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "brand"), GOLDEN)
def test_tokenized_card_reveals_its_number_and_expiry(
    vault: _core.Vault, number: str, brand: str
) -> None:
    t = tokenize(vault, number)
    assert (t.brand, t.last4, t.exp_month, t.exp_year) == (brand, number[-4:], 12, 2030)
    assert t.bin == _core.card_bin(number)
    assert t.key_version == 1 == _core.Vault.key_version_of(t.ciphertext)
    assert TOKEN_ID.match(t.token_id)
    assert FINGERPRINT.match(t.fingerprint)
    assert number.encode() not in t.ciphertext
    revealed = vault.reveal("m_1", t.token_id, t.ciphertext)
    assert (revealed.number, revealed.exp_month, revealed.exp_year) == (number, 12, 2030)


def test_tokenize_normalizes_the_number_and_two_digit_year(vault: _core.Vault) -> None:
    t = vault.tokenize("m_1", "4242 4242-4242 4242", 3, 27, *NOW)
    assert (t.exp_month, t.exp_year) == (3, 2027)
    assert vault.reveal("m_1", t.token_id, t.ciphertext).number == "4242424242424242"


def test_stored_record_holds_only_pan_and_expiry_never_a_cvv(vault: _core.Vault) -> None:
    t = tokenize(vault, "4242424242424242")
    record = vault.decrypt("m_1", t.token_id, t.ciphertext)
    # format byte, month, year (u16), then the 16 PAN digits: nothing else.
    assert record == bytes([1, 12]) + struct.pack(">H", 2030) + b"4242424242424242"
    assert "cvv" not in (getattr(_core.Vault.tokenize, "__text_signature__", None) or "").lower()


def test_generic_encrypt_decrypt_round_trip_including_empty(vault: _core.Vault) -> None:
    for plaintext in (b"", b"x", os.urandom(1000)):
        ct = vault.encrypt("m_1", "tok_a", plaintext)
        assert len(ct) == 1 + 4 + 12 + len(plaintext) + 16
        assert vault.decrypt("m_1", "tok_a", ct) == plaintext


def test_same_plaintext_encrypts_differently_each_time(vault: _core.Vault) -> None:
    assert vault.encrypt("m_1", "tok_a", b"same") != vault.encrypt("m_1", "tok_a", b"same")


def test_bytes_that_are_not_a_card_record_do_not_reveal(vault: _core.Vault) -> None:
    ct = vault.encrypt("m_1", "tok_a", b"not a card")
    assert vault_code(lambda: vault.reveal("m_1", "tok_a", ct)) == "invalid_ciphertext"


# --- tamper detection --------------------------------------------------------------------------


def test_ciphertext_from_another_tenant_does_not_decrypt(vault: _core.Vault) -> None:
    t = tokenize(vault, "4242424242424242", tenant="m_1")
    assert vault_code(lambda: vault.reveal("m_2", t.token_id, t.ciphertext)) == "decrypt_failed"


def test_ciphertext_under_another_token_id_does_not_decrypt(vault: _core.Vault) -> None:
    a = tokenize(vault, "4242424242424242")
    b = tokenize(vault, "4242424242424242")
    assert vault_code(lambda: vault.reveal("m_1", b.token_id, a.ciphertext)) == "decrypt_failed"


def test_relabelled_key_version_does_not_decrypt(rotated: _core.Vault) -> None:
    t = tokenize(rotated, "4242424242424242")
    relabelled = t.ciphertext[:1] + struct.pack(">I", 1) + t.ciphertext[5:]
    assert _core.Vault.key_version_of(relabelled) == 1
    assert vault_code(lambda: rotated.reveal("m_1", t.token_id, relabelled)) == "decrypt_failed"


def test_any_flipped_bit_is_detected(vault: _core.Vault) -> None:
    t = tokenize(vault, "4242424242424242")
    for i in range(5, len(t.ciphertext)):
        for bit in (0x01, 0x80):
            tampered = bytearray(t.ciphertext)
            tampered[i] ^= bit
            ct = bytes(tampered)
            code = vault_code(lambda ct=ct: vault.reveal("m_1", t.token_id, ct))
            assert code == "decrypt_failed", i


def test_data_encrypted_under_other_keys_does_not_decrypt(vault: _core.Vault) -> None:
    stranger = _core.Vault({1: os.urandom(32)}, os.urandom(32))
    t = tokenize(stranger, "4242424242424242")
    assert vault_code(lambda: vault.reveal("m_1", t.token_id, t.ciphertext)) == "decrypt_failed"


@pytest.mark.parametrize(
    ("ciphertext", "code"),
    [
        (b"", "invalid_ciphertext"),
        (b"\x01\x00\x00\x00\x01" + bytes(27), "invalid_ciphertext"),  # one byte short of a tag
        (b"\x02\x00\x00\x00\x01" + bytes(28), "invalid_ciphertext"),  # unknown format version
        (b"\x01\x00\x00\x00\x07" + bytes(28), "unknown_key_version"),
    ],
)
def test_malformed_ciphertext_is_refused_with_a_code(
    vault: _core.Vault, ciphertext: bytes, code: str
) -> None:
    assert vault_code(lambda: vault.decrypt("m_1", "tok_a", ciphertext)) == code


# --- rotation ----------------------------------------------------------------------------------


def test_new_records_use_the_highest_key_version() -> None:
    v = _core.Vault({3: K2, 1: K1}, FP_KEY)
    assert v.active_key_version == 3
    assert v.key_versions == [1, 3]
    assert _core.Vault.key_version_of(v.encrypt("m_1", "tok_a", b"x")) == 3


def test_rotation_keeps_old_records_readable_and_reencrypt_moves_them(
    vault: _core.Vault, rotated: _core.Vault
) -> None:
    t = tokenize(vault, "5555555555554444")
    assert rotated.reveal("m_1", t.token_id, t.ciphertext).number == "5555555555554444"
    moved = rotated.reencrypt("m_1", t.token_id, t.ciphertext)
    assert _core.Vault.key_version_of(moved) == 2
    assert rotated.reveal("m_1", t.token_id, moved).number == "5555555555554444"
    assert vault_code(lambda: vault.reveal("m_1", t.token_id, moved)) == "unknown_key_version"


def test_reencrypt_authenticates_before_moving(rotated: _core.Vault) -> None:
    t = tokenize(rotated, "4242424242424242")
    assert vault_code(lambda: rotated.reencrypt("m_2", t.token_id, t.ciphertext)) == (
        "decrypt_failed"
    )


def test_retired_key_version_is_reported_as_unknown(rotated: _core.Vault) -> None:
    old = _core.Vault({1: K1}, FP_KEY)
    t = tokenize(old, "4242424242424242")
    only_v2 = _core.Vault({2: K2}, FP_KEY)
    assert vault_code(lambda: only_v2.reveal("m_1", t.token_id, t.ciphertext)) == (
        "unknown_key_version"
    )


# --- fingerprints and token ids ----------------------------------------------------------------


def test_fingerprint_is_stable_for_the_same_card_and_merchant(
    vault: _core.Vault, rotated: _core.Vault
) -> None:
    fp = vault.fingerprint("m_1", "4242424242424242")
    assert FINGERPRINT.match(fp)
    assert fp == vault.fingerprint("m_1", "4242 4242 4242 4242")
    assert fp == tokenize(vault, "4242424242424242").fingerprint
    assert fp == rotated.fingerprint("m_1", "4242424242424242")  # independent of data keys


def test_fingerprint_differs_across_merchants_cards_and_keys(vault: _core.Vault) -> None:
    fp = vault.fingerprint("m_1", "4242424242424242")
    assert fp != vault.fingerprint("m_2", "4242424242424242")
    assert fp != vault.fingerprint("m_1", "4111111111111111")
    assert fp != _core.Vault({1: K1}, os.urandom(32)).fingerprint("m_1", "4242424242424242")


def test_token_ids_are_random_not_derived_from_the_card(vault: _core.Vault) -> None:
    ids = {tokenize(vault, "4242424242424242").token_id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(TOKEN_ID.match(i) for i in ids)


# --- no PAN or key in any string form ----------------------------------------------------------


def _texts(obj: object) -> list[str]:
    return [repr(obj), str(obj), format(obj)]


def _error_texts(err: BaseException) -> list[str]:
    texts = [str(err), repr(err), repr(err.args), getattr(err, "code", "")]
    assert err.__cause__ is None and err.__context__ is None
    return texts


@pytest.mark.parametrize(("number", "brand"), GOLDEN)
def test_no_object_shows_the_pan_in_any_string_form(
    vault: _core.Vault, number: str, brand: str
) -> None:
    t = tokenize(vault, number)
    revealed = vault.reveal("m_1", t.token_id, t.ciphertext)
    info = _core.inspect_card(number)
    for obj in (t, revealed, info, vault):
        for text in _texts(obj):
            assert number not in text
            assert number[:-4] not in text  # not even everything but the last 4
    assert _core.mask_pan(number) in repr(revealed)


@pytest.mark.parametrize(("number", "brand"), GOLDEN)
def test_no_error_message_shows_the_pan_for_bad_input(
    vault: _core.Vault, number: str, brand: str
) -> None:
    luhn_broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    attempts = [
        lambda: _core.inspect_card(luhn_broken),
        lambda: _core.inspect_card(number + "1234"),
        lambda: _core.inspect_card(number + "x"),
        lambda: _core.mask_pan(number + "\ud800"),
        lambda: vault.tokenize("m_1", luhn_broken, 12, 30, *NOW),
        lambda: vault.tokenize("m_1", number, 13, 30, *NOW),
        lambda: vault.tokenize("m_1", number, 1, 2020, *NOW),
        lambda: vault.tokenize("", number, 12, 30, *NOW),
        lambda: vault.tokenize("m_1", number, 12, 30, 26, 5),
        lambda: vault.fingerprint("m_1", number + "zz"),
        lambda: UNTYPED.Vault({1: K1}, FP_KEY).tokenize("m_1", int(number), 12, 30, *NOW),
    ]
    for attempt in attempts:
        with pytest.raises((ValueError, TypeError)) as err:
            attempt()
        for text in _error_texts(err.value):
            assert number not in text
            assert luhn_broken not in text


def test_vault_repr_lists_versions_never_key_bytes(rotated: _core.Vault) -> None:
    assert repr(rotated) == "Vault(key_versions=[1, 2], active=2)"
    for key in (K1, K2, FP_KEY):
        for text in _texts(rotated):
            assert key.hex() not in text and repr(key) not in text


def test_result_objects_are_frozen(vault: _core.Vault) -> None:
    t = tokenize(vault, "4242424242424242")
    revealed = vault.reveal("m_1", t.token_id, t.ciphertext)
    for obj, attr in ((t, "token_id"), (revealed, "number"), (vault, "active_key_version")):
        with pytest.raises(AttributeError):
            setattr(obj, attr, "x")


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "fingerprint_key"),
    [
        ({1: b"short"}, FP_KEY),
        ({1: K1 + b"!"}, FP_KEY),
        ({}, FP_KEY),
        ({1: K1}, FP_KEY[:31]),
        ({1: K1}, K1),  # fingerprint key reused as a data key
        ({-1: K1}, FP_KEY),
        ({2**32: K1}, FP_KEY),
    ],
)
def test_bad_keys_raise_invalid_key(keys: dict, fingerprint_key: bytes) -> None:
    assert vault_code(lambda: _core.Vault(keys, fingerprint_key)) == "invalid_key"


@pytest.mark.parametrize(
    "call",
    [
        lambda: UNTYPED.Vault({"1": K1}, FP_KEY),
        lambda: UNTYPED.Vault({1: K1.hex()}, FP_KEY),
        lambda: UNTYPED.Vault({1: bytearray(K1)}, FP_KEY),
        lambda: UNTYPED.Vault([(1, K1)], FP_KEY),
        lambda: UNTYPED.Vault({1: K1}, FP_KEY.hex()),
        lambda: UNTYPED.Vault({1: K1}, FP_KEY).decrypt("m_1", "tok_a", "not bytes"),
        lambda: UNTYPED.Vault({1: K1}, FP_KEY).tokenize("m_1", "4242424242424242", "12", 30, *NOW),
        lambda: UNTYPED.Vault.key_version_of(None),
    ],
)
def test_wrong_types_raise_type_error(call) -> None:
    with pytest.raises(TypeError):
        call()


def test_bad_tenant_or_token_id_raises_invalid_argument(vault: _core.Vault) -> None:
    assert vault_code(lambda: vault.encrypt("", "tok_a", b"x")) == "invalid_argument"
    assert vault_code(lambda: vault.encrypt("m_1", "", b"x")) == "invalid_argument"
    assert vault_code(lambda: vault.encrypt("m" * 257, "tok_a", b"x")) == "invalid_argument"
    assert vault_code(lambda: vault.fingerprint("", "4242424242424242")) == "invalid_argument"


def test_card_refusals_during_tokenize_raise_card_error(vault: _core.Vault) -> None:
    with pytest.raises(_core.CardError) as err:
        vault.tokenize("m_1", "4242424242424242", 4, 2026, *NOW)
    assert err.value.code == "expired_card"
    with pytest.raises(_core.CardError) as err:
        vault.tokenize("m_1", "4242424242424241", 12, 30, *NOW)
    assert err.value.code == "luhn_failed"


def test_error_classes_are_value_errors_with_a_default_code() -> None:
    assert issubclass(_core.VaultError, ValueError)
    assert _core.VaultError.code == "vault_error"
    assert _core.CardError.code == "card_error"


# --- the format is what the docs say: an independent AES-GCM reads it ---------------------------


def test_independent_aes_gcm_decrypts_with_the_documented_format(vault: _core.Vault) -> None:
    aesgcm = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    t = tokenize(vault, "4242424242424242", tenant="m_1")
    header, nonce, body = t.ciphertext[:5], t.ciphertext[5:17], t.ciphertext[17:]
    tenant, token = b"m_1", t.token_id.encode()
    aad = header + struct.pack(">I", len(tenant)) + tenant + struct.pack(">I", len(token)) + token
    record = aesgcm.AESGCM(K1).decrypt(nonce, body, aad)
    assert record[4:] == b"4242424242424242"
