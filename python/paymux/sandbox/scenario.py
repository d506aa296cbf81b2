"""The scenario: which PSPs the sandbox runs and how each behaves, decoded from TOML into Structs.

See docs/sandbox.md for the format. `compile_scenario` validates a scenario once and resolves every
segment against its defaults so that the per-request path only picks the first matching segment.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import msgspec

from paymux.sandbox import declines

Wire = Literal["stripe", "adyen", "checkout"]


class Latency(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How long the PSP takes to answer. `fixed` uses `ms`; `lognormal` median/p99; `uniform`."""

    kind: Literal["fixed", "lognormal", "uniform"] = "fixed"
    ms: float = 0.0
    median_ms: float = 0.0
    p99_ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0


class Behaviour(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One PSP's behaviour for a segment; a field left out inherits from the PSP's default."""

    approval_rate: float | None = None  # share the acquirer approves once the issuer said yes
    declines: dict[str, float] | None = None  # acquirer-side decline mix (weights)
    latency: Latency | None = None
    error_rate: float | None = None  # HTTP 5xx, nothing authorized
    timeout_rate: float | None = None  # authorized, then answered after `timeout_ms` (or never)
    reset_rate: float | None = None  # authorized, then the connection is reset
    challenge_rate: float | None = None  # 3DS challenge before authorization
    timeout_ms: float | None = None
    timeout_mode: Literal["late", "drop"] | None = None  # answer late, or close without answering


class Match(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Which payments a segment applies to; an absent criterion matches everything."""

    brand: list[str] | None = None
    country: list[str] | None = None  # issuer country, ISO alpha-2
    currency: list[str] | None = None
    amount_min: int | None = None  # minor units, inclusive
    amount_max: int | None = None  # minor units, exclusive


class Segment(Behaviour, forbid_unknown_fields=True, omit_defaults=True):
    name: str = ""
    match: Match = msgspec.field(default_factory=Match)


class Outage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A window (seconds since the sandbox started or was reset) in which requests fail."""

    start_s: float = 0.0
    end_s: float | None = None  # None: until removed
    error_rate: float = 1.0  # 1.0 is a full outage, less is a partial one
    kind: Literal["error", "timeout", "reset"] = "error"  # nothing is authorized in an outage


Operation = Literal["capture", "void", "refund"]
GarbageKind = Literal["mixed", "html", "truncated", "empty"]


class Modifications(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Faults on captures, voids and refunds (`[psps.<name>.modifications]`), apart from the
    authorization faults of `default` / `segments`, which never touch a modification.

    Each rate is a share of the modification requests that reach the PSP (outages come first and
    apply to every request); one draw picks at most one fault, so the rates must sum to <= 1.
    """

    error_rate: float = 0.0  # 5xx, nothing applied (a retry with the same key is processed)
    error_after_apply_rate: float = 0.0  # applied, then a 5xx instead of the answer
    timeout_rate: float = 0.0  # applied, the answer held for `timeout_ms` (late or dropped)
    reset_rate: float = 0.0  # applied, then the connection is reset
    garbage_rate: float = 0.0  # applied, then an unreadable body instead of the answer
    garbage: GarbageKind = (
        "mixed"  # html | truncated (JSON cut in half) | empty | mixed (html or truncated)
    )
    timeout_ms: float | None = None  # None: the PSP default's timeout_ms
    timeout_mode: Literal["late", "drop"] | None = None  # None: the PSP default's timeout_mode
    operations: list[Operation] | None = None  # which operations the faults hit; None: all three


class Psp(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    wire: Wire
    mount: str = ""  # default: "/" + the PSP's name
    api_key: str = ""  # default: per wire format, see DEFAULT_CREDENTIALS
    merchant_account: str = ""  # Adyen only
    default: Behaviour = msgspec.field(default_factory=Behaviour)
    segments: list[Segment] = msgspec.field(default_factory=list)
    outages: list[Outage] = msgspec.field(default_factory=list)
    modifications: Modifications | None = None  # None: captures, voids, refunds never fault


class IssuerBehaviour(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    decline_rate: float | None = None
    declines: dict[str, float] | None = None  # normalized names only: every PSP must say them


class IssuerSegment(IssuerBehaviour, forbid_unknown_fields=True, omit_defaults=True):
    name: str = ""
    match: Match = msgspec.field(default_factory=Match)


class Issuer(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The card issuers, shared by every PSP: their declines are the same whoever asks."""

    moment_s: float = 300.0  # the issuer's answer for a card and amount holds this long
    default_country: str = "US"
    bin_countries: dict[str, str] = msgspec.field(default_factory=dict)  # BIN prefix -> country
    test_cards: bool = True  # published test cards decline as documented
    default: IssuerBehaviour = msgspec.field(default_factory=IssuerBehaviour)
    segments: list[IssuerSegment] = msgspec.field(default_factory=list)


class Scenario(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    seed: int | None = None  # the CLI's --seed wins
    issuer: Issuer = msgspec.field(default_factory=Issuer)
    psps: dict[str, Psp] = msgspec.field(default_factory=dict)  # empty: the three defaults


DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "stripe": {"api_key": "sk_test_paymux_sandbox"},
    "adyen": {"api_key": "paymux_sandbox_adyen_key", "merchant_account": "PaymuxSandboxECOM"},
    # matches checkout-sdk's key pattern ^sk_(sbox_)?[a-z2-7]{26}[a-z2-7*#$=]$
    "checkout": {"api_key": "sk_sbox_paymuxsandboxsecretkeyabcde"},
}

BUILTIN_BEHAVIOUR = Behaviour(
    approval_rate=1.0,
    declines={"do_not_honor": 0.6, "generic_decline": 0.4},
    latency=Latency(kind="fixed", ms=0.0),
    error_rate=0.0,
    timeout_rate=0.0,
    reset_rate=0.0,
    challenge_rate=0.0,
    timeout_ms=30_000.0,
    timeout_mode="late",
)


def default_scenario() -> Scenario:
    wires: tuple[Wire, ...] = ("stripe", "adyen", "checkout")
    return Scenario(psps={w: Psp(wire=w) for w in wires})


def load_scenario(path: str | Path) -> Scenario:
    """Read a TOML scenario file; msgspec.ValidationError or ValueError says what is wrong."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    scenario = scenario_from_dict(raw)
    compile_scenario(scenario)  # validate now, not on the first request
    return scenario


def scenario_from_dict(raw: dict[str, Any]) -> Scenario:
    scenario = msgspec.convert(raw, Scenario)
    if not scenario.psps:
        scenario.psps = default_scenario().psps
    return scenario


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    return msgspec.to_builtins(scenario)


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `patch` into a copy of `base` (tables merge, lists and values replace)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


# --- compiled form -------------------------------------------------------------------------------

_Z99 = NormalDist().inv_cdf(0.99)


class ResolvedBehaviour:
    """A Behaviour with every field set, mixes normalized to cumulative tables."""

    __slots__ = (
        "approval_rate",
        "challenge_rate",
        "declines",
        "error_rate",
        "latency_fn",
        "reset_rate",
        "timeout_mode",
        "timeout_rate",
        "timeout_s",
    )  # fmt: skip

    def __init__(self, b: Behaviour, wire: str) -> None:
        for field in (
            "approval_rate",
            "error_rate",
            "timeout_rate",
            "reset_rate",
            "challenge_rate",
        ):
            value = getattr(b, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field} must be within [0, 1], got {value}")
        self.approval_rate: float = b.approval_rate  # type: ignore[assignment]
        self.error_rate: float = b.error_rate  # type: ignore[assignment]
        self.timeout_rate: float = b.timeout_rate  # type: ignore[assignment]
        self.reset_rate: float = b.reset_rate  # type: ignore[assignment]
        self.challenge_rate: float = b.challenge_rate  # type: ignore[assignment]
        self.timeout_s: float = b.timeout_ms / 1000.0  # type: ignore[operator]
        self.timeout_mode: str = b.timeout_mode  # type: ignore[assignment]
        self.declines = cumulative({k: v for k, v in b.declines.items()}, wire)  # type: ignore[union-attr]
        self.latency_fn = latency_sampler(b.latency)  # type: ignore[arg-type]


def cumulative(mix: dict[str, float], wire: str) -> list[tuple[float, declines.Decline]]:
    total = sum(mix.values())
    if not mix or total <= 0 or any(w < 0 for w in mix.values()):
        raise ValueError(f"a decline mix needs positive weights, got {mix!r}")
    table, acc = [], 0.0
    for name, weight in mix.items():
        acc += weight / total
        table.append((acc, declines.resolve(name, wire)))
    return table


def pick(table: list[tuple[float, declines.Decline]], u: float) -> declines.Decline:
    for bound, decline in table:
        if u < bound:
            return decline
    return table[-1][1]


def latency_sampler(lat: Latency):
    """A function of one uniform draw in (0, 1) to seconds."""
    if lat.kind == "fixed":
        fixed = max(lat.ms, 0.0) / 1000.0
        return lambda u: fixed
    if lat.kind == "uniform":
        if lat.max_ms < lat.min_ms:
            raise ValueError("latency max_ms must be >= min_ms")
        lo, span = lat.min_ms / 1000.0, (lat.max_ms - lat.min_ms) / 1000.0
        return lambda u: lo + span * u
    if lat.median_ms <= 0 or lat.p99_ms < lat.median_ms:
        raise ValueError("lognormal latency needs 0 < median_ms <= p99_ms")
    mu = math.log(lat.median_ms / 1000.0)
    sigma = math.log(lat.p99_ms / lat.median_ms) / _Z99
    inv = NormalDist().inv_cdf
    return lambda u: math.exp(mu + sigma * inv(min(max(u, 1e-12), 1 - 1e-12)))


def _inherit(base: msgspec.Struct, over: msgspec.Struct, cls: type[msgspec.Struct]) -> Any:
    fields = {f: getattr(base, f) for f in cls.__struct_fields__}
    for f in cls.__struct_fields__:
        value = getattr(over, f, None)
        if value is not None:
            fields[f] = value
    return cls(**fields)


def matches(m: Match, brand: str, country: str, currency: str, amount: int) -> bool:
    return (
        (m.brand is None or brand in m.brand)
        and (m.country is None or country in m.country)
        and (m.currency is None or currency in m.currency)
        and (m.amount_min is None or amount >= m.amount_min)
        and (m.amount_max is None or amount < m.amount_max)
    )


#: The fault kinds of a modification, in the order their rates are stacked on one draw.
MODIFICATION_FAULTS = ("error", "error_after", "timeout", "reset", "garbage")


class ResolvedModifications:
    """Modification faults with every field set: cumulative bounds for one uniform draw."""

    __slots__ = ("bounds", "garbage", "operations", "timeout_mode", "timeout_s")

    def __init__(self, m: Modifications, default: ResolvedBehaviour, where: str) -> None:
        rates = (m.error_rate, m.error_after_apply_rate, m.timeout_rate, m.reset_rate,
                 m.garbage_rate)  # fmt: skip
        names = ("error_rate", "error_after_apply_rate", "timeout_rate", "reset_rate",
                 "garbage_rate")  # fmt: skip
        for name, rate in zip(names, rates, strict=True):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{where}: {name} must be within [0, 1], got {rate}")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"{where}: the fault rates sum to {sum(rates)}, more than 1")
        if m.timeout_ms is not None and m.timeout_ms < 0:
            raise ValueError(f"{where}: timeout_ms must be >= 0, got {m.timeout_ms}")
        acc, bounds = 0.0, []
        for kind, rate in zip(MODIFICATION_FAULTS, rates, strict=True):
            acc += rate
            bounds.append((acc, kind))
        self.bounds: list[tuple[float, str]] = bounds if acc > 0 else []
        self.garbage: str = m.garbage
        self.timeout_s: float = (
            m.timeout_ms / 1000.0 if m.timeout_ms is not None else default.timeout_s
        )
        self.timeout_mode: str = m.timeout_mode or default.timeout_mode
        self.operations: frozenset[str] = frozenset(
            m.operations if m.operations is not None else ("capture", "void", "refund")
        )

    def fault(self, operation: str | None, u: float) -> str | None:
        """The fault for one modification request (`u` a uniform draw), or None."""
        if not self.bounds or (operation is not None and operation not in self.operations):
            return None
        for bound, kind in self.bounds:
            if u < bound:
                return kind
        return None


class CompiledPsp:
    __slots__ = (
        "api_key",
        "default",
        "merchant_account",
        "modifications",
        "mount",
        "name",
        "outages",
        "segments",
        "wire",
    )  # fmt: skip

    def __init__(self, name: str, psp: Psp) -> None:
        self.name = name
        self.wire = psp.wire
        self.mount = (psp.mount or "/" + name).rstrip("/")
        if not self.mount.startswith("/") or self.mount.startswith("/_sandbox"):
            raise ValueError(f"psp {name!r}: mount must start with '/' and not be /_sandbox")
        creds = DEFAULT_CREDENTIALS[psp.wire]
        self.api_key = psp.api_key or creds["api_key"]
        self.merchant_account = psp.merchant_account or creds.get("merchant_account", "")
        base = _inherit(BUILTIN_BEHAVIOUR, psp.default, Behaviour)
        self.default = ResolvedBehaviour(base, psp.wire)
        self.segments = [
            (s.match, ResolvedBehaviour(_inherit(base, s, Behaviour), psp.wire))
            for s in psp.segments
        ]
        for o in psp.outages:
            if not 0.0 <= o.error_rate <= 1.0:
                raise ValueError(f"psp {name!r}: outage error_rate must be within [0, 1]")
        self.outages = list(psp.outages)
        self.modifications = ResolvedModifications(
            psp.modifications or Modifications(), self.default, f"psp {name!r} modifications"
        )

    def behaviour(self, brand: str, country: str, currency: str, amount: int) -> ResolvedBehaviour:
        for match, behaviour in self.segments:
            if matches(match, brand, country, currency, amount):
                return behaviour
        return self.default

    def outage_at(self, t: float) -> Outage | None:
        for o in self.outages:
            if o.start_s <= t and (o.end_s is None or t < o.end_s):
                return o
        return None


class CompiledIssuer:
    __slots__ = (
        "bin_countries",
        "default",
        "default_country",
        "moment_s",
        "segments",
        "test_cards",
    )

    def __init__(self, issuer: Issuer) -> None:
        if issuer.moment_s <= 0:
            raise ValueError("issuer.moment_s must be > 0")
        self.moment_s = issuer.moment_s
        self.default_country = issuer.default_country
        self.bin_countries = dict(issuer.bin_countries)
        self.test_cards = issuer.test_cards
        base = IssuerBehaviour(decline_rate=0.0, declines={"insufficient_funds": 1.0})
        base = _inherit(base, issuer.default, IssuerBehaviour)
        self.default = self._resolve(base)
        self.segments = [
            (s.match, self._resolve(_inherit(base, s, IssuerBehaviour))) for s in issuer.segments
        ]

    @staticmethod
    def _resolve(b: IssuerBehaviour) -> tuple[float, list[tuple[float, declines.Decline]]]:
        if not 0.0 <= b.decline_rate <= 1.0:  # type: ignore[operator]
            raise ValueError("issuer decline_rate must be within [0, 1]")
        for name in b.declines or {}:
            if name not in declines.NORMALIZED:
                raise ValueError(f"issuer declines must be normalized names, got {name!r}")
        return b.decline_rate, cumulative(b.declines, "stripe")  # type: ignore[return-value,arg-type]

    def behaviour(self, brand: str, country: str, currency: str, amount: int):
        for match, behaviour in self.segments:
            if matches(match, brand, country, currency, amount):
                return behaviour
        return self.default


class CompiledScenario:
    __slots__ = ("issuer", "psps", "scenario")

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.issuer = CompiledIssuer(scenario.issuer)
        self.psps = {name: CompiledPsp(name, psp) for name, psp in scenario.psps.items()}
        mounts = [p.mount for p in self.psps.values()]
        if len(set(mounts)) != len(mounts):
            raise ValueError(f"two PSPs share a mount path: {sorted(mounts)}")


def compile_scenario(scenario: Scenario) -> CompiledScenario:
    return CompiledScenario(scenario)
