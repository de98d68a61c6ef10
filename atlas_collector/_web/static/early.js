// A run page's first requests, sent while the page's scripts load. This small classic script runs as soon as it
// arrives (index.html loads it before the deferred uPlot and atlas.js), so the server works on the run's data
// while the browser compiles the rest. api.js's get() takes each answer once (window.__atlas.early); stepParams
// is the one place that sizes a step request.
(() => {
  "use strict";
  const atlas = (window.__atlas = window.__atlas || { charts: {} });
  // min/max buckets of about a pixel each: the wide loss chart ("loss") and the half-width ones (the other series)
  atlas.stepParams = (kind) => {
    const plotWidth = Math.max(600, Math.min(window.innerWidth, 1680) - 440);
    return kind === "loss"
      ? { series: "loss", points: Math.min(2000, plotWidth) }
      : { series: "lr,grad_norm,step_time,samples_per_sec", points: Math.min(2000, Math.ceil(plotWidth / 2)) };
  };
  atlas.early = new Map();  // URL (path and query, as api.js's url() writes it) -> the promise of its Response
  const m = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
  if (!m) return;
  const base = `/api/runs/${encodeURIComponent(decodeURIComponent(m[1]))}`;
  const urls = ["loss", "other"].map((kind) => `${base}/steps?${new URLSearchParams(atlas.stepParams(kind))}`);
  urls.push(`${base}/epochs`, `${base}/issues`, `${base}/health`, `${base}?grade=cached`);
  for (const u of urls) {
    const answer = fetch(u, { credentials: "same-origin", headers: { Accept: "application/json" } });
    answer.catch(() => {});  // a failure is reported by the page's own get() when it takes this answer
    atlas.early.set(u, answer);
  }
})();
