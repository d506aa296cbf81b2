"""`paymux report`: the analytics across all PSPs as terminal tables, read from the SQLite store.

    paymux report [--since 1h] [--by connector,country] [--config FILE] [--db PATH]
                  [--country DE,FR] [--brand visa] [--currency EUR] [--connector stripe] [--json]

It opens the configured store read-only (the gateway may be running) and prints approvals, decline
reasons, failover, latency and fees for the window.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from paymux.analytics.queries import DIMENSIONS, AnalyticsQuery, run_report
from paymux.api.analytics_params import parse_duration
from paymux.config import ConfigError, is_postgres_url, load_config
from paymux.domain.money import exponent

SECTIONS = ("approvals", "declines", "failover", "latency", "fees")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="paymux report", description=__doc__.splitlines()[0])
    parser.add_argument("--since", default="24h", help="window ending now: 90s, 15m, 1h, 7d (24h)")
    parser.add_argument(
        "--by", default="connector", help=f"group by up to 3 of {','.join(DIMENSIONS)} (connector)"
    )
    parser.add_argument("--config", help="gateway TOML config (its storage.path is read)")
    parser.add_argument("--db", help="SQLite file to read (overrides the config)")
    for name in DIMENSIONS:
        parser.add_argument(f"--{name}", help=f"only these {name} values, comma-separated")
    parser.add_argument("--top", type=int, default=10, help="decline reasons and failover paths")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--json", action="store_true", help="print the raw reports as JSON")
    return parser.parse_args(argv)


def build_query(args: argparse.Namespace, now: float) -> AnalyticsQuery:
    since = parse_duration(args.since)
    if since is None or since <= 0:
        raise ValueError(f"--since must look like 90s, 15m, 1h or 7d, not {args.since!r}")
    group_by = tuple(g.strip() for g in args.by.split(",") if g.strip())
    bad = [g for g in group_by if g not in DIMENSIONS]
    if bad or len(set(group_by)) != len(group_by) or len(group_by) > 3:
        raise ValueError(f"--by takes up to 3 distinct of {', '.join(DIMENSIONS)}")
    filters: dict[str, tuple[str, ...]] = {}
    for name in DIMENSIONS:
        raw = getattr(args, name)
        if raw:
            values = [v.strip() for v in raw.split(",") if v.strip()]
            if name in ("country", "currency"):
                values = [v.upper() for v in values]
            filters[name] = tuple(values)
    if not 1 <= args.top <= 100:
        raise ValueError("--top must be between 1 and 100")
    return AnalyticsQuery(
        from_ts=now - since, to_ts=now + 1e-3, group_by=group_by, filters=filters, top=args.top
    )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.1f}"


def _money(minor: int, currency: str) -> str:
    try:
        exp = exponent(currency)
    except (KeyError, ValueError):
        exp = 2
    return f"{minor / 10**exp:,.{exp}f} {currency}"


def _key(group: dict[str, Any], by: tuple[str, ...]) -> list[str]:
    return [str(group["key"].get(d) if group["key"].get(d) is not None else "–") for d in by]


def render(reports: dict[str, dict[str, Any]], q: AnalyticsQuery, since: str, db: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    by = q.group_by
    filters = ", ".join(f"{k}={','.join(v)}" for k, v in q.filters.items()) or "none"
    console.print(
        f"[bold]paymux report[/] · last {since} · by {','.join(by) or '(all)'} · "
        f"filters: {filters} · {db}"
    )

    if "approvals" in reports:
        body = reports["approvals"]
        t = Table(title="Approvals", title_justify="left")
        for d in by:
            t.add_column(d)
        for col in (
            "payments",
            "first-attempt",
            "final",
            "attempts",
            "att. declined",
            "att. failed",
            "approved volume",
        ):
            t.add_column(col, justify="right")

        def row(g: dict[str, Any]) -> list[str]:
            volume = ", ".join(_money(v, c) for c, v in sorted(g["volume"].items())) or "–"
            return [
                str(g["payments"]),
                _pct(g["first_attempt_approval_rate"]),
                _pct(g["approval_rate"]),
                str(g["attempts"]),
                str(g["attempts_declined"]),
                str(g["attempts_failed"]),
                volume,
            ]

        for g in body["groups"]:
            t.add_row(*_key(g, by), *row(g))
        t.add_section()
        t.add_row(*(["[bold]all[/]"] + [""] * (len(by) - 1) if by else []), *row(body["totals"]))
        console.print(t)

    if "declines" in reports:
        body = reports["declines"]
        t = Table(title=f"Decline reasons (top {q.top})", title_justify="left")
        for col in ("normalized code", "class", "count", "share", "raw codes (connector:code ×n)"):
            t.add_column(col, justify="right" if col in ("count", "share") else "left")
        for r in body["totals"]["reasons"]:
            raw = ", ".join(
                f"{x['connector']}:{x['raw_code']} ×{x['count']}" for x in r["raw_codes"][:6]
            )
            t.add_row(
                r["normalized_code"], r["decline_class"], str(r["count"]), _pct(r["share"]), raw
            )
        console.print(t)
        console.print(
            f"declines: {body['totals']['declines']} of {body['totals']['attempts']} "
            f"attempts ({_pct(body['totals']['decline_rate'])}); by class: "
            + (", ".join(f"{k} {v}" for k, v in body["totals"]["classes"].items()) or "none")
        )

    if "failover" in reports:
        body = reports["failover"]
        t = Table(title="Failover", title_justify="left")
        for d in by:
            t.add_column(d)
        for col in ("payments", "cascaded", "recovered", "recovery rate", "attempts/payment"):
            t.add_column(col, justify="right")

        def frow(g: dict[str, Any]) -> list[str]:
            app = g["attempts_per_payment"]
            return [
                str(g["payments"]),
                str(g["cascaded"]),
                str(g["recovered"]),
                _pct(g["recovery_rate"]),
                "–" if app is None else f"{app:.2f}",
            ]

        for g in body["groups"]:
            t.add_row(*_key(g, by), *frow(g))
        t.add_section()
        t.add_row(*(["[bold]all[/]"] + [""] * (len(by) - 1) if by else []), *frow(body["totals"]))
        console.print(t)
        if body["paths"]:
            p = Table(title="Failover paths", title_justify="left")
            for col in ("path", "triggered", "approved after", "rate"):
                p.add_column(col, justify="left" if col == "path" else "right")
            for path in body["paths"]:
                p.add_row(
                    path["path"],
                    str(path["triggered"]),
                    str(path["approved"]),
                    _pct(path["approval_rate"]),
                )
            console.print(p)

    if "latency" in reports:
        body = reports["latency"]
        t = Table(title="PSP latency (ms)", title_justify="left")
        for d in by:
            t.add_column(d)
        for col in ("attempts", "mean", "p50", "p95", "p99", "max"):
            t.add_column(col, justify="right")
        for g in [*body["groups"], {"key": {}, **body["totals"]}]:
            key = (
                _key(g, by) if g["key"] else (["[bold]all[/]"] + [""] * (len(by) - 1) if by else [])
            )
            t.add_row(
                *key,
                str(g["count"]),
                _ms(g["mean_ms"]),
                _ms(g["p50_ms"]),
                _ms(g["p95_ms"]),
                _ms(g["p99_ms"]),
                _ms(g["max_ms"]),
            )
        console.print(t)

    if "fees" in reports:
        body = reports["fees"]
        t = Table(title="Fees", title_justify="left")
        for d in by:
            t.add_column(d)
        for col in ("currency", "attempts", "priced", "fees", "approved", "cost per approved"):
            t.add_column(col, justify="right")
        for g in body["groups"]:
            cpa = g["cost_per_approved"]
            t.add_row(
                *_key(g, by),
                g["currency"],
                str(g["attempts"]),
                str(g["attempts_priced"]),
                _money(g["fees"], g["currency"]),
                str(g["approved"]),
                "–" if cpa is None else _money(round(cpa), g["currency"]),
            )
        console.print(t)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args.config)
        db = args.db or config.storage.url or config.storage.path
        query = build_query(args, time.time())
    except (ConfigError, ValueError) as exc:
        print(f"paymux report: {exc}", file=sys.stderr)
        return 2
    if not is_postgres_url(db) and not Path(db).is_file():
        print(f"paymux report: no store at {db} (pass --config or --db)", file=sys.stderr)
        return 1
    sections = SECTIONS
    if args.only:
        sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown:
            print(f"paymux report: --only takes {', '.join(SECTIONS)}", file=sys.stderr)
            return 2
    try:
        reports = {name: run_report(db, name, query) for name in sections}
    except Exception as exc:  # noqa: BLE001 - e.g. a store from before migration 2
        print(f"paymux report: cannot read {db}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    else:
        render(reports, query, args.since, db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
