// The Metrics tab: every scalar the training code logged (observer.log, AtlasLogger, the Transformers Trainer's
// logs, wandb_compat.log), one chart per key over steps, and a table of the keys with their last values.
import { get } from "./api.js?v=f638f1197216";
import { card, h, replace, table } from "./dom.js?v=f638f1197216";
import { COLORS, lineChart } from "./chart.js?v=f638f1197216";
import { int, num, when } from "./fmt.js?v=f638f1197216";
import { errorBox, spinner } from "./widgets.js?v=f638f1197216";

const MAX_CHARTS = 24;
const POINTS = 5000;  // the newest points of each key

export async function metricsPanel(pane, base) {
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
