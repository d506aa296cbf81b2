"""Query-string parameters of the analytics endpoints, checked into an AnalyticsQuery or a 400."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping

from paymux.analytics.queries import DIMENSIONS, AnalyticsQuery
from paymux.api.errors import ApiError, invalid

DEFAULT_RANGE_S = 24 * 3600.0
MAX_BUCKETS = 10_000
MAX_VALUES = 50
_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
KNOWN = frozenset({"from", "to", "group_by", "resolution", "top", "limit", *DIMENSIONS})


def parse_duration(text: str) -> float | None:
    """`90s`, `15m`, `1h`, `7d`, `2w` -> seconds; None if it is not a duration."""
    match = _RELATIVE.match(text.strip().lower())
    if not match:
        return None
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_time(text: str, param: str, now: float) -> float:
    """A unix timestamp, an ISO 8601 instant (UTC if no offset), or a duration before now."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        ago = parse_duration(text)
        if ago is not None:
            return now - ago
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise invalid(
                "parameter_invalid",
                f"{param} must be a unix timestamp, an ISO 8601 time or a duration such as 1h",
                param,
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    if not math.isfinite(value) or value < 0:
        raise invalid("parameter_invalid", f"{param} must be a unix timestamp", param)
    return value


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid("parameter_invalid", f"{name} must be an integer", name) from None
    if not low <= value <= high:
        raise invalid("parameter_invalid", f"{name} must be between {low} and {high}", name)
    return value


def _list(raw: str, name: str) -> list[str]:
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if len(values) > MAX_VALUES:
        raise invalid("parameter_invalid", f"{name} takes at most {MAX_VALUES} values", name)
    for value in values:
        if not _VALUE.match(value):
            raise invalid("parameter_invalid", f"{name} has an invalid value", name)
    return values


def parse_query(
    query: Mapping[str, str],
    *,
    report: str,
    now: float | None = None,
    default_group_by: tuple[str, ...] = ("connector",),
    default_range_s: float = DEFAULT_RANGE_S,
) -> AnalyticsQuery:
    now = time.time() if now is None else now
    for name in query:
        if name not in KNOWN:
            raise invalid("parameter_unknown", f"Received unknown parameter: {name}", name)
    to_ts = parse_time(query["to"], "to", now) if "to" in query else now
    from_ts = parse_time(query["from"], "from", now) if "from" in query else to_ts - default_range_s
    if from_ts >= to_ts:
        raise invalid("parameter_invalid", "from must be earlier than to", "from")
    if "group_by" in query:
        group_by = _list(query["group_by"], "group_by")
        unknown = [g for g in group_by if g not in DIMENSIONS]
        if unknown:
            raise invalid(
                "parameter_invalid",
                f"group_by accepts {', '.join(DIMENSIONS)}; got {unknown[0]!r}",
                "group_by",
            )
        if len(set(group_by)) != len(group_by) or len(group_by) > 3:
            raise invalid(
                "parameter_invalid", "group_by takes up to 3 distinct dimensions", "group_by"
            )
    else:
        group_by = list(default_group_by)
    filters: dict[str, tuple[str, ...]] = {}
    for name in DIMENSIONS:
        if name in query:
            values = _list(query[name], name)
            if name in ("country", "currency"):
                values = [v.upper() for v in values]
            elif name == "brand":
                values = [v.lower() for v in values]
            if values:
                filters[name] = tuple(values)
    resolution = _int(query, "resolution", 60, 1, 86400)
    if report == "timeseries" and (to_ts - from_ts) / resolution > MAX_BUCKETS:
        raise invalid(
            "parameter_invalid",
            f"resolution is too fine for this range (more than {MAX_BUCKETS} buckets)",
            "resolution",
        )
    return AnalyticsQuery(
        from_ts=from_ts,
        to_ts=to_ts,
        group_by=tuple(group_by),
        filters=filters,
        resolution=resolution,
        top=_int(query, "top", 10, 1, 100),
        limit=_int(query, "limit", 100, 1, 1000),
    )


__all__ = ["ApiError", "parse_duration", "parse_query", "parse_time"]
