// The page's router: one index.html for every path; each page module renders into #app and returns a cleanup.
import { get } from "./api.js?v=f638f1197216";
import { clear, replace } from "./dom.js?v=f638f1197216";
import { errorBox } from "./widgets.js?v=f638f1197216";

const routes = [
  [/^\/$/, () => import("./runs.js?v=f638f1197216"), () => ({})],
  [/^\/runs\/([^/]+)\/?$/, () => import("./run.js?v=f638f1197216"), (m) => ({ id: decodeURIComponent(m[1]) })],
  [/^\/compare\/?$/, () => import("./compare.js?v=f638f1197216"), () => ({ runs: (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean) })],
  [/^\/projects\/([^/]+)\/?$/, () => import("./project.js?v=f638f1197216"), (m) => ({ name: decodeURIComponent(m[1]) })],
  [/^\/login\/?$/, () => import("./login.js?v=f638f1197216"), () => ({ next: new URLSearchParams(location.search).get("next") || "/" })],
];

let cleanup = null;
let seq = 0;

export function navigate(path) {
  history.pushState({}, "", path);
  render();
}
window.__atlas = window.__atlas || { charts: {} };
window.__atlas.navigate = navigate;

async function render() {
  const mine = ++seq;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  const app = document.getElementById("app");
  document.getElementById("banner").hidden = true;
  for (const a of document.querySelectorAll(".topnav a")) {
    const nav = a.dataset.nav;
    a.classList.toggle("active", (nav === "runs" && (location.pathname === "/" || location.pathname.startsWith("/runs"))) || (nav === "compare" && location.pathname.startsWith("/compare")));
  }
  for (const [re, load, params] of routes) {
    const m = location.pathname.match(re);
    if (!m) continue;
    try {
      const mod = await load();
      if (mine !== seq) return;
      clear(app);
      cleanup = (await mod.render(app, params(m))) || null;
    } catch (err) {
      if (mine === seq && err.status !== 401) replace(app, errorBox(err));
    }
    return;
  }
  replace(app, errorBox(`No page at ${location.pathname}`));
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-link]");
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const href = a.getAttribute("href");
  if (!href || !href.startsWith("/")) return;
  ev.preventDefault();
  if (href !== location.pathname + location.search) navigate(href);
});
window.addEventListener("popstate", render);

// the version label after the page's own data: its request would take a connection and server time from them
render().finally(() => get("/api/info").then((info) => {
  if (info && info.version) document.getElementById("version").textContent = `v${info.version}`;
}).catch(() => {}));
