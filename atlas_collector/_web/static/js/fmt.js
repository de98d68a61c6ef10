// Number, time and unit formatting shared by the pages.

export function num(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return Number(v.toPrecision(digits)).toString();
}

export function int(v) {
  return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US");
}

export function mass(kg) {
  if (typeof kg !== "number" || !Number.isFinite(kg)) return "—";
  if (kg >= 1) return `${num(kg, 3)} kg`;
  if (kg >= 1e-3) return `${num(kg * 1e3, 3)} g`;
  return `${num(kg * 1e6, 3)} mg`;
}

export function energy(kwh) {
  if (typeof kwh !== "number" || !Number.isFinite(kwh)) return "—";
  if (kwh >= 1) return `${num(kwh, 3)} kWh`;
  return `${num(kwh * 1e3, 3)} Wh`;
}

export function euro(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  return v > 0 && v < 0.01 ? "< €0.01" : `€${v.toFixed(2)}`;
}

// A CO₂ equivalent in a unit a person can picture (the CLI's `atlas green` names the same four).
export function equivalent(key, v) {
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

export function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${seconds < 10 ? seconds.toFixed(1) : s}s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return `${d}d ${h % 24}h`;
  if (h) return `${h}h ${m % 60}m`;
  return `${m}m ${s % 60}s`;
}

export function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const ago = (Date.now() - t.getTime()) / 1000;
  if (ago >= 0 && ago < 60) return "just now";
  if (ago >= 0 && ago < 3600) return `${Math.floor(ago / 60)} min ago`;
  if (ago >= 0 && ago < 86400) return `${Math.floor(ago / 3600)} h ago`;
  return t.toISOString().slice(0, 16).replace("T", " ");
}

export function runDuration(run) {
  if (typeof run.duration_seconds === "number") return run.duration_seconds;
  if (!run.started_at) return null;
  const end = run.ended_at ? new Date(run.ended_at) : new Date();
  return (end - new Date(run.started_at)) / 1000;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}
