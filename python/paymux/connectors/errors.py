"""Decline/error tables: a PSP's raw codes to paymux's normalized code and decline class.

The tables are data (``tables/<connector>.toml``), versioned, loaded once per process. A table has:

- ``[declines]``: raw decline codes (an issuer or acquirer said no).
- ``[errors]``: raw API error codes (the request failed without a card decision).
- ``[prefixes]``: optional fallbacks by the code's leading characters (Checkout.com's 20xxx soft,
  30xxx hard, ...), tried longest first when a code is not listed.
- ``[advice]``: network merchant advice codes that tighten the class (Mastercard 03/21: hard).
- ``[fallback]``: what an unlisted code becomes: by default a decline is ``unknown_decline`` /
  ``soft_route`` and an error is ``unknown_error`` / ``technical``. The raw code is always kept
  on the result beside the normalized one.

Transport outcomes (timeouts, resets, 5xx, unparseable bodies) are paymux's own codes, not a
PSP's, so they live here in code as ``TRANSPORT_CODES``, all ``technical``.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from paymux.domain.outcomes import DeclineClass

#: paymux's own codes for answers that never came or could not be read. All technical.
TRANSPORT_CODES = frozenset(
    {
        "timeout",
        "connection_error",
        "psp_server_error",
        "invalid_response",
        "authentication_failed",
        "rate_limited",
        "idempotency_conflict",
    }
)

#: How strict a class is; advice codes may only make a result stricter, never looser.
_STRICTNESS = {
    DeclineClass.TECHNICAL: 0,
    DeclineClass.SOFT_ROUTE: 1,
    DeclineClass.ISSUER_NOT_NOW: 2,
    DeclineClass.FIX_DATA: 3,
    DeclineClass.HARD: 4,
}


class TableError(ValueError):
    """A decline table that does not parse or names an unknown class."""


@dataclass(frozen=True, slots=True)
class Mapping:
    code: str
    decline_class: DeclineClass


@dataclass(frozen=True)
class DeclineTable:
    connector: str
    version: str
    declines: dict[str, Mapping]
    errors: dict[str, Mapping]
    prefixes: dict[str, Mapping] = field(default_factory=dict)
    advice: dict[str, DeclineClass] = field(default_factory=dict)
    decline_fallback: Mapping = Mapping("unknown_decline", DeclineClass.SOFT_ROUTE)
    error_fallback: Mapping = Mapping("unknown_error", DeclineClass.TECHNICAL)

    # -- lookups ------------------------------------------------------------------------------

    def decline(self, raw_code: str | None) -> tuple[str, DeclineClass]:
        """Normalized code and class for a decline; unlisted codes get the decline fallback."""
        m = self._find(raw_code, self.declines) or self._find(raw_code, self.errors)
        m = m or self._by_prefix(raw_code) or self.decline_fallback
        return m.code, m.decline_class

    def error(self, raw_code: str | None) -> tuple[str, DeclineClass]:
        """Normalized code and class for an API error; unlisted codes get the error fallback."""
        m = self._find(raw_code, self.errors) or self._find(raw_code, self.declines)
        m = m or self._by_prefix(raw_code) or self.error_fallback
        return m.code, m.decline_class

    def apply_advice(self, decline_class: DeclineClass, advice_code: str | None) -> DeclineClass:
        """The class after a network advice code: never looser than the raw code's own class."""
        norm = normalize_advice(advice_code)
        if norm is None:
            return decline_class
        advised = self.advice.get(norm)
        if advised is None or _STRICTNESS[advised] <= _STRICTNESS[decline_class]:
            return decline_class
        return advised

    @staticmethod
    def _find(raw_code: str | None, table: dict[str, Mapping]) -> Mapping | None:
        if raw_code is None:
            return None
        return table.get(raw_code) or table.get(raw_code.strip().lower())

    def _by_prefix(self, raw_code: str | None) -> Mapping | None:
        if not raw_code or not self.prefixes:
            return None
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if raw_code.startswith(prefix):
                return self.prefixes[prefix]
        return None

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<table>") -> DeclineTable:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TableError(f"{source}: {exc}") from None
        try:
            connector = str(doc["connector"])
            version = str(doc["version"])
        except KeyError as exc:
            raise TableError(f"{source}: missing top-level key {exc}") from None

        def section(name: str) -> dict[str, Mapping]:
            out: dict[str, Mapping] = {}
            for raw, entry in doc.get(name, {}).items():
                out[str(raw)] = _mapping(entry, f"{source} [{name}] {raw!r}")
            return out

        advice: dict[str, DeclineClass] = {}
        for raw, value in doc.get("advice", {}).items():
            advice[normalize_advice(str(raw)) or str(raw)] = _decline_class(
                value, f"{source} [advice] {raw!r}"
            )
        fallback = doc.get("fallback", {})
        return cls(
            connector=connector,
            version=version,
            declines=section("declines"),
            errors=section("errors"),
            prefixes=section("prefixes"),
            advice=advice,
            decline_fallback=_mapping(fallback["decline"], f"{source} [fallback] decline")
            if "decline" in fallback
            else Mapping("unknown_decline", DeclineClass.SOFT_ROUTE),
            error_fallback=_mapping(fallback["error"], f"{source} [fallback] error")
            if "error" in fallback
            else Mapping("unknown_error", DeclineClass.TECHNICAL),
        )

    @classmethod
    def from_path(cls, path: str | Path) -> DeclineTable:
        path = Path(path)
        return cls.from_toml(path.read_text(encoding="utf-8"), source=str(path))


def _decline_class(value: object, where: str) -> DeclineClass:
    try:
        return DeclineClass(str(value))
    except ValueError:
        raise TableError(f"{where}: unknown decline class {value!r}") from None


def _mapping(entry: object, where: str) -> Mapping:
    if not isinstance(entry, dict) or "code" not in entry or "class" not in entry:
        raise TableError(f"{where}: expected {{ code = ..., class = ... }}, got {entry!r}")
    return Mapping(str(entry["code"]), _decline_class(entry["class"], where))


_ADVICE_DIGITS = re.compile(r"^\s*(\d{1,2})\b")


def normalize_advice(advice_code: str | None) -> str | None:
    """``"03: Do not try again"`` / ``"3"`` / ``"03"`` → ``"03"``; words are lower-cased."""
    if advice_code is None:
        return None
    advice_code = str(advice_code).strip()
    if not advice_code:
        return None
    m = _ADVICE_DIGITS.match(advice_code)
    if m:
        return m.group(1).zfill(2)
    return advice_code.lower()


@functools.cache
def load_table(name: str) -> DeclineTable:
    """The built-in table ``tables/<name>.toml``, parsed once per process."""
    resource = importlib.resources.files("paymux.connectors").joinpath("tables", f"{name}.toml")
    return DeclineTable.from_toml(
        resource.read_text(encoding="utf-8"), source=f"tables/{name}.toml"
    )


@functools.cache
def load_table_file(path: str) -> DeclineTable:
    """A table from a file (a plugin's own), parsed once per process."""
    return DeclineTable.from_path(path)
