// The agent side panel: ask a question about the run; the answer streams in (POST /api/runs/{id}/ask, SSE).
import { postStream } from "./api.js?v=f638f1197216";
import { h } from "./dom.js?v=f638f1197216";

export function agentPanel(base) {
  const log = h("div", { class: "agent-log" }, h("div", { class: "muted small" }, "Ask about this run: why the loss plateaued, what to change, which layer is dead…"));
  const input = h("textarea", { class: "input agent-input", rows: "3", placeholder: "Why did validation loss go up after epoch 3?", "aria-label": "question" });
  let controller = null;
  const send = h("button", { class: "btn primary", type: "submit" }, "Ask");
  const form = h("form", { class: "agent-form", onsubmit: (ev) => { ev.preventDefault(); ask(); } }, input, send);
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.metaKey || ev.ctrlKey)) { ev.preventDefault(); ask(); } });
  const el = h("aside", { class: "agent", hidden: true }, h("div", { class: "agent-head" }, h("h3", null, "Ask Atlas"), h("button", { class: "btn ghost small", type: "button", onclick: () => { el.hidden = true; } }, "×")), log, form);

  async function ask() {
    const question = input.value.trim();
    if (!question || controller) return;
    input.value = "";
    log.appendChild(h("div", { class: "msg user" }, question));
    const answer = h("div", { class: "msg bot" });
    const tools = h("div", { class: "agent-tools small muted" });
    log.append(tools, answer);
    controller = new AbortController();
    send.disabled = true;
    try {
      await postStream(`${base}/ask`, { question }, (event, data) => {
        const text = typeof data === "string" ? data : data && (data.text ?? data.token ?? data.message ?? data.error ?? "");
        if (event === "token") answer.appendChild(document.createTextNode(text));
        else if (event === "tool") tools.appendChild(h("div", null, `⚙ ${typeof data === "string" ? data : data.name || data.tool || JSON.stringify(data)}`));
        else if (event === "error") {
          answer.appendChild(h("div", { class: "form-error" }, text));
          if (data && data.fallback) answer.append(h("div", { class: "muted small fallback-label" }, "Atlas's own diagnosis:"), h("div", { class: "fallback" }, data.fallback));
        }
        log.scrollTop = log.scrollHeight;
      }, controller.signal);
    } catch (err) {
      answer.appendChild(h("div", { class: "form-error" }, err.message));
      // without an LLM the collector still answers with Atlas's own diagnosis
      if (err.body && err.body.fallback) answer.append(h("div", { class: "muted small fallback-label" }, "Atlas's own diagnosis:"), h("div", { class: "fallback" }, err.body.fallback));
    } finally {
      controller = null;
      send.disabled = false;
    }
  }
  return {
    el,
    toggle() { el.hidden = !el.hidden; if (!el.hidden) input.focus(); },
    close() { if (controller) controller.abort(); },
  };
}
