"""The dashboard in a real headless browser (Debian's chromium driven by Playwright).

Real traffic goes through the gateway to the sandbox PSPs; the page must show every PSP with the
numbers the analytics API returns, draw its charts with the Plotly.js served by paymux, and never
reach outside the gateway. A screenshot lands in artifacts/dashboard.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.analytics.traffic import ADMIN_KEY, SCENARIO, drive
from tests.gateway.conftest import card

pytestmark = [
    pytest.mark.gateway_config(admin_api_key=ADMIN_KEY),
    pytest.mark.sandbox_scenario(SCENARIO),
]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed: run scripts/install-browser.sh (apt-get install chromium)",
        allow_module_level=True,
    )


async def admin_get(gateway, path):
    async with gateway.session.get(
        gateway.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as r:
        assert r.status == 200
        return await r.json()


@pytest.fixture
async def browser():
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser, gateway):
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on(
        "request",
        lambda req: (
            problems.append(f"left the gateway: {req.url}")
            if not req.url.startswith(gateway.url)
            else None
        ),
    )
    return page, problems


def percent(text: str) -> float:
    return float(text.rstrip("%"))


async def loads(page) -> int:
    return int(await page.evaluate("Number(document.body.dataset.loaded || 0)"))


async def test_dashboard_shows_each_psp_with_the_numbers_of_the_api(gateway, browser):
    await drive(gateway)
    page, problems = await open_page(browser, gateway)
    await page.goto(gateway.url + "/dashboard")
    await page.wait_for_selector("#login-form", state="visible")
    await page.fill("#admin-key", ADMIN_KEY)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_function(
        "() => Number(document.body.dataset.loaded || 0) >= 1", timeout=15_000
    )
    for chart in ("approval", "declines", "failover", "latency"):
        await page.wait_for_selector(f"#chart-{chart} .main-svg", timeout=15_000)

    # The same window the page asked for (the default: the last hour).
    approvals = await admin_get(gateway, "/admin/analytics/approvals?from=3600s")
    health = await admin_get(gateway, "/admin/analytics/health?from=300s")
    declines = await admin_get(gateway, "/admin/analytics/declines?from=3600s&top=8")
    failover = await admin_get(gateway, "/admin/analytics/failover?from=3600s&top=10")

    cards = await page.eval_on_selector_all(
        "#health .card", "els => els.map(e => e.dataset.connector)"
    )
    assert sorted(cards) == ["adyen", "checkout", "stripe"]
    for g in health["groups"]:
        name = g["key"]["connector"]
        card_el = page.locator(f'#health .card[data-connector="{name}"]')
        assert await card_el.locator('[data-metric="attempts"]').inner_text() == str(g["attempts"])
        assert await card_el.locator('[data-metric="breaker"]').text_content() == "closed"
        shown = percent(await card_el.locator('[data-metric="approval_rate"]').inner_text())
        assert abs(shown - g["approval_rate"] * 100) <= 0.051, name

    rows = await page.eval_on_selector_all(
        "#approvals-table tbody tr", "els => els.map(e => e.dataset.connector)"
    )
    assert sorted(rows) == sorted(g["key"]["connector"] for g in approvals["groups"])
    for g in approvals["groups"]:
        row = page.locator(f'#approvals-table tr[data-connector="{g["key"]["connector"]}"]')
        assert await row.locator('[data-metric="payments"]').inner_text() == str(g["payments"])
        assert await row.locator('[data-metric="attempts"]').inner_text() == str(g["attempts"])
        if g["approval_rate"] is not None:
            shown = percent(await row.locator('[data-metric="approval_rate"]').inner_text())
            assert abs(shown - g["approval_rate"] * 100) <= 0.051

    # The charts carry the PSP names and the API's numbers (read back from Plotly's own data).
    series = await page.evaluate("document.getElementById('chart-approval').data.map(t => t.name)")
    assert sorted(series) == ["adyen", "checkout", "stripe"]
    decline_traces = await page.evaluate(
        "document.getElementById('chart-declines').data.map(t => [t.name, t.y, t.x])"
    )
    drawn = {}
    for name, codes, counts in decline_traces:
        for code, count in zip(codes, counts, strict=True):
            drawn[code.split(" · ")[0]] = drawn.get(code.split(" · ")[0], 0) + count
    assert drawn == {r["normalized_code"]: r["count"] for r in declines["totals"]["reasons"]}
    paths = await page.evaluate(
        "(() => { const t = document.getElementById('chart-failover').data[0];"
        " return Object.fromEntries(t.x.map((x, i) => [x, t.y[i]])); })()"
    )
    assert paths == {p["path"]: p["triggered"] for p in failover["paths"]}
    assert "stripe->adyen" in await page.inner_text("#chart-failover")
    svg_text = await page.inner_text("#chart-declines")
    assert "insufficient_funds" in svg_text

    (ROOT / "artifacts").mkdir(exist_ok=True)
    await page.screenshot(path=str(ROOT / "artifacts" / "dashboard.png"), full_page=True)

    # It refreshes itself: new traffic shows up without a reload.
    before = await loads(page)
    stripe_row = page.locator(
        '#approvals-table tr[data-connector="stripe"] [data-metric="payments"]'
    )
    count = int(await stripe_row.inner_text())
    status, _ = await gateway.post(
        "/v1/payments",
        {"amount": 900, "currency": "EUR", "payment_method": card(), "connector": "stripe"},
    )
    assert status == 200
    await page.wait_for_function(
        "(n) => Number(document.body.dataset.loaded) > n", arg=before, timeout=15_000
    )
    await page.wait_for_function(
        '(n) => document.querySelector(\'#approvals-table tr[data-connector="stripe"] '
        '[data-metric="payments"]\').textContent === String(n)',
        arg=count + 1,
        timeout=15_000,
    )

    # Filters: only US cards went through, all pinned to adyen.
    await page.fill("#filters input[name=country]", "US")
    await page.dispatch_event("#filters input[name=country]", "change")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#approvals-table tbody tr')]"
        ".map(r => r.dataset.connector).join() === 'adyen'",
        timeout=15_000,
    )
    us = await admin_get(gateway, "/admin/analytics/approvals?from=3600s&country=US")
    row = page.locator('#approvals-table tr[data-connector="adyen"]')
    assert await row.locator('[data-metric="payments"]').inner_text() == str(
        us["groups"][0]["payments"]
    )
    assert problems == []


async def test_dashboard_takes_the_key_from_the_url_and_rejects_a_wrong_one(gateway, browser):
    page, problems = await open_page(browser, gateway)
    await page.goto(gateway.url + "/dashboard?key=adm_wrong")
    await page.wait_for_selector("#login-error:has-text('Invalid admin key')", timeout=15_000)
    assert "key=" not in page.url  # the key does not linger in the address bar or history
    assert await page.evaluate("sessionStorage.getItem('paymux.adminKey')") is None
    await page.goto(gateway.url + f"/dashboard?key={ADMIN_KEY}")
    await page.wait_for_function(
        "() => Number(document.body.dataset.loaded || 0) >= 1", timeout=15_000
    )
    assert await page.is_visible("#board") and not await page.is_visible("#login")
    # A 401 on the console is the expected answer to the wrong key; nothing else may fail.
    assert [p for p in problems if "401" not in p] == []


async def test_dashboard_serves_plotly_from_the_package(gateway):
    async with gateway.session.get(gateway.url + "/dashboard/assets/plotly.min.js") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/javascript")
        assert b"plotly" in (await r.read())[:2000].lower()
    async with gateway.session.get(gateway.url + "/dashboard") as r:
        assert r.status == 200
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with gateway.session.get(gateway.url + "/dashboard/assets/..%2fapi.py") as r:
        assert r.status == 404
