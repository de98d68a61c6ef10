// The page's router: one index.html for every path; each page module renders into #app and returns a cleanup.
import { get, startEarly } from "./api.js?v=5460d1710ab2";
import { clear, replace } from "./dom.js?v=5460d1710ab2";
import { errorBox } from "./widgets.js?v=5460d1710ab2";

const routes = [
  [/^\/$/, () => import("./runs.js?v=5460d1710ab2"), () => ({})],
  [/^\/runs\/([^/]+)\/?$/, () => import("./run.js?v=5460d1710ab2"), (m) => ({ id: decodeURIComponent(m[1]) })],
  [/^\/compare\/?$/, () => import("./compare.js?v=5460d1710ab2"), () => ({ runs: (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean) })],
  [/^\/projects\/([^/]+)\/?$/, () => import("./project.js?v=5460d1710ab2"), (m) => ({ name: decodeURIComponent(m[1]) })],
  [/^\/login\/?$/, () => import("./login.js?v=5460d1710ab2"), () => ({ next: new URLSearchParams(location.search).get("next") || "/" })],
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

startEarly(location.pathname);  // a run page's step series, requested before its modules load
get("/api/info").then((info) => {
  if (info && info.version) document.getElementById("version").textContent = `v${info.version}`;
}).catch(() => {});
render();
