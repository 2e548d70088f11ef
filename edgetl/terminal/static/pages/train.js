// Train: what there is to learn from, start a head or LoRA job, watch it live (server-sent events),
// cancel it, and read the gate's decision with its numbers.

import { api, attempt, showError } from "../core.js";
import { add, ago, bar, clear, h, pct } from "../dom.js";

const FINISHED = ["succeeded", "failed", "cancelled"];

export async function render(ctx) {
  const task = ctx.task;
  if (!task) {
    add(ctx.root, h("section", { class: "card" }, [h("h1", {}, "Train"), h("p", {}, "There is no task to train yet.")]));
    return null;
  }
  const path = `/api/tasks/${encodeURIComponent(task.name)}`;
  let source = null;
  let method = "auto";
  let latest = {};  // the job's figures so far: events carry only what changed

  const counts = h("div", { id: "train-counts" });
  const methodRow = h("div", { class: "class-row", id: "methods" });
  const epochs = h("input", { type: "number", min: 1, max: 1000, id: "epochs", placeholder: "default" });
  const budget = h("input", { type: "number", min: 10, max: 7200, id: "time-budget", placeholder: "300" });
  const precision = h("select", { id: "precision" }, [
    h("option", { value: "" }, "The server's default"),
    h("option", { value: "fp32" }, "FP32"),
    h("option", { value: "int8" }, "INT8: about twice as fast on a CPU box; kept as a candidate if it loses accuracy"),
  ]);
  const views = h("select", { id: "serve-views" }, [
    h("option", { value: "" }, "1: the image as sent (fastest)"),
    h("option", { value: "4" }, "4: the image and its flips, averaged"),
    h("option", { value: "8" }, "8: every flip and turn, averaged; steadier answers, 8 backbone runs per image"),
  ]);
  const force = h("input", { type: "checkbox", id: "force" });
  const start = h("button", { class: "big primary", id: "start-training" }, "Start training");
  const cancel = h("button", { class: "big reject", id: "cancel-job", hidden: true }, "Cancel");
  const progressBox = h("section", { class: "card progress", id: "job-progress", hidden: true });
  const resultBox = h("section", { class: "card", id: "job-result", hidden: true });
  const history = h("div", { id: "job-history" });

  const METHODS = [
    ["auto", "Auto", "A head first; LoRA too if it does better and fits the time budget. The usual choice."],
    ["head", "Head", "Seconds. A classifier on the frozen backbone; shares the backbone with other tasks."],
    ["lora", "LoRA", "Minutes. Fine-tunes the backbone itself: often the most accurate."],
  ];
  function drawMethods() {
    clear(methodRow);
    for (const [value, name, text] of METHODS) {
      add(methodRow, h("button", { class: `method${value === method ? " chosen" : ""}`, dataset: { method: value }, "aria-pressed": String(value === method), onclick: () => { method = value; drawMethods(); } }, [
        h("strong", {}, name), h("span", {}, text),
      ]));
    }
  }

  async function drawCounts() {
    const c = await attempt(() => api(`${path}/labels/counts`));
    if (!c) return;
    clear(counts);
    const short = c.classes.filter((x) => Number(x.train) + Number(x.val) < 2).map((x) => x.class_name);
    add(counts, 
      h("table", { class: "counts" }, [
        h("thead", {}, h("tr", {}, [h("th", {}, "Class"), h("th", {}, "Training"), h("th", {}, "Validation"), h("th", {}, "")])),
        h("tbody", {}, c.classes.map((x) => {
          const n = Number(x.train) + Number(x.val);
          return h("tr", {}, [h("td", {}, x.class_name), h("td", {}, x.train), h("td", {}, x.val), h("td", {}, bar(n / Math.max(1, ...c.classes.map((y) => Number(y.train) + Number(y.val)))))]);
        })),
        h("tfoot", {}, h("tr", {}, [h("th", {}, "All"), h("th", {}, c.train), h("th", {}, c.val), h("th", {}, "")])),
      ]),
      h("p", { class: "muted" }, "About 1 image in 5 is held out for validation, chosen by the image itself, so the split never moves."),
      short.length ? h("p", { class: "form-error" }, `Every class needs at least 2 labels: ${short.join(", ")}. Label more on the Label page.`) : null,
    );
  }

  function showEvent(event) {
    progressBox.hidden = false;
    if (event.job_id !== latest.job_id) latest = {};
    for (const [key, value] of Object.entries(event)) {
      if (value !== "" && value !== 0 && value !== null && !(key === "eta_s" && event.phase === "done")) latest[key] = value;
    }
    if (event.phase === "done" || event.job) latest.eta_s = 0;
    const e = { ...latest, phase: event.phase, message: event.message };
    const job = event.job;
    const epochsTotal = Number(e.epochs || 0);
    const fraction = epochsTotal ? Number(e.epoch) / epochsTotal : (job ? 1 : 0);
    clear(progressBox);
    add(progressBox, 
      h("h2", {}, ["Job ", h("code", {}, e.job_id), " ", h("span", { class: "chip", id: "job-phase" }, e.phase)]),
      bar(fraction, "progress-fill"),
      h("dl", { class: "facts" }, [
        h("dt", {}, "Step"), h("dd", { id: "job-epoch" }, epochsTotal ? `${e.epoch} / ${epochsTotal}` : "–"),
        h("dt", {}, "Loss"), h("dd", { id: "job-loss" }, e.loss ? Number(e.loss).toFixed(4) : "–"),
        h("dt", {}, "Validation accuracy"), h("dd", { id: "job-val" }, e.val_accuracy ? pct(e.val_accuracy) : "–"),
        h("dt", {}, "Elapsed"), h("dd", {}, `${Number(e.elapsed_s || 0).toFixed(0)} s`),
        h("dt", {}, "Remaining"), h("dd", { id: "job-eta" }, e.eta_s ? `about ${Number(e.eta_s).toFixed(0)} s` : "–"),
      ]),
      e.message ? h("p", { class: "muted", id: "job-message" }, e.message) : null,
    );
    if (job) finish(job);
  }

  function finish(job) {
    cancel.hidden = true;
    start.disabled = false;
    if (source) { source.close(); source = null; }
    resultBox.hidden = false;
    clear(resultBox);
    const m = job.metrics, a = job.active_metrics;
    const ok = job.state === "succeeded";
    add(resultBox, 
      h("h2", {}, [ok ? (job.activated ? "New adapter active: " : "Kept as a candidate: ") : `Training ${job.state}`, ok ? `v${job.version}` : ""]),
      h("p", { id: "gate", class: job.activated ? "good" : (ok ? "warn" : "form-error") }, job.gate || job.error),
      ok ? h("table", { class: "counts" }, [
        h("thead", {}, h("tr", {}, [h("th", {}, ""), h("th", {}, "Validation accuracy"), h("th", {}, "Images")])),
        h("tbody", {}, [
          h("tr", {}, [h("td", {}, `new v${job.version}`), h("td", { id: "new-accuracy" }, pct(m?.accuracy)), h("td", {}, m?.n ?? "–")]),
          a && Number(a.n) ? h("tr", {}, [h("td", {}, "the active one, same images"), h("td", { id: "active-accuracy" }, pct(a.accuracy)), h("td", {}, a.n)]) : null,
        ]),
      ]) : null,
      ok ? h("p", {}, h("a", { href: "#/versions" }, "See every version, activate or roll back →")) : null,
    );
    drawHistory();
  }

  function watch(jobId) {
    if (source) source.close();
    start.disabled = true;
    cancel.hidden = false;
    cancel.onclick = async () => { cancel.disabled = true; await attempt(() => api(`/api/jobs/${jobId}/cancel`, { method: "POST" })); cancel.disabled = false; };
    resultBox.hidden = true;
    source = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/events`);
    source.onmessage = (message) => showEvent(JSON.parse(message.data));
    source.addEventListener("failure", (message) => {
      const data = JSON.parse(message.data);
      showError(`Lost the job's progress: ${data.error}`);
      source.close(); source = null; start.disabled = false;
    });
    source.addEventListener("end", () => { if (source) { source.close(); source = null; } });
    source.onerror = () => {
      if (!source) return;
      source.close(); source = null;
      showError("The progress stream broke (the terminal or the server went away). The job may still be running; reload the page to follow it.");
      start.disabled = false;
    };
  }

  start.addEventListener("click", async () => {
    const options = {};
    if (epochs.value) options.epochs = Number(epochs.value);
    if (budget.value && method === "auto") options.time_budget_s = Number(budget.value);
    if (precision.value) options.precision = precision.value;
    if (views.value) options.serve_views = Number(views.value);
    start.disabled = true;
    const job = await attempt(() => api(`${path}/train`, { method: "POST", body: { method, options, force: force.checked } }));
    if (!job) { start.disabled = false; return; }
    watch(job.id);
  });

  async function drawHistory() {
    const list = await attempt(() => api(`/api/jobs?task=${encodeURIComponent(task.name)}`));
    if (!list) return null;
    const jobs = (list.jobs || []).slice(-8).reverse();
    clear(history);
    if (jobs.length) {
      add(history, h("table", { class: "jobs" }, [
        h("thead", {}, h("tr", {}, ["Job", "Method", "State", "Version", "Started", "Outcome"].map((x) => h("th", {}, x)))),
        h("tbody", {}, jobs.map((j) => h("tr", {}, [
          h("td", {}, h("code", {}, j.id)), h("td", {}, j.method), h("td", {}, j.state), h("td", {}, j.version ? `v${j.version}` : "–"),
          h("td", {}, ago(j.created_at)), h("td", { class: "muted" }, j.gate || j.error),
        ]))),
      ]));
    }
    return jobs.find((j) => !FINISHED.includes(j.state)) || null;
  }

  add(ctx.root, 
    h("h1", {}, ["Train ", h("span", { class: "muted" }, task.name)]),
    h("div", { class: "two-columns" }, [
      h("section", { class: "card" }, [h("h2", {}, "Labelled images"), counts]),
      h("section", { class: "card" }, [
        h("h2", {}, "Method"), methodRow,
        h("details", {}, [h("summary", {}, "Options"),
          h("label", {}, ["Epochs (head: optimiser steps)", epochs]),
          h("label", {}, ["Auto: most seconds LoRA may take", budget]),
          h("label", {}, ["Precision", precision]),
          h("label", {}, ["Views per answer", views]),
          h("label", { class: "check" }, [force, " Activate even if worse than the active adapter (admins)"]),
        ]),
        h("div", { class: "row" }, [start, cancel]),
        h("p", { class: "muted" }, "The new adapter replaces the active one only if it is not worse on the same validation images."),
      ]),
    ]),
    progressBox, resultBox,
    h("section", { class: "card" }, [h("h2", {}, "Recent jobs"), history]),
  );
  drawMethods();
  await drawCounts();
  const running = await drawHistory();
  if (running) watch(running.id);  // the page was opened (or reloaded) while a job runs
  return () => { if (source) source.close(); };
}
