// A project's trend across runs: health, best validation loss and carbon per run (as `atlas trend --json`).
import { get } from "./api.js?v=f638f1197216";
import { card, h, link, replace, table } from "./dom.js?v=f638f1197216";
import { COLORS, lineChart } from "./chart.js?v=f638f1197216";
import { int, mass, num, shortId, when } from "./fmt.js?v=f638f1197216";
import { gradePill, healthPill, statusBadge } from "./widgets.js?v=f638f1197216";

export async function render(app, { name }) {
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
