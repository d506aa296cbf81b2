"""The analytics reports: SQL over the stored attempts and payments, folded into plain dicts.

Every report is a function ``(connection, AnalyticsQuery) -> dict`` that runs a bounded number of
grouped scans over the time range (served by the ``attempts_analytics`` covering index, migration
2) and folds the few resulting rows in Python. They are synchronous on purpose: the HTTP layer and
`paymux report` run them on a worker thread with their own read-only connection.

The same reports run on both backends. The connection is a ``sqlite3.Connection`` or a
``PgReportConnection`` (PostgreSQL through asyncpg, bridged to the event loop that owns the
connection); the few places where the SQL differs go through ``_Dialect`` (booleans summed as
integers, SQLite's index hints and subquery fence, rounding and time buckets).

Conventions: money stays in integer minor units, per currency (never summed across currencies);
rates are fractions in [0, 1] or null when there is nothing to divide by; latency is milliseconds
as stored on the attempt.
"""

from __future__ import annotations

import asyncio
import decimal
import math
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, Protocol

import msgspec

#: group_by / filter name -> attempts column (the payment's own attributes are copied onto it).
DIMENSIONS: dict[str, str] = {
    "connector": "connector",
    "country": "billing_country",  # the billing country stands in for the issuer's country
    "brand": "card_brand",
    "currency": "currency",
    "bin": "card_bin",
    "merchant": "merchant_id",
}

#: An attempt the PSP approved, whatever happened to the money afterwards.
APPROVED_ATTEMPT = ("authorized", "captured", "voided", "refunded")
#: A payment that ended approved (canceled is only reachable from requires_capture).
APPROVED_PAYMENT = ("requires_capture", "succeeded", "canceled")
PENDING_PAYMENT = ("processing", "requires_action")


class ReportConnection(Protocol):
    """What a report needs of a connection: ``execute(sql, params)`` giving row tuples."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Iterable[Any]: ...


class PgReportConnection:
    """A PostgreSQL connection for the synchronous reports: ``execute`` runs on the event loop
    that owns the asyncpg connection (``fetch``) and blocks this worker thread until it answers.
    ``?`` placeholders become ``$n``; numeric sums come back as int (or float)."""

    dialect = "postgresql"

    def __init__(
        self,
        fetch: Callable[[str, list[Any]], Coroutine[Any, Any, list[Any]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._fetch = fetch
        self._loop = loop

    def execute(self, sql: str, parameters: Any = ()) -> list[tuple[Any, ...]]:
        parts = sql.split("?")
        text = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))
        future: Any = asyncio.run_coroutine_threadsafe(
            self._fetch(text, list(parameters)), self._loop
        )
        return [tuple(_plain(v) for v in row) for row in future.result()]


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class _Dialect:
    def __init__(self, conn: Any) -> None:
        self.pg = getattr(conn, "dialect", "sqlite") == "postgresql"
        # `LIMIT -1` keeps SQLite from flattening a subquery; PostgreSQL needs no fence.
        self.no_limit = "" if self.pg else "LIMIT -1"

    def n(self, condition: str) -> str:
        """A condition summed as 0/1 (SQLite's booleans are integers already)."""
        return f"({condition})::int" if self.pg else f"({condition})"

    def latency_bucket(self) -> str:
        if not self.pg:
            return _LATENCY_BUCKET
        return (
            "CASE WHEN a.latency_ms < 100 THEN round(a.latency_ms::numeric, 1)::float8 "
            "WHEN a.latency_ms < 10000 THEN round(a.latency_ms) "
            "ELSE round(a.latency_ms / 100) * 100 END"
        )

    def time_bucket(self, res: int) -> str:
        if self.pg:
            return f"(floor(a.created_at / {res})::bigint * {res})"
        return f"CAST(a.created_at / {res} AS INTEGER) * {res}"


def _has_index(conn: Any, name: str) -> bool:
    if _Dialect(conn).pg:
        return False
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        ).fetchone()
        is not None
    )


def _attempts(conn: Any) -> str:
    """Every report scans the time range through the covering index of migration 2 (a store not
    migrated yet, e.g. read by `paymux report` before the gateway restarted, still works)."""
    if _has_index(conn, "attempts_analytics"):
        return "attempts a INDEXED BY attempts_analytics"
    return "attempts a"


def _payments(conn: Any) -> str:
    """The first attempt's payment, by one seek into a covering index (SQLite would otherwise
    pick the primary key's index and then read the wide row)."""
    if _has_index(conn, "payments_outcome"):
        return "payments p INDEXED BY payments_outcome"
    return "payments p"


_APPROVED_SQL = "('authorized', 'captured', 'voided', 'refunded')"
_APPROVED_PAYMENT_SQL = "('requires_capture', 'succeeded', 'canceled')"
_PENDING_PAYMENT_SQL = "('processing', 'requires_action')"

# Latency histogram bucket: 0.1 ms below 100 ms, 1 ms below 10 s, 100 ms above. Percentiles read
# from it are exact to that resolution, and a scan never ships a million floats to Python.
_LATENCY_BUCKET = (
    "CASE WHEN a.latency_ms < 100 THEN round(a.latency_ms, 1) "
    "WHEN a.latency_ms < 10000 THEN round(a.latency_ms) "
    "ELSE round(a.latency_ms / 100) * 100 END"
)


class AnalyticsQuery(msgspec.Struct, kw_only=True):
    """What to compute: a half-open time range [from_ts, to_ts), grouping, filters and limits."""

    from_ts: float
    to_ts: float
    group_by: tuple[str, ...] = ("connector",)
    filters: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    resolution: int = 60  # seconds per time-series bucket
    top: int = 10  # decline reasons per group, failover paths
    limit: int = 100  # groups, largest first


def _where(q: AnalyticsQuery, alias: str = "a") -> tuple[str, list[Any]]:
    clauses = [f"{alias}.created_at >= ?", f"{alias}.created_at < ?"]
    params: list[Any] = [q.from_ts, q.to_ts]
    for name, values in sorted(q.filters.items()):
        if not values:
            continue
        column = DIMENSIONS[name]
        if len(values) == 1:
            clauses.append(f"{alias}.{column} = ?")
        else:
            clauses.append(f"{alias}.{column} IN ({', '.join('?' * len(values))})")
        params.extend(values)
    return " AND ".join(clauses), params


def _dims(q: AnalyticsQuery, alias: str = "a") -> list[str]:
    return [f"{alias}.{DIMENSIONS[d]}" for d in q.group_by]


def _select_dims(q: AnalyticsQuery, alias: str = "a") -> str:
    return "".join(f"{c} AS g{i}, " for i, c in enumerate(_dims(q, alias)))


def _group_clause(dialect: _Dialect, q: AnalyticsQuery, *extra: str) -> str:
    # A dimension filtered to one value is constant: grouping on it would only add a sort
    # (SQLite; PostgreSQL wants every selected column grouped, and hashes rather than sorts).
    cols = [
        f"g{i}" for i, d in enumerate(q.group_by) if dialect.pg or len(q.filters.get(d, ())) != 1
    ]
    cols += extra
    return f"GROUP BY {', '.join(cols)}" if cols else "HAVING count(*) > 0"


def _connectors(conn: Any, q: AnalyticsQuery) -> list[str]:
    """The connectors to scan: the filter's, else every connector that has attempts (a skip-scan
    of the index, a few seeks whatever the table size)."""
    if q.filters.get("connector"):
        return list(q.filters["connector"])
    return [
        name
        for (name,) in conn.execute(
            "WITH RECURSIVE c(name) AS ("
            " SELECT (SELECT min(connector) FROM attempts)"
            " UNION ALL"
            " SELECT (SELECT min(connector) FROM attempts WHERE connector > c.name)"
            " FROM c WHERE c.name IS NOT NULL)"
            " SELECT name FROM c WHERE name IS NOT NULL"
        )
    ]


Build = Callable[[AnalyticsQuery], tuple[str, list[Any]]]


def _rows(conn: Any, q: AnalyticsQuery, build: Build) -> Iterator[tuple[Any, ...]]:
    """Run one grouped scan per connector and chain the rows.

    The covering index leads with the connector, so each scan is one contiguous range of it, and
    SQLite's GROUP BY (a sort: it has no hash aggregate) only sorts one connector's rows, or none at
    all when connector is the only dimension. When connector is not a dimension, rows of several
    connectors can carry the same group key: every report adds rows into its groups, never
    assigns them, so the result is the same as one query's.
    """
    for connector in _connectors(conn, q):
        part = msgspec.structs.replace(q, filters={**q.filters, "connector": (connector,)})
        sql, params = build(part)
        yield from conn.execute(sql, params)


def _key(q: AnalyticsQuery, row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(row[: len(q.group_by)])


def _key_dict(q: AnalyticsQuery, key: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(q.group_by, key, strict=True))


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _largest(
    groups: dict[tuple[Any, ...], dict[str, Any]], size: str, limit: int
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1][size], [str(k) for k in kv[0]]))
    return ordered[:limit]


def _add_money(into: dict[str, int], currency: str, amount: int | None) -> None:
    if amount:
        into[currency] = into.get(currency, 0) + int(amount)


# -- approvals ----------------------------------------------------------------------------------


def approvals(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """First-attempt and final approval rates, counts and approved volume per group.

    A payment belongs to the group of its first attempt (the routing choice): its final outcome
    counts there even when a cascade recovered it elsewhere.
    """

    d = _Dialect(conn)

    def payments_sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        # An approved first attempt means an approved payment: only the others (a minority) look
        # the payment up, so the scan stays on the covering index.
        where, params = _where(q)
        groups_sql = "".join(f"s.g{i}, " for i in range(len(q.group_by)))
        return (
            f"""
            SELECT {groups_sql}s.currency,
                   count(*),
                   sum(s.first_ok),
                   sum({d.n(f"s.final IN {_APPROVED_PAYMENT_SQL}")}),
                   sum({d.n(f"s.final IN {_PENDING_PAYMENT_SQL}")}),
                   sum(CASE WHEN s.final IN {_APPROVED_PAYMENT_SQL} THEN s.amount ELSE 0 END)
            FROM (SELECT {_select_dims(q)}a.currency AS currency, a.amount AS amount,
                         {d.n(f"a.status IN {_APPROVED_SQL}")} AS first_ok,
                         CASE WHEN a.status IN {_APPROVED_SQL} THEN 'succeeded'
                              ELSE (SELECT p.status FROM {_payments(conn)}
                                    WHERE p.id = a.payment_id) END AS final
                  FROM {_attempts(conn)} WHERE {where} AND a.seq = 1
                  {d.no_limit}) s
            {_group_clause(d, q, "s.currency")}""",
            params,
        )

    def attempts_sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT {_select_dims(q)}count(*), sum({d.n(f"a.status IN {_APPROVED_SQL}")}),
                   sum({d.n("a.status = 'declined'")}), sum({d.n("a.status = 'failed'")})
            FROM {_attempts(conn)} WHERE {where}
            {_group_clause(d, q)}""",
            params,
        )

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}

    def group(key: tuple[Any, ...]) -> dict[str, Any]:
        if key not in groups:
            groups[key] = {
                "payments": 0,
                "first_attempt_approved": 0,
                "approved": 0,
                "pending": 0,
                "volume": {},
                "attempts": 0,
                "attempts_approved": 0,
                "attempts_declined": 0,
                "attempts_failed": 0,
            }
        return groups[key]

    n = len(q.group_by)
    for row in _rows(conn, q, payments_sql):
        g = group(_key(q, row))
        currency, payments, first_ok, final_ok, pending, volume = row[n:]
        g["payments"] += payments
        g["first_attempt_approved"] += first_ok or 0
        g["approved"] += final_ok or 0
        g["pending"] += pending or 0
        _add_money(g["volume"], currency, volume)
    for row in _rows(conn, q, attempts_sql):
        g = group(_key(q, row))
        total, ok, declined, failed = row[n:]
        g["attempts"] += total
        g["attempts_approved"] += ok or 0
        g["attempts_declined"] += declined or 0
        g["attempts_failed"] += failed or 0

    def finish(g: dict[str, Any]) -> dict[str, Any]:
        decided = g["payments"] - g["pending"]
        g["failed"] = decided - g["approved"]
        g["first_attempt_approval_rate"] = _rate(g["first_attempt_approved"], g["payments"])
        g["approval_rate"] = _rate(g["approved"], decided)
        g["attempt_approval_rate"] = _rate(g["attempts_approved"], g["attempts"])
        return g

    totals = _sum_groups(groups.values())
    out = [{"key": _key_dict(q, k), **finish(g)} for k, g in _largest(groups, "attempts", q.limit)]
    return {"groups": out, "totals": finish(totals)}


def _sum_groups(groups: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for g in groups:
        for name, value in g.items():
            if isinstance(value, dict):
                bucket = total.setdefault(name, {})
                for cur, amount in value.items():
                    bucket[cur] = bucket.get(cur, 0) + amount
            elif isinstance(value, int):
                total[name] = total.get(name, 0) + value
    for name in (
        "payments",
        "first_attempt_approved",
        "approved",
        "pending",
        "attempts",
        "attempts_approved",
        "attempts_declined",
        "attempts_failed",
    ):
        total.setdefault(name, 0)
    total.setdefault("volume", {})
    return total


# -- declines -----------------------------------------------------------------------------------


def declines(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """Decline reasons (normalized code and class, with the raw codes behind them), top N."""
    d = _Dialect(conn)

    # One scan per connector: SQLite takes the constant connector as a bare column.
    by = ["declined", "a.normalized_code", "a.decline_class", "a.raw_code"]
    if d.pg:
        by.append("a.connector")

    def sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT {_select_dims(q)}{d.n("a.status IN ('declined', 'failed')")} AS declined,
                   a.normalized_code, a.decline_class, a.connector, a.raw_code, count(*)
            FROM {_attempts(conn)} WHERE {where}
            {_group_clause(d, q, *by)}""",
            params,
        )

    n = len(q.group_by)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    overall: dict[tuple[str, str], dict[str, Any]] = {}
    classes: dict[str, int] = {}
    for row in _rows(conn, q, sql):
        key = _key(q, row)
        is_decline, code, klass, connector, raw, count = row[n:]
        g = groups.setdefault(key, {"attempts": 0, "declines": 0, "reasons": {}, "classes": {}})
        g["attempts"] += count
        if not is_decline:
            continue
        code = code or "unknown"
        klass = klass or "unknown"
        g["declines"] += count
        g["classes"][klass] = g["classes"].get(klass, 0) + count
        classes[klass] = classes.get(klass, 0) + count
        for reasons in (g["reasons"], overall):
            r = reasons.setdefault(
                (code, klass),
                {"normalized_code": code, "decline_class": klass, "count": 0, "raw": {}},
            )
            r["count"] += count
            raw_key = (connector, raw)
            r["raw"][raw_key] = r["raw"].get(raw_key, 0) + count

    def top_reasons(
        reasons: dict[tuple[str, str], dict[str, Any]], declines_: int
    ) -> list[dict[str, Any]]:
        ordered = sorted(reasons.values(), key=lambda r: (-r["count"], r["normalized_code"]))
        out = []
        for r in ordered[: q.top]:
            raw = sorted(r.pop("raw").items(), key=lambda kv: (-kv[1], str(kv[0])))
            out.append(
                {
                    **r,
                    "share": _rate(r["count"], declines_),
                    "raw_codes": [
                        {"connector": c, "raw_code": code, "count": n_} for (c, code), n_ in raw
                    ],
                }
            )
        return out

    out = []
    for key, g in _largest(groups, "attempts", q.limit):
        out.append(
            {
                "key": _key_dict(q, key),
                "attempts": g["attempts"],
                "declines": g["declines"],
                "decline_rate": _rate(g["declines"], g["attempts"]),
                "classes": dict(sorted(g["classes"].items(), key=lambda kv: -kv[1])),
                "reasons": top_reasons(g["reasons"], g["declines"]),
            }
        )
    attempts = sum(g["attempts"] for g in groups.values())
    total_declines = sum(g["declines"] for g in groups.values())
    return {
        "groups": out,
        "totals": {
            "attempts": attempts,
            "declines": total_declines,
            "decline_rate": _rate(total_declines, attempts),
            "classes": dict(sorted(classes.items(), key=lambda kv: -kv[1])),
            "reasons": top_reasons(overall, total_declines),
        },
    }


# -- failover -----------------------------------------------------------------------------------


def failover(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """Payments a cascade recovered, attempts per payment, and how often each path A->B ran."""

    d = _Dialect(conn)

    def per_payment(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        # Only a first attempt that was not approved can have been followed by others: just those
        # look up the payment's last attempt and status. `LIMIT -1` (no limit) keeps SQLite from
        # flattening the subquery, which would evaluate those lookups once per use.
        where, params = _where(q)
        groups_sql = "".join(f"s.g{i}, " for i in range(len(q.group_by)))
        recovered = d.n(
            f"s.n > 1 AND (SELECT p.status FROM {_payments(conn)} "
            f"WHERE p.id = s.payment_id) IN {_APPROVED_PAYMENT_SQL}"
        )
        return (
            f"""
            SELECT {groups_sql}count(*), sum({d.n("s.n > 1")}),
                   sum({recovered}),
                   sum(s.n)
            FROM (SELECT {_select_dims(q)}a.payment_id,
                         CASE WHEN a.status IN {_APPROVED_SQL} THEN 1
                              ELSE (SELECT max(b.seq) FROM attempts b
                                    WHERE b.payment_id = a.payment_id) END AS n
                  FROM {_attempts(conn)} WHERE {where} AND a.seq = 1
                  {d.no_limit}) s
            {_group_clause(d, q)}""",
            params,
        )

    def paths_sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT a.connector, b.connector, count(*), sum({d.n(f"b.status IN {_APPROVED_SQL}")})
            FROM {_attempts(conn)} JOIN attempts b
                 ON b.payment_id = a.payment_id AND b.seq = a.seq + 1
            WHERE {where} AND a.status IN ('declined', 'failed')
            GROUP BY {"a.connector, " if d.pg else ""}b.connector""",
            params,
        )

    n = len(q.group_by)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in _rows(conn, q, per_payment):
        payments, cascaded, recovered, attempts = row[n:]
        g = groups.setdefault(
            _key(q, row), {"payments": 0, "cascaded": 0, "recovered": 0, "attempts": 0}
        )
        g["payments"] += payments
        g["cascaded"] += cascaded or 0
        g["recovered"] += recovered or 0
        g["attempts"] += attempts or 0
    found: dict[tuple[str, str], list[int]] = {}
    for source, target, triggered, approved in _rows(conn, q, paths_sql):
        counts = found.setdefault((source, target), [0, 0])
        counts[0] += triggered
        counts[1] += approved or 0
    paths: list[dict[str, Any]] = [
        {
            "path": f"{source}->{target}",
            "from": source,
            "to": target,
            "triggered": triggered,
            "approved": approved,
            "approval_rate": _rate(approved, triggered),
        }
        for (source, target), (triggered, approved) in found.items()
    ]
    paths.sort(key=lambda p: (-p["triggered"], p["path"]))

    def finish(g: dict[str, Any]) -> dict[str, Any]:
        g["cascade_rate"] = _rate(g["cascaded"], g["payments"])
        g["recovery_rate"] = _rate(g["recovered"], g["cascaded"])
        g["attempts_per_payment"] = (
            round(g["attempts"] / g["payments"], 4) if g["payments"] else None
        )
        return g

    totals = {
        name: sum(g[name] for g in groups.values())
        for name in ("payments", "cascaded", "recovered", "attempts")
    }
    return {
        "groups": [
            {"key": _key_dict(q, k), **finish(g)} for k, g in _largest(groups, "payments", q.limit)
        ],
        "paths": paths[: q.top],
        "totals": finish(totals),
    }


# -- latency ------------------------------------------------------------------------------------


def percentiles(histogram: list[tuple[float, int]], points: Iterable[float]) -> list[float | None]:
    """Nearest-rank percentiles from (value, count) pairs sorted by value."""
    total = sum(c for _, c in histogram)
    if not total:
        return [None for _ in points]
    out: list[float | None] = []
    for p in points:
        rank = max(1, math.ceil(p * total))
        seen = 0
        for value, count in histogram:
            seen += count
            if seen >= rank:
                out.append(round(float(value), 3))
                break
    return out


def _latency_groups(conn: Any, q: AnalyticsQuery) -> dict[tuple[Any, ...], dict[str, Any]]:
    d = _Dialect(conn)

    def sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT {_select_dims(q)}{d.latency_bucket()} AS bucket, count(*), sum(a.latency_ms)
            FROM {_attempts(conn)} WHERE {where} AND a.latency_ms IS NOT NULL
            {_group_clause(d, q, "bucket")}""",
            params,
        )

    n = len(q.group_by)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in _rows(conn, q, sql):
        bucket, count, total = row[n:]
        g = groups.setdefault(_key(q, row), {"buckets": {}, "count": 0, "sum": 0.0})
        g["buckets"][bucket] = g["buckets"].get(bucket, 0) + count
        g["count"] += count
        g["sum"] += total
    for g in groups.values():
        g["histogram"] = sorted(g.pop("buckets").items())
    return groups


def _latency_summary(g: dict[str, Any]) -> dict[str, Any]:
    p50, p95, p99 = percentiles(g["histogram"], (0.5, 0.95, 0.99))
    return {
        "count": g["count"],
        "mean_ms": round(g["sum"] / g["count"], 3) if g["count"] else None,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": g["histogram"][-1][0] if g["histogram"] else None,
    }


def latency(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """PSP latency p50/p95/p99 per group (the attempt's round trip to the PSP)."""
    groups = _latency_groups(conn, q)
    merged: dict[float, int] = {}
    for g in groups.values():
        for value, count in g["histogram"]:
            merged[value] = merged.get(value, 0) + count
    total = {
        "histogram": sorted(merged.items()),
        "count": sum(merged.values()),
        "sum": sum(g["sum"] for g in groups.values()),
    }
    return {
        "groups": [
            {"key": _key_dict(q, k), **_latency_summary(g)}
            for k, g in _largest(groups, "count", q.limit)
        ],
        "totals": _latency_summary(total),
    }


# -- fees ---------------------------------------------------------------------------------------


def fees(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """PSP fees per group and currency, and the cost per approved payment (all attempts' fees)."""
    d = _Dialect(conn)

    def sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT {_select_dims(q)}a.currency, count(*), count(a.fee), sum(a.fee),
                   sum({d.n(f"a.status IN {_APPROVED_SQL}")})
            FROM {_attempts(conn)} WHERE {where}
            {_group_clause(d, q, "a.currency")}""",
            params,
        )

    n = len(q.group_by)
    found: dict[tuple[Any, ...], dict[str, int]] = {}
    totals: dict[str, dict[str, int]] = {}
    for row in _rows(conn, q, sql):
        currency, attempts, priced, fee, approved = row[n:]
        for t in (found.setdefault((*_key(q, row), currency), {}), totals.setdefault(currency, {})):
            t["attempts"] = t.get("attempts", 0) + attempts
            t["attempts_priced"] = t.get("attempts_priced", 0) + priced
            t["fees"] = t.get("fees", 0) + int(fee or 0)
            t["approved"] = t.get("approved", 0) + (approved or 0)

    def cost(t: dict[str, int]) -> float | None:
        return round(t["fees"] / t["approved"], 2) if t["approved"] else None

    rows = [
        {"key": _key_dict(q, k[:-1]), "currency": k[-1], **t, "cost_per_approved": cost(t)}
        for k, t in found.items()
    ]
    rows.sort(key=lambda r: (r["currency"], -r["fees"], -r["attempts"], str(r["key"])))
    return {
        "groups": rows[: q.limit],
        "totals": {cur: {**t, "cost_per_approved": cost(t)} for cur, t in sorted(totals.items())},
    }


# -- time series --------------------------------------------------------------------------------


def timeseries(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """Attempts, approvals, declines, failures and mean latency per time bucket and group."""
    res = int(q.resolution)
    d = _Dialect(conn)

    def sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT {_select_dims(q)}{d.time_bucket(res)} AS t, count(*),
                   sum({d.n(f"a.status IN {_APPROVED_SQL}")}), sum({d.n("a.status = 'declined'")}),
                   sum({d.n("a.status = 'failed'")}), count(a.latency_ms), sum(a.latency_ms)
            FROM {_attempts(conn)} WHERE {where}
            {_group_clause(d, q, "t")}""",
            params,
        )

    n = len(q.group_by)
    series: dict[tuple[Any, ...], dict[int, list[float]]] = {}
    for row in _rows(conn, q, sql):
        t, *counts = row[n:]
        point = series.setdefault(_key(q, row), {}).setdefault(t, [0, 0, 0, 0, 0, 0.0])
        for i, value in enumerate(counts):
            point[i] += value or 0

    def points(by_t: dict[int, list[float]]) -> list[dict[str, Any]]:
        out = []
        for t, (attempts, ok, declined, failed, timed, latency_sum) in sorted(by_t.items()):
            out.append(
                {
                    "t": t,
                    "attempts": attempts,
                    "approved": ok,
                    "declined": declined,
                    "failed": failed,
                    "approval_rate": _rate(int(ok), int(attempts)),
                    "latency_ms_mean": round(latency_sum / timed, 3) if timed else None,
                }
            )
        return out

    grouped = {
        k: {"attempts": sum(p[0] for p in by_t.values()), "by_t": by_t}
        for k, by_t in series.items()
    }
    return {
        "resolution": res,
        "series": [
            {"key": _key_dict(q, k), "attempts": s["attempts"], "points": points(s["by_t"])}
            for k, s in _largest(grouped, "attempts", q.limit)
        ],
    }


# -- live health (the dashboard's top row) ------------------------------------------------------


def health(conn: Any, q: AnalyticsQuery) -> dict[str, Any]:
    """Per group over the range: approval rate, technical error rate, latency percentiles."""
    d = _Dialect(conn)

    def sql(q: AnalyticsQuery) -> tuple[str, list[Any]]:
        where, params = _where(q)
        return (
            f"""
            SELECT {_select_dims(q)}count(*), sum({d.n(f"a.status IN {_APPROVED_SQL}")}),
                   sum({d.n("a.status = 'declined'")}),
                   sum({d.n("a.status = 'failed' OR a.decline_class = 'technical'")})
            FROM {_attempts(conn)} WHERE {where} AND a.status != 'started'
            {_group_clause(d, q)}""",
            params,
        )

    n = len(q.group_by)
    lat = _latency_groups(conn, q)
    counts: dict[tuple[Any, ...], list[int]] = {}
    for row in _rows(conn, q, sql):
        c = counts.setdefault(_key(q, row), [0, 0, 0, 0])
        for i, value in enumerate(row[n:]):
            c[i] += value or 0
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, (attempts, ok, declined, errors) in counts.items():
        summary = _latency_summary(lat.get(key, {"histogram": [], "count": 0, "sum": 0.0}))
        groups[key] = {
            "attempts": attempts,
            "approved": ok,
            "declined": declined,
            "errors": errors,
            "approval_rate": _rate(ok, attempts),
            "error_rate": _rate(errors, attempts),
            "p50_ms": summary["p50_ms"],
            "p95_ms": summary["p95_ms"],
        }
    return {
        "groups": [{"key": _key_dict(q, k), **g} for k, g in _largest(groups, "attempts", q.limit)]
    }


Report = Callable[[Any, AnalyticsQuery], dict[str, Any]]

REPORTS: dict[str, Report] = {
    "approvals": approvals,
    "declines": declines,
    "failover": failover,
    "latency": latency,
    "fees": fees,
    "timeseries": timeseries,
    "health": health,
}


def connect_readonly(path: str) -> sqlite3.Connection:
    """A read-only connection of the caller's own (never the store's shared reader)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: a million-attempt scan stays in memory
    return conn


def run_report(path: str, name: str, q: AnalyticsQuery) -> dict[str, Any]:
    """Open, compute, close: safe to call on any thread without a running event loop. ``path``
    is a SQLite file or a ``postgresql://`` URL."""
    if path.startswith(("postgresql://", "postgres://")):
        return asyncio.run(_pg_report(path, name, q))
    conn = connect_readonly(path)
    try:
        body = REPORTS[name](conn, q)
    finally:
        conn.close()
    return _envelope(name, q, body)


async def _pg_report(url: str, name: str, q: AnalyticsQuery) -> dict[str, Any]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url, server_settings={"jit": "off", "work_mem": "64MB"})
    try:
        bridge = PgReportConnection(
            lambda sql, params: conn.fetch(sql, *params), asyncio.get_running_loop()
        )
        body = await asyncio.to_thread(REPORTS[name], bridge, q)
    finally:
        await conn.close()
    return _envelope(name, q, body)


async def report(source: Any, name: str, q: AnalyticsQuery) -> dict[str, Any]:
    """A report from the gateway's own store, without blocking the event loop: a SQLite store
    on a worker thread with its own read-only connection; a PostgreSQL store on a connection
    of its analytics pool, the report's Python on a worker thread."""
    connection = getattr(source, "analytics_connection", None)
    if connection is None:
        path = str(getattr(source, "path", source) or "")
        return await asyncio.to_thread(run_report, path, name, q)
    async with connection() as conn:
        bridge = PgReportConnection(
            lambda sql, params: conn.fetch(sql, *params), asyncio.get_running_loop()
        )
        body = await asyncio.to_thread(REPORTS[name], bridge, q)
    return _envelope(name, q, body)


def _envelope(name: str, q: AnalyticsQuery, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": f"analytics.{name}",
        "from": q.from_ts,
        "to": q.to_ts,
        "group_by": list(q.group_by),
        "filters": {k: list(v) for k, v in sorted(q.filters.items()) if v},
        **body,
    }
