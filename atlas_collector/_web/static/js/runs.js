// The runs list: filters, server-side sort and paging (10,000 runs stay fast), live updates from /api/events.
import { get, subscribe } from "./api.js?v=f638f1197216";
import { h, link, replace, table } from "./dom.js?v=f638f1197216";
import { duration, int, runDuration, when, shortId } from "./fmt.js?v=f638f1197216";
import { errorBox, gradePill, healthPill, statusBadge } from "./widgets.js?v=f638f1197216";
import { navigate } from "./main.js?v=f638f1197216";

const PAGE = 50;
const STATUSES = ["", "running", "paused", "completed", "failed", "stopped", "crashed"];

export async function render(app) {
  const q = new URLSearchParams(location.search);
  const state = {
    project: q.get("project") || "", status: q.get("status") || "", tag: q.get("tag") || "", q: q.get("q") || "",
    sort: q.get("sort") || "started", order: q.get("order") || "desc", offset: Number(q.get("offset") || 0),
  };
  const selected = new Set();
  let rows = [];
  let total = 0;

  const input = (key, placeholder) => h("input", { class: "input", type: "search", placeholder, value: state[key], "aria-label": placeholder, oninput: debounce((ev) => { state[key] = ev.target.value.trim(); state.offset = 0; load(); }, 250) });
  const statusSel = h("select", { class: "input", "aria-label": "status", onchange: (ev) => { state.status = ev.target.value; state.offset = 0; load(); } },
    STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s || "any status")));
  const compareBtn = h("button", { class: "btn", disabled: true, onclick: () => navigate(`/compare?runs=${[...selected].join(",")}`) }, "Compare");
  const count = h("span", { class: "muted" });
  const tableBox = h("div", { class: "table-box" });
  const pager = h("div", { class: "pager" });

  replace(app,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), count),
    h("div", { class: "filters" }, input("q", "Search name or id"), input("project", "Project"), statusSel, input("tag", "Tag"), h("span", { class: "grow" }), compareBtn),
    tableBox, pager);

  const columns = [
    { key: "sel", label: "", cls: "col-sel", render: (r) => h("input", { type: "checkbox", "aria-label": "select for compare", checked: selected.has(r.id), onchange: (ev) => { ev.target.checked ? selected.add(r.id) : selected.delete(r.id); compareBtn.disabled = selected.size < 2; compareBtn.textContent = selected.size >= 2 ? `Compare ${selected.size}` : "Compare"; } }) },
    { key: "status", label: "Status", sort: "status", render: (r) => statusBadge(r.status) },
    { key: "name", label: "Name", sort: "name", cls: "col-name", render: (r) => h("div", null, link(`/runs/${encodeURIComponent(r.id)}`, r.name || shortId(r.id)), h("div", { class: "sub mono" }, shortId(r.id))) },
    { key: "project", label: "Project", render: (r) => (r.project ? link(`/projects/${encodeURIComponent(r.project)}`, r.project) : "—") },
    { key: "health", label: "Health", sort: "health", cls: "num", render: (r) => healthPill(r.health ?? r.health_score) },
    { key: "grade", label: "Green", cls: "num", render: (r) => gradePill(r.grade) },
    { key: "epochs", label: "Epochs", cls: "num", render: (r) => int(r.epochs) },
    { key: "steps", label: "Steps", cls: "num", render: (r) => int(r.steps) },
    { key: "started_at", label: "Started", sort: "started", render: (r) => h("span", { title: r.started_at || "" }, when(r.started_at)) },
    { key: "duration", label: "Duration", sort: "duration", cls: "num", render: (r) => duration(runDuration(r)) },
    { key: "tags", label: "Tags", render: (r) => h("div", { class: "tags" }, (r.tags || []).map((t) => h("span", { class: "tag", onclick: () => { state.tag = t; state.offset = 0; load(); } }, t))) },
  ];

  const draw = () => {
    replace(count, `${int(total)} run${total === 1 ? "" : "s"}`);
    if (!rows.length) { replace(tableBox, h("div", { class: "empty big" }, total ? "No runs on this page." : "No runs match. Train with the Atlas callback and runs appear here live.")); replace(pager); return; }
    replace(tableBox, table(columns, rows, {
      cls: "grid runs", sort: state.sort, order: state.order,
      rowAttrs: (r) => ({ dataset: { run: r.id } }),
      onSort: (key) => { state.order = state.sort === key && state.order === "desc" ? "asc" : "desc"; state.sort = key; load(); },
    }));
    window.__atlas.listDrawnAt = performance.now();  // the load benchmark reads it
    const first = total ? state.offset + 1 : 0, last = Math.min(state.offset + rows.length, total);
    replace(pager,
      h("button", { class: "btn ghost", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE); load(); } }, "‹ Prev"),
      h("span", { class: "muted" }, `${int(first)}–${int(last)} of ${int(total)}`),
      h("button", { class: "btn ghost", disabled: last >= total, onclick: () => { state.offset += PAGE; load(); } }, "Next ›"));
  };

  let inflight = null;
  async function load() {
    const params = { project: state.project, status: state.status, tag: state.tag, q: state.q, sort: state.sort, order: state.order, limit: PAGE, offset: state.offset || "" };
    const qs = new URLSearchParams(Object.entries(params).filter(([k, v]) => v !== "" && !(k === "limit") && !(k === "sort" && v === "started") && !(k === "order" && v === "desc")));
    history.replaceState({}, "", "/" + (qs.toString() ? `?${qs}` : ""));
    if (inflight) inflight.abort();
    inflight = new AbortController();
    try {
      const body = await get("/api/runs", params, { signal: inflight.signal });
      rows = body.runs || [];
      total = body.total ?? rows.length;
      draw();
    } catch (err) {
      if (err.name !== "AbortError") replace(tableBox, errorBox(err));
    }
  }
  await load();

  // live: update rows in place; a new run reloads the first page (throttled)
  let reloadTimer = null;
  const unsubscribe = subscribe("/api/events", {
    run_deleted: (ev) => {
      if (ev && rows.some((r) => r.id === ev.id)) { rows = rows.filter((r) => r.id !== ev.id); total = Math.max(0, total - 1); draw(); }
    },
    run: (run) => {
      if (!run || !run.id) return;
      const i = rows.findIndex((r) => r.id === run.id);
      if (i >= 0) {
        rows[i] = { ...rows[i], ...run };
        const tr = tableBox.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
        if (tr) draw();
      } else if (state.offset === 0 && !reloadTimer) {
        reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 500);
      }
    },
  });
  return () => { unsubscribe(); clearTimeout(reloadTimer); if (inflight) inflight.abort(); };
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
