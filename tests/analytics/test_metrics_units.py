"""The metrics module on its own: breaker gauges from the router, multiprocess exposition."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import ClassVar

from paymux.observability import metrics


class RouterWithBreakers:
    connectors: ClassVar[dict[str, object]] = {
        "stripe": object(),
        "adyen": object(),
        "checkout": object(),
    }

    def breaker_states(self) -> dict[str, str]:
        return {"stripe": "OPEN", "adyen": "half-open", "checkout": 0}


class RouterWithoutBreakers:
    connectors: ClassVar[dict[str, object]] = {"stripe": object(), "adyen": object()}


class BrokenRouter(RouterWithBreakers):
    def breaker_states(self) -> dict[str, str]:
        raise RuntimeError("health windows not ready")


def test_breaker_state_gauge_reads_the_router_when_scraped():
    body, _ = metrics.exposition(lambda: metrics.breaker_states(RouterWithBreakers()))
    text = body.decode()
    assert 'paymux_breaker_state{connector="stripe"} 2.0' in text
    assert 'paymux_breaker_state{connector="adyen"} 1.0' in text
    assert 'paymux_breaker_state{connector="checkout"} 0.0' in text


def test_connectors_without_breakers_or_with_a_failing_router_read_closed():
    assert metrics.breaker_states(RouterWithoutBreakers()) == [
        ("adyen", "closed"),
        ("stripe", "closed"),
    ]
    assert ("stripe", "closed") in metrics.breaker_states(BrokenRouter())


def test_multiprocess_mode_sums_every_worker(tmp_path):
    script = textwrap.dedent("""
        import os
        from paymux.observability import metrics
        children = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                metrics.attempt_finished("stripe", "captured", None, None, 12.0)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        body, _ = metrics.exposition()
        print(body.decode())
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert (
        'paymux_attempts_total{connector="stripe",decline_class="",normalized_code="",'
        'outcome="captured"} 2.0'
    ) in out
    assert 'paymux_psp_latency_seconds_count{connector="stripe",outcome="captured"} 2.0' in out
