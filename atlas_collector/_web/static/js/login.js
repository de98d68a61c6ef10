// The token form, shown when the collector has a token and the browser has no session yet.
import { post } from "./api.js?v=f638f1197216";
import { h, replace } from "./dom.js?v=f638f1197216";

export async function render(app, { next }) {
  document.title = "Sign in · Atlas";
  const token = h("input", { class: "input", type: "password", name: "token", id: "token", autocomplete: "current-password", placeholder: "collector token", required: true, autofocus: true });
  const error = h("div", { class: "form-error", role: "alert" });
  const button = h("button", { class: "btn primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "login-form", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await post("/api/login", { token: token.value });
      const target = next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/";
      window.__atlas.navigate(target);
    } catch (err) {
      error.textContent = err.status === 401 ? "That token is not the collector's token." : err.message;
      button.disabled = false;
      token.select();
    }
  } },
  h("div", { class: "login-mark" }), h("h1", null, "Atlas"), h("p", { class: "muted" }, "This collector needs its token (the one given to atlas-collector --token or ATLAS_TOKEN)."),
  h("label", { for: "token" }, "Token"), token, error, button);
  replace(app, h("div", { class: "login-page" }, form));
  token.focus();
  return null;
}
