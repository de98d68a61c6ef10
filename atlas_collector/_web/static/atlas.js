// The Atlas UI's script: static/js/*.js joined into one file by atlas_collector/_web/_bundle.py (see there).
// Generated: edit the modules under static/js/ and run `python -m atlas_collector._web._assets`.
(() => {
  "use strict";
  const factories = Object.create(null);
  const cache = Object.create(null);
  // A module's body runs once, on its first require. Its exports object is cached before the body runs: in a
  // cycle of imports, the module that closes it gets the exports of the one still running, as modules do.
  function __require(name) {
    if (name in cache) return cache[name];
    const exports = (cache[name] = Object.create(null));
    factories[name](__require, __import, exports);
    return exports;
  }
  // import(): the module, later (a dynamic import always settles asynchronously).
  function __import(name) {
    return Promise.resolve().then(() => __require(name));
  }
// ---- agent.js
factories['agent'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  agentPanel: { get: () => agentPanel, enumerable: true },
});
// The agent side panel: ask a question about the run; the answer streams in (POST /api/runs/{id}/ask, SSE).
const { postStream } = __require('api');
const { h } = __require('dom');

function agentPanel(base) {
  const log = h("div", { class: "agent-log" }, h("div", { class: "muted small" }, "Ask about this run: why the loss plateaued, what to change, which layer is dead…"));
  const input = h("textarea", { class: "input agent-input", rows: "3", placeholder: "Why did validation loss go up after epoch 3?", "aria-label": "question" });
  let controller = null;
  const send = h("button", { class: "btn primary", type: "submit" }, "Ask");
  const form = h("form", { class: "agent-form", onsubmit: (ev) => { ev.preventDefault(); ask(); } }, input, send);
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.metaKey || ev.ctrlKey)) { ev.preventDefault(); ask(); } });
  const el = h("aside", { class: "agent", hidden: true }, h("div", { class: "agent-head" }, h("h3", null, "Ask Atlas"), h("button", { class: "btn ghost small", type: "button", onclick: () => { el.hidden = true; } }, "×")), log, form);

  async function ask() {
    const question = input.value.trim();
    if (!question || controller) return;
    input.value = "";
    log.appendChild(h("div", { class: "msg user" }, question));
    const answer = h("div", { class: "msg bot" });
    const tools = h("div", { class: "agent-tools small muted" });
    log.append(tools, answer);
    controller = new AbortController();
    send.disabled = true;
    try {
      await postStream(`${base}/ask`, { question }, (event, data) => {
        const text = typeof data === "string" ? data : data && (data.text ?? data.token ?? data.message ?? data.error ?? "");
        if (event === "token") answer.appendChild(document.createTextNode(text));
        else if (event === "tool") tools.appendChild(h("div", null, `⚙ ${typeof data === "string" ? data : data.name || data.tool || JSON.stringify(data)}`));
        else if (event === "error") {
          answer.appendChild(h("div", { class: "form-error" }, text));
          if (data && data.fallback) answer.append(h("div", { class: "muted small fallback-label" }, "Atlas's own diagnosis:"), h("div", { class: "fallback" }, data.fallback));
        }
        log.scrollTop = log.scrollHeight;
      }, controller.signal);
    } catch (err) {
      answer.appendChild(h("div", { class: "form-error" }, err.message));
      // without an LLM the collector still answers with Atlas's own diagnosis
      if (err.body && err.body.fallback) answer.append(h("div", { class: "muted small fallback-label" }, "Atlas's own diagnosis:"), h("div", { class: "fallback" }, err.body.fallback));
    } finally {
      controller = null;
      send.disabled = false;
    }
  }
  return {
    el,
    toggle() { el.hidden = !el.hidden; if (!el.hidden) input.focus(); },
    close() { if (controller) controller.abort(); },
  };
}
};
// ---- api.js
factories['api'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  ApiError: { get: () => ApiError, enumerable: true },
  cookie: { get: () => cookie, enumerable: true },
  url: { get: () => url, enumerable: true },
  get: { get: () => get, enumerable: true },
  post: { get: () => post, enumerable: true },
  postStream: { get: () => postStream, enumerable: true },
  subscribe: { get: () => subscribe, enumerable: true },
  stepRequest: { get: () => stepRequest, enumerable: true },
});
// Talking to the collector's JSON API. A 401 sends the page to the login form; POSTs carry the CSRF header.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

async function handle(resp) {
  if (resp.status === 401 && !location.pathname.startsWith("/login")) {
    const next = location.pathname + location.search;
    history.pushState({}, "", "/login?next=" + encodeURIComponent(next));
    window.dispatchEvent(new PopStateEvent("popstate"));
    throw new ApiError(401, "login required");
  }
  let body = null;
  const text = await resp.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!resp.ok) {
    const err = new ApiError(resp.status, (body && body.error) || `${resp.status} ${resp.statusText}`);
    err.body = body;
    throw err;
  }
  return body;
}

// A GET of the JSON API. The first requests of a run page were sent by early.js before this script ran: the first
// get() of one of those URLs takes its answer; any later one asks again.
async function get(path, params, opts = {}) {
  const target = url(path, params);
  const early = window.__atlas.early.get(target);
  if (early) {
    window.__atlas.early.delete(target);
    return handle(await early);
  }
  const resp = await fetch(target, { credentials: "same-origin", headers: { Accept: "application/json" }, signal: opts.signal });
  return handle(resp);
}

async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-Atlas-CSRF": cookie("atlas_csrf") },
    body: JSON.stringify(body || {}),
  });
  return handle(resp);
}

// A POST whose answer is a server-sent-event stream (the agent): calls onEvent(name, data) per event.
async function postStream(path, body, onEvent, signal) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-Atlas-CSRF": cookie("atlas_csrf") },
    body: JSON.stringify(body || {}),
    signal,
  });
  if (!resp.ok || !resp.body) return handle(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const chunk = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of chunk.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      let parsed = data.join("\n");
      try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
      onEvent(event, parsed);
    }
  }
}

// An EventSource that reconnects (the browser does) and reports its state on the live dot.
function subscribe(path, handlers) {
  const es = new EventSource(path, { withCredentials: true });
  const dot = document.getElementById("live-dot");
  es.onopen = () => dot && dot.classList.add("on");
  es.onerror = () => dot && dot.classList.remove("on");
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (ev) => {
      let data = ev.data;
      try { data = JSON.parse(ev.data); } catch { /* plain text */ }
      fn(data);
    });
  }
  return () => { es.close(); dot && dot.classList.remove("on"); };
}

// The run page's step requests (the loss; the other step series, as series.js's OTHER_SERIES), sized by early.js.
function stepRequest(id, kind, from, to) {
  return get(`/api/runs/${encodeURIComponent(id)}/steps`, { ...window.__atlas.stepParams(kind), from, to });
}
};
// ---- chart.js
factories['chart'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  COLORS: { get: () => COLORS, enumerable: true },
  registry: { get: () => registry, enumerable: true },
  alpha: { get: () => alpha, enumerable: true },
  smooth: { get: () => smooth, enumerable: true },
  lineChart: { get: () => lineChart, enumerable: true },
  emptyChart: { get: () => emptyChart, enumerable: true },
});
// Line charts on uPlot: dark axes, legends, a min/max band for downsampled data, issue markers, drag to zoom
// (the page re-fetches full resolution for the visible range), double-click to reset.
// Every chart is registered on window.__atlas.charts[id] so tests and the benchmark can read what it holds.
const { h } = __require('dom');
const { num } = __require('fmt');

const COLORS = ["#5b9cf6", "#f2a23a", "#4cc38a", "#b07cf7", "#f0616d", "#3fc1c9", "#e5c15b", "#ef7fbf", "#8fa3bf", "#a3d16b"];
const SEV_COLOR = { critical: "#f0616d", warning: "#f2a23a", info: "#5b9cf6" };

window.__atlas = window.__atlas || { charts: {} };
const registry = window.__atlas.charts;

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

// TensorBoard's debiased exponential moving average; the weight follows the point count.
function smooth(y, weight) {
  const w = weight ?? Math.min(0.9, Math.max(0.6, 1 - 10 / Math.max(1, y.length)));
  const out = new Array(y.length);
  let last = 0, n = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (v === null || v === undefined || !Number.isFinite(v)) { out[i] = null; continue; }
    last = last * w + (1 - w) * v;
    n++;
    out[i] = last / (1 - Math.pow(w, n));
  }
  return out;
}

// Tick labels with as many decimals as the tick spacing needs (544.8, 545.0, 545.2 — not 545, 545, 545).
function tickLabels(vals, incr) {
  const big = vals.reduce((m, v) => Math.max(m, Math.abs(v ?? 0)), 0);
  if (big >= 1e6 || (big > 0 && big < 1e-3)) return vals.map((v) => (v === null ? "" : v === 0 ? "0" : v.toExponential(Math.max(0, Math.min(3, Math.ceil(-Math.log10(incr / big) - 1))))));
  const decimals = incr > 0 ? Math.max(0, Math.min(8, Math.ceil(-Math.log10(incr) - 1e-9))) : 0;
  // one formatter for the axis (toLocaleString with options builds a new one per number: slow over 11 charts)
  const format = new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  return vals.map((v) => (v === null ? "" : format.format(v)));
}

const AXIS = { stroke: "#8b93a3", grid: { stroke: "rgba(140,150,170,0.12)", width: 1 }, ticks: { stroke: "rgba(140,150,170,0.2)", width: 1, size: 4 }, font: "11px ui-sans-serif, system-ui, sans-serif", labelFont: "11px ui-sans-serif, system-ui, sans-serif" };

function markersPlugin(chart) {
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        const { top, height, left, width } = u.bbox;
        const dpr = window.devicePixelRatio || 1;
        ctx.save();
        for (const m of chart.markers) {
          const x = u.valToPos(m.x, "x", true);
          if (!(x >= left - 1 && x <= left + width + 1)) continue;
          const color = SEV_COLOR[m.severity] || SEV_COLOR.info;
          ctx.strokeStyle = alpha(color, 0.8);
          ctx.lineWidth = dpr;
          ctx.setLineDash([4 * dpr, 3 * dpr]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = color;
          ctx.beginPath();
          ctx.moveTo(x - 5 * dpr, top);
          ctx.lineTo(x + 5 * dpr, top);
          ctx.lineTo(x, top + 7 * dpr);
          ctx.closePath();
          ctx.fill();
        }
        // steps whose value was NaN or Inf: red ticks along the bottom (the line has a gap there)
        ctx.fillStyle = SEV_COLOR.critical;
        for (const step of chart.nonfinite || []) {
          const x = u.valToPos(step, "x", true);
          if (x >= left && x <= left + width) ctx.fillRect(x - dpr, top + height - 8 * dpr, 2 * dpr, 8 * dpr);
        }
        ctx.restore();
        // hover targets with the issue's title (set as an attribute: text, never HTML)
        for (const el of chart.markerEls) el.remove();
        chart.markerEls = [];
        for (const m of chart.markers) {
          const x = u.valToPos(m.x, "x");
          if (!(x >= 0 && x <= u.bbox.width / dpr)) continue;  // the plot's CSS width (clientWidth would force a layout)
          const el = h("div", { class: `marker-hit sev-${m.severity || "info"}`, title: m.label });
          el.style.left = `${x - 6}px`;
          u.over.appendChild(el);
          chart.markerEls.push(el);
        }
      }],
    },
  };
}

// spec: {id, title, xLabel, yLabel, series: [{label, color, width, dash, fill, legend:false}], bands, data,
//        markers, height, onZoom(min, max), onReset(), sync, xInt}
function lineChart(spec) {
  const body = h("div", { class: "chart-body" });
  const legendNote = spec.note ? h("span", { class: "chart-note" }, spec.note) : null;
  const logBtn = spec.logToggle ? h("button", { class: `btn ghost tiny${spec.logY ? " on" : ""}`, title: "logarithmic y axis", onclick: () => {
    spec.logY = !spec.logY;
    logBtn.classList.toggle("on", spec.logY);
    if (chart.u) { chart.u.destroy(); chart.u = null; build(Math.floor(body.clientWidth)); }
  } }, "log") : null;
  const el = h("section", { class: "card chart-card", dataset: { chart: spec.id } },
    h("div", { class: "chart-head" }, h("h3", { class: "card-title" }, spec.title), h("span", { class: "chart-tools" }, legendNote, logBtn)), body);
  const chart = { el, u: null, spec, markers: spec.markers || [], nonfinite: spec.nonfinite || [], markerEls: [], suppress: false, data: spec.data };
  registry[spec.id] = chart;

  const build = (width) => {
    const series = [{ label: spec.xLabel || "step", value: (u, v) => (v === null || v === undefined ? "—" : num(v)) }];
    for (const s of spec.series) {
      series.push({
        label: s.label,
        stroke: s.color,
        width: s.width ?? 1.5,
        dash: s.dash,
        fill: s.fill,
        spanGaps: true,
        points: { show: s.points ?? false, size: 5, fill: s.color },
        value: (u, v) => (v === null || v === undefined ? "—" : num(v)),
      });
    }
    const opts = {
      width,
      height: spec.height || 200,
      series,
      bands: spec.bands,
      legend: { live: true },
      cursor: {
        sync: spec.sync ? { key: spec.sync } : undefined,
        drag: { x: true, y: false, setScale: true },
        points: { size: 6 },
        bind: spec.onReset ? { dblclick: () => () => { spec.onReset(); return null; } } : undefined,
      },
      scales: { x: { time: false }, y: { distr: spec.logY ? 3 : 1 } },
      axes: [
        { ...AXIS, label: spec.xLabel || "step", labelSize: 16, size: 34, values: (u, vals, axis, space, incr) => (spec.xInt ? vals.map((v) => (Number.isInteger(v) ? num(v) : "")) : tickLabels(vals, incr)) },
        { ...AXIS, label: spec.yLabel || "", labelSize: spec.yLabel ? 16 : 0, size: 56, values: (u, vals, axis, space, incr) => tickLabels(vals, incr) },
      ],
      plugins: [markersPlugin(chart)],
      hooks: {
        // when the chart first painted (performance.now(), from navigation start): the load benchmark reads it
        ready: [() => { chart.readyAt = performance.now(); }],
        // a drag-selection by the user (not a scale change made by setData or another chart)
        setSelect: [(u) => {
          if (!spec.onZoom || u.select.width < 2) return;
          const min = u.posToVal(u.select.left, "x"), max = u.posToVal(u.select.left + u.select.width, "x");
          spec.onZoom(min, max);
        }],
      },
    };
    chart.u = new window.uPlot(opts, chart.data, body);
    // min/max band series carry no legend entry of their own
    spec.series.forEach((s, i) => {
      if (s.legend === false) {
        const row = chart.u.root.querySelectorAll(".u-legend .u-series")[i + 1];
        if (row) row.classList.add("legend-hidden");
      }
    });
  };

  const ro = new ResizeObserver(() => {
    const width = Math.floor(body.clientWidth);
    if (width <= 0) return;
    if (!chart.u) build(width);
    else if (Math.abs(chart.u.width - width) > 1) chart.u.setSize({ width, height: spec.height || 200 });
  });
  ro.observe(body);
  chart.destroy = () => {
    ro.disconnect();
    if (chart.u) { chart.u.destroy(); chart.u = null; }
    if (registry[spec.id] === chart) delete registry[spec.id];
  };
  chart.setData = (data, keepScale = false) => {
    chart.data = data;
    if (!chart.u) return;
    chart.suppress = true;
    try { chart.u.setData(data, !keepScale); } finally { chart.suppress = false; }
  };
  chart.setXRange = (min, max) => {
    if (!chart.u) return;
    chart.suppress = true;
    try { chart.u.setScale("x", { min, max }); } finally { chart.suppress = false; }
  };
  chart.setNote = (text) => { if (legendNote) legendNote.textContent = text; };
  chart.setNonfinite = (steps) => { chart.nonfinite = steps || []; };
  chart.setMarkers = (markers) => { chart.markers = markers; chart.u && chart.u.redraw(false); };
  return chart;
}

function emptyChart(title, text) {
  return h("section", { class: "card chart-card" }, h("div", { class: "chart-head" }, h("h3", { class: "card-title" }, title)), h("div", { class: "chart-empty" }, text));
}
};
// ---- compare.js
factories['compare'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  render: { get: () => render, enumerable: true },
});
// Compare: two or more runs overlaid (step loss, per-epoch metrics), hyperparameters side by side with differences marked.
const { get } = __require('api');
const { card, h, link, replace } = __require('dom');
const { COLORS, emptyChart, lineChart, smooth } = __require('chart');
const { duration, int, mass, num, runDuration, shortId } = __require('fmt');
const { col, hasValues, metricKeys, stepColumns } = __require('series');
const { errorBox, gradePill, healthPill, statusBadge } = __require('widgets');

async function render(app, { runs }) {
  document.title = "Compare · Atlas";
  if (runs.length < 2) {
    replace(app, h("div", { class: "page-head" }, h("h1", null, "Compare")),
      h("div", { class: "empty big" }, "Pick two or more runs in the ", link("/", "runs list"), " and press Compare."));
    return null;
  }
  replace(app, h("div", { class: "loading" }, "Loading runs…"));
  const cmp = await get("/api/compare", { runs: runs.join(",") });
  const details = cmp.runs || [];
  const ids = details.map((r) => r.id);
  const [steps, epochs] = await Promise.all([
    Promise.all(ids.map((id) => get(`/api/runs/${encodeURIComponent(id)}/steps`, { series: "loss", points: 1000 }).then(stepColumns).catch(() => ({ x: [] })))),
    Promise.all(ids.map((id) => get(`/api/runs/${encodeURIComponent(id)}/epochs`).then((b) => b.epochs || []).catch(() => []))),
  ]);
  const charts = [];
  const label = (r) => r.name || shortId(r.id);
  const colorOf = (i) => COLORS[i % COLORS.length];

  const legend = h("div", { class: "compare-legend" }, details.map((r, i) => h("span", { class: "legend-item" }, h("span", { class: `swatch c${i % COLORS.length}` }), link(`/runs/${encodeURIComponent(r.id)}`, label(r)))));

  // runs summary
  const summary = card("Runs", h("table", { class: "grid" },
    h("thead", null, h("tr", null, ["", "Run", "Status", "Health", "Green", "Epochs", "Duration", "Best val loss", "CO₂"].map((t) => h("th", null, t)))),
    h("tbody", null, details.map((r, i) => {
      const rows = epochs[i];
      const vl = col(rows, "val_loss").filter((v) => v !== null);
      return h("tr", null, h("td", null, h("span", { class: `swatch c${i % COLORS.length}` })), h("td", null, link(`/runs/${encodeURIComponent(r.id)}`, label(r))), h("td", null, statusBadge(r.status)),
        h("td", null, healthPill(r.health ?? r.health_score)), h("td", null, gradePill(r.grade)), h("td", { class: "num" }, int(r.epochs ?? rows.length)),
        h("td", { class: "num" }, duration(runDuration(r))), h("td", { class: "num" }, vl.length ? num(Math.min(...vl)) : "—"),
        h("td", { class: "num" }, mass(rows.length ? rows[rows.length - 1].cumulative_co2_kg : null)));
    }))));

  // overlay on a common x: union of steps / epochs
  const overlay = (xsList, ysList) => {
    const xs = [...new Set(xsList.flat())].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const cols = ysList.map((ys, k) => { const out = new Array(xs.length).fill(null); xsList[k].forEach((x, j) => { out[index.get(x)] = ys[j]; }); return out; });
    return [xs, ...cols];
  };
  const grid = h("div", { class: "chart-grid" });
  const lossRuns = steps.map((s, i) => [s, i]).filter(([s]) => s.loss && hasValues(s.loss.y));
  if (lossRuns.length) {
    const c = lineChart({ id: "compare_loss", title: "Training loss (smoothed)", xLabel: "step", yLabel: "loss", height: 260,
      series: lossRuns.map(([, i]) => ({ label: label(details[i]), color: colorOf(i), width: 2 })),
      data: overlay(lossRuns.map(([s]) => s.x), lossRuns.map(([s]) => smooth(s.loss.y))) });
    c.el.classList.add("wide");
    charts.push(c); grid.appendChild(c.el);
  } else grid.appendChild(emptyChart("Training loss", "No step losses in these runs."));
  const keys = [...new Set(epochs.flatMap((rows) => metricKeys(rows)))];
  for (const key of ["loss_mean", ...keys]) {
    const present = epochs.map((rows, i) => [rows, i]).filter(([rows]) => hasValues(col(rows, key)));
    if (!present.length) continue;
    const c = lineChart({ id: `compare_${key}`, title: key === "loss_mean" ? "Train loss per epoch" : key, xLabel: "epoch", yLabel: key, xInt: true, height: 200,
      series: present.map(([, i]) => ({ label: label(details[i]), color: colorOf(i), width: 2, points: true })),
      data: overlay(present.map(([rows]) => rows.map((r) => r.epoch)), present.map(([rows]) => col(rows, key))) });
    charts.push(c); grid.appendChild(c.el);
  }

  // hyperparameters: union of keys, differing rows highlighted
  const hp = details.map((r) => r.hyperparameters || {});
  const hkeys = [...new Set(hp.flatMap((x) => Object.keys(x)))].sort();
  const serverDiff = cmp.hyperparameter_diff && typeof cmp.hyperparameter_diff === "object" ? new Set(Object.keys(cmp.hyperparameter_diff)) : null;
  const differs = (k) => (serverDiff ? serverDiff.has(k) : new Set(hp.map((x) => JSON.stringify(x[k] ?? null))).size > 1);
  const onlyDiff = h("input", { type: "checkbox", id: "only-diff", onchange: () => drawHp() });
  const hpBox = h("div", { class: "table-box" });
  const drawHp = () => {
    const keysShown = hkeys.filter((k) => !onlyDiff.checked || differs(k));
    replace(hpBox, keysShown.length ? h("table", { class: "grid hp" },
      h("thead", null, h("tr", null, h("th", null, "Hyperparameter"), details.map((r, i) => h("th", null, h("span", { class: `swatch c${i % COLORS.length}` }), label(r))))),
      h("tbody", null, keysShown.map((k) => h("tr", { class: differs(k) ? "diff" : null }, h("th", { class: "mono" }, k),
        hp.map((x) => h("td", { class: "mono" }, x[k] === undefined ? "—" : typeof x[k] === "object" ? JSON.stringify(x[k]) : String(x[k]))))))) : h("div", { class: "empty" }, "No hyperparameters recorded."));
  };
  drawHp();
  const ndiff = hkeys.filter(differs).length;

  replace(app,
    h("div", { class: "page-head" }, h("h1", null, `Compare ${details.length} runs`), legend),
    summary,
    h("div", { class: "section-head" }, h("h2", null, "Curves")), grid,
    card(`Hyperparameters — ${ndiff} differ${ndiff === 1 ? "s" : ""}`, h("label", { class: "small muted check" }, onlyDiff, " only differences"), hpBox));
  return () => { for (const c of charts) c.destroy(); };
}
};
// ---- dom.js
factories['dom'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  h: { get: () => h, enumerable: true },
  append: { get: () => append, enumerable: true },
  clear: { get: () => clear, enumerable: true },
  replace: { get: () => replace, enumerable: true },
  link: { get: () => link, enumerable: true },
  table: { get: () => table, enumerable: true },
  tableRow: { get: () => tableRow, enumerable: true },
  kv: { get: () => kv, enumerable: true },
  valueText: { get: () => valueText, enumerable: true },
  card: { get: () => card, enumerable: true },
});
// Building DOM nodes. Every string becomes a text node: nothing here ever parses HTML, so a run named
// `<img src=x onerror=alert(1)>` shows as those characters.

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "value") el.value = value;
      else if (key === "checked" || key === "disabled" || key === "hidden" || key === "selected") el[key] = !!value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// A link that the router follows without reloading the page.
function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

function table(columns, rows, opts = {}) {
  // columns: [{key, label, render?(row) -> node|string, cls?, sort?}]
  const thead = h("thead", null, h("tr", null, columns.map((c) => {
    const th = h("th", { class: [c.cls, c.sort ? "sortable" : null].filter(Boolean).join(" ") || null }, c.label);
    if (c.sort && opts.onSort) {
      th.addEventListener("click", () => opts.onSort(c.sort));
      if (opts.sort === c.sort) th.append(h("span", { class: "sort-ind" }, opts.order === "asc" ? " ▲" : " ▼"));
    }
    return th;
  })));
  const tbody = h("tbody");
  for (const row of rows) tbody.appendChild(tableRow(columns, row, opts));
  return h("table", { class: opts.cls || "grid" }, thead, tbody);
}

function tableRow(columns, row, opts = {}) {
  const tr = h("tr", opts.rowAttrs ? opts.rowAttrs(row) : null);
  for (const c of columns) {
    const v = c.render ? c.render(row) : row[c.key];
    tr.appendChild(h("td", { class: c.cls || null }, v === undefined || v === null ? "—" : v));
  }
  return tr;
}

function kv(obj, opts = {}) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("div", { class: "empty" }, opts.empty || "none");
  return h("table", { class: "kv" }, h("tbody", null, entries.map(([k, v]) => h("tr", { class: opts.highlight && opts.highlight.has(k) ? "diff" : null },
    h("th", null, k), h("td", null, valueText(v))))));
}

function valueText(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h3", { class: "card-title" }, title) : null, ...body);
}
};
// ---- fmt.js
factories['fmt'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  num: { get: () => num, enumerable: true },
  int: { get: () => int, enumerable: true },
  mass: { get: () => mass, enumerable: true },
  energy: { get: () => energy, enumerable: true },
  euro: { get: () => euro, enumerable: true },
  equivalent: { get: () => equivalent, enumerable: true },
  duration: { get: () => duration, enumerable: true },
  when: { get: () => when, enumerable: true },
  runDuration: { get: () => runDuration, enumerable: true },
  shortId: { get: () => shortId, enumerable: true },
});
// Number, time and unit formatting shared by the pages.

function num(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return Number(v.toPrecision(digits)).toString();
}

function int(v) {
  return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US");
}

function mass(kg) {
  if (typeof kg !== "number" || !Number.isFinite(kg)) return "—";
  if (kg >= 1) return `${num(kg, 3)} kg`;
  if (kg >= 1e-3) return `${num(kg * 1e3, 3)} g`;
  return `${num(kg * 1e6, 3)} mg`;
}

function energy(kwh) {
  if (typeof kwh !== "number" || !Number.isFinite(kwh)) return "—";
  if (kwh >= 1) return `${num(kwh, 3)} kWh`;
  return `${num(kwh * 1e3, 3)} Wh`;
}

function euro(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  return v > 0 && v < 0.01 ? "< €0.01" : `€${v.toFixed(2)}`;
}

// A CO₂ equivalent in a unit a person can picture (the CLI's `atlas green` names the same four).
function equivalent(key, v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return ["", "—"];
  if (key === "km_driven_by_car") {
    const text = v >= 1 ? `${num(v, 3)} km` : v >= 1e-3 ? `${num(v * 1e3, 3)} m` : `${num(v * 1e5, 3)} cm`;
    return ["driving a car", text];
  }
  if (key === "litres_of_gasoline") {
    const text = v >= 1 ? `${num(v, 3)} L` : v >= 1e-3 ? `${num(v * 1e3, 3)} mL` : `${num(v * 1e6, 3)} µL`;
    return ["burning gasoline", text];
  }
  if (key === "smartphone_charges") {
    return ["charging a phone", v >= 1 ? `${num(v, 3)} charges` : `${num(v * 100, 3)} % of a charge`];
  }
  if (key === "tree_seedlings_grown_10_years") {
    const days = v * 3652.5;  // one seedling's ten years of growth, in seedling-days
    const text = days >= 1 ? `${num(days, 3)} days` : days * 24 >= 1 ? `${num(days * 24, 3)} hours`
      : days * 1440 >= 1 ? `${num(days * 1440, 3)} minutes` : `${num(days * 86400, 3)} seconds`;
    return ["what a tree seedling absorbs in", text];
  }
  return [key.replace(/_/g, " "), num(v, 3)];
}

function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${seconds < 10 ? seconds.toFixed(1) : s}s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return `${d}d ${h % 24}h`;
  if (h) return `${h}h ${m % 60}m`;
  return `${m}m ${s % 60}s`;
}

function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const ago = (Date.now() - t.getTime()) / 1000;
  if (ago >= 0 && ago < 60) return "just now";
  if (ago >= 0 && ago < 3600) return `${Math.floor(ago / 60)} min ago`;
  if (ago >= 0 && ago < 86400) return `${Math.floor(ago / 3600)} h ago`;
  return t.toISOString().slice(0, 16).replace("T", " ");
}

function runDuration(run) {
  if (typeof run.duration_seconds === "number") return run.duration_seconds;
  if (!run.started_at) return null;
  const end = run.ended_at ? new Date(run.ended_at) : new Date();
  return (end - new Date(run.started_at)) / 1000;
}

function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}
};
// ---- heatmap.js
factories['heatmap'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  heatmap: { get: () => heatmap, enumerable: true },
});
// The layer-health heatmap on a canvas: layers down, sampled steps or epochs across, value as colour.
const { h } = __require('dom');
const { num } = __require('fmt');

// viridis, 9 stops
const STOPS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];

function color(t) {
  if (!Number.isFinite(t)) return "#2a2f3a";
  t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.floor(t), f = t - i, a = STOPS[i], b = STOPS[Math.min(i + 1, STOPS.length - 1)];
  return `rgb(${Math.round(a[0] + (b[0] - a[0]) * f)},${Math.round(a[1] + (b[1] - a[1]) * f)},${Math.round(a[2] + (b[2] - a[2]) * f)})`;
}

function heatmap(data, opts = {}) {
  const layers = data.layers || [], xs = data.x || [], z = data.z || [];
  const canvas = h("canvas", { class: "heatmap", role: "img", "aria-label": `layer heatmap of ${opts.metric || "metric"}` });
  const tip = h("div", { class: "heat-tip", hidden: true });
  const legend = h("div", { class: "heat-legend" });
  const wrap = h("div", { class: "heatmap-wrap" }, canvas, tip, legend);
  const tf = (v) => (opts.log ? (v > 0 ? Math.log10(v) : NaN) : v);
  let lo = Infinity, hi = -Infinity;
  for (const row of z) for (const v of row || []) { const t = tf(v); if (v !== null && Number.isFinite(t)) { lo = Math.min(lo, t); hi = Math.max(hi, t); } }
  if (lo === Infinity) { lo = 0; hi = 1; }
  if (hi === lo) hi = lo + 1;
  const labelW = Math.min(220, 12 + 7 * Math.max(4, ...layers.map((l) => String(l).length)));
  const cellH = Math.max(12, Math.min(26, Math.floor(420 / Math.max(1, layers.length))));
  const geom = { labelW, cellH, top: 6, bottom: 26 };

  const draw = () => {
    const width = Math.max(300, wrap.clientWidth || 800);
    const height = geom.top + cellH * layers.length + geom.bottom;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr; canvas.height = height * dpr;
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, width, height);
    const plotW = width - labelW - 8;
    const cellW = plotW / Math.max(1, xs.length);
    geom.cellW = cellW;
    ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, monospace";
    ctx.textBaseline = "middle";
    layers.forEach((name, i) => {
      const y = geom.top + i * cellH;
      ctx.fillStyle = "#aab2c0";
      ctx.textAlign = "right";
      const label = String(name);
      ctx.fillText(label.length > 30 ? "…" + label.slice(-29) : label, labelW - 8, y + cellH / 2);
      const row = z[i] || [];
      for (let j = 0; j < xs.length; j++) {
        const v = row[j];
        ctx.fillStyle = v === null || v === undefined ? "#222733" : color((tf(v) - lo) / (hi - lo));
        ctx.fillRect(labelW + j * cellW, y, Math.ceil(cellW), cellH - 1);
      }
    });
    ctx.fillStyle = "#8b93a3";
    ctx.textAlign = "center";
    const every = Math.max(1, Math.ceil(xs.length / Math.max(1, Math.floor(plotW / 60))));
    for (let j = 0; j < xs.length; j += every) ctx.fillText(String(xs[j]), labelW + (j + 0.5) * cellW, geom.top + cellH * layers.length + 13);
  };
  canvas.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect();
    const j = Math.floor((ev.clientX - r.left - geom.labelW) / geom.cellW), i = Math.floor((ev.clientY - r.top - geom.top) / geom.cellH);
    if (i < 0 || i >= layers.length || j < 0 || j >= xs.length) { tip.hidden = true; return; }
    const v = (z[i] || [])[j];
    tip.textContent = `${layers[i]} · ${data.x_label || "x"} ${xs[j]} · ${opts.metric || "value"} ${v === null || v === undefined ? "—" : num(v)}`;
    tip.style.left = `${ev.clientX - r.left + 12}px`;
    tip.style.top = `${ev.clientY - r.top + 12}px`;
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  const low = opts.log ? `1e${num(lo, 2)}` : num(lo), high = opts.log ? `1e${num(hi, 2)}` : num(hi);
  legend.append(h("span", null, low), h("span", { class: "heat-scale" }), h("span", null, high), opts.log ? h("span", { class: "muted" }, " (log scale)") : null);
  const ro = new ResizeObserver(() => draw());
  ro.observe(wrap);
  window.__atlas.heatmap = { layers, x: xs, z };
  return wrap;
}
};
// ---- login.js
factories['login'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  render: { get: () => render, enumerable: true },
});
// The token form, shown when the collector has a token and the browser has no session yet.
const { post } = __require('api');
const { h, replace } = __require('dom');

async function render(app, { next }) {
  document.title = "Sign in · Atlas";
  const token = h("input", { class: "input", type: "password", name: "token", id: "token", autocomplete: "current-password", placeholder: "collector token", required: true, autofocus: true });
  const error = h("div", { class: "form-error", role: "alert" });
  const button = h("button", { class: "btn primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "login-form", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await post("/api/login", { token: token.value });
      const target = next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/";
      window.__atlas.navigate(target);
    } catch (err) {
      error.textContent = err.status === 401 ? "That token is not the collector's token." : err.message;
      button.disabled = false;
      token.select();
    }
  } },
  h("div", { class: "login-mark" }), h("h1", null, "Atlas"), h("p", { class: "muted" }, "This collector needs its token (the one given to atlas-collector --token or ATLAS_TOKEN)."),
  h("label", { for: "token" }, "Token"), token, error, button);
  replace(app, h("div", { class: "login-page" }, form));
  token.focus();
  return null;
}
};
// ---- main.js
factories['main'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  navigate: { get: () => navigate, enumerable: true },
});
// The page's router: one index.html for every path; each page module renders into #app and returns a cleanup.
const { get } = __require('api');
const { clear, replace } = __require('dom');
const { errorBox } = __require('widgets');

const routes = [
  [/^\/$/, () => __import('runs'), () => ({})],
  [/^\/runs\/([^/]+)\/?$/, () => __import('run'), (m) => ({ id: decodeURIComponent(m[1]) })],
  [/^\/compare\/?$/, () => __import('compare'), () => ({ runs: (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean) })],
  [/^\/projects\/([^/]+)\/?$/, () => __import('project'), (m) => ({ name: decodeURIComponent(m[1]) })],
  [/^\/login\/?$/, () => __import('login'), () => ({ next: new URLSearchParams(location.search).get("next") || "/" })],
];

let cleanup = null;
let seq = 0;

function navigate(path) {
  history.pushState({}, "", path);
  render();
}
window.__atlas = window.__atlas || { charts: {} };
window.__atlas.navigate = navigate;

async function render() {
  const mine = ++seq;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  const app = document.getElementById("app");
  document.getElementById("banner").hidden = true;
  for (const a of document.querySelectorAll(".topnav a")) {
    const nav = a.dataset.nav;
    a.classList.toggle("active", (nav === "runs" && (location.pathname === "/" || location.pathname.startsWith("/runs"))) || (nav === "compare" && location.pathname.startsWith("/compare")));
  }
  for (const [re, load, params] of routes) {
    const m = location.pathname.match(re);
    if (!m) continue;
    try {
      const mod = await load();
      if (mine !== seq) return;
      clear(app);
      cleanup = (await mod.render(app, params(m))) || null;
    } catch (err) {
      if (mine === seq && err.status !== 401) replace(app, errorBox(err));
    }
    return;
  }
  replace(app, errorBox(`No page at ${location.pathname}`));
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-link]");
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const href = a.getAttribute("href");
  if (!href || !href.startsWith("/")) return;
  ev.preventDefault();
  if (href !== location.pathname + location.search) navigate(href);
});
window.addEventListener("popstate", render);

// the version label after the page's own data: its request would take a connection and server time from them
render().finally(() => get("/api/info").then((info) => {
  if (info && info.version) document.getElementById("version").textContent = `v${info.version}`;
}).catch(() => {}));
};
// ---- metrics.js
factories['metrics'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  metricsPanel: { get: () => metricsPanel, enumerable: true },
});
// The Metrics tab: every scalar the training code logged (observer.log, AtlasLogger, the Transformers Trainer's
// logs, wandb_compat.log), one chart per key over steps, and a table of the keys with their last values.
const { get } = __require('api');
const { card, h, replace, table } = __require('dom');
const { COLORS, lineChart } = __require('chart');
const { int, num, when } = __require('fmt');
const { errorBox, spinner } = __require('widgets');

const MAX_CHARTS = 24;
const POINTS = 5000;  // the newest points of each key

async function metricsPanel(pane, base) {
  replace(pane, spinner());
  let body;
  try {
    body = await get(`${base}/metrics`);
  } catch (err) {
    replace(pane, errorBox(err));
    return [];
  }
  const rows = Object.values(body.metrics || {}).sort((a, b) => a.key.localeCompare(b.key));
  if (!body.available || !rows.length) {
    replace(pane, card("Metrics", h("div", { class: "empty" }, body.available === false
      ? "This collector keeps no user metrics."
      : "No user metrics for this run (log them with observer.log(...), AtlasLogger or wandb_compat.log).")));
    return [];
  }
  const grid = h("div", { class: "chart-grid", dataset: { metrics: String(rows.length) } });
  const keysTable = table([
    { key: "key", label: "metric", render: (r) => r.key },
    { key: "count", label: "points", cls: "num", render: (r) => int(r.count) },
    { key: "last_value", label: "last value", cls: "num", render: (r) => num(r.last_value) },
    { key: "last_step", label: "last step", cls: "num", render: (r) => int(r.last_step) },
    { key: "last_time", label: "logged", render: (r) => when(r.last_time) },
  ], rows, { cls: "grid metric-keys" });
  const shown = rows.slice(0, MAX_CHARTS);
  const note = rows.length > shown.length ? h("div", { class: "muted small" }, `charts for the first ${shown.length} of ${rows.length} keys`) : null;
  replace(pane, h("div", null, h("div", { class: "section-head" }, h("h2", null, "Logged metrics")), grid, note, card("Keys", keysTable)));
  const charts = [];
  await Promise.all(shown.map(async (row, i) => {
    const slot = h("div");
    grid.appendChild(slot);
    try {
      const got = await get(`${base}/metrics`, { key: row.key, limit: POINTS });
      const points = got.points || [];
      const x = points.map((p) => p.step);
      const y = points.map((p) => (typeof p.value === "number" ? p.value : null));
      const c = lineChart({ id: `metric:${row.key}`, title: row.key, xLabel: "step", yLabel: "", height: 190,
        series: [{ label: row.key, color: COLORS[i % COLORS.length], width: 1.5, points: points.length < 60 }], data: [x, y] });
      charts.push(c);
      slot.replaceWith(c.el);
    } catch (err) {
      replace(slot, errorBox(err));
    }
  }));
  return charts;
}
};
// ---- project.js
factories['project'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  render: { get: () => render, enumerable: true },
});
// A project's trend across runs: health, best validation loss and carbon per run (as `atlas trend --json`).
const { get } = __require('api');
const { card, h, link, replace, table } = __require('dom');
const { COLORS, lineChart } = __require('chart');
const { int, mass, num, shortId, when } = __require('fmt');
const { gradePill, healthPill, statusBadge } = __require('widgets');

async function render(app, { name }) {
  document.title = `${name} · Atlas`;
  const report = await get(`/api/projects/${encodeURIComponent(name)}/trend`);
  const runs = findRuns(report);
  const scalars = Object.entries(report || {}).filter(([, v]) => v === null || typeof v !== "object");
  const charts = [];
  const x = runs.map((_, i) => i + 1);
  const grid = h("div", { class: "chart-grid" });
  const add = (idd, title, yLabel, key, color) => {
    const ys = runs.map((r) => (typeof r[key] === "number" ? r[key] : null));
    if (!ys.some((v) => v !== null)) return;
    const c = lineChart({ id: idd, title, xLabel: "run #", yLabel, xInt: true, height: 200, data: [x, ys], series: [{ label: key, color, width: 2, points: true }] });
    charts.push(c); grid.appendChild(c.el);
  };
  add("trend_health", "Health per run", "score", "health_score", COLORS[2]);
  add("trend_val", "Best validation loss per run", "loss", "best_val_loss", COLORS[0]);
  add("trend_train", "Best train loss per run", "loss", "best_train_loss", COLORS[3]);
  add("trend_co2", "CO₂ per run", "kg", "total_co2_kg", COLORS[6]);
  const rows = runs.map((r, i) => ({ ...r, n: i + 1 }));
  replace(app,
    h("div", { class: "page-head" }, h("div", { class: "crumbs" }, link("/", "Runs"), " / project"), h("h1", null, name),
      h("span", { class: "muted" }, `${int(runs.length)} runs`), link(`/?project=${encodeURIComponent(name)}`, "filter the runs list")),
    scalars.length ? h("div", { class: "stat-grid wide" }, scalars.map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, k.replace(/_/g, " ")), h("div", { class: "stat-value" }, scalar(v, runs))))) : null,
    runs.length ? grid : h("div", { class: "empty big" }, "No runs in this project yet."),
    runs.length ? card("Runs", table([
      { key: "n", label: "#", cls: "num" },
      { key: "name", label: "Run", render: (r) => (r.id || r.run ? link(`/runs/${encodeURIComponent(r.id || r.run)}`, r.name || shortId(r.id || r.run)) : r.name || "—") },
      { key: "status", label: "Status", render: (r) => (r.status ? statusBadge(r.status) : "—") },
      { key: "health_score", label: "Health", cls: "num", render: (r) => healthPill(r.health_score) },
      { key: "grade", label: "Green", cls: "num", render: (r) => gradePill(r.grade) },
      { key: "epochs", label: "Epochs", cls: "num", render: (r) => int(r.epochs) },
      { key: "best_val_loss", label: "Best val loss", cls: "num", render: (r) => num(r.best_val_loss) },
      { key: "total_co2_kg", label: "CO₂", cls: "num", render: (r) => mass(r.total_co2_kg) },
      { key: "started_at", label: "Started", render: (r) => when(r.started_at) },
    ], rows)) : null);
  return () => { for (const c of charts) c.destroy(); };
}

// a run id among the report's scalars links to that run, by name
function scalar(v, runs) {
  if (typeof v === "number") return num(v);
  const run = typeof v === "string" ? runs.find((r) => (r.id || r.run) === v) : null;
  if (run) return link(`/runs/${encodeURIComponent(v)}`, run.name || shortId(v));
  return String(v ?? "—");
}

function findRuns(report) {
  if (Array.isArray(report)) return report;
  if (!report || typeof report !== "object") return [];
  if (Array.isArray(report.runs)) return report.runs;
  for (const v of Object.values(report)) if (Array.isArray(v) && v.length && typeof v[0] === "object") return v;
  return [];
}
};
// ---- run.js
factories['run'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  render: { get: () => render, enumerable: true },
});
// One run: header with controls, live charts, issues, health, Green-AI card, and tabs for the rest.
const { get, post, stepRequest, subscribe } = __require('api');
const { card, h, link, replace } = __require('dom');
const { COLORS, alpha, emptyChart, lineChart, smooth } = __require('chart');
const { duration, energy, equivalent, euro, int, mass, num, runDuration, shortId, when } = __require('fmt');
const { OTHER_SERIES, col, gpuColumns, hasValues, lossData, metricKeys, stepColumns, stepPoints } = __require('series');
const { errorBox, gradePill, healthPill, spinner, statusBadge } = __require('widgets');
const { issuesList, layersPanel, modelPanel, logsPanel, profilerPanel, configPanel } = __require('run_panels');
const { agentPanel } = __require('agent');
const { metricsPanel } = __require('metrics');

const POINTS = 2000;

async function render(app, { id }) {
  const base = `/api/runs/${encodeURIComponent(id)}`;
  window.__atlas.runReady = null;
  const charts = [];
  const cleanups = [];
  // every request at once: the charts draw as soon as steps and epochs are in; the cards fill as theirs arrive
  // The loss alone first (its chart draws at once), the other step series beside it; min/max buckets of about a
  // pixel each: the wide loss chart and the half-width ones.
  // (api.js's stepRequest; these first ones, and the requests below, were sent by early.js as the page opened)
  const fetchLoss = (from, to) => stepRequest(id, "loss", from, to).then(stepColumns);
  const fetchOther = (from, to) => stepRequest(id, "other", from, to).then(stepColumns);
  const loading = { loss: fetchLoss(), other: fetchOther(), epochs: get(`${base}/epochs`), issues: get(`${base}/issues`), health: get(`${base}/health`) };
  // the Green-AI report after the loss: computing one not cached yet takes the server a moment it should spend on
  // the charts first
  const greenNow = () => get(`${base}/green`);
  loading.green = loading.loss.then(greenNow, greenNow);
  for (const promise of Object.values(loading)) promise.catch(() => {});
  // the charts do not wait for the run's detail (its Green-AI grade can take a moment on the server)
  loading.run = get(base, { grade: "cached" });  // the grade, if not computed yet, comes with /green
  loading.run.catch(() => {});
  let run = { id };

  const state = { steps: { x: [] }, other: { x: [] }, epochs: [], issues: [], issuesLoaded: false, health: null, green: undefined, zoom: null, seenCritical: new Set() };

  // ---------- header ----------
  const badgeBox = h("span");
  const controls = h("div", { class: "controls" });
  const healthBox = h("span");
  const gradeBox = h("span");
  const meta = h("div", { class: "run-meta" });
  const toast = h("span", { class: "toast", role: "status" });
  const crumbs = h("div", { class: "crumbs" });
  const nameBox = h("span");
  const head = h("div", { class: "run-head" },
    h("div", { class: "run-title" },
      crumbs,
      h("h1", { class: "run-name" }, nameBox, " ", badgeBox),
      meta),
    h("div", { class: "run-side" },
      h("div", { class: "score-box" }, h("span", { class: "score-label" }, "Health"), healthBox),
      h("div", { class: "score-box" }, h("span", { class: "score-label" }, "Green"), gradeBox),
      controls, toast));

  const drawHeader = () => {
    replace(crumbs, link("/", "Runs"), " / ", run.project ? link(`/projects/${encodeURIComponent(run.project)}`, run.project) : "…");
    replace(nameBox, run.name ?? shortId(run.id));
    document.title = `${run.name ?? shortId(run.id)} · Atlas`;
    if (run.status) head.querySelector("h1").dataset.loaded = "1";
    const err = run.error;
    replace(failure, err && (err.type || err.message) ? h("section", { class: "card failure" },
      h("div", { class: "failure-head" }, h("span", { class: "sev sev-critical" }, "failed"), h("span", { class: "mono" }, err.type || "error"), h("span", null, err.message || "")),
      err.traceback ? h("details", null, h("summary", { class: "small muted" }, "traceback"), h("pre", { class: "tree" }, err.traceback)) : null) : null);
    replace(badgeBox, run.status ? statusBadge(run.status) : null);
    replace(healthBox, healthPill(run.health ?? run.health_score));
    replace(gradeBox, gradePill(run.grade || (state.green && state.green.grade)));
    replace(meta,
      h("span", { class: "mono", title: run.id }, shortId(run.id)),
      run.framework ? h("span", null, run.framework) : null,
      h("span", { title: run.started_at || "" }, `started ${when(run.started_at)}`),
      h("span", null, duration(runDuration(run))),
      h("span", null, `${int(run.epochs)} epochs · ${int(run.steps)} steps`),
      (run.tags || []).map((t) => h("span", { class: "tag" }, t)));
    const s = String(run.status || "").toLowerCase();
    const live = s === "running" || s === "paused";
    replace(controls,
      live && s !== "paused" ? h("button", { class: "btn", onclick: () => command("pause") }, "Pause") : null,
      s === "paused" ? h("button", { class: "btn", onclick: () => command("resume") }, "Resume") : null,
      live ? h("button", { class: "btn danger", onclick: () => command("stop") }, "Stop") : null,
      h("button", { class: "btn ghost", onclick: () => agent.toggle() }, "Ask"));
  };

  async function command(action) {
    toast.textContent = `${action}…`;
    try {
      const res = await post(`${base}/command`, { action, reason: "from the Atlas UI" });
      window.__atlas.lastCommand = res;
      const verb = { stop: "Stop", pause: "Pause", resume: "Resume" }[action];
      toast.textContent = res && res.delivered === false ? `${verb} queued: the trainer gets it when it next connects` : `${verb} sent: the trainer acts at its next batch`;
    } catch (err) {
      toast.textContent = err.message;
      toast.classList.add("bad");
    }
  }

  // ---------- tabs ----------
  const tabNames = ["Overview", "Issues", "Metrics", "Layers", "Model", "Logs", "Profiler", "Config"];
  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const panes = {};
  const loaded = {};
  const tabCount = {};
  let current = null;
  for (const name of tabNames) {
    panes[name] = h("div", { class: "pane", hidden: true, dataset: { pane: name.toLowerCase() } });
    tabCount[name] = h("span", { class: "tab-count" });
  }
  const loaders = {
    Issues: (pane) => replace(pane, state.issuesLoaded ? issuesList(state.issues, { full: true }) : spinner()),
    Metrics: (pane) => metricsPanel(pane, base).then((made) => charts.push(...made)),
    Layers: (pane) => layersPanel(pane, base),
    Model: (pane) => modelPanel(pane, base),
    Logs: (pane) => { const p = logsPanel(pane, base); state.logs = p; },
    Profiler: (pane) => profilerPanel(pane, state.epochs),
    Config: (pane) => configPanel(pane, run),
  };
  const show = (name) => {
    current = name;
    for (const btn of tabBar.children) btn.classList.toggle("active", btn.dataset.tab === name);
    for (const [n, pane] of Object.entries(panes)) pane.hidden = n !== name;
    if (!loaded[name] && loaders[name]) { loaded[name] = true; loaders[name](panes[name]); }
    const q = new URLSearchParams(location.search);
    if (name === "Overview") q.delete("tab"); else q.set("tab", name.toLowerCase());
    history.replaceState({}, "", location.pathname + (q.toString() ? `?${q}` : ""));
  };
  for (const name of tabNames) tabBar.appendChild(h("button", { class: "tab", role: "tab", dataset: { tab: name }, onclick: () => show(name) }, name, tabCount[name]));

  // ---------- overview ----------
  const trainGrid = h("div", { class: "chart-grid" });
  const epochGrid = h("div", { class: "chart-grid" });
  const systemGrid = h("div", { class: "chart-grid" });
  const aside = h("aside", { class: "overview-aside" });
  const issuesBox = h("div");
  const greenBox = h("div");
  const healthCard = h("div");
  const zoomNote = h("span", { class: "muted zoom-note" });
  const failure = h("div");  // a failed run's exception, above the charts
  replace(panes.Overview, h("div", { class: "overview" },
    h("div", { class: "overview-main" },
      failure,
      h("div", { class: "section-head" }, h("h2", null, "Training"), zoomNote),
      trainGrid,
      h("div", { class: "section-head" }, h("h2", null, "Per epoch")), epochGrid,
      h("div", { class: "section-head" }, h("h2", null, "System & energy")), systemGrid),
    aside));
  replace(aside, healthCard, greenBox, card("Issues", issuesBox));

  const agent = agentPanel(base);
  replace(app, head, h("div", { id: "run-body", class: "run-body" }, h("div", { class: "run-main" }, tabBar, Object.values(panes)), agent.el));
  drawHeader();
  show((new URLSearchParams(location.search).get("tab") || "overview").replace(/^./, (c) => c.toUpperCase()));
  if (!panes[current]) show("Overview");

  // ---------- data ----------

  // x of an issue on step charts: its step, else the first step of the epoch it first appeared in
  const issueStep = (i) => {
    if (typeof i.step === "number" && i.step > 0) return i.step;
    const ep = i.first_seen_epoch ?? i.first_epoch ?? i.epoch;
    if (typeof ep !== "number") return null;
    const prev = state.epochs.find((r) => r.epoch === ep - 1);
    return prev && typeof prev.global_step === "number" ? prev.global_step : ep === 0 ? 0 : null;
  };
  const markers = (kind) => state.issues.filter((i) => !explainedBy(i, state.issues) && /critical|warning/i.test(i.severity || "")).map((i) => ({
    x: kind === "step" ? issueStep(i) : (i.first_seen_epoch ?? i.first_epoch ?? i.epoch),
    severity: String(i.severity || "info").toLowerCase(),
    label: `${i.severity}: ${i.title || i.check}`,
  })).filter((m) => typeof m.x === "number");

  // ---- step charts ----
  const stepCharts = {};
  const onZoom = (min, max) => zoomTo(min, max);
  const onReset = () => zoomTo(null, null);
  const stepSpec = (idd, title, yLabel, series, data, extra = {}) => ({ id: idd, title, xLabel: "step", yLabel, series, data, markers: markers("step"), sync: "steps", onZoom, onReset, height: 210, ...extra });
  const buildLossChart = () => {
    const s = state.steps;
    if (stepCharts.loss) { stepCharts.loss.destroy(); delete stepCharts.loss; }
    const old = trainGrid.querySelector("[data-slot='loss']");
    const lossSeries = [
      { label: "loss", color: alpha(COLORS[0], 0.35), width: 1 },
      { label: "smoothed", color: COLORS[0], width: 2 },
      { label: "min", color: "transparent", width: 0, legend: false },
      { label: "max", color: "transparent", width: 0, legend: false },
    ];
    if (s.loss && hasValues(s.loss.y)) {
      stepCharts.loss = lineChart(stepSpec("loss", "Training loss", "loss", lossSeries, lossData(s), {
        bands: [{ series: [4, 3], fill: alpha(COLORS[0], 0.12) }], nonfinite: s.loss.nonfinite, logToggle: true,
        note: `${int(s.total)} steps${s.downsampled ? ", min/max per pixel" : ""}${s.loss.nonfinite.length ? ` · ${s.loss.nonfinite.length >= 1000 ? "1,000+" : s.loss.nonfinite.length} non-finite (red ticks)` : ""}` }));
      stepCharts.loss.el.classList.add("wide");
      stepCharts.loss.el.dataset.slot = "loss";
      charts.push(stepCharts.loss);
      old ? old.replaceWith(stepCharts.loss.el) : trainGrid.prepend(stepCharts.loss.el);
    } else {
      const empty = emptyChart("Training loss", "No step losses yet.");
      empty.classList.add("wide");
      empty.dataset.slot = "loss";
      old ? old.replaceWith(empty) : trainGrid.prepend(empty);
    }
  };
  const buildOtherStepCharts = () => {
    const s = state.other;
    for (const key of OTHER_SERIES) if (stepCharts[key]) { stepCharts[key].destroy(); stepCharts[key].el.remove(); delete stepCharts[key]; }
    const simple = [["lr", "Learning rate", "lr", COLORS[3]], ["grad_norm", "Gradient norm", "‖g‖", COLORS[1]],
      ["samples_per_sec", "Throughput", "samples/s", COLORS[2]], ["step_time", "Step time", "seconds", COLORS[5]]];
    for (const [key, title, yl, color] of simple) {
      if (s[key] && hasValues(s[key].y)) {
        stepCharts[key] = lineChart(stepSpec(key, title, yl, [{ label: key, color, width: 1.5 }], [s.x, s[key].y]));
        charts.push(stepCharts[key]);
        trainGrid.appendChild(stepCharts[key].el);
      }
    }
  };
  const stepData = (key) => (key === "loss" ? lossData(state.steps) : [state.other.x, (state.other[key] || { y: [] }).y]);
  let zoomSeq = 0;
  async function zoomTo(min, max) {
    const mine = ++zoomSeq;
    state.zoom = min === null ? null : [Math.floor(min), Math.ceil(max)];
    try {
      const [lo, hi] = state.zoom || [undefined, undefined];
      const [cols, other] = await Promise.all([fetchLoss(lo, hi), fetchOther(lo, hi)]);
      if (mine !== zoomSeq) return;
      state.steps = cols;
      state.other = other;
      for (const [key, c] of Object.entries(stepCharts)) {
        if (key === "loss" && cols.loss) c.setNonfinite(cols.loss.nonfinite);
        c.setData(stepData(key), !!state.zoom);
        if (state.zoom) c.setXRange(state.zoom[0], state.zoom[1]);
      }
      zoomNote.textContent = state.zoom ? `steps ${int(state.zoom[0])}–${int(state.zoom[1])} · ${int(cols.x.length)} points${cols.downsampled ? " (downsampled)" : " (full resolution)"} · double-click to reset` : "";
    } catch (err) { zoomNote.textContent = err.message; }
  }

  // ---- epoch charts ----
  const epochCharts = {};
  const buildEpochCharts = () => {
    for (const c of Object.values(epochCharts)) c.destroy();
    epochGrid.replaceChildren();
    systemGrid.replaceChildren();
    const rows = state.epochs;
    const x = rows.map((r) => r.epoch);
    const add = (grid, idd, title, yLabel, cols, extra = {}) => {
      const present = cols.filter(([, ys]) => hasValues(ys));
      if (!present.length) return;
      const series = present.map(([label, , color], i) => ({ label, color: color || COLORS[i % COLORS.length], width: 2, points: rows.length < 60 }));
      const c = lineChart({ id: idd, title, xLabel: "epoch", yLabel, series, data: [x, ...present.map(([, ys]) => ys)], markers: markers("epoch"), sync: "epochs", xInt: true, height: 190, ...extra });
      epochCharts[idd] = c;
      grid.appendChild(c.el);
    };
    const mkeys = metricKeys(rows);
    const lossKeys = mkeys.filter((k) => /loss/i.test(k));
    const otherKeys = mkeys.filter((k) => !/loss/i.test(k));
    add(epochGrid, "epoch_loss", "Loss per epoch", "loss", [["train (mean)", col(rows, "loss_mean"), COLORS[0]], ...lossKeys.map((k, i) => [k, col(rows, k), COLORS[(i + 1) % COLORS.length]])]);
    if (otherKeys.length) add(epochGrid, "val_metrics", "Validation metrics", "", otherKeys.map((k, i) => [k, col(rows, k), COLORS[(i + 2) % COLORS.length]]));
    if (!stepCharts.lr) add(epochGrid, "epoch_lr", "Learning rate", "lr", [["lr", col(rows, "lr"), COLORS[3]]]);
    if (!stepCharts.grad_norm) add(epochGrid, "epoch_grad_norm", "Gradient norm", "‖g‖", [["grad_norm", col(rows, "grad_norm"), COLORS[1]]]);
    if (!stepCharts.samples_per_sec) add(epochGrid, "epoch_throughput", "Throughput", "samples/s", [["samples/s", col(rows, "samples_per_sec"), COLORS[2]]]);
    add(epochGrid, "epoch_step_time", "Step time per epoch", "seconds", [["p50", col(rows, "step_time_p50_s"), COLORS[5]], ["p95", col(rows, "step_time_p95_s"), COLORS[4]]]);
    add(systemGrid, "cpu", "CPU", "%", [["cpu %", col(rows, "cpu_percent"), COLORS[0]]]);
    add(systemGrid, "ram", "Memory", "MB", [["process RSS", col(rows, "process_rss_mb"), COLORS[3]], ["CUDA allocated", col(rows, "cuda_allocated_mb"), COLORS[1]]]);
    const gpu = (idd, title, yl, field, flat) => add(systemGrid, idd, title, yl, gpuColumns(rows, field, flat, state.gpus).map(([dev, ys], i) => [`gpu ${dev}`, ys, COLORS[i % COLORS.length]]));
    gpu("gpu_util", "GPU utilisation", "%", "utilization_percent", "gpu_utilization_percent");
    gpu("gpu_mem", "GPU memory", "MB", "memory_used_mb", "gpu_memory_used_mb");
    gpu("gpu_power", "GPU power", "W", "power_watts", "gpu_power_watts");
    gpu("gpu_temp", "GPU temperature", "°C", "temperature_c", "gpu_temperature_c");
    add(systemGrid, "energy", "Energy (cumulative)", "kWh", [["energy kWh", col(rows, "cumulative_energy_kwh"), COLORS[6]]]);
    add(systemGrid, "co2", "CO₂ (cumulative)", "kg", [["CO₂ kg", col(rows, "cumulative_co2_kg"), COLORS[2]]]);
    if (!epochGrid.children.length) epochGrid.appendChild(emptyChart("Per epoch", "No finished epoch yet."));
    if (!systemGrid.children.length) systemGrid.appendChild(emptyChart("System", "No system samples yet."));
  };

  // ---- aside ----
  const drawAside = () => {
    replace(healthCard, healthCardView(state.health, run));
    replace(greenBox, greenCard(state.green, run));
    replace(issuesBox, state.issuesLoaded ? issuesList(state.issues, { compact: true }) : spinner());
    const n = state.issues.filter((i) => i.active !== false).length;
    tabCount.Issues.textContent = n ? String(n) : "";
    if (loaded.Issues) replace(panes.Issues, state.issuesLoaded ? issuesList(state.issues, { full: true }) : spinner());
  };

  drawAside();
  loading.run.then((detail) => {
    run = { ...run, ...detail };
    drawHeader();
    if (loaded.Config) configPanel(panes.Config, run);
  }).catch((err) => { if (err.status === 404 || err.status === 400) replace(app, errorBox(err)); });
  const lossRes = await Promise.allSettled([loading.loss]);
  state.steps = lossRes[0].status === "fulfilled" ? lossRes[0].value : { x: [] };
  buildLossChart();
  const [otherRes, epochsRes] = await Promise.allSettled([loading.other, loading.epochs]);
  state.other = otherRes.status === "fulfilled" ? otherRes.value : { x: [] };
  state.epochs = epochsRes.status === "fulfilled" ? (epochsRes.value.epochs || []) : [];
  state.gpus = epochsRes.status === "fulfilled" ? (epochsRes.value.gpus || []) : [];
  buildOtherStepCharts();
  buildEpochCharts();
  window.__atlas.runReady = performance.now();  // every chart of the page exists (each paints on its next frame)
  const setAllMarkers = () => {
    for (const c of Object.values(stepCharts)) c.setMarkers(markers("step"));
    for (const c of Object.values(epochCharts)) c.setMarkers(markers("epoch"));
  };
  const issuesReady = loading.issues.then((b) => {
    state.issues = b.issues || [];
    state.issuesLoaded = true;
    for (const i of state.issues) if (String(i.severity).toLowerCase() === "critical") state.seenCritical.add(issueKey(i));
    drawAside();
    setAllMarkers();
  }).catch((err) => replace(issuesBox, errorBox(err)));
  loading.health.then((b) => { state.health = b; drawAside(); }).catch(() => {});
  loading.green.then((b) => { state.green = b; drawAside(); drawHeader(); }).catch(() => { state.green = null; drawAside(); });

  // ---------- live ----------
  const throttle = (fn, ms) => { let t = null; return () => { if (!t) t = setTimeout(() => { t = null; fn(); }, ms); }; };
  const refreshEpochs = throttle(async () => {
    try {
      const body = await get(`${base}/epochs`);
      state.epochs = body.epochs || [];
      state.gpus = body.gpus || [];
      buildEpochCharts();
      for (const c of Object.values(stepCharts)) c.setMarkers(markers("step"));
    } catch { /* next event retries */ }
  }, 400);
  const refreshIssues = throttle(async () => {
    try {
      await issuesReady;
      const [iss, health, green, detail] = await Promise.all([get(`${base}/issues`), get(`${base}/health`).catch(() => state.health), get(`${base}/green`).catch(() => state.green), get(base, { grade: "cached" }).catch(() => run)]);
      state.issues = iss.issues || [];
      state.issuesLoaded = true;
      state.health = health; state.green = green; run = { ...run, ...detail };
      drawHeader();
      drawAside();
      for (const i of state.issues) {
        const key = issueKey(i);
        if (String(i.severity).toLowerCase() === "critical" && !state.seenCritical.has(key)) {
          state.seenCritical.add(key);
          criticalBanner(i);
        }
      }
      setAllMarkers();
    } catch { /* next event retries */ }
  }, 400);
  const refetchSteps = throttle(() => { if (!state.zoom) zoomTo(null, null); }, 2000);
  // live points: appended to the loss columns and to the other series' columns (each keeps its own x)
  const appendTo = (s, keys, points) => {
    let last = s.x.length ? s.x[s.x.length - 1] : -Infinity;
    let added = 0;
    for (const p of points) {
      if (typeof p.step !== "number" || p.step <= last) continue;
      s.x.push(p.step);
      for (const key of keys) {
        if (!s[key]) s[key] = { y: new Array(s.x.length - 1).fill(null), min: new Array(s.x.length - 1).fill(null), max: new Array(s.x.length - 1).fill(null) };
        const v = typeof p[key] === "number" ? p[key] : null;
        s[key].y.push(v); s[key].min.push(v); s[key].max.push(v);
      }
      last = p.step;
      added++;
    }
    s.total = (s.total || 0) + added;
    return added;
  };
  const appendSteps = (points) => {
    if (state.zoom || !points.length) return;
    if (appendTo(state.steps, ["loss"], points)) {
      if (!stepCharts.loss && hasValues((state.steps.loss || { y: [] }).y)) buildLossChart();
      else if (stepCharts.loss) {
        stepCharts.loss.setData(stepData("loss"));
        stepCharts.loss.setNote(`${int(state.steps.x[state.steps.x.length - 1] ?? 0)} steps`);
      }
    }
    if (appendTo(state.other, OTHER_SERIES, points)) {
      if (OTHER_SERIES.some((k) => !stepCharts[k] && state.other[k] && hasValues(state.other[k].y))) buildOtherStepCharts();
      else for (const key of OTHER_SERIES) if (stepCharts[key]) stepCharts[key].setData(stepData(key));
    }
    if (state.steps.x.length > POINTS * 2 || state.other.x.length > POINTS * 2) refetchSteps();
  };
  // the stream starts after what this page has read, so nothing committed in between is lost
  const lastEpoch = state.epochs.length ? Math.max(...state.epochs.map((r) => r.epoch)) : null;
  const after = new URLSearchParams();
  if (typeof state.steps.lastStep === "number") after.set("after_step", String(state.steps.lastStep));
  if (lastEpoch !== null) after.set("after_epoch", String(lastEpoch));
  const unsubscribe = subscribe(`${base}/events${after.toString() ? `?${after}` : ""}`, {
    step: (ev) => {
      appendSteps(stepPoints(ev));
      const nf = ev && ev.series && ev.series.loss && ev.series.loss.nonfinite;
      if (nf && nf.length && !state.zoom && state.steps.loss && stepCharts.loss) {
        const seen = new Set(state.steps.loss.nonfinite);
        for (const s of nf) if (!seen.has(s)) state.steps.loss.nonfinite.push(s);
        stepCharts.loss.setNonfinite(state.steps.loss.nonfinite);
      }
    },
    epoch: () => { refreshEpochs(); get(base, { grade: "cached" }).then((d) => { run = { ...run, ...d }; drawHeader(); }).catch(() => {}); },
    issue: () => refreshIssues(),
    status: (ev) => { run = { ...run, ...(ev && typeof ev === "object" ? ev : { status: ev }) }; drawHeader(); refreshIssues(); },
    log: (ev) => { if (state.logs) for (const r of (ev && Array.isArray(ev.logs) ? ev.logs : [ev])) state.logs.push(r); },
  });
  cleanups.push(unsubscribe);

  return () => {
    for (const f of cleanups) f();
    for (const c of [...charts, ...Object.values(stepCharts), ...Object.values(epochCharts)]) c.destroy && c.destroy();
    agent.close();
    document.title = "Atlas";
  };
}

function issueKey(i) {
  return `${i.check}|${i.layer || ""}|${i.first_seen_epoch ?? i.epoch ?? ""}`;
}

function explainedBy(issue, issues) {
  return issues.some((o) => o !== issue && Array.isArray(o.explains) && o.explains.includes(issue.check));
}

function criticalBanner(issue) {
  const banner = document.getElementById("banner");
  replace(banner,
    h("div", { class: "banner-text" }, h("strong", null, "Critical issue: "), issue.title || issue.check,
      issue.suggestion ? h("span", { class: "banner-fix" }, ` — ${issue.suggestion}`) : null),
    h("button", { class: "btn ghost small", onclick: () => { banner.hidden = true; } }, "Dismiss"));
  banner.className = "banner critical";
  banner.hidden = false;
}

function healthCardView(health, run) {
  const score = health ? health.health_score : (run.health ?? run.health_score);
  const counts = (health && health.severity_counts) || {};
  const layers = (health && health.top_layers) || [];
  return card("Health",
    h("div", { class: "health-row" }, h("div", { class: `big-score ${score === null || score === undefined ? "muted" : score >= 80 ? "good" : score >= 50 ? "warn" : "bad"}` }, score === null || score === undefined ? "—" : String(Math.round(score))),
      h("div", { class: "sev-counts" },
        ["critical", "warning", "info"].map((k) => h("span", { class: `sev sev-${k}${counts[k] ? "" : " zero"}` }, `${counts[k] || 0} ${k}`)))),
    layers.length ? h("div", { class: "top-layers" }, h("div", { class: "muted small" }, "Layers to look at"),
      layers.slice(0, 4).map((l) => h("div", { class: "layer-line" }, h("span", { class: "mono" }, l.layer), h("span", { class: "muted" }, (l.checks || []).join(", "))))) : null);
}

function greenCard(g, run) {
  if (g === undefined) return card("Green AI", spinner());
  if (!g) return card("Green AI", h("div", { class: "empty" }, "No energy data yet."));
  const eq = g.co2_equivalents || {};
  const cells = [
    ["CO₂", mass(g.total_co2_kg)], ["Energy", energy(g.total_energy_kwh)], ["Cost", euro(g.total_cost_eur)],
    ["Optimal stop", g.optimal_stop_epoch === null || g.optimal_stop_epoch === undefined ? "—" : `epoch ${g.optimal_stop_epoch}`],
    ["Wasted epochs", g.wasted_epochs === undefined || g.wasted_epochs === null ? "—" : String(g.wasted_epochs)],
    ["Wasted compute", typeof g.wasted_compute_pct === "number" ? `${num(g.wasted_compute_pct, 3)}%` : "—"],
    ["Wasted CO₂", mass(g.wasted_co2_kg)], ["Wasted cost", euro(g.wasted_cost_eur)],
  ];
  return card("Green AI",
    h("div", { class: "green-head" }, gradePill(g.grade || run.grade), h("span", { class: "muted small" }, "grade A (efficient) – F (wasteful)")),
    h("div", { class: "stat-grid" }, cells.map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, k), h("div", { class: "stat-value" }, v)))),
    Object.keys(eq).length ? h("div", { class: "equivalents" }, h("div", { class: "small muted" }, "The same CO₂ as"),
      Object.entries(eq).slice(0, 4).map(([k, v]) => { const [what, amount] = equivalent(k, v); return h("div", { class: "small" }, h("span", { class: "muted" }, `${what} `), amount); })) : null);
}
};
// ---- run_panels.js
factories['run_panels'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  issuesList: { get: () => issuesList, enumerable: true },
  layersPanel: { get: () => layersPanel, enumerable: true },
  modelPanel: { get: () => modelPanel, enumerable: true },
  logsPanel: { get: () => logsPanel, enumerable: true },
  profilerPanel: { get: () => profilerPanel, enumerable: true },
  configPanel: { get: () => configPanel, enumerable: true },
});
// The run page's tabs: issues (ranked, symptoms folded under their cause), layer heatmap, model, logs, profiler, config.
const { get } = __require('api');
const { card, h, kv, replace, table, valueText } = __require('dom');
const { int, num, when } = __require('fmt');
const { errorBox, severityTag, spinner } = __require('widgets');
const { heatmap } = __require('heatmap');

// ---------- issues ----------
function issuesList(issues, opts = {}) {
  if (!issues.length) return h("div", { class: "empty ok" }, "No issues found. Atlas checks every epoch.");
  const byCheck = new Map(issues.map((i) => [i.check, i]));
  const folded = new Set();
  for (const i of issues) for (const c of i.explains || []) if (byCheck.has(c) && byCheck.get(c) !== i) folded.add(byCheck.get(c));
  const roots = issues.filter((i) => !folded.has(i));
  const list = h("ol", { class: `issues${opts.compact ? " compact" : ""}` });
  for (const i of roots.slice(0, opts.compact ? 6 : roots.length)) {
    const symptoms = (i.explains || []).map((c) => byCheck.get(c)).filter((s) => s && s !== i);
    list.appendChild(issueItem(i, symptoms, opts));
  }
  if (opts.compact && roots.length > 6) list.appendChild(h("li", { class: "muted small" }, `${roots.length - 6} more in the Issues tab`));
  return list;
}

function issueItem(i, symptoms, opts) {
  const sev = String(i.severity || "info").toLowerCase();
  const first = i.first_seen_epoch ?? i.first_epoch ?? i.epoch;
  const last = i.last_seen_epoch;
  const where = [typeof first === "number" ? `epoch ${first}${typeof last === "number" && last !== first ? `–${last}` : ""}` : null,
    typeof i.step === "number" && i.step > 0 ? `step ${int(i.step)}` : null, i.layer ? `layer ${i.layer}` : null].filter(Boolean).join(" · ");
  const head = h("div", { class: "issue-head" }, severityTag(sev),
    typeof i.rank === "number" ? h("span", { class: "rank", title: "rank: 1 = most likely root cause" }, `#${i.rank}`) : null,
    h("span", { class: "issue-title" }, i.title || i.check),
    i.active === false ? h("span", { class: "cleared", title: "the condition has cleared" }, "cleared") : null);
  const sub = h("div", { class: "issue-sub" }, h("span", { class: "mono" }, i.check), where ? h("span", null, where) : null);
  if (opts.compact) return h("li", { class: `issue sev-border-${sev}${i.active === false ? " inactive" : ""}` }, head, sub,
    symptoms.length ? h("div", { class: "small muted" }, `explains ${symptoms.map((s) => s.check).join(", ")}`) : null);
  const evidence = i.evidence && typeof i.evidence === "object" && Object.keys(i.evidence).length ? i.evidence : null;
  const metric = i.metric_key ? { [i.metric_key]: i.metric_value } : null;
  return h("li", { class: `issue full sev-border-${sev}${i.active === false ? " inactive" : ""}` }, head, sub,
    i.description ? h("p", { class: "issue-desc" }, i.description) : null,
    i.insight ? h("p", { class: "issue-insight" }, i.insight) : null,
    evidence || metric || (i.thresholds && Object.keys(i.thresholds).length) ? h("div", { class: "evidence" },
      h("div", { class: "evidence-label" }, "Evidence"), kv(Object.fromEntries(Object.entries({ ...(metric || {}), ...(evidence || {}) }).map(([k, v]) => [k, typeof v === "number" ? num(v) : v]))),
      i.thresholds && Object.keys(i.thresholds).length ? h("div", { class: "small muted" }, `thresholds: ${Object.entries(i.thresholds).map(([k, v]) => `${k}=${valueText(v)}`).join(", ")}`) : null) : null,
    i.suggestion ? h("div", { class: "fix" }, h("span", { class: "fix-label" }, "Fix"), h("span", null, i.suggestion)) : null,
    symptoms.length ? h("details", { class: "symptoms" }, h("summary", null, `${symptoms.length} symptom${symptoms.length > 1 ? "s" : ""} explained by this`),
      h("ol", { class: "issues" }, symptoms.map((s) => issueItem(s, [], opts)))) : null);
}

// ---------- layers ----------
const LAYER_METRICS = [["grad_norm", "Gradient norm"], ["dead_fraction", "Dead fraction"], ["act_mean", "Activation mean"], ["act_std", "Activation std"]];

function layersPanel(pane, base) {
  const box = h("div", { class: "heatmap-box" });
  const select = h("select", { class: "input", "aria-label": "layer metric", onchange: () => load() }, LAYER_METRICS.map(([k, l]) => h("option", { value: k }, l)));
  replace(pane, card("Layer health", h("div", { class: "filters" }, h("span", { class: "muted" }, "Metric"), select, h("span", { class: "muted small" }, "layers × sampled steps; hover for values")), box));
  async function load() {
    replace(box, spinner());
    try {
      const body = await get(`${base}/layers`, { metric: select.value });
      if (!body.layers || !body.layers.length) { replace(box, h("div", { class: "empty" }, "No layer statistics recorded for this run.")); return; }
      replace(box, heatmap(body, { metric: select.value, log: select.value === "grad_norm" }));
    } catch (err) { replace(box, errorBox(err)); }
  }
  load();
}

// ---------- model ----------
async function modelPanel(pane, base) {
  replace(pane, spinner());
  try {
    const a = await get(`${base}/architecture`);
    const layers = a.layers || [];
    const total = a.total_parameters || 0;
    const summary = h("div", { class: "stat-grid wide" },
      [["Model", a.model_class || "—"], ["Parameters", int(total)], ["Trainable", int(a.trainable_parameters)], ["Layers", int(layers.length)]]
        .map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, k), h("div", { class: "stat-value" }, v))));
    const layerTable = layers.length ? table([
      { key: "name", label: "Layer", cls: "mono" }, { key: "type", label: "Type" },
      { key: "parameters", label: "Parameters", cls: "num", render: (r) => int(r.parameters) },
      { key: "pct", label: "% of total", cls: "num", render: (r) => h("div", { class: "bar-cell" }, h("span", { class: "bar-track" }, h("span", { class: "bar", dataset: { pct: String(r.pct_of_total || 0) } })), `${num(r.pct_of_total || 0, 3)}%`) },
      { key: "trainable_parameters", label: "Trainable", cls: "num", render: (r) => int(r.trainable_parameters) },
      { key: "attributes", label: "Attributes", cls: "small mono", render: (r) => (r.attributes && Object.keys(r.attributes).length ? Object.entries(r.attributes).map(([k, v]) => `${k}=${valueText(v)}`).join("  ") : "") },
    ], layers) : h("div", { class: "empty" }, "No layer table recorded.");
    for (const bar of layerTable.querySelectorAll ? layerTable.querySelectorAll(".bar") : []) bar.style.width = `${Math.min(100, Number(bar.dataset.pct))}%`;
    const tree = a.module_tree ? h("pre", { class: "tree" }, treeLines(a.module_tree).join("\n")) : h("div", { class: "empty" }, "No module tree recorded.");
    replace(pane, summary, h("div", { class: "two-col" }, card("Layers", layerTable), card("Module tree", tree)),
      a.dimension_flow && a.dimension_flow.length ? card("Dimension flow", generic(a.dimension_flow.map((d) => (d && typeof d === "object" ? Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Array.isArray(v) ? `[${v.join(", ")}]` : v])) : { step: d })))) : null);
  } catch (err) { replace(pane, errorBox(err)); }
}

function treeLines(node, prefix = "", last = true, root = true) {
  const name = node.name || "", kind = node.type || "";
  let label = root && (name === "" || name === kind) ? kind : `${name} (${kind})`;
  if (typeof node.parameters === "number" && node.parameters) label += `  ${int(node.parameters)} params`;
  const lines = [root ? label : prefix + (last ? "└── " : "├── ") + label];
  const kids = node.children || [];
  const childPrefix = root ? "" : prefix + (last ? "    " : "│   ");
  kids.forEach((c, i) => lines.push(...treeLines(c, childPrefix, i === kids.length - 1, false)));
  return lines;
}

// ---------- logs ----------
const LEVELS = ["", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

function logsPanel(pane, base) {
  const level = h("select", { class: "input", "aria-label": "level", onchange: () => load(true) }, LEVELS.map((l) => h("option", { value: l }, l || "all levels")));
  const rank = h("input", { class: "input narrow", type: "number", min: "0", placeholder: "rank", "aria-label": "rank", onchange: () => load(true) });
  const body = h("tbody");
  const more = h("button", { class: "btn ghost", hidden: true, onclick: () => load(false) }, "Load more");
  const note = h("span", { class: "muted small" });
  let next = null;
  replace(pane, card("Logs", h("div", { class: "filters" }, level, rank, note), h("div", { class: "table-box logs-box" },
    h("table", { class: "grid logs" }, h("thead", null, h("tr", null, ["Time", "Level", "Epoch", "Rank", "Logger", "Message"].map((t) => h("th", null, t)))), body)), more));
  const row = (r) => h("tr", { class: `row-${String(r.level || "").toLowerCase()}` }, h("td", { class: "mono small nowrap" }, r.time ? String(r.time).slice(11, 23) : "—"),
    h("td", null, h("span", { class: `lvl lvl-${String(r.level || "").toLowerCase()}` }, r.level || "")), h("td", { class: "num" }, r.epoch ?? "—"), h("td", { class: "num" }, r.rank ?? "—"),
    h("td", { class: "mono small" }, r.logger || "—"), h("td", { class: "msg" }, h("pre", null, r.message || "")));
  async function load(reset) {
    if (reset) { body.replaceChildren(); next = null; }
    try {
      const res = await get(`${base}/logs`, { level: level.value, rank: rank.value, after: next || undefined, limit: 500 });
      const logs = res.logs || [];
      for (const r of logs) body.appendChild(row(r));
      next = res.next || next;
      more.hidden = logs.length < 500;
      note.textContent = `${body.children.length} records`;
      if (!body.children.length) body.appendChild(h("tr", null, h("td", { colspan: "6", class: "empty" }, "No log records.")));
    } catch (err) { body.replaceChildren(h("tr", null, h("td", { colspan: "6" }, errorBox(err)))); }
  }
  load(true);
  return {
    push(r) {
      if (!r || typeof r !== "object") return;
      if (level.value && String(r.level).toUpperCase() !== level.value) return;
      if (rank.value !== "" && Number(r.rank) !== Number(rank.value)) return;
      const empty = body.querySelector("td.empty");
      if (empty) body.replaceChildren();
      body.appendChild(row(r));
      note.textContent = `${body.children.length} records`;
    },
  };
}

// ---------- profiler ----------
function profilerPanel(pane, epochs) {
  const withProf = epochs.filter((e) => e.profiler && (typeof e.profiler !== "object" || Object.keys(e.profiler).length));
  if (!withProf.length) { replace(pane, card("Profiler", h("div", { class: "empty" }, "No profiler summary for this run (enable it with the callback's profiler option)."))); return; }
  const last = withProf[withProf.length - 1];
  replace(pane, card(`Profiler — epoch ${last.epoch}`, generic(last.profiler)));
}

function generic(v) {
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === "object" && v[0] !== null) {
      const keys = [...new Set(v.flatMap((r) => Object.keys(r)))];
      return table(keys.map((k) => ({ key: k, label: k, cls: typeof v[0][k] === "number" ? "num" : null, render: (r) => (typeof r[k] === "number" ? num(r[k]) : valueText(r[k])) })), v);
    }
    return h("div", null, v.map(valueText).join(", "));
  }
  if (v && typeof v === "object") {
    const scalars = {}, nested = [];
    for (const [k, x] of Object.entries(v)) (x && typeof x === "object" ? nested.push([k, x]) : (scalars[k] = typeof x === "number" ? num(x) : x));
    return h("div", null, Object.keys(scalars).length ? kv(scalars) : null, nested.map(([k, x]) => h("div", { class: "nested" }, h("h4", null, k), generic(x))));
  }
  return h("div", null, valueText(v));
}

// ---------- config ----------
function configPanel(pane, run) {
  const git = run.git || run.git_commit || (run.versions && run.versions.git) || null;
  replace(pane, h("div", { class: "two-col" },
    card("Hyperparameters", kv(run.hyperparameters, { empty: "none recorded" })),
    h("div", null,
      card("Run", kv({ id: run.id, name: run.name, project: run.project, status: run.status, framework: run.framework, started: run.started_at, ended: run.ended_at, world_size: run.world_size, on_critical: run.on_critical, tags: (run.tags || []).join(", ") })),
      card("Versions", kv(run.versions, { empty: "none recorded" })),
      card("Device", kv(run.device, { empty: "none recorded" })),
      card("Git", git && typeof git === "object" ? kv(git) : h("div", { class: git ? "mono" : "empty" }, git || "none recorded")),
      run.final_metrics ? card("Final metrics", kv(run.final_metrics)) : null)));
}
};
// ---- runs.js
factories['runs'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  render: { get: () => render, enumerable: true },
});
// The runs list: filters, server-side sort and paging (10,000 runs stay fast), live updates from /api/events.
const { get, subscribe } = __require('api');
const { h, link, replace, table } = __require('dom');
const { duration, int, runDuration, when, shortId } = __require('fmt');
const { errorBox, gradePill, healthPill, statusBadge } = __require('widgets');
const { navigate } = __require('main');

const PAGE = 50;
const STATUSES = ["", "running", "paused", "completed", "failed", "stopped", "crashed"];

async function render(app) {
  const q = new URLSearchParams(location.search);
  const state = {
    project: q.get("project") || "", status: q.get("status") || "", tag: q.get("tag") || "", q: q.get("q") || "",
    sort: q.get("sort") || "started", order: q.get("order") || "desc", offset: Number(q.get("offset") || 0),
  };
  const selected = new Set();
  let rows = [];
  let total = 0;

  const input = (key, placeholder) => h("input", { class: "input", type: "search", placeholder, value: state[key], "aria-label": placeholder, oninput: debounce((ev) => { state[key] = ev.target.value.trim(); state.offset = 0; load(); }, 250) });
  const statusSel = h("select", { class: "input", "aria-label": "status", onchange: (ev) => { state.status = ev.target.value; state.offset = 0; load(); } },
    STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s || "any status")));
  const compareBtn = h("button", { class: "btn", disabled: true, onclick: () => navigate(`/compare?runs=${[...selected].join(",")}`) }, "Compare");
  const count = h("span", { class: "muted" });
  const tableBox = h("div", { class: "table-box" });
  const pager = h("div", { class: "pager" });

  replace(app,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), count),
    h("div", { class: "filters" }, input("q", "Search name or id"), input("project", "Project"), statusSel, input("tag", "Tag"), h("span", { class: "grow" }), compareBtn),
    tableBox, pager);

  const columns = [
    { key: "sel", label: "", cls: "col-sel", render: (r) => h("input", { type: "checkbox", "aria-label": "select for compare", checked: selected.has(r.id), onchange: (ev) => { ev.target.checked ? selected.add(r.id) : selected.delete(r.id); compareBtn.disabled = selected.size < 2; compareBtn.textContent = selected.size >= 2 ? `Compare ${selected.size}` : "Compare"; } }) },
    { key: "status", label: "Status", sort: "status", render: (r) => statusBadge(r.status) },
    { key: "name", label: "Name", sort: "name", cls: "col-name", render: (r) => h("div", null, link(`/runs/${encodeURIComponent(r.id)}`, r.name || shortId(r.id)), h("div", { class: "sub mono" }, shortId(r.id))) },
    { key: "project", label: "Project", render: (r) => (r.project ? link(`/projects/${encodeURIComponent(r.project)}`, r.project) : "—") },
    { key: "health", label: "Health", sort: "health", cls: "num", render: (r) => healthPill(r.health ?? r.health_score) },
    { key: "grade", label: "Green", cls: "num", render: (r) => gradePill(r.grade) },
    { key: "epochs", label: "Epochs", cls: "num", render: (r) => int(r.epochs) },
    { key: "steps", label: "Steps", cls: "num", render: (r) => int(r.steps) },
    { key: "started_at", label: "Started", sort: "started", render: (r) => h("span", { title: r.started_at || "" }, when(r.started_at)) },
    { key: "duration", label: "Duration", sort: "duration", cls: "num", render: (r) => duration(runDuration(r)) },
    { key: "tags", label: "Tags", render: (r) => h("div", { class: "tags" }, (r.tags || []).map((t) => h("span", { class: "tag", onclick: () => { state.tag = t; state.offset = 0; load(); } }, t))) },
  ];

  const draw = () => {
    replace(count, `${int(total)} run${total === 1 ? "" : "s"}`);
    if (!rows.length) { replace(tableBox, h("div", { class: "empty big" }, total ? "No runs on this page." : "No runs match. Train with the Atlas callback and runs appear here live.")); replace(pager); return; }
    replace(tableBox, table(columns, rows, {
      cls: "grid runs", sort: state.sort, order: state.order,
      rowAttrs: (r) => ({ dataset: { run: r.id } }),
      onSort: (key) => { state.order = state.sort === key && state.order === "desc" ? "asc" : "desc"; state.sort = key; load(); },
    }));
    window.__atlas.listDrawnAt = performance.now();  // the load benchmark reads it
    const first = total ? state.offset + 1 : 0, last = Math.min(state.offset + rows.length, total);
    replace(pager,
      h("button", { class: "btn ghost", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE); load(); } }, "‹ Prev"),
      h("span", { class: "muted" }, `${int(first)}–${int(last)} of ${int(total)}`),
      h("button", { class: "btn ghost", disabled: last >= total, onclick: () => { state.offset += PAGE; load(); } }, "Next ›"));
  };

  let inflight = null;
  async function load() {
    const params = { project: state.project, status: state.status, tag: state.tag, q: state.q, sort: state.sort, order: state.order, limit: PAGE, offset: state.offset || "" };
    const qs = new URLSearchParams(Object.entries(params).filter(([k, v]) => v !== "" && !(k === "limit") && !(k === "sort" && v === "started") && !(k === "order" && v === "desc")));
    history.replaceState({}, "", "/" + (qs.toString() ? `?${qs}` : ""));
    if (inflight) inflight.abort();
    inflight = new AbortController();
    try {
      const body = await get("/api/runs", params, { signal: inflight.signal });
      rows = body.runs || [];
      total = body.total ?? rows.length;
      draw();
    } catch (err) {
      if (err.name !== "AbortError") replace(tableBox, errorBox(err));
    }
  }
  await load();

  // live: update rows in place; a new run reloads the first page (throttled)
  let reloadTimer = null;
  const unsubscribe = subscribe("/api/events", {
    run_deleted: (ev) => {
      if (ev && rows.some((r) => r.id === ev.id)) { rows = rows.filter((r) => r.id !== ev.id); total = Math.max(0, total - 1); draw(); }
    },
    run: (run) => {
      if (!run || !run.id) return;
      const i = rows.findIndex((r) => r.id === run.id);
      if (i >= 0) {
        rows[i] = { ...rows[i], ...run };
        const tr = tableBox.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
        if (tr) draw();
      } else if (state.offset === 0 && !reloadTimer) {
        reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 500);
      }
    },
  });
  return () => { unsubscribe(); clearTimeout(reloadTimer); if (inflight) inflight.abort(); };
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
};
// ---- series.js
factories['series'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  STEP_SERIES: { get: () => STEP_SERIES, enumerable: true },
  OTHER_SERIES: { get: () => OTHER_SERIES, enumerable: true },
  stepColumns: { get: () => stepColumns, enumerable: true },
  hasValues: { get: () => hasValues, enumerable: true },
  lossData: { get: () => lossData, enumerable: true },
  stepPoints: { get: () => stepPoints, enumerable: true },
  metricKeys: { get: () => metricKeys, enumerable: true },
  col: { get: () => col, enumerable: true },
  gpuColumns: { get: () => gpuColumns, enumerable: true },
});
// Turning API answers into chart columns: step series (downsampled with min/max), epoch rows, live step events.
const { smooth } = __require('chart');

const STEP_SERIES = ["loss", "lr", "grad_norm", "step_time", "samples_per_sec"];
const OTHER_SERIES = STEP_SERIES.slice(1);

// {step, series: {loss: {y, min, max}}} -> {x, loss: {y, min, max}, ...}
function stepColumns(body) {
  const out = { x: Array.from(body.step || []), total: body.total ?? (body.step || []).length, downsampled: !!body.downsampled, lastStep: body.last_step ?? null };
  for (const [name, s] of Object.entries(body.series || {})) {
    if (!s) continue;
    const y = Array.isArray(s) ? s : s.y || [];
    out[name] = { y: Array.from(y), min: Array.from(s.min || y), max: Array.from(s.max || y), nonfinite: Array.from(s.nonfinite || []) };
  }
  return out;
}

function hasValues(arr) {
  return !!arr && arr.some((v) => v !== null && v !== undefined && Number.isFinite(v));
}

// the loss chart: x, raw, smoothed, band min, band max
function lossData(cols) {
  const s = cols.loss || { y: [], min: [], max: [] };
  // a downsampled point is already the mean of its bucket: smooth lightly, or the curve lags behind the data
  return [cols.x, s.y, smooth(s.y, cols.downsampled ? 0.6 : undefined), s.min, s.max];
}

// A live `step` event may carry one point ({step, loss, lr, ...}), a list of them, or columns
// ({step: [...], series: {loss: [...]}}). Returns a list of {step, name: value}.
function stepPoints(ev) {
  if (!ev) return [];
  if (Array.isArray(ev)) return ev.flatMap(stepPoints);
  if (Array.isArray(ev.points)) return ev.points.flatMap(stepPoints);
  if (Array.isArray(ev.steps)) return ev.steps.flatMap(stepPoints);
  if (Array.isArray(ev.step)) {
    return ev.step.map((step, i) => {
      const p = { step };
      for (const [name, s] of Object.entries(ev.series || {})) {
        if (!s) continue;
        const y = Array.isArray(s) ? s : s.y;
        if (y) p[name] = y[i];
      }
      return p;
    });
  }
  if (typeof ev.step === "number") {
    const p = { step: ev.step };
    for (const [k, v] of Object.entries(ev.series || ev)) {
      if (k === "step") continue;
      const value = v && typeof v === "object" && !Array.isArray(v) ? v.y : v;
      if (typeof value === "number" || value === null) p[k] = value;
    }
    return [p];
  }
  return [];
}

// Known flat fields of an epoch row; everything else numeric is a logged metric (val_loss, val_acc, ...).
const EPOCH_FIELDS = new Set(["epoch", "rank", "started_at", "ended_at", "duration_seconds", "global_step", "loss_mean", "loss_std", "loss_min", "loss_max",
  "loss_count", "loss_nonfinite", "samples_per_sec", "batches_per_sec", "tokens_per_sec", "step_time_p50_s", "step_time_p95_s", "lr", "grad_norm",
  "process_rss_mb", "cuda_allocated_mb", "cpu_percent", "gpu_utilization_percent", "gpu_memory_used_mb", "gpu_power_watts", "gpu_temperature_c",
  "epoch_co2_kg", "cumulative_co2_kg", "cumulative_energy_kwh", "epoch_energy_kwh", "ram_percent", "system_ram_percent", "gpus", "profiler", "system", "memory", "carbon"]);

function metricKeys(rows) {
  const keys = new Set();
  for (const r of rows) for (const [k, v] of Object.entries(r)) if (!EPOCH_FIELDS.has(k) && (typeof v === "number" || v === null)) keys.add(k);
  return [...keys].filter((k) => rows.some((r) => typeof r[k] === "number"));
}

function col(rows, key) {
  return rows.map((r) => (typeof r[key] === "number" ? r[key] : null));
}

// GPU devices: rows[i].gpus = [{index, utilization_percent, memory_used_mb, power_watts, temperature_c}], or the
// flat first-device fields of `atlas epochs --json`.
// The API's epochs answer also lists every device per epoch: gpus = [{epoch, index, utilization_percent, ...}].
function gpuColumns(rows, field, flat, gpus) {
  const devices = new Map();
  if (Array.isArray(gpus) && gpus.length) {
    const at = new Map(rows.map((r, i) => [r.epoch, i]));
    for (const g of gpus) {
      const i = at.get(g.epoch);
      if (i === undefined) continue;
      const key = g.index ?? 0;
      if (!devices.has(key)) devices.set(key, new Array(rows.length).fill(null));
      devices.get(key)[i] = typeof g[field] === "number" ? g[field] : null;
    }
    return [...devices.entries()].filter(([, ys]) => hasValues(ys));
  }
  rows.forEach((r, i) => {
    if (Array.isArray(r.gpus) && r.gpus.length) {
      r.gpus.forEach((g, j) => {
        const key = g.index ?? g.device ?? j;
        if (!devices.has(key)) devices.set(key, new Array(rows.length).fill(null));
        const v = g[field];
        devices.get(key)[i] = typeof v === "number" ? v : null;
      });
    } else if (typeof r[flat] === "number") {
      if (!devices.has(0)) devices.set(0, new Array(rows.length).fill(null));
      devices.get(0)[i] = r[flat];
    }
  });
  return [...devices.entries()].filter(([, ys]) => hasValues(ys));
}
};
// ---- widgets.js
factories['widgets'] = (__require, __import, __exports) => {
Object.defineProperties(__exports, {
  statusBadge: { get: () => statusBadge, enumerable: true },
  healthPill: { get: () => healthPill, enumerable: true },
  gradePill: { get: () => gradePill, enumerable: true },
  severityTag: { get: () => severityTag, enumerable: true },
  spinner: { get: () => spinner, enumerable: true },
  errorBox: { get: () => errorBox, enumerable: true },
});
// Small pieces shared by the pages: status badges, health and grade pills, severity tags.
const { h } = __require('dom');

function statusBadge(status) {
  const s = String(status || "unknown").toLowerCase();
  return h("span", { class: `badge status-${s.replace(/[^a-z]/g, "")}` }, s === "running" ? h("span", { class: "pulse" }) : null, s);
}

function healthPill(score) {
  if (score === null || score === undefined) return h("span", { class: "pill muted", title: "not diagnosed yet" }, "—");
  const cls = score >= 80 ? "good" : score >= 50 ? "warn" : "bad";
  return h("span", { class: `pill health ${cls}`, title: "health score (100 = no active issue)" }, String(Math.round(score)));
}

function gradePill(grade) {
  if (!grade) return h("span", { class: "pill muted", title: "no Green-AI grade yet" }, "—");
  const g = String(grade).toUpperCase();
  return h("span", { class: `pill grade grade-${g.replace(/[^A-F]/g, "")}`, title: "Green-AI grade" }, g);
}

function severityTag(sev) {
  const s = String(sev || "info").toLowerCase();
  return h("span", { class: `sev sev-${s}` }, s);
}

function spinner(text = "Loading…") {
  return h("div", { class: "loading" }, text);
}

function errorBox(err) {
  return h("div", { class: "error-box" }, err && err.message ? err.message : String(err));
}
};
__require('main');
})();
