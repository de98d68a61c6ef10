// Line charts on uPlot: dark axes, legends, a min/max band for downsampled data, issue markers, drag to zoom
// (the page re-fetches full resolution for the visible range), double-click to reset.
// Every chart is registered on window.__atlas.charts[id] so tests and the benchmark can read what it holds.
import { h } from "./dom.js?v=f638f1197216";
import { num } from "./fmt.js?v=f638f1197216";

export const COLORS = ["#5b9cf6", "#f2a23a", "#4cc38a", "#b07cf7", "#f0616d", "#3fc1c9", "#e5c15b", "#ef7fbf", "#8fa3bf", "#a3d16b"];
const SEV_COLOR = { critical: "#f0616d", warning: "#f2a23a", info: "#5b9cf6" };

window.__atlas = window.__atlas || { charts: {} };
export const registry = window.__atlas.charts;

export function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

// TensorBoard's debiased exponential moving average; the weight follows the point count.
export function smooth(y, weight) {
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
        // hover targets with the title (set as an attribute: text, never HTML)
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
export function lineChart(spec) {
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

export function emptyChart(title, text) {
  return h("section", { class: "card chart-card" }, h("div", { class: "chart-head" }, h("h3", { class: "card-title" }, title)), h("div", { class: "chart-empty" }, text));
}
