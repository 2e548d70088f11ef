// Overview: every task at a glance — active version, drift, pending reviews, throughput, latency, live accuracy.

import { api, attempt } from "../core.js";
import { add, clear, h, pct } from "../dom.js";

const REFRESH_MS = 5000;

export async function render(ctx) {
  const body = h("div", { class: "overview" });
  add(ctx.root, h("h1", {}, "Overview"), body);
  let timer = null;

  async function refresh() {
    const data = await attempt(() => api("/api/overview"));
    if (!data) return;
    clear(body);
    const stats = Object.fromEntries((data.stats.tasks || []).map((s) => [s.task, s]));
    add(body, h("p", { class: "muted" }, `edgetl ${data.stats.version} · up ${duration(data.stats.uptime_s)} · figures over the last ${Number(data.stats.window_s)} s`));
    const grid = h("div", { class: "cards" });
    for (const task of data.tasks) add(grid, card(task, stats[task.name], data.review[task.name], data.live_accuracy[task.name]));
    add(body, grid);
    if (!data.tasks.some((t) => !t.builtin)) {
      add(body, h("section", { class: "card" }, [
        h("h2", {}, "No inspection task yet"),
        h("p", {}, "Create one on the server (edgetl tasks create weld-3 --classes ok,crack,porosity), then label images on the Label page."),
      ]));
    }
  }

  function card(task, s, review, live) {
    const active = (live?.versions || []).find((v) => v.active);
    const pending = Number(review?.pending || 0);
    const state = task.drift?.state || "";
    return h("section", { class: `card task-card ${state ? `drift-${state}` : ""}`, dataset: { task: task.name } }, [
      h("h2", {}, [task.name, task.builtin ? h("span", { class: "chip" }, "built in") : null]),
      h("dl", { class: "facts" }, [
        fact("Active version", task.active_adapter_version ? `v${task.active_adapter_version}`.replace("vbuiltin", "built in") : "none yet"),
        state ? fact("Line", drift(task.drift)) : null,
        fact("Classes", task.class_names.length > 8 ? `${task.class_names.length}` : task.class_names.join(", ")),
        task.builtin ? null : fact("Pending review", h("a", { href: "#/review", class: pending ? "pending" : "" }, String(pending))),
        fact("Images / s", s ? Number(s.images_per_second).toFixed(1) : "0.0"),
        fact("Latency p50 / p95", s && Number(s.images_in_window) ? `${Number(s.p50_ms).toFixed(1)} / ${Number(s.p95_ms).toFixed(1)} ms` : "–"),
        fact("Classified", `${Number(s?.images_total || 0)} (${Number(s?.failures_total || 0)} failed)`),
        task.builtin ? null : fact("Live accuracy", active ? `${pct(active.accuracy)} (${pct(active.low, 0)}–${pct(active.high, 0)}, n = ${active.reviewed})` : "no reviewed samples yet"),
      ]),
    ]);
  }

  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

// The task's drift state: does the line still look like what the adapter learned from?
function drift(d) {
  const words = { ok: "as trained", warning: "changing", drifted: "has changed" };
  const what = {
    features: "the images look different from what this version first saw",
    reference: "the images look unlike the labelled ones",
    classes: "the mix of answers changed",
    confidence: "the answers grew unsure",
  };
  const detail = d.state === "ok"
    ? (Number(d.burn_in_left) ? `learning the line: ${Number(d.burn_in_left)} images to go` : "")
    : `${what[d.test] || d.test} (${d.test} z = ${Number(d.statistic).toFixed(1)}, since ${new Date(Number(d.since) * 1000).toLocaleString()})`;
  return h("span", { class: "drift", title: d.message }, [
    h("span", { class: `chip drift ${d.state}` }, `${d.state} · ${words[d.state] || d.state}`),
    detail ? h("span", { class: "muted drift-detail" }, ` ${detail}${d.state === "drifted" ? " — review the drifted images, then retrain" : ""}`) : null,
  ]);
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function duration(seconds) {
  const s = Number(seconds);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
