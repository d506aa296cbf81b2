"""One view across all PSPs: approval, decline, failover, latency and fee analytics from the store."""

from paymux.analytics.queries import REPORTS, AnalyticsQuery, run_report

__all__ = ["REPORTS", "AnalyticsQuery", "run_report"]
