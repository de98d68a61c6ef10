// One run: header with controls, live charts, issues, health, Green-AI card, and tabs for the rest.
import { get, post, stepRequest, subscribe } from "./api.js?v=f638f1197216";
import { card, h, link, replace } from "./dom.js?v=f638f1197216";
import { COLORS, alpha, emptyChart, lineChart, smooth } from "./chart.js?v=f638f1197216";
import { duration, energy, equivalent, euro, int, mass, num, runDuration, shortId, when } from "./fmt.js?v=f638f1197216";
import { OTHER_SERIES, col, gpuColumns, hasValues, lossData, metricKeys, stepColumns, stepPoints } from "./series.js?v=f638f1197216";
import { errorBox, gradePill, healthPill, spinner, statusBadge } from "./widgets.js?v=f638f1197216";
import { issuesList, layersPanel, modelPanel, logsPanel, profilerPanel, configPanel } from "./run_panels.js?v=f638f1197216";
import { agentPanel } from "./agent.js?v=f638f1197216";
import { metricsPanel } from "./metrics.js?v=f638f1197216";

const POINTS = 2000;

export async function render(app, { id }) {
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
