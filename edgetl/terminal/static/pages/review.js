// Review: the queue of a task, least sure first. Keyboard first:
//   Enter accept · 1–9 that class · Esc or X reject · S skip · ←/→ move · G grid · +/−/0 zoom
// An anomaly task adds E: the part is good, add it to the bank now (a new version serves at once),
// and H: the image alone, or with its anomaly map (red where it is unlike the good parts; shown first).
// In the grid: click (shift-click for a range) to select, A selects all, 1–9 labels the selection,
// Enter accepts it, X rejects it, Esc clears the selection.

import { api, attempt, refreshPending, showError } from "../core.js";
import { add, ago, bar, clear, h } from "../dom.js";

const PAGE_SIZE = 60;
const THUMB = 240;

export async function render(ctx) {
  const task = ctx.task;
  if (!task) {
    add(ctx.root, h("section", { class: "card" }, [h("h1", {}, "Review"), h("p", {}, "There is no task to review yet.")]));
    return null;
  }
  const classes = task.class_names;
  const anomaly = task.kind === "anomaly";
  const view = {
    items: [], index: 0, total: 0, next: "", mode: "single", selected: new Set(), anchor: null, busy: false, last: "",
    heat: anomaly, heatUrl: "",  // an anomaly task's map over the image: on until the operator turns it off (H)
    filters: { state: "pending", reason: "", predicted: "", min_score: "", max_score: "", order: "score" },
  };
  const zoom = { scale: 1, x: 0, y: 0 };

  // -- filters -----------------------------------------------------------------------------------
  const select = (name, label, options) => {
    const el = h("select", { name, "aria-label": label }, options.map(([value, text]) => h("option", { value }, text)));
    el.value = view.filters[name];
    el.addEventListener("change", () => { view.filters[name] = el.value; reload(); });
    return h("label", {}, [label, el]);
  };
  const number = (name, label) => {
    const el = h("input", { type: "number", name, min: 0, max: 1, step: 0.05, placeholder: name === "min_score" ? "0" : "1", "aria-label": label });
    el.addEventListener("change", () => { view.filters[name] = el.value; reload(); });
    return h("label", { class: "score-filter" }, [label, el]);
  };
  const modeButton = h("button", { class: "quiet", id: "mode" }, "Grid (G)");
  modeButton.addEventListener("click", () => setMode(view.mode === "single" ? "grid" : "single"));
  const count = h("span", { class: "muted", id: "queue-count" });
  const filters = h("div", { class: "filters" }, [
    select("state", "Show", [["pending", "Pending"], ["skipped", "Skipped"], ["resolved", "Resolved"], ["all", "All"]]),
    select("reason", "Reason", [["", "Any"], ["uncertain", "Uncertain"], ["random", "Random sample"], ["flagged", "Flagged"]]),
    select("predicted", "Predicted", [["", "Any class"], ...classes.map((c) => [c, c])]),
    number("min_score", "Score ≥"), number("max_score", "Score ≤"),
    select("order", "Order", [["score", "Least sure first"], ["-score", "Most sure first"], ["-time", "Newest first"], ["time", "Oldest first"]]),
    modeButton, count,
  ]);
  const body = h("div", { class: "review-body" });
  const policyBox = h("details", { class: "card policy", id: "capture-policy" }, h("summary", {}, "What is kept for review"));
  policyBox.addEventListener("toggle", () => { if (policyBox.open) drawPolicy(); });
  const sensitivityBox = anomaly ? h("details", { class: "card policy", id: "sensitivity" }, h("summary", {}, "Sensitivity: how many good parts may be flagged")) : null;
  if (sensitivityBox) sensitivityBox.addEventListener("toggle", () => { if (sensitivityBox.open) drawSensitivity(); });
  add(ctx.root, h("h1", {}, ["Review ", h("span", { class: "muted" }, task.name)]), filters, body, sensitivityBox, policyBox);

  // -- loading -----------------------------------------------------------------------------------
  function query(token = "") {
    const q = new URLSearchParams({ task: task.name, page_size: String(PAGE_SIZE) });
    for (const [key, value] of Object.entries(view.filters)) if (value !== "") q.append(key, value);
    if (token) q.set("page_token", token);
    return `/api/review/items?${q}`;
  }

  async function reload() {
    const page = await attempt(() => api(query()));
    if (!page) return;
    view.items = page.items; view.next = page.next_page_token; view.total = Number(page.total);
    view.index = 0; view.selected.clear();
    draw();
  }

  async function loadMore() {
    if (!view.next) return;
    const page = await attempt(() => api(query(view.next)));
    if (!page) return;
    const known = new Set(view.items.map((i) => i.id));
    view.items.push(...page.items.filter((i) => !known.has(i.id)));
    view.next = page.next_page_token;
    draw();
  }

  // -- resolving -----------------------------------------------------------------------------------
  async function resolve(ids, action, className = "") {
    if (view.busy || ids.length === 0) return;
    view.busy = true;
    try {
      const result = await attempt(() => api("/api/review/resolve", { method: "POST", body: { task: task.name, item_ids: ids, action, class_name: className } }));
      if (!result) return;
      const failed = result.results.filter((r) => !r.ok);
      if (failed.length) showError(failed.map((r) => `Item ${r.item_id}: ${r.error}`).join(" · "));
      const done = new Map(result.results.filter((r) => r.ok).map((r) => [r.item_id, r]));
      const leaves = view.filters.state === "pending" || view.filters.state === "skipped";
      for (const item of view.items) {
        const r = done.get(item.id);
        if (r) { item.state = r.state; item.resolved_class = action === "accept" ? item.predicted : className; }
      }
      if (leaves) {
        view.items = view.items.filter((i) => !done.has(i.id) || i.state === view.filters.state);
        view.total = Math.max(0, view.total - done.size);
      } else if (view.mode === "single" && done.size) {
        view.index = Math.min(view.index + 1, view.items.length - 1);  // auto-advance
      }
      view.index = Math.min(view.index, Math.max(0, view.items.length - 1));
      view.selected.clear();
      const verb = { accept: "accepted", relabel: `labelled ${className}`, reject: "rejected", skip: "skipped" }[action];
      view.last = done.size === 1 ? `#${[...done.keys()][0]} ${verb}` : `${done.size} items ${verb}`;
      if (view.items.length - view.index < 8) await loadMore();
      draw();
      refreshPending(task.name);
    } finally {
      view.busy = false;
    }
  }

  // An anomaly task: the operator confirms a part is good and the bank learns it now, no training job.
  async function enrolGood(item) {
    if (view.busy || !item) return;
    view.busy = true;
    try {
      const result = await attempt(() => api(`/api/review/items/${item.id}/enrol`, { method: "POST", body: {} }));
      if (!result) return;
      const e = result.enrolled;
      item.state = "resolved"; item.resolved_class = "good";
      if (view.filters.state === "pending" || view.filters.state === "skipped") {
        view.items = view.items.filter((i) => i.id !== item.id);
        view.total = Math.max(0, view.total - 1);
        view.index = Math.min(view.index, Math.max(0, view.items.length - 1));
      }
      view.last = `#${item.id} added to the good parts: v${e.version} serving, threshold ${Number(e.previous_threshold).toFixed(3)} → ${Number(e.threshold).toFixed(3)}, ${Math.round(e.elapsed_ms)} ms`;
      draw();
      refreshPending(task.name);
    } finally {
      view.busy = false;
    }
  }

  const current = () => view.items[view.index];
  const byClass = (item, index) => {
    if (item && classes[index] !== undefined) resolve([item.id], "relabel", classes[index]);  // the predicted class: accepted
  };

  // -- drawing -----------------------------------------------------------------------------------
  function draw() {
    count.textContent = view.total ? `${view.items.length ? view.index + 1 : 0} of ${view.total} ${view.filters.state}` : "";
    modeButton.textContent = view.mode === "single" ? "Grid (G)" : "One at a time (G)";
    clear(body);
    if (view.items.length === 0) {
      add(body, h("section", { class: "card empty", id: "queue-empty" }, [
        h("h2", {}, "Nothing to review"),
        h("p", {}, `No ${view.filters.state} items match. Images arrive here when the line sends uncertain answers, `
          + "random samples (for live accuracy) or images a camera or PLC flags."),
        view.last ? h("p", { class: "muted" }, `Last: ${view.last}`) : null,
      ]));
      return;
    }
    if (view.mode === "grid") drawGrid(); else drawSingle();
  }

  function drawSingle() {
    const item = current();
    const img = h("img", { src: `/api/review/items/${item.id}/image`, alt: `review item ${item.id}`, id: "review-image", draggable: "false" });
    const stage = h("div", { class: "viewer", id: "viewer" }, img);
    Object.assign(zoom, { scale: 1, x: 0, y: 0 });
    attachZoom(stage, img);
    const heatCaption = h("p", { class: "muted heat-caption", id: "heatmap-caption" }, anomaly && view.heat ? "Finding where it differs…" : "");
    if (anomaly && view.heat) loadHeat(item, img, heatCaption);
    const preload = view.items[view.index + 1];
    if (preload) new Image().src = `/api/review/items/${preload.id}/image`;

    const scores = h("ol", { class: "scores" }, classes.map((name, i) => {
      const score = Number(item.scores[i] || 0);
      return h("li", { class: name === item.predicted ? "predicted" : "" }, [
        h("button", { class: "class-button", dataset: { class: name }, onclick: () => byClass(item, i) }, [
          i < 9 ? h("kbd", {}, String(i + 1)) : null, h("span", { class: "name" }, name), bar(score), h("span", { class: "value" }, score.toFixed(3)),
        ]),
      ]);
    }));
    const unresolved = item.state === "pending" || item.state === "skipped";
    const panel = h("aside", { class: "verdict" }, [
      h("p", { class: "predicted-line" }, ["Predicted ", h("strong", { id: "predicted" }, item.predicted), ` ${Number(item.score).toFixed(3)}`]),
      h("p", { class: "muted" }, `margin ${Number(item.margin).toFixed(3)} · adapter v${item.adapter_version}`),
      item.resolved_class ? h("p", { class: "resolved" }, `${item.state}: ${item.resolved_class}`) : (unresolved ? null : h("p", { class: "resolved" }, item.state)),
      h("p", { class: "hint" }, "Tap the right class, or press its number"),
      scores,
      h("div", { class: "actions" }, [
        h("button", { class: "big accept", id: "accept", onclick: () => resolve([item.id], "accept") }, ["Accept ", h("kbd", {}, "Enter")]),
        h("button", { class: "big reject", id: "reject", onclick: () => resolve([item.id], "reject") }, ["Reject ", h("kbd", {}, "X")]),
        h("button", { class: "big", id: "skip", disabled: item.state !== "pending", onclick: () => resolve([item.id], "skip") }, ["Skip ", h("kbd", {}, "S")]),
      ]),
      anomaly
        ? h("button", { class: "quiet", id: "heatmap-toggle", onclick: toggleHeat }, [view.heat ? "Show the image alone " : "Show where it differs ", h("kbd", {}, "H")])
        : null,
      anomaly && unresolved
        ? h("button", { class: "big accept", id: "enrol", title: "Confirm the part is good and add it to the good parts now: a new adapter version serves at once (roll back under Versions)", onclick: () => enrolGood(item) }, ["Good: learn it now ", h("kbd", {}, "E")])
        : null,
      h("div", { class: "stepper" }, [
        h("button", { class: "big", id: "prev", disabled: view.index === 0, onclick: () => move(-1) }, "← Previous"),
        h("button", { class: "big", id: "next", disabled: view.index >= view.items.length - 1 && !view.next, onclick: () => move(1) }, "Next →"),
      ]),
      h("dl", { class: "meta" }, [
        h("dt", {}, "Why"), h("dd", {}, item.reasons.map((r) => h("span", { class: `chip ${r}` }, r))),
        h("dt", {}, "Seen"), h("dd", {}, `${ago(item.captured_at)} from ${item.caller || "–"}`),
        h("dt", {}, "Image"), h("dd", {}, `#${item.id} · ${item.width}×${item.height} ${item.image_format}`),
      ]),
      view.last ? h("p", { class: "muted", id: "last-action" }, `Last: ${view.last}`) : null,
    ]);
    add(body, h("div", { class: "review-single" }, [
      h("div", {}, [h("div", { class: "viewer-wrap" }, [stage, h("div", { class: "zoom-controls" }, [
        h("button", { class: "quiet", onclick: () => setZoom(zoom.scale * 1.5), "aria-label": "Zoom in" }, "+"),
        h("button", { class: "quiet", onclick: () => setZoom(1), "aria-label": "Fit" }, "Fit"),
        h("button", { class: "quiet", onclick: () => setZoom(zoom.scale / 1.5), "aria-label": "Zoom out" }, "−"),
      ])]), heatCaption]),
      panel,
    ]));
  }

  // The anomaly map over the image, as the version serving now sees it: the server scores the stored
  // image again (not counted as a prediction). Fetched rather than linked so its headers can say which
  // version, and so an error says why instead of showing a broken picture.
  async function loadHeat(item, img, caption) {
    let response;
    try {
      response = await fetch(`/api/review/items/${item.id}/heatmap`, { credentials: "same-origin" });
    } catch {
      caption.textContent = "The anomaly map could not be fetched: the terminal cannot be reached.";
      return;
    }
    if (!response.ok) {
      let message = `The anomaly map could not be made (HTTP ${response.status}).`;
      try { message = (await response.json()).error || message; } catch { /* not JSON */ }
      caption.textContent = message;
      return;
    }
    const blob = await response.blob();
    if (current() !== item || !view.heat || !img.isConnected) return;  // the operator moved on meanwhile
    if (view.heatUrl) URL.revokeObjectURL(view.heatUrl);
    view.heatUrl = URL.createObjectURL(blob);
    img.src = view.heatUrl;
    const number = (name) => Number(response.headers.get(name)).toFixed(3);
    caption.textContent = `Red: unlike the good parts, as adapter v${response.headers.get("X-Adapter-Version")} sees it `
      + `(score ${number("X-Anomaly-Score")}, threshold ${number("X-Anomaly-Threshold")}).`;
  }

  function toggleHeat() {
    view.heat = !view.heat;
    draw();
  }

  function drawGrid() {
    const selectedIds = [...view.selected];
    const bulk = h("div", { class: "bulk" }, [
      h("span", { id: "selection-count" }, `${selectedIds.length} selected`),
      h("button", { class: "quiet", onclick: () => { view.items.forEach((i) => view.selected.add(i.id)); draw(); } }, ["Select all ", h("kbd", {}, "A")]),
      h("span", { class: "muted" }, "Label selected as:"),
      ...classes.slice(0, 12).map((name, i) => h("button", {
        class: "class-button compact", dataset: { class: name }, disabled: !selectedIds.length, onclick: () => labelSelection(i),
      }, [i < 9 ? h("kbd", {}, String(i + 1)) : null, name])),
      h("button", { class: "accept", disabled: !selectedIds.length, onclick: () => resolve(selectedIds, "accept") }, ["Accept ", h("kbd", {}, "Enter")]),
      h("button", { class: "reject", disabled: !selectedIds.length, onclick: () => resolve(selectedIds, "reject") }, ["Reject ", h("kbd", {}, "X")]),
    ]);
    const grid = h("div", { class: "grid", id: "grid" }, view.items.map((item, i) => h("button", {
      class: `tile${view.selected.has(item.id) ? " selected" : ""}`, dataset: { id: item.id }, "aria-pressed": view.selected.has(item.id) ? "true" : "false",
      onclick: (event) => toggle(i, event.shiftKey),
    }, [
      h("img", { src: `/api/review/items/${item.id}/image?size=${THUMB}`, alt: `item ${item.id}`, loading: "lazy", draggable: "false" }),
      h("span", { class: "tile-label" }, `${item.predicted} ${Number(item.score).toFixed(2)}`),
    ])));
    add(body, bulk, grid, view.next ? h("button", { class: "big", onclick: loadMore }, "Load more") : null,
      view.last ? h("p", { class: "muted", id: "last-action" }, `Last: ${view.last}`) : null);
  }

  function toggle(index, range) {
    const id = view.items[index].id;
    if (range && view.anchor !== null) {
      const [a, b] = [Math.min(view.anchor, index), Math.max(view.anchor, index)];
      for (let i = a; i <= b; i++) view.selected.add(view.items[i].id);
    } else if (view.selected.has(id)) view.selected.delete(id);
    else view.selected.add(id);
    view.anchor = index;
    draw();
  }

  function labelSelection(classIndex) {
    // One call: the server takes relabelling to the predicted class as accepting it.
    const name = classes[classIndex];
    if (name !== undefined) resolve([...view.selected], "relabel", name);
  }

  function move(step) {
    const target = view.index + step;
    if (target < 0) return;
    if (target >= view.items.length) { if (view.next) loadMore().then(() => move(step)); return; }
    view.index = target;
    draw();
  }

  function setMode(mode) { view.mode = mode; view.selected.clear(); draw(); }

  // -- zoom and pan (wheel, drag, pinch) ------------------------------------------------------------
  let stageEl = null, imgEl = null;
  function setZoom(scale, cx = null, cy = null) {
    if (!imgEl) return;
    const next = Math.max(1, Math.min(8, scale));
    if (cx !== null) { zoom.x = cx - (cx - zoom.x) * (next / zoom.scale); zoom.y = cy - (cy - zoom.y) * (next / zoom.scale); }
    if (next === 1) { zoom.x = 0; zoom.y = 0; }
    zoom.scale = next;
    imgEl.style.transform = `translate(${zoom.x}px, ${zoom.y}px) scale(${zoom.scale})`;
    stageEl.classList.toggle("zoomed", zoom.scale > 1);
  }
  function attachZoom(stage, img) {
    stageEl = stage; imgEl = img;
    const pointers = new Map();
    let pinch = null;
    stage.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = stage.getBoundingClientRect();
      setZoom(zoom.scale * (event.deltaY < 0 ? 1.25 : 0.8), event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    stage.addEventListener("dblclick", (event) => {
      const box = stage.getBoundingClientRect();
      setZoom(zoom.scale > 1 ? 1 : 2.5, event.clientX - box.left, event.clientY - box.top);
    });
    stage.addEventListener("pointerdown", (event) => { pointers.set(event.pointerId, [event.clientX, event.clientY]); stage.setPointerCapture(event.pointerId); });
    stage.addEventListener("pointermove", (event) => {
      const previous = pointers.get(event.pointerId);
      if (!previous) return;
      pointers.set(event.pointerId, [event.clientX, event.clientY]);
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (pinch) setZoom(zoom.scale * distance / pinch);
        pinch = distance;
      } else if (zoom.scale > 1) {
        zoom.x += event.clientX - previous[0]; zoom.y += event.clientY - previous[1];
        setZoom(zoom.scale);
      }
    });
    const up = (event) => { pointers.delete(event.pointerId); if (pointers.size < 2) pinch = null; };
    stage.addEventListener("pointerup", up);
    stage.addEventListener("pointercancel", up);
  }

  // -- the capture policy: everyone sees it, admins change it ----------------------------------------
  const POLICY_FIELDS = [
    ["enabled", "Keep images for review", "checkbox"],
    ["uncertain_score", "Uncertain: best score below", "number"],
    ["uncertain_margin", "…or lead over the second below", "number"],
    ["random_rate", "Random sample (share of all images)", "number"],
    ["per_minute", "At most per minute", "number"],
    ["per_hour", "per hour", "number"],
    ["per_day", "per day", "number"],
  ];
  async function drawPolicy() {
    const policy = await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/capture-policy`));
    if (!policy) return;
    while (policyBox.children.length > 1) policyBox.lastChild.remove();
    const admin = ctx.session.role === "admin";
    const inputs = {};
    const fields = POLICY_FIELDS.map(([name, label, type]) => {
      const input = h("input", { type, name, step: "any", min: 0, disabled: !admin });
      if (type === "checkbox") input.checked = policy[name]; else input.value = String(policy[name]);
      inputs[name] = input;
      return h("label", { class: type === "checkbox" ? "check" : "" }, type === "checkbox" ? [input, ` ${label}`] : [label, input]);
    });
    const origin = policy.customized ? `Set for this task by ${policy.updated_by} ${ago(policy.updated_at)}.` : "The server's defaults.";
    const save = h("button", { class: "big primary", type: "submit", hidden: !admin }, "Save");
    const reset = h("button", { class: "big", type: "button", hidden: !admin || !policy.customized }, "Back to the defaults");
    const form = h("form", { class: "policy-form" }, [...fields, h("div", { class: "row" }, [save, reset])]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      for (const [name, , type] of POLICY_FIELDS) body[name] = type === "checkbox" ? inputs[name].checked : Number(inputs[name].value);
      if (await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/capture-policy`, { method: "PUT", body }))) drawPolicy();
    });
    reset.addEventListener("click", async () => {
      if (await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/capture-policy`, { method: "PUT", body: { reset: true } }))) drawPolicy();
    });
    add(policyBox, h("p", { class: "muted" }, `${origin} ${admin ? "" : "Admins can change it."} Images over the caps are not kept (and are counted); past ${Math.round(Number(policy.disk_bytes) / 2 ** 20)} MiB the oldest unreviewed go first.`), form);
  }

  // An anomaly task's threshold, as the share of good parts it flags: too many false alarms, raise it;
  // defects slipping through, lower it. Each change is a new version (roll back under Versions).
  async function drawSensitivity(result = null) {
    const list = await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/adapters`));
    if (!list) return;
    while (sensitivityBox.children.length > 1) sensitivityBox.lastChild.remove();
    const active = list.adapters.find((a) => a.state === "active");
    const calibration = active ? (JSON.parse(active.options_json || "{}").bank || {}).calibration : null;
    if (!calibration) {
      add(sensitivityBox, h("p", { class: "muted" }, "No active anomaly version yet: train one from good parts first."));
      return;
    }
    const percent = (x) => `${(100 * Number(x)).toFixed(1)} %`;
    const now = h("p", { id: "sensitivity-now" }, [
      `Version ${active.version}: threshold ${Number(calibration.threshold).toFixed(3)}, about `, h("strong", {}, percent(calibration.false_alarm_rate)),
      ` of good parts flagged (at most ${percent(calibration.guaranteed_false_alarm_rate)} without a model; ${calibration.n} good images).`,
    ]);
    const rate = h("input", { type: "number", name: "false_alarm_percent", min: 0.1, max: 49, step: 0.1, value: (100 * Number(calibration.false_alarm_rate)).toFixed(1), "aria-label": "Good parts flagged, per cent" });
    const form = h("form", { class: "policy-form", id: "sensitivity-form" }, [
      h("label", {}, ["Flag about this share of good parts (%)", rate]),
      h("div", { class: "row" }, [h("button", { class: "big primary", type: "submit" }, "Set as a new version")]),
    ]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const done = await attempt(() => api(`/api/tasks/${encodeURIComponent(task.name)}/threshold`, { method: "POST", body: { false_alarm_rate: Number(rate.value) / 100 } }));
      if (done) drawSensitivity(done);
    });
    const last = result
      ? h("p", { class: "resolved", id: "sensitivity-result" }, `v${result.version} serving: threshold ${Number(result.previous_threshold).toFixed(3)} → ${Number(result.threshold).toFixed(3)}. Roll back under Versions.`)
      : null;
    add(sensitivityBox, now, last, form, h("p", { class: "muted" }, "Fewer false alarms means a higher threshold, and small defects may pass; the review queue shows what it flags."));
  }

  // -- keys -----------------------------------------------------------------------------------------
  ctx.onKey((event) => {
    const key = event.key;
    if (key === "g" || key === "G") { setMode(view.mode === "single" ? "grid" : "single"); return true; }
    if (view.mode === "grid") {
      const ids = [...view.selected];
      if (key === "a" || key === "A") { view.items.forEach((i) => view.selected.add(i.id)); draw(); return true; }
      if (key === "Escape") { view.selected.clear(); draw(); return true; }
      if (/^[1-9]$/.test(key)) { labelSelection(Number(key) - 1); return true; }
      if (key === "Enter") { resolve(ids, "accept"); return true; }
      if (key === "x" || key === "X" || key === "Delete") { resolve(ids, "reject"); return true; }
      return false;
    }
    const item = current();
    if (!item) return false;
    if (key === "Enter") { resolve([item.id], "accept"); return true; }
    if (/^[1-9]$/.test(key)) { byClass(item, Number(key) - 1); return true; }
    if (key === "Escape" || key === "x" || key === "X") { resolve([item.id], "reject"); return true; }
    if (anomaly && (key === "h" || key === "H")) { toggleHeat(); return true; }
    if (anomaly && (key === "e" || key === "E")) { if (item.state === "pending" || item.state === "skipped") enrolGood(item); return true; }
    if (key === "s" || key === "S") { if (item.state === "pending") resolve([item.id], "skip"); return true; }
    if (key === "ArrowRight") { move(1); return true; }
    if (key === "ArrowLeft") { move(-1); return true; }
    if (key === "+" || key === "=") { setZoom(zoom.scale * 1.5); return true; }
    if (key === "-") { setZoom(zoom.scale / 1.5); return true; }
    if (key === "0") { setZoom(1); return true; }
    return false;
  });

  await reload();
  return null;
}
