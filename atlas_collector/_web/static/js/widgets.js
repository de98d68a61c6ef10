// Small pieces shared by the pages: status badges, health and grade pills, severity tags.
import { h } from "./dom.js?v=f638f1197216";

export function statusBadge(status) {
  const s = String(status || "unknown").toLowerCase();
  return h("span", { class: `badge status-${s.replace(/[^a-z]/g, "")}` }, s === "running" ? h("span", { class: "pulse" }) : null, s);
}

export function healthPill(score) {
  if (score === null || score === undefined) return h("span", { class: "pill muted", title: "not diagnosed yet" }, "—");
  const cls = score >= 80 ? "good" : score >= 50 ? "warn" : "bad";
  return h("span", { class: `pill health ${cls}`, title: "health score (100 = no active issue)" }, String(Math.round(score)));
}

export function gradePill(grade) {
  if (!grade) return h("span", { class: "pill muted", title: "no Green-AI grade yet" }, "—");
  const g = String(grade).toUpperCase();
  return h("span", { class: `pill grade grade-${g.replace(/[^A-F]/g, "")}`, title: "Green-AI grade" }, g);
}

export function severityTag(sev) {
  const s = String(sev || "info").toLowerCase();
  return h("span", { class: `sev sev-${s}` }, s);
}

export function spinner(text = "Loading…") {
  return h("div", { class: "loading" }, text);
}

export function errorBox(err) {
  return h("div", { class: "error-box" }, err && err.message ? err.message : String(err));
}
