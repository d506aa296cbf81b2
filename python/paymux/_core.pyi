"""Type stubs for paymux._core, the Rust hot path. Checked against the binary by mypy.stubtest."""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias, final

__version__: str

# --- card data (rust_core/src/card.rs) ---
# Card numbers: ASCII spaces and dashes are stripped; any other non-digit is invalid; a PAN has
# 12-19 digits. Brand comes from the IIN table, longest matching prefix wins; 622126-622925
# (UnionPay/Discover co-branded) is "unionpay". BIN is 8 digits for PANs of 16+ digits, else 6.
# Pure-Python reference with the same semantics: paymux.reference.card.

class CardError(ValueError):
    """A card number or expiry was refused; the message never contains card data."""

    code: str
    """invalid_number | luhn_failed | unsupported_brand | invalid_length_for_brand |
    invalid_expiry | expired_card"""

@final
class CardInfo:
    """Brand, BIN, last 4 and length of a valid card number (frozen). repr shows brand/last4 only."""

    @property
    def brand(self) -> str: ...
    @property
    def bin(self) -> str: ...
    @property
    def last4(self) -> str: ...
    @property
    def length(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def luhn_valid(number: str) -> bool:
    """Luhn check; False for empty input or any non-digit other than spaces and dashes."""

def card_brand(number: str) -> str | None:
    """Brand from the IIN whatever the length or Luhn status; None if unknown or not digits."""

def mask_pan(number: str) -> str:
    """First 6 + '*' + last 4, length kept ('424242******4242'). Raises CardError(invalid_number)."""

def card_bin(number: str) -> str:
    """8-digit BIN for PANs of 16+ digits, else 6. Raises CardError(invalid_number)."""

def inspect_card(number: str) -> CardInfo:
    """Validate (digits and length, then Luhn, then brand, then brand length). Raises CardError."""

def check_expiry(exp_month: int, exp_year: int, now_year: int, now_month: int) -> tuple[int, int]:
    """(month, four-digit year); years 0-99 mean 2000+year. Expired if before (now_year, now_month).

    Raises CardError (invalid_expiry, expired_card); ValueError if now_year/now_month are invalid.
    """

def iin_table() -> list[tuple[int, int, int, str]]:
    """The IIN table rows: (range_start, range_end, prefix_len, brand)."""

def brand_lengths(brand: str) -> list[int]:
    """Valid PAN lengths of a brand. Raises ValueError for an unknown brand."""

# --- vault crypto (rust_core/src/vault.rs) ---
# Ciphertext: version (1) | key_version (u32 BE) | 12-byte nonce | AES-256-GCM ct + tag, with the
# header, tenant and token id (length-prefixed) as associated data. Fingerprint: "fp_" + hex of
# HMAC-SHA256 over tenant + PAN. Token id: "tok_" + base58 of 16 OS-random bytes.

class VaultError(ValueError):
    """A vault operation failed; the message never contains key material or card data."""

    code: str
    """decrypt_failed | unknown_key_version | invalid_key | invalid_ciphertext |
    invalid_argument | random_unavailable"""

@final
class TokenizedCard:
    """Result of Vault.tokenize (frozen). repr never shows the ciphertext or more than last4."""

    @property
    def token_id(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def ciphertext(self) -> bytes: ...
    @property
    def key_version(self) -> int: ...
    @property
    def brand(self) -> str: ...
    @property
    def bin(self) -> str: ...
    @property
    def last4(self) -> str: ...
    @property
    def exp_month(self) -> int: ...
    @property
    def exp_year(self) -> int: ...

@final
class RevealedCard:
    """A decrypted card for the PSP request (frozen). repr shows the masked number."""

    @property
    def number(self) -> str: ...
    @property
    def exp_month(self) -> int: ...
    @property
    def exp_year(self) -> int: ...

@final
class Vault:
    """Keyring {version: 32-byte key} + 32-byte fingerprint key. Immutable; rotate by building a new
    Vault with a higher version added. repr lists versions only, never key bytes.

    Raises VaultError(invalid_key) for a key that is not 32 bytes, an empty keyring, a version
    outside 0..2**32-1 or a fingerprint key equal to a data key; TypeError for non-int versions
    or non-bytes keys. Tenant and token id must be 1-256 bytes (VaultError(invalid_argument)).
    """

    def __new__(cls, keys: dict[int, bytes], fingerprint_key: bytes) -> Vault: ...
    @property
    def active_key_version(self) -> int: ...
    @property
    def key_versions(self) -> list[int]: ...
    def tokenize(
        self,
        tenant: str,
        number: str,
        exp_month: int,
        exp_year: int,
        now_year: int,
        now_month: int,
    ) -> TokenizedCard:
        """Validate number and expiry, fingerprint, mint a token id, encrypt PAN + expiry (no CVV).

        Raises CardError for a refused card, VaultError(invalid_argument) for a bad tenant,
        ValueError for an invalid now_year/now_month.
        """

    def fingerprint(self, tenant: str, number: str) -> str: ...
    def encrypt(self, tenant: str, token_id: str, plaintext: bytes) -> bytes: ...
    def decrypt(self, tenant: str, token_id: str, ciphertext: bytes) -> bytes: ...
    def reveal(self, tenant: str, token_id: str, ciphertext: bytes) -> RevealedCard: ...
    def reencrypt(self, tenant: str, token_id: str, ciphertext: bytes) -> bytes:
        """Authenticate the record, then encrypt it again under the active key (fresh nonce)."""

    @staticmethod
    def key_version_of(ciphertext: bytes) -> int:
        """The key version in the ciphertext header. Raises VaultError(invalid_ciphertext)."""

# --- routing rules (rust_core/src/rules.rs) ---

class RuleError(ValueError):
    """A rule set that does not compile; the message names the rule and the field."""

    rule: str | int | None  # rule name, its index when unnamed, "default", or None (top level)
    field: str  # dotted path inside the rule, e.g. "when.currency"

@final
class RouteDecision:
    """Which rule matched and the connectors to try, in order."""

    @property
    def rule(self) -> str: ...  # "default" when no rule matched
    @property
    def strategy(self) -> str: ...  # "priority" | "split" | "dynamic"
    @property
    def connectors(self) -> list[str]: ...  # split: the chosen one, then the others by weight
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class RuleSet:
    """A routing rule set compiled once from a mapping (what TOML/JSON express); see
    docs/routing-rules.md. Raises RuleError on unknown keys or bad values."""

    def __new__(cls, config: Mapping[str, Any]) -> RuleSet: ...
    def evaluate(
        self,
        *,
        currency: str,
        amount: int,
        brand: str | None = None,
        card_type: str | None = None,
        bin: str | None = None,
        country: str | None = None,
        merchant_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        now: float = 0.0,
        payment_id: str = "",
    ) -> RouteDecision: ...
    @property
    def rule_count(self) -> int: ...
    def rule_names(self) -> list[str]: ...  # in evaluation order
    def connector_names(self) -> list[str]: ...  # first appearance, default last

# --- health windows and circuit breakers (rust_core/src/health.rs) ---

_Outcome: TypeAlias = Literal[
    "approved", "hard", "fix_data", "issuer_not_now", "soft_route", "technical", "timeout"
]
_BreakerState: TypeAlias = Literal["closed", "open", "half_open"]

@final
class HealthStats:
    """Counts over the time window; rates over the time and the count window; latency
    percentiles in ms (upper edge of a log bucket, ~19% wide). Rates/percentiles are None
    without data."""

    @property
    def approved(self) -> int: ...
    @property
    def hard(self) -> int: ...
    @property
    def fix_data(self) -> int: ...
    @property
    def issuer_not_now(self) -> int: ...
    @property
    def soft_route(self) -> int: ...
    @property
    def technical(self) -> int: ...
    @property
    def timeout(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def approval_rate(self) -> float | None: ...  # approved / total
    @property
    def technical_rate(self) -> float | None: ...  # (technical + timeout) / total
    @property
    def latency_p50(self) -> float | None: ...
    @property
    def latency_p95(self) -> float | None: ...
    @property
    def latency_p99(self) -> float | None: ...
    @property
    def count_window_total(self) -> int: ...
    @property
    def count_window_approval_rate(self) -> float | None: ...
    @property
    def count_window_technical_rate(self) -> float | None: ...
    def counts(self) -> dict[str, int]: ...

@final
class HealthBook:
    """Sliding windows per (connector, segment) and a circuit breaker per connector.
    Thread-safe. Time is passed in as `now` (seconds)."""

    def __new__(
        cls,
        *,
        window_seconds: float = 60.0,
        bucket_seconds: float = 1.0,
        count_window: int = 200,
        breaker_consecutive_failures: int = 5,
        breaker_failure_rate: float = 0.5,
        breaker_min_volume: int = 20,
        breaker_open_seconds: float = 5.0,
        breaker_max_open_seconds: float = 60.0,
        breaker_half_open_probes: int = 3,
        evidence_half_life: float = 0.0,
    ) -> HealthBook: ...
    def record(
        self,
        connector: str,
        segment: str | Sequence[str],
        outcome: _Outcome | str,
        latency_ms: float,
        now: float,
    ) -> None: ...
    def stats(self, connector: str, segment: str, now: float) -> HealthStats: ...
    def psp_evidence(self, connector: str, segment: str, now: float) -> tuple[float, float]: ...
    def breaker_state(self, connector: str, now: float) -> _BreakerState: ...
    def allow_request(self, connector: str, now: float) -> bool: ...
    def snapshot(self, now: float) -> list[dict[str, Any]]: ...

# --- selection (rust_core/src/selection.rs) ---

@final
class Estimate:
    """How one candidate was judged (see docs/routing-rules.md for the estimator)."""

    @property
    def connector(self) -> str: ...
    @property
    def approval(self) -> float: ...  # posterior mean (also when explored)
    @property
    def fee(self) -> int: ...
    @property
    def expected_value(self) -> float: ...  # approval * (amount - fee) - latency penalty
    @property
    def samples(self) -> int: ...  # weighted PSP-attributable attempts at `segment`, rounded
    @property
    def segment(self) -> str | None: ...  # None: the prior alone
    @property
    def breaker(self) -> _BreakerState: ...
    @property
    def explored(self) -> bool: ...  # an exploration decision moved it to the front
    @property
    def probe(self) -> bool: ...  # a half-open breaker granted this candidate a probe slot

@final
class Ranking:
    @property
    def order(self) -> list[str]: ...  # admitted candidates, best first (never empty)
    @property
    def estimates(self) -> list[Estimate]: ...  # one per candidate, in input order

@final
class Selector:
    """Orders candidates by expected value estimated from a HealthBook."""

    def __new__(
        cls,
        health: HealthBook,
        *,
        exploration: float = 0.02,
        min_samples: int = 30,
        prior_approval: float = 0.8,
        seed: int | None = None,
        latency_penalty_per_ms: float = 0.0,
    ) -> Selector: ...
    @property
    def health(self) -> HealthBook: ...
    def rank(
        self,
        candidates: Sequence[str],
        segments: Sequence[str],
        amount: int,
        fees: Sequence[int],
        now: float,
    ) -> Ranking: ...

# -- strict JSON (rust_core/src/strict_json.rs) ------------------------------------------------

def json_issue(body: bytes) -> tuple[str, str | None] | None:
    """None when `body` is valid UTF-8 and no JSON object in it repeats a key; else
    `(code, detail)`: `invalid_utf8`, `duplicate_key` (detail: the key's dotted path), `too_deep`
    or `invalid_json`."""
