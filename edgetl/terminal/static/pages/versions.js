// Versions: every adapter of the task with its accuracy, per-class precision and recall, a drawn
// confusion matrix, live accuracy from reviewed samples; activate or roll back, with a confirmation.

import { api, attempt, confirmDialog, showNotice } from "../core.js";
import { add, ago, clear, h, pct } from "../dom.js";

export async function render(ctx) {
  const task = ctx.task;
  if (!task) {
    add(ctx.root, h("section", { class: "card" }, [h("h1", {}, "Versions"), h("p", {}, "There is no task yet.")]));
    return null;
  }
  const path = `/api/tasks/${encodeURIComponent(task.name)}`;
  const table = h("div", { id: "versions-table" });
  const detail = h("section", { class: "card", id: "version-detail" });
  const rollbackButton = h("button", { class: "big reject", id: "rollback" }, "Roll back");
  let chosen = null;
  let data = null;

  async function load() {
    const [adapters, live] = await Promise.all([attempt(() => api(`${path}/adapters`)), attempt(() => api(`${path}/live-accuracy`))]);
    if (!adapters) return;
    data = { adapters: (adapters.adapters || []).slice().reverse(), active: adapters.active_version, live: Object.fromEntries((live?.versions || []).map((v) => [v.adapter_version, v])) };
    if (!chosen || !data.adapters.some((a) => a.version === chosen)) chosen = data.active || data.adapters[0]?.version || null;
    draw();
  }

  function draw() {
    clear(table);
    rollbackButton.disabled = !data.active;
    if (!data.adapters.length) {
      add(table, h("p", {}, "No adapter trained yet. Label images, then train on the Train page."));
      clear(detail);
      return;
    }
    add(table, h("table", { class: "versions" }, [
      h("thead", {}, h("tr", {}, ["Version", "Method", "State", "Validation", "Live accuracy (reviews)", "Labels", "Trained", ""].map((x) => h("th", {}, x)))),
      h("tbody", {}, data.adapters.map((a) => {
        const live = data.live[a.version];
        return h("tr", { class: `${a.state}${a.version === chosen ? " chosen" : ""}`, dataset: { version: a.version }, onclick: () => { chosen = a.version; draw(); } }, [
          h("td", {}, h("strong", {}, `v${a.version}`)), h("td", {}, a.method), h("td", {}, h("span", { class: `chip ${a.state}` }, a.state)),
          h("td", {}, pct(a.metrics?.accuracy)),
          h("td", { class: "live" }, live ? `${pct(live.accuracy)}  (${pct(live.low, 0)}–${pct(live.high, 0)}, n = ${live.reviewed})` : "–"),
          h("td", {}, a.label_count), h("td", {}, ago(a.created_at)),
          h("td", {}, a.state === "active" ? "" : h("button", { class: "activate", dataset: { version: a.version }, onclick: (event) => { event.stopPropagation(); activate(a); } }, "Activate")),
        ]);
      })),
    ]));
    drawDetail(data.adapters.find((a) => a.version === chosen));
  }

  function drawDetail(adapter) {
    clear(detail);
    if (!adapter) return;
    const m = adapter.metrics || {};
    const live = data.live[adapter.version];
    add(detail, 
      h("h2", {}, `v${adapter.version} · ${adapter.method} · ${adapter.state}`),
      h("p", {}, [
        `Validation accuracy ${pct(m.accuracy)} on ${m.n} images. `,
        live ? `On the line: ${pct(live.accuracy)} of ${live.reviewed} randomly sampled images an operator reviewed were right (95 % interval ${pct(live.low)}–${pct(live.high)}).`
          : "On the line: no randomly sampled image reviewed yet.",
      ]),
      h("div", { class: "two-columns" }, [
        h("table", { class: "per-class" }, [
          h("thead", {}, h("tr", {}, ["Class", "Precision", "Recall", "Images"].map((x) => h("th", {}, x)))),
          h("tbody", {}, (m.per_class || []).map((c) => h("tr", {}, [h("td", {}, c.label), h("td", {}, pct(c.precision)), h("td", {}, pct(c.recall)), h("td", {}, c.support)]))),
        ]),
        confusion(m, task.class_names),
      ]),
    );
  }

  async function activate(adapter) {
    const from = data.active ? `v${data.active}` : "no adapter";
    if (!await confirmDialog(`Activate v${adapter.version} for ${task.name}? The line switches from ${from} at once, without a restart.`, `Activate v${adapter.version}`)) return;
    const done = await attempt(() => api(`${path}/adapters/${encodeURIComponent(adapter.version)}/activate`, { method: "POST" }));
    if (done) { showNotice(`${task.name} now serves v${done.version}.`); chosen = done.version; await load(); }
  }

  rollbackButton.addEventListener("click", async () => {
    if (!await confirmDialog(`Roll back ${task.name} from v${data.active} to the version that was active before it?`, "Roll back")) return;
    const done = await attempt(() => api(`${path}/rollback`, { method: "POST" }));
    if (done) { showNotice(`${task.name} rolled back: it now serves v${done.version}.`); chosen = done.version; await load(); }
  });

  add(ctx.root, 
    h("div", { class: "title-row" }, [h("h1", {}, ["Versions ", h("span", { class: "muted" }, task.name)]), rollbackButton]),
    h("section", { class: "card" }, table),
    detail,
  );
  await load();
  return null;
}

/** The confusion matrix as an SVG heat map: rows are the true class, columns the predicted one. */
function confusion(metrics, classNames) {
  const counts = (metrics.confusion || []).map(Number);
  const n = Math.round(Math.sqrt(counts.length));
  if (!n) return h("p", { class: "muted" }, "No confusion matrix.");
  const names = classNames.slice(0, n);
  const cell = Math.max(26, Math.min(56, Math.floor(360 / n)));
  const left = 104, top = 44;
  const rowTotals = names.map((_, i) => counts.slice(i * n, i * n + n).reduce((s, x) => s + x, 0));
  const svg = h("svg", { viewBox: `0 0 ${left + n * cell + 4} ${top + n * cell + 4}`, class: "confusion", role: "img", "aria-label": "confusion matrix" }, [
    h("text", { x: left + (n * cell) / 2, y: 12, "text-anchor": "middle", class: "axis" }, "predicted →"),
    h("text", { x: 4, y: 12, class: "axis" }, "true ↓"),
    ...names.map((name, j) => h("text", { x: left + j * cell + cell / 2, y: top - 8, "text-anchor": "middle", class: "tick" }, short(name, cell))),
    ...names.map((name, i) => h("text", { x: left - 8, y: top + i * cell + cell / 2 + 4, "text-anchor": "end", class: "tick" }, short(name, left))),
  ]);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const value = counts[i * n + j];
      const share = rowTotals[i] ? value / rowTotals[i] : 0;
      const hue = i === j ? 140 : 4;  // green on the diagonal, red off it, stronger with the row's share
      add(svg, h("g", { class: "cell" }, [
        h("rect", { x: left + j * cell, y: top + i * cell, width: cell - 3, height: cell - 3, rx: 4, fill: value ? `hsl(${hue} 55% ${Math.round(92 - share * 45)}%)` : "#f3f4f6" },
          h("title", {}, `${names[i]} taken for ${names[j]}: ${value}`)),
        h("text", { x: left + j * cell + (cell - 3) / 2, y: top + i * cell + (cell - 3) / 2 + 5, "text-anchor": "middle", class: "count" }, String(value)),
      ]));
    }
  }
  return h("figure", {}, [svg, h("figcaption", { class: "muted" }, "Rows: the true class; columns: what the adapter said. Off the diagonal: mistakes.")]);
}

function short(name, width) {
  const fits = Math.max(3, Math.floor(width / 8));
  return name.length > fits ? `${name.slice(0, fits - 1)}…` : name;
}
