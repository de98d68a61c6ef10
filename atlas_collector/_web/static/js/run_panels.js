// The run page's tabs: issues (ranked, symptoms folded under their cause), layer heatmap, model, logs, profiler, config.
import { get } from "./api.js?v=f638f1197216";
import { card, h, kv, replace, table, valueText } from "./dom.js?v=f638f1197216";
import { int, num, when } from "./fmt.js?v=f638f1197216";
import { errorBox, severityTag, spinner } from "./widgets.js?v=f638f1197216";
import { heatmap } from "./heatmap.js?v=f638f1197216";

// ---------- issues ----------
export function issuesList(issues, opts = {}) {
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

export function layersPanel(pane, base) {
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
export async function modelPanel(pane, base) {
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

export function logsPanel(pane, base) {
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
export function profilerPanel(pane, epochs) {
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
export function configPanel(pane, run) {
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
