// Turning API answers into chart columns: step series (downsampled with min/max), epoch rows, live step events.
import { smooth } from "./chart.js?v=f638f1197216";

export const STEP_SERIES = ["loss", "lr", "grad_norm", "step_time", "samples_per_sec"];
export const OTHER_SERIES = STEP_SERIES.slice(1);

// {step, series: {loss: {y, min, max}}} -> {x, loss: {y, min, max}, ...}
export function stepColumns(body) {
  const out = { x: Array.from(body.step || []), total: body.total ?? (body.step || []).length, downsampled: !!body.downsampled, lastStep: body.last_step ?? null };
  for (const [name, s] of Object.entries(body.series || {})) {
    if (!s) continue;
    const y = Array.isArray(s) ? s : s.y || [];
    out[name] = { y: Array.from(y), min: Array.from(s.min || y), max: Array.from(s.max || y), nonfinite: Array.from(s.nonfinite || []) };
  }
  return out;
}

export function hasValues(arr) {
  return !!arr && arr.some((v) => v !== null && v !== undefined && Number.isFinite(v));
}

// the loss chart: x, raw, smoothed, band min, band max
export function lossData(cols) {
  const s = cols.loss || { y: [], min: [], max: [] };
  // a downsampled point is already the mean of its bucket: smooth lightly, or the curve lags behind the data
  return [cols.x, s.y, smooth(s.y, cols.downsampled ? 0.6 : undefined), s.min, s.max];
}

// A live `step` event may carry one point ({step, loss, lr, ...}), a list of them, or columns
// ({step: [...], series: {loss: [...]}}). Returns a list of {step, name: value}.
export function stepPoints(ev) {
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

export function metricKeys(rows) {
  const keys = new Set();
  for (const r of rows) for (const [k, v] of Object.entries(r)) if (!EPOCH_FIELDS.has(k) && (typeof v === "number" || v === null)) keys.add(k);
  return [...keys].filter((k) => rows.some((r) => typeof r[k] === "number"));
}

export function col(rows, key) {
  return rows.map((r) => (typeof r[key] === "number" ? r[key] : null));
}

// GPU devices: rows[i].gpus = [{index, utilization_percent, memory_used_mb, power_watts, temperature_c}], or the
// flat first-device fields of `atlas epochs --json`.
// The API's epochs answer also lists every device per epoch: gpus = [{epoch, index, utilization_percent, ...}].
export function gpuColumns(rows, field, flat, gpus) {
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
