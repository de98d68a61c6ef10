// Compare: two or more runs overlaid (step loss, per-epoch metrics), hyperparameters side by side with differences marked.
import { get } from "./api.js?v=f638f1197216";
import { card, h, link, replace } from "./dom.js?v=f638f1197216";
import { COLORS, emptyChart, lineChart, smooth } from "./chart.js?v=f638f1197216";
import { duration, int, mass, num, runDuration, shortId } from "./fmt.js?v=f638f1197216";
import { col, hasValues, metricKeys, stepColumns } from "./series.js?v=f638f1197216";
import { errorBox, gradePill, healthPill, statusBadge } from "./widgets.js?v=f638f1197216";

export async function render(app, { runs }) {
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
