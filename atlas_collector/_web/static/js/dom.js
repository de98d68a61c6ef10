// Building DOM nodes. Every string becomes a text node: nothing here ever parses HTML, so a run named
// `<img src=x onerror=alert(1)>` shows as those characters.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "value") el.value = value;
      else if (key === "checked" || key === "disabled" || key === "hidden" || key === "selected") el[key] = !!value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// A link that the router follows without reloading the page.
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

export function table(columns, rows, opts = {}) {
  // columns: [{key, label, render?(row) -> node|string, cls?, sort?}]
  const thead = h("thead", null, h("tr", null, columns.map((c) => {
    const th = h("th", { class: [c.cls, c.sort ? "sortable" : null].filter(Boolean).join(" ") || null }, c.label);
    if (c.sort && opts.onSort) {
      th.addEventListener("click", () => opts.onSort(c.sort));
      if (opts.sort === c.sort) th.append(h("span", { class: "sort-ind" }, opts.order === "asc" ? " ▲" : " ▼"));
    }
    return th;
  })));
  const tbody = h("tbody");
  for (const row of rows) tbody.appendChild(tableRow(columns, row, opts));
  return h("table", { class: opts.cls || "grid" }, thead, tbody);
}

export function tableRow(columns, row, opts = {}) {
  const tr = h("tr", opts.rowAttrs ? opts.rowAttrs(row) : null);
  for (const c of columns) {
    const v = c.render ? c.render(row) : row[c.key];
    tr.appendChild(h("td", { class: c.cls || null }, v === undefined || v === null ? "—" : v));
  }
  return tr;
}

export function kv(obj, opts = {}) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("div", { class: "empty" }, opts.empty || "none");
  return h("table", { class: "kv" }, h("tbody", null, entries.map(([k, v]) => h("tr", { class: opts.highlight && opts.highlight.has(k) ? "diff" : null },
    h("th", null, k), h("td", null, valueText(v))))));
}

export function valueText(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h3", { class: "card-title" }, title) : null, ...body);
}
