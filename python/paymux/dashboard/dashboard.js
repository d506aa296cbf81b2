// paymux dashboard: reads /admin/analytics/* with the admin key and draws it with Plotly.js.
// Everything comes from the gateway itself; data is inserted as text, never as HTML.
"use strict";

(function () {
  const KEY = "paymux.adminKey";
  const REFRESH_MS = 5000;
  const HEALTH_RANGE = "300s";
  const MINOR_UNITS = { JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, BHD: 3, KWD: 3, JOD: 3, OMR: 3, TND: 3, IQD: 3, LYD: 3 };
  const PLOT_CONFIG = { displaylogo: false, displayModeBar: false, responsive: true };
  const PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  const colors = {};
  let timer = null;
  let inFlight = false;

  const $ = (id) => document.getElementById(id);

  function colorOf(name) {
    if (!(name in colors)) colors[name] = PALETTE[Object.keys(colors).length % PALETTE.length];
    return colors[name];
  }

  function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"; }
  function ms(x) { return x === null || x === undefined ? "–" : (x < 10 ? x.toFixed(2) : Math.round(x)) + " ms"; }
  function money(minor, currency) {
    const exp = currency in MINOR_UNITS ? MINOR_UNITS[currency] : 2;
    const major = minor / Math.pow(10, exp);
    return major.toLocaleString("en-US", { minimumFractionDigits: exp, maximumFractionDigits: exp }) + " " + currency;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  // -- key handling ------------------------------------------------------------------------------

  function takeKeyFromUrl() {
    const url = new URL(window.location.href);
    const key = url.searchParams.get("key");
    if (key) {
      sessionStorage.setItem(KEY, key);
      url.searchParams.delete("key");
      window.history.replaceState(null, "", url.pathname + url.search);
    }
  }

  function showLogin(message) {
    stop();
    sessionStorage.removeItem(KEY);
    $("board").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    document.body.dataset.state = "login";
  }

  function showBoard() {
    $("login").hidden = true;
    $("board").hidden = false;
    document.body.dataset.state = "board";
    start();
  }

  // -- data --------------------------------------------------------------------------------------

  function filterParams() {
    const form = new FormData($("filters"));
    const params = new URLSearchParams();
    for (const name of ["country", "brand", "currency"]) {
      const value = String(form.get(name) || "").trim();
      if (value) params.set(name, value);
    }
    return { params, range: Number(form.get("range")) };
  }

  async function api(report, extra) {
    const { params, range } = filterParams();
    if (!("from" in extra)) params.set("from", range + "s");
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    const response = await fetch(`/admin/analytics/${report}?${params}`, {
      headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) },
      cache: "no-store",
    });
    const body = await response.json();
    if (response.status === 401) {
      const err = new Error(body.error.message);
      err.unauthorized = true;
      throw err;
    }
    if (!response.ok) throw new Error(`${report}: ${body.error ? body.error.message : response.status}`);
    return body;
  }

  // Health is "now" and cheap: every tick. The range charts scan more rows the longer the range,
  // so a long range refreshes less often (a week of a busy gateway is a million attempts).
  function chartsEveryMs(range) {
    if (range <= 3600) return REFRESH_MS;
    if (range <= 6 * 3600) return 15000;
    if (range <= 24 * 3600) return 30000;
    return 120000;
  }
  let chartsAt = 0;
  let forceNext = false;

  async function refresh(force) {
    if (inFlight || typeof Plotly === "undefined") {
      forceNext = forceNext || force === true;  // a filter changed mid-refresh: redo on next tick
      return;
    }
    inFlight = true;
    try {
      const { range } = filterParams();
      const charts = force === true || forceNext || Date.now() - chartsAt >= chartsEveryMs(range);
      forceNext = false;
      const health = await api("health", { from: HEALTH_RANGE });
      if (charts) {
        const resolution = String(Math.max(10, Math.round(range / 60)));
        const [approvals, series, declines, failover, latency, fees] = await Promise.all([
          api("approvals", {}),
          api("timeseries", { resolution }),
          api("declines", { top: "8" }),
          api("failover", { top: "10" }),
          api("latency", {}),
          api("fees", {}),
        ]);
        renderApprovals(approvals);
        renderSeries(series);
        renderDeclines(declines);
        renderFailover(failover);
        renderLatency(latency);
        renderFees(fees);
        chartsAt = Date.now();
      }
      renderHealth(health);
      $("error").textContent = "";
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    } catch (err) {
      if (err.unauthorized) showLogin(err.message);
      else $("error").textContent = "Could not refresh: " + err.message;
    } finally {
      inFlight = false;
    }
  }

  function start() {
    stop();
    refresh(true);
    timer = window.setInterval(refresh, REFRESH_MS);
  }

  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  // -- rendering ---------------------------------------------------------------------------------

  function byName(groups) {
    // A fixed order, so live cards and rows do not jump around as the counts change.
    return groups.slice().sort((a, b) => String(a.key.connector).localeCompare(String(b.key.connector)));
  }

  function renderHealth(body) {
    const cards = byName(body.groups).map((g) => {
      const name = g.key.connector;
      const breaker = g.breaker || "closed";
      const metric = (label, key, value) =>
        el("div", { class: "metric" }, el("span", { class: "label" }, label),
          el("span", { class: "value", "data-metric": key }, value));
      return el("article", { class: "card breaker-" + breaker, "data-connector": name },
        el("header", {}, el("h3", {}, name), el("span", { class: "badge", "data-metric": "breaker" }, breaker)),
        metric("approval", "approval_rate", pct(g.approval_rate)),
        metric("errors", "error_rate", pct(g.error_rate)),
        metric("p50", "p50_ms", ms(g.p50_ms)),
        metric("p95", "p95_ms", ms(g.p95_ms)),
        metric("attempts", "attempts", String(g.attempts)));
    });
    $("health").replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "No connectors.")]));
  }

  function renderApprovals(body) {
    const rows = byName(body.groups).map((g) => {
      const volume = Object.entries(g.volume).map(([c, v]) => money(v, c)).join(", ") || "–";
      return el("tr", { "data-connector": g.key.connector },
        el("td", {}, g.key.connector),
        el("td", { "data-metric": "payments" }, String(g.payments)),
        el("td", { "data-metric": "first_attempt_approval_rate" }, pct(g.first_attempt_approval_rate)),
        el("td", { "data-metric": "approval_rate" }, pct(g.approval_rate)),
        el("td", { "data-metric": "attempts" }, String(g.attempts)),
        el("td", { "data-metric": "volume" }, volume));
    });
    $("approvals-table").tBodies[0].replaceChildren(...rows);
  }

  function layout(extra, traces) {
    const base = Object.assign({
      margin: { l: 56, r: 12, t: 30, b: 44 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      hovermode: "closest",
    }, extra);
    if (!traces.length) {
      // Nothing to plot: show the message alone, not a pair of meaningless axes.
      base.xaxis = Object.assign({}, base.xaxis, { visible: false });
      base.yaxis = Object.assign({}, base.yaxis, { visible: false });
    }
    return base;
  }

  function empty(traces, message) {
    return traces.length ? [] : [{ text: message || "no traffic in this range", showarrow: false,
      xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 14, color: "#6b7280" } }];
  }

  function renderSeries(body) {
    const traces = body.series.map((s) => ({
      type: "scatter", mode: "lines+markers", name: s.key.connector,
      x: s.points.map((p) => new Date(p.t * 1000)),
      y: s.points.map((p) => p.approval_rate === null ? null : p.approval_rate * 100),
      customdata: s.points.map((p) => [p.approved, p.attempts]),
      hovertemplate: "%{y:.1f}% (%{customdata[0]}/%{customdata[1]})<extra>%{fullData.name}</extra>",
      line: { color: colorOf(s.key.connector) },
    }));
    const now = Date.now();
    Plotly.react("chart-approval", traces, layout({
      yaxis: { range: [0, 105], ticksuffix: "%", title: { text: "approved attempts" } },
      xaxis: { type: "date", range: [new Date(now - filterParams().range * 1000), new Date(now)] },
      annotations: empty(traces),
    }, traces), PLOT_CONFIG);
  }

  function renderDeclines(body) {
    const codes = body.totals.reasons.map((r) => r.normalized_code + " · " + r.decline_class);
    const traces = body.groups.filter((g) => g.declines > 0).map((g) => {
      const byCode = {};
      for (const r of g.reasons) byCode[r.normalized_code + " · " + r.decline_class] = r;
      return {
        type: "bar", orientation: "h", name: g.key.connector,
        y: codes, x: codes.map((c) => (byCode[c] ? byCode[c].count : 0)),
        text: codes.map((c) => (byCode[c] ? byCode[c].raw_codes.map((r) => r.raw_code).join(", ") : "")),
        hovertemplate: "%{x} declines<br>raw: %{text}<extra>%{fullData.name}</extra>",
        textposition: "none",
        marker: { color: colorOf(g.key.connector) },
      };
    });
    Plotly.react("chart-declines", traces, layout({
      barmode: "stack", margin: { l: 190, r: 12, t: 30, b: 44 },
      yaxis: { autorange: "reversed", automargin: true }, xaxis: { title: { text: "declined attempts" } },
      annotations: empty(traces, "no declines in this range"),
    }, traces), PLOT_CONFIG);
  }

  function renderFailover(body) {
    const t = body.totals;
    $("failover-summary").textContent =
      `${t.cascaded} cascaded · ${t.recovered} recovered (${pct(t.recovery_rate)}) · ` +
      `${t.attempts_per_payment === null ? "–" : t.attempts_per_payment.toFixed(2)} attempts/payment`;
    const paths = body.paths;
    const traces = paths.length ? [
      { type: "bar", name: "triggered", x: paths.map((p) => p.path), y: paths.map((p) => p.triggered), marker: { color: "#94a3b8" } },
      { type: "bar", name: "approved after failover", x: paths.map((p) => p.path), y: paths.map((p) => p.approved), marker: { color: "#16a34a" } },
    ] : [];
    Plotly.react("chart-failover", traces, layout({
      barmode: "group", yaxis: { title: { text: "payments" } },
      annotations: empty(traces, "no failovers in this range"),
    }, traces), PLOT_CONFIG);
  }

  function renderLatency(body) {
    const names = body.groups.map((g) => g.key.connector);
    const trace = (label, key, color) => ({
      type: "bar", name: label, x: names, y: body.groups.map((g) => g[key]), marker: { color },
      hovertemplate: "%{y:.1f} ms<extra>" + label + "</extra>",
    });
    const traces = names.length
      ? [trace("p50", "p50_ms", "#93c5fd"), trace("p95", "p95_ms", "#3b82f6"), trace("p99", "p99_ms", "#1e3a8a")]
      : [];
    Plotly.react("chart-latency", traces, layout({
      barmode: "group", yaxis: { title: { text: "ms" } }, annotations: empty(traces),
    }, traces), PLOT_CONFIG);
  }

  function renderFees(body) {
    const byCurrency = {};
    for (const g of body.groups) {
      if (g.approved === 0 && g.fees === 0) continue;
      (byCurrency[g.currency] = byCurrency[g.currency] || []).push(g);
    }
    const traces = Object.entries(byCurrency).map(([currency, groups]) => {
      const exp = currency in MINOR_UNITS ? MINOR_UNITS[currency] : 2;
      return {
        type: "bar", name: currency, x: groups.map((g) => g.key.connector),
        y: groups.map((g) => g.cost_per_approved === null ? null : g.cost_per_approved / Math.pow(10, exp)),
        customdata: groups.map((g) => money(g.fees, currency)),
        hovertemplate: "%{y} " + currency + " per approved<br>total %{customdata}<extra></extra>",
      };
    });
    const priced = body.groups.some((g) => g.attempts_priced > 0);
    const shown = priced ? traces : [];
    Plotly.react("chart-fees", shown, layout({
      barmode: "group", yaxis: { title: { text: "cost per approved payment" } },
      annotations: empty(shown, "no fee tables configured for these PSPs"),
    }, shown), PLOT_CONFIG);
  }

  // -- wiring ------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    takeKeyFromUrl();
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("admin-key").value.trim());
      $("admin-key").value = "";
      showBoard();
    });
    $("logout").addEventListener("click", () => showLogin(""));
    $("filters").addEventListener("change", () => refresh(true));
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(true); });
    if (sessionStorage.getItem(KEY)) showBoard();
    else showLogin("");
  });
})();
