// What every page shares: the API helper, messages, the confirmation dialog.

const $ = (id) => document.getElementById(id);
const hooks = { signedOut: async () => {}, csrf: () => "" };

/** app.js tells the helper how to find the CSRF token and what to do when the session ends. */
export function configure({ signedOut, csrf }) { hooks.signedOut = signedOut; hooks.csrf = csrf; }

// -- messages -------------------------------------------------------------------
export function showError(message) { banner(message, "error"); }
export function showNotice(message) { banner(message, "notice"); }
function banner(message, kind) {
  $("banner-text").textContent = message;
  $("banner").className = `banner ${kind}`;
  $("banner").hidden = false;
  if (kind === "notice") setTimeout(() => { if ($("banner-text").textContent === message) $("banner").hidden = true; }, 4000);
}
export function clearMessage() { $("banner").hidden = true; }

// -- the API ----------------------------------------------------------------------
export class ApiError extends Error {
  constructor(message, status, code, body) { super(message); this.status = status; this.code = code; this.body = body; }
}

/** Call the terminal's JSON API; changes carry the CSRF token. Errors become ApiError with the server's message. */
export async function api(path, { method = "GET", body, form } = {}) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = hooks.csrf();
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    throw new ApiError("The terminal cannot be reached. Check the network, or that edgetl is running.", 0, "network");
  }
  let data = {};
  try { data = await response.json(); } catch { /* an empty body */ }
  if (!response.ok) {
    const error = new ApiError(data.error || `${response.status} ${response.statusText}`, response.status, data.code || "", data);
    if (response.status === 401 && path !== "/api/session") await hooks.signedOut(error.message, error.code);
    throw error;
  }
  return data;
}

/** Run an action; show its error in the banner instead of throwing. Returns the result, or null on failure. */
export async function attempt(action) {
  try { return await action(); } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) showError(err.message);
    return null;
  }
}

export function confirmDialog(text, okLabel = "Confirm") {
  return new Promise((resolve) => {
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    const dialog = $("confirm");
    dialog.returnValue = "";
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.showModal();
  });
}

/** The pending badge in the navigation. */
export async function refreshPending(task) {
  if (!task) return;
  const summary = await api(`/api/review/summary?task=${encodeURIComponent(task)}`).catch(() => null);
  const pending = Number(summary?.tasks?.[0]?.pending || 0);
  $("pending-badge").textContent = String(pending);
  $("pending-badge").hidden = pending === 0;
}
