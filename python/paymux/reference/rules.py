"""Pure-Python reference for paymux._core.RuleSet: same API and semantics, a plain ordered scan.

Used by the property tests (hypothesis) to prove the Rust rule engine agrees, and by the
benchmark to show what the Rust buys. Readability over speed; no indexing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RouteDecision", "RuleError", "RuleSet", "stable_hash"]

_MASK = (1 << 64) - 1
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CARD_TYPES = ("credit", "debit", "prepaid")
_DIGITS = frozenset("0123456789")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


def _upper(s: str) -> str:
    return s.translate(_ASCII_UPPER)


def _is_alpha(s: str) -> bool:
    return s.isascii() and s.isalpha()


def _is_digits(s: str) -> bool:
    return bool(s) and all(c in _DIGITS for c in s)


def stable_hash(s: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes, then the splitmix64 finalizer (same as rules.rs)."""
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & _MASK
    z = h
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class RuleError(ValueError):
    """A rule set that does not compile: `.rule` (name, index, "default" or None) and `.field`."""

    rule: str | int | None = None
    field: str = ""

    def __init__(self, rule: str | int | None, field: str, message: str) -> None:
        if isinstance(rule, str):
            text = f"rule {rule!r}, field {field!r}: {message}"
        elif isinstance(rule, int):
            text = f"rule #{rule}, field {field!r}: {message}"
        else:
            text = f"field {field!r}: {message}"
        super().__init__(text)
        self.rule = rule
        self.field = field


@dataclass(frozen=True)
class RouteDecision:
    rule: str
    strategy: str
    connectors: list[str]


@dataclass
class _Then:
    strategy: str
    connectors: list[str]
    weights: list[int]
    total_weight: int


@dataclass
class _Rule:
    name: str
    priority: int
    index: int
    then: _Then
    currency: frozenset[str] | None = None
    brand: frozenset[str] | None = None
    card_type: frozenset[str] | None = None
    country: frozenset[str] | None = None
    merchant: frozenset[str] | None = None
    amount: tuple[int | None, int | None] | None = None
    bins: list[tuple[str, int, int] | str] | None = None
    metadata: list[tuple[str, str]] | None = None
    time: tuple[int, int, int] | None = None  # (days mask, from, to)
    extra: dict[str, Any] = field(default_factory=dict)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer" if -(2**63) <= v < 2**63 else "an integer out of the 64-bit range"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, Mapping):
        return "a table"
    return f"a value of type {type(v).__name__}"


class _Ctx:
    def __init__(self, rule: str | int | None) -> None:
        self.rule = rule

    def err(self, field: str, message: str) -> RuleError:
        return RuleError(self.rule, field, message)

    def table(self, field: str, v: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(v, Mapping):
            raise self.err(field, f"expected a table, got {_kind(v)}")
        for k in v:
            if not isinstance(k, str):
                raise TypeError(f"routing config keys must be strings, got {type(k).__name__}")
            if k not in allowed:
                path = f"{field}.{k}" if field else k
                raise self.err(path, f"unknown key {k!r} (expected one of: {', '.join(allowed)})")
        return v

    def string_list(self, field: str, v: Any) -> list[str]:
        if not isinstance(v, (list, tuple)):
            raise self.err(field, f"expected a list of strings, got {_kind(v)}")
        if not v:
            raise self.err(field, "must not be empty (omit the condition to match everything)")
        out = []
        for item in v:
            if not isinstance(item, str):
                raise self.err(field, f"expected a list of strings, found {_kind(item)}")
            if not item:
                raise self.err(field, "contains an empty string")
            out.append(item)
        return out

    def int(self, field: str, v: Any) -> int:
        if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
            return v
        raise self.err(field, f"expected an integer, got {_kind(v)}")


def _hhmm(s: str, allow_24: bool) -> int | None:
    h, sep, m = s.partition(":")
    if not sep or len(h) != 2 or len(m) != 2 or not _is_digits(h + m):
        return None
    hh, mm = int(h), int(m)
    if mm >= 60:
        return None
    if hh == 24 and mm == 0 and allow_24:
        return 1440
    if hh < 24:
        return hh * 60 + mm
    return None


def _compile_when(ctx: _Ctx, v: Any, rule: _Rule) -> None:
    keys = (
        "currency",
        "amount",
        "brand",
        "card_type",
        "bin",
        "country",
        "merchant",
        "metadata",
        "time",
    )
    t = ctx.table("when", v, keys)
    if "currency" in t:
        lst = ctx.string_list("when.currency", t["currency"])
        for c in lst:
            if len(c) != 3 or not _is_alpha(c):
                raise ctx.err("when.currency", f"{c!r} is not an ISO 4217 code (3 letters)")
        rule.currency = frozenset(_upper(c) for c in lst)
    if "brand" in t:
        rule.brand = frozenset(_lower(c) for c in ctx.string_list("when.brand", t["brand"]))
    if "card_type" in t:
        out = []
        for c in ctx.string_list("when.card_type", t["card_type"]):
            c = _lower(c)
            if c not in _CARD_TYPES:
                raise ctx.err("when.card_type", f"{c!r} is not a card type")
            out.append(c)
        rule.card_type = frozenset(out)
    if "country" in t:
        lst = ctx.string_list("when.country", t["country"])
        for c in lst:
            if len(c) != 2 or not _is_alpha(c):
                raise ctx.err("when.country", f"{c!r} is not an ISO 3166 alpha-2 code")
        rule.country = frozenset(_upper(c) for c in lst)
    if "merchant" in t:
        rule.merchant = frozenset(ctx.string_list("when.merchant", t["merchant"]))
    if "amount" in t:
        a = ctx.table("when.amount", t["amount"], ("min", "max"))
        lo = ctx.int("when.amount.min", a["min"]) if "min" in a else None
        hi = ctx.int("when.amount.max", a["max"]) if "max" in a else None
        if lo is None and hi is None:
            raise ctx.err("when.amount", "needs min, max or both")
        if lo is not None and hi is not None and lo > hi:
            raise ctx.err("when.amount", f"min {lo} is greater than max {hi}")
        rule.amount = (lo, hi)
    if "bin" in t:
        pats: list[tuple[str, int, int] | str] = []
        for p in ctx.string_list("when.bin", t["bin"]):

            def digits(s: str) -> bool:
                return _is_digits(s) and len(s) <= 12

            if "-" in p:
                lo_s, _, hi_s = p.partition("-")
                if not digits(lo_s) or not digits(hi_s) or len(lo_s) != len(hi_s):
                    raise ctx.err("when.bin", f"{p!r} is not a range of equal-length prefixes")
                if int(lo_s) > int(hi_s):
                    raise ctx.err("when.bin", f"{p!r}: the range's start is above its end")
                pats.append((lo_s, int(lo_s), int(hi_s)))
            elif digits(p):
                pats.append(p)
            else:
                raise ctx.err("when.bin", f"{p!r} is not a digit prefix of 1 to 12 digits")
        rule.bins = pats
    if "metadata" in t:
        m = t["metadata"]
        if not isinstance(m, Mapping):
            raise ctx.err("when.metadata", f"expected a table of key = value, got {_kind(m)}")
        if not m:
            raise ctx.err("when.metadata", "must not be empty")
        pairs = []
        for k, val in m.items():
            if not isinstance(k, str):
                raise TypeError(f"routing config keys must be strings, got {type(k).__name__}")
            if not isinstance(val, str):
                raise ctx.err(f"when.metadata.{k}", f"expected a string, got {_kind(val)}")
            pairs.append((k, val))
        rule.metadata = pairs
    if "time" in t:
        tt = ctx.table("when.time", t["time"], ("days", "from", "to"))
        days = 0x7F
        if "days" in tt:
            days = 0
            for name in ctx.string_list("when.time.days", tt["days"]):
                if _lower(name) not in _DAYS:
                    raise ctx.err("when.time.days", f"{name!r} is not a day")
                days |= 1 << _DAYS.index(_lower(name))

        def hhmm(key: str, allow_24: bool) -> int | None:
            if key not in tt:
                return None
            raw = tt[key]
            if not isinstance(raw, str):
                raise ctx.err(f"when.time.{key}", f'expected "HH:MM", got {_kind(raw)}')
            minutes = _hhmm(raw, allow_24)
            if minutes is None:
                raise ctx.err(f"when.time.{key}", f'{raw!r} is not a time of day "HH:MM"')
            return minutes

        frm = hhmm("from", False)
        to = hhmm("to", True)
        if frm is None and to is None:
            frm, to = 0, 1440
        elif frm is None or to is None:
            raise ctx.err("when.time", "from and to go together")
        if frm == to:
            raise ctx.err("when.time", "from equals to: the window is empty")
        rule.time = (days, frm, to)


def _compile_then(ctx: _Ctx, field: str, v: Any, names: list[str]) -> _Then:
    t = ctx.table(field, v, ("strategy", "connectors", "weights"))
    strategy = t.get("strategy", "priority")
    if not isinstance(strategy, str):
        raise ctx.err(f"{field}.strategy", f"expected a string, got {_kind(strategy)}")
    if strategy not in ("priority", "split", "dynamic"):
        raise ctx.err(f"{field}.strategy", f"{strategy!r} is not a strategy")
    listed = ctx.string_list(f"{field}.connectors", t["connectors"]) if "connectors" in t else None
    weights_cfg: list[tuple[str, int]] | None = None
    if "weights" in t:
        if strategy != "split":
            raise ctx.err(f"{field}.weights", 'weights only apply to strategy = "split"')
        w = t["weights"]
        if not isinstance(w, Mapping):
            raise ctx.err(f"{field}.weights", f"expected a table, got {_kind(w)}")
        weights_cfg = []
        for k, val in w.items():
            if not isinstance(k, str):
                raise TypeError(f"routing config keys must be strings, got {type(k).__name__}")
            ok = isinstance(val, int) and not isinstance(val, bool) and 0 <= val <= 1_000_000_000
            if not ok:
                raise ctx.err(f"{field}.weights.{k}", "expected an integer weight in [0, 1e9]")
            weights_cfg.append((k, val))
    if strategy == "split":
        if weights_cfg is None:
            raise ctx.err(f"{field}.weights", 'strategy "split" needs weights')
        if not weights_cfg:
            raise ctx.err(f"{field}.weights", "must not be empty")
        if listed is None:
            connectors = [k for k, _ in weights_cfg]
            weights = [x for _, x in weights_cfg]
        else:
            wmap: dict[str, int] = {}
            for k, x in weights_cfg:
                wmap.setdefault(k, x)
            weights = []
            for c in listed:
                if c not in wmap:
                    raise ctx.err(f"{field}.weights", f"no weight for connector {c!r}")
                weights.append(wmap[c])
            for k, _ in weights_cfg:
                if k not in listed:
                    raise ctx.err(f"{field}.weights", f"{k!r} has a weight but is not listed")
            connectors = listed
    else:
        if listed is None:
            raise ctx.err(f"{field}.connectors", "is required")
        connectors = listed
        weights = [0] * len(listed)
    for i, c in enumerate(connectors):
        if c in connectors[:i]:
            raise ctx.err(f"{field}.connectors", f"{c!r} is listed twice")
    total = sum(weights)
    if strategy == "split" and total == 0:
        raise ctx.err(f"{field}.weights", "the weights add up to 0")
    for c in connectors:
        if c not in names:
            names.append(c)
    return _Then(strategy, list(connectors), weights, total)


class RuleSet:
    """A routing rule set compiled from a mapping; `evaluate` scans rules in priority order."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise TypeError(f"RuleSet() takes a mapping, got {type(config).__name__}")
        top = _Ctx(None)
        t = top.table("", config, ("utc_offset_minutes", "rules", "default"))
        offset = 0
        if "utc_offset_minutes" in t:
            offset = top.int("utc_offset_minutes", t["utc_offset_minutes"])
            if not -1440 <= offset <= 1440:
                raise top.err("utc_offset_minutes", f"{offset} is outside -1440..1440")
        raw_rules = t.get("rules", [])
        if not isinstance(raw_rules, (list, tuple)):
            raise top.err("rules", f"expected a list of tables, got {_kind(raw_rules)}")
        names: list[str] = []
        rules: list[_Rule] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_rules):
            ctx = _Ctx(index)
            fields = ctx.table("", raw, ("name", "priority", "when", "then"))
            if "name" not in fields:
                raise ctx.err("name", "is required")
            name = fields["name"]
            if not isinstance(name, str):
                raise ctx.err("name", f"expected a string, got {_kind(name)}")
            if not name:
                raise ctx.err("name", "must not be empty")
            if name == "default":
                raise ctx.err("name", '"default" is reserved for the [default] table')
            if name in seen:
                raise ctx.err("name", f"{name!r} is used by an earlier rule")
            seen.add(name)
            ctx = _Ctx(name)
            priority = ctx.int("priority", fields["priority"]) if "priority" in fields else 0
            rule = _Rule(name, priority, index, _Then("priority", [], [], 0))
            _compile_when(ctx, fields.get("when", {}), rule)
            if "then" not in fields:
                raise ctx.err("then", "is required")
            rule.then = _compile_then(ctx, "then", fields["then"], names)
            rules.append(rule)
        if "default" not in t:
            raise top.err("default", "is required")
        self._default = _compile_then(_Ctx("default"), "default", t["default"], names)
        rules.sort(key=lambda r: (r.priority, r.index))
        self._rules = rules
        self._names = names
        self._offset_seconds = offset * 60.0

    @property
    def rule_count(self) -> int:
        return len(self._rules)

    def rule_names(self) -> list[str]:
        return [r.name for r in self._rules]

    def connector_names(self) -> list[str]:
        return list(self._names)

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
    ) -> RouteDecision:
        if amount < 0:
            raise ValueError(f"amount must be >= 0 minor units, got {amount}")
        if not (math.isfinite(now) and abs(now) <= 1e12):
            raise ValueError(f"now must be finite unix seconds, got {now}")
        cur = _upper(currency)
        br = _lower(brand) if brand is not None else None
        ct = _lower(card_type) if card_type is not None else None
        co = _upper(country) if country is not None else None
        for r in self._rules:
            if r.currency is not None and cur not in r.currency:
                continue
            if r.brand is not None and br not in r.brand:
                continue
            if r.card_type is not None and ct not in r.card_type:
                continue
            if r.country is not None and co not in r.country:
                continue
            if r.merchant is not None and merchant_id not in r.merchant:
                continue
            if r.amount is not None:
                lo, hi = r.amount
                if (lo is not None and amount < lo) or (hi is not None and amount > hi):
                    continue
            if r.bins is not None and (bin is None or not any(_bin(p, bin) for p in r.bins)):
                continue
            if r.time is not None and not self._time_matches(r.time, now):
                continue
            if r.metadata is not None and (
                metadata is None or not all(metadata.get(k) == v for k, v in r.metadata)
            ):
                continue
            return self._decide(r.name, r.then, payment_id)
        return self._decide("default", self._default, payment_id)

    def _time_matches(self, t: tuple[int, int, int], now: float) -> bool:
        days, frm, to = t
        local = now + self._offset_seconds
        day = math.floor(local / 86400.0)
        minute = max(0, min(1439, math.floor((local - day * 86400.0) / 60.0)))
        dow = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0

        def day_in(d: int) -> bool:
            return bool(days & (1 << d))

        if frm < to:
            return day_in(dow) and frm <= minute < to
        return (minute >= frm and day_in(dow)) or (minute < to and day_in((dow + 6) % 7))

    def _decide(self, name: str, then: _Then, payment_id: str) -> RouteDecision:
        if then.strategy != "split":
            return RouteDecision(name, then.strategy, list(then.connectors))
        pick = stable_hash(payment_id) % then.total_weight
        cumulative = 0
        chosen = 0
        for i, w in enumerate(then.weights):
            cumulative += w
            if pick < cumulative:
                chosen = i
                break
        rest = sorted(
            (i for i in range(len(then.connectors)) if i != chosen),
            key=lambda i: -then.weights[i],
        )
        order = [then.connectors[chosen]] + [then.connectors[i] for i in rest]
        return RouteDecision(name, "split", order)


def _bin(pattern: tuple[str, int, int] | str, bin: str) -> bool:
    if isinstance(pattern, str):
        return bin.startswith(pattern)
    lo_s, lo, hi = pattern
    head = bin[: len(lo_s)]
    if len(head) != len(lo_s) or not _is_digits(head):
        return False
    return lo <= int(head) <= hi
