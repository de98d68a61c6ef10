// The layer-health heatmap on a canvas: layers down, sampled steps or epochs across, value as colour.
import { h } from "./dom.js?v=f638f1197216";
import { num } from "./fmt.js?v=f638f1197216";

// viridis, 9 stops
const STOPS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];

function color(t) {
  if (!Number.isFinite(t)) return "#2a2f3a";
  t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.floor(t), f = t - i, a = STOPS[i], b = STOPS[Math.min(i + 1, STOPS.length - 1)];
  return `rgb(${Math.round(a[0] + (b[0] - a[0]) * f)},${Math.round(a[1] + (b[1] - a[1]) * f)},${Math.round(a[2] + (b[2] - a[2]) * f)})`;
}

export function heatmap(data, opts = {}) {
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
