// The operator terminal: session, routing, the task picker, messages, and the API helper.
// Each page is a module under pages/ exporting render(ctx) -> cleanup function.
// No framework and no build step: plain ES modules served as they are.

import { render as overview } from "./pages/overview.js";
import { render as review } from "./pages/review.js";
import { render as label } from "./pages/label.js";
import { render as train } from "./pages/train.js";
import { render as versions } from "./pages/versions.js";
import { add, clear, h } from "./dom.js";
import { ApiError, api, attempt, clearMessage, configure, refreshPending, showError } from "./core.js";

const PAGES = { overview, review, label, train, versions };
const state = { session: null, tasks: [], task: localStorage.getItem("edgetl.task") || "", cleanup: null, keys: null };
const $ = (id) => document.getElementById(id);

// -- session and sign-in ------------------------------------------------------------------
let starting = null;  // one check at a time: a page whose session ended gets several 401s at once

function startSession(reason = "") {
  if (!starting) starting = checkSession(reason).finally(() => { starting = null; });
  return starting;
}

async function checkSession(reason) {
  let session;
  try { session = await api("/api/session"); } catch (err) {
    renderUnreachable(err.message);
    return;
  }
  state.session = session;
  if (!session.signed_in) { renderSignIn(reason || session.expired); return; }
  $("user").textContent = `${session.name} · ${session.role}`;
  $("user").hidden = false;
  $("sign-out").hidden = !session.security;
  $("nav").hidden = false;
  await loadTasks();
  route();
}

function renderUnreachable(message) {
  showError(message);
  const root = $("page");
  clear(root);
  add(root, h("section", { class: "card narrow" }, [
    h("h1", {}, "Waiting for the server"),
    h("p", {}, message),
    h("p", { class: "muted" }, "Trying again every 5 seconds."),
  ]));
  setTimeout(() => startSession(), 5000);
}

function renderSignIn(reason) {
  leavePage();
  clearMessage();  // the form says why; an error from the page before is not this page's
  $("nav").hidden = true; $("task-picker").hidden = true; $("user").hidden = true; $("sign-out").hidden = true;
  const root = $("page");
  clear(root);
  const token = h("input", { type: "password", id: "token", autocomplete: "current-password", placeholder: "Your token" });
  const message = h("p", { class: "form-error", id: "sign-in-error", role: "alert" }, reason || "");
  const form = h("form", { class: "card narrow", id: "sign-in" }, [
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "This line's server checks who you are. Sign in with the token your admin gave you (edgetl token new)."),
    token, message,
    h("button", { class: "big primary", type: "submit" }, "Sign in"),
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      state.session = await api("/api/session", { method: "POST", body: { token: token.value } });
      token.value = "";
      clearMessage();
      await startSession();
    } catch (err) {
      message.textContent = err.message;
    }
  });
  add(root, form);
  token.focus();
}

$("sign-out").addEventListener("click", async () => {
  await attempt(() => api("/api/session", { method: "DELETE" }));
  state.session = null;
  startSession("You signed out.");
});
$("banner-close").addEventListener("click", clearMessage);

// -- tasks --------------------------------------------------------------------
async function loadTasks() {
  const data = await attempt(() => api("/api/tasks"));
  if (!data) return;
  state.tasks = data.tasks || [];
  const select = $("task-select");
  clear(select);
  const own = state.tasks.filter((t) => !t.builtin);
  for (const t of own) add(select, h("option", { value: t.name }, t.name));
  if (!own.some((t) => t.name === state.task)) state.task = own[0]?.name || "";
  select.value = state.task;
  $("task-picker").hidden = own.length === 0;
}

$("task-select").addEventListener("change", (event) => {
  state.task = event.target.value;
  localStorage.setItem("edgetl.task", state.task);
  route();
});

function currentTask() { return state.tasks.find((t) => t.name === state.task) || null; }

// -- routing ----------------------------------------------------------------------
function leavePage() {
  if (state.cleanup) { try { state.cleanup(); } catch { /* a page that failed to render */ } }
  state.cleanup = null; state.keys = null;
}

async function route() {
  if (!state.session?.signed_in) return;
  const name = (location.hash.replace(/^#\//, "").split("?")[0]) || "overview";
  const page = PAGES[name] ? name : "overview";
  leavePage();
  clearMessage();  // messages belong to the page they came from
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  const root = $("page");
  clear(root);
  root.dataset.page = page;
  const ctx = {
    root, session: state.session, task: currentTask(), tasks: state.tasks,
    onKey: (handler) => { state.keys = handler; },
    reloadTasks: async () => { await loadTasks(); ctx.task = currentTask(); return ctx.task; },
  };
  try {
    state.cleanup = (await PAGES[page](ctx)) || null;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(err.message);
    if (!(err instanceof ApiError)) setTimeout(() => { throw err; });  // a bug, not a refusal: let it show as one
  }
  refreshPending(state.task);
}

window.addEventListener("hashchange", route);
document.addEventListener("keydown", (event) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) && event.key !== "Escape";
  if (typing || (event.ctrlKey && event.key !== "a") || event.metaKey || event.altKey || $("confirm").open) return;
  if (state.keys && state.keys(event) === true) event.preventDefault();
});

configure({
  // A late call of the page that was signed out changes nothing: the sign-in form (and why) is already up.
  signedOut: (reason, code) => (state.session && !state.session.signed_in && code === "signed_out" ? null : startSession(reason)),
  csrf: () => state.session?.csrf || "",
});
startSession();
