// Talking to the collector's JSON API. A 401 sends the page to the login form; POSTs carry the CSRF header.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

export function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

async function handle(resp) {
  if (resp.status === 401 && !location.pathname.startsWith("/login")) {
    const next = location.pathname + location.search;
    history.pushState({}, "", "/login?next=" + encodeURIComponent(next));
    window.dispatchEvent(new PopStateEvent("popstate"));
    throw new ApiError(401, "login required");
  }
  let body = null;
  const text = await resp.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!resp.ok) {
    const err = new ApiError(resp.status, (body && body.error) || `${resp.status} ${resp.statusText}`);
    err.body = body;
    throw err;
  }
  return body;
}

// A GET of the JSON API. The first requests of a run page were sent by early.js before this script ran: the first
// get() of one of those URLs takes its answer; any later one asks again.
export async function get(path, params, opts = {}) {
  const target = url(path, params);
  const early = window.__atlas.early.get(target);
  if (early) {
    window.__atlas.early.delete(target);
    return handle(await early);
  }
  const resp = await fetch(target, { credentials: "same-origin", headers: { Accept: "application/json" }, signal: opts.signal });
  return handle(resp);
}

export async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-Atlas-CSRF": cookie("atlas_csrf") },
    body: JSON.stringify(body || {}),
  });
  return handle(resp);
}

// A POST whose answer is a server-sent-event stream (the agent): calls onEvent(name, data) per event.
export async function postStream(path, body, onEvent, signal) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-Atlas-CSRF": cookie("atlas_csrf") },
    body: JSON.stringify(body || {}),
    signal,
  });
  if (!resp.ok || !resp.body) return handle(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const chunk = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of chunk.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      let parsed = data.join("\n");
      try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
      onEvent(event, parsed);
    }
  }
}

// An EventSource that reconnects (the browser does) and reports its state on the live dot.
export function subscribe(path, handlers) {
  const es = new EventSource(path, { withCredentials: true });
  const dot = document.getElementById("live-dot");
  es.onopen = () => dot && dot.classList.add("on");
  es.onerror = () => dot && dot.classList.remove("on");
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (ev) => {
      let data = ev.data;
      try { data = JSON.parse(ev.data); } catch { /* plain text */ }
      fn(data);
    });
  }
  return () => { es.close(); dot && dot.classList.remove("on"); };
}

// The run page's step requests (the loss; the other step series, as series.js's OTHER_SERIES), sized by early.js.
export function stepRequest(id, kind, from, to) {
  return get(`/api/runs/${encodeURIComponent(id)}/steps`, { ...window.__atlas.stepParams(kind), from, to });
}
